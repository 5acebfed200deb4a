import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternCifarArchive, writePatternClip } from '../scripts/make-pattern-clip.js';
import { percentInterval } from '../src/core/format.js';
import { resultNumber } from '../src/core/format.js';
import { wilsonInterval } from '../src/tasks/statistics.js';
import { runCli } from './support/cli.js';
import { exactMcnemar } from './support/exact-mcnemar.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { havePython, xmlElements } from './support/xml.js';

/**
 * Statistics end to end through the built CLI: intervals, paired comparisons of several models on the
 * same images, the paired comparison with a baseline from its per-image predictions, and the per-class
 * CSV. Two pattern CLIPs: the default seed classifies the synthetic CIFAR-10 right, another seed's
 * model is at about chance, so the pairs range from no discordant image to nearly all of them.
 */
let dir: string;
let server: TestServer;
let model: string;
let other: string;

before(async () => {
  dir = await makeTempDir('clip-eval-statistics-');
  model = join(dir, 'model');
  other = join(dir, 'other');
  await writePatternClip(model, { variants: true });
  await writePatternClip(other, { variants: true, seed: 2 });
  await writePatternCifarArchive(join(dir, 'cifar-10-binary.tar.gz'), { name: 'cifar10', perClass: 10 });
  server = await startTestServer({ '/cifar-10-binary.tar.gz': { file: join(dir, 'cifar-10-binary.tar.gz') } });
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function args(...extra: string[]): string[] {
  return ['cifar10', '--dataset-url', server.url('/cifar-10-binary.tar.gz'), '--cache-dir', join(dir, 'cache'), '--quiet', ...extra];
}

type Json = Record<string, any>;

interface Row {
  model: number;
  index: number;
  id: string;
  label: number;
  top5: number[];
}

async function readRows(path: string): Promise<Row[]> {
  return (await readFile(path, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as Row);
}

/** Per model, 1 where the row's best class is its label: computed from the rows alone. */
function correctByModel(rows: readonly Row[]): number[][] {
  const byModel: number[][] = [];
  for (const row of rows) (byModel[row.model] ??= [])[row.index] = row.top5[0] === row.label ? 1 : 0;
  return byModel;
}

function discordant(a: readonly number[], b: readonly number[]): { onlyA: number; onlyB: number } {
  let onlyA = 0;
  let onlyB = 0;
  a.forEach((right, n) => {
    if (right && !b[n]) onlyA += 1;
    if (b[n] && !right) onlyB += 1;
  });
  return { onlyA, onlyB };
}

function assertP(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-12 + 1e-9 * expected, `${what}: p ${actual}, exact ${expected}`);
}

/** The row with its best class turned from right to wrong or from wrong to right. */
function flipTopOne(line: string): string {
  const row = JSON.parse(line) as Row;
  row.top5[0] = row.top5[0] === row.label ? (row.label + 1) % 10 : row.label;
  return JSON.stringify(row);
}

/** RFC 4180 CSV read back by Python's csv module, an independent parser. */
function parseCsv(text: string): string[][] {
  const script = 'import csv, io, json, sys\nprint(json.dumps(list(csv.reader(io.StringIO(sys.stdin.read(), newline=""), strict=True))))';
  const run = spawnSync('python3', ['-c', script], { input: text, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as string[][];
}

test('two models, two variants each: intervals, every pair compared as the --predictions rows say, and the CSV equal to the JSON', async () => {
  const json = join(dir, 'four.json');
  const predictions = join(dir, 'four.jsonl');
  const csv = join(dir, 'four.csv');
  const junit = join(dir, 'four.xml');
  const summary = join(dir, 'summary.md');
  await writeFile(summary, '');
  const run = await runCli(args('--model', model, '--model', other, '--variant', 'fp32,int8', '--json', json, '--predictions', predictions, '--csv', csv, '--junit', junit), { env: { GITHUB_STEP_SUMMARY: summary } });
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as Json;
  assert.deepEqual(report.results.map((r: Json) => `${r.model.id} ${r.model.variant}`), [`${model} fp32`, `${model} int8`, `${other} fp32`, `${other} int8`]);

  // --predictions: every model's rows, each with its index into results.
  const rows = await readRows(predictions);
  assert.equal(rows.length, 4 * 100);
  const correct = correctByModel(rows);
  assert.equal(correct.length, 4);
  for (const [m, result] of report.results.entries()) {
    const right = correct[m]!.reduce((sum, value) => sum + value, 0);
    assert.equal(correct[m]!.length, 100);
    assert.equal(right / 100, result.metrics.top1, `model ${m}: its rows give its top-1`);
    assert.deepEqual(result.metrics.top1Interval, wilsonInterval(right, 100).map(resultNumber), 'the interval, to the 15 digits a result file keeps');
    // The summary's line for it: `top-1  100.00 %  (96.30–100.00)`.
    assert.ok(run.stdout.includes(`  top-1                  ${(100 * result.metrics.top1).toFixed(2)} %  ${percentInterval(result.metrics.top1Interval)}\n`), run.stdout);
  }
  assert.ok(report.results[0].metrics.top1 > 0.9 && report.results[2].metrics.top1 < 0.5, 'the fixture: one model right, the other about chance');

  // comparisons: every pair a < b, counted again from the rows, with the exact p.
  assert.deepEqual(report.comparisons.map((c: Json) => [c.a, c.b]), [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]);
  const labels = [`${model} [fp32]`, `${model} [int8]`, `${other} [fp32]`, `${other} [int8]`];
  for (const c of report.comparisons) {
    const { onlyA, onlyB } = discordant(correct[c.a]!, correct[c.b]!);
    assert.equal(c.metric, 'top1');
    assert.deepEqual([c.onlyA, c.onlyB], [onlyA, onlyB], `pair ${c.a}, ${c.b}`);
    assert.ok(Math.abs(c.delta - (report.results[c.b].metrics.top1 - report.results[c.a].metrics.top1)) < 1e-12);
    assertP(c.pValue, exactMcnemar(onlyA, onlyB), `pair ${c.a}, ${c.b}`);
    const [a, b] = [labels[c.a]!, labels[c.b]!];
    const line = `  ${b} vs ${a}: ${c.delta < 0 ? '-' : '+'}${Math.abs(100 * c.delta).toFixed(2)} pp (${a} right only ${onlyA}, ${b} right only ${onlyB}, p `;
    assert.ok(run.stdout.includes(line), `the summary prints ${line}\n${run.stdout}`);
  }
  assert.ok(report.comparisons.some((c: Json) => c.pValue < 1e-6), 'the right model against the one at chance');

  // --csv: one row per model and class, read back by another parser, equal to the JSON's perClass.
  if (havePython) {
    const [header, ...body] = parseCsv(await readFile(csv, 'utf8'));
    assert.deepEqual(header, ['model', 'model_id', 'variant', 'class_index', 'class_name', 'images', 'correct', 'accuracy', 'interval_low', 'interval_high', 'top_confusion', 'top_confusion_count']);
    assert.equal(body.length, 4 * 10);
    for (const [m, result] of report.results.entries()) {
      const mine = body.filter((cells) => cells[0] === String(m));
      const back = mine.map((cells) => ({
        index: Number(cells[3]),
        name: cells[4],
        images: Number(cells[5]),
        correct: Number(cells[6]),
        accuracy: cells[7] === '' ? null : resultNumber(Number(cells[7])),
        interval: [resultNumber(Number(cells[8])), resultNumber(Number(cells[9]))],
      }));
      assert.deepEqual(back, result.metrics.perClass, `model ${m}: the CSV's values, to the 15 digits the JSON keeps`);
      assert.ok(mine.every((cells) => cells[1] === result.model.id && cells[2] === result.model.variant));
      // The top confusion, counted again from the rows.
      for (const cells of mine) {
        const wrong = new Map<number, number>();
        for (const row of rows) if (row.model === m && row.label === Number(cells[3]) && row.top5[0] !== row.label) wrong.set(row.top5[0]!, (wrong.get(row.top5[0]!) ?? 0) + 1);
        const most = [...wrong].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0];
        const names = result.metrics.perClass.map((entry: Json) => entry.name);
        assert.deepEqual([cells[10], cells[11]], most ? [names[most[0]], String(most[1])] : ['', ''], `model ${m} class ${cells[3]}`);
      }
    }
  }

  // JUnit and the step summary carry the intervals; the step summary the comparisons too.
  const xml = await readFile(junit, 'utf8');
  assert.match(xml, /<system-out>top-1 \d+\.\d\d % 95 % CI \(\d+\.\d\d–\d+\.\d\d\)<\/system-out>/);
  if (havePython) assert.equal(xmlElements(xml, 'testcase').length, 4 * 3);
  const markdown = await readFile(summary, 'utf8');
  assert.match(markdown, /\| top-1 \(95 % CI\) \|/);
  assert.equal(markdown.split('\n').filter((line) => / vs .*right only/.test(line) && line.startsWith('- ')).length, 6, markdown);
});

test('--baseline-predictions: the comparison with the baseline is paired image by image and its p is shown, written and in JUnit', async () => {
  const baseline = join(dir, 'baseline.json');
  const baselineRows = join(dir, 'baseline.jsonl');
  const first = await runCli(args('--model', other, '--variant', 'fp32', '--json', baseline, '--predictions', baselineRows));
  assert.equal(first.code, 0, first.stderr);
  const json = join(dir, 'paired.json');
  const predictions = join(dir, 'paired.jsonl');
  const junit = join(dir, 'paired.xml');
  const run = await runCli(args('--model', model, '--variant', 'fp32', '--baseline', baseline, '--baseline-predictions', baselineRows, '--max-drop', '0.5', '--json', json, '--predictions', predictions, '--junit', junit));
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as Json;
  const before = correctByModel(await readRows(baselineRows))[0]!;
  const now = correctByModel(await readRows(predictions))[0]!;
  const { onlyA, onlyB } = discordant(before, now);
  assert.equal(report.baselineComparisons.length, 1);
  const [paired] = report.baselineComparisons;
  assert.deepEqual([paired.result, paired.baseline, paired.metric, paired.onlyBaseline, paired.onlyResult], [0, 0, 'top1', onlyA, onlyB]);
  assert.ok(onlyB > 50, 'the right model against the one at chance');
  assertP(paired.pValue, exactMcnemar(onlyA, onlyB), 'baseline');
  const baselineTop1 = (JSON.parse(await readFile(baseline, 'utf8')) as Json).results[0].metrics.top1;
  assert.ok(Math.abs(paired.delta - (report.results[0].metrics.top1 - baselineTop1)) < 1e-12);
  assert.match(run.stdout, new RegExp(`^ {2}.*model \\[fp32\\] vs baseline: \\+\\d+\\.\\d\\d pp \\(baseline right only ${onlyA}, .*model \\[fp32\\] right only ${onlyB}, p < 0\\.0001\\)$`, 'm'));
  assert.match(run.stdout, /^ {2}pass {2}.*top-1 .* vs baseline .*\(\+\d+\.\d\d pp, paired p < 0\.0001\)$/m, '--max-drop keeps its meaning; the verdict carries the p');
  assert.match(await readFile(junit, 'utf8'), /<system-out>top-1 [^<]*max drop 0\.50 pp, paired p &lt; 0\.0001\)<\/system-out>/);

  // The other way round the drop fails --max-drop as before, now with its paired p.
  const reverse = join(dir, 'reverse.jsonl');
  const back = await runCli(args('--model', other, '--variant', 'fp32', '--baseline', json, '--baseline-predictions', predictions, '--predictions', reverse));
  assert.equal(back.code, 1, back.stderr);
  assert.match(back.stderr, /^clip-eval: check failed: .*top-1 .* vs baseline .*\(-\d+\.\d\d pp, paired p < 0\.0001, more than the allowed 0\.50 pp\)$/m);
});

test('--baseline-predictions errors: one line, exit 3 for a bad or mismatching file (with its line), exit 2 without --baseline', async () => {
  const baseline = join(dir, 'baseline.json');
  const baselineRows = join(dir, 'baseline.jsonl');
  if (!(await readFile(baselineRows, 'utf8').catch(() => ''))) {
    const first = await runCli(args('--model', other, '--variant', 'fp32', '--json', baseline, '--predictions', baselineRows));
    assert.equal(first.code, 0, first.stderr);
  }
  const lines = (await readFile(baselineRows, 'utf8')).trimEnd().split('\n');
  const oneLine = (stderr: string, pattern: RegExp) => {
    const errors = stderr.split('\n').filter((line) => line.startsWith('clip-eval: ') && !line.startsWith('clip-eval: warning'));
    assert.equal(errors.length, 1, stderr);
    assert.match(errors[0]!, pattern);
  };
  const variant = async (name: string, edit: (rows: string[]) => string[]) => {
    const path = join(dir, name);
    await writeFile(path, `${edit([...lines]).join('\n')}\n`);
    return path;
  };
  const cases: [string, (rows: string[]) => string[], RegExp][] = [
    ['not-json.jsonl', (rows) => ((rows[4] = '{"model": 0,'), rows), /: line 5: is not a JSON object/],
    ['bad-label.jsonl', (rows) => ((rows[2] = rows[2]!.replace(/"label":\d+/, '"label":"cat"')), rows), /: line 3: "label" is not a whole number/],
    ['repeated.jsonl', (rows) => [...rows.slice(0, 3), rows[1]!], /: line 4: repeats image 1 of result 0, first on line 2/],
    ['short.jsonl', (rows) => rows.slice(0, 99), /: has no row for image 99 of result 0; the baseline was measured on 100 images/],
    ['other-model.jsonl', (rows) => rows.map((row) => row.replace('"model":0', '"model":1')), /: line 1: "model" 1 is not the index of one of the baseline's 1 results/],
    ['other-run.jsonl', (rows) => ((rows[0] = flipTopOne(rows[0]!)), rows), /: the rows of result 0 \(.* \[fp32\]\) give top-1 .*, the baseline result says .*; give the predictions of the same run/],
  ];
  for (const [name, edit, pattern] of cases) {
    const path = await variant(name, edit);
    const run = await runCli(args('--model', model, '--variant', 'fp32', '--baseline', baseline, '--baseline-predictions', path));
    assert.equal(run.code, 3, `${name}: ${run.stderr}`);
    oneLine(run.stderr, new RegExp(`^clip-eval: --baseline-predictions ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${pattern.source}`));
    assert.equal(run.stdout, '', `${name}: refused before any work`);
  }
  // Rows that are well formed but not this run's images: refused after the run, naming the first row that differs.
  const swapped = await variant('swapped.jsonl', (rows) => {
    const [a, b] = [JSON.parse(rows[6]!), JSON.parse(rows[7]!)];
    rows[6] = JSON.stringify({ ...b, index: a.index });
    rows[7] = JSON.stringify({ ...a, index: b.index });
    return rows;
  });
  const mismatch = await runCli(args('--model', model, '--variant', 'fp32', '--baseline', baseline, '--baseline-predictions', swapped));
  assert.equal(mismatch.code, 3, mismatch.stderr);
  oneLine(mismatch.stderr, /^clip-eval: --baseline-predictions .*swapped\.jsonl: line 7 \(image 6 of result 0\) is ".*" with label \d+, this run's image 6 is ".*" with label \d+; the rows do not match this run's images one to one$/);
  const missing = await runCli(args('--model', model, '--baseline-predictions', baselineRows));
  assert.equal(missing.code, 2);
  oneLine(missing.stderr, /^clip-eval: --baseline-predictions needs --baseline/);
  const absent = await runCli(args('--model', model, '--baseline', baseline, '--baseline-predictions', join(dir, 'nope.jsonl')));
  assert.equal(absent.code, 3);
  oneLine(absent.stderr, /^clip-eval: --baseline-predictions .*nope\.jsonl: cannot read the file \(ENOENT\)/);
});

test('hostile class names: the summary\'s most-confused lines show controls escaped, the CSV keeps formulas inert', async () => {
  // Folder names are the class names; each folder also holds one image drawn as the next class, a mistake to list.
  const classes: [string, string][] = [['=apple', 'apple'], ['bear\x1b[31m', 'bear'], ['cat\x07', 'cat'], ['two\nlines dog', 'dog'], ['@elephant', 'elephant'], ['-1', 'fox']];
  const folder = join(dir, 'hostile');
  for (const [i, [name, drawn]] of classes.entries()) {
    await mkdir(join(folder, name), { recursive: true });
    await classImage(drawn).png().toFile(join(folder, name, 'own.png'));
    await classImage(classes[(i + 1) % classes.length]![1]).png().toFile(join(folder, name, 'next.png'));
  }
  const csv = join(dir, 'hostile.csv');
  const run = await runCli(['eval', folder, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet', '--csv', csv]);
  assert.equal(run.code, 0, run.stderr);
  const confused = run.stdout.slice(run.stdout.indexOf('most confused'));
  assert.match(confused, /^ {4}\S.* -> \S.*: \d+$/m, run.stdout);
  assert.doesNotMatch(run.stdout, /[\x00-\x09\x0b-\x1f\x7f]/, 'no control character but the line ends');
  assert.match(confused, /bear\\x1b\[31m|cat\\x07|two\\x0alines dog/);
  if (havePython) {
    const [, ...body] = parseCsv(await readFile(csv, 'utf8'));
    const names = body.map((cells) => cells[4]!);
    assert.deepEqual([...names].sort(), ["'-1", "'=apple", "'@elephant", 'bear\x1b[31m', 'cat\x07', 'two\nlines dog']);
    for (const cells of body) {
      assert.ok(cells.every((cell) => !/^[=+\-@\t\r]/.test(cell) || /^-?\d/.test(cell)), `no cell starts a formula: ${JSON.stringify(cells)}`);
      assert.ok(cells.slice(7, 10).every((cell) => cell !== '' && !Number.isNaN(Number(cell))), 'the fractions stay numbers');
    }
  }
});

test('--csv is refused up front when it names the same file as another output', async () => {
  const same = join(dir, 'same.out');
  const run = await runCli(args('--model', model, '--json', same, '--csv', same));
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^clip-eval: --json and --csv name the same file/m);
});
