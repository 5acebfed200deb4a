import assert from 'node:assert/strict';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CIFAR100_RAW_NAMES, writePatternClip } from '../scripts/make-pattern-clip.js';
import { oneErrorLine, writeSpoiledResult, type Json } from './support/baseline.js';
import { runCli } from './support/cli.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { havePython, xmlElements } from './support/xml.js';

/**
 * The CI story for `clip-eval retrieval` end to end through the built CLI: --baseline / --max-drop
 * against a previous `retrieval --json`, the refusals of baselines that cannot be compared, and the
 * $GITHUB_STEP_SUMMARY table. Pattern CLIP, 30 images of CIFAR-100 classes with two captions each.
 */
let dir: string;
let model: string;
let cache: string;
let baselinePath: string;
const IMAGES = 30;
const names = CIFAR100_RAW_NAMES.slice(0, IMAGES).map((raw) => raw.replace(/_/g, ' '));

function manifest(captionOf: (i: number, n: number) => string): string {
  const rows = CIFAR100_RAW_NAMES.slice(0, IMAGES).flatMap((raw, i) => [0, 1].map((n) => `images/${raw}.png,"${captionOf(i, n)}"`));
  return `path,caption\n${rows.join('\n')}\n`;
}

function args(manifestName: string, ...extra: string[]): string[] {
  return ['retrieval', join(dir, manifestName), '--model', model, '--cache-dir', cache, '--threads', '1', '--quiet', ...extra];
}

before(async () => {
  dir = await makeTempDir('clip-eval-retrieval-gate-');
  model = join(dir, 'model');
  cache = join(dir, 'cache');
  await writePatternClip(model, { variants: false });
  await mkdir(join(dir, 'images'));
  for (const [i, raw] of CIFAR100_RAW_NAMES.slice(0, IMAGES).entries()) await classImage(names[i]!).png().toFile(join(dir, 'images', `${raw}.png`));
  await writeFile(join(dir, 'captions.csv'), manifest((i, n) => (n === 0 ? `a photo of a ${names[i]}` : names[i]!)));
  // The same images, every caption naming the next image's class: recall falls far below the baseline's.
  await writeFile(join(dir, 'wrong.csv'), manifest((i, n) => (n === 0 ? `a photo of a ${names[(i + 1) % IMAGES]}` : names[(i + 1) % IMAGES]!)));
  baselinePath = join(dir, 'baseline.json');
  const run = await runCli(args('captions.csv', '--json', baselinePath));
  assert.equal(run.code, 0, run.stderr);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const writeBaseline = (name: string, spoil: (baseline: Json) => void, from = baselinePath) => writeSpoiledResult(from, join(dir, name), spoil);

test('retrieval --json is a baseline: its schema and the digest of the data (images and captions)', async () => {
  const baseline = JSON.parse(await readFile(baselinePath, 'utf8')) as Json;
  assert.equal(baseline.schema, 'clip-eval/retrieval@1');
  assert.match(baseline.dataset.sha256, /^[0-9a-f]{64}$/);
  const wrong = join(dir, 'wrong.json');
  assert.equal((await runCli(args('wrong.csv', '--json', wrong))).code, 0);
  const other = JSON.parse(await readFile(wrong, 'utf8')) as Json;
  assert.equal(other.dataset.images, baseline.dataset.images);
  assert.notEqual(other.dataset.sha256, baseline.dataset.sha256, 'same images, other captions: another copy');
});

test('retrieval --baseline: every metric@k of the baseline compared (also a k --recall-k leaves out), pass exits 0; the step summary has the table and the verdicts', async () => {
  const summary = join(dir, 'summary.md');
  const junit = join(dir, 'pass.xml');
  const run = await runCli(args('captions.csv', '--recall-k', '1', '--baseline', baselinePath, '--junit', junit), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  for (const metric of ['imageRetrievalRecall', 'textRetrievalRecall']) {
    for (const k of [1, 5, 10]) {
      assert.match(run.stdout, new RegExp(`^ {2}pass {2}.*: ${metric}@${k} 100\\.00 % vs baseline 100\\.00 % \\(\\+0\\.00 pp\\)$`, 'm'));
    }
  }
  const markdown = await readFile(summary, 'utf8');
  assert.match(markdown, /^### clip-eval retrieval .*captions\.csv: 30 images, 60 captions ✅ all checks passed$/m);
  assert.match(markdown, /^\| model \| variant \| device \| imageRetrievalRecall@1 \| imageRetrievalRecall@5 \| imageRetrievalRecall@10 \| textRetrievalRecall@1 \| textRetrievalRecall@5 \| textRetrievalRecall@10 \|$/m);
  const row = markdown.split('\n').find((line) => line.startsWith(`| ${model} `))!;
  assert.deepEqual(row.split(' | ').slice(1), ['fp32', 'cpu', '100.00 %', '100.00 %', '100.00 %', '100.00 %', '100.00 %', '100.00 % |']);
  assert.equal(markdown.split('\n').filter((line) => line.startsWith('| ✅ pass | ')).length, 6, 'a row of the checks table per check');
  if (havePython) {
    const cases = xmlElements(await readFile(junit, 'utf8'), 'testcase');
    assert.equal(cases.length, 6);
  }
  assert.match(await readFile(junit, 'utf8'), /imageRetrievalRecall@5 100\.00 % \(baseline 100\.00 %, max drop 0\.50 pp\)/);
});

test('retrieval --baseline: a drop over --max-drop fails (exit 1) with a check-failed line per metric@k, a ❌ summary; a larger --max-drop passes', async () => {
  // The baseline, renamed to the other manifest and with its digest: a like-for-like run whose recall fell.
  const wrongRun = JSON.parse(await readFile(join(dir, 'wrong.json'), 'utf8')) as Json;
  const fell = await writeBaseline('fell.json', (b) => {
    b.dataset.name = join(dir, 'wrong.csv');
    b.dataset.sha256 = wrongRun.dataset.sha256;
  });
  const summary = join(dir, 'fail-summary.md');
  const run = await runCli(args('wrong.csv', '--baseline', fell, '--max-drop', '1'), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 1, run.stderr);
  const failures = run.stderr.trimEnd().split('\n');
  assert.ok(failures.length >= 2 && failures.every((line) => /^clip-eval: check failed: .*Recall@\d+ [\d.]+ % vs baseline 100\.00 % \(-[\d.]+ pp, more than the allowed 1\.00 pp\)$/.test(line)), run.stderr);
  assert.match(run.stdout, /^ {2}FAIL {2}.*imageRetrievalRecall@1 /m);
  assert.match(await readFile(summary, 'utf8'), new RegExp(`^### clip-eval retrieval .*wrong\\.csv: 30 images, 60 captions ❌ ${failures.length} check${failures.length === 1 ? '' : 's'} failed$`, 'm'));
  const lenient = await runCli(args('wrong.csv', '--baseline', fell, '--max-drop', '100'));
  assert.equal(lenient.code, 0, lenient.stderr);
});

test('retrieval --baseline: a file of the wrong shape is refused when read, naming the field, before the model is even looked at', async () => {
  const evaluation = join(dir, 'evaluation.json');
  await writeFile(evaluation, JSON.stringify({ schema: 'clip-eval/evaluation@1', dataset: {}, results: [] }));
  const cases: [string, RegExp][] = [
    [evaluation, /: schema is not "clip-eval\/retrieval@1"; give a result file written by clip-eval \(schema clip-eval\/retrieval@1\)$/],
    [await writeBaseline('string-recall.json', (b) => (b.results[0].metrics.imageRetrievalRecall['5'] = '1')), /results\[0\]\.metrics\.imageRetrievalRecall\["5"\] is not a fraction between 0 and 1/],
    [await writeBaseline('bad-k.json', (b) => (b.results[0].metrics.textRetrievalRecall = { top: 1 })), /results\[0\]\.metrics\.textRetrievalRecall\["top"\] is not keyed by a positive whole number k/],
    [await writeBaseline('no-k.json', (b) => (b.results[0].metrics.textRetrievalRecall = {})), /results\[0\]\.metrics\.textRetrievalRecall holds no k/],
    [await writeBaseline('no-captions.json', (b) => delete b.dataset.captions), /dataset\.captions is not a positive whole number/],
    [await writeBaseline('no-sha256.json', (b) => (b.dataset.sha256 = 'abc')), /dataset\.sha256 is not a sha256 of 64 hex digits/],
    [await writeBaseline('no-results.json', (b) => (b.results = [])), /results is not a non-empty list/],
  ];
  const notJson = join(dir, 'not-json.json');
  await writeFile(notJson, '{"schema": ');
  cases.push([notJson, /not valid JSON/]);
  for (const [file, message] of cases) {
    // A model that does not exist and an empty offline cache: any work before the check fails differently.
    const run = await runCli(['retrieval', join(dir, 'captions.csv'), '--model', join(dir, 'no-such-model'), '--cache-dir', join(dir, 'empty-cache'), '--offline', '--quiet', '--baseline', file]);
    assert.equal(run.code, 3, `${file}: ${run.stderr}`);
    const line = oneErrorLine(run.stderr);
    assert.ok(line.includes(`--baseline ${file}: `), line);
    assert.match(line, message);
  }
  const badDrop = await runCli(args('captions.csv', '--baseline', baselinePath, '--max-drop', '-1'));
  assert.equal(badDrop.code, 2, badDrop.stderr);
  assert.match(oneErrorLine(badDrop.stderr), /--max-drop -1: expected percentage points between 0 and 100/);
});

test('retrieval --baseline from another data set is refused before any image is encoded; from another copy, before any caption is encoded', async () => {
  // A vision model that cannot load: a run that got as far as encoding images fails on it instead.
  const noVision = join(dir, 'no-vision');
  await cp(model, noVision, { recursive: true });
  await writeFile(join(noVision, 'onnx', 'vision_model.onnx'), 'not an onnx model');
  const otherSet = await writeBaseline('other-set.json', (b) => (b.dataset.name = 'wds/flickr30k'));
  const run = await runCli(['retrieval', join(dir, 'captions.csv'), '--model', noVision, '--cache-dir', cache, '--quiet', '--baseline', otherSet]);
  assert.equal(run.code, 3, run.stderr);
  assert.match(oneErrorLine(run.stderr), /--baseline .*other-set\.json: was measured on wds\/flickr30k, this run is .*captions\.csv; compare like with like$/);
  assert.equal(run.stdout, '');

  // A text model that cannot load, its caption embeddings not cached: a run that encoded captions fails on it instead.
  const noText = join(dir, 'no-text');
  await cp(model, noText, { recursive: true });
  await writeFile(join(noText, 'onnx', 'text_model.onnx'), 'not an onnx model');
  const cases: [string, RegExp][] = [
    [await writeBaseline('other-copy.json', (b) => ((b.dataset.sha256 = 'e'.repeat(64)), (b.results[0].model.id = noText))), /was measured on a different copy of .*captions\.csv \(sha256 eeeeeeeeeeee…, now [0-9a-f]{12}…\)$/],
    [await writeBaseline('other-size.json', (b) => ((b.dataset.images = 31), (b.results[0].model.id = noText))), /was measured on 31 images, this run on 30 images; compare like with like$/],
  ];
  for (const [file, message] of cases) {
    const copy = await runCli(['retrieval', join(dir, 'captions.csv'), '--model', noText, '--cache-dir', join(dir, 'cache-no-text'), '--quiet', '--baseline', file]);
    assert.equal(copy.code, 3, copy.stderr);
    assert.match(oneErrorLine(copy.stderr), message);
    assert.equal(copy.stdout, '', 'no summary: nothing was measured');
  }
});

test('retrieval --baseline of another model is compared, with a warning', async () => {
  const otherModel = await writeBaseline('other-model.json', (b) => (b.results[0].model.id = 'someone/else'));
  const run = await runCli(args('captions.csv', '--baseline', otherModel));
  assert.equal(run.code, 0, run.stderr);
  assert.match(oneErrorLine(run.stderr), /^clip-eval: warning: --baseline .*other-model\.json: holds someone\/else \[fp32\], compared with .*model \[fp32\], another model$/);
  assert.match(run.stdout, /pass {2}.*imageRetrievalRecall@1 100\.00 % vs baseline/);
});

test('retrieval: a $GITHUB_STEP_SUMMARY that cannot be written is a warning, and a passing gate still exits 0', async () => {
  const notAFolder = join(dir, 'plain-file');
  await writeFile(notAFolder, '');
  const summary = join(notAFolder, 'summary.md');
  const run = await runCli(args('captions.csv', '--min', 'imageRetrievalRecall@1=50%'), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 0, run.stderr);
  assert.match(oneErrorLine(run.stderr), new RegExp(`^clip-eval: warning: \\$GITHUB_STEP_SUMMARY ${summary}: a part of the path is a file`));
  assert.match(run.stdout, /pass {2}.*imageRetrievalRecall@1 100\.00 % meets the bar 50\.00 %/);
});
