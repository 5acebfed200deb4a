import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CIFAR100_RAW_NAMES, writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/**
 * `clip-eval eval` on an image folder and a CSV manifest, end to end through the built CLI with the
 * pattern CLIP: ~100 % top-1 through a correct pipeline, ~1 % with the class names mis-wired.
 */

let dir: string;
let folder: string;
let manifestPath: string;
let modelArgs: string[];
/** The ids the folder yields, in ImageFolder order: class folders sorted, one image each. */
let folderIds: string[];
/** The manifest's rows, in their own order (not the folder's): path and label. */
let manifestRows: [string, string][];

before(async () => {
  dir = await makeTempDir('clip-eval-folder-eval-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  modelArgs = ['--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache'), '--threads', '1', '--quiet'];
  folder = join(dir, 'pets');
  folderIds = [];
  for (const rawName of CIFAR100_RAW_NAMES) {
    await mkdir(join(folder, rawName), { recursive: true });
    await classImage(rawName.replace(/_/g, ' ')).png().toFile(join(folder, rawName, 'image.png'));
    folderIds.push(`${rawName}/image.png`);
  }
  manifestRows = [...CIFAR100_RAW_NAMES].reverse().map((rawName) => [`pets/${rawName}/image.png`, rawName]);
  manifestPath = join(dir, 'val.csv');
  await writeFile(manifestPath, `path,label\n${manifestRows.map((row) => row.join(',')).join('\n')}\n`);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Report {
  dataset: { name: string; split: string; classes: number };
  results: { metrics: { top1: number } }[];
}

interface Prediction {
  index: number;
  id: string;
  label: number;
  top5: number[];
}

async function evaluate(spec: string, name: string, ...extra: string[]): Promise<{ report: Report; predictions: Prediction[] }> {
  const json = join(dir, `${name}.json`);
  const predictions = join(dir, `${name}.jsonl`);
  const run = await runCli(['eval', spec, ...modelArgs, '--json', json, '--predictions', predictions, ...extra]);
  assert.equal(run.code, 0, run.stderr);
  return {
    report: JSON.parse(await readFile(json, 'utf8')) as Report,
    predictions: (await readFile(predictions, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Prediction),
  };
}

/** A run that must fail with one clear line on stderr and exit 3. */
async function refusedRun(args: string[], pattern: RegExp): Promise<void> {
  const run = await runCli(['eval', ...args, ...modelArgs]);
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, /^clip-eval: [^\n]+\n$/);
  assert.match(run.stderr, pattern);
}

test('eval FOLDER: ~100 % top-1 on the pattern images, the folder as dataset.name, 100 classes, ids below the root in ImageFolder order', async () => {
  const { report, predictions } = await evaluate(folder, 'folder');
  assert.equal(report.dataset.name, folder);
  // No split: the folder is evaluated whole (its name is no split, nor its heading "(pets set)").
  assert.equal(report.dataset.split, 'all');
  assert.equal(report.dataset.classes, 100);
  assert.ok(report.results[0]!.metrics.top1 >= 0.99, `top-1 ${report.results[0]!.metrics.top1}`);
  assert.deepEqual(predictions.map((p) => p.id), folderIds);
  assert.deepEqual(predictions.map((p) => p.index), folderIds.map((_, i) => i));
  assert.deepEqual(predictions.map((p) => p.label), folderIds.map((_, i) => i));
});

test('eval csv:FILE: ~100 % top-1, the spec as dataset.name, ids as the manifest writes them, in its order', async () => {
  const { report, predictions } = await evaluate(`csv:${manifestPath}`, 'csv');
  assert.equal(report.dataset.name, `csv:${manifestPath}`);
  assert.equal(report.dataset.classes, 100);
  assert.ok(report.results[0]!.metrics.top1 >= 0.99, `top-1 ${report.results[0]!.metrics.top1}`);
  assert.deepEqual(predictions.map((p) => p.id), manifestRows.map(([path]) => path));
  assert.deepEqual(predictions.map((p) => p.label), manifestRows.map(([, label]) => CIFAR100_RAW_NAMES.indexOf(label)));
});

test('eval FOLDER --classnames FILE in the wrong order: ~1 % top-1, so a mis-wired mapping cannot pass', async () => {
  const shifted = join(dir, 'shifted.txt');
  const clean = CIFAR100_RAW_NAMES.map((name) => name.replace(/_/g, ' '));
  await writeFile(shifted, `${[...clean.slice(1), clean[0]].join('\n')}\n`);
  const { report } = await evaluate(folder, 'shifted', '--classnames', shifted);
  assert.ok(report.results[0]!.metrics.top1 <= 0.05, `top-1 ${report.results[0]!.metrics.top1}`);
});

test('eval: an empty class folder, a CSV row naming a missing file and --classnames imagenet1k on another folder are one line, exit 3', async () => {
  const empty = join(dir, 'with-empty');
  await mkdir(join(empty, 'apple'), { recursive: true });
  await mkdir(join(empty, 'pear'), { recursive: true });
  await classImage('apple').png().toFile(join(empty, 'apple', '1.png'));
  await refusedRun([empty], /class folder pear has no images/);

  const missing = join(dir, 'missing.csv');
  await writeFile(missing, 'path,label\npets/apple/image.png,apple\npets/apple/gone.png,pear\n');
  await refusedRun([`csv:${missing}`], /missing\.csv line 3: pets\/apple\/gone\.png does not exist/);

  await refusedRun([folder, '--classnames', 'imagenet1k'], /not the ImageNet validation layout.*1000 missing/);
});

test('eval --min top1=X holds top-1 to a bar like --min-top1: met exits 0, missed exits 1, both at once is a usage error', async () => {
  const met = await runCli(['eval', folder, ...modelArgs, '--min', 'top1=90%', '--min', 'top5=0.9']);
  assert.equal(met.code, 0, met.stderr);
  assert.match(met.stdout, /^ {2}pass {2}.*top-1 .* meets the bar 90\.00 %$/m);
  assert.match(met.stdout, /^ {2}pass {2}.*top-5 .* meets the bar 90\.00 %$/m);
  const shifted = join(dir, 'shifted-min.txt');
  const clean = CIFAR100_RAW_NAMES.map((name) => name.replace(/_/g, ' '));
  await writeFile(shifted, `${[...clean.slice(1), clean[0]].join('\n')}\n`);
  const missed = await runCli(['eval', folder, ...modelArgs, '--classnames', shifted, '--min', 'top1=64%']);
  assert.equal(missed.code, 1, missed.stderr);
  assert.match(missed.stderr, /^clip-eval: check failed: .*top-1 .* is below the bar 64\.00 %\n$/);
  for (const [args, pattern] of [
    [['--min', 'top1=64%', '--min-top1', '0.5'], /--min top1=… and --min-top1 set the same bar/],
    [['--min', 'top3=64%'], /--min top3=64%: expected top1=VALUE or top5=VALUE/],
    [['--min', 'top1=64'], /--min top1 64: expected a fraction/],
  ] as const) {
    const run = await runCli(['eval', folder, ...modelArgs, ...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /^clip-eval: [^\n]+\n$/);
    assert.match(run.stderr, pattern);
  }
});
