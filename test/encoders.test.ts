import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { ClipEvalError } from '../src/core/errors.js';
import type { ModelBundle } from '../src/model/bundle.js';
import { resolveModelBundle } from '../src/model/bundle.js';
import { assertEmbeddingDimsMatch, createImageEncoder, createTextEncoder, l2NormaliseRows } from '../src/model/encoders.js';
import { float16BitsToFloat32, fromFloat16Array, toFloat16Array } from '../src/model/float16.js';
import { createSession, parseDevice } from '../src/model/session.js';
import { OPENAI_PREPROCESS } from '../src/preprocess/config.js';
import { encodeOnnxModel, type OnnxElementType, type OnnxGraph } from '../scripts/lib/onnx-writer.js';
import { writePatternClip } from '../scripts/lib/pattern-clip.js';
import { buildPatternTable, DEFAULT_SEED, EMBED_DIM } from '../scripts/lib/pattern-table.js';
import { makeTempDir } from './support/paths.js';

const cpu = { device: 'cpu' as const, threads: 1 };
let dir: string;

before(async () => {
  dir = await makeTempDir('clip-eval-encoders-');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let modelCount = 0;
async function writeModel(graph: OnnxGraph): Promise<string> {
  modelCount += 1;
  const path = join(dir, `model-${modelCount}.onnx`);
  await writeFile(path, encodeOnnxModel(graph));
  return path;
}

function bundleOf(paths: { vision?: string; text?: string }, contextLength = 77): ModelBundle {
  return {
    id: 'test',
    layout: 'files',
    variant: 'fp32',
    visionModelPath: paths.vision ?? '',
    textModelPath: paths.text ?? '',
    tokenizerPath: '',
    preprocess: OPENAI_PREPROCESS,
    embeddingsNormalised: false,
    contextLength,
  };
}

const IMAGE = 4;
const DIM = 5;
/** A [3, DIM] projection of the per-channel means. */
const PROJECTION = Float32Array.from({ length: 3 * DIM }, (_, i) => ((i * 7) % 11) - 5 + 0.25 * i);

/** pixels [N,3,IMAGE,IMAGE] → per-channel mean → × PROJECTION → [N, DIM]; optionally in float16 at both ends. */
function imageGraph(options: { batch?: number | string; type?: 'float32' | 'float16'; extraInput?: boolean; output?: string } = {}): OnnxGraph {
  const { batch = 'batch', type = 'float32', output = 'image_embeds' } = options;
  const half = type === 'float16';
  return {
    name: 'image',
    inputs: [
      { name: 'pixel_values', type, shape: [batch, 3, IMAGE, IMAGE] },
      ...(options.extraInput ? [{ name: 'temperature', type: 'float32' as const, shape: [1] }] : []),
    ],
    outputs: [{ name: output, type, shape: [batch, DIM] }],
    initializers: [{ name: 'projection', type: 'float32', dims: [3, DIM], data: PROJECTION }],
    nodes: [
      ...(half ? [{ op: 'Cast', inputs: ['pixel_values'], outputs: ['pixels32'], attributes: { to: { int: 1 } } }] : []),
      {
        op: 'ReduceMean',
        inputs: [half ? 'pixels32' : 'pixel_values'],
        outputs: ['means'],
        attributes: { axes: { ints: [2, 3] }, keepdims: { int: 0 } },
      },
      { op: 'MatMul', inputs: ['means', 'projection'], outputs: [half ? 'embeds32' : output] },
      ...(half ? [{ op: 'Cast', inputs: ['embeds32'], outputs: [output], attributes: { to: { int: 10 } } }] : []),
    ],
  };
}

function expectedImageEmbedding(pixels: Float32Array, index: number): Float32Array {
  const plane = IMAGE * IMAGE;
  const out = new Float32Array(DIM);
  for (let c = 0; c < 3; c += 1) {
    let sum = 0;
    for (let i = 0; i < plane; i += 1) sum += pixels[(index * 3 + c) * plane + i]!;
    for (let d = 0; d < DIM; d += 1) out[d]! += (sum / plane) * PROJECTION[c * DIM + d]!;
  }
  return l2NormaliseRows(out, DIM);
}

function randomPixels(count: number, seed: number): Float32Array {
  let state = seed;
  return Float32Array.from({ length: count * 3 * IMAGE * IMAGE }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 30 - 1;
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, tolerance: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i += 1) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `element ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

const VOCAB = 10;
/** Token i's embedding row: distinct, with a non-zero pad row so that padding shows in the sum. */
const TOKEN_TABLE = Float32Array.from({ length: VOCAB * DIM }, (_, i) => Math.sin(i + 1) * 3);

/**
 * ids [N, S] → Gather rows → (× attention_mask) → sum over the sequence → [N, DIM]: the output depends on
 * the padding, the pad id and (when declared) the mask, so each is checked.
 */
function textGraph(options: { idType?: OnnxElementType; batch?: number | string; length?: number | string; mask?: boolean; idName?: string } = {}): OnnxGraph {
  const { idType = 'int64', batch = 'batch', length = 'sequence', mask = false, idName = 'input_ids' } = options;
  return {
    name: 'text',
    inputs: [
      { name: idName, type: idType, shape: [batch, length] },
      ...(mask ? [{ name: 'attention_mask', type: 'int64' as const, shape: [batch, length] }] : []),
    ],
    outputs: [{ name: 'text_embeds', type: 'float32', shape: [batch, DIM] }],
    initializers: [
      { name: 'table', type: 'float32', dims: [VOCAB, DIM], data: TOKEN_TABLE },
      { name: 'sequence_axis', type: 'int64', dims: [1], data: BigInt64Array.of(1n) },
      { name: 'last_axis', type: 'int64', dims: [1], data: BigInt64Array.of(-1n) },
    ],
    nodes: [
      { op: 'Gather', inputs: ['table', idName], outputs: ['rows'], attributes: { axis: { int: 0 } } },
      ...(mask
        ? [
            { op: 'Cast', inputs: ['attention_mask'], outputs: ['mask_float'], attributes: { to: { int: 1 } } },
            { op: 'Unsqueeze', inputs: ['mask_float', 'last_axis'], outputs: ['mask_3d'] },
            { op: 'Mul', inputs: ['rows', 'mask_3d'], outputs: ['kept'] },
          ]
        : []),
      { op: 'ReduceSum', inputs: [mask ? 'kept' : 'rows', 'sequence_axis'], outputs: ['text_embeds'], attributes: { keepdims: { int: 0 } } },
    ],
  };
}

/** The normalised sum of the table rows of `ids`, plus `pads` rows of the pad token. */
function expectedTextEmbedding(ids: number[], padId: number, pads: number): Float32Array {
  const out = new Float32Array(DIM);
  for (const id of [...ids, ...Array<number>(pads).fill(padId)]) {
    for (let d = 0; d < DIM; d += 1) out[d]! += TOKEN_TABLE[id * DIM + d]!;
  }
  return l2NormaliseRows(out, DIM);
}

function concat(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, row) => n + row.length, 0));
  let offset = 0;
  for (const row of rows) {
    out.set(row, offset);
    offset += row.length;
  }
  return out;
}

const PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8], [9]];
const PAD = 7;

test('image encoder: reads names and sizes from the model and returns normalised embeddings', async () => {
  const encoder = await createImageEncoder(bundleOf({ vision: await writeModel(imageGraph()) }), cpu);
  try {
    assert.equal(encoder.embeddingDim, DIM);
    assert.equal(encoder.imageSize, IMAGE);
    assert.equal(encoder.fixedBatch, undefined);
    assert.match(encoder.describe(), /pixel_values float32 \[batch,3,4,4\] → image_embeds float32 \[batch,5\]/);
    const pixels = randomPixels(3, 1);
    const embeddings = await encoder.encode(pixels, 3);
    assertClose(embeddings, concat([0, 1, 2].map((i) => expectedImageEmbedding(pixels, i))), 1e-5);
    assert.deepEqual(await encoder.encode(new Float32Array(0), 0), new Float32Array(0));
    await assert.rejects(encoder.encode(pixels, 2), RangeError);
  } finally {
    await encoder.release();
  }
});

test('image encoder: a fixed batch of 1 or 2 is honoured, a short last batch padded', async () => {
  const pixels = randomPixels(3, 2);
  const expected = concat([0, 1, 2].map((i) => expectedImageEmbedding(pixels, i)));
  for (const batch of [1, 2]) {
    const encoder = await createImageEncoder(bundleOf({ vision: await writeModel(imageGraph({ batch })) }), cpu);
    try {
      assert.equal(encoder.fixedBatch, batch);
      assertClose(await encoder.encode(pixels, 3), expected, 1e-5);
    } finally {
      await encoder.release();
    }
  }
});

test('image encoder: a float16 model gets float16 pixels and gives float16 embeddings back as float32', async () => {
  const encoder = await createImageEncoder(bundleOf({ vision: await writeModel(imageGraph({ type: 'float16' })) }), cpu);
  try {
    const pixels = randomPixels(2, 3);
    const roundedPixels = fromFloat16Array(toFloat16Array(pixels));
    const embeddings = await encoder.encode(pixels, 2);
    assertClose(embeddings, concat([0, 1].map((i) => expectedImageEmbedding(roundedPixels, i))), 2e-3);
  } finally {
    await encoder.release();
  }
});

test('image encoder: an input it cannot feed, or no recognisable output, is a one-line error listing them', async () => {
  const extra = await writeModel(imageGraph({ extraInput: true }));
  await assert.rejects(createImageEncoder(bundleOf({ vision: extra }), cpu), (error: unknown) => {
    assert.ok(error instanceof ClipEvalError);
    assert.match(error.message, /model-\d+\.onnx: cannot map the model's inputs pixel_values float32 \[batch,3,4,4\], temperature float32 \[1\]: no value for temperature/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
  const textOnly = await writeModel(textGraph());
  await assert.rejects(createImageEncoder(bundleOf({ vision: textOnly }), cpu), /cannot find a float image input \[N,3,H,W\] among the model's inputs: input_ids int64 \[batch,sequence\]/);
});

test('image encoder: an unnamed output is used when it is the only float [N,D] one', async () => {
  const encoder = await createImageEncoder(bundleOf({ vision: await writeModel(imageGraph({ output: 'features' })) }), cpu);
  try {
    assert.match(encoder.describe(), /→ features float32/);
    const pixels = randomPixels(1, 4);
    assertClose(await encoder.encode(pixels, 1), expectedImageEmbedding(pixels, 0), 1e-5);
  } finally {
    await encoder.release();
  }
});

test('text encoder: int64 and int32 ids, dynamic length padded to the longest prompt with the pad id', async () => {
  for (const idType of ['int64', 'int32'] as const) {
    const encoder = await createTextEncoder(bundleOf({ text: await writeModel(textGraph({ idType })) }), { ...cpu, padId: PAD, padding: 'longest' });
    try {
      assert.equal(encoder.embeddingDim, DIM);
      assert.equal(encoder.contextLength, 77);
      assert.match(encoder.describe(), new RegExp(`input_ids ${idType} \\[batch,sequence\\]`));
      const longest = Math.max(...PROMPTS.map((row) => row.length));
      const expected = concat(PROMPTS.map((row) => expectedTextEmbedding(row, PAD, longest - row.length)));
      assertClose(await encoder.encode(PROMPTS), expected, 1e-5);
    } finally {
      await encoder.release();
    }
  }
});

test('text encoder: a fixed sequence axis is padded to its length, a fixed batch is filled row by row', async () => {
  const encoder = await createTextEncoder(bundleOf({ text: await writeModel(textGraph({ idType: 'int32', batch: 1, length: 8, idName: 'text' })) }), { ...cpu, padId: PAD, padding: 'longest' });
  try {
    assert.equal(encoder.contextLength, 8);
    const expected = concat(PROMPTS.map((row) => expectedTextEmbedding(row, PAD, 8 - row.length)));
    assertClose(await encoder.encode(PROMPTS), expected, 1e-5);
    await assert.rejects(encoder.encode([[1, 2, 3, 4, 5, 6, 7, 8, 9]]), /model-\d+\.onnx: a prompt has 9 tokens but the model takes at most 8/);
  } finally {
    await encoder.release();
  }
});

test('text encoder: attention_mask is fed with 1 over each prompt and 0 over its padding', async () => {
  for (const length of ['sequence', 12]) {
    const encoder = await createTextEncoder(bundleOf({ text: await writeModel(textGraph({ mask: true, length })) }), { ...cpu, padId: PAD, padding: 'longest' });
    try {
      assert.match(encoder.describe(), /\+ attention_mask int64/);
      // With the mask, padding adds nothing: each prompt's embedding is its own tokens' sum.
      const expected = concat(PROMPTS.map((row) => expectedTextEmbedding(row, PAD, 0)));
      assertClose(await encoder.encode(PROMPTS), expected, 1e-5);
    } finally {
      await encoder.release();
    }
  }
});

test('text encoder: a model without integer ids cannot be mapped', async () => {
  const imageModel = await writeModel(imageGraph());
  await assert.rejects(
    createTextEncoder(bundleOf({ text: imageModel }), { ...cpu, padId: 0, padding: 'longest' }),
    (error: unknown) => error instanceof ClipEvalError && /cannot find an integer token-id input \[N,S\] among the model's inputs: pixel_values float32/.test(error.message),
  );
});

test('encoders: the two embedding sizes must agree', async () => {
  const image = await createImageEncoder(bundleOf({ vision: await writeModel(imageGraph()) }), cpu);
  const text = await createTextEncoder(bundleOf({ text: await writeModel(textGraph()) }), { ...cpu, padId: 0, padding: 'longest' });
  try {
    assert.doesNotThrow(() => assertEmbeddingDimsMatch(bundleOf({ vision: 'v.onnx', text: 't.onnx' }), image.embeddingDim, text.embeddingDim));
    assert.throws(
      () => assertEmbeddingDimsMatch(bundleOf({ vision: 'v.onnx', text: 't.onnx' }), image.embeddingDim, 512),
      /v\.onnx gives 5-dimensional image embeddings but t\.onnx gives 512-dimensional text embeddings/,
    );
  } finally {
    await Promise.all([image.release(), text.release()]);
  }
});

test('pattern CLIP: padding to the longest prompt gives the embeddings of padding to 77, in both layouts', async () => {
  const table = buildPatternTable(DEFAULT_SEED);
  const { startOfTextId: sot, endOfTextId: eot, wordIds } = table.vocabulary;
  const words = [['apple'], ['a', 'photo', 'of', 'a', 'maple', 'tree', '.'], ['lawn', 'mower']];
  const prompts = words.map((row) => [sot, ...row.map((w) => wordIds.get(w)!), eot]);
  const padded77 = prompts.map((row) => [...row, ...Array<number>(77 - row.length).fill(eot)]);
  const results: Float32Array[] = [];
  for (const layout of ['hf', 'immich'] as const) {
    const folder = join(dir, `pattern-${layout}`);
    await writePatternClip(folder, { layout, variants: false });
    const bundle = await resolveModelBundle({ model: folder, cacheRoot: join(dir, 'cache'), needVision: false });
    const encoder = await createTextEncoder(bundle, { ...cpu, padId: eot, padding: 'longest' });
    try {
      assert.equal(encoder.embeddingDim, EMBED_DIM);
      const short = await encoder.encode(prompts);
      assertClose(short, await encoder.encode(padded77), 1e-6);
      results.push(short);
    } finally {
      await encoder.release();
    }
  }
  assertClose(results[0]!, results[1]!, 1e-6);
});

test('float16: conversion matches onnxruntime Cast (round to nearest even) both ways', async () => {
  const cast = (from: 'float32' | 'float16', to: 'float32' | 'float16'): OnnxGraph => ({
    name: 'cast',
    inputs: [{ name: 'x', type: from, shape: ['n'] }],
    outputs: [{ name: 'y', type: to, shape: ['n'] }],
    initializers: [],
    nodes: [{ op: 'Cast', inputs: ['x'], outputs: ['y'], attributes: { to: { int: to === 'float16' ? 10 : 1 } } }],
  });
  const down = await createSession(await writeModel(cast('float32', 'float16')), cpu);
  const up = await createSession(await writeModel(cast('float16', 'float32')), cpu);
  try {
    // Edge cases (ties, subnormals, overflow, signed zero, infinities) and a sweep across the range.
    const edges = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e6, -1e6, 2 ** -14, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 6.1e-5, Infinity, -Infinity];
    const sweep = Array.from({ length: 20000 }, (_, i) => Math.sign(Math.sin(i)) * 2 ** (((i * 7919) % 4000) / 100 - 26) * (1 + ((i * 104729) % 1000) / 1000));
    const values = Float32Array.from([...edges, ...sweep]);
    const ortBits = (await down.run({ x: new ort.Tensor('float32', values, [values.length]) })).y!.data as Uint16Array;
    assert.deepEqual(toFloat16Array(values), Uint16Array.from(ortBits));

    const allBits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const ortFloats = (await up.run({ x: new ort.Tensor('float16', allBits, [allBits.length]) })).y!.data as Float32Array;
    const ours = fromFloat16Array(allBits);
    for (let i = 0; i < allBits.length; i += 1) {
      if (Number.isNaN(ortFloats[i])) assert.ok(Number.isNaN(ours[i]), `bits ${i}`);
      else assert.equal(ours[i], ortFloats[i], `bits ${i.toString(16)}`);
    }
    assert.ok(Number.isNaN(float16BitsToFloat32(toFloat16Array(Float32Array.of(NaN))[0]!)));
  } finally {
    await Promise.all([down.release(), up.release()]);
  }
});

test('session: a file that is not ONNX fails with one line naming it', async () => {
  const path = join(dir, 'broken.onnx');
  await writeFile(path, 'this is not a protobuf');
  await assert.rejects(createSession(path, cpu), (error: unknown) => {
    assert.ok(error instanceof ClipEvalError);
    assert.equal(error.message, `${path}: cannot load this ONNX model (Protobuf parsing failed.)`);
    return true;
  });
  await assert.rejects(createSession(join(dir, 'absent.onnx'), cpu), /absent\.onnx: ONNX model file not found/);
});

test('session: --device cuda without the CUDA provider is an error naming what is missing, never a CPU run', async () => {
  const model = await writeModel(imageGraph());
  const result = await createSession(model, { device: 'cuda' }).then(
    async (session) => {
      await session.release();
      return undefined;
    },
    (error: unknown) => error,
  );
  if (result === undefined) return; // a machine with CUDA set up: the session really is on the GPU
  assert.ok(result instanceof ClipEvalError, String(result));
  assert.match(result.message, /^device cuda: /);
  assert.match(result.message, /libonnxruntime_providers_\w+\.so is missing\); run "npm run setup:cuda"|CUDA\/cuDNN library lib\w+|no usable CUDA GPU|CUDA provider failed to load/);
  assert.doesNotMatch(result.message, /\n/);
});

test('session: --device webgpu without a GPU adapter is a one-line error', async () => {
  const model = await writeModel(imageGraph());
  const result = await createSession(model, { device: 'webgpu' }).then(
    async (session) => {
      await session.release();
      return undefined;
    },
    (error: unknown) => error,
  );
  if (result === undefined) return; // a machine with a WebGPU adapter
  assert.ok(result instanceof ClipEvalError, String(result));
  assert.match(result.message, /^device webgpu: .*; use the cpu device$/);
  assert.doesNotMatch(result.message, /\n/);
});

test('session: device and thread options are validated', async () => {
  assert.equal(parseDevice('cuda'), 'cuda');
  assert.throws(() => parseDevice('gpu'), /: device: unknown device "gpu"; use cpu, cuda or webgpu$/);
  const model = await writeModel(imageGraph());
  await assert.rejects(createSession(model, { device: 'cpu', threads: 0 }), /: threads: expected a whole number of at least 1/);
  await assert.rejects(createSession(model, { device: 'webgpu', deviceId: 1 }), /: device id: applies to the cuda device only/);
});
