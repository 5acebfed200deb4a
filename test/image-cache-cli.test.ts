import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CIFAR100_RAW_NAMES, writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/**
 * The image-embedding cache through the built CLI: an eval re-run with other templates encodes no
 * image and never opens the vision session (the encoder's --verbose line is absent); a damaged entry
 * is rebuilt; a changed vision model misses; --no-cache encodes everything.
 */

let dir: string;
let folder: string;
const CLASSES = CIFAR100_RAW_NAMES.slice(0, 12);
/** The line the vision session prints (with --verbose) when it is created. */
const SESSION_LINE = /^image encoder: /m;

before(async () => {
  dir = await makeTempDir('clip-eval-image-cache-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  await writePatternClip(join(dir, 'other-model'), { variants: true });
  folder = join(dir, 'photos');
  for (const rawName of CLASSES) {
    await mkdir(join(folder, rawName), { recursive: true });
    await classImage(rawName.replace(/_/g, ' ')).png().toFile(join(folder, rawName, 'image.png'));
  }
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Report {
  dataset: { sha256: string };
  results: { metrics: { top1: number; images: number }; timing: { textEmbeddings: string; imageEmbeddings: string } }[];
}

async function evaluate(model: string, cache: string, ...extra: string[]) {
  const json = join(dir, `report-${Math.random().toString(16).slice(2)}.json`);
  const run = await runCli(['eval', folder, '--model', model, '--cache-dir', cache, '--threads', '1', '--verbose', '--json', json, ...extra]);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as Report;
  return { ...run, result: report.results[0]!, datasetSha256: report.dataset.sha256 };
}

async function entryFiles(cache: string): Promise<string[]> {
  const root = join(cache, 'image-embeddings');
  const files: string[] = [];
  for (const sub of await readdir(root)) for (const name of await readdir(join(root, sub))) files.push(join(root, sub, name));
  return files;
}

test('eval with new templates hits the image cache: no image encoded, no vision session; the summary says so', async () => {
  const cache = join(dir, 'cache-templates');
  const model = join(dir, 'model');
  const cold = await evaluate(model, cache);
  assert.equal(cold.result.timing.imageEmbeddings, 'computed');
  assert.match(cold.stderr, SESSION_LINE);
  assert.equal(cold.result.metrics.top1, 1);
  assert.equal((await entryFiles(cache)).length, CLASSES.length);

  const warm = await evaluate(model, cache, '--templates', 'openai');
  assert.equal(warm.result.timing.textEmbeddings, 'computed');
  assert.equal(warm.result.timing.imageEmbeddings, 'cached');
  assert.doesNotMatch(warm.stderr, SESSION_LINE);
  assert.equal(warm.result.metrics.top1, 1);
  assert.equal(warm.result.metrics.images, CLASSES.length);
  assert.match(warm.stdout, /image embeddings\s+cached/);
  // Nothing was encoded, so there is no speed to report.
  assert.match(warm.stdout, /^ {2}throughput +n\/a \(no image encoded: all from the cache\)$/m);
  assert.match(cold.stdout, /^ {2}throughput +\d+\.\d images\/s$/m);
  // The data set digest (what a baseline is checked against) is the same whether the images were decoded or not.
  assert.equal(warm.datasetSha256, cold.datasetSha256);

  const bypass = await evaluate(model, cache, '--no-cache');
  assert.equal(bypass.result.timing.imageEmbeddings, 'computed');
  assert.equal(bypass.result.timing.textEmbeddings, 'computed');
  assert.match(bypass.stderr, SESSION_LINE);
});

test('a damaged image-embedding entry is reported and rebuilt; the result is unchanged', async () => {
  const cache = join(dir, 'cache-damaged');
  const model = join(dir, 'model');
  await evaluate(model, cache);
  const [entry] = await entryFiles(cache);
  const bytes = await readFile(entry!);
  bytes[bytes.length - 3] ^= 0x55;
  await writeFile(entry!, bytes);
  const repaired = await evaluate(model, cache);
  assert.match(repaired.stderr, /^clip-eval: warning: image-embedding cache entry .* is damaged \(checksum mismatch\); rebuilding it$/m);
  assert.equal(repaired.result.timing.imageEmbeddings, 'partly cached');
  assert.match(repaired.stderr, SESSION_LINE);
  assert.equal(repaired.result.metrics.top1, 1);
  const again = await evaluate(model, cache);
  assert.equal(again.result.timing.imageEmbeddings, 'cached');
  assert.doesNotMatch(again.stderr, /is damaged/);
});

test('a changed vision model file misses the image cache', async () => {
  const cache = join(dir, 'cache-model');
  const model = join(dir, 'changed-model');
  await writePatternClip(model, { variants: false });
  await evaluate(model, cache);
  assert.equal((await evaluate(model, cache)).result.timing.imageEmbeddings, 'cached');
  // Another valid vision graph with the same inputs and outputs, under the same path.
  await copyFile(join(dir, 'other-model', 'onnx', 'vision_model_quantized.onnx'), join(model, 'onnx', 'vision_model.onnx'));
  const changed = await evaluate(model, cache);
  assert.equal(changed.result.timing.imageEmbeddings, 'computed');
  assert.match(changed.stderr, SESSION_LINE);
});

test('classify caches image embeddings: the second run over the same files opens no vision session and gives the same scores', async () => {
  const cache = join(dir, 'cache-classify');
  const files = CLASSES.slice(0, 4).map((rawName) => join(folder, rawName, 'image.png'));
  const labels = CLASSES.slice(0, 4).map((rawName) => rawName.replace(/_/g, ' ')).join(',');
  const classify = () => runCli(['classify', ...files, join(dir, 'missing.png'), '--model', join(dir, 'model'), '--labels', labels, '--cache-dir', cache, '--verbose', '--json']);
  const cold = await classify();
  assert.equal(cold.code, 3, cold.stderr);
  assert.match(cold.stderr, SESSION_LINE);
  assert.match(cold.stderr, /^clip-eval: .*missing\.png/m);
  const warm = await classify();
  assert.equal(warm.code, 3, warm.stderr);
  assert.doesNotMatch(warm.stderr, SESSION_LINE);
  assert.equal(warm.stdout, cold.stdout);
  const tops = warm.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { top?: { label: string }[] }).top?.[0]?.label);
  assert.deepEqual(tops, [...labels.split(','), undefined]);
});
