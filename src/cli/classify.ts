import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { classifyImages } from '../tasks/zero-shot/classify.js';
import { EXIT, usageError } from '../core/errors.js';
import { expandInputs } from '../datasets/image-files.js';
import { defaultTemplateSpec, DEFAULT_LABELS, resolveLabels } from '../text/labels.js';
import { parseDevice } from '../model/session.js';
import { DEFAULT_MAX_PIXELS } from '../preprocess/decode.js';
import { positiveInteger } from './options.js';
import {
  formatClassificationBlock,
  formatClassificationJson,
  formatClassificationTotals,
  labelColumnWidth,
} from '../report/classification.js';
import { isFailure } from '../tasks/zero-shot/classification.js';
import { resolveTemplates } from '../text/templates.js';
import { showUnprintable } from '../core/unprintable.js';
import { addCommonOptions, addInferenceOptions, addModelOptions, loggerFor, modelChoices, type CommonOptions, type ModelOptions } from './flags.js';
import { readStdinBytes } from './io.js';

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

export function classifyCommand(setExit: (code: number) => void): Command {
  const command = new Command('classify')
    .description('zero-shot classify image files against labels: top-k labels with softmax probabilities per image')
    .argument('<file...>', 'image files, folders of images, or - for standard input')
    .option('-l, --labels <spec>', "'cifar100', 'cifar10', 'imagenet1k', a comma-separated list (\"cat,dog,a red car\") or @FILE with one label per line", DEFAULT_LABELS)
    .option('--templates <spec>', "prompt templates: 'openai' (18), 'imagenet' (80), 'single' or a file with one template per line (default: openai for cifar100/cifar10, imagenet for imagenet1k, single for your own labels)")
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

