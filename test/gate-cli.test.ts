import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, lstat, mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternCifarArchive, writePatternClip } from '../scripts/make-pattern-clip.js';
import { oneErrorLine, writeSpoiledResult, type Json } from './support/baseline.js';
import { runCli } from './support/cli.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { markdownBlocks } from './support/markdown.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { havePython, xmlElements } from './support/xml.js';

/**
 * The regression gate's edges end to end: baselines that cannot be compared, output paths that are
 * links or devices, an unwritable step summary, names that would break XML or Markdown.
 */
let dir: string;
let server: TestServer;
let model: string;
let cache: string;
let baselinePath: string;

before(async () => {
  dir = await makeTempDir('clip-eval-gate-');
  model = join(dir, 'model');
  cache = join(dir, 'cache');
  await writePatternClip(model, { variants: false });
  await writePatternCifarArchive(join(dir, 'cifar-100-binary.tar.gz'), { name: 'cifar100', perClass: 1 });
  server = await startTestServer({ '/cifar-100-binary.tar.gz': { file: join(dir, 'cifar-100-binary.tar.gz') } });
  baselinePath = join(dir, 'baseline.json');
  const run = await runCli(args('--json', baselinePath));
  assert.equal(run.code, 0, run.stderr);
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function args(...extra: string[]): string[] {
  return ['cifar100', '--model', model, '--dataset-url', server.url('/cifar-100-binary.tar.gz'), '--cache-dir', cache, '--quiet', ...extra];
}

const writeBaseline = (name: string, spoil: (baseline: Json) => void) => writeSpoiledResult(baselinePath, join(dir, name), spoil);

test('--baseline: a file of the wrong shape is refused when read, naming the field, before the model is even looked at', async () => {
  const cases: [string, (b: Json) => void, RegExp][] = [
    ['empty-metrics.json', (b) => (b.results[0].metrics = {}), /results\[0\]\.metrics holds none of top1, top5, meanPerClassRecall/],
    ['string-metric.json', (b) => (b.results[0].metrics.top1 = '1'), /results\[0\]\.metrics\.top1 is not a fraction between 0 and 1/],
    ['null-result.json', (b) => (b.results = [null]), /results\[0\] is not an object/],
    ['null-model.json', (b) => (b.results[0].model = null), /results\[0\]\.model is not an object/],
    ['no-sha256.json', (b) => delete b.dataset.sha256, /dataset\.sha256 is not a non-empty string/],
  ];
  for (const [name, spoil, message] of cases) {
    const file = await writeBaseline(name, spoil);
    // A model that does not exist and an empty offline cache: any work before the check fails differently.
    const run = await runCli(['cifar100', '--model', join(dir, 'no-such-model'), '--cache-dir', join(dir, 'empty-cache'), '--offline', '--quiet', '--baseline', file]);
    assert.equal(run.code, 3, `${name}: ${run.stderr}`);
    const line = oneErrorLine(run.stderr);
    assert.ok(line.includes(`--baseline ${file}: `), line);
    assert.match(line, message);
  }
});

test('--baseline from another data set or another copy of it is refused once the data is loaded, before any image is encoded', async () => {
  // A model whose image encoder cannot load: a run that got as far as encoding would fail on it instead.
  const broken = join(dir, 'broken-model');
  await cp(model, broken, { recursive: true });
  await writeFile(join(broken, 'onnx', 'vision_model.onnx'), 'not an onnx model');
  const otherCopy = await writeBaseline('other-copy.json', (b) => (b.dataset.sha256 = 'e'.repeat(64)));
  const otherSet = await writeBaseline('other-set.json', (b) => (b.dataset.name = 'cifar10'));
  const cases: [string, RegExp][] = [
    [otherCopy, /was measured on a different copy of cifar100/],
    [otherSet, /was measured on cifar10, this run is cifar100/],
  ];
  for (const [file, message] of cases) {
    const run = await runCli(['cifar100', '--model', broken, '--dataset-url', server.url('/cifar-100-binary.tar.gz'), '--cache-dir', cache, '--quiet', '--baseline', file]);
    assert.equal(run.code, 3, run.stderr);
    assert.match(oneErrorLine(run.stderr), message);
    assert.equal(run.stdout, '', 'no summary: nothing was evaluated');
  }
});

test('--baseline of an image folder: another spelling of its path, from another working directory, compares; other images are refused', async () => {
  const fold = join(dir, 'fold');
  for (const [set, classes] of [['good', ['apple', 'bear']], ['bad', ['apple', 'bicycle']]] as const) {
    for (const name of classes) {
      await mkdir(join(fold, set, name), { recursive: true });
      await classImage(name).png().toFile(join(fold, set, name, 'image.png'));
    }
  }
  const eval_ = (spec: string, cwd: string, ...extra: string[]) => runCli(['eval', spec, '--model', model, '--cache-dir', cache, '--quiet', ...extra], { cwd });
  const folderBaseline = join(dir, 'folder-baseline.json');
  const first = await eval_('fold/good', dir, '--json', folderBaseline);
  assert.equal(first.code, 0, first.stderr);
  for (const [spec, cwd] of [['./good/', fold], [`folder:${join(fold, 'good')}`, join(dir, 'model')]]) {
    const run = await eval_(spec, cwd, '--baseline', folderBaseline);
    assert.equal(run.code, 0, `${spec}: ${run.stderr}`);
    assert.match(run.stdout, /pass {2}.*top-1 100\.00 % vs baseline 100\.00 %/);
  }
  const other = await eval_('fold/bad', dir, '--baseline', folderBaseline);
  assert.equal(other.code, 3, other.stderr);
  assert.match(oneErrorLine(other.stderr), /was measured on fold\/good, this run is fold\/bad, other data \(sha256/);
});

test('--baseline measured with another template set or another model: compared, with a warning', async () => {
  const run = await runCli(args('--templates', 'single', '--baseline', baselinePath));
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /^clip-eval: warning: --baseline .*baseline\.json: was measured with the template set openai \(18\), this run uses single \(1\)/m);
  const otherModel = await writeBaseline('other-model.json', (b) => (b.results[0].model.id = 'someone/else'));
  const moved = await runCli(args('--baseline', otherModel));
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stderr, /warning: .*holds someone\/else \[fp32\], compared with .*model \[fp32\], another model/);
});

test('outputs: a symlinked --json updates its target and keeps the link', async () => {
  const target = join(dir, 'runs', 'run-1.json');
  await mkdir(join(dir, 'runs'));
  await writeFile(target, 'old\n');
  const link = join(dir, 'latest.json');
  await symlink(target, link);
  const run = await runCli(args('--json', link));
  assert.equal(run.code, 0, run.stderr);
  assert.ok((await lstat(link)).isSymbolicLink(), 'the link is still a link');
  assert.equal(await readlink(link), target);
  assert.equal((JSON.parse(await readFile(target, 'utf8')) as Json).schema, 'clip-eval/evaluation@1');
});

test('outputs: a character device is written through, not replaced; a full one is exit 3 with the path', { skip: process.getuid?.() === 0 ? false : 'needs root to create a device node' }, async () => {
  // The kernel's /dev/full (1, 7), as our own node: every write fails with ENOSPC.
  const full = join(dir, 'full');
  assert.equal(spawnSync('mknod', [full, 'c', '1', '7']).status, 0);
  const run = await runCli(args('--json', full));
  assert.equal(run.code, 3, run.stderr);
  assert.match(oneErrorLine(run.stderr), new RegExp(`--json output ${full}: no space left on the device`));
  assert.ok((await stat(full)).isCharacterDevice(), 'still the device node');
});

test('outputs: --json through a link to /dev/stdout prints the report on stdout', async () => {
  const link = join(dir, 'stdout');
  await symlink('/dev/stdout', link);
  const run = await runCli(args('--json', link));
  assert.equal(run.code, 0, run.stderr);
  const json = run.stdout.slice(run.stdout.indexOf('\n{') + 1);
  assert.equal((JSON.parse(json) as Json).schema, 'clip-eval/evaluation@1');
  assert.ok((await lstat(link)).isSymbolicLink());
});

test('outputs: the same file for two output flags is a usage error, also through a link', async () => {
  const file = join(dir, 'same.out');
  const link = join(dir, 'same-link.out');
  await writeFile(file, '');
  await symlink(file, link);
  for (const extra of [['--json', file, '--junit', file], ['--predictions', file, '--json', link]]) {
    const run = await runCli(args(...extra));
    assert.equal(run.code, 2, run.stderr);
    assert.match(oneErrorLine(run.stderr), /name the same file/);
  }
});

test('outputs: a link to a file not written yet names that file: two flags aliasing it are a usage error', async () => {
  const folder = join(dir, 'not-yet');
  await mkdir(folder);
  // s2.json -> s.json (relative, dangling until the run writes s.json), s3.json -> s2.json: both are s.json.
  await symlink('s.json', join(folder, 's2.json'));
  await symlink(join(folder, 's2.json'), join(folder, 's3.json'));
  for (const alias of ['s2.json', 's3.json']) {
    const run = await runCli(args('--json', join(folder, 's.json'), '--junit', join(folder, alias)));
    assert.equal(run.code, 2, run.stderr);
    assert.match(oneErrorLine(run.stderr), new RegExp(`--json and --junit name the same file \\(.*${alias}\\)`));
  }
  await assert.rejects(lstat(join(folder, 's.json')), 'nothing was written');
});

test('$GITHUB_STEP_SUMMARY that cannot be written: a warning, and a passing gate still exits 0', async () => {
  const notAFolder = join(dir, 'plain-file');
  await writeFile(notAFolder, '');
  const summary = join(notAFolder, 'summary.md');
  const run = await runCli(args('--min-top1', '0.5'), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, new RegExp(`^clip-eval: warning: \\$GITHUB_STEP_SUMMARY ${summary}: a part of the path is a file`, 'm'));
  assert.match(run.stdout, /pass {2}.*top-1 100\.00 % meets the bar 50\.00 %/);
});

test('a model path with a control character, a pipe and dots: JUnit parses, its classname has no dot but its two, and the step-summary row has its seven cells', { skip: havePython ? false : 'needs python3 to parse XML' }, async () => {
  const odd = join(dir, 'odd\x01|model.v1.5');
  await cp(model, odd, { recursive: true });
  const junit = join(dir, 'odd.xml');
  const summary = join(dir, 'odd-summary.md');
  const run = await runCli(['cifar100', '--model', odd, '--dataset-url', server.url('/cifar-100-binary.tar.gz'), '--cache-dir', cache, '--quiet', '--min-top1', '0.5', '--junit', junit], { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 0, run.stderr);
  const cases = xmlElements(await readFile(junit, 'utf8'), 'testcase');
  assert.equal(cases.length, 4);
  const classname = `clip-eval.cifar100.${odd.replace(/\./g, '_').replace('\x01', '\\x01')} [fp32]`;
  assert.ok(cases.every((c) => c.classname === classname), JSON.stringify(cases[0]));
  assert.equal(classname.split('.').length, 3, 'viewers split the classname at its dots: package clip-eval.cifar100, the model its class');
  const row = (await readFile(summary, 'utf8')).split('\n').find((line) => line.includes('odd'))!;
  assert.equal(row.split(/(?<!\\)\|/).length - 2, 7, row);
});

test('$GITHUB_STEP_SUMMARY with --baseline-predictions and checks: the baseline comparison and the checks each under their own heading', async () => {
  const base = join(dir, 'paired-base.json');
  const rows = join(dir, 'paired-base.jsonl');
  const first = await runCli(args('--json', base, '--predictions', rows));
  assert.equal(first.code, 0, first.stderr);
  const summary = join(dir, 'paired-summary.md');
  const run = await runCli(args('--baseline', base, '--baseline-predictions', rows, '--min-top1', '0.5', '--max-drop', '0.5'), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 0, run.stderr);
  const blocks = markdownBlocks(await readFile(summary, 'utf8'));
  assert.deepEqual(blocks.map((block) => block.kind), ['heading', 'table', 'heading', 'list', 'heading', 'table'], JSON.stringify(blocks));
  assert.equal(blocks[2]!.lines[0], "#### Paired with the baseline's predictions, top-1 (exact McNemar test)");
  assert.deepEqual(blocks[3]!.lines.map((line) => line.split(model).join('MODEL')), ['- MODEL [fp32] vs baseline: +0.00 pp (baseline right only 0, MODEL [fp32] right only 0, p = 1.0000)']);
  assert.equal(blocks[4]!.lines[0], '#### Checks');
  assert.deepEqual(blocks[5]!.lines.slice(0, 2), ['| verdict | check |', '|---|---|']);
  assert.ok(blocks[5]!.lines.slice(2).every((line) => line.startsWith('| ✅ pass | ')), blocks[5]!.lines.join('\n'));
  assert.ok(blocks[5]!.lines.some((line) => /vs baseline .*paired p = 1\.0000/.test(line)), 'the verdict against the baseline is a row of the checks');
});
