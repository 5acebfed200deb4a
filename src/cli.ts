import { Command, CommanderError, Option } from 'commander';
import { appendFile } from 'node:fs/promises';
import { readStreamBounded } from './bounded-read.js';
import { resolveCacheRoot, writeOutputFile } from './cache.js';
import { classifyImages } from './classify.js';
import { fetchCifar, type CifarName } from './datasets/cifar.js';
import { ClipEvalError, EXIT, describeError, fileSystemError, isFileSystemError, usageError } from './errors.js';
import { checkBaselineFits, parseAccuracy, parsePercentagePoints, readBaseline, runChecks } from './eval/checks.js';
import { evaluateCifar, type ModelChoice } from './evaluate-cifar.js';
import { expandInputs } from './inputs.js';
import { defaultTemplateSpec, DEFAULT_LABELS, resolveLabels } from './labels.js';
import { createLogger, type Logger } from './log.js';
import { DEFAULT_MODEL, parseVariant, resolveModelBundle, type Variant } from './model/bundle.js';
import { MAX_BATCH_SIZE } from './model/encoders.js';
import { parseDevice } from './model/session.js';
import { DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_PIXELS } from './preprocess/decode.js';
import { assertDistinctOutputs, assertWritableOutput, md5Hex, nonNegativeInteger, positiveInteger, unwritableOutputReason } from './options.js';
import {
  formatClassificationBlock,
  formatClassificationJson,
  formatClassificationTotals,
  isFailure,
  labelColumnWidth,
} from './report/classification.js';
import { formatJunit, formatStepSummary } from './report/junit.js';
import { formatPredictions } from './report/predictions.js';
import { formatSummary } from './report/summary.js';
import { resolveTemplates } from './text/templates.js';
import { formatTokenIds, loadClipTokenizer, readPadTokenFromConfig } from './text/tokenizer.js';
import { showUnprintable } from './unprintable.js';
import { VERSION } from './version.js';

export const DEFAULT_BATCH_SIZE = 32;
const BATCH_SIZE_LIMIT = { value: MAX_BATCH_SIZE, why: 'larger batches only cost memory: each holds 600 KB of pixels per image' };

interface CommonOptions {
  cacheDir?: string;
  offline?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

interface ModelOptions {
  model: string[];
  variant: Variant[];
  visionModel?: string;
  textModel?: string;
  tokenizer?: string;
}

interface DataOptions {
  dataDir?: string;
  datasetUrl?: string;
  datasetMd5?: string;
}

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

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function variantList(value: string, previous: Variant[] = []): Variant[] {
  const variants = [...previous];
  for (const variant of value.split(',').map((v) => parseVariant(v.trim()))) {
    if (variants.includes(variant)) throw usageError(`--variant ${value}: ${variant} is given twice; each variant runs once`);
    variants.push(variant);
  }
  return variants;
}

function addCommonOptions(command: Command): Command {
  return command
    .option('--cache-dir <dir>', 'cache folder (default: $CLIP_EVAL_CACHE, $XDG_CACHE_HOME/clip-eval or ~/.cache/clip-eval)')
    .option('--offline', 'never use the network; fail if something is not cached')
    .option('-q, --quiet', 'no progress output')
    .option('-v, --verbose', 'say more about what is loaded and why');
}

/** Model flags; `several` for commands that compare models and variants in one run. */
function addModelOptions(command: Command, several: boolean): Command {
  return command
    .option('-m, --model <id-or-dir>', `model folder or Hugging Face repo id org/name[@revision] (${several ? 'repeatable; ' : ''}default ${DEFAULT_MODEL})`, collect)
    .option('--variant <list>', several ? 'model variant(s): fp32, fp16, int8; comma-separated to compare several' : 'model variant: fp32, fp16 or int8', variantList)
    .option('--vision-model <file>', 'explicit image encoder .onnx (with --text-model and --tokenizer)')
    .option('--text-model <file>', 'explicit text encoder .onnx')
    .option('--tokenizer <file>', 'explicit tokenizer.json or bpe_simple_vocab_16e6.txt.gz');
}

function addInferenceOptions(command: Command): Command {
  return command
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda', 'webgpu']).default('cpu'))
    .option('--device-id <n>', 'GPU index for --device cuda', nonNegativeInteger('--device-id'))
    .option('--threads <n>', 'intra-op threads for ONNX Runtime (default: all cores)', positiveInteger('--threads'))
    .option('--batch-size <n>', `images per inference batch, at most ${MAX_BATCH_SIZE} (fixed-batch models use their own)`, positiveInteger('--batch-size', BATCH_SIZE_LIMIT), DEFAULT_BATCH_SIZE)
    .option('--no-cache', 'do not read or write cached text embeddings');
}

function addDataOptions(command: Command): Command {
  return command
    .option('--data-dir <dir>', 'use an already extracted copy of the data set; never download')
    .option('--dataset-url <url>', 'download the data set from this mirror (default: the official URL; env CLIP_EVAL_DATASET_URL)')
    .option('--dataset-md5 <hex>', 'MD5 of the archive at --dataset-url', md5Hex('--dataset-md5'));
}

function loggerFor(options: CommonOptions): Logger {
  return createLogger({ quiet: options.quiet, verbose: options.verbose });
}

function modelChoices(options: ModelOptions): ModelChoice[] {
  const explicit = [options.visionModel, options.textModel, options.tokenizer];
  if (explicit.some((file) => file !== undefined)) {
    if (explicit.some((file) => file === undefined)) throw usageError('--vision-model, --text-model and --tokenizer go together; give all three');
    if (options.model.length > 0) throw usageError('give either --model or --vision-model/--text-model/--tokenizer, not both');
    return options.variant.length > 1 ? [] : [{ visionModel: options.visionModel, textModel: options.textModel, tokenizer: options.tokenizer }];
  }
  const models = options.model.length > 0 ? options.model : [DEFAULT_MODEL];
  const variants: (Variant | undefined)[] = options.variant.length > 0 ? options.variant : [undefined];
  return models.flatMap((model) => variants.map((variant) => ({ model, variant })));
}

function dataOptions(options: DataOptions) {
  const url = options.datasetUrl ?? (process.env.CLIP_EVAL_DATASET_URL || undefined);
  if (options.datasetMd5 && !url) throw usageError('--dataset-md5 needs --dataset-url (the official archive has a known checksum)');
  return { dataDir: options.dataDir, url, md5: options.datasetMd5 };
}

/** Writes an output file a flag named; a filesystem failure is exit 3 with the flag and path. */
async function writeOutput(flag: string, path: string, data: string): Promise<void> {
  try {
    await writeOutputFile(path, data);
  } catch (error) {
    if (isFileSystemError(error)) throw fileSystemError(error, `${flag} output`, path);
    throw error;
  }
}

/**
 * $GITHUB_STEP_SUMMARY is a courtesy to the CI page, not the gate: when it cannot be written the
 * run warns (up front when it can tell) and keeps the exit code of its checks.
 */
async function stepSummaryPath(logger: Logger): Promise<string | undefined> {
  const path = process.env.GITHUB_STEP_SUMMARY;
  if (!path) return undefined;
  const reason = await unwritableOutputReason(path, 'append');
  if (reason === undefined) return path;
  logger.warn(`$GITHUB_STEP_SUMMARY ${path}: ${reason}; no step summary will be written`);
  return undefined;
}

async function appendStepSummary(path: string, text: string, logger: Logger): Promise<void> {
  try {
    await appendFile(path, text);
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    logger.warn(`${describeError(fileSystemError(error, '$GITHUB_STEP_SUMMARY', path))}; the step summary was not written`);
  }
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

function evaluationCommand(name: CifarName, description: string, setExit: (code: number) => void): Command {
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

function fetchCommand(setExit: (code: number) => void): Command {
  const command = new Command('fetch')
    .description('download data sets and models into the cache ahead of time (cifar100, cifar10, model)')
    .argument('<what...>', 'cifar100, cifar10 and/or model');
  addModelOptions(command, true);
  addDataOptions(command);
  addCommonOptions(command);
  command.action(async (what: string[], options: CommonOptions & ModelOptions & DataOptions) => {
    const logger = loggerFor(options);
    const cacheRoot = resolveCacheRoot(options.cacheDir);
    const items = what.map((item) => {
      if (item !== 'cifar100' && item !== 'cifar10' && item !== 'model') throw usageError(`fetch ${item}: unknown; choose cifar100, cifar10 or model`);
      return item;
    });
    for (const item of items) {
      if (item === 'model') {
        for (const choice of modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] })) {
          const bundle = await resolveModelBundle({ ...choice, cacheRoot, offline: options.offline, quiet: options.quiet, logger });
          process.stdout.write(`${bundle.id} (${bundle.layout}, ${bundle.variant}): ${bundle.visionModelPath}, ${bundle.textModelPath}\n`);
        }
      } else {
        const directory = await fetchCifar(item, { ...dataOptions(options), cacheRoot, offline: options.offline, quiet: options.quiet, logger });
        process.stdout.write(`${item}: ${directory}\n`);
      }
    }
    setExit(EXIT.ok);
  });
  return command;
}

/** All of standard input, cut off (an error) past the image file limit: /dev/zero must not fill memory. */
async function readStdin(): Promise<Buffer> {
  return readStreamBounded(process.stdin, DEFAULT_MAX_IMAGE_BYTES, 'standard input');
}

async function readStdinLines(): Promise<string[]> {
  const lines = (await readStdin()).toString('utf8').split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function tokenizeCommand(setExit: (code: number) => void): Command {
  const command = new Command('tokenize')
    .description('print the token ids of each text (SOT and EOT included, no padding), one JSON array per line; reads standard input when no TEXT is given')
    .argument('[text...]', 'texts to tokenize')
    .option('-m, --model <id-or-dir>', `take the tokenizer of this model (default ${DEFAULT_MODEL})`)
    .option('--tokenizer <file>', 'tokenizer.json or bpe_simple_vocab_16e6.txt.gz')
    .option('--context-length <n>', 'truncate to this many tokens, EOT last (default: the model\'s, 77)', positiveInteger('--context-length'));
  addCommonOptions(command);
  command.action(async (texts: string[], options: CommonOptions & { model?: string; tokenizer?: string; contextLength?: number }) => {
    const logger = loggerFor(options);
    if (options.model && options.tokenizer) throw usageError('give either --model or --tokenizer, not both');
    let tokenizerPath = options.tokenizer;
    let contextLength = 77;
    let padToken: string | undefined;
    if (!tokenizerPath) {
      const bundle = await resolveModelBundle({ model: options.model ?? DEFAULT_MODEL, cacheRoot: resolveCacheRoot(options.cacheDir), offline: options.offline, quiet: options.quiet, logger, needVision: false, needText: false });
      tokenizerPath = bundle.tokenizerPath;
      contextLength = bundle.contextLength;
      if (bundle.tokenizerConfigPath) padToken = await readPadTokenFromConfig(bundle.tokenizerConfigPath);
    }
    const tokenizer = await loadClipTokenizer(tokenizerPath, { padToken });
    const inputs = texts.length > 0 ? texts : await readStdinLines();
    const lines = inputs.map((text) => formatTokenIds(tokenizer.encodeForModel(text, options.contextLength ?? contextLength)));
    process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
    setExit(EXIT.ok);
  });
  return command;
}

interface ClassifyOptions extends CommonOptions, ModelOptions {
  labels: string;
  templates?: string;
  top: number;
  json?: boolean;
  recursive?: boolean;
  autoOrient: boolean;
  maxPixels: number;
  device: string;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  cache: boolean;
}

async function readStdinBytes(): Promise<Uint8Array> {
  if (process.stdin.isTTY) throw usageError('"-": standard input is a terminal; pipe an image into it, e.g. clip-eval classify - < photo.jpg');
  return readStdin();
}

async function runClassify(files: string[], options: ClassifyOptions): Promise<number> {
  const logger = loggerFor(options);
  const models = modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] });
  if (models.length !== 1) throw usageError('classify uses one model: give at most one --model and one --variant');
  const labelSet = await resolveLabels(options.labels);
  const templates = await resolveTemplates(options.templates ?? defaultTemplateSpec(labelSet));
  const images = await expandInputs(files, { recursive: options.recursive, readStdin: readStdinBytes });
  const labelWidth = labelColumnWidth(labelSet.labels);
  let blocks = 0;
  const run = await classifyImages({
    images,
    labels: labelSet.labels,
    templates: templates.templates,
    model: models[0]!,
    cacheRoot: resolveCacheRoot(options.cacheDir),
    device: parseDevice(options.device),
    deviceId: options.deviceId,
    threads: options.threads,
    batchSize: options.batchSize,
    top: options.top,
    textCache: options.cache,
    decode: { autoOrient: options.autoOrient, maxPixels: options.maxPixels },
    offline: options.offline,
    logger,
    quiet: options.quiet ?? false,
    // Results streaming to a terminal are progress enough; a bar would tangle with them.
    imageProgress: !process.stdout.isTTY && images.length > options.batchSize,
    onResult: (result) => {
      if (isFailure(result)) process.stderr.write(`clip-eval: ${showUnprintable(result.error)}\n`);
      if (options.json) process.stdout.write(formatClassificationJson(result));
      else if (!isFailure(result)) process.stdout.write(`${blocks++ > 0 ? '\n' : ''}${formatClassificationBlock(result, labelWidth)}`);
    },
  });
  const totals = formatClassificationTotals({ images: images.length, failed: run.failed, seconds: run.seconds });
  if (options.json) logger.info(totals.trimEnd());
  else if (images.length > 1) process.stdout.write(`${blocks > 0 ? '\n' : ''}${totals}`);
  if (run.failed === 0) return EXIT.ok;
  process.stderr.write(`clip-eval: ${run.failed} of ${images.length} ${images.length === 1 ? 'image' : 'images'} could not be classified\n`);
  return EXIT.input;
}

function classifyCommand(setExit: (code: number) => void): Command {
  const command = new Command('classify')
    .description('zero-shot classify image files against labels: top-k labels with softmax probabilities per image')
    .argument('<file...>', 'image files, folders of images, or - for standard input')
    .option('-l, --labels <spec>', "'cifar100', 'cifar10', a comma-separated list (\"cat,dog,a red car\") or @FILE with one label per line", DEFAULT_LABELS)
    .option('--templates <spec>', "prompt templates: 'openai' (18), 'single' or a file with one template per line (default: openai for cifar100/cifar10, single for your own labels)")
    .option('-k, --top <n>', 'labels to show per image (at most the number of labels)', positiveInteger('--top'), 5)
    .option('--json', 'print JSON Lines, one object per image in input order, instead of the table')
    .option('-r, --recursive', 'also classify images in subfolders of folder arguments')
    .option('--no-auto-orient', 'ignore the EXIF orientation tag (default: rotate photos upright first)')
    .option('--max-pixels <n>', 'refuse images with more pixels than this (16383² by default), a guard against decompression bombs', positiveInteger('--max-pixels'), DEFAULT_MAX_PIXELS);
  addModelOptions(command, false);
  addInferenceOptions(command);
  addCommonOptions(command);
  command.action(async (files: string[], options: ClassifyOptions) => setExit(await runClassify(files, options)));
  return command;
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('clip-eval')
    .description('Zero-shot evaluation of CLIP models (ONNX) on CIFAR-100 and CIFAR-10')
    .version(VERSION);
  program.addCommand(evaluationCommand('cifar100', 'zero-shot top-1/top-5 accuracy on the CIFAR-100 test set (10,000 images)', setExit));
  program.addCommand(evaluationCommand('cifar10', 'zero-shot top-1/top-5 accuracy on the CIFAR-10 test set (10,000 images)', setExit));
  program.addCommand(fetchCommand(setExit));
  program.addCommand(tokenizeCommand(setExit));
  program.addCommand(classifyCommand(setExit));
  return program;
}

/** Runs the CLI and returns the exit code; errors are printed as one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  program.exitOverride();
  const output = {
    writeErr: (text: string) => process.stderr.write(text),
    outputError: (text: string, write: (text: string) => void) => write(`clip-eval: ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`),
  };
  program.configureOutput(output);
  for (const command of program.commands) command.exitOverride().configureOutput(output);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; help shown because no command was given is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof ClipEvalError) {
      process.stderr.write(`clip-eval: ${describeError(error)}\n`);
      return error.exitCode;
    }
    // A filesystem condition met where no stage gave it context is still the environment, not a bug.
    if (isFileSystemError(error)) {
      const environment = fileSystemError(error);
      process.stderr.write(`clip-eval: ${describeError(environment)}\n`);
      return environment.exitCode;
    }
    process.stderr.write(`clip-eval: internal error: ${describeError(error)}\n`);
    if (process.env.CLIP_EVAL_DEBUG) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    return EXIT.internal;
  }
}

