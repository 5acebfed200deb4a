import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { createLogger } from '../src/core/log.js';
import { resolveModelBundle, type ModelBundle } from '../src/model/bundle.js';
import { createTextEncoder } from '../src/model/encoders.js';
import { zeroShotClassifier, type ZeroShotClassifierOptions } from '../src/text/classifier.js';
import { OPENAI_CIFAR_TEMPLATES, fillTemplate } from '../src/text/templates.js';
import { loadClipTokenizer, readPadTokenFromConfig, type ClipTokenizer } from '../src/text/tokenizer.js';
import { makeTempDir } from './support/paths.js';

/**
 * The zero-shot classifier on the pattern CLIP's real ONNX text model, checked against an independent
 * computation: the fixture's text model sums token-embedding rows, so each prompt's embedding can be
 * computed in plain JavaScript from the table and the token ids.
 */
let dir: string;
let bundle: ModelBundle;
let table: Float32Array;
let tokenizer: ClipTokenizer;
const DIM = 192;
const quietLogger = createLogger({ quiet: true, stream: { write: () => true } as unknown as NodeJS.WritableStream });

before(async () => {
  dir = await makeTempDir('clip-eval-classifier-');
  table = (await writePatternClip(join(dir, 'model'), { variants: false })).tokenEmbeddings;
  bundle = await resolveModelBundle({ model: join(dir, 'model'), cacheRoot: join(dir, 'cache'), needVision: false });
  tokenizer = await loadClipTokenizer(bundle.tokenizerPath, { padToken: await readPadTokenFromConfig(bundle.tokenizerConfigPath!) });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function normalised(vector: Float64Array): Float64Array {
  const length = Math.hypot(...vector);
  return vector.map((v) => v / length);
}

function expectedClassEmbedding(className: string, templates: readonly string[]): Float64Array {
  const sum = new Float64Array(DIM);
  for (const template of templates) {
    const prompt = new Float64Array(DIM);
    for (const id of tokenizer.encodeForModel(fillTemplate(template, className))) {
      for (let i = 0; i < DIM; i += 1) prompt[i]! += table[id * DIM + i]!;
    }
    normalised(prompt).forEach((v, i) => (sum[i]! += v));
  }
  return normalised(sum);
}

function options(overrides: Partial<ZeroShotClassifierOptions> & { opened: { count: number; tokenizerLoads?: number } }): ZeroShotClassifierOptions {
  return {
    classNames: ['apple', 'maple tree', 'sweet pepper'],
    templates: OPENAI_CIFAR_TEMPLATES,
    tokenizerPath: bundle.tokenizerPath,
    padToken: '<|endoftext|>',
    family: 'clip',
    loadTokenizer: async () => {
      overrides.opened.tokenizerLoads = (overrides.opened.tokenizerLoads ?? 0) + 1;
      return tokenizer;
    },
    openTextEncoder: (loaded) => {
      overrides.opened.count += 1;
      return createTextEncoder(bundle, { device: 'cpu', padId: loaded.padId, padding: 'longest' });
    },
    contextLength: bundle.contextLength,
    textModelPath: bundle.textModelPath,
    cacheRoot: join(dir, 'cache'),
    batchSize: 7,
    logger: quietLogger,
    quiet: true,
    ...overrides,
  };
}

test('class embeddings equal the normalise-average-normalise ensemble computed independently', async () => {
  const opened = { count: 0 };
  const classifier = await zeroShotClassifier(options({ opened, cacheRoot: undefined }));
  assert.equal(opened.count, 1);
  assert.equal(classifier.dim, DIM);
  classifier.classNames.forEach((name, c) => {
    const expected = expectedClassEmbedding(name, OPENAI_CIFAR_TEMPLATES);
    const actual = classifier.weights.subarray(c * DIM, (c + 1) * DIM);
    const worst = Math.max(...actual.map((v, i) => Math.abs(v - expected[i]!)));
    assert.ok(worst < 1e-5, `${name}: max difference ${worst}`);
  });
  // The ensemble differs measurably from a single template, so a skipped ensemble would show.
  const single = expectedClassEmbedding('apple', ['a photo of a {}.']);
  assert.ok(Math.max(...classifier.weights.subarray(0, DIM).map((v, i) => Math.abs(v - single[i]!))) > 1e-3);
});

test('cache: a miss then a hit that never opens the text encoder; templates, names and the model file invalidate it', async () => {
  const opened: { count: number; tokenizerLoads?: number } = { count: 0 };
  const first = await zeroShotClassifier(options({ opened }));
  assert.equal(first.cached, false);
  const second = await zeroShotClassifier(options({ opened }));
  assert.equal(second.cached, true);
  assert.equal(opened.count, 1, 'the hit did not open the text encoder');
  assert.equal(opened.tokenizerLoads, 1, 'the hit did not load the tokenizer');
  assert.deepEqual(Array.from(second.weights), Array.from(first.weights));

  await zeroShotClassifier(options({ opened, templates: ['a photo of a {}.'] }));
  assert.equal(opened.count, 2, 'other templates are another entry');
  await zeroShotClassifier(options({ opened, classNames: ['maple tree', 'apple', 'sweet pepper'] }));
  assert.equal(opened.count, 3, 'other class order is another entry');

  // A text model with other content (another seed's table) must not reuse the entry.
  const other = join(dir, 'other');
  await writePatternClip(other, { variants: false, seed: 7 });
  const otherBundle = await resolveModelBundle({ model: other, cacheRoot: join(dir, 'cache'), needVision: false });
  await writeFile(bundle.textModelPath, await readFile(otherBundle.textModelPath));
  const changed = await zeroShotClassifier(options({ opened }));
  assert.equal(changed.cached, false);
  assert.equal(opened.count, 4);
});
