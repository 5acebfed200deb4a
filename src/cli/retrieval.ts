import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { EXIT, usageError } from '../core/errors.js';
import {
  checkBaselineData,
  checkRetrievalBars,
  checkRetrievalBaseline,
  modelKey,
  parsePercentagePoints,
  parseRetrievalBar,
  readRetrievalBaseline,
  retrievalBaselineFor,
  RETRIEVAL_SCHEMA,
  type RetrievalBar,
} from '../checks/checks.js';
import { showUnprintable } from '../core/unprintable.js';
import { formatResultJson, percent, percentInterval } from '../core/format.js';
import type { Logger } from '../core/log.js';
import type { Dataset } from '../datasets/dataset.js';
import type { ModelBundle } from '../model/bundle.js';
import { openDataset } from '../datasets/registry.js';
import { deviceLabel, parseDevice } from '../model/session.js';
import { DEFAULT_RECALL_K } from '../tasks/retrieval/metrics.js';
import { modelFiles, toolInfo } from '../tasks/provenance.js';
import { runRetrieval, type RetrievalRun } from '../tasks/retrieval/retrieval.js';
import { resolveModels } from '../tasks/zero-shot/evaluate.js';
import { addCommonOptions, addInferenceOptions, addModelOptions, addRelativePathsOption, checkSplitFlag, loggerFor, modelChoices, type CommonOptions, type ModelOptions } from './flags.js';
import { formatRetrievalJunit, formatRetrievalStepSummary } from '../report/junit.js';
import { REPORT_RETRIEVED_IMAGES, retrievalReportHtml } from '../report/html/retrieval.js';
import { appendStepSummary, shareableFiles, stepSummaryPath, writeOutput } from './io.js';
import { assertDistinctOutputs, assertWritableOutput } from './options.js';

interface RetrievalCliOptions extends CommonOptions, ModelOptions {
  device: string;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  split?: string;
  cache: boolean;
  recallK: number[];
  json?: string;
  predictions?: string;
  min?: RetrievalBar[];
  baseline?: string;
  maxDrop: number;
  junit?: string;
  report?: string;
  relativePaths?: boolean;
}

/** --recall-k 1,5,10: distinct positive whole numbers, kept in ascending order. */
function recallKList(value: string): number[] {
  const parts = value.split(',').map((part) => part.trim());
  if (parts.some((part) => !/^\d+$/.test(part) || Number(part) < 1)) throw usageError(`--recall-k ${value}: expected positive whole numbers separated by commas, e.g. 1,5,10`);
  return [...new Set(parts.map(Number))].sort((a, b) => a - b);
}

function formatRetrievalSummary(spec: string, modelId: string, variant: string, run: RetrievalRun, ks: readonly number[]): string {
  const { metrics } = run.scores;
  const { timing } = run;
  const cell = (recall: Record<string, number>, interval: Record<string, [number, number]>, k: number) =>
    `${percent(recall[String(k)]!)} ${percentInterval(interval[String(k)]!)}`.padStart(25);
  const rows = ks.map((k) => `  ${`@${k}`.padEnd(6)} ${cell(metrics.imageRetrievalRecall, metrics.imageRetrievalRecallInterval, k)} ${cell(metrics.textRetrievalRecall, metrics.textRetrievalRecallInterval, k)}`);
  return [
    `retrieval: ${spec} (${metrics.images} images, ${metrics.captions} captions), model ${modelId} ${variant}`,
    `  recall ${'text→image (95 % CI)'.padStart(25)} ${'image→text (95 % CI)'.padStart(25)}`,
    ...rows,
    `time: ${timing.wallSeconds.toFixed(2)} s (images ${timing.imageSeconds.toFixed(2)} s, captions ${timing.textSeconds.toFixed(2)} s, similarity ${timing.similaritySeconds.toFixed(2)} s); caption embeddings: ${timing.textEmbeddings}`,
    '',
  ].join('\n');
}

/** One JSON Lines row per caption: its index, its image's index, that image's rank and the best images. */
function formatRetrievalPredictions(run: RetrievalRun): string {
  const { imageRanks, topImages, top } = run.scores;
  const lines: string[] = [];
  for (let c = 0; c < run.captions.length; c += 1) {
    const best = topImages ? Array.from(topImages.subarray(c * top, (c + 1) * top)) : [];
    lines.push(JSON.stringify({ caption: c, image: run.captionImage[c], rank: imageRanks[c], top: best }));
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** The document --json writes: what a retrieval baseline holds, and what traces it to its model and run (as eval's). */
async function retrievalReport(dataset: Dataset, bundle: ModelBundle, run: RetrievalRun, ks: readonly number[], options: RetrievalCliOptions, cacheRoot: string, logger: Logger) {
  // With the cache off (--no-cache) no digest is remembered either.
  const files = await modelFiles(bundle, options.cache ? cacheRoot : undefined, logger);
  return {
    schema: RETRIEVAL_SCHEMA,
    tool: toolInfo(),
    createdAt: new Date().toISOString(),
    task: 'retrieval',
    dataset: { name: dataset.name, split: dataset.split, images: run.scores.metrics.images, captions: run.scores.metrics.captions, sha256: run.sha256 },
    options: { batchSize: options.batchSize, threads: options.threads, device: options.device, deviceId: options.deviceId, recallK: ks },
    results: [
      {
        model: { id: bundle.id, layout: bundle.layout, family: run.family, variant: bundle.variant, embeddingDim: run.embeddingDim, files: options.relativePaths ? shareableFiles(files, cacheRoot) : files },
        device: deviceLabel(options),
        metrics: run.scores.metrics,
        timing: { ...run.timing, similarityBlockFloats: run.scores.blockFloats, similarityWorkers: run.scores.workers },
      },
    ],
  };
}

async function runRetrievalCommand(spec: string, options: RetrievalCliOptions): Promise<number> {
  const logger = loggerFor(options);
  const models = modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] });
  if (models.length !== 1) throw usageError('retrieval runs one model and one variant at a time; give one --model and one --variant');
  checkSplitFlag(spec, options.split);
  const outputs = [['--json', options.json], ['--predictions', options.predictions], ['--junit', options.junit], ['--report', options.report]] as const;
  for (const [flag, path] of outputs) {
    if (path) await assertWritableOutput(flag, path);
  }
  await assertDistinctOutputs(outputs);
  const baselineLabel = `--baseline ${options.baseline}`;
  const baseline = options.baseline ? await readRetrievalBaseline(options.baseline, '--baseline') : undefined;
  const stepSummary = await stepSummaryPath(logger);
  const cacheRoot = resolveCacheRoot(options.cacheDir);
  const quiet = options.quiet ?? false;
  const [bundle] = await resolveModels(models, { cacheRoot, offline: options.offline, quiet, logger });
  const dataset = await openDataset(spec, { cacheRoot, offline: options.offline, quiet, logger, split: options.split, captions: true });
  // Another data set is refused before any image is encoded; another copy of it once it has streamed.
  const before = baseline ? retrievalBaselineFor(baseline, { dataset: { name: dataset.name }, model: bundle! }, baselineLabel) : undefined;
  for (const warning of before?.warnings ?? []) logger.warn(warning);
  // A bar's k, and every k of the baseline, is measured even when --recall-k leaves it out.
  const baselineKs = before ? Object.values(before.result.metrics).flatMap((byK) => Object.keys(byK).map(Number)) : [];
  const ks = [...new Set([...options.recallK, ...(options.min ?? []).map((bar) => bar.k), ...baselineKs])].sort((a, b) => a - b);
  const run = await runRetrieval({
    dataset,
    bundle: bundle!,
    cacheRoot,
    device: parseDevice(options.device),
    deviceId: options.deviceId,
    threads: options.threads,
    batchSize: options.batchSize,
    family: options.family,
    textCache: options.cache,
    ks,
    top: options.predictions ? ks.at(-1)! : options.report ? REPORT_RETRIEVED_IMAGES : 0,
    // Pillow's Image.open, which the reference pipelines use, ignores the EXIF orientation.
    decode: { autoOrient: false },
    logger,
    quiet,
    ...(baseline ? { afterStreaming: ({ images, sha256 }: { images: number; sha256: string }) => checkBaselineData(baseline, { name: dataset.name, images, sha256 }, baselineLabel) } : {}),
  });
  process.stdout.write(formatRetrievalSummary(spec, bundle!.id, bundle!.variant, run, ks));
  if (options.json) await writeOutput('--json', options.json, formatResultJson(await retrievalReport(dataset, bundle!, run, ks, options, cacheRoot, logger)));
  if (options.predictions) await writeOutput('--predictions', options.predictions, formatRetrievalPredictions(run));
  if (options.report) {
    const device = deviceLabel(options);
    await writeOutput('--report', options.report, await retrievalReportHtml({ dataset, bundle: bundle!, run, ks, device, cacheRoot: options.cache ? cacheRoot : undefined, logger, decode: { autoOrient: false } }));
  }
  const key = modelKey({ model: bundle! });
  const outcomes = [
    ...checkRetrievalBars(key, run.scores.metrics, options.min ?? []),
    ...(before ? checkRetrievalBaseline(key, run.scores.metrics, before.result, options.maxDrop) : []),
  ];
  if (outcomes.length > 0) process.stdout.write(`\nchecks:\n${outcomes.map((o) => `  ${o.passed ? 'pass' : 'FAIL'}  ${o.message}`).join('\n')}\n`);
  const summaryRun = {
    dataset: dataset.name,
    modelKey: key,
    model: bundle!,
    device: deviceLabel(options),
    images: run.scores.metrics.images,
    captions: run.scores.metrics.captions,
    wallSeconds: run.timing.wallSeconds,
    ks,
    metrics: run.scores.metrics,
  };
  if (options.junit) await writeOutput('--junit', options.junit, formatRetrievalJunit(summaryRun, outcomes));
  if (stepSummary) await appendStepSummary(stepSummary, formatRetrievalStepSummary(summaryRun, outcomes), logger);
  const failed = outcomes.filter((o) => !o.passed);
  for (const outcome of failed) process.stderr.write(`clip-eval: check failed: ${showUnprintable(outcome.message)}\n`);
  return failed.length > 0 ? EXIT.checkFailed : EXIT.ok;
}

/** `clip-eval retrieval <dataset>`: text→image and image→text recall@k on a data set with captions. */
export function retrievalCommand(setExit: (code: number) => void): Command {
  const command = new Command('retrieval')
    .description('text-image retrieval recall@k (imageRetrievalRecall: text→image, textRetrievalRecall: image→text) on a data set with captions')
    .argument('<dataset>', 'the data set: csv:FILE (or FILE.csv) with the header path,caption, wds/NAME[@REVISION] or wds:DIR-OR-URL with .txt captions');
  addModelOptions(command, false);
  addInferenceOptions(command);
  command
    .option('--split <name>', 'the data set split (webdatasets only; default test)')
    .option('--recall-k <list>', 'the k of recall@k, comma-separated', recallKList, [...DEFAULT_RECALL_K])
    .option('--min <metric@k=x>', 'fail (exit 1) when a recall is below X, e.g. imageRetrievalRecall@5=80% (repeatable)', parseRetrievalBar('--min'))
    .option('--baseline <file>', 'compare with a previous retrieval --json result, metric by metric and k by k')
    .option('--max-drop <pp>', 'largest drop from --baseline allowed, in percentage points', parsePercentagePoints('--max-drop'), 0.5)
    .option('--json <file>', 'write the result as JSON')
    .option('--junit <file>', 'write JUnit XML: one test case per metric and k')
    .option('--predictions <file>', 'write one JSON Lines row per caption: its image, that image\'s rank and the best images')
    .option('--report <file>', 'write a self-contained HTML report: recall@k curves and the worst captions with the images retrieved');
  addRelativePathsOption(command, '--json');
  addCommonOptions(command);
  command.action(async (spec: string, options: RetrievalCliOptions) => setExit(await runRetrievalCommand(spec, options)));
  return command;
}
