import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import { writePatternCifarArchive, writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { makeTempDir } from './support/paths.js';
import { havePython, xmlElements } from './support/xml.js';

/**
 * The main job end to end: the built CLI against the pattern CLIP fixture and a synthetic CIFAR-100
 * tarball served on 127.0.0.1. Through a correct pipeline the fixture scores ~100 % top-1; with
 * labels mis-wired it scores ~1 %, so these tests can tell a right pipeline from a wrong one.
 */
let dir: string;
let server: TestServer;
let model: string;

before(async () => {
  dir = await makeTempDir('clip-eval-e2e-');
  model = join(dir, 'model');
  await writePatternClip(model, { variants: true });
  await writePatternCifarArchive(join(dir, 'cifar-100-binary.tar.gz'), { name: 'cifar100', perClass: 3 });
  await writePatternCifarArchive(join(dir, 'cifar-10-binary.tar.gz'), { name: 'cifar10', perClass: 10 });
  server = await startTestServer({
    '/cifar-100-binary.tar.gz': { file: join(dir, 'cifar-100-binary.tar.gz') },
    '/cifar-10-binary.tar.gz': { file: join(dir, 'cifar-10-binary.tar.gz') },
  });
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function cifar100Args(cache: string, ...extra: string[]): string[] {
  return ['cifar100', '--model', model, '--dataset-url', server.url('/cifar-100-binary.tar.gz'), '--cache-dir', cache, '--quiet', ...extra];
}

interface Report {
  dataset: { name: string; images: number; sha256: string; files: Record<string, string>; subset: Record<string, number> };
  results: { model: { id: string; variant: string; files: { role: string; sha256: string }[] }; metrics: { top1: number; top5: number; meanPerClassRecall: number; superclassTop1?: number; perClass: unknown[] }; timing: { textEmbeddings: string } }[];
}

async function readReport(path: string): Promise<Report> {
  return JSON.parse(await readFile(path, 'utf8')) as Report;
}

test('cifar100: downloads, evaluates ~100 % on the fixture, writes JSON and predictions, then reuses cached text embeddings', async () => {
  const cache = join(dir, 'cache-main');
  const json = join(dir, 'run1.json');
  const predictions = join(dir, 'run1.jsonl');
  const cold = await runCli(cifar100Args(cache, '--json', json, '--predictions', predictions));
  assert.equal(cold.code, 0, cold.stderr);
  assert.match(cold.stdout, /top-1\s+100\.00 %/);
  assert.match(cold.stdout, /text embeddings\s+computed/);
  assert.match(cold.stderr, /^clip-eval: warning: --dataset-md5: not given for http:\/\/127\.0\.0\.1:\d+\/\S+, so its archive is checked for layout only$/m, 'a custom URL without --dataset-md5 is checked for layout only, with a warning naming the flag');
  const report = await readReport(json);
  assert.equal(report.dataset.images, 300);
  assert.ok(report.results[0]!.metrics.top1 >= 0.95);
  assert.ok(report.results[0]!.metrics.superclassTop1! >= 0.95);
  assert.equal(report.results[0]!.metrics.perClass.length, 100);
  assert.deepEqual(report.results[0]!.model.files.map((f) => f.role), ['vision', 'text', 'tokenizer']);

  const lines = (await readFile(predictions, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { index: number; id: string; label: number; top5: number[]; scores: number[] });
  assert.equal(lines.length, 300);
  assert.deepEqual(Object.keys(lines[0]!), ['model', 'index', 'id', 'label', 'top5', 'scores']);
  assert.deepEqual(lines.map((l) => l.index), Array.from({ length: 300 }, (_, i) => i));
  assert.deepEqual(lines.map((l) => l.id), Array.from({ length: 300 }, (_, i) => String(i)), 'a CIFAR id is the record index');
  assert.ok(lines.every((l) => l.top5.length === 5 && l.scores.length === 5 && l.scores[0]! >= l.scores[4]!));
  assert.ok(lines.filter((l) => l.top5[0] === l.label).length >= 285);

  const warm = await runCli(cifar100Args(cache, '--json', join(dir, 'run2.json')));
  assert.equal(warm.code, 0, warm.stderr);
  assert.match(warm.stdout, /text embeddings\s+cached/);
  const downloads = server.count('/cifar-100-binary.tar.gz');
  const again = await readReport(join(dir, 'run2.json'));
  assert.deepEqual(again.results[0]!.metrics, report.results[0]!.metrics, 'the same inputs give identical metrics');
  assert.equal(again.results[0]!.timing.textEmbeddings, 'cached');

  // Replace the text model in place by another of the same size (another seed's token table) and put its
  // size, inode and nanosecond mtime back, as re-extracting an archive with normalised times does: only
  // the ctime tells, and the run must notice, recompute and certify the new file.
  const textModel = join(model, 'onnx', 'text_model.onnx');
  const original = await readFile(textModel);
  const otherSeed = join(dir, 'model-seed-2');
  await writePatternClip(otherSeed, { seed: 2, variants: false });
  const replacement = await readFile(join(otherSeed, 'onnx', 'text_model.onnx'));
  assert.equal(replacement.length, original.length);
  assert.notDeepEqual(replacement, original);
  const stamp = join(dir, 'text-model-time');
  await writeFile(stamp, '');
  assert.equal(spawnSync('touch', ['-r', textModel, stamp]).status, 0);
  try {
    const handle = await open(textModel, 'r+');
    await handle.write(replacement, 0, replacement.length, 0);
    await handle.close();
    // touch -r restores the nanosecond time that a JavaScript Date would round.
    assert.equal(spawnSync('touch', ['-r', stamp, textModel]).status, 0);
    const replaced = await runCli(cifar100Args(cache, '--json', join(dir, 'run3.json')));
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.match(replaced.stdout, /text embeddings\s+computed/);
    assert.equal(server.count('/cifar-100-binary.tar.gz'), downloads, 'the data set comes from the cache');
    const rerun = await readReport(join(dir, 'run3.json'));
    const textFile = rerun.results[0]!.model.files.find((f) => f.role === 'text')!;
    assert.equal(textFile.sha256, createHash('sha256').update(replacement).digest('hex'), 'the report certifies the file that was run');
    assert.ok(rerun.results[0]!.metrics.top1 <= 0.2, `another model's text side scores about chance, got top-1 ${rerun.results[0]!.metrics.top1}`);
  } finally {
    await writeFile(textModel, original);
  }
});

test('cifar100: mis-wired class names score about chance, and --templates/--no-cache change what is computed', async () => {
  const cache = join(dir, 'cache-miswired');
  const extracted = join(dir, 'miswired');
  await tar.x({ file: join(dir, 'cifar-100-binary.tar.gz'), cwd: dir });
  await cp(join(dir, 'cifar-100-binary'), extracted, { recursive: true });
  const namesFile = join(extracted, 'fine_label_names.txt');
  const names = (await readFile(namesFile, 'utf8')).trim().split('\n');
  await writeFile(namesFile, `${[...names.slice(1), names[0]].join('\n')}\n`);
  const run = await runCli(['cifar100', '--model', model, '--data-dir', extracted, '--cache-dir', cache, '--quiet', '--templates', 'single', '--no-cache', '--json', join(dir, 'miswired.json')]);
  assert.equal(run.code, 0, run.stderr);
  const report = await readReport(join(dir, 'miswired.json'));
  assert.ok(report.results[0]!.metrics.top1 <= 0.05, `top-1 ${report.results[0]!.metrics.top1}`);
  assert.match(run.stdout, /templates\s+single \(1 per class\)/);
  assert.match(run.stdout, /text embeddings\s+computed/);
});

test('cifar100: an edited label file never passes as the same data: in the cache it is refused, in --data-dir it changes the digest', async () => {
  const cache = join(dir, 'cache-labels');
  const baseline = join(dir, 'labels-baseline.json');
  const first = await runCli(cifar100Args(cache, '--per-class', '1', '--json', baseline));
  assert.equal(first.code, 0, first.stderr);
  const report = await readReport(baseline);
  const swapFirstTwoNames = async (file: string) => {
    const names = (await readFile(file, 'utf8')).trim().split('\n');
    await writeFile(file, `${[names[1], names[0], ...names.slice(2)].join('\n')}\n`);
  };

  const [cached] = (await readdir(join(cache, 'datasets'))).filter((name) => /^cifar100-url-[0-9a-f]{12}$/.test(name));
  await swapFirstTwoNames(join(cache, 'datasets', cached!, 'fine_label_names.txt'));
  const edited = await runCli(cifar100Args(cache, '--per-class', '1', '--baseline', baseline));
  assert.equal(edited.code, 3, edited.stderr);
  assert.equal(edited.stderr.trim().split('\n').length, 1, edited.stderr);
  assert.match(edited.stderr.trim(), /^clip-eval: .*fine_label_names\.txt changed since it was fetched \(sha256 [0-9a-f]{64}, recorded [0-9a-f]{64}\); delete .* and fetch it again$/);

  // A user's own copy has no record to check against, but its digest says what was read.
  const own = join(dir, 'labels-own');
  await mkdir(own);
  await tar.x({ file: join(dir, 'cifar-100-binary.tar.gz'), cwd: own });
  const ownArgs = ['cifar100', '--model', model, '--data-dir', own, '--cache-dir', cache, '--quiet', '--per-class', '1', '--baseline', baseline];
  const same = await runCli([...ownArgs, '--json', join(dir, 'labels-own.json')]);
  assert.equal(same.code, 0, same.stderr);
  assert.equal((await readReport(join(dir, 'labels-own.json'))).dataset.sha256, report.dataset.sha256, 'the same files give the same digest');
  await swapFirstTwoNames(join(own, 'cifar-100-binary', 'fine_label_names.txt'));
  const other = await runCli(ownArgs);
  assert.equal(other.code, 3, other.stderr);
  assert.match(other.stderr, /^clip-eval: --baseline .*labels-baseline\.json: was measured on a different copy of cifar100/m);
  assert.deepEqual(Object.keys(report.dataset.files).sort(), ['coarse_label_names.txt', 'fine_label_names.txt', 'test.bin']);
});

test('cifar10: the same machinery on CIFAR-10', async () => {
  const run = await runCli(['cifar10', '--model', model, '--dataset-url', server.url('/cifar-10-binary.tar.gz'), '--cache-dir', join(dir, 'cache-10'), '--quiet', '--limit', '50']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /clip-eval cifar10/);
  assert.match(run.stdout, /images\s+50 of 100/);
  assert.match(run.stdout, /top-1\s+100\.00 %/);
  assert.doesNotMatch(run.stdout, /super-class/);
});

test('CI checks: thresholds, baselines, two variants, JUnit, step summary and exit codes', async () => {
  const cache = join(dir, 'cache-checks');
  const baseline = join(dir, 'baseline.json');
  const junit = join(dir, 'junit.xml');
  const summary = join(dir, 'step-summary.md');
  await writeFile(summary, '# earlier step\n');

  const pass = await runCli(cifar100Args(cache, '--per-class', '2', '--variant', 'fp32,int8', '--min-top1', '95%', '--min-top5', '0.99', '--json', baseline, '--junit', junit), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(pass.code, 0, pass.stderr);
  assert.match(pass.stdout, /pass {2}.*\[int8\]: top-1 100\.00 % meets the bar 95\.00 %/);
  assert.match(pass.stdout, /model\s+variant\s+top-1/, 'a side-by-side table for two variants');
  const report = await readReport(baseline);
  assert.deepEqual(report.results.map((r) => r.model.variant), ['fp32', 'int8']);
  assert.equal(report.dataset.images, 200);
  const markdown = await readFile(summary, 'utf8');
  assert.ok(markdown.startsWith('# earlier step\n'), 'the step summary is appended to');
  assert.match(markdown, /✅ all checks passed/);
  if (havePython) {
    const [suites] = xmlElements(await readFile(junit, 'utf8'), 'testsuites');
    assert.equal(suites!.tests, '8');
    assert.equal(suites!.failures, '0');
  }

  const fail = await runCli(cifar100Args(cache, '--per-class', '2', '--min-top1', '1', '--templates', join(dir, 'bad-templates.txt')));
  assert.equal(fail.code, 3, 'a missing templates file is an input error');
  assert.match(fail.stderr, /bad-templates\.txt: cannot read the file/);

  const same = await runCli(cifar100Args(cache, '--per-class', '2', '--baseline', baseline, '--max-drop', '0'));
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /top-1 100\.00 % vs baseline 100\.00 % \(\+0\.00 pp\)/);

  const subsetMismatch = await runCli(cifar100Args(cache, '--per-class', '1', '--baseline', baseline));
  assert.equal(subsetMismatch.code, 3);
  assert.match(subsetMismatch.stderr, /^clip-eval: --baseline .*baseline\.json: was measured on 200 images/m);

  // A model of another seed does not match the data (about chance), measured against a baseline of 100 %.
  const weaker = join(dir, 'weaker-model');
  await writePatternClip(weaker, { variants: true, seed: 2 });
  const worse = join(dir, 'worse.json');
  const baselineJson = JSON.parse(await readFile(baseline, 'utf8')) as Report;
  baselineJson.results.forEach((r) => (r.model.id = weaker));
  await writeFile(worse, JSON.stringify(baselineJson));
  const dropped = await runCli(['cifar100', '--model', weaker, '--dataset-url', server.url('/cifar-100-binary.tar.gz'), '--cache-dir', cache, '--quiet', '--per-class', '2', '--variant', 'fp32,int8', '--baseline', worse, '--junit', junit]);
  assert.equal(dropped.code, 1, dropped.stderr);
  assert.match(dropped.stderr, /clip-eval: check failed: .*weaker-model \[fp32\]: top-1 \d+\.\d\d % vs baseline 100\.00 % \(-\d+\.\d\d pp, more than the allowed 0\.50 pp\)/);
  assert.match(dropped.stderr, /clip-eval: check failed: .*weaker-model \[int8\]: top-1 /);
  if (havePython) {
    const failing = xmlElements(await readFile(junit, 'utf8'), 'testcase').filter((c) => (c._children as unknown as string[]).includes('failure'));
    assert.ok(failing.some((c) => c.name === 'top-1' && c.classname!.endsWith('[fp32]')), JSON.stringify(failing));
    assert.ok(failing.some((c) => c.name === 'top-1' && c.classname!.endsWith('[int8]')), JSON.stringify(failing));
  }
});

test('usage and input errors: one line on stderr and their exit codes', async () => {
  const cache = join(dir, 'cache-errors');
  const cases: [string[], number, RegExp][] = [
    [['cifar100', '--bogus'], 2, /unknown option '--bogus'/],
    [['cifar100', '--min-top', '0.5'], 2, /^clip-eval: unknown option '--min-top' \(Did you mean one of --min-top1, --min-top5\?\) \(see --help\)$/],
    // CIFAR has one split and no file that could be unreadable: these eval flags are not cifar100's.
    [['cifar100', '--split', 'test'], 2, /unknown option '--split'/],
    [['cifar10', '--skip-unreadable'], 2, /unknown option '--skip-unreadable'/],
    [['cifar100', '--batch-size', '0'], 2, /--batch-size 0: expected a positive whole number/],
    [['cifar100', '--min-top1', '64.5'], 2, /--min-top1 64\.5: expected a fraction/],
    [['cifar100', '--variant', 'int4'], 2, /int4/],
    [['cifar100', '--model', join(dir, 'nowhere'), '--cache-dir', cache, '--offline'], 3, /nowhere/],
    [['cifar100', '--model', model, '--data-dir', join(dir, 'no-data'), '--cache-dir', cache], 3, /no-data/],
    [['cifar100', '--model', model, '--cache-dir', cache, '--offline', '--quiet'], 3, /offline/i],
    [['cifar100', '--json', join(dir, 'missing-folder', 'out.json')], 2, /--json .*missing-folder/],
  ];
  for (const [args, code, message] of cases) {
    const run = await runCli(args);
    assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line for ${args.join(' ')}: ${run.stderr}`);
    assert.match(lines[0]!, /^clip-eval: /);
    assert.match(lines[0]!, message);
  }
});

test('cifar100/cifar10 --help lists only flags that do something there: no --split, no --skip-unreadable (eval has them)', async () => {
  for (const command of ['cifar100', 'cifar10']) {
    const help = await runCli([command, '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.doesNotMatch(help.stdout, /--split|--skip-unreadable/);
    assert.match(help.stdout, /--data-dir/);
  }
  const evalHelp = await runCli(['eval', '--help']);
  assert.match(evalHelp.stdout, /--split <name>[\s\S]*--skip-unreadable/);
});
