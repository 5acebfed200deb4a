/**
 * A minimal ONNX ModelProto encoder: enough protobuf to write small inference graphs (nodes with attributes,
 * initializers as little-endian raw_data, typed inputs and outputs) for test fixtures, without any
 * protobuf dependency. Field numbers follow onnx/onnx.proto (IR version 8).
 */

export type OnnxElementType = 'float32' | 'float16' | 'int32' | 'int64';

/** A constant tensor. float16 data is given as the IEEE half bit patterns. */
export interface OnnxTensor {
  name: string;
  type: OnnxElementType;
  dims: number[];
  data: Float32Array | Uint16Array | Int32Array | BigInt64Array;
}

export type OnnxAttribute =
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { floats: number[] }
  | { string: string }
  | { tensor: OnnxTensor };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attributes?: Record<string, OnnxAttribute>;
}

/** A graph input or output: a fixed size or a symbolic (dim_param) name per dimension. */
export interface OnnxValue {
  name: string;
  type: OnnxElementType;
  shape: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  initializers: OnnxTensor[];
}

export interface OnnxModelOptions {
  /** Version of the default-domain operator set; 17 unless given. */
  opset?: number;
  producer?: string;
}

const IR_VERSION = 8;
const DEFAULT_OPSET = 17;

/** TensorProto.DataType codes. */
const DATA_TYPE: Record<OnnxElementType, number> = { float32: 1, int32: 6, int64: 7, float16: 10 };

/** The typed array each element type's data must come in. */
const DATA_ARRAY: Record<OnnxElementType, { name: string; matches: (data: OnnxTensor['data']) => boolean }> = {
  float32: { name: 'Float32Array', matches: (data) => data instanceof Float32Array },
  float16: { name: 'Uint16Array', matches: (data) => data instanceof Uint16Array },
  int32: { name: 'Int32Array', matches: (data) => data instanceof Int32Array },
  int64: { name: 'BigInt64Array', matches: (data) => data instanceof BigInt64Array },
};

/** AttributeProto.AttributeType codes. */
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** Accumulates one protobuf message; nested messages are encoded separately and embedded as bytes. */
class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private key(field: number, wireType: number): void {
    this.rawVarint(BigInt((field << 3) | wireType));
  }

  /** Base-128 varint; negative int64 values go out as their 64-bit two's complement (ten bytes). */
  private rawVarint(value: bigint): void {
    let remaining = BigInt.asUintN(64, value);
    const bytes: number[] = [];
    while (remaining >= 0x80n) {
      bytes.push(Number(remaining & 0x7fn) | 0x80);
      remaining >>= 7n;
    }
    bytes.push(Number(remaining));
    this.push(Uint8Array.from(bytes));
  }

  int(field: number, value: number | bigint): this {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new RangeError(`protobuf field ${field}: ${value} is not a safe integer`);
    }
    this.key(field, WIRE_VARINT);
    this.rawVarint(BigInt(value));
    return this;
  }

  float(field: number, value: number): this {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.key(field, WIRE_FIXED32);
    this.push(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(BigInt(value.length));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, message: ProtoWriter): this {
    return this.bytes(field, message.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

function checkDimension(where: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${where}: dimension ${value} is not a non-negative integer`);
  }
}

/** The tensor's elements as little-endian bytes, as raw_data requires whatever the host byte order. */
function littleEndianBytes(tensor: OnnxTensor): Uint8Array {
  const { data } = tensor;
  const bytes = new Uint8Array(data.length * data.BYTES_PER_ELEMENT);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) view.setFloat32(i * 4, data[i], true);
    else if (data instanceof Uint16Array) view.setUint16(i * 2, data[i], true);
    else if (data instanceof Int32Array) view.setInt32(i * 4, data[i], true);
    else view.setBigInt64(i * 8, data[i], true);
  }
  return bytes;
}

function encodeTensor(tensor: OnnxTensor): ProtoWriter {
  const where = `tensor "${tensor.name}"`;
  const expected = DATA_ARRAY[tensor.type];
  if (!expected) throw new TypeError(`${where}: unknown element type ${String(tensor.type)}`);
  if (!expected.matches(tensor.data)) {
    throw new TypeError(`${where}: ${tensor.type} data must be a ${expected.name}`);
  }
  tensor.dims.forEach((dim) => checkDimension(where, dim));
  const count = tensor.dims.reduce((product, dim) => product * dim, 1);
  if (count !== tensor.data.length) {
    throw new RangeError(`${where}: dims [${tensor.dims.join(', ')}] hold ${count} elements, data has ${tensor.data.length}`);
  }
  const message = new ProtoWriter();
  for (const dim of tensor.dims) message.int(1, dim);
  message.int(2, DATA_TYPE[tensor.type]);
  message.string(8, tensor.name);
  message.bytes(9, littleEndianBytes(tensor));
  return message;
}

function encodeAttribute(name: string, attribute: OnnxAttribute): ProtoWriter {
  const message = new ProtoWriter().string(1, name);
  if ('int' in attribute) {
    message.int(20, ATTRIBUTE_TYPE.int).int(3, attribute.int);
  } else if ('ints' in attribute) {
    message.int(20, ATTRIBUTE_TYPE.ints);
    for (const value of attribute.ints) message.int(8, value);
  } else if ('float' in attribute) {
    message.int(20, ATTRIBUTE_TYPE.float).float(2, attribute.float);
  } else if ('floats' in attribute) {
    message.int(20, ATTRIBUTE_TYPE.floats);
    for (const value of attribute.floats) message.float(7, value);
  } else if ('string' in attribute) {
    message.int(20, ATTRIBUTE_TYPE.string).string(4, attribute.string);
  } else if ('tensor' in attribute) {
    message.int(20, ATTRIBUTE_TYPE.tensor).message(5, encodeTensor(attribute.tensor));
  } else {
    throw new TypeError(`attribute "${name}" has none of int, ints, float, floats, string, tensor`);
  }
  return message;
}

function encodeNode(node: OnnxNode): ProtoWriter {
  if (!node.op) throw new TypeError('an ONNX node needs an op type');
  const message = new ProtoWriter();
  for (const input of node.inputs) message.string(1, input);
  for (const output of node.outputs) message.string(2, output);
  if (node.name) message.string(3, node.name);
  message.string(4, node.op);
  for (const [name, attribute] of Object.entries(node.attributes ?? {})) {
    message.message(5, encodeAttribute(name, attribute));
  }
  return message;
}

/** ValueInfoProto { name, TypeProto { tensor_type { elem_type, TensorShapeProto } } }. */
function encodeValueInfo(value: OnnxValue): ProtoWriter {
  if (!DATA_TYPE[value.type]) throw new TypeError(`value "${value.name}": unknown element type ${String(value.type)}`);
  const shape = new ProtoWriter();
  for (const dim of value.shape) {
    const dimension = new ProtoWriter();
    if (typeof dim === 'number') {
      checkDimension(`value "${value.name}"`, dim);
      dimension.int(1, dim);
    } else {
      if (!dim) throw new TypeError(`value "${value.name}": a symbolic dimension needs a name`);
      dimension.string(2, dim);
    }
    shape.message(1, dimension);
  }
  const tensorType = new ProtoWriter().int(1, DATA_TYPE[value.type]).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, value.name).message(2, type);
}

function encodeGraph(graph: OnnxGraph): ProtoWriter {
  const message = new ProtoWriter();
  for (const node of graph.nodes) message.message(1, encodeNode(node));
  message.string(2, graph.name);
  for (const initializer of graph.initializers) message.message(5, encodeTensor(initializer));
  for (const input of graph.inputs) message.message(11, encodeValueInfo(input));
  for (const output of graph.outputs) message.message(12, encodeValueInfo(output));
  return message;
}

/** The serialized ModelProto (IR version 8, one default-domain opset import) of `graph`. */
export function encodeOnnxModel(graph: OnnxGraph, options: OnnxModelOptions = {}): Uint8Array {
  const opset = options.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < 1) throw new RangeError(`opset ${opset} is not a positive integer`);
  const opsetImport = new ProtoWriter().string(1, '').int(2, opset);
  return new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, options.producer ?? 'clip-eval')
    .message(7, encodeGraph(graph))
    .message(8, opsetImport)
    .finish();
}

/** The IEEE 754 half-precision bit pattern nearest to `value` (round to nearest even), for float16 tensors. */
export function toFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    // Subnormal half: shift the mantissa (with its implicit 1) into place, rounding half to even.
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    const roundUp = rest > midpoint || (rest === midpoint && (half & 1) === 1);
    return sign | (half + (roundUp ? 1 : 0));
  }
  const half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  const roundUp = rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1);
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (half + (roundUp ? 1 : 0));
}
