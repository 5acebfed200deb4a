import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import type { CifarName } from '../datasets/cifar/cifar.js';
import { EXIT, usageError } from '../core/errors.js';
import { checkBaselineFits, parseAccuracy, parsePercentagePoints, readBaseline, runChecks } from '../checks/checks.js';
import { evaluateCifar } from '../tasks/zero-shot/evaluate.js';
import { parseDevice } from '../model/session.js';
import { assertDistinctOutputs, assertWritableOutput, positiveInteger } from './options.js';
import { formatJunit, formatStepSummary } from '../report/junit.js';
import { formatPredictions } from '../report/predictions.js';
import { formatSummary } from '../report/summary.js';
import { resolveTemplates } from '../text/templates.js';
import { showUnprintable } from '../core/unprintable.js';
import { addCommonOptions, addDataOptions, addInferenceOptions, addModelOptions, dataOptions, loggerFor, modelChoices, type CommonOptions, type DataOptions, type ModelOptions } from './flags.js';
import { appendStepSummary, stepSummaryPath, writeOutput } from './io.js';

interface EvaluateOptions extends CommonOptions, ModelOptions, DataOptions {
  device: string;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  templates: string;
  cache: boolean;
  json?: string;
  predictions?: string;
  limit?: number;
  perClass?: number;
  minTop1?: number;
  minTop5?: number;
  baseline?: string;
  maxDrop: number;
  junit?: string;
}

async function runEvaluation(dataset: CifarName, options: EvaluateOptions): Promise<number> {
  const logger = loggerFor(options);
  const models = modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] });
  if (models.length === 0) throw usageError('--variant with explicit model files takes one variant; the files are the variant');
  const outputs = [['--json', options.json], ['--predictions', options.predictions], ['--junit', options.junit]] as const;
  for (const [flag, path] of outputs) {
    if (path) await assertWritableOutput(flag, path);
  }
  await assertDistinctOutputs(outputs);
  const baselineLabel = `--baseline ${options.baseline}`;
  const baseline = options.baseline ? await readBaseline(options.baseline, '--baseline') : undefined;
  const templates = await resolveTemplates(options.templates);
  const stepSummary = await stepSummaryPath(logger);
  const evaluation = await evaluateCifar({
    dataset,
    data: dataOptions(options),
    models,
    cacheRoot: resolveCacheRoot(options.cacheDir),
    device: parseDevice(options.device),
    deviceId: options.deviceId,
    threads: options.threads,
    batchSize: options.batchSize,
    templates,
    textCache: options.cache,
    subset: { limit: options.limit, perClass: options.perClass },
    offline: options.offline,
    logger,
    quiet: options.quiet ?? false,
    beforeEncoding: ({ dataset: data, bundles }) => {
      if (!baseline) return;
      for (const warning of checkBaselineFits(baseline, { dataset: data, templates, models: bundles }, baselineLabel)) logger.warn(warning);
    },
  });
  process.stdout.write(formatSummary(evaluation.report));
  if (options.json) await writeOutput('--json', options.json, `${JSON.stringify(evaluation.report, null, 2)}\n`);
  if (options.predictions) {
    if (evaluation.predictions.length > 1) logger.warn('--predictions holds the first model\'s predictions only');
    await writeOutput('--predictions', options.predictions, formatPredictions(evaluation.indices, evaluation.labels, evaluation.predictions[0]!));
  }
  const { report } = evaluation;
  const outcomes = runChecks(report, { minTop1: options.minTop1, minTop5: options.minTop5, baseline, baselineLabel, maxDrop: options.maxDrop });
  if (outcomes.length > 0) process.stdout.write(`\nchecks:\n${outcomes.map((o) => `  ${o.passed ? 'pass' : 'FAIL'}  ${o.message}`).join('\n')}\n`);
  if (options.junit) await writeOutput('--junit', options.junit, formatJunit(report, outcomes));
  if (stepSummary) await appendStepSummary(stepSummary, formatStepSummary(report, outcomes), logger);
  const failed = outcomes.filter((o) => !o.passed);
  for (const outcome of failed) process.stderr.write(`clip-eval: check failed: ${showUnprintable(outcome.message)}\n`);
  return failed.length > 0 ? EXIT.checkFailed : EXIT.ok;
}

export function evaluationCommand(name: CifarName, description: string, setExit: (code: number) => void): Command {
  const command = new Command(name).description(description);
  addModelOptions(command, true);
  addDataOptions(command);
  addInferenceOptions(command);
  command
    .option('--templates <spec>', "prompt templates: 'openai' (18), 'single' or a file with one template per line", 'openai')
    .option('--json <file>', 'write the full result as JSON')
    .option('--predictions <file>', 'write per-image top-5 predictions as JSON Lines')
    .option('--limit <n>', 'evaluate only the first N images', positiveInteger('--limit'))
    .option('--per-class <n>', 'evaluate only the first N images of each class', positiveInteger('--per-class'))
    .option('--min-top1 <x>', 'fail (exit 1) when top-1 is below X: 0.645 or 64.5%', parseAccuracy('--min-top1'))
    .option('--min-top5 <x>', 'fail (exit 1) when top-5 is below X', parseAccuracy('--min-top5'))
    .option('--baseline <file>', 'compare with a previous --json result, metric by metric')
    .option('--max-drop <pp>', 'largest drop from --baseline allowed, in percentage points', parsePercentagePoints('--max-drop'), 0.5)
    .option('--junit <file>', 'write JUnit XML: one test case per model and metric');
  addCommonOptions(command);
  command.action(async (options: EvaluateOptions) => setExit(await runEvaluation(name, options)));
  return command;
}

