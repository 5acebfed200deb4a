import { modelKey } from '../checks/checks.js';
import { percent, percentInterval, percentOrNa, pValueText, signedPoints } from '../core/format.js';
import { showUnprintable } from '../core/unprintable.js';
import type { Interval } from '../tasks/statistics.js';
import type { EvaluationReport, ModelResult } from '../tasks/zero-shot/result.js';

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${String(Math.round(seconds - 60 * minutes)).padStart(2, '0')}s`;
}

function rows(pairs: [string, string][]): string[] {
  const width = Math.max(...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `  ${key.padEnd(width)}  ${value}`);
}

/** "300", "50 of 300", and the images skipped as unreadable when there were any. */
function imagesLine(report: EvaluationReport, images: number): string {
  const { totalImages, skipped } = report.dataset;
  const of = totalImages === undefined || totalImages === images ? '' : ` of ${totalImages}`;
  return `${images}${of}${skipped ? ` (${skipped} unreadable, skipped)` : ''}`;
}

/** "64.53 %  (63.58–65.46)": a fraction and its 95 % interval; "n/a" when not measured. */
export function withInterval(value: number | null, interval: Interval | null | undefined): string {
  if (value === null) return percentOrNa(value);
  // Reports from before the intervals were added have none.
  return interval ? `${percent(value)}  ${percentInterval(interval)}` : percent(value);
}

function modelSummary(report: EvaluationReport, result: ModelResult): string[] {
  const { metrics, timing, model } = result;
  const pairs: [string, string][] = [
    // CLIP is the family a reader assumes; any other is named.
    ['model', `${model.id} (${[model.layout, ...(model.family && model.family !== 'clip' ? [model.family] : []), model.variant].join(', ')})`],
    ['device', result.device],
    ['templates', `${report.templates.name} (${report.templates.templates.length} per class)`],
    ['images', imagesLine(report, metrics.images)],
    ['top-1', withInterval(metrics.top1, metrics.top1Interval)],
    ['top-5', withInterval(metrics.top5, metrics.top5Interval)],
    ['mean per-class recall', percent(metrics.meanPerClassRecall)],
  ];
  if (metrics.superclassTop1 !== undefined) pairs.push(['super-class top-1', percent(metrics.superclassTop1)]);
  pairs.push(
    ['throughput', timing.imageEmbeddings === 'cached' ? 'n/a (no image encoded: all from the cache)' : `${imagesPerSecondText(timing)} images/s`],
    ['wall time', formatSeconds(timing.wallSeconds)],
    ['text embeddings', timing.textEmbeddings === 'cached' ? 'cached' : `computed in ${formatSeconds(timing.textSeconds)}`],
  );
  if (timing.imageEmbeddings !== undefined) pairs.push(['image embeddings', timing.imageEmbeddings]);
  const lines = rows(pairs);
  if (metrics.mostConfused.length > 0) {
    lines.push('  most confused (true -> predicted):');
    for (const pair of metrics.mostConfused.slice(0, 5)) lines.push(`    ${showUnprintable(pair.labelName)} -> ${showUnprintable(pair.predictedName)}: ${pair.count}`);
  }
  return lines;
}

/** The human-readable summary printed on stdout after an evaluation. */
/** Images encoded per second; none when every embedding came from the cache, which says nothing of speed. */
export function imagesPerSecondText(timing: ModelResult['timing']): string {
  return timing.imageEmbeddings === 'cached' ? 'n/a' : timing.imagesPerSecond.toFixed(1);
}

export function formatSummary(report: EvaluationReport): string {
  const title = `clip-eval ${report.dataset.name} (${report.dataset.split} set)`;
  const blocks = report.results.map((result) => modelSummary(report, result).join('\n'));
  const lines = [title, ...blocks];
  if (report.results.length > 1) lines.push(formatComparison(report.results));
  const paired = pairedLines(report);
  if (paired.length > 0) lines.push(paired.join('\n'));
  return `${lines.join('\n\n')}\n`;
}

/**
 * How each result is named in comparisons: its variant when the models are the same, its model id when
 * the variants are, else both; a number is added where names would still collide.
 */
export function resultLabels(results: readonly ModelResult[]): string[] {
  const ids = new Set(results.map((r) => r.model.id));
  const variants = new Set(results.map((r) => r.model.variant));
  const names = results.map((r) => {
    if (results.length > 1 && ids.size === 1) return r.model.variant;
    if (results.length > 1 && variants.size === 1) return r.model.id;
    return modelKey(r);
  });
  return names.map((name, i) => (names.indexOf(name) !== names.lastIndexOf(name) ? `${name} #${i}` : name));
}

/**
 * The paired comparisons for people, b against a (the change is b's accuracy minus a's), each side's
 * images right under it alone named by the side: `int8 vs fp32: -0.42 pp (fp32 right only 79, int8
 * right only 37, p = 0.0001)`.
 */
export function pairedComparisonTexts(report: EvaluationReport): { comparisons: string[]; baseline: string[] } {
  const labels = resultLabels(report.results);
  const comparisons = (report.comparisons ?? []).map((c) => {
    const [a, b] = [labels[c.a]!, labels[c.b]!];
    return `${b} vs ${a}: ${signedPoints(c.delta)} (${a} right only ${c.onlyA}, ${b} right only ${c.onlyB}, ${pValueText(c.pValue)})`;
  });
  const baseline = (report.baselineComparisons ?? []).map((c) => {
    const name = labels[c.result]!;
    return `${name} vs baseline: ${signedPoints(c.delta)} (baseline right only ${c.onlyBaseline}, ${name} right only ${c.onlyResult}, ${pValueText(c.pValue)})`;
  });
  return { comparisons, baseline };
}

/** What each list of pairedComparisonTexts is, for the summary and the step summary's headings. */
export const PAIRED_HEADINGS = {
  comparisons: 'paired top-1 comparisons on the same images (exact McNemar test)',
  baseline: 'paired with the baseline\'s predictions, top-1 (exact McNemar test)',
} as const;

function pairedLines(report: EvaluationReport): string[] {
  const { comparisons, baseline } = pairedComparisonTexts(report);
  const lines: string[] = [];
  if (comparisons.length > 0) lines.push(`${PAIRED_HEADINGS.comparisons}:`, ...comparisons.map((line) => `  ${line}`));
  if (baseline.length > 0) lines.push(`${PAIRED_HEADINGS.baseline}:`, ...baseline.map((line) => `  ${line}`));
  return lines;
}

/** Side-by-side table of several models' headline metrics. */
export function formatComparison(results: readonly ModelResult[]): string {
  const header = ['model', 'variant', 'top-1', 'top-5', 'mean recall', 'images/s'];
  const body = results.map((r) => [
    r.model.id,
    r.model.variant,
    percent(r.metrics.top1),
    percentOrNa(r.metrics.top5),
    percent(r.metrics.meanPerClassRecall),
    imagesPerSecondText(r.timing),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
