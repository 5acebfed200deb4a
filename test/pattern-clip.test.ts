import { Tokenizer } from '@huggingface/tokenizers';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import * as tar from 'tar';
import { encodeOnnxModel, toFloat16Bits, type OnnxGraph } from '../scripts/lib/onnx-writer.js';
import {
  CIFAR100_CLEAN_NAMES,
  CIFAR100_COARSE_NAMES,
  CIFAR100_FINE_TO_COARSE,
  CIFAR100_RAW_NAMES,
  CIFAR10_NAMES,
  EMBED_DIM,
  FIXTURE_WORDS,
  IMAGE_SIZE,
  OPENAI_CIFAR_TEMPLATES,
  OPENAI_MEAN,
  OPENAI_STD,
  buildPatternTable,
  classPattern,
  drawPatternCifar,
  writePatternCifarArchive,
  writePatternClip,
  type PatternClipResult,
} from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { makeTempDir, needsShared, repoRoot, sharedPath } from './support/paths.js';

const SEED = 7;
const SIDE = 32;
const UPSCALE = IMAGE_SIZE / SIDE;
const sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

let workDir: string;
let hfDir: string;
let hf: PatternClipResult;

before(async () => {
  workDir = await makeTempDir('clip-eval-pattern-');
  hfDir = join(workDir, 'hf');
  hf = await writePatternClip(hfDir, { seed: SEED });
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => relative(dir, join(entry.parentPath, entry.name))).sort();
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

async function loadTokenizer(dir: string): Promise<Tokenizer> {
  return new Tokenizer(await readJson(join(dir, 'tokenizer.json')), await readJson(join(dir, 'tokenizer_config.json')));
}

async function runSingleOutput(modelPath: string, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(modelPath, sessionOptions);
  try {
    const outputs = await session.run(feeds);
    return outputs[session.outputNames[0]];
  } finally {
    await session.release();
  }
}

/** Σ of table rows per sequence, in float64, independent of the model. */
function sumRows(table: Float32Array, sequences: number[][]): Float64Array {
  const sums = new Float64Array(sequences.length * EMBED_DIM);
  sequences.forEach((ids, row) => {
    for (const id of ids) for (let i = 0; i < EMBED_DIM; i++) sums[row * EMBED_DIM + i] += table[id * EMBED_DIM + i];
  });
  return sums;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let largest = 0;
  for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i] - b[i]));
  return largest;
}

function l2Normalized(vector: ArrayLike<number>): Float64Array {
  const norm = Math.hypot(...Array.from(vector));
  return Float64Array.from(vector, (value) => value / norm);
}

/** Crude preprocessing for the sanity check: nearest 7× upscale of each 32×32 record, then OpenAI normalisation. */
function pixelTensor(records: Uint8Array, headerBytes: number, first: number, count: number): ort.Tensor {
  const recordBytes = headerBytes + 3 * SIDE * SIDE;
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const data = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n++) {
    const record = (first + n) * recordBytes + headerBytes;
    for (let c = 0; c < 3; c++) {
      const out = (n * 3 + c) * plane;
      for (let y = 0; y < IMAGE_SIZE; y++) {
        for (let x = 0; x < IMAGE_SIZE; x++) {
          const byte = records[record + c * SIDE * SIDE + Math.floor(y / UPSCALE) * SIDE + Math.floor(x / UPSCALE)];
          data[out + y * IMAGE_SIZE + x] = (byte / 255 - OPENAI_MEAN[c]) / OPENAI_STD[c];
        }
      }
    }
  }
  return new ort.Tensor('float32', data, [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
}

async function imageEmbeddings(modelPath: string, records: Uint8Array, headerBytes: number, count: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(modelPath, sessionOptions);
  try {
    const embeddings = new Float32Array(count * EMBED_DIM);
    const batch = 50;
    for (let first = 0; first < count; first += batch) {
      const size = Math.min(batch, count - first);
      const output = (await session.run({ pixel_values: pixelTensor(records, headerBytes, first, size) })).image_embeds!;
      assert.deepEqual(output.dims, [size, EMBED_DIM]);
      embeddings.set(output.data as Float32Array, first * EMBED_DIM);
    }
    return embeddings;
  } finally {
    await session.release();
  }
}

/** Index of the class whose embedding has the largest cosine with each image. */
function nearestClasses(images: Float32Array, classes: ArrayLike<number>[]): number[] {
  const classUnits = classes.map(l2Normalized);
  const predictions: number[] = [];
  for (let row = 0; row < images.length / EMBED_DIM; row++) {
    const image = l2Normalized(images.subarray(row * EMBED_DIM, (row + 1) * EMBED_DIM));
    let best = -1;
    let bestScore = -Infinity;
    classUnits.forEach((unit, k) => {
      let score = 0;
      for (let i = 0; i < EMBED_DIM; i++) score += image[i] * unit[i];
      if (score > bestScore) [best, bestScore] = [k, score];
    });
    predictions.push(best);
  }
  return predictions;
}

function accuracy(predictions: number[], labels: ArrayLike<number>): number {
  return predictions.filter((prediction, i) => prediction === labels[i]).length / predictions.length;
}

test('the same seed gives byte-identical files; another seed changes only the table', async () => {
  const again = join(workDir, 'hf-again');
  const other = join(workDir, 'hf-other');
  await writePatternClip(again, { seed: SEED });
  await writePatternClip(other, { seed: SEED + 1 });
  const files = await listFiles(hfDir);
  assert.deepEqual(files, [
    'config.json', 'onnx/text_model.onnx', 'onnx/text_model_quantized.onnx', 'onnx/vision_model.onnx',
    'onnx/vision_model_quantized.onnx', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json',
  ]);
  assert.deepEqual(await listFiles(again), files);
  for (const file of files) {
    assert.ok((await readFile(join(hfDir, file))).equals(await readFile(join(again, file))), `${file} differs between runs`);
  }
  const textModel = 'onnx/text_model.onnx';
  assert.ok(!(await readFile(join(hfDir, textModel))).equals(await readFile(join(other, textModel))), 'the seed must change the table');
  const visionModel = 'onnx/vision_model.onnx';
  assert.ok((await readFile(join(hfDir, visionModel))).equals(await readFile(join(other, visionModel))));

  const first = drawPatternCifar({ name: 'cifar100', perClass: 2, seed: SEED });
  assert.deepEqual(drawPatternCifar({ name: 'cifar100', perClass: 2, seed: SEED }), first);
  assert.notDeepEqual(drawPatternCifar({ name: 'cifar100', perClass: 2, seed: SEED + 1 }).records, first.records);
});

test('the bundle files describe the model the way Hugging Face CLIP exports do', async () => {
  const config = await readJson(join(hfDir, 'config.json'));
  assert.equal(config.model_type, 'clip');
  assert.equal(config.projection_dim, EMBED_DIM);
  const textConfig = config.text_config as Record<string, unknown>;
  assert.equal(textConfig.max_position_embeddings, 77);
  assert.equal(textConfig.vocab_size, hf.vocabSize);
  assert.equal(hf.tokenEmbeddings.length, hf.vocabSize * EMBED_DIM);
  const preprocessor = await readJson(join(hfDir, 'preprocessor_config.json'));
  assert.deepEqual(preprocessor.size, { shortest_edge: 224 });
  assert.equal(preprocessor.crop_size, 224);
  assert.equal(preprocessor.resample, 3);
  assert.deepEqual(preprocessor.image_mean, OPENAI_MEAN);
  assert.deepEqual(preprocessor.image_std, OPENAI_STD);
  const tokenizerConfig = await readJson(join(hfDir, 'tokenizer_config.json'));
  assert.equal(tokenizerConfig.pad_token, '<|endoftext|>');
  assert.equal(tokenizerConfig.model_max_length, 77);
});

test('the text model sums the table rows of its ids (batch and sequence are symbolic)', async () => {
  const modelPath = join(hfDir, 'onnx/text_model.onnx');
  const session = await ort.InferenceSession.create(modelPath, sessionOptions);
  try {
    assert.deepEqual(session.inputMetadata, [{ name: 'input_ids', isTensor: true, type: 'int64', shape: ['batch_size', 'sequence_length'] }]);
    const table = buildPatternTable(SEED);
    assert.deepEqual(table.tokenEmbeddings, hf.tokenEmbeddings);
    const { startOfTextId: sot, endOfTextId: eot } = table.vocabulary;
    const word = (w: string) => table.vocabulary.wordIds.get(w)!;
    const sequences = [
      [sot, word('a'), word('photo'), word('of'), word('a'), word('maple'), word('tree'), word('.'), eot],
      [sot, word('apple'), eot, eot, eot, eot, eot, eot, eot],
      [sot, 3, 300, 700, hf.vocabSize - 3, word('worm'), word('truck'), word('the'), eot],
    ];
    for (const length of [9, 5]) {
      const cut = sequences.map((ids) => ids.slice(0, length));
      const ids = new ort.Tensor('int64', BigInt64Array.from(cut.flat(), BigInt), [cut.length, length]);
      const { text_embeds: output } = await session.run({ input_ids: ids });
      assert.deepEqual(output.dims, [cut.length, EMBED_DIM]);
      assert.ok(maxAbsDifference(output.data as Float32Array, sumRows(hf.tokenEmbeddings, cut)) < 1e-5);
    }
  } finally {
    await session.release();
  }
});

test('the vision model averages 28×28 cells and undoes the normalisation', async () => {
  const count = 2;
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const pixels = Float32Array.from({ length: count * 3 * plane }, (_, i) => Math.sin(i * 0.37) * 2 + (i % 7) * 0.1);
  const output = await runSingleOutput(join(hfDir, 'onnx/vision_model.onnx'), {
    pixel_values: new ort.Tensor('float32', pixels, [count, 3, IMAGE_SIZE, IMAGE_SIZE]),
  });
  assert.deepEqual(output.dims, [count, EMBED_DIM]);
  const expected = new Float64Array(count * EMBED_DIM);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < IMAGE_SIZE; y++) {
        for (let x = 0; x < IMAGE_SIZE; x++) {
          const cell = n * EMBED_DIM + c * 64 + Math.floor(y / 28) * 8 + Math.floor(x / 28);
          expected[cell] += pixels[(n * 3 + c) * plane + y * IMAGE_SIZE + x] / (28 * 28);
        }
      }
      for (let i = 0; i < 64; i++) {
        const cell = n * EMBED_DIM + c * 64 + i;
        expected[cell] = expected[cell] * OPENAI_STD[c] + OPENAI_MEAN[c] - 0.5;
      }
    }
  }
  assert.ok(maxAbsDifference(output.data as Float32Array, expected) < 1e-5);
});

test('every fixture word is exactly one token of the fixture tokenizer', async () => {
  const tokenizer = await loadTokenizer(hfDir);
  const { vocabulary } = buildPatternTable(SEED);
  const { startOfTextId: sot, endOfTextId: eot } = vocabulary;
  assert.equal(eot, hf.vocabSize - 1);
  assert.equal(sot, hf.vocabSize - 2);
  for (const word of FIXTURE_WORDS) {
    assert.deepEqual(tokenizer.encode(word).ids, [sot, vocabulary.wordIds.get(word), eot], `"${word}" is not one token`);
  }
  assert.equal(new Set(vocabulary.wordIds.values()).size, FIXTURE_WORDS.length);
  for (const name of [...CIFAR100_CLEAN_NAMES, ...CIFAR10_NAMES]) {
    const words = name.split(' ');
    for (const template of OPENAI_CIFAR_TEMPLATES) {
      const prompt = template.replace('{}', name);
      const expectedIds = prompt.replace('.', ' .').split(' ').map((w) => vocabulary.wordIds.get(w));
      assert.deepEqual(tokenizer.encode(prompt).ids, [sot, ...expectedIds, eot], prompt);
    }
    assert.ok(words.every((w) => FIXTURE_WORDS.includes(w)));
  }
  const unknown = tokenizer.encode('Zyxwvut qqq!');
  assert.ok(unknown.ids.length > 4, 'unknown words fall back to smaller pieces');
  assert.ok(unknown.ids.slice(1, -1).every((id: number) => id !== sot && id !== eot));
  assert.equal(tokenizer.decode(unknown.ids, { skip_special_tokens: true }).trim(), 'zyxwvut qqq!');
});

test('zero-shot by nearest class pattern: ≥ 95% correct, ≤ 5% with the class order permuted', async () => {
  const table = buildPatternTable(SEED);
  const cases = [
    { name: 'cifar100' as const, perClass: 3, headerBytes: 2, classNames: CIFAR100_CLEAN_NAMES },
    { name: 'cifar10' as const, perClass: 10, headerBytes: 1, classNames: CIFAR10_NAMES },
  ];
  for (const { name, perClass, headerBytes, classNames } of cases) {
    const { records, labels, count } = drawPatternCifar({ name, perClass, seed: SEED });
    const images = await imageEmbeddings(join(hfDir, 'onnx/vision_model.onnx'), records, headerBytes, count);
    const patterns = classNames.map((className) => classPattern(table, className));
    const predictions = nearestClasses(images, patterns);
    const correct = accuracy(predictions, labels);
    const permuted = accuracy(nearestClasses(images, patterns.map((_, k) => patterns[(k + 1) % patterns.length])), labels);
    assert.ok(correct >= 0.95, `${name}: ${(correct * 100).toFixed(1)}% correct`);
    assert.ok(permuted <= 0.05, `${name} permuted: ${(permuted * 100).toFixed(1)}% correct`);
  }
});

test('the text model and tokenizer classify the synthetic images; the int8 variants classify them the same', async () => {
  const tokenizer = await loadTokenizer(hfDir);
  const prompts = CIFAR100_CLEAN_NAMES.map((name) => tokenizer.encode(`a photo of a ${name}.`).ids);
  const length = Math.max(...prompts.map((ids) => ids.length));
  const eot = hf.vocabSize - 1;
  const padded = prompts.flatMap((ids) => [...ids, ...Array(length - ids.length).fill(eot)]);
  const inputIds = new ort.Tensor('int64', BigInt64Array.from(padded, BigInt), [prompts.length, length]);
  const { records, labels, count } = drawPatternCifar({ name: 'cifar100', perClass: 2, seed: SEED });

  const predictionsOf = async (suffix: string) => {
    const text = await runSingleOutput(join(hfDir, `onnx/text_model${suffix}.onnx`), { input_ids: inputIds });
    const classes = Array.from({ length: prompts.length }, (_, k) => (text.data as Float32Array).subarray(k * EMBED_DIM, (k + 1) * EMBED_DIM));
    const images = await imageEmbeddings(join(hfDir, `onnx/vision_model${suffix}.onnx`), records, 2, count);
    return { text: text.data as Float32Array, images, predictions: nearestClasses(images, classes) };
  };
  const full = await predictionsOf('');
  const int8 = await predictionsOf('_quantized');
  assert.ok(accuracy(full.predictions, labels) >= 0.95, `fp32 prompts: ${accuracy(full.predictions, labels)}`);
  assert.deepEqual(int8.predictions, full.predictions);
  const textDifference = maxAbsDifference(int8.text, full.text);
  const imageDifference = maxAbsDifference(int8.images, full.images);
  assert.ok(textDifference > 1e-4 && textDifference < 0.1, `int8 text embeddings differ by ${textDifference}`);
  assert.ok(imageDifference > 1e-5 && imageDifference < 0.02, `int8 image embeddings differ by ${imageDifference}`);
});

test('the synthetic archives hold the drawn records and the official label files', async () => {
  const archive = join(workDir, 'cifar-100-binary.tar.gz');
  await writePatternCifarArchive(archive, { name: 'cifar100', perClass: 2, seed: SEED });
  const archive10 = join(workDir, 'cifar-10-binary.tar.gz');
  await writePatternCifarArchive(archive10, { name: 'cifar10', perClass: 3, seed: SEED });
  const extracted = join(workDir, 'extracted');
  await rm(extracted, { recursive: true, force: true });
  await mkdir(extracted);
  await tar.x({ file: archive, cwd: extracted });
  await tar.x({ file: archive10, cwd: extracted });

  const drawn = drawPatternCifar({ name: 'cifar100', perClass: 2, seed: SEED });
  assert.equal(drawn.count, 200);
  const testBin = await readFile(join(extracted, 'cifar-100-binary/test.bin'));
  assert.ok(testBin.equals(Buffer.from(drawn.records)));
  assert.equal(await readFile(join(extracted, 'cifar-100-binary/fine_label_names.txt'), 'utf8'), `${CIFAR100_RAW_NAMES.join('\n')}\n`);
  assert.equal(await readFile(join(extracted, 'cifar-100-binary/coarse_label_names.txt'), 'utf8'), `${CIFAR100_COARSE_NAMES.join('\n')}\n`);
  const perClass = new Array(100).fill(0);
  for (let i = 0; i < drawn.count; i++) {
    const [coarse, fine] = [testBin[i * 3074], testBin[i * 3074 + 1]];
    assert.equal(fine, drawn.labels[i]);
    assert.equal(coarse, CIFAR100_FINE_TO_COARSE[fine]);
    perClass[fine]++;
  }
  assert.ok(perClass.every((n) => n === 2));
  assert.ok(new Set(drawn.labels.subarray(0, 10)).size > 5, 'classes interleave');
  const coarseSizes = new Array(20).fill(0);
  for (const coarse of CIFAR100_FINE_TO_COARSE) coarseSizes[coarse]++;
  assert.ok(coarseSizes.every((n) => n === 5), 'each super-class has five classes');
  assert.ok(CIFAR100_RAW_NAMES.includes('aquarium_fish') && CIFAR100_CLEAN_NAMES.includes('aquarium fish'));

  const drawn10 = drawPatternCifar({ name: 'cifar10', perClass: 3, seed: SEED });
  const testBatch = await readFile(join(extracted, 'cifar-10-batches-bin/test_batch.bin'));
  assert.equal(testBatch.length, 30 * 3073);
  assert.ok(testBatch.equals(Buffer.from(drawn10.records)));
  assert.equal(await readFile(join(extracted, 'cifar-10-batches-bin/batches.meta.txt'), 'utf8'), `${CIFAR10_NAMES.join('\n')}\n\n`);
  assert.throws(() => drawPatternCifar({ name: 'cifar100', perClass: 0 }), /per-class count 0/);
  assert.throws(() => drawPatternCifar({ name: 'cifar100', seed: -1 }), /seed -1/);
});

test('the Immich layout: fixed shapes, int32 text input, L2-normalised embeddings', async () => {
  const dir = join(workDir, 'immich');
  await writePatternClip(dir, { layout: 'immich', seed: SEED });
  assert.deepEqual(await listFiles(dir), [
    'config.json', 'textual/model.onnx', 'textual/tokenizer.json', 'textual/tokenizer_config.json',
    'visual/model.onnx', 'visual/preprocess_cfg.json',
  ]);
  const config = await readJson(join(dir, 'config.json'));
  assert.equal(config.embed_dim, EMBED_DIM);
  assert.deepEqual(config.text_cfg, { context_length: 77, vocab_size: hf.vocabSize, width: EMBED_DIM, heads: 1, layers: 0 });
  const preprocess = await readJson(join(dir, 'visual/preprocess_cfg.json'));
  assert.deepEqual(preprocess.size, [224, 224]);
  assert.equal(preprocess.interpolation, 'bicubic');

  const textual = await ort.InferenceSession.create(join(dir, 'textual/model.onnx'), sessionOptions);
  const visual = await ort.InferenceSession.create(join(dir, 'visual/model.onnx'), sessionOptions);
  try {
    assert.deepEqual(textual.inputMetadata, [{ name: 'text', isTensor: true, type: 'int32', shape: [1, 77] }]);
    assert.deepEqual(textual.outputMetadata, [{ name: 'embedding', isTensor: true, type: 'float32', shape: [1, EMBED_DIM] }]);
    assert.deepEqual(visual.inputMetadata, [{ name: 'image', isTensor: true, type: 'float32', shape: [1, 3, 224, 224] }]);

    const tokenizer = new Tokenizer(await readJson(join(dir, 'textual/tokenizer.json')), await readJson(join(dir, 'textual/tokenizer_config.json')));
    const ids = tokenizer.encode('a photo of a lawn mower.').ids;
    const padded = [...ids, ...Array(77 - ids.length).fill(hf.vocabSize - 1)];
    const { embedding } = await textual.run({ text: new ort.Tensor('int32', Int32Array.from(padded), [1, 77]) });
    assert.ok(maxAbsDifference(embedding.data as Float32Array, l2Normalized(sumRows(hf.tokenEmbeddings, [ids]))) < 1e-6);
    await assert.rejects(textual.run({ text: new ort.Tensor('int32', new Int32Array(2 * 77), [2, 77]) }));

    const { records } = drawPatternCifar({ name: 'cifar10', perClass: 1, seed: SEED });
    const pixels = pixelTensor(records, 1, 0, 1);
    const { embedding: image } = await visual.run({ image: pixels });
    const unnormalized = await runSingleOutput(join(hfDir, 'onnx/vision_model.onnx'), { pixel_values: pixels });
    assert.ok(maxAbsDifference(image.data as Float32Array, l2Normalized(unnormalized.data as Float32Array)) < 1e-6);
    assert.ok(Math.abs(Math.hypot(...(image.data as Float32Array)) - 1) < 1e-5);
  } finally {
    await textual.release();
    await visual.release();
  }
});

test('the ONNX writer encodes every attribute kind and initializer type it offers', async () => {
  const int64 = (name: string, values: bigint[]) => ({ name, type: 'int64' as const, dims: [values.length], data: BigInt64Array.from(values) });
  const graph: OnnxGraph = {
    name: 'writer_check',
    inputs: [{ name: 'x', type: 'float32', shape: [1, 'width'] }],
    outputs: [{ name: 'y', type: 'float32', shape: [1, 'out_width'] }, { name: 'z', type: 'int64', shape: [4] }],
    initializers: [
      { name: 'halves', type: 'float16', dims: [1, 2], data: Uint16Array.from([1.5, -0.25].map(toFloat16Bits)) },
      { name: 'int32s', type: 'int32', dims: [1, 1], data: Int32Array.of(-7) },
      int64('pads', [0n, 1n, 0n, 2n]),
      int64('slice_start', [3n]),
      int64('slice_end', [4n]),
      int64('axis_zero', [0n]),
    ],
    nodes: [
      { op: 'Pad', inputs: ['x', 'pads'], outputs: ['padded'], attributes: { mode: { string: 'edge' } } },
      { op: 'Cast', inputs: ['halves'], outputs: ['halves_f32'], attributes: { to: { int: 1 } } },
      { op: 'Cast', inputs: ['int32s'], outputs: ['int32s_f32'], attributes: { to: { int: 1 } } },
      { op: 'Constant', inputs: [], outputs: ['floats'], attributes: { value_floats: { floats: [0.5, 2] } } },
      { op: 'Constant', inputs: [], outputs: ['row_shape'], attributes: { value_ints: { ints: [1, -1] } } },
      { op: 'Reshape', inputs: ['floats', 'row_shape'], outputs: ['floats_row'] },
      {
        op: 'Constant', inputs: [], outputs: ['tensor_constant'], name: 'tensor_attribute',
        attributes: { value: { tensor: { name: 'c', type: 'float32', dims: [1, 1], data: Float32Array.of(9.25) } } },
      },
      {
        op: 'Concat', inputs: ['padded', 'halves_f32', 'int32s_f32', 'floats_row', 'tensor_constant'], outputs: ['joined'],
        attributes: { axis: { int: -1 } },
      },
      { op: 'Constant', inputs: [], outputs: ['scale'], attributes: { value_float: { float: 3 } } },
      { op: 'Mul', inputs: ['joined', 'scale'], outputs: ['y'] },
      { op: 'Shape', inputs: ['y'], outputs: ['y_shape'] },
      { op: 'Slice', inputs: ['pads', 'slice_start', 'slice_end'], outputs: ['pads_tail'] },
      { op: 'Constant', inputs: [], outputs: ['big'], attributes: { value_int: { int: -123456789012 } } },
      { op: 'Unsqueeze', inputs: ['big', 'axis_zero'], outputs: ['big_1d'] },
      { op: 'Concat', inputs: ['y_shape', 'pads_tail', 'big_1d'], outputs: ['z'], attributes: { axis: { int: 0 } } },
    ],
  };
  const modelPath = join(workDir, 'writer-check.onnx');
  await writeFile(modelPath, encodeOnnxModel(graph, { producer: 'test' }));
  const session = await ort.InferenceSession.create(modelPath, sessionOptions);
  try {
    const outputs = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [1, 2]) });
    assert.deepEqual(Array.from(outputs.y.data as Float32Array), [1, 1, 2, 2, 2, 1.5, -0.25, -7, 0.5, 2, 9.25].map((v) => v * 3));
    assert.deepEqual(Array.from(outputs.z.data as BigInt64Array), [1n, 11n, 2n, -123456789012n]);
  } finally {
    await session.release();
  }

  assert.equal(toFloat16Bits(1), 0x3c00);
  assert.equal(toFloat16Bits(-2), 0xc000);
  assert.equal(toFloat16Bits(65504), 0x7bff);
  assert.equal(toFloat16Bits(1e6), 0x7c00);
  assert.equal(toFloat16Bits(0.1), 0x2e66);
  assert.equal(toFloat16Bits(2 ** -24), 0x0001);
  assert.equal(toFloat16Bits(2 ** -26), 0);
  assert.equal(toFloat16Bits(Number.NaN) & 0x7e00, 0x7e00);
  const bad = (data: Float32Array | Int32Array) => encodeOnnxModel({
    name: 'bad', nodes: [], inputs: [], outputs: [],
    initializers: [{ name: 'w', type: 'float32', dims: [2, 2], data }],
  });
  assert.throws(() => bad(new Float32Array(3)), /tensor "w": dims \[2, 2\] hold 4 elements, data has 3/);
  assert.throws(() => bad(new Int32Array(4)), /tensor "w": float32 data must be a Float32Array/);
});

test('make-pattern-clip script: writes the bundle and archives; rejects bad flags with one line', async () => {
  const script = join(repoRoot, 'dist/scripts/make-pattern-clip.js');
  const run = promisify(execFile);
  const out = join(workDir, 'script-out');
  await run(process.execPath, [script, '--out', out, '--per-class', '1', '--seed', String(SEED), '--layout', 'immich']);
  assert.ok(existsSync(join(out, 'model/textual/model.onnx')));
  const archive = await readFile(join(out, 'cifar-100-binary.tar.gz'));
  assert.ok(archive.length > 100 * 3074 / 20, 'archive holds 100 records');
  for (const [args, message] of [
    [['--layout', 'tf'], /--out DIR is required/],
    [['--out', out, '--layout', 'tf'], /--layout tf: expected hf or immich/],
    [['--out', out, '--per-class', '0'], /--per-class 0: expected a whole number from 1 to 1000/],
    [['--out', out, '--seed', 'x'], /--seed x: expected a whole number/],
    [['--out', out, '--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    await assert.rejects(run(process.execPath, [script, ...args]), (error: { code?: number; stderr?: string }) => {
      const stderr = error.stderr ?? '';
      assert.equal(error.code, 2);
      assert.match(stderr, message);
      assert.equal(stderr.trim().split('\n').length, 1, 'one line');
      return true;
    });
  }
});

test('make-pattern-clip script: prints each archive\'s MD5, writes them extracted for --data-dir, and has --help', async () => {
  const script = join(repoRoot, 'dist/scripts/make-pattern-clip.js');
  const run = promisify(execFile);
  const out = join(workDir, 'script-md5');
  const { stdout } = await run(process.execPath, [script, '--out', out, '--per-class', '1']);
  for (const archive of ['cifar-100-binary.tar.gz', 'cifar-10-binary.tar.gz']) {
    const md5 = createHash('md5').update(await readFile(join(out, archive))).digest('hex');
    assert.match(stdout, new RegExp(`${archive} \\(\\d+ images\\)  md5 ${md5}$`, 'm'));
  }
  assert.ok(existsSync(join(out, 'data/cifar-100-binary/test.bin')) && existsSync(join(out, 'data/cifar-10-batches-bin/test_batch.bin')));
  const extracted = await runCli(['cifar100', '--model', join(out, 'model'), '--data-dir', join(out, 'data'), '--cache-dir', join(out, 'cache'), '--json', join(out, 'r.json'), '--quiet']);
  assert.equal(extracted.code, 0, extracted.stderr);
  assert.equal((JSON.parse(await readFile(join(out, 'r.json'), 'utf8')) as { dataset: { images: number } }).dataset.images, 100);
  const help = await run(process.execPath, [script, '--help']);
  for (const flag of ['--out', '--layout', '--per-class', '--seed', '--examples', '--help']) assert.ok(help.stdout.includes(flag), flag);
  await assert.rejects(run(process.execPath, [script, '--out', out, '--examples', '--seed', '2']), /--examples draws images for the default seed/);
});

test('fixture names, templates and tokenizer sections match the reference material', { skip: needsShared('reference/cifar100-prompts.json') }, async () => {
  const reference = await readJson(sharedPath('reference/cifar100-prompts.json'));
  assert.deepEqual(CIFAR100_CLEAN_NAMES, reference.classes);
  assert.deepEqual(OPENAI_CIFAR_TEMPLATES, reference.templates);
  const clip = await readJson(sharedPath('clip-tokenizer/tokenizer.json'));
  const ours = await readJson(join(hfDir, 'tokenizer.json'));
  for (const section of ['normalizer', 'pre_tokenizer', 'decoder', 'truncation', 'padding']) {
    assert.deepEqual(ours[section], clip[section], section);
  }
  const { sep, cls, ...restOurs } = ours.post_processor as Record<string, unknown>;
  const { sep: clipSep, cls: clipCls, ...restClip } = clip.post_processor as Record<string, unknown>;
  assert.deepEqual(restOurs, restClip);
  assert.equal((sep as unknown[])[0], (clipSep as unknown[])[0]);
  assert.equal((cls as unknown[])[0], (clipCls as unknown[])[0]);
  const { vocab, merges, ...modelRest } = ours.model as Record<string, unknown>;
  const { vocab: clipVocab, merges: clipMerges, ...clipModelRest } = clip.model as Record<string, unknown>;
  assert.deepEqual(modelRest, clipModelRest);
  const firstTokens = (v: unknown) => Object.entries(v as Record<string, number>).filter(([, id]) => id < 512).sort((a, b) => a[1] - b[1]);
  assert.deepEqual(firstTokens(vocab), firstTokens(clipVocab));
  assert.ok(Array.isArray(merges) && Array.isArray(clipMerges) && typeof merges[0] === typeof clipMerges[0]);
  // Prompts tokenise to the same number of tokens as with OpenAI's vocabulary (whole words in both).
  const tokenizer = await loadTokenizer(hfDir);
  const single = reference.single as number[][];
  CIFAR100_CLEAN_NAMES.forEach((name, k) => {
    const length = tokenizer.encode(`a photo of a ${name}.`).ids.length;
    assert.ok(length <= single[k].length, `${name}: ${length} tokens here, ${single[k].length} with OpenAI's vocabulary`);
  });
});
