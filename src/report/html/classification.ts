import type { Logger } from '../../core/log.js';
import type { Dataset, Superclasses } from '../../datasets/dataset.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { wilsonInterval } from '../../tasks/statistics.js';
import type { DatasetEvaluation } from '../../tasks/zero-shot/evaluate.js';
import type { EvaluationReport, ModelResult } from '../../tasks/zero-shot/result.js';
import type { TopK } from '../../tasks/zero-shot/scores.js';
import { readThumbnails, type Thumbnail } from '../thumbnails.js';
import { accuracyBar, accuracyWithInterval, sortedAccuracyChart } from './charts.js';
import { countConfusions, mistakesByClass, mostConfusedPairs, pairImages, type ConfusionCounts, type ConfusionPair } from './confusion.js';
import { HEATMAP_LEGEND, heatmapView, renderHeatmap } from './heatmap.js';
import { escapeHtml, intervalText, metaList, percentText, renderPage, section, wrappableId } from './page.js';

/** Most-confused pairs shown with their images, and images per pair: what bounds the thumbnails. */
export const REPORT_CONFUSED_PAIRS = 20;
export const REPORT_IMAGES_PER_PAIR = 8;
/** The pairs shown open; the others are folded, so that each model's section stays a few screens long. */
export const REPORT_OPEN_PAIRS = 6;

/** Everything a classification report shows: the --json report and what the run kept in memory. */
export interface ClassificationHtmlInput {
  report: EvaluationReport;
  classNames: readonly string[];
  superclasses?: Superclasses;
  /** Sample ids, labels and each result's top-k rows, in evaluation order (a DatasetEvaluation's). */
  ids: readonly string[];
  labels: ArrayLike<number>;
  predictions: readonly TopK[];
  /** By sample id; an image without one is shown as missing. */
  thumbnails: ReadonlyMap<string, Thumbnail>;
}

/** One result's derived views, computed once for its sections. */
interface ModelView {
  index: number;
  result: ModelResult;
  predictions: TopK;
  counts: ConfusionCounts;
  byClass: ConfusionPair[][];
  pairs: ConfusionPair[];
  pairImages: number[][];
}

function modelViews(input: Omit<ClassificationHtmlInput, 'thumbnails'>): ModelView[] {
  return input.report.results.map((result, index) => {
    const predictions = input.predictions[index]!;
    const counts = countConfusions(input.labels, predictions, input.classNames.length);
    const pairs = mostConfusedPairs(counts, REPORT_CONFUSED_PAIRS);
    return { index, result, predictions, counts, byClass: mistakesByClass(counts), pairs, pairImages: pairImages(input.labels, predictions, pairs, REPORT_IMAGES_PER_PAIR) };
  });
}

/** The sample ids whose thumbnails the report shows: the images of every result's most-confused pairs. */
export function classificationThumbnailIds(input: Omit<ClassificationHtmlInput, 'thumbnails'>): Set<string> {
  const ids = new Set<string>();
  for (const view of modelViews(input)) for (const images of view.pairImages) for (const n of images) ids.add(input.ids[n]!);
  return ids;
}

export function modelLabel(result: ModelResult): string {
  return `${result.model.id} [${result.model.variant}]`;
}

function headline(report: EvaluationReport): string {
  const hasSuper = report.results.some((r) => r.metrics.superclassTop1 !== undefined);
  const rows = report.results.map((r, i) => {
    const m = r.metrics;
    const metric = (name: string, value: string) => `<span data-metric="${name}" data-model="${i}">${value}</span>`;
    const top5 = m.top5 === null || m.top5Interval === null ? metric('top5', 'n/a') : `${metric('top5', percentText(m.top5))} <span class="muted">${intervalText(m.top5Interval)}</span>`;
    return `<tr><th scope="row">${escapeHtml(r.model.id)}</th><td>${escapeHtml(r.model.variant)}</td><td>${escapeHtml(r.device)}</td><td class="n">${metric('images', String(m.images))}</td>
<td class="n big">${metric('top1', percentText(m.top1))} <span class="muted">${intervalText(m.top1Interval)}</span></td><td class="n">${top5}</td>
<td class="n">${metric('meanPerClassRecall', percentText(m.meanPerClassRecall))}</td>${hasSuper ? `<td class="n">${m.superclassTop1 !== undefined ? metric('superclassTop1', percentText(m.superclassTop1)) : '—'}</td>` : ''}<td class="n">${r.timing.imagesPerSecond.toFixed(1)}</td></tr>`;
  });
  return `<table class="headline"><caption>Accuracy on ${escapeHtml(report.dataset.name)} with 95 % Wilson score intervals in brackets</caption>
<thead><tr><th scope="col">model</th><th scope="col">variant</th><th scope="col">device</th><th scope="col" class="n">images</th><th scope="col" class="n">top-1</th><th scope="col" class="n">top-5</th><th scope="col" class="n">mean per-class recall</th>${hasSuper ? '<th scope="col" class="n">super-class top-1</th>' : ''}<th scope="col" class="n">images/s</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

function comparisons(report: EvaluationReport): string {
  const list = report.comparisons ?? [];
  const rows = list.map((c) => {
    const a = report.results[c.a]!;
    const b = report.results[c.b]!;
    const pp = 100 * c.delta;
    const verdict = c.pValue < 0.05 ? 'a real difference (p < 0.05)' : 'within noise (p ≥ 0.05)';
    return `<tr><th scope="row">${escapeHtml(modelLabel(b))} vs ${escapeHtml(modelLabel(a))}</th><td class="n ${pp < 0 ? 'bad' : pp > 0 ? 'good' : ''}">${pp >= 0 ? '+' : '−'}${Math.abs(pp).toFixed(2)} pp</td>
<td class="n">${c.onlyA}</td><td class="n">${c.onlyB}</td><td class="n">${c.pValue < 0.0001 ? c.pValue.toExponential(1) : c.pValue.toFixed(4)}</td><td>${verdict}</td></tr>`;
  });
  return `<table><caption>Every pair on the same images: the change in top-1 from a to b, the images only one of them got right, and the exact McNemar test on those</caption>
<thead><tr><th scope="col">b vs a</th><th scope="col" class="n">Δ top-1</th><th scope="col" class="n">right under a only</th><th scope="col" class="n">right under b only</th><th scope="col" class="n">p</th><th scope="col">reading</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

function runFacts(report: EvaluationReport): string {
  const { dataset, tool, templates, options } = report;
  const subset = [dataset.subset.limit !== undefined ? `first ${dataset.subset.limit} images` : '', dataset.subset.perClass !== undefined ? `${dataset.subset.perClass} per class` : '']
    .filter(Boolean)
    .join(', ');
  const images = `${dataset.images}${dataset.totalImages !== undefined && dataset.totalImages !== dataset.images ? ` of ${dataset.totalImages}` : ''}${dataset.skipped ? ` (${dataset.skipped} unreadable, skipped)` : ''}`;
  const dataFiles = dataset.files ? Object.entries(dataset.files) : [];
  const facts: [string, string][] = [
    ['tool', `clip-eval ${escapeHtml(tool.version)}, Node.js ${escapeHtml(tool.node)}, onnxruntime ${escapeHtml(tool.onnxruntime)}`],
    ['when', `<time datetime="${escapeHtml(report.createdAt)}">${escapeHtml(report.createdAt)}</time>`],
    ['data set', `${escapeHtml(dataset.name)} (${escapeHtml(dataset.split)} split${dataset.classes !== undefined ? `, ${dataset.classes} classes` : ''})`],
    ['images', images],
    ['subset', subset ? escapeHtml(subset) : 'none: every image'],
    ['data digest', `<span class="hash">sha256 ${escapeHtml(dataset.sha256)}</span>`],
  ];
  if (dataFiles.length > 0) facts.push(['data files', dataFiles.map(([name, sha]) => `<code>${escapeHtml(name)}</code> <span class="hash">${escapeHtml(sha)}</span>`).join('<br>')]);
  facts.push(
    ['templates', `${escapeHtml(templates.name)} (${templates.templates.length} per class) <details><summary>show</summary><ul>${templates.templates.map((t) => `<li><code>${escapeHtml(t)}</code></li>`).join('')}</ul></details>`],
    ['inference', `batch ${options.batchSize}${options.threads !== undefined ? `, ${options.threads} threads` : ''}, device ${escapeHtml(options.device)}${options.deviceId !== undefined ? `:${options.deviceId}` : ''}`],
  );
  const files = report.results.flatMap((r) =>
    r.model.files.map(
      (f, i) =>
        `<tr>${i === 0 ? `<th scope="rowgroup" rowspan="${r.model.files.length}">${escapeHtml(modelLabel(r))}<br><span class="muted">${escapeHtml(r.model.layout)}</span></th>` : ''}<td>${escapeHtml(f.role)}</td><td><code>${escapeHtml(f.path)}</code></td><td class="hash">${escapeHtml(f.sha256)}</td></tr>`,
    ),
  );
  const encoders = report.results.map((r) => [`image encoder, ${modelLabel(r)}`, escapeHtml(r.model.imageEncoder)] as [string, string]);
  return `${metaList('Run', [...facts, ...encoders])}
<table class="files"><caption>Model files and their sha256</caption><thead><tr><th scope="col">model</th><th scope="col">role</th><th scope="col">path</th><th scope="col">sha256</th></tr></thead>
<tbody>${files.join('\n')}</tbody></table>`;
}

function perClassTable(view: ModelView, classNames: readonly string[]): string {
  const entries = [...view.result.metrics.perClass].sort((a, b) => (a.accuracy ?? 2) - (b.accuracy ?? 2) || a.index - b.index);
  const rows = entries.map((entry) => {
    const top = view.byClass[entry.index]![0];
    const confusion = top ? `${escapeHtml(classNames[top.predicted]!)} (${top.count})` : '—';
    const accuracy = entry.accuracy === null ? '<td class="n">no images</td>' : `<td class="n">${accuracyWithInterval(entry.accuracy, entry.interval)}</td>`;
    return `<tr data-index="${entry.index}" data-name="${escapeHtml(entry.name)}" data-images="${entry.images}" data-accuracy="${entry.accuracy ?? -1}"><td class="n">${entry.index}</td><th scope="row">${escapeHtml(entry.name)}</th><td class="n">${entry.images}</td><td class="n">${entry.correct}</td>${accuracy}<td>${accuracyBar(entry.accuracy, entry.interval)}</td><td>${confusion}</td></tr>`;
  });
  const sortable = (key: string, label: string, numeric: boolean, sort?: 'ascending') =>
    `<th scope="col" data-key="${key}"${numeric ? ' data-numeric class="n"' : ''}${sort ? ` aria-sort="${sort}"` : ''}><button type="button">${label}</button></th>`;
  return `<div class="scroll" tabindex="0" role="region" aria-label="Per-class accuracy table"><table data-sortable class="perclass">
<caption>Every class, worst first; the buttons in the header sort the table</caption>
<thead><tr>${sortable('index', 'index', true)}${sortable('name', 'class', false)}${sortable('images', 'images', true)}<th scope="col" class="n">right</th>${sortable('accuracy', 'top-1 (95 % interval)', true, 'ascending')}<th scope="col">chart</th><th scope="col">most often taken for</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table></div>`;
}

function superclassTable(view: ModelView, input: ClassificationHtmlInput, superclasses: Superclasses): string {
  const count = superclasses.names.length;
  const images = new Int32Array(count);
  const fineRight = new Int32Array(count);
  const superRight = new Int32Array(count);
  const { k, classes } = view.predictions;
  for (let n = 0; n < input.labels.length; n += 1) {
    const label = input.labels[n]!;
    const best = classes[n * k]!;
    const group = superclasses.of[label]!;
    images[group]! += 1;
    if (best === label) fineRight[group]! += 1;
    if (superclasses.of[best] === group) superRight[group]! += 1;
  }
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => superRight[a]! / (images[a]! || 1) - superRight[b]! / (images[b]! || 1) || a - b);
  const rows = order.map((g) => {
    const n = images[g]!;
    const fine = wilsonInterval(fineRight[g]!, n);
    const coarse = wilsonInterval(superRight[g]!, n);
    const cell = (right: number, interval: [number, number]) => (n > 0 ? accuracyWithInterval(right / n, interval) : 'no images');
    return `<tr><th scope="row">${escapeHtml(superclasses.names[g]!)}</th><td class="n">${n}</td><td class="n">${cell(superRight[g]!, coarse)}</td><td>${accuracyBar(n > 0 ? superRight[g]! / n : null, coarse)}</td><td class="n">${cell(fineRight[g]!, fine)}</td></tr>`;
  });
  return `<div class="scroll" tabindex="0" role="region" aria-label="Super-class accuracy table"><table>
<caption>Each super-class, worst first: how often the top-1 class lies in the right super-class, and how often it is the right class</caption>
<thead><tr><th scope="col">super-class</th><th scope="col" class="n">images</th><th scope="col" class="n">super-class top-1</th><th scope="col">chart</th><th scope="col" class="n">top-1</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></div>`;
}

function confusedPairs(view: ModelView, input: ClassificationHtmlInput): string {
  if (view.pairs.length === 0) return '<p>No image was misclassified.</p>';
  const names = input.classNames;
  const { k, classes } = view.predictions;
  const items = view.pairs.map((pair, p) => {
    const trueName = escapeHtml(names[pair.label]!);
    const predictedName = escapeHtml(names[pair.predicted]!);
    const share = view.counts.images[pair.label]! > 0 ? ` (${percentText(pair.count / view.counts.images[pair.label]!, 1)} of its images)` : '';
    const shots = view.pairImages[p]!.map((n) => {
      const id = input.ids[n]!;
      const thumbnail = input.thumbnails.get(id);
      const alt = `${escapeHtml(id)}: a ${trueName} taken for a ${predictedName}`;
      const picture = thumbnail
        ? `<img src="${thumbnail.src}" width="${thumbnail.width}" height="${thumbnail.height}" alt="${alt}">`
        : `<div class="noimg" role="img" aria-label="${alt} (no thumbnail)">?</div>`;
      const top = Array.from(classes.subarray(n * k, n * k + Math.min(k, 5)), (c) => (c === pair.label ? `<li class="right">${escapeHtml(names[c]!)} (true)</li>` : `<li>${escapeHtml(names[c]!)}</li>`));
      return `<li>${picture}<code>${wrappableId(id)}</code><ol aria-label="top-5">${top.join('')}</ol></li>`;
    });
    return `<li><h4>${trueName} → ${predictedName}: ${pair.count}${share}</h4><ul class="shots">${shots.join('')}</ul></li>`;
  });
  const open = `<ol class="pairs">${items.slice(0, REPORT_OPEN_PAIRS).join('\n')}</ol>`;
  const folded = items.slice(REPORT_OPEN_PAIRS);
  if (folded.length === 0) return open;
  return `${open}\n<details class="more"><summary>The other ${folded.length} pairs</summary><ol class="pairs" start="${REPORT_OPEN_PAIRS + 1}">${folded.join('\n')}</ol></details>`;
}

interface PageSection {
  id: string;
  heading: string;
  /** Its sub-headings, for the table of contents. */
  parts?: { id: string; heading: string }[];
  html: string;
}

function modelSection(view: ModelView, input: ClassificationHtmlInput, several: boolean): PageSection {
  const { result } = view;
  const id = `model-${view.index}`;
  const heading = several ? `Model ${view.index + 1}: ${modelLabel(result)}` : `Classes: ${modelLabel(result)}`;
  const present = result.metrics.perClass.filter((e) => e.accuracy !== null).map((e) => e.accuracy!).sort((a, b) => b - a);
  const chartLabel = present.length > 0 ? `Per-class top-1, sorted from ${percentText(present[0]!, 1)} to ${percentText(present.at(-1)!, 1)} over ${present.length} classes; the table below has every class` : 'No class has images';
  const matrix = heatmapView(view.counts, view.byClass, input.superclasses);
  const heatmapCaption = matrix.full
    ? `True class (rows) against top-1 prediction (columns), every class${input.superclasses ? ', grouped by super-class' : ''}; each cell counts images`
    : `The ${matrix.rows.length} worst classes (rows) against their own and the classes they are most often taken for (columns); each cell counts images`;
  const headings: { id: string; heading: string }[] = [];
  const subheading = (part: string, text: string) => {
    headings.push({ id: `${id}-${part}`, heading: text });
    return `<h3 id="${id}-${part}">${escapeHtml(text)}</h3>`;
  };
  const parts = [
    subheading('classes', 'Per-class accuracy'),
    `<figure>${sortedAccuracyChart(present, chartLabel)}<figcaption>${escapeHtml(chartLabel)}.</figcaption></figure>`,
    perClassTable(view, input.classNames),
  ];
  if (input.superclasses) parts.push(subheading('super', 'Super-class accuracy'), superclassTable(view, input, input.superclasses));
  parts.push(
    subheading('confusion', 'Confusion matrix'),
    HEATMAP_LEGEND,
    renderHeatmap(view.counts, matrix, input.classNames, heatmapCaption),
    subheading('pairs', 'Most-confused pairs'),
    `<p class="muted">The ${REPORT_CONFUSED_PAIRS} largest mistakes (true → predicted), with up to ${REPORT_IMAGES_PER_PAIR} of their images and each image's top-5; the first ${REPORT_OPEN_PAIRS} open.</p>`,
    confusedPairs(view, input),
  );
  return { id, heading, parts: headings, html: section(id, heading, parts.join('\n')) };
}

/** The report page of an evaluation: a pure function of what the run produced (and the thumbnails). */
export function renderClassificationHtml(input: ClassificationHtmlInput): string {
  const { report } = input;
  const views = modelViews(input);
  const several = views.length > 1;
  const sections: PageSection[] = [{ id: 'headline', heading: 'Headline metrics', html: section('headline', 'Headline metrics', headline(report)) }];
  if (report.comparisons && report.comparisons.length > 0) sections.push({ id: 'comparisons', heading: 'Paired comparisons', html: section('comparisons', 'Paired comparisons', comparisons(report)) });
  sections.push({ id: 'run', heading: 'Run', html: section('run', 'Run', runFacts(report)) });
  for (const view of views) sections.push(modelSection(view, input, several));
  const when = escapeHtml(report.createdAt);
  return renderPage({
    title: `clip-eval report: ${report.dataset.name}`,
    subtitle: `${report.results.length === 1 ? escapeHtml(modelLabel(report.results[0]!)) : `${report.results.length} models`} on ${escapeHtml(report.dataset.name)} (${escapeHtml(report.dataset.split)} split, ${report.dataset.images} images), <time datetime="${when}">${when}</time>`,
    sections: sections.map(({ id, heading, parts }) => ({ id, heading, ...(parts ? { parts } : {}) })),
    body: sections.map((s) => s.html).join('\n'),
    footer: `Written by clip-eval ${escapeHtml(report.tool.version)}. Intervals are 95 % Wilson score intervals; this page makes no network request.`,
  });
}

/** The report page of an evaluation, with thumbnails of the most-confused images read again from the data set. */
export async function classificationReportHtml(evaluation: DatasetEvaluation, dataset: Dataset, options: { logger: Logger; decode?: Omit<DecodeOptions, 'reserve'> }): Promise<string> {
  const input = {
    report: evaluation.report,
    classNames: dataset.classNames,
    ...(dataset.superclasses ? { superclasses: dataset.superclasses } : {}),
    ids: evaluation.ids,
    labels: evaluation.labels,
    predictions: evaluation.predictions,
  };
  const thumbnails = await readThumbnails(dataset, classificationThumbnailIds(input), options);
  return renderClassificationHtml({ ...input, thumbnails });
}
