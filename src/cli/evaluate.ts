import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { ClipEvalError, EXIT, usageError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { compareWithBaseline, readBaselinePredictions } from '../checks/baseline-predictions.js';
import { checkBaselineData, checkBaselineFits, parseAccuracy, parseAccuracyBar, parsePercentagePoints, readBaseline, runChecks, type Baseline } from '../checks/checks.js';
import { resolveClassNames } from '../datasets/class-names.js';
import type { Dataset } from '../datasets/dataset.js';
import { openDataset } from '../datasets/registry.js';
import { evaluateDataset, resolveModels } from '../tasks/zero-shot/evaluate.js';
import { topConfusions } from '../tasks/zero-shot/metrics.js';
import { parseDevice } from '../model/session.js';
import { ImageJobError } from '../preprocess/image-pool.js';
import { assertDistinctOutputs, assertWritableOutput, positiveInteger } from './options.js';
import { formatPerClassCsv } from '../report/csv.js';
import { formatJunit, formatStepSummary } from '../report/junit.js';
import { classificationReportHtml } from '../report/html/classification.js';
import { formatPredictions } from '../report/predictions.js';
import { formatSummary } from '../report/summary.js';
import { resolveTemplates, validateTemplates, type TemplateSet } from '../text/templates.js';
import { formatResultJson } from '../core/format.js';
import { showUnprintable } from '../core/unprintable.js';
import { addCommonOptions, addDataOptions, addInferenceOptions, addModelOptions, addRelativePathsOption, checkDataFlags, checkSplitFlag, dataOptions, loggerFor, modelChoices, type CommonOptions, type DataOptions, type ModelOptions } from './flags.js';
import { appendStepSummary, shareableFiles, stepSummaryPath, writeOutput } from './io.js';

interface EvaluateOptions extends CommonOptions, ModelOptions, DataOptions {
  device: string;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  templates?: string;
  split?: string;
  classnames?: string;
  skipUnreadable?: boolean;
  cache: boolean;
  json?: string;
  predictions?: string;
  csv?: string;
  limit?: number;
  perClass?: number;
  minTop1?: number;
  minTop5?: number;
  min?: Partial<Record<'top1' | 'top5', number>>;
  baseline?: string;
  baselinePredictions?: string;
  maxDrop: number;
  junit?: string;
  report?: string;
  relativePaths?: boolean;
}

/** --templates: as given, else the data set's default; 'dataset' is the data set's own template file. */
async function datasetTemplates(spec: string, dataset: Dataset): Promise<TemplateSet> {
  if (spec !== 'dataset') return resolveTemplates(spec);
  if (!dataset.templates) throw usageError(`--templates dataset: ${dataset.name} has no templates of its own; choose openai, imagenet, single or a file`);
  validateTemplates(dataset.templates, `the templates of ${dataset.name}`);
  return { name: 'dataset', templates: dataset.templates };
}

function baselineHooks(baseline: Baseline | undefined, label: string, templates: TemplateSet, logger: Logger) {
  if (!baseline) return {};
  return {
    beforeEncoding: ({ dataset, bundles }: { dataset: { name: string; subset: Baseline['dataset']['subset']; sha256?: string }; bundles: readonly { id: string; variant: string }[] }) => {
      for (const warning of checkBaselineFits(baseline, { dataset, templates, models: bundles }, label)) logger.warn(warning);
    },
    // A data set digested as it streams (and any subset's image count) is known only once the data has
    // gone through the first model: its data check happens then, before any output is written.
    afterStreaming: ({ dataset }: { dataset: { name: string; subset: Baseline['dataset']['subset']; images: number; sha256: string } }) =>
      checkBaselineData(baseline, dataset, label),
  };
}

/** An image that cannot be read fails the run; its message says how to skip such images instead. */
function withSkipHint(error: unknown): unknown {
  if (!(error instanceof ImageJobError) || error.kind !== 'input' || error.hint) return error;
  return new ClipEvalError(error.detail, error.kind, { ...(error.input ? { input: error.input } : {}), hint: { kind: 'skipUnreadable' }, cause: error });
}

/** `skipFlag`: the command has --skip-unreadable (cifar100/cifar10 do not), so an unreadable image's error suggests it. */
async function runEvaluation(spec: string, options: EvaluateOptions, skipFlag: boolean): Promise<number> {
  const logger = loggerFor(options);
  for (const metric of ['top1', 'top5'] as const) {
    const flag = metric === 'top1' ? '--min-top1' : '--min-top5';
    if (options.min?.[metric] !== undefined && options[metric === 'top1' ? 'minTop1' : 'minTop5'] !== undefined) throw usageError(`--min ${metric}=… and ${flag} set the same bar; give one`);
  }
  const minTop1 = options.minTop1 ?? options.min?.top1;
  const minTop5 = options.minTop5 ?? options.min?.top5;
  const models = modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] });
  if (models.length === 0) throw usageError('--variant with explicit model files takes one variant; the files are the variant');
  if (options.baselinePredictions !== undefined && options.baseline === undefined) {
    throw usageError('--baseline-predictions needs --baseline: the JSON result of the run that wrote those predictions');
  }
  checkSplitFlag(spec, options.split);
  checkDataFlags(spec, options);
  const outputs = [['--json', options.json], ['--predictions', options.predictions], ['--csv', options.csv], ['--junit', options.junit], ['--report', options.report]] as const;
  for (const [flag, path] of outputs) {
    if (path) await assertWritableOutput(flag, path);
  }
  await assertDistinctOutputs(outputs);
  const baselineLabel = `--baseline ${options.baseline}`;
  const baseline = options.baseline ? await readBaseline(options.baseline, '--baseline') : undefined;
  const baselinePredictions =
    baseline && options.baselinePredictions !== undefined
      ? await readBaselinePredictions(options.baselinePredictions, `--baseline-predictions ${options.baselinePredictions}`, baseline)
      : undefined;
  // Template and class-name files are read before anything is downloaded, so that a typo costs nothing.
  const givenTemplates = options.templates !== undefined && options.templates !== 'dataset' ? await resolveTemplates(options.templates) : undefined;
  const classNames = options.classnames !== undefined ? await resolveClassNames(options.classnames) : undefined;
  const stepSummary = await stepSummaryPath(logger);
  const cacheRoot = resolveCacheRoot(options.cacheDir);
  const quiet = options.quiet ?? false;
  const bundles = await resolveModels(models, { cacheRoot, offline: options.offline, quiet, logger });
  const dataset = await openDataset(spec, { ...dataOptions(options), cacheRoot, offline: options.offline, quiet, logger, split: options.split, classNames });
  const templates = givenTemplates ?? (await datasetTemplates(options.templates ?? dataset.defaultTemplates, dataset));
  const evaluation = await evaluateDataset({
    dataset,
    bundles,
    cacheRoot,
    device: parseDevice(options.device),
    deviceId: options.deviceId,
    threads: options.threads,
    batchSize: options.batchSize,
    templates,
    family: options.family,
    textCache: options.cache,
    imageCache: options.cache,
    subset: { limit: options.limit, perClass: options.perClass },
    skipUnreadable: options.skipUnreadable,
    // Pillow's Image.open, which the reference pipelines use, ignores the EXIF orientation.
    decode: { autoOrient: false },
    logger,
    quiet,
    ...baselineHooks(baseline, baselineLabel, templates, logger),
  }).catch((error: unknown) => {
    throw skipFlag && !options.skipUnreadable ? withSkipHint(error) : error;
  });
  const { report } = evaluation;
  if (options.relativePaths) for (const result of report.results) result.model.files = shareableFiles(result.model.files, cacheRoot);
  if (baseline && baselinePredictions) report.baselineComparisons = compareWithBaseline(report, evaluation, baseline, baselinePredictions);
  process.stdout.write(formatSummary(report));
  if (options.json) await writeOutput('--json', options.json, formatResultJson(report));
  if (options.predictions) await writeOutput('--predictions', options.predictions, formatPredictions(evaluation.ids, evaluation.labels, evaluation.predictions));
  if (options.csv) {
    const confusions = evaluation.predictions.map((predictions) => topConfusions(evaluation.labels, predictions, dataset.classNames));
    await writeOutput('--csv', options.csv, formatPerClassCsv(report, confusions));
  }
  if (options.report) await writeOutput('--report', options.report, await classificationReportHtml(evaluation, dataset, { logger, decode: { autoOrient: false } }));
  if (minTop5 !== undefined && report.results.some((r) => r.metrics.top5 === null)) {
    logger.warn(`--min-top5: ${dataset.name} has ${dataset.classNames.length} classes, fewer than 5, so top-5 is not measured and not checked`);
  }
  const outcomes = runChecks(report, { minTop1, minTop5, baseline, baselineLabel, maxDrop: options.maxDrop });
  if (outcomes.length > 0) process.stdout.write(`\nchecks:\n${outcomes.map((o) => `  ${o.passed ? 'pass' : 'FAIL'}  ${o.message}`).join('\n')}\n`);
  if (options.junit) await writeOutput('--junit', options.junit, formatJunit(report, outcomes));
  if (stepSummary) await appendStepSummary(stepSummary, formatStepSummary(report, outcomes), logger);
  const failed = outcomes.filter((o) => !o.passed);
  for (const outcome of failed) process.stderr.write(`clip-eval: check failed: ${showUnprintable(outcome.message)}\n`);
  return failed.length > 0 ? EXIT.checkFailed : EXIT.ok;
}

/** The flags of `eval`, and of `cifar100`/`cifar10` (`named`): CIFAR has one split and no file that can be unreadable. */
function addEvaluationOptions(command: Command, named: boolean): Command {
  addModelOptions(command, true);
  addDataOptions(command);
  addInferenceOptions(command);
  if (!named) {
    command
      .option('--split <name>', 'the data set split (webdatasets only; default test)')
      .option('--skip-unreadable', 'skip and count images that cannot be read or decoded (default: the first one fails the run)');
  }
  command
    .option('--templates <spec>', "prompt templates: 'openai' (18), 'imagenet' (80), 'single', 'dataset' (the data set's own) or a file with one template per line (default: the data set's: openai for CIFAR)")
    .option('--classnames <spec>', "class names for the prompts, in label order: 'imagenet1k', 'cifar100', 'cifar10' or a file with one name per line (default: the data set's)")
    .option('--json <file>', 'write the full result as JSON')
    .option('--predictions <file>', 'write per-image top-5 predictions as JSON Lines (every model\'s, each row with its "model")')
    .option('--csv <file>', 'write the per-class table as CSV: images, correct, accuracy and its interval, top confusion')
    .option('--limit <n>', 'evaluate only the first N images', positiveInteger('--limit'))
    .option('--per-class <n>', 'evaluate only the first N images of each class', positiveInteger('--per-class'))
    .option('--min-top1 <x>', 'fail (exit 1) when top-1 is below X: 0.645 or 64.5%', parseAccuracy('--min-top1'))
    .option('--min-top5 <x>', 'fail (exit 1) when top-5 is below X', parseAccuracy('--min-top5'))
    .option('--min <metric=x>', 'the same bars as top1=X or top5=X, e.g. --min top1=64% (repeatable)', parseAccuracyBar('--min'))
    .option('--baseline <file>', 'compare with a previous --json result, metric by metric')
    .option('--baseline-predictions <file>', 'the --predictions output of the --baseline run: compare image by image (exact McNemar test)')
    .option('--max-drop <pp>', 'largest drop from --baseline allowed, in percentage points', parsePercentagePoints('--max-drop'), 0.5)
    .option('--junit <file>', 'write JUnit XML: one test case per model and metric')
    .option('--report <file>', 'write a self-contained HTML report: per-class accuracy, confusion matrix, the most-confused images');
  addRelativePathsOption(command, '--json and --report');
  return addCommonOptions(command);
}

/** `clip-eval cifar100` / `clip-eval cifar10`: `eval` on a named data set. */
export function evaluationCommand(name: string, description: string, setExit: (code: number) => void): Command {
  const command = addEvaluationOptions(new Command(name).description(description), true);
  command.action(async (options: EvaluateOptions) => setExit(await runEvaluation(name, options, false)));
  return command;
}

/** `clip-eval eval <dataset>`: any data set the registry knows. */
export function evalCommand(setExit: (code: number) => void): Command {
  const command = new Command('eval')
    .description('zero-shot top-1/top-5 accuracy on any data set: cifar100, cifar10, wds/NAME[@REV], wds:DIR-OR-URL, csv:FILE, or an image folder')
    .argument('<dataset>', 'the data set: cifar100, cifar10, wds/NAME[@REVISION], wds:DIR-OR-URL, csv:FILE (or FILE.csv), folder:DIR (or DIR)');
  addEvaluationOptions(command, false);
  command.action(async (spec: string, options: EvaluateOptions) => setExit(await runEvaluation(spec, options, true)));
  return command;
}
