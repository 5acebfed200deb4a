import { CHECKED_METRICS, METRIC_LABELS, RETRIEVAL_METRICS, modelKey, type CheckOutcome, type RetrievalMetric, type RetrievalOutcome } from '../checks/checks.js';
import type { EvaluationReport } from '../tasks/zero-shot/result.js';
import { showUnprintable } from '../core/unprintable.js';
import { percent, percentInterval, pValueText } from '../core/format.js';
import { imagesPerSecondText, PAIRED_HEADINGS, pairedComparisonTexts, withInterval } from './summary.js';

/** Text for an XML 1.0 attribute or element: always well-formed, whatever a model path holds. */
function escapeXml(text: string): string {
  return showUnprintable(text).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A Markdown table cell on one line: pipes, backslashes and '<' escaped, controls made visible. */
function markdownCell(text: string): string {
  return showUnprintable(text).replace(/[\\|]/g, (c) => `\\${c}`).replace(/</g, '&lt;');
}

/**
 * The JUnit classname `clip-eval.DATA_SET.MODEL`. Viewers (Jenkins, GitLab) split a classname at its
 * dots into packages and a class, so the dots of a data set name or a model path (`../models/v1.5
 * [fp32]`) are written as underscores and the two separators are the only dots.
 */
function junitClassname(dataset: string, model: string): string {
  return ['clip-eval', dataset, model].map((part) => part.replace(/\./g, '_')).join('.');
}

/** One JUnit test case: the measured value in its output, a failure when a check on it failed. */
function testCase(classname: string, name: string, time: string, measured: string, failed: readonly { message: string }[]): string {
  const open = `    <testcase classname="${escapeXml(classname)}" name="${escapeXml(name)}" time="${time}">`;
  const output = `      <system-out>${escapeXml(measured)}</system-out>`;
  if (failed.length === 0) return `${open}\n${output}\n    </testcase>`;
  const message = failed.map((o) => o.message).join('; ');
  return `${open}\n      <failure message="${escapeXml(message)}" type="AccuracyCheck">${escapeXml(message)}</failure>\n${output}\n    </testcase>`;
}

/**
 * JUnit XML for CI dashboards: one test case per model and metric. A metric with checks fails
 * when any of its checks failed; a metric without checks is reported as a passing case.
 */
export function formatJunit(report: EvaluationReport, outcomes: readonly CheckOutcome[]): string {
  const cases: string[] = [];
  let failures = 0;
  for (const result of report.results) {
    const key = modelKey(result);
    for (const metric of CHECKED_METRICS) {
      const value = result.metrics[metric];
      // Not measured (top-5 of fewer than 5 classes): no test case.
      if (value === undefined || value === null) continue;
      const checks = outcomes.filter((o) => o.modelKey === key && o.metric === metric);
      const failed = checks.filter((o) => !o.passed);
      // The name is the metric alone, so that CI dashboards can follow one case across runs; the
      // value and what it was held to change from run to run and go in the output and the failure.
      const name = METRIC_LABELS[metric];
      const interval = metric === 'top1' ? result.metrics.top1Interval : metric === 'top5' ? result.metrics.top5Interval : undefined;
      const ci = interval ? ` 95 % CI ${percentInterval(interval)}` : '';
      const requirements = checks.map((c) => (c.pValue === undefined ? c.requirement : `${c.requirement}, paired ${pValueText(c.pValue)}`));
      const measured = `${METRIC_LABELS[metric]} ${percent(value)}${ci}${checks.length > 0 ? ` (${requirements.join('; ')})` : ''}`;
      const time = result.timing.wallSeconds.toFixed(3);
      if (failed.length > 0) failures += 1;
      cases.push(testCase(junitClassname(report.dataset.name, key), name, time, measured, failed));
    }
  }
  const seconds = report.results.reduce((sum, r) => sum + r.timing.wallSeconds, 0).toFixed(3);
  const suite = `clip-eval ${report.dataset.name}`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="clip-eval" tests="${cases.length}" failures="${failures}" errors="0" time="${seconds}">`,
    `  <testsuite name="${escapeXml(suite)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="0" time="${seconds}" timestamp="${report.createdAt}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/** What a retrieval JUnit report needs of the run. */
export interface RetrievalJunitRun {
  dataset: string;
  modelKey: string;
  wallSeconds: number;
  ks: readonly number[];
  metrics: Readonly<Record<RetrievalMetric, Readonly<Record<string, number>>>>;
}

/** JUnit XML for a retrieval run: one test case per metric and k, failed when a bar on it was missed. */
export function formatRetrievalJunit(run: RetrievalJunitRun, outcomes: readonly RetrievalOutcome[]): string {
  const cases: string[] = [];
  let failures = 0;
  const time = run.wallSeconds.toFixed(3);
  for (const metric of RETRIEVAL_METRICS) {
    for (const k of run.ks) {
      const checks = outcomes.filter((o) => o.metric === metric && o.k === k);
      const failed = checks.filter((o) => !o.passed);
      const name = `${metric}@${k}`;
      const measured = `${name} ${percent(run.metrics[metric][String(k)]!)}${checks.length > 0 ? ` (${checks.map((c) => c.requirement).join('; ')})` : ''}`;
      if (failed.length > 0) failures += 1;
      cases.push(testCase(junitClassname(run.dataset, run.modelKey), name, time, measured, failed));
    }
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="clip-eval" tests="${cases.length}" failures="${failures}" errors="0" time="${time}">`,
    `  <testsuite name="${escapeXml(`clip-eval retrieval ${run.dataset}`)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="0" time="${time}" timestamp="${new Date().toISOString()}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/**
 * The heading's verdict on a run's checks, and the checks under a heading of their own as a table (one
 * row per check), for a step summary: as list items they would join any list right above them.
 */
function stepSummaryChecks(outcomes: readonly { passed: boolean; message: string }[]): { verdict: string; lines: string[] } {
  const failed = outcomes.filter((o) => !o.passed);
  const verdict = outcomes.length === 0 ? '' : failed.length === 0 ? ' ✅ all checks passed' : ` ❌ ${failed.length} check${failed.length === 1 ? '' : 's'} failed`;
  const lines =
    outcomes.length === 0 ? [] : ['', '#### Checks', '', '| verdict | check |', '|---|---|', ...outcomes.map((o) => `| ${o.passed ? '✅ pass' : '❌ fail'} | ${markdownCell(o.message)} |`)];
  return { verdict, lines };
}

/** A list under a heading of its own, or nothing for no items. */
function stepSummaryList(heading: string, items: readonly string[]): string[] {
  return items.length === 0 ? [] : ['', `#### ${heading[0]!.toUpperCase()}${heading.slice(1)}`, '', ...items.map((item) => `- ${markdownCell(item)}`)];
}

/** A Markdown summary for $GITHUB_STEP_SUMMARY. */
export function formatStepSummary(report: EvaluationReport, outcomes: readonly CheckOutcome[]): string {
  const checks = stepSummaryChecks(outcomes);
  const lines = [
    `### clip-eval ${markdownCell(report.dataset.name)}: ${report.dataset.images} images${checks.verdict}`,
    '',
    '| model | variant | device | top-1 (95 % CI) | top-5 (95 % CI) | mean per-class recall | images/s |',
    '|---|---|---|---:|---:|---:|---:|',
    ...report.results.map(
      (r) =>
        `| ${[r.model.id, r.model.variant, r.device, withInterval(r.metrics.top1, r.metrics.top1Interval), withInterval(r.metrics.top5, r.metrics.top5Interval), percent(r.metrics.meanPerClassRecall), imagesPerSecondText(r.timing)].map(markdownCell).join(' | ')} |`,
    ),
  ];
  const paired = pairedComparisonTexts(report);
  lines.push(...stepSummaryList(PAIRED_HEADINGS.comparisons, paired.comparisons), ...stepSummaryList(PAIRED_HEADINGS.baseline, paired.baseline), ...checks.lines);
  return `${lines.join('\n')}\n\n`;
}

/** What a retrieval step summary shows of the run, beyond what its JUnit report needs. */
export interface RetrievalSummaryRun extends RetrievalJunitRun {
  model: { id: string; variant: string };
  device: string;
  images: number;
  captions: number;
}

/** A Markdown summary of a retrieval run for $GITHUB_STEP_SUMMARY: one row, a column per metric and k. */
export function formatRetrievalStepSummary(run: RetrievalSummaryRun, outcomes: readonly RetrievalOutcome[]): string {
  const checks = stepSummaryChecks(outcomes);
  const columns = RETRIEVAL_METRICS.flatMap((metric) => run.ks.map((k) => ({ metric, k })));
  const lines = [
    `### clip-eval retrieval ${markdownCell(run.dataset)}: ${run.images} images, ${run.captions} captions${checks.verdict}`,
    '',
    `| model | variant | device | ${columns.map(({ metric, k }) => `${metric}@${k}`).join(' | ')} |`,
    `|---|---|---|${columns.map(() => '---:|').join('')}`,
    `| ${[run.model.id, run.model.variant, run.device, ...columns.map(({ metric, k }) => percent(run.metrics[metric][String(k)]!))].map(markdownCell).join(' | ')} |`,
    ...checks.lines,
  ];
  return `${lines.join('\n')}\n\n`;
}
