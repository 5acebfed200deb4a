import assert from 'node:assert/strict';
import test from 'node:test';
import { assertComparable, parseAccuracy, parsePercentagePoints, runChecks } from '../src/eval/checks.js';
import { formatJunit, formatStepSummary } from '../src/report/junit.js';
import type { EvaluationReport, ModelResult } from '../src/report/result.js';
import { havePython, xmlElements } from './support/xml.js';

function result(id: string, variant: string, top1: number, top5: number): ModelResult {
  return {
    model: { id, layout: 'huggingface', variant, embeddingDim: 192, files: [], imageEncoder: 'image_embeds' },
    device: 'cpu',
    metrics: { images: 100, top1, top5, meanPerClassRecall: top1, superclassTop1: top5, perClass: [], mostConfused: [] },
    timing: { wallSeconds: 1.5, imageSeconds: 1, imagesPerSecond: 100, textSeconds: 0.1, textEmbeddings: 'cached' },
  };
}

function report(results: ModelResult[], images = 100, perClass?: number): EvaluationReport {
  return {
    schema: 'clip-eval/evaluation@1',
    tool: { name: 'clip-eval', version: '0.0.0', node: 'v20', onnxruntime: '1.30.0' },
    createdAt: '2026-01-01T00:00:00.000Z',
    dataset: { name: 'cifar100', split: 'test', images, totalImages: 1000, sha256: 'f'.repeat(64), subset: { perClass } },
    templates: { name: 'openai', templates: ['a photo of a {}.'] },
    options: { batchSize: 32, device: 'cpu' },
    results,
  };
}

test('accuracy bars accept 0.645 and 64.5% and refuse ambiguous or out-of-range values', () => {
  const parse = parseAccuracy('--min-top1');
  assert.equal(parse('0.645'), 0.645);
  assert.ok(Math.abs(parse('64.5%') - 0.645) < 1e-12);
  assert.equal(parse('1'), 1);
  assert.throws(() => parse('64.5'), /--min-top1 64.5: expected a fraction between 0 and 1 \(0.645\) or a percentage \(64.5%\)/);
  assert.throws(() => parse('120%'), /--min-top1/);
  assert.throws(() => parse('abc'), /--min-top1/);
  assert.equal(parsePercentagePoints('--max-drop')('0.5'), 0.5);
  assert.throws(() => parsePercentagePoints('--max-drop')('-1'), /--max-drop -1/);
});

test('thresholds pass and fail per model, with the metric, value and bar in the verdict', () => {
  const run = report([result('m', 'fp32', 0.7, 0.9), result('m', 'int8', 0.6, 0.85)]);
  const outcomes = runChecks(run, { minTop1: 0.645, minTop5: 0.8, maxDrop: 0.5 });
  assert.equal(outcomes.length, 4);
  const failed = outcomes.filter((o) => !o.passed);
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.message, 'm [int8]: top-1 60.00 % is below the bar 64.50 %');
});

test('baseline comparison: metric by metric, drops beyond --max-drop fail, other data refused', () => {
  const before = report([result('m', 'fp32', 0.65, 0.9)]);
  const same = runChecks(report([result('m', 'fp32', 0.647, 0.9)]), { baseline: before, baselineFile: 'b.json', maxDrop: 0.5 });
  assert.ok(same.every((o) => o.passed), JSON.stringify(same));
  const worse = runChecks(report([result('m', 'fp32', 0.64, 0.9)]), { baseline: before, baselineFile: 'b.json', maxDrop: 0.5 });
  const failed = worse.filter((o) => !o.passed).map((o) => o.metric);
  assert.deepEqual(failed, ['top1', 'meanPerClassRecall']);
  assert.match(worse.find((o) => o.metric === 'top1')!.message, /top-1 64.00 % vs baseline 65.00 % \(-1.00 pp, more than the allowed 0.50 pp\)/);
  assert.throws(() => assertComparable(before, report([], 50, 1), 'b.json'), /--baseline b.json: was measured on 100 images .* this run on 50 images/);
  assert.throws(() => assertComparable(before, { ...before, dataset: { ...before.dataset, name: 'cifar10' } }, 'b.json'), /measured on cifar100, this run is cifar10/);
  const two = report([result('a', 'fp32', 0.7, 0.9), result('b', 'fp32', 0.7, 0.9)]);
  assert.throws(() => runChecks(two, { baseline: before, baselineFile: 'b.json', maxDrop: 0.5 }), /has no result for a \[fp32\]/);
});

test('JUnit XML is well-formed with one case per model and metric and the right failure count', { skip: havePython ? false : 'needs python3 to parse XML' }, () => {
  const run = report([result('m<&>', 'fp32', 0.7, 0.9), result('m<&>', 'int8', 0.6, 0.85)]);
  const outcomes = runChecks(run, { minTop1: 0.645, maxDrop: 0.5 });
  const xml = formatJunit(run, outcomes);
  const [suites] = xmlElements(xml, 'testsuites');
  assert.equal(suites!.tests, '8');
  assert.equal(suites!.failures, '1');
  const cases = xmlElements(xml, 'testcase');
  assert.equal(cases.length, 8);
  const failing = cases.filter((c) => (c._children as unknown as string[]).includes('failure'));
  assert.equal(failing.length, 1);
  assert.equal(failing[0]!.classname, 'clip-eval.cifar100.m<&> [int8]');
  assert.throws(() => xmlElements('<a><b></a>', 'a'), /malformed XML/);
});

test('step summary is a Markdown table with the verdicts', () => {
  const run = report([result('m', 'fp32', 0.7, 0.9)]);
  const text = formatStepSummary(run, runChecks(run, { minTop1: 0.8, maxDrop: 0.5 }));
  assert.match(text, /### clip-eval cifar100: 100 images ❌ 1 check\(s\) failed/);
  assert.match(text, /\| m \| fp32 \| cpu \| 70.00 % \| 90.00 % \|/);
});
