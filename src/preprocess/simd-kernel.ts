/**
 * The WebAssembly SIMD kernel behind the resampler (see resample.ts): Pillow's fixed-point
 * convolution 8 samples at a time, written out as a small hand-assembled module so that no build
 * step or binary blob is needed.
 */
/** The WebAssembly opcodes the kernel uses (core, then 0xFD-prefixed SIMD). */
const OP = {
  block: 0x02, loop: 0x03, if: 0x04, end: 0x0b, br: 0x0c, brIf: 0x0d, emptyType: 0x40,
  localGet: 0x20, localSet: 0x21, localTee: 0x22, i32Load: 0x28, i64Store: 0x37, i32Const: 0x41,
  i32Store8: 0x3a, f32Const: 0x43, i32Eq: 0x46, i32GtS: 0x4a, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, simdPrefix: 0xfd,
} as const;
const SIMD = {
  load8x8U: 0x02, load32Splat: 0x09, store: 0x0b, i32x4Splat: 0x11, f32x4Splat: 0x13, i32x4ExtractLane: 0x1b, i64x2ExtractLane: 0x1d,
  i8x16NarrowI16x8U: 0x66, i16x8NarrowI32x4S: 0x85, i32x4ExtendLowI16x8U: 0xa9, i32x4ExtendHighI16x8U: 0xaa,
  i32x4ShrS: 0xac, i32x4Add: 0xae, i32x4Mul: 0xb5, i32x4MinS: 0xb6, i32x4MaxS: 0xb8,
  f32x4Sub: 0xe5, f32x4Div: 0xe7, f32x4ConvertI32x4S: 0xfa,
} as const;
const TYPE = { i32: 0x7f, f32: 0x7d, v128: 0x7b, func: 0x60 } as const;

function unsignedLeb(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

function signedLeb(value: number): number[] {
  const bytes: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

const vector = (items: number[][]): number[] => [...unsignedLeb(items.length), ...items.flat()];
const section = (id: number, content: number[]): number[] => [id, ...unsignedLeb(content.length), ...content];
const name = (text: string): number[] => vector([...Buffer.from(text, 'utf8')].map((byte) => [byte]));
const get = (local: number): number[] => [OP.localGet, ...unsignedLeb(local)];
const set = (local: number): number[] => [OP.localSet, ...unsignedLeb(local)];
const tee = (local: number): number[] => [OP.localTee, ...unsignedLeb(local)];
const i32 = (value: number): number[] => [OP.i32Const, ...signedLeb(value)];
const f32 = (value: number): number[] => [OP.f32Const, ...new Uint8Array(new Float32Array([value]).buffer)];
const simd = (op: number): number[] => [OP.simdPrefix, ...unsignedLeb(op)];
/** A memory access with alignment hint 1 byte and a constant offset. */
const memory = (op: number[], offset = 0): number[] => [...op, 0, ...unsignedLeb(offset)];

type KernelOutput = 'bytes' | 'floats';

/**
 * The body of (src, rowOffsets, weights, taps, rows, rowLength, srcStride, out, outStride, mean, std):
 * output row y < rows reads source rows from src + rowOffsets[y] (bytes), srcStride apart, weighted
 * by weights[y·taps ..]. 'bytes' writes clip8 of each sample (rowLength bytes at out + y·outStride);
 * 'floats' writes ((clip8/255) − mean)/std in float32 (rowLength floats there). Columns go 8 at a
 * time; the last group is moved back to end at rowLength (recomputing a few samples identically),
 * so rowLength must be at least 8 and nothing outside the row is written.
 */
function kernelBody(output: KernelOutput, precisionBits: number): number[] {
  const [src, rowOffsets, weights, taps, rows, rowLength, srcStride, out, outStride, mean, std] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [y, x, k, p, w, lastX, rowSrc, rowOut, rowWeights] = [11, 12, 13, 14, 15, 16, 17, 18, 19];
  const [lo, hi, pixels, weight, meanV, stdV, v255, zero, max255, rounding] = [20, 21, 22, 23, 24, 25, 26, 27, 28, 29];

  const shifted = (acc: number): number[] => [...get(acc), ...i32(precisionBits), ...simd(SIMD.i32x4ShrS)];
  const normalised = (acc: number): number[] => [
    ...shifted(acc), ...get(zero), ...simd(SIMD.i32x4MaxS), ...get(max255), ...simd(SIMD.i32x4MinS),
    ...simd(SIMD.f32x4ConvertI32x4S), ...get(v255), ...simd(SIMD.f32x4Div),
    ...get(meanV), ...simd(SIMD.f32x4Sub), ...get(stdV), ...simd(SIMD.f32x4Div),
  ];
  const floatAddress = [...get(rowOut), ...get(x), ...i32(4), OP.i32Mul, OP.i32Add];
  // Shifted sums lie within ±640, so the signed 16-bit narrowing is exact and the unsigned 8-bit
  // one saturates to 0..255, which is clip8.
  const store = output === 'floats'
    ? [
        ...floatAddress, ...normalised(lo), ...memory(simd(SIMD.store)),
        ...floatAddress, ...normalised(hi), ...memory(simd(SIMD.store), 16),
      ]
    : [
        ...get(rowOut), ...get(x), OP.i32Add,
        ...shifted(lo), ...shifted(hi), ...simd(SIMD.i16x8NarrowI32x4S),
        ...tee(pixels), ...get(pixels), ...simd(SIMD.i8x16NarrowI16x8U),
        ...simd(SIMD.i64x2ExtractLane), 0, ...memory([OP.i64Store]),
      ];
  const accumulate = (acc: number, widen: number): number[] => [
    ...get(acc), ...get(pixels), ...simd(widen), ...get(weight), ...simd(SIMD.i32x4Mul), ...simd(SIMD.i32x4Add), ...set(acc),
  ];

  return [
    ...get(mean), ...simd(SIMD.f32x4Splat), ...set(meanV),
    ...get(std), ...simd(SIMD.f32x4Splat), ...set(stdV),
    ...f32(255), ...simd(SIMD.f32x4Splat), ...set(v255),
    ...i32(0), ...simd(SIMD.i32x4Splat), ...set(zero),
    ...i32(255), ...simd(SIMD.i32x4Splat), ...set(max255),
    ...i32(1 << (precisionBits - 1)), ...simd(SIMD.i32x4Splat), ...set(rounding),
    ...get(rowLength), ...i32(8), OP.i32Sub, ...set(lastX),
    ...get(weights), ...set(rowWeights),
    OP.block, OP.emptyType, OP.loop, OP.emptyType, // rows
    ...get(y), ...get(rows), OP.i32Eq, OP.brIf, 1,
    ...get(src), ...get(rowOffsets), ...get(y), ...i32(4), OP.i32Mul, OP.i32Add, ...memory([OP.i32Load]), OP.i32Add, ...set(rowSrc),
    ...get(out), ...get(y), ...get(outStride), OP.i32Mul, OP.i32Add, ...set(rowOut),
    ...i32(0), ...set(x),
    OP.block, OP.emptyType, OP.loop, OP.emptyType, // groups of 8 columns
    ...get(rounding), ...set(lo),
    ...get(rounding), ...set(hi),
    ...get(rowSrc), ...get(x), OP.i32Add, ...set(p),
    ...get(rowWeights), ...set(w),
    ...get(taps), ...set(k),
    OP.loop, OP.emptyType, // taps
    ...get(p), ...memory(simd(SIMD.load8x8U)), ...set(pixels),
    ...get(w), ...memory(simd(SIMD.load32Splat)), ...set(weight),
    ...accumulate(lo, SIMD.i32x4ExtendLowI16x8U),
    ...accumulate(hi, SIMD.i32x4ExtendHighI16x8U),
    ...get(p), ...get(srcStride), OP.i32Add, ...set(p),
    ...get(w), ...i32(4), OP.i32Add, ...set(w),
    ...get(k), ...i32(1), OP.i32Sub, ...tee(k), OP.brIf, 0,
    OP.end,
    ...store,
    ...get(x), ...get(lastX), OP.i32Eq, OP.brIf, 1,
    ...get(x), ...i32(8), OP.i32Add, ...tee(x), ...get(lastX), OP.i32GtS,
    OP.if, OP.emptyType, ...get(lastX), ...set(x), OP.end,
    OP.br, 0,
    OP.end, OP.end,
    ...get(rowWeights), ...get(taps), ...i32(4), OP.i32Mul, OP.i32Add, ...set(rowWeights),
    ...get(y), ...i32(1), OP.i32Add, ...set(y),
    OP.br, 0,
    OP.end, OP.end,
    OP.end,
  ];
}

/**
 * The body of (src, columnOffsets, weights, taps, rows, columns, srcStride, out, plane): the
 * horizontal pass straight over interleaved RGB, one output pixel's three samples at a time in
 * i32x4 lanes (the fourth lane is the next pixel's red, computed and dropped). Output pixel x of row
 * y < rows reads `taps` pixels from src + y·srcStride + columnOffsets[x] (bytes), weighted by
 * weights[x·taps ..], and writes clip8 of its red, green and blue at out + y·columns + x and one and
 * two `plane`s further: three row-major planes, ready for the column pass. It reads up to 5 bytes past
 * the last pixel of a row (the load takes 8), which the caller keeps inside memory.
 */
function rgbRowsBody(precisionBits: number): number[] {
  const [src, columnOffsets, weights, taps, rows, columns, srcStride, out, plane] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [y, x, k, p, w, rowSrc, o] = [9, 10, 11, 12, 13, 14, 15];
  const [acc, v, zero, max255, rounding] = [16, 17, 18, 19, 20];
  const lane = (index: number): number[] => [...get(v), ...simd(SIMD.i32x4ExtractLane), index, ...memory([OP.i32Store8])];
  return [
    ...i32(0), ...simd(SIMD.i32x4Splat), ...set(zero),
    ...i32(255), ...simd(SIMD.i32x4Splat), ...set(max255),
    ...i32(1 << (precisionBits - 1)), ...simd(SIMD.i32x4Splat), ...set(rounding),
    OP.block, OP.emptyType, OP.loop, OP.emptyType, // rows
    ...get(y), ...get(rows), OP.i32Eq, OP.brIf, 1,
    ...get(src), ...get(y), ...get(srcStride), OP.i32Mul, OP.i32Add, ...set(rowSrc),
    ...get(out), ...get(y), ...get(columns), OP.i32Mul, OP.i32Add, ...set(o),
    ...get(weights), ...set(w),
    ...i32(0), ...set(x),
    OP.block, OP.emptyType, OP.loop, OP.emptyType, // output pixels
    ...get(x), ...get(columns), OP.i32Eq, OP.brIf, 1,
    ...get(rowSrc), ...get(columnOffsets), ...get(x), ...i32(4), OP.i32Mul, OP.i32Add, ...memory([OP.i32Load]), OP.i32Add, ...set(p),
    ...get(rounding), ...set(acc),
    ...get(taps), ...set(k),
    OP.loop, OP.emptyType, // taps
    ...get(acc),
    ...get(p), ...memory(simd(SIMD.load8x8U)), ...simd(SIMD.i32x4ExtendLowI16x8U),
    ...get(w), ...memory(simd(SIMD.load32Splat)), ...simd(SIMD.i32x4Mul), ...simd(SIMD.i32x4Add), ...set(acc),
    ...get(p), ...i32(3), OP.i32Add, ...set(p),
    ...get(w), ...i32(4), OP.i32Add, ...set(w),
    ...get(k), ...i32(1), OP.i32Sub, ...tee(k), OP.brIf, 0,
    OP.end,
    ...get(acc), ...i32(precisionBits), ...simd(SIMD.i32x4ShrS), ...get(zero), ...simd(SIMD.i32x4MaxS), ...get(max255), ...simd(SIMD.i32x4MinS), ...set(v),
    ...get(o), ...lane(0),
    ...get(o), ...get(plane), OP.i32Add, ...lane(1),
    ...get(o), ...get(plane), OP.i32Add, ...get(plane), OP.i32Add, ...lane(2),
    ...get(o), ...i32(1), OP.i32Add, ...set(o),
    ...get(x), ...i32(1), OP.i32Add, ...set(x),
    OP.br, 0,
    OP.end, OP.end,
    ...get(y), ...i32(1), OP.i32Add, ...set(y),
    OP.br, 0,
    OP.end, OP.end,
    OP.end,
  ];
}

/** A module importing env.memory and exporting the kernels as `bytes`, `floats` and `rgbRows`. */
function kernelModule(precisionBits: number): Uint8Array {
  const withLocals = (locals: number[], body: number[]): number[] => {
    const code = [...locals, ...body];
    return [...unsignedLeb(code.length), ...code];
  };
  const code = (output: KernelOutput): number[] => withLocals(vector([[9, TYPE.i32], [10, TYPE.v128]]), kernelBody(output, precisionBits));
  const params = [...Array<number>(9).fill(TYPE.i32), TYPE.f32, TYPE.f32];
  const rgbParams = Array<number>(9).fill(TYPE.i32);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([
      [TYPE.func, ...vector(params.map((t) => [t])), ...vector([])],
      [TYPE.func, ...vector(rgbParams.map((t) => [t])), ...vector([])],
    ])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vector([[0], [0], [1]])),
    ...section(7, vector([[...name('bytes'), 0x00, 0], [...name('floats'), 0x00, 1], [...name('rgbRows'), 0x00, 2]])),
    ...section(10, vector([code('bytes'), code('floats'), withLocals(vector([[7, TYPE.i32], [5, TYPE.v128]]), rgbRowsBody(precisionBits))])),
  ]);
}

export type KernelFunction = (
  src: number, rowOffsets: number, weights: number, taps: number, rows: number, rowLength: number,
  srcStride: number, out: number, outStride: number, mean: number, std: number,
) => void;

/** The part of the WebAssembly JavaScript API used here (the project's TypeScript libs omit it). */
interface WebAssemblyApi {
  Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

let compiledKernel: object | undefined;
const WASM_PAGE = 65536;

/** See rgbRowsBody. */
export type RgbRowsFunction = (src: number, columnOffsets: number, weights: number, taps: number, rows: number, columns: number, srcStride: number, out: number, plane: number) => void;

export interface ResampleKernel {
  /** The kernel's memory: tables, images and outputs are placed in it by the caller. */
  readonly buffer: ArrayBuffer;
  readonly bytes: KernelFunction;
  readonly floats: KernelFunction;
  readonly rgbRows: RgbRowsFunction;
}

/** A kernel instance with at least `memoryBytes` of memory; the module is compiled once per process. */
export function createResampleKernel(memoryBytes: number, precisionBits: number): ResampleKernel {
  const memory = new wasm.Memory({ initial: Math.ceil(memoryBytes / WASM_PAGE) });
  compiledKernel ??= new wasm.Module(kernelModule(precisionBits));
  const { exports } = new wasm.Instance(compiledKernel, { env: { memory } });
  return { buffer: memory.buffer, bytes: exports.bytes as KernelFunction, floats: exports.floats as KernelFunction, rgbRows: exports.rgbRows as RgbRowsFunction };
}
