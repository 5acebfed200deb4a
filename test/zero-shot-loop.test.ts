import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { drawPatternCifar, writePatternClip } from '../scripts/make-pattern-clip.js';
import { runZeroShot, type FillImage } from '../src/tasks/zero-shot/loop.js';
import { resolveModelBundle } from '../src/model/bundle.js';
import { createImageEncoder, l2NormaliseRows, type ImageEncoder } from '../src/model/encoders.js';
import { createCifarPreprocessor } from '../src/preprocess/transform.js';
import { makeTempDir } from './support/paths.js';

/**
 * The batch loop of runZeroShot on the pattern CLIP's real image encoder: one reused buffer for
 * synchronous fills, two alternating ones for asynchronous fills, and the same predictions either way
 * as one batch holding every image.
 */
let dir: string;
let encoder: ImageEncoder;
let fill: (i: number, out: Float32Array, offset: number) => void;
let weights: Float32Array;
const COUNT = 23;

before(async () => {
  dir = await makeTempDir('clip-eval-zero-shot-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  const bundle = await resolveModelBundle({ model: join(dir, 'model'), cacheRoot: join(dir, 'cache'), needText: false });
  encoder = await createImageEncoder(bundle, { device: 'cpu', threads: 1 });
  const { records } = drawPatternCifar({ name: 'cifar10', perClass: 3 });
  // drawPatternCifar's CIFAR-10 records carry one label byte before the 3072 pixel bytes.
  const images = new Uint8Array(COUNT * 3072);
  for (let i = 0; i < COUNT; i += 1) images.set(records.subarray(i * 3073 + 1, (i + 1) * 3073), i * 3072);
  const preprocess = createCifarPreprocessor(bundle.preprocess);
  fill = (i, out, offset) => preprocess(images, i, out, offset);
  // Ten seeded class directions are enough to rank: the loop's bookkeeping is under test, not the model.
  let state = 7;
  weights = l2NormaliseRows(Float32Array.from({ length: 10 * encoder.embeddingDim }, () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5), encoder.embeddingDim);
});

after(async () => {
  await encoder?.release();
  await rm(dir, { recursive: true, force: true });
});

async function predictions(batchSize: number, fillImage: FillImage) {
  const run = await runZeroShot({ encoder, weights, count: COUNT, fill: fillImage, batchSize, quiet: true });
  return run.predictions;
}

test('sync and async fills, batch sizes that do not divide the count: the same top-k as a single batch', async () => {
  const reference = await predictions(COUNT, fill);
  const seenBuffers = new Set<Float32Array>();
  const tracked: FillImage = (i, out, offset) => {
    seenBuffers.add(out);
    fill(i, out, offset);
  };
  for (const batchSize of [1, 5, 8]) {
    seenBuffers.clear();
    const sync = await predictions(batchSize, tracked);
    assert.deepEqual(sync.classes, reference.classes, `sync, batch ${batchSize}`);
    assert.deepEqual(sync.logits, reference.logits);
    assert.equal(seenBuffers.size, 1, 'synchronous fills reuse one buffer');

    seenBuffers.clear();
    const asynchronous = await predictions(batchSize, async (i, out, offset) => {
      await new Promise((resolve) => setImmediate(resolve));
      tracked(i, out, offset);
    });
    assert.deepEqual(asynchronous.classes, reference.classes, `async, batch ${batchSize}`);
    assert.deepEqual(asynchronous.logits, reference.logits);
    assert.equal(seenBuffers.size, 2, 'asynchronous fills alternate two buffers');
  }
});

test('a failing asynchronous fill rejects the run with its error', async () => {
  const failing: FillImage = async (i, out, offset) => {
    if (i === 12) throw new Error('image 12 is unreadable');
    fill(i, out, offset);
  };
  await assert.rejects(predictions(5, failing), /image 12 is unreadable/);
});

test('no images: an empty result without running the encoder', async () => {
  const run = await runZeroShot({ encoder, weights, count: 0, fill: () => assert.fail('no fill expected'), batchSize: 4, quiet: true });
  assert.equal(run.predictions.classes.length, 0);
});
