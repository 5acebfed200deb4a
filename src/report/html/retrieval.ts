import type { Logger } from '../../core/log.js';
import type { Dataset } from '../../datasets/dataset.js';
import type { ModelBundle } from '../../model/bundle.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { modelFiles, toolInfo } from '../../tasks/provenance.js';
import type { RetrievalRun } from '../../tasks/retrieval/retrieval.js';
import { wilsonInterval } from '../../tasks/statistics.js';
import { readThumbnails, type Thumbnail } from '../thumbnails.js';
import { accuracyWithInterval, recallCurveChart } from './charts.js';
import { escapeHtml, metaList, percentText, renderPage, section, wrappableId } from './page.js';

/** The worst captions shown, and the retrieved images shown for each. */
export const REPORT_WORST_CAPTIONS = 20;
export const REPORT_RETRIEVED_IMAGES = 5;
/** The recall curves run from k = 1 to this (or the number of images, when fewer). */
const CURVE_MAX_K = 100;

export interface RetrievalHtmlInput {
  tool: { version: string; node: string; onnxruntime: string };
  createdAt: string;
  dataset: { name: string; split: string };
  model: { id: string; layout: string; variant: string; files: readonly { role: string; path: string; sha256: string }[] };
  device: string;
  /** The k of the headline table. */
  ks: readonly number[];
  run: Pick<RetrievalRun, 'scores' | 'imageIds' | 'captions' | 'captionImage'>;
  /** By image sample id. */
  thumbnails: ReadonlyMap<string, Thumbnail>;
}

/** Hits among `ranks` at each k = 1 … maxK (a rank of 0, no caption, never hits). */
function hitsByK(ranks: Int32Array, maxK: number): Int32Array {
  const atRank = new Int32Array(maxK + 1);
  for (const rank of ranks) if (rank > 0 && rank <= maxK) atRank[rank]! += 1;
  const hits = new Int32Array(maxK + 1);
  for (let k = 1; k <= maxK; k += 1) hits[k] = hits[k - 1]! + atRank[k]!;
  return hits;
}

function hitsAt(ranks: Int32Array, k: number): number {
  let hits = 0;
  for (const rank of ranks) if (rank > 0 && rank <= k) hits += 1;
  return hits;
}

/** The captions whose own image ranked lowest, worst first; ties in caption order. */
export function worstCaptions(run: RetrievalHtmlInput['run']): number[] {
  const { imageRanks } = run.scores;
  return Array.from(imageRanks.keys())
    .filter((c) => imageRanks[c]! > 1)
    .sort((a, b) => imageRanks[b]! - imageRanks[a]! || a - b)
    .slice(0, REPORT_WORST_CAPTIONS);
}

/** The image ids whose thumbnails the report shows: each worst caption's own image and its best retrieved ones. */
export function retrievalThumbnailIds(run: RetrievalHtmlInput['run']): Set<string> {
  const ids = new Set<string>();
  const { topImages, top } = run.scores;
  for (const c of worstCaptions(run)) {
    ids.add(run.imageIds[run.captionImage[c]!]!);
    if (topImages) for (const i of topImages.subarray(c * top, c * top + Math.min(top, REPORT_RETRIEVED_IMAGES))) ids.add(run.imageIds[i]!);
  }
  return ids;
}

function picture(input: RetrievalHtmlInput, image: number, alt: string): string {
  const id = input.run.imageIds[image]!;
  const thumbnail = input.thumbnails.get(id);
  const altText = escapeHtml(`${id}: ${alt}`);
  return thumbnail ? `<img src="${thumbnail.src}" width="${thumbnail.width}" height="${thumbnail.height}" alt="${altText}">` : `<div class="noimg" role="img" aria-label="${altText} (no thumbnail)">?</div>`;
}

function worstCaptionList(input: RetrievalHtmlInput): string {
  const worst = worstCaptions(input.run);
  if (worst.length === 0) return '<p>Every caption ranked its own image first.</p>';
  const { imageRanks, topImages, top } = input.run.scores;
  const items = worst.map((c) => {
    const own = input.run.captionImage[c]!;
    const caption = input.run.captions[c]!;
    const retrieved = topImages
      ? Array.from(topImages.subarray(c * top, c * top + Math.min(top, REPORT_RETRIEVED_IMAGES)), (image, slot) => {
          const mine = image === own;
          return `<li>${picture(input, image, `retrieved ${slot + 1}${mine ? ', the caption\'s own image' : ''}`)}<code>${wrappableId(input.run.imageIds[image]!)}</code>${mine ? ' <span class="right">(own)</span>' : ''}</li>`;
        })
      : [];
    return `<li><h4>“${escapeHtml(caption)}”</h4><p class="muted">own image ranked ${imageRanks[c]} of ${input.run.imageIds.length}</p>
<ul class="shots"><li>${picture(input, own, 'the caption\'s own image')}<code>${wrappableId(input.run.imageIds[own]!)}</code> <span class="right">own</span></li>${retrieved.join('')}</ul></li>`;
  });
  return `<ol class="pairs">${items.join('\n')}</ol>`;
}

export function renderRetrievalHtml(input: RetrievalHtmlInput): string {
  const { scores } = input.run;
  const { images, captions } = scores.metrics;
  const headlineRows = input.ks.map((k) => {
    const t2i = hitsAt(scores.imageRanks, k);
    const i2t = hitsAt(scores.captionRanks, k);
    const metric = (name: string, hits: number, of: number) =>
      `<span data-metric="${name}@${k}">${percentText(of > 0 ? hits / of : 0)}</span> <span class="muted">(${(100 * wilsonInterval(hits, of)[0]).toFixed(2)}–${(100 * wilsonInterval(hits, of)[1]).toFixed(2)})</span>`;
    return `<tr><th scope="row">@${k}</th><td class="n big">${metric('imageRetrievalRecall', t2i, captions)}</td><td class="n big">${metric('textRetrievalRecall', i2t, images)}</td></tr>`;
  });
  const headline = `<table class="headline"><caption>Recall@k on ${escapeHtml(input.dataset.name)} (${images} images, ${captions} captions), 95 % Wilson score intervals in brackets</caption>
<thead><tr><th scope="col">k</th><th scope="col" class="n">text→image (imageRetrievalRecall)</th><th scope="col" class="n">image→text (textRetrievalRecall)</th></tr></thead>
<tbody>${headlineRows.join('\n')}</tbody></table>`;

  const maxK = Math.max(1, Math.min(CURVE_MAX_K, images));
  const t2i = hitsByK(scores.imageRanks, maxK);
  const i2t = hitsByK(scores.captionRanks, maxK);
  const values = (hits: Int32Array, of: number) => Array.from({ length: maxK }, (_, i) => (of > 0 ? hits[i + 1]! / of : 0));
  const curveLabel = `Recall@k for k = 1 to ${maxK}: text→image from ${percentText(t2i[1]! / Math.max(captions, 1), 1)} to ${percentText(t2i[maxK]! / Math.max(captions, 1), 1)}, image→text from ${percentText(i2t[1]! / Math.max(images, 1), 1)} to ${percentText(i2t[maxK]! / Math.max(images, 1), 1)}; the table below has every k`;
  const curveRows = Array.from({ length: maxK }, (_, i) => {
    const k = i + 1;
    return `<tr><th scope="row">${k}</th><td class="n">${accuracyWithInterval(t2i[k]! / Math.max(captions, 1), wilsonInterval(t2i[k]!, captions))}</td><td class="n">${accuracyWithInterval(i2t[k]! / Math.max(images, 1), wilsonInterval(i2t[k]!, images))}</td></tr>`;
  });
  const curves = `<figure>${recallCurveChart(
    [
      { name: 'text→image', values: values(t2i, captions) },
      { name: 'image→text', values: values(i2t, images) },
    ],
    curveLabel,
  )}<figcaption>${escapeHtml(curveLabel)}.</figcaption></figure>
<div class="scroll" tabindex="0" role="region" aria-label="Recall at every k"><table><caption>Recall at every k</caption><thead><tr><th scope="col">k</th><th scope="col" class="n">text→image</th><th scope="col" class="n">image→text</th></tr></thead>
<tbody>${curveRows.join('\n')}</tbody></table></div>`;

  const facts: [string, string][] = [
    ['tool', `clip-eval ${escapeHtml(input.tool.version)}, Node.js ${escapeHtml(input.tool.node)}, onnxruntime ${escapeHtml(input.tool.onnxruntime)}`],
    ['when', `<time datetime="${escapeHtml(input.createdAt)}">${escapeHtml(input.createdAt)}</time>`],
    ['data set', `${escapeHtml(input.dataset.name)} (${escapeHtml(input.dataset.split)} split), ${images} images, ${captions} captions`],
    ['model', `${escapeHtml(input.model.id)} (${escapeHtml(input.model.layout)}, ${escapeHtml(input.model.variant)})`],
    ['device', escapeHtml(input.device)],
  ];
  const files = input.model.files.map((f) => `<tr><td>${escapeHtml(f.role)}</td><td><code>${escapeHtml(f.path)}</code></td><td class="hash">${escapeHtml(f.sha256)}</td></tr>`);
  const run = `${metaList('Run', facts)}
<table class="files"><caption>Model files and their sha256</caption><thead><tr><th scope="col">role</th><th scope="col">path</th><th scope="col">sha256</th></tr></thead><tbody>${files.join('')}</tbody></table>`;

  const sections = [
    { id: 'headline', heading: 'Headline metrics', html: headline },
    { id: 'curves', heading: 'Recall@k curves', html: curves },
    { id: 'worst', heading: 'Worst captions', html: `<p class="muted">The ${REPORT_WORST_CAPTIONS} captions whose own image ranked lowest, with it and the ${REPORT_RETRIEVED_IMAGES} images retrieved first.</p>\n${worstCaptionList(input)}` },
    { id: 'run', heading: 'Run', html: run },
  ];
  const when = escapeHtml(input.createdAt);
  return renderPage({
    title: `clip-eval retrieval report: ${input.dataset.name}`,
    subtitle: `${escapeHtml(input.model.id)} [${escapeHtml(input.model.variant)}] on ${escapeHtml(input.dataset.name)} (${images} images, ${captions} captions), <time datetime="${when}">${when}</time>`,
    sections: sections.map(({ id, heading }) => ({ id, heading })),
    body: sections.map((s) => section(s.id, s.heading, s.html)).join('\n'),
    footer: `Written by clip-eval ${escapeHtml(input.tool.version)}. Intervals are 95 % Wilson score intervals; this page makes no network request.`,
  });
}

/** The report page of a retrieval run, with the model files' digests and thumbnails of the worst captions' images. */
export async function retrievalReportHtml(options: {
  dataset: Dataset;
  bundle: ModelBundle;
  run: RetrievalRun;
  ks: readonly number[];
  device: string;
  /** Where the model files' digests are remembered; undefined with the cache off. */
  cacheRoot: string | undefined;
  logger: Logger;
  decode?: Omit<DecodeOptions, 'reserve'>;
}): Promise<string> {
  const { bundle, logger } = options;
  const files = await modelFiles(bundle, options.cacheRoot, logger);
  const thumbnails = await readThumbnails(options.dataset, retrievalThumbnailIds(options.run), { logger, ...(options.decode ? { decode: options.decode } : {}) });
  return renderRetrievalHtml({
    tool: toolInfo(),
    createdAt: new Date().toISOString(),
    dataset: { name: options.dataset.name, split: options.dataset.split },
    model: { id: bundle.id, layout: bundle.layout, variant: bundle.variant, files },
    device: options.device,
    ks: options.ks,
    run: options.run,
    thumbnails,
  });
}
