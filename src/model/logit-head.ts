import onnxProto from 'onnx-proto';
import { readRegularFile } from '../core/bounded-read.js';
import { ClipEvalError, inputError } from '../core/errors.js';
import { float16BitsToFloat32 } from './float16.js';

const { onnx } = onnxProto;

/**
 * The learned head of a sigmoid-loss model (SigLIP): logits = scale · cosine + bias, per label. Hugging
 * Face's SiglipModel export keeps both only in the full graph (onnx/model.onnx): the initializer
 * `logit_scale` (the log of the scale, applied through Exp) and `logit_bias`.
 */
export interface LogitHead {
  scale: number;
  bias: number;
  /** The file they were read from. */
  source: string;
}

/** Protobuf decoding holds the whole file; the full graph of a SigLIP base model is about 0.8 GB. */
const MAX_GRAPH_BYTES = 4 * 2 ** 30;
const FLOAT = 1;
const FLOAT16 = 10;

function scalar(tensor: onnxProto.onnx.ITensorProto, path: string): number {
  const count = (tensor.dims ?? []).reduce<number>((product, dim) => product * Number(dim), 1);
  if (count !== 1) throw inputError(`${path}: initializer ${tensor.name} has ${count} values, expected one`);
  let value: number | undefined;
  if (tensor.dataType === FLOAT && tensor.floatData && tensor.floatData.length === 1) value = tensor.floatData[0];
  else if (tensor.dataType === FLOAT && tensor.rawData && tensor.rawData.length === 4) value = Buffer.from(tensor.rawData).readFloatLE(0);
  else if (tensor.dataType === FLOAT16 && tensor.rawData && tensor.rawData.length === 2) value = float16BitsToFloat32(Buffer.from(tensor.rawData).readUInt16LE(0));
  if (value === undefined || !Number.isFinite(value)) throw inputError(`${path}: initializer ${tensor.name} is not a finite float scalar`);
  return value;
}

/** The head from a full ONNX graph, or undefined when the graph holds no `logit_scale` and `logit_bias`. */
export async function readLogitHead(path: string): Promise<LogitHead | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path, { maxBytes: MAX_GRAPH_BYTES, label: `model file ${path}` });
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`cannot read model file ${path}: ${(error as Error).message}`, error);
  }
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw inputError(`${path} is not an ONNX model (${(error as Error).message})`, error);
  }
  const initializers = model.graph?.initializer ?? [];
  const find = (name: string) => initializers.find((tensor) => tensor.name === name);
  const logScale = find('logit_scale');
  const bias = find('logit_bias');
  if (!logScale || !bias) return undefined;
  return { scale: Math.exp(scalar(logScale, path)), bias: scalar(bias, path), source: path };
}
