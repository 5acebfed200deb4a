import assert from 'node:assert/strict';
import test from 'node:test';
import { csvField, formatPerClassCsv, PER_CLASS_CSV_COLUMNS } from '../src/report/csv.js';
import { formatPredictions } from '../src/report/predictions.js';
import { formatSummary, resultLabels } from '../src/report/summary.js';
import { mcnemarExactPValue, wilsonInterval } from '../src/tasks/statistics.js';
import { comparePaired, pairedComparisons, topOneCorrect } from '../src/tasks/zero-shot/comparisons.js';
import { computeMetrics, topConfusions } from '../src/tasks/zero-shot/metrics.js';
import type { EvaluationReport, ModelResult } from '../src/tasks/zero-shot/result.js';
import { createTopK, type TopK } from '../src/tasks/zero-shot/scores.js';

/** A TopK whose best class per image is `best` (k = 1). */
function topOne(best: number[]): TopK {
  const topk = createTopK(best.length, 1);
  best.forEach((c, n) => (topk.classes[n] = c));
  return topk;
}

test('paired comparisons on known vectors: discordant counts, delta b − a and the exact McNemar p of every pair a < b', () => {
  const a = [1, 1, 1, 0, 0, 1, 0, 1];
  const b = [1, 0, 0, 1, 0, 1, 1, 1];
  const c = [0, 0, 0, 0, 0, 0, 0, 0];
  // a right only at 1, 2; b right only at 3, 6: a tie, p = 1.
  assert.deepEqual(comparePaired(a, b), { delta: 0, onlyA: 2, onlyB: 2, pValue: 1 });
  // c is never right: a's 5 right images are all discordant, 2 · 0.5^5.
  assert.deepEqual(comparePaired(a, c), { delta: -5 / 8, onlyA: 5, onlyB: 0, pValue: 2 / 32 });
  const all = pairedComparisons([a, b, c]);
  assert.deepEqual(all.map(({ a: i, b: j }) => [i, j]), [[0, 1], [0, 2], [1, 2]]);
  assert.ok(all.every((entry) => entry.metric === 'top1'));
  assert.deepEqual(all[2], { a: 1, b: 2, metric: 'top1', delta: -5 / 8, onlyA: 5, onlyB: 0, pValue: mcnemarExactPValue(5, 0) });
  assert.deepEqual(pairedComparisons([a]), [], 'one result has no pair');
  assert.throws(() => comparePaired(a, [1, 0]), RangeError, 'other images are no paired comparison');
});

test('topOneCorrect marks the images whose best class is the label', () => {
  assert.deepEqual(Array.from(topOneCorrect([0, 1, 2, 2], topOne([0, 2, 2, 1]))), [1, 0, 1, 0]);
});

test('topConfusions: per class its most frequent wrong top-1 class, ties to the lower index; null without mistakes', () => {
  const labels = [0, 0, 0, 0, 1, 1, 2];
  const best = [0, 2, 1, 2, 1, 1, 0];
  assert.deepEqual(topConfusions(labels, topOne(best), ['a', 'b', 'c', 'd']), [
    { predicted: 2, predictedName: 'c', count: 2 },
    null,
    { predicted: 0, predictedName: 'a', count: 1 },
    null,
  ]);
  assert.deepEqual(topConfusions([0, 0], topOne([2, 1]), ['a', 'b', 'c']), [{ predicted: 1, predictedName: 'b', count: 1 }, null, null], 'a tie goes to the lower index');
});

test('CSV fields follow RFC 4180: quoted only when needed, quotes doubled, empty for null', () => {
  assert.equal(csvField('apple'), 'apple');
  assert.equal(csvField(0.25), '0.25');
  assert.equal(csvField(null), '');
  assert.equal(csvField('maple, red'), '"maple, red"');
  assert.equal(csvField('the "best" one'), '"the ""best"" one"');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('cr\rhere'), '"cr\rhere"');
});

test('CSV text cells a spreadsheet would run as a formula get a leading quote (OWASP); numbers stay numbers', () => {
  assert.equal(csvField('=HYPERLINK("http://x")'), '"\'=HYPERLINK(""http://x"")"');
  assert.equal(csvField('+1'), "'+1");
  assert.equal(csvField('-1'), "'-1");
  assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvField('\tindented'), "'\tindented");
  assert.equal(csvField('\rreturn'), '"\'\rreturn"');
  assert.equal(csvField('a=b'), 'a=b', 'only a leading one');
  assert.equal(csvField(-0.5), '-0.5');
});

function result(id: string, variant: string, labels: number[], best: number[], classNames: string[]): ModelResult {
  return {
    model: { id, layout: 'huggingface', variant, embeddingDim: 4, files: [], imageEncoder: 'x' },
    device: 'cpu',
    metrics: computeMetrics({ labels, predictions: topOne(best), classNames }),
    timing: { wallSeconds: 1, imageSeconds: 1, imagesPerSecond: 8, textSeconds: 0, textEmbeddings: 'computed' },
  };
}

function report(results: ModelResult[], correct: Uint8Array[]): EvaluationReport {
  return {
    schema: 'clip-eval/evaluation@1',
    tool: { name: 'clip-eval', version: '0', node: 'v20', onnxruntime: '1' },
    createdAt: '2026-01-01T00:00:00.000Z',
    dataset: { name: 'd', split: 'test', images: 4, sha256: '0'.repeat(64), subset: {} },
    templates: { name: 'single', templates: ['a photo of a {}.'] },
    options: { batchSize: 1, device: 'cpu' },
    results,
    ...(results.length > 1 ? { comparisons: pairedComparisons(correct) } : {}),
  };
}

test('the per-class CSV: a header, one row per model and class with a model column, names quoted as RFC 4180 says, CRLF ends', () => {
  const names = ['maple, red', 'the "oak"'];
  const labels = [0, 0, 1, 1];
  const first = [0, 1, 1, 1];
  const second = [1, 1, 1, 0];
  const run = report([result('m', 'fp32', labels, first, names), result('m', 'int8', labels, second, names)], []);
  const csv = formatPerClassCsv(run, [topConfusions(labels, topOne(first), names), topConfusions(labels, topOne(second), names)]);
  const lines = csv.split('\r\n');
  assert.equal(lines.pop(), '', 'every row ends with CRLF');
  assert.equal(lines[0], PER_CLASS_CSV_COLUMNS.join(','));
  const [low, high] = wilsonInterval(1, 2);
  assert.deepEqual(lines.slice(1), [
    `0,m,fp32,0,"maple, red",2,1,0.5,${low},${high},"the ""oak""",1`,
    `0,m,fp32,1,"the ""oak""",2,2,1,${wilsonInterval(2, 2).join(',')},,`,
    `1,m,int8,0,"maple, red",2,0,0,${wilsonInterval(0, 2).join(',')},"the ""oak""",2`,
    `1,m,int8,1,"the ""oak""",2,1,0.5,${low},${high},"maple, red",1`,
  ]);
});

test('--predictions rows: every model\'s, model after model, each with "model", the index into results', () => {
  const text = formatPredictions(['x', 'y'], [0, 1], [topOne([0, 0]), topOne([1, 1])]);
  const rows = text.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(rows.map((r) => [r.model, r.index, r.id, r.label, r.top5]), [
    [0, 0, 'x', 0, [0]],
    [0, 1, 'y', 1, [0]],
    [1, 0, 'x', 0, [1]],
    [1, 1, 'y', 1, [1]],
  ]);
  assert.deepEqual(Object.keys(rows[0]!), ['model', 'index', 'id', 'label', 'top5', 'scores']);
});

test('the summary names each side of a comparison, b against a, and the result labels stay distinct', () => {
  const labels = [0, 1, 0, 1];
  const names = ['a', 'b'];
  const fp32 = result('m', 'fp32', labels, [0, 1, 0, 1], names);
  const int8 = result('m', 'int8', labels, [0, 0, 1, 1], names);
  const text = formatSummary(report([fp32, int8], [topOneCorrect(labels, topOne([0, 1, 0, 1])), topOneCorrect(labels, topOne([0, 0, 1, 1]))]));
  assert.match(text, /^ {2}top-1 +100\.00 % {2}\(\d\d\.\d\d–100\.00\)$/m);
  assert.match(text, /^ {2}int8 vs fp32: -50\.00 pp \(fp32 right only 2, int8 right only 0, p = 0\.5000\)$/m);
  assert.deepEqual(resultLabels([fp32, int8]), ['fp32', 'int8'], 'one model: its variants');
  const other = result('n', 'fp32', labels, [0, 1, 0, 1], names);
  assert.deepEqual(resultLabels([fp32, other]), ['m', 'n'], 'one variant: the model ids');
  assert.deepEqual(resultLabels([fp32, int8, other]), ['m [fp32]', 'm [int8]', 'n [fp32]'], 'both differ: both');
  assert.deepEqual(resultLabels([fp32, fp32]), ['fp32 #0', 'fp32 #1'], 'the same twice: numbered');
});
