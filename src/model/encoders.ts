import { basename } from 'node:path';
import * as ort from 'onnxruntime-node';
import { inputError } from '../core/errors.js';
import type { ModelBundle } from './bundle.js';
import { fromFloat16Array, toFloat16Array } from './float16.js';
import { createSession, runSession, type SessionOptions } from './session.js';

/**
 * The largest image batch accepted: 1024 images of 224² are 616 MB of float32 pixels per buffer, beyond
 * which a batch only costs memory (throughput stops growing long before).
 */
export const MAX_BATCH_SIZE = 1024;

export interface ImageEncoder {
  readonly embeddingDim: number;
  /** The batch size the model is fixed to (1 for immich), or undefined when any batch works. */
  readonly fixedBatch: number | undefined;
  /** Side of the square images the model takes. */
  readonly imageSize: number;
  /** Inputs and outputs used, for --verbose. */
  describe(): string;
  /** `pixels`: count×3×H×W, normalised; returns count×dim L2-normalised embeddings. */
  encode(pixels: Float32Array, count: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export interface TextEncoder {
  readonly embeddingDim: number;
  readonly contextLength: number;
  describe(): string;
  /** Rows of token ids SOT…EOT, unpadded; returns rows×dim L2-normalised embeddings. */
  encode(tokenIds: number[][]): Promise<Float32Array>;
  release(): Promise<void>;
}

type TensorMetadata = ort.InferenceSession.TensorValueMetadata;
type Dim = number | string;

const FLOAT_TYPES = new Set(['float32', 'float16']);
const INT_TYPES = new Set(['int32', 'int64']);
const MASK_TYPES = new Set(['int32', 'int64', 'float32']);

export async function createImageEncoder(bundle: ModelBundle, options: SessionOptions): Promise<ImageEncoder> {
  const path = bundle.visionModelPath;
  if (!path) throw new RangeError('image encoder: the bundle was resolved without its vision model (needVision: false)');
  const session = await createSession(path, options);
  try {
    const input = pickInput(session, path, ['pixel_values', 'image'], (m) => FLOAT_TYPES.has(m.type) && m.shape.length === 4, 'a float image input [N,3,H,W]');
    assertOnlyInputs(session, path, [input.name]);
    const [batchDim, channels, height, width] = input.shape as [Dim, Dim, Dim, Dim];
    if (typeof channels === 'number' && channels !== 3) throw inputError(`${path}: image input ${input.name} has ${channels} channels, expected 3`);
    if (typeof height === 'number' && typeof width === 'number' && height !== width) {
      throw inputError(`${path}: image input ${input.name} is ${height}×${width}; only square inputs are supported`);
    }
    const imageSize = typeof height === 'number' ? height : typeof width === 'number' ? width : bundle.preprocess.imageSize;
    const output = pickOutput(session, path, ['image_embeds', 'embedding', 'embeddings']);
    const fixedBatch = fixedSize(batchDim);
    const imageFloats = 3 * imageSize * imageSize;
    const run = async (pixels: Float32Array, n: number) => {
      const data = input.type === 'float16' ? toFloat16Array(pixels) : pixels;
      const feeds = { [input.name]: new ort.Tensor(input.type, data, [n, 3, imageSize, imageSize]) };
      return readEmbeddings(await runSession(session, feeds, path), output, n, path);
    };
    const embeddingDim = fixedSize(output.shape[1]) ?? (await run(new Float32Array((fixedBatch ?? 1) * imageFloats), fixedBatch ?? 1)).length / (fixedBatch ?? 1);

    return {
      embeddingDim,
      fixedBatch,
      imageSize,
      describe: () => describeEncoder(path, [input], output, bundle.embeddingsNormalised),
      async encode(pixels, count) {
        if (!Number.isInteger(count) || count < 0 || pixels.length !== count * imageFloats) {
          throw new RangeError(`image encoder: expected ${count}×${imageFloats} pixel values, got ${pixels.length}`);
        }
        const out = new Float32Array(count * embeddingDim);
        const step = fixedBatch ?? Math.max(count, 1);
        for (let first = 0; first < count; first += step) {
          const n = Math.min(step, count - first);
          let batch = pixels.subarray(first * imageFloats, (first + n) * imageFloats);
          if (fixedBatch !== undefined && n < fixedBatch) {
            // A short last batch for a fixed-batch model is padded with blank images, whose rows are dropped.
            const padded = new Float32Array(fixedBatch * imageFloats);
            padded.set(batch);
            batch = padded;
          }
          const embeddings = await run(batch, fixedBatch ?? n);
          out.set(embeddings.subarray(0, n * embeddingDim), first * embeddingDim);
        }
        return l2NormaliseRows(out, embeddingDim);
      },
      release: () => session.release(),
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

/**
 * How a batch's rows are filled up: `longest`, to the batch's longest row, where a causal mask keeps the
 * padding out of the embedding (CLIP); `context`, every row to the context length, where the text tower
 * attends to every position and the padding is part of the input (SigLIP).
 */
export type TextPadding = 'longest' | 'context';

export async function createTextEncoder(bundle: ModelBundle, options: SessionOptions & { padId: number; padding: TextPadding }): Promise<TextEncoder> {
  const path = bundle.textModelPath;
  if (!path) throw new RangeError('text encoder: the bundle was resolved without its text model (needText: false)');
  const { padId } = options;
  if (!Number.isInteger(padId) || padId < 0) throw new RangeError(`text encoder: pad id must be a token id, got ${padId}`);
  const session = await createSession(path, options);
  try {
    const ids = pickInput(session, path, ['input_ids', 'text'], (m) => INT_TYPES.has(m.type) && m.shape.length === 2, 'an integer token-id input [N,S]');
    const mask = session.inputMetadata.find((m): m is TensorMetadata => m.isTensor && m.name === 'attention_mask');
    if (mask && (!MASK_TYPES.has(mask.type) || mask.shape.length !== 2)) {
      throw inputError(`${path}: attention_mask is ${mask.type} ${formatShape(mask.shape)}; expected an integer or float [N,S] input`);
    }
    assertOnlyInputs(session, path, mask ? [ids.name, mask.name] : [ids.name]);
    const output = pickOutput(session, path, ['text_embeds', 'embedding', 'embeddings']);
    const fixedBatch = fixedSize(ids.shape[0]);
    const fixedLength = fixedSize(ids.shape[1]);
    const contextLength = fixedLength ?? bundle.contextLength;

    const run = async (rows: number[][]) => {
      const batch = fixedBatch ?? rows.length;
      // CLIP's causal mask keeps positions after EOT out of the embedding, so a dynamic sequence axis is
      // padded only to the longest row of the batch: same result as padding to 77, far less work.
      const length = fixedLength ?? (options.padding === 'context' ? contextLength : Math.max(...rows.map((row) => row.length)));
      const feeds: Record<string, ort.Tensor> = { [ids.name]: idTensor(ids.type, rows, batch, length, (row, i) => row[i] ?? padId) };
      if (mask) feeds[mask.name] = maskTensor(mask.type, rows, batch, length);
      return readEmbeddings(await runSession(session, feeds, path), output, batch, path);
    };
    const embeddingDim = fixedSize(output.shape[1]) ?? (await run([[padId]])).length / (fixedBatch ?? 1);

    return {
      embeddingDim,
      contextLength,
      describe: () => describeEncoder(path, mask ? [ids, mask] : [ids], output, bundle.embeddingsNormalised),
      async encode(tokenIds) {
        for (const row of tokenIds) {
          if (row.length === 0) throw new RangeError('text encoder: a prompt has no tokens (expected SOT…EOT)');
          if (row.length > contextLength) {
            throw inputError(`${path}: a prompt has ${row.length} tokens but the model takes at most ${contextLength}; tokenize with that context length`);
          }
        }
        const out = new Float32Array(tokenIds.length * embeddingDim);
        const step = fixedBatch ?? Math.max(tokenIds.length, 1);
        for (let first = 0; first < tokenIds.length; first += step) {
          const rows = tokenIds.slice(first, first + step);
          const embeddings = await run(rows);
          out.set(embeddings.subarray(0, rows.length * embeddingDim), first * embeddingDim);
        }
        return l2NormaliseRows(out, embeddingDim);
      },
      release: () => session.release(),
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

/** Image and text embeddings are compared by dot product, so they must have one size. */
export function assertEmbeddingDimsMatch(bundle: ModelBundle, imageDim: number, textDim: number): void {
  if (imageDim !== textDim) {
    throw inputError(
      `${bundle.visionModelPath} gives ${imageDim}-dimensional image embeddings but ${bundle.textModelPath} gives ${textDim}-dimensional text embeddings; the two encoders do not belong together`,
    );
  }
}

/** A typed [batch, length] id tensor; rows past the end of `rows` (padding a fixed batch) are all pad. */
function idTensor(type: string, rows: number[][], batch: number, length: number, value: (row: number[], i: number) => number): ort.Tensor {
  const data = type === 'int64' ? new BigInt64Array(batch * length) : new Int32Array(batch * length);
  for (let r = 0; r < batch; r += 1) {
    const row = rows[r] ?? [];
    for (let i = 0; i < length; i += 1) {
      const id = value(row, i);
      if (data instanceof BigInt64Array) data[r * length + i] = BigInt(id);
      else data[r * length + i] = id;
    }
  }
  return new ort.Tensor(type === 'int64' ? 'int64' : 'int32', data, [batch, length]);
}

/** 1 over each row's tokens, 0 over its padding. */
function maskTensor(type: string, rows: number[][], batch: number, length: number): ort.Tensor {
  if (type === 'float32') {
    const data = new Float32Array(batch * length);
    rows.forEach((row, r) => data.fill(1, r * length, r * length + row.length));
    return new ort.Tensor('float32', data, [batch, length]);
  }
  return idTensor(type, rows, batch, length, (row, i) => (i < row.length ? 1 : 0));
}

function isTensor(metadata: ort.InferenceSession.ValueMetadata): metadata is TensorMetadata {
  return metadata.isTensor;
}

/** The input with one of `names`, else the first that `fits`; checked to fit either way. */
function pickInput(
  session: ort.InferenceSession,
  path: string,
  names: string[],
  fits: (metadata: TensorMetadata) => boolean,
  wanted: string,
): TensorMetadata {
  const inputs = session.inputMetadata.filter(isTensor);
  const input = names.map((name) => inputs.find((m) => m.name === name)).find((m) => m !== undefined) ?? inputs.find(fits);
  if (!input || !fits(input)) {
    throw inputError(`${path}: cannot find ${wanted} among the model's inputs: ${describeValues(session.inputMetadata)}`);
  }
  return input;
}

/** Every other input would need a value we cannot know. */
function assertOnlyInputs(session: ort.InferenceSession, path: string, used: string[]): void {
  const extra = session.inputMetadata.filter((m) => !used.includes(m.name));
  if (extra.length > 0) {
    throw inputError(`${path}: cannot map the model's inputs ${describeValues(session.inputMetadata)}: no value for ${extra.map((m) => m.name).join(', ')}`);
  }
}

/** The embedding output: by name, else the only float [N, D] output. */
function pickOutput(session: ort.InferenceSession, path: string, names: string[]): TensorMetadata {
  const outputs = session.outputMetadata.filter(isTensor);
  const byName = names.map((name) => outputs.find((m) => m.name === name)).find((m) => m !== undefined);
  const candidates = byName ? [byName] : outputs.filter((m) => FLOAT_TYPES.has(m.type) && m.shape.length === 2);
  const output = candidates.length === 1 ? candidates[0]! : undefined;
  if (!output || !FLOAT_TYPES.has(output.type) || output.shape.length !== 2) {
    throw inputError(
      `${path}: cannot tell which output is the embedding (wanted ${names.join(', ')} or a single float [N,D] output) among: ${describeValues(session.outputMetadata)}`,
    );
  }
  return output;
}

function readEmbeddings(results: ort.InferenceSession.ReturnType, output: TensorMetadata, rows: number, path: string): Float32Array {
  const tensor = results[output.name];
  if (!tensor) throw inputError(`${path}: the model did not return its output ${output.name}`);
  if (tensor.dims.length !== 2 || tensor.dims[0] !== rows) {
    throw inputError(`${path}: output ${output.name} has shape [${tensor.dims.join(',')}], expected [${rows},D]`);
  }
  if (tensor.type !== 'float32' && tensor.type !== 'float16') throw inputError(`${path}: output ${output.name} is ${tensor.type}, expected float32 or float16`);
  const values = tensor.type === 'float16' ? fromFloat16Array(tensor.data as Uint16Array) : Float32Array.from(tensor.data as Float32Array);
  // A NaN or infinity would sort and average into plausible-looking but meaningless scores.
  const bad = values.findIndex((value) => !Number.isFinite(value));
  if (bad !== -1) {
    const dim = values.length / rows;
    throw inputError(`${path}: the model output ${values[bad]} in ${output.name} (row ${Math.floor(bad / dim)} of a batch of ${rows}); its embeddings must be finite numbers, so the model file is broken or does not fit this input`);
  }
  return values;
}

/** Each row scaled to unit length, in place; all-zero rows stay zero. */
export function l2NormaliseRows(values: Float32Array, dim: number): Float32Array {
  for (let start = 0; start < values.length; start += dim) {
    let sum = 0;
    for (let i = start; i < start + dim; i += 1) sum += values[i]! * values[i]!;
    if (sum === 0) continue;
    const scale = 1 / Math.sqrt(sum);
    for (let i = start; i < start + dim; i += 1) values[i]! *= scale;
  }
  return values;
}

function fixedSize(dim: Dim | undefined): number | undefined {
  return typeof dim === 'number' && dim > 0 ? dim : undefined;
}

function formatShape(shape: readonly Dim[]): string {
  return `[${shape.join(',')}]`;
}

function describeValues(values: readonly ort.InferenceSession.ValueMetadata[]): string {
  if (values.length === 0) return '(none)';
  return values.map((m) => (m.isTensor ? `${m.name} ${m.type} ${formatShape(m.shape)}` : `${m.name} (not a tensor)`)).join(', ');
}

function describeEncoder(path: string, inputs: TensorMetadata[], output: TensorMetadata, alreadyNormalised: boolean): string {
  const used = inputs.map((m) => `${m.name} ${m.type} ${formatShape(m.shape)}`).join(' + ');
  const norm = alreadyNormalised ? 'unit length from the model, L2-normalised again here' : 'L2-normalised here';
  return `${basename(path)}: ${used} → ${output.name} ${output.type} ${formatShape(output.shape)} (${norm})`;
}
