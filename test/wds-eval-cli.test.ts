import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { CIFAR10_NAMES } from '../src/datasets/cifar/class-names.js';
import { OPENAI_CIFAR_TEMPLATES } from '../src/text/templates.js';
import { runCli } from './support/cli.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { makeTempDir } from './support/paths.js';
import { makeSamples, publishDatasetRepo, sampleMembers, writeLayout, type FixtureSample } from './support/webdataset.js';

/**
 * `clip-eval eval` on webdatasets, end to end: the pattern CLIP fixture scores ~100 % top-1 on shards of
 * its own class images (PNG, JPEG, lossless WebP), from a local hub (HF_ENDPOINT) and from a folder.
 */

let dir: string;
let hub: TestServer;
let model: string;
let layout: string;
let samples: FixtureSample[];
const REPO = 'clip-benchmark/wds_pattern10';
const TEMPLATES = OPENAI_CIFAR_TEMPLATES.slice(0, 3).map((template) => template.replace('{}', '{c}'));

before(async () => {
  dir = await makeTempDir('clip-eval-wds-eval-');
  model = join(dir, 'model');
  await writePatternClip(model, { variants: false });
  samples = await makeSamples(CIFAR10_NAMES, 3);
  layout = join(dir, 'layout');
  await writeLayout(layout, {
    classNames: CIFAR10_NAMES,
    templates: TEMPLATES,
    shards: [samples.slice(0, 12).flatMap(sampleMembers), samples.slice(12).flatMap(sampleMembers)],
  });
  hub = await startTestServer();
  await publishDatasetRepo(hub, REPO, layout);
});

after(async () => {
  await hub?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Report {
  dataset: { name: string; classes: number; sha256: string };
  results: { metrics: { top1: number } }[];
}

interface PredictionRow {
  index: number;
  id: string;
  label: number;
  top5: number[];
}

async function evaluate(spec: string, cache: string, extra: string[] = []) {
  const json = join(dir, `${cache}.json`);
  const predictions = join(dir, `${cache}.jsonl`);
  const run = await runCli(['eval', spec, '--model', model, '--cache-dir', join(dir, cache), '--quiet', '--json', json, '--predictions', predictions, ...extra], {
    env: { HF_ENDPOINT: hub.origin },
  });
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as Report;
  const rows = (await readFile(predictions, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as PredictionRow);
  return { run, report, rows };
}

function assertScores(report: Report, rows: PredictionRow[], name: string): void {
  assert.equal(report.dataset.name, name);
  assert.equal(report.dataset.classes, 10);
  assert.match(report.dataset.sha256, /^[0-9a-f]{64}$/);
  assert.ok(report.results[0]!.metrics.top1 >= 0.95, `top-1 ${report.results[0]!.metrics.top1}`);
  assert.deepEqual(rows.map((row) => row.index), samples.map((_, index) => index));
  assert.deepEqual(rows.map((row) => row.id), samples.map((sample) => sample.key));
  assert.deepEqual(rows.map((row) => row.label), samples.map((sample) => sample.label));
  assert.ok(rows.filter((row) => row.top5[0] === row.label).length >= samples.length - 1);
}

test('eval wds/<name>: the hub mirror through HF_ENDPOINT scores ~100 % with the data set\'s own templates', async () => {
  const { run, report, rows } = await evaluate('wds/pattern10', 'hub');
  assertScores(report, rows, 'wds/pattern10');
  assert.match(run.stdout, /top-1\s+(9\d|100)\.\d\d %/);
  // Offline, the cached shards are enough.
  const offline = await evaluate('wds/pattern10', 'hub', ['--offline']);
  assert.deepEqual(offline.report.results[0]!.metrics, report.results[0]!.metrics);
});

test('eval wds:<dir>: the same layout in a folder gives the same scores and digest', async () => {
  const hubRun = await evaluate('wds/pattern10', 'hub-again');
  const { report, rows } = await evaluate(`wds:${layout}`, 'folder');
  assertScores(report, rows, `wds:${layout}`);
  assert.equal(report.dataset.sha256, hubRun.report.dataset.sha256, 'the same images, labels and class names give the same digest');
});

test('eval wds:<dir> with a shard missing fails with one line, exit 3', async () => {
  const broken = join(dir, 'broken');
  await writeLayout(broken, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: [samples.flatMap(sampleMembers)], nshards: 2 });
  const run = await runCli(['eval', `wds:${broken}`, '--model', model, '--cache-dir', join(dir, 'broken-cache'), '--quiet']);
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, /^clip-eval: .*test\/1\.tar is missing in .*broken\n$/);
});

test('eval wds:<dir> with an image that does not decode fails with one line naming shard and member, exit 3', async () => {
  const damaged = join(dir, 'damaged');
  const members = samples.flatMap(sampleMembers).map((member) => (member.name === `${samples[4]!.key}.${samples[4]!.format}` ? { ...member, bytes: Buffer.from('not an image') } : member));
  await writeLayout(damaged, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: [members] });
  const run = await runCli(['eval', `wds:${damaged}`, '--model', model, '--cache-dir', join(dir, 'damaged-cache'), '--quiet']);
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, new RegExp(`^clip-eval: .*test/0\\.tar: ${samples[4]!.key}\\.${samples[4]!.format}.*\\n$`));
});
