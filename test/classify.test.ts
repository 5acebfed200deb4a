import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { classifyImages, type ClassifyOptions } from '../src/tasks/zero-shot/classify.js';
import { CIFAR100_CLEAN_NAMES, CIFAR10_NAMES } from '../src/datasets/cifar/class-names.js';
import { ClipEvalError } from '../src/core/errors.js';
import { expandInputs, type ImageInput } from '../src/datasets/image-files.js';
import { defaultTemplateSpec, resolveLabels } from '../src/text/labels.js';
import { silentLogger } from '../src/core/log.js';
import { decodedBytes } from '../src/preprocess/decode.js';
import { MemoryBudget } from '../src/preprocess/memory-budget.js';
import {
  formatClassificationBlock,
  formatClassificationJson,
  formatClassificationTotals,
  labelColumnWidth,
} from '../src/report/classification.js';
import { isFailure, type ImageClassification, type LabelScore } from '../src/tasks/zero-shot/classification.js';
import { OPENAI_CIFAR_TEMPLATES, SINGLE_TEMPLATE } from '../src/text/templates.js';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { classImage, drawClassPixels, rotatedJpegWithExif } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

let dir: string;
let modelDir: string;
let cacheRoot: string;
const file = (name: string) => join(dir, name);

before(async () => {
  dir = await makeTempDir('clip-eval-classify-');
  modelDir = join(dir, 'model');
  cacheRoot = join(dir, 'cache');
  await writePatternClip(modelDir, { variants: false });
  await classImage('apple').png().toFile(file('apple.png'));
  await classImage('bicycle').jpeg({ quality: 90 }).toFile(file('bicycle.jpg'));
  await classImage('tulip').webp({ quality: 90 }).toFile(file('tulip.webp'));
  await writeFile(file('bicycle-exif6.jpg'), await rotatedJpegWithExif('bicycle'));
  const jpeg = await readFile(file('bicycle.jpg'));
  await writeFile(file('truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  await writeFile(file('empty.png'), '');
  await writeFile(file('notes.png'), 'not an image, despite the name\n');
  // Two classes drawn half and half: their logits are close, so neither probability is near 0 or 1.
  const [apple, tulip] = ['apple', 'tulip'].map((name) => drawClassPixels(name));
  const blend = Uint8Array.from(apple!, (value, i) => Math.round((value + tulip![i]!) / 2));
  await sharp(blend, { raw: { width: 320, height: 240, channels: 3 } }).png().toFile(file('blend.png'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(images: ImageInput[], overrides: Partial<ClassifyOptions> = {}): ClassifyOptions {
  return {
    images,
    labels: CIFAR100_CLEAN_NAMES,
    templates: SINGLE_TEMPLATE,
    model: { model: modelDir },
    cacheRoot,
    device: 'cpu',
    threads: 1,
    batchSize: 4,
    top: 5,
    textCache: true,
    imageCache: true,
    logger: silentLogger,
    quiet: true,
    ...overrides,
  };
}

function onDisk(...names: string[]): ImageInput[] {
  return names.map((name) => ({ file: file(name), path: file(name) }));
}

function top(result: ImageClassification | undefined): LabelScore[] {
  assert.ok(result && !isFailure(result), `expected a classification, got ${JSON.stringify(result)}`);
  return result.top;
}

test('labels: built-in sets, lists and @files; empty and duplicate labels are usage errors', async () => {
  const cifar100 = await resolveLabels('cifar100');
  assert.equal(cifar100.labels.length, 100);
  assert.equal(defaultTemplateSpec(cifar100), 'openai');
  assert.deepEqual((await resolveLabels('cifar10')).labels, CIFAR10_NAMES);
  const list = await resolveLabels(' cat, dog ,a red car');
  assert.deepEqual(list.labels, ['cat', 'dog', 'a red car']);
  assert.equal(defaultTemplateSpec(list), 'single');

  await writeFile(file('labels.txt'), 'golden retriever\r\n\n  tabby cat  \nfire truck\n');
  const fromFile = await resolveLabels(`@${file('labels.txt')}`);
  assert.deepEqual(fromFile.labels, ['golden retriever', 'tabby cat', 'fire truck']);
  assert.equal(fromFile.builtIn, false);

  const usage = (pattern: RegExp) => (error: unknown) => error instanceof ClipEvalError && error.kind === 'usage' && pattern.test(error.message);
  await assert.rejects(resolveLabels(''), usage(/no labels given/));
  await assert.rejects(resolveLabels(' , '), usage(/a label is empty/));
  await assert.rejects(resolveLabels('cat,,dog'), usage(/a label is empty/));
  await assert.rejects(resolveLabels('cat,dog,cat'), usage(/"cat" is listed twice/));
  await assert.rejects(resolveLabels('Red Car,red  car'), usage(/"Red Car" and "red  car" are the same to CLIP/));
  await assert.rejects(resolveLabels('@'), usage(/give a file name after @/));
  await writeFile(file('blank-labels.txt'), '\n  \n');
  await assert.rejects(resolveLabels(`@${file('blank-labels.txt')}`), usage(/blank-labels\.txt: no labels given/));
  await assert.rejects(
    resolveLabels(`@${file('missing.txt')}`),
    (error: unknown) => error instanceof ClipEvalError && error.kind === 'input' && /missing\.txt: cannot read the file \(ENOENT\)/.test(error.message),
  );
});

test('inputs: files as given, folders sorted naturally, --recursive, "-" read once', async () => {
  const root = join(dir, 'tree');
  await mkdir(join(root, 'sub', 'deeper'), { recursive: true });
  for (const name of ['img10.jpg', 'img2.PNG', 'img1.webp', 'readme.txt', '.hidden.jpg', 'sub/a.gif', 'sub/deeper/b.tiff']) {
    await writeFile(join(root, name), 'x');
  }
  await symlink(root, join(root, 'sub', 'loop'));
  const names = (inputs: ImageInput[]) => inputs.map((input) => input.file);

  assert.deepEqual(names(await expandInputs([root])), ['img1.webp', 'img2.PNG', 'img10.jpg'].map((name) => join(root, name)));
  assert.deepEqual(
    names(await expandInputs([root], { recursive: true })),
    ['img1.webp', 'img2.PNG', 'img10.jpg', 'sub/a.gif', 'sub/deeper/b.tiff'].map((name) => join(root, name)),
  );
  const mixed = await expandInputs([join(root, 'readme.txt'), 'missing.jpg', '-', join(root, 'sub')], { readStdin: async () => Uint8Array.of(1, 2) });
  assert.deepEqual(mixed, [
    { file: join(root, 'readme.txt'), path: join(root, 'readme.txt') },
    { file: 'missing.jpg', path: 'missing.jpg' },
    { file: '-', bytes: Uint8Array.of(1, 2) },
    { file: join(root, 'sub', 'a.gif'), path: join(root, 'sub', 'a.gif') },
  ]);

  await mkdir(join(root, 'empty'));
  const [empty] = await expandInputs([join(root, 'empty')]);
  assert.ok(empty && 'error' in empty && /empty: no image files .* in this folder$/.test(empty.error), JSON.stringify(empty));
  const [emptyTree] = await expandInputs([join(root, 'empty')], { recursive: true });
  assert.ok(emptyTree && 'error' in emptyTree && /in this folder or its subfolders$/.test(emptyTree.error), JSON.stringify(emptyTree));
  await mkdir(join(root, 'albums', '2023'), { recursive: true });
  await mkdir(join(root, 'albums', '2024'));
  const [onlySubfolders] = await expandInputs([join(root, 'albums')]);
  assert.ok(onlySubfolders && 'error' in onlySubfolders && /; list it recursively to look in its 2 subfolders$/.test(onlySubfolders.error), JSON.stringify(onlySubfolders));

  await assert.rejects(expandInputs([]), /no images given/);
  await assert.rejects(expandInputs(['-', '-'], { readStdin: async () => new Uint8Array() }), /given more than once/);
});

test('report: blocks align across images, JSON Lines keep their field names', () => {
  const labels = ['cat', 'a red car', 'dog'];
  const width = labelColumnWidth(labels);
  const block = formatClassificationBlock(
    { file: 'photos/cat.jpg', top: [{ label: 'cat', probability: 0.9651, logit: 28.314 }, { label: 'a red car', probability: 0.0349, logit: 24.99 }] },
    width,
  );
  const lines = block.trimEnd().split('\n');
  assert.equal(lines[0], 'photos/cat.jpg');
  assert.deepEqual(lines.slice(1), [
    '  #  label      probability  logit',
    '  1  cat             96.51%  28.31',
    '  2  a red car        3.49%  24.99',
  ]);
  assert.equal(labelColumnWidth(['x'.repeat(80)]), 40);

  const good = JSON.parse(formatClassificationJson({ file: 'a.png', top: [{ label: 'cat', probability: 0.5, logit: 1.25 }] }));
  assert.deepEqual(good, { file: 'a.png', top: [{ label: 'cat', probability: 0.5, logit: 1.25 }] });
  const bad = JSON.parse(formatClassificationJson({ file: 'b.png', error: 'b.png: image file is empty (0 bytes)' }));
  assert.deepEqual(bad, { file: 'b.png', error: 'b.png: image file is empty (0 bytes)' });
  assert.equal(formatClassificationTotals({ images: 10, failed: 2, seconds: 0.5 }), '10 images, 2 failed in 0.50 s (20.0 images/s)\n');
});

test('classify: PNG, JPEG and WebP drawings of a class are that class; results stream in input order', async () => {
  const streamed: number[] = [];
  const run = await classifyImages(options(onDisk('apple.png', 'bicycle.jpg', 'tulip.webp', 'apple.png', 'tulip.webp'), {
    onResult: (_, index) => streamed.push(index),
  }));
  assert.deepEqual(streamed, [0, 1, 2, 3, 4]);
  assert.deepEqual(run.results.map((result) => top(result)[0]!.label), ['apple', 'bicycle', 'tulip', 'apple', 'tulip']);
  assert.equal(run.classified, 5);
  assert.equal(run.failed, 0);
  for (const result of run.results) {
    const scores = top(result);
    assert.equal(scores.length, 5);
    assert.ok(scores[0]!.probability > 0.99, `${result.file}: ${JSON.stringify(scores[0])}`);
    for (let i = 1; i < scores.length; i++) assert.ok(scores[i - 1]!.logit >= scores[i]!.logit, 'best first');
  }
  // Same pixels, same result: the second apple.png came from another batch.
  assert.deepEqual(run.results[3], { ...run.results[0], file: file('apple.png') });
});

test('classify: probabilities are the softmax of the logits over all labels; --top is capped', async () => {
  const labels = ['apple', 'bicycle', 'tulip', 'a red car'];
  const run = await classifyImages(options(onDisk('bicycle.jpg', 'apple.png'), { labels, top: 10, templates: OPENAI_CIFAR_TEMPLATES }));
  for (const result of run.results) {
    const scores = top(result);
    assert.equal(scores.length, labels.length);
    assert.deepEqual(scores.map((score) => score.label).sort(), [...labels].sort());
    const sum = scores.reduce((total, score) => total + score.probability, 0);
    assert.ok(Math.abs(sum - 1) < 1e-12, `probabilities sum to ${sum}`);
    // p_i / p_j = exp(logit_i − logit_j); logits are rounded to 4 decimals.
    for (const score of scores.slice(1)) {
      const ratio = Math.log(scores[0]!.probability / score.probability);
      if (Number.isFinite(ratio)) assert.ok(Math.abs(ratio - (scores[0]!.logit - score.logit)) < 1e-3, `${ratio} vs ${scores[0]!.logit - score.logit}`);
    }
  }
  assert.equal(top(run.results[0])[0]!.label, 'bicycle');
  // The probability shown for the top 1 is that of the softmax over all 4 labels, not renormalised to 1.
  const all = top((await classifyImages(options(onDisk('blend.png'), { labels }))).results[0]);
  const best = top((await classifyImages(options(onDisk('blend.png'), { labels, top: 1 }))).results[0]);
  assert.ok(all[0]!.probability < 0.99 && all[1]!.probability > 0.01, `not saturated: ${JSON.stringify(all)}`);
  assert.deepEqual(best, all.slice(0, 1));

  const freshCache = { labels, cacheRoot: join(dir, 'fresh-cache') };
  const first = await classifyImages(options(onDisk('apple.png'), freshCache));
  assert.equal(first.textEmbeddingsCached, false);
  const again = await classifyImages(options(onDisk('apple.png'), freshCache));
  assert.equal(again.textEmbeddingsCached, true, 'the second run reads the label embeddings from the cache');
  assert.deepEqual(again.results, first.results);
});

test('classify: an EXIF-rotated JPEG is classified like the upright one, unless auto-orient is off', async () => {
  const images = onDisk('bicycle.jpg', 'bicycle-exif6.jpg');
  const upright = await classifyImages(options(images));
  const [plain, rotated] = upright.results.map(top);
  assert.equal(rotated![0]!.label, 'bicycle');
  assert.ok(Math.abs(rotated![0]!.logit - plain![0]!.logit) < 1, `logits ${rotated![0]!.logit} and ${plain![0]!.logit}`);
  const raw = await classifyImages(options(images, { decode: { autoOrient: false } }));
  assert.equal(top(raw.results[0])[0]!.label, 'bicycle', 'no tag, nothing to ignore');
  assert.notEqual(top(raw.results[1])[0]!.label, 'bicycle', 'read sideways, the pattern is another one');
});

test('classify: each bad input gets an error naming it and the others are still classified', async () => {
  const images: ImageInput[] = [
    ...onDisk('missing.jpg', 'apple.png', 'notes.png', 'truncated.jpg', 'empty.png', 'tulip.webp'),
    { file: '-', bytes: new Uint8Array() },
    { file: join(dir, 'no-images'), error: `${join(dir, 'no-images')}: no image files in this folder` },
  ];
  const run = await classifyImages(options(images, { batchSize: 3 }));
  const expected: [string, RegExp | string][] = [
    ['missing.jpg', /missing\.jpg: image file not found/],
    ['apple.png', 'apple'],
    ['notes.png', /notes\.png: not an image file/],
    ['truncated.jpg', /truncated\.jpg: corrupt or truncated image/],
    ['empty.png', /empty\.png: image file is empty \(0 bytes\)/],
    ['tulip.webp', 'tulip'],
  ];
  expected.forEach(([name, outcome], i) => {
    const result = run.results[i]!;
    assert.equal(result.file, file(name));
    if (typeof outcome === 'string') assert.equal(top(result)[0]!.label, outcome);
    else assert.ok(isFailure(result) && outcome.test(result.error) && !result.error.includes('\n'), JSON.stringify(result));
  });
  assert.deepEqual(run.results[6], { file: '-', error: 'standard input: image data is empty (0 bytes)' });
  assert.match((run.results[7] as { error: string }).error, /no-images: no image files/);
  assert.equal(run.classified, 2);
  assert.equal(run.failed, 6);

  const limited = await classifyImages(options(onDisk('apple.png', 'tulip.webp'), { decode: { maxPixels: 320 * 240 - 1 } }));
  for (const result of limited.results) assert.ok(isFailure(result) && /\.(png|webp): .*pixel/i.test(result.error), JSON.stringify(result));
  const enough = await classifyImages(options(onDisk('apple.png'), { decode: { maxPixels: 320 * 240 } }));
  assert.equal(top(enough.results[0])[0]!.label, 'apple');
});

test('classify: images being prepared hold at most the memory budget plus one image, whatever the batch size', async () => {
  const names = Array.from({ length: 8 }, (_, i) => `large-${i}.png`);
  let largestImage = 0;
  for (const [i, name] of names.entries()) {
    const bytes = await classImage(i % 2 === 0 ? 'apple' : 'tulip').resize(1600, 1200, { kernel: 'nearest' }).png().toBuffer();
    await writeFile(file(name), bytes);
    largestImage = Math.max(largestImage, bytes.length + decodedBytes(await sharp(bytes).metadata()));
  }
  const budget = 2 * 1600 * 1200 * 3;
  const bounded = await classifyImages(options(onDisk(...names), { batchSize: 8, top: 1, imageMemoryBytes: budget }));
  assert.equal(bounded.classified, 8);
  assert.ok(bounded.peakImageBytes >= 1600 * 1200 * 3, `peak ${bounded.peakImageBytes} counts the decoded pixels`);
  assert.ok(bounded.peakImageBytes <= budget + largestImage, `peak ${bounded.peakImageBytes} > budget ${budget} + one image ${largestImage}`);
  const unbounded = await classifyImages(options(onDisk(...names), { batchSize: 8, top: 1 }));
  assert.deepEqual(bounded.results, unbounded.results);
  assert.deepEqual(bounded.results.map((result) => top(result)[0]!.label), names.map((_, i) => (i % 2 === 0 ? 'apple' : 'tulip')));
});

test('memory budget: reservations past the limit wait for releases, except the oldest image\'s', async () => {
  const budget = new MemoryBudget(100);
  const [a, b, c] = [budget.lease(), budget.lease(), budget.lease()];
  const granted: string[] = [];
  await a.reserve(60);
  const bWaits = b.reserve(50).then(() => granted.push('b'));
  const cFits = c.reserve(40).then(() => granted.push('c'));
  await cFits;
  assert.deepEqual(granted, ['c']);
  const aOver = a.reserve(500).then(() => granted.push('a'));
  await aOver;
  assert.deepEqual(granted, ['c', 'a'], 'the oldest lease is never kept waiting');
  assert.equal(budget.peak, 600);
  c.release();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(granted, ['c', 'a'], 'b still does not fit beside a');
  a.release();
  await bWaits;
  assert.deepEqual(granted, ['c', 'a', 'b']);
  b.release();
  assert.throws(() => b.reserve(1), /after release/);
});

test('classify: bad options are usage errors before any model is loaded', async () => {
  const usage = (pattern: RegExp) => (error: unknown) => error instanceof ClipEvalError && error.kind === 'usage' && pattern.test(error.message);
  const noModel = { model: { model: join(dir, 'no-such-model') } };
  await assert.rejects(classifyImages(options([], { ...noModel, labels: [] })), usage(/no labels given/));
  await assert.rejects(classifyImages(options([], { ...noModel, labels: ['cat', 'cat'] })), usage(/listed twice/));
  await assert.rejects(classifyImages(options([], { ...noModel, templates: ['a photo of a cat'] })), usage(/has no \{\}/));
  await assert.rejects(classifyImages(options([], { ...noModel, top: 0 })), usage(/^top 0: expected a positive whole number$/));
});
