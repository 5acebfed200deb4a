import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { runChecks, validateBaseline } from '../src/checks/checks.js';
import { formatJunit, formatStepSummary } from '../src/report/junit.js';
import { silentLogger } from '../src/core/log.js';
import { CIFAR100_CLEAN_NAMES } from '../src/datasets/cifar/class-names.js';
import type { Dataset, Sample } from '../src/datasets/dataset.js';
import { resolveModelBundle, type ModelBundle } from '../src/model/bundle.js';
import { OPENAI_PREPROCESS } from '../src/preprocess/config.js';
import { createPlanarPreprocessor, preprocessDecoded } from '../src/preprocess/transform.js';
import { formatSummary } from '../src/report/summary.js';
import { classifyImages } from '../src/tasks/zero-shot/classify.js';
import { evaluateDataset, type DatasetEvaluationOptions } from '../src/tasks/zero-shot/evaluate.js';
import { roundLogit } from '../src/tasks/zero-shot/scores.js';
import { selectSubset } from '../src/tasks/zero-shot/subset.js';
import { SINGLE_TEMPLATE } from '../src/text/templates.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { rejectsWithOneLine } from './support/errors.js';
import { makeTempDir } from './support/paths.js';

/**
 * The evaluation job on a data set of image files (the pattern CLIP's photo-sized images in PNG, JPEG
 * and WebP): ~100 % through a correct pipeline, logits equal to classify's on the same files, the
 * subset chosen as the stream goes by, a digest of what streamed, unreadable images failing or skipped.
 */
let dir: string;
let bundle: ModelBundle;
const CLASSES = CIFAR100_CLEAN_NAMES.slice(0, 12);
const FORMATS = ['png', 'jpg', 'webp'] as const;
/** Files in data set order: class by class, three formats each. */
let files: { path: string; label: number }[];

before(async () => {
  dir = await makeTempDir('clip-eval-evaluate-dataset-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  bundle = await resolveModelBundle({ model: join(dir, 'model'), cacheRoot: join(dir, 'cache'), quiet: true });
  files = [];
  for (const [label, name] of CLASSES.entries()) {
    for (const format of FORMATS) {
      const path = join(dir, `${label}-${name.replace(/ /g, '_')}.${format}`);
      const image = classImage(name, 300 + 7 * label, 220 + 3 * label);
      await (format === 'png' ? image.png() : format === 'jpg' ? image.jpeg({ quality: 90 }) : image.webp({ quality: 90 })).toFile(path);
      files.push({ path, label });
    }
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A data set of `file` samples, ids the file names; `pulled` counts the samples read from it. */
function fileDataset(entries: readonly { path: string; label: number }[], classNames: readonly string[] = CLASSES) {
  const counter = { pulled: 0, closed: 0 };
  const dataset: Dataset = {
    name: 'files-in-test',
    split: 'test',
    classNames,
    defaultTemplates: 'single',
    size: entries.length,
    async *samples(): AsyncIterable<Sample> {
      try {
        for (const { path, label } of entries) {
          counter.pulled += 1;
          yield { id: path.slice(dir.length + 1), label, image: { kind: 'file', path } };
        }
      } finally {
        counter.closed += 1;
      }
    },
  };
  return { dataset, counter };
}

function options(dataset: Dataset, overrides: Partial<DatasetEvaluationOptions> = {}): DatasetEvaluationOptions {
  return {
    dataset,
    bundles: [bundle],
    cacheRoot: join(dir, 'cache'),
    device: 'cpu',
    threads: 1,
    batchSize: 5,
    templates: { name: 'single', templates: SINGLE_TEMPLATE },
    textCache: true,
    imageCache: false,
    subset: {},
    logger: silentLogger,
    quiet: true,
    ...overrides,
  };
}

test('image files: ~100 % top-1, and every logit equals classify\'s on the same files', async () => {
  const { dataset } = fileDataset(files);
  const evaluation = await evaluateDataset(options(dataset));
  const { metrics } = evaluation.report.results[0]!;
  assert.equal(metrics.images, files.length);
  assert.equal(metrics.top1, 1, JSON.stringify(metrics.mostConfused));
  assert.deepEqual(Array.from(evaluation.labels), files.map((f) => f.label));
  assert.deepEqual(evaluation.ids, files.map((f) => f.path.slice(dir.length + 1)));
  assert.equal(evaluation.report.dataset.skipped, 0);
  assert.equal(evaluation.report.dataset.classes, CLASSES.length);
  assert.match(evaluation.report.dataset.sha256, /^[0-9a-f]{64}$/);

  const classified = await classifyImages({
    images: files.map((f) => ({ file: f.path, path: f.path })),
    labels: CLASSES,
    templates: SINGLE_TEMPLATE,
    model: { model: join(dir, 'model') },
    cacheRoot: join(dir, 'cache'),
    device: 'cpu',
    threads: 1,
    batchSize: 7,
    top: 5,
    textCache: true,
    imageCache: false,
    logger: silentLogger,
    quiet: true,
  });
  const { k, classes, logits } = evaluation.predictions[0]!;
  classified.results.forEach((result, n) => {
    assert.ok('top' in result, JSON.stringify(result));
    assert.deepEqual(result.top.map((s) => s.label), Array.from(classes.subarray(n * k, n * k + 5), (c) => CLASSES[c]), result.file);
    assert.deepEqual(result.top.map((s) => s.logit), Array.from(logits.subarray(n * k, n * k + 5), roundLogit), result.file);
  });
});

test('the subset is chosen as the samples stream, as selectSubset picks it, and a full limit stops the stream', async () => {
  const labels = files.map((f) => f.label);
  for (const subset of [{ perClass: 1 }, { limit: 7 }, { perClass: 2, limit: 9 }]) {
    const { dataset, counter } = fileDataset(files);
    const evaluation = await evaluateDataset(options(dataset, { subset }));
    const expected = Array.from(selectSubset(labels, subset), (i) => files[i]!.path.slice(dir.length + 1));
    assert.deepEqual(evaluation.ids, expected, JSON.stringify(subset));
    assert.equal(counter.closed, 1, 'the stream is closed');
    if (subset.perClass === undefined) assert.equal(counter.pulled, subset.limit, 'no sample is read past the limit');
    assert.deepEqual(evaluation.report.dataset.subset, subset);
  }
});

test('the streamed digest: the same data gives the same digest; another image, label or class name another', async () => {
  const digestOf = async (entries: typeof files, classNames: readonly string[] = CLASSES) =>
    (await evaluateDataset(options(fileDataset(entries, classNames).dataset, { subset: { limit: 6 } }))).report.dataset.sha256;
  const reference = await digestOf(files);
  assert.equal(await digestOf(files), reference);
  const relabelled = files.map((f, i) => (i === 1 ? { ...f, label: 5 } : f));
  assert.notEqual(await digestOf(relabelled), reference, 'a label');
  assert.notEqual(await digestOf(files, [...CLASSES.slice(0, 11), 'another name']), reference, 'a class name');
  const copy = join(dir, 'copy.png');
  await writeFile(copy, await readFile(files[3]!.path));
  assert.notEqual(await digestOf(files.map((f, i) => (i === 3 ? { ...f, path: copy } : f))), reference, 'an id (same bytes)');
  await writeFile(copy, await classImage(CLASSES[0]!, 301, 220).png().toBuffer());
  // The same id with other bytes: a dataset whose first file was rewritten.
  const rewritten = join(dir, 'rewritten');
  const sameIds = async (path: string) => {
    await writeFile(rewritten, await readFile(path));
    return digestOf(files.map((f, i) => (i === 0 ? { ...f, path: rewritten } : f)));
  };
  assert.notEqual(await sameIds(files[0]!.path), await sameIds(copy), 'image bytes');
});

test('an unreadable image fails the run naming the file, unless skipped and counted', async () => {
  const broken = join(dir, 'broken.jpg');
  const jpeg = await readFile(files[4]!.path);
  await writeFile(broken, jpeg.subarray(0, 40));
  const entries = files.map((f, i) => (i === 4 ? { ...f, path: broken } : f));
  const failure = await rejectsWithOneLine(evaluateDataset(options(fileDataset(entries).dataset)), /broken\.jpg: corrupt or truncated image/);
  assert.equal(failure.exitCode, 3);
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (message: string) => warnings.push(message) };
  const evaluation = await evaluateDataset(options(fileDataset(entries).dataset, { skipUnreadable: true, logger }));
  assert.equal(evaluation.report.dataset.skipped, 1);
  assert.equal(evaluation.report.results[0]!.metrics.images, files.length - 1);
  assert.equal(evaluation.report.results[0]!.metrics.top1, 1, 'the gap the skipped image left is closed');
  assert.ok(!evaluation.ids.some((id) => id.includes('broken')));
  assert.match(warnings.join('\n'), /broken\.jpg/);
  assert.match(formatSummary(evaluation.report), /images\s+35 of 36 \(1 unreadable, skipped\)/);
});

test('a label out of range is one line naming the sample', async () => {
  const entries = files.map((f, i) => (i === 2 ? { ...f, label: 12 } : f));
  await rejectsWithOneLine(evaluateDataset(options(fileDataset(entries).dataset)), /^files-in-test: sample 0-apple\.webp has label 12, outside 0-11/);
});

test('fewer than 5 classes: top-5 is null, shown as n/a and not checked', async () => {
  const three = files.filter((f) => f.label < 3);
  const evaluation = await evaluateDataset(options(fileDataset(three, CLASSES.slice(0, 3)).dataset));
  const { metrics } = evaluation.report.results[0]!;
  assert.equal(metrics.top5, null);
  assert.equal(metrics.top1, 1);
  assert.match(formatSummary(evaluation.report), /top-5\s+n\/a/);
  const outcomes = runChecks(evaluation.report, { minTop1: 0.9, minTop5: 0.9, maxDrop: 0.5 });
  assert.deepEqual(outcomes.map((o) => o.metric), ['top1']);
  const junit = formatJunit(evaluation.report, outcomes);
  assert.match(junit, /name="top-1"/);
  assert.doesNotMatch(junit, /name="top-5"/);
  assert.match(formatStepSummary(evaluation.report, outcomes), /\| 100\.00 %  \(\d+\.\d+–100\.00\) \| n\/a \|/);
  // A report with a null top-5 is a baseline like any other; top-5 is then not compared.
  const baseline = validateBaseline(JSON.parse(JSON.stringify(evaluation.report)), 'baseline');
  const compared = runChecks(evaluation.report, { baseline, maxDrop: 0.5 });
  assert.deepEqual(compared.map((o) => o.metric), ['top1', 'meanPerClassRecall']);
  assert.ok(compared.every((o) => o.passed));
});

test('several models: each streams the data, and data that changes between them is refused', async () => {
  const { dataset } = fileDataset(files.slice(0, 9));
  const twice = await evaluateDataset(options(dataset, { bundles: [bundle, bundle] }));
  assert.deepEqual(twice.report.results[0]!.metrics, twice.report.results[1]!.metrics);
  let calls = 0;
  const changing: Dataset = {
    ...dataset,
    samples: () => {
      calls += 1;
      return fileDataset(calls === 1 ? files.slice(0, 9) : files.slice(1, 10)).dataset.samples();
    },
  };
  await assert.rejects(evaluateDataset(options(changing, { bundles: [bundle, bundle] })), /changed while it was evaluated/);
});

test('planar images of any size equal the decoded path bit for bit', () => {
  const preprocess = createPlanarPreprocessor(OPENAI_PREPROCESS);
  for (const [width, height] of [[32, 32], [45, 30], [30, 61], [224, 224]] as const) {
    const plane = width * height;
    const pixels = Uint8Array.from({ length: 3 * plane }, (_, i) => (i * 7919 + width) % 251);
    const interleaved = new Uint8Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) interleaved[p * 3 + c] = pixels[c * plane + p]!;
    const planarOut = new Float32Array(3 * 224 * 224);
    const decodedOut = new Float32Array(3 * 224 * 224);
    preprocess({ pixels, width, height }, planarOut, 0);
    preprocessDecoded({ data: interleaved, width, height, channels: 3, palette: false }, OPENAI_PREPROCESS, decodedOut, 0);
    assert.deepEqual(planarOut, decodedOut, `${width}x${height}`);
  }
});
