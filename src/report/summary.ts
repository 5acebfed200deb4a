import { percent, percentOrNa } from '../core/format.js';
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

function modelSummary(report: EvaluationReport, result: ModelResult): string[] {
  const { metrics, timing, model } = result;
  const pairs: [string, string][] = [
    ['model', `${model.id} (${model.layout}, ${model.variant})`],
    ['device', result.device],
    ['templates', `${report.templates.name} (${report.templates.templates.length} per class)`],
    ['images', imagesLine(report, metrics.images)],
    ['top-1', percent(metrics.top1)],
    ['top-5', percentOrNa(metrics.top5)],
    ['mean per-class recall', percent(metrics.meanPerClassRecall)],
  ];
  if (metrics.superclassTop1 !== undefined) pairs.push(['super-class top-1', percent(metrics.superclassTop1)]);
  pairs.push(
    ['throughput', `${timing.imagesPerSecond.toFixed(1)} images/s`],
    ['wall time', formatSeconds(timing.wallSeconds)],
    ['text embeddings', timing.textEmbeddings === 'cached' ? 'cached' : `computed in ${formatSeconds(timing.textSeconds)}`],
  );
  if (timing.imageEmbeddings !== undefined) pairs.push(['image embeddings', timing.imageEmbeddings]);
  const lines = rows(pairs);
  if (metrics.mostConfused.length > 0) {
    lines.push('  most confused (true -> predicted):');
    for (const pair of metrics.mostConfused.slice(0, 5)) lines.push(`    ${pair.labelName} -> ${pair.predictedName}: ${pair.count}`);
  }
  return lines;
}

/** The human-readable summary printed on stdout after an evaluation. */
export function formatSummary(report: EvaluationReport): string {
  const title = `clip-eval ${report.dataset.name} (${report.dataset.split} set)`;
  const blocks = report.results.map((result) => modelSummary(report, result).join('\n'));
  const lines = [title, ...blocks];
  if (report.results.length > 1) lines.push(formatComparison(report.results));
  return `${lines.join('\n\n')}\n`;
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
    r.timing.imagesPerSecond.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
