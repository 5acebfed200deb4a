import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { classifyImages } from '../tasks/zero-shot/classify.js';
import { EXIT, usageError } from '../core/errors.js';
import { expandInputs, type ImageInput } from '../datasets/image-files.js';
import { openDataset } from '../datasets/registry.js';
import { findSample, parseSampleReference } from '../datasets/sample-input.js';
import { defaultTemplateSpec, DEFAULT_LABELS, resolveLabels, type LabelSet } from '../text/labels.js';
import { parseDevice } from '../model/session.js';
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
import { addCommonOptions, addDataOptions, addImageFileOptions, addInferenceOptions, addModelOptions, dataOptions, loggerFor, modelChoices, type CommonOptions, type DataOptions, type ModelOptions } from './flags.js';
import { readStdinBytes } from './io.js';
import { FLAG_WORDING } from './wording.js';

interface ClassifyOptions extends CommonOptions, ModelOptions, DataOptions {
  labels?: string;
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

/**
 * Arguments that name data set samples (`cifar100:3637`): their images, their true class names, and
 * the data set's class names and templates as the defaults. Undefined when the arguments are files.
 */
async function datasetSamples(args: readonly string[], options: ClassifyOptions) {
  const references = args.map((arg) => (existsSync(arg) ? undefined : parseSampleReference(arg)));
  if (references.every((reference) => reference === undefined)) return undefined;
  if (references.some((reference) => reference === undefined)) throw usageError('give either image files or data set samples (DATASET:ID-OR-INDEX), not both');
  const specs = new Set(references.map((reference) => reference!.spec));
  if (specs.size > 1) throw usageError(`samples of one data set at a time: ${[...specs].join(', ')}`);
  const logger = loggerFor(options);
  const dataset = await openDataset(references[0]!.spec, { ...dataOptions(options), cacheRoot: resolveCacheRoot(options.cacheDir), offline: options.offline, quiet: options.quiet, logger });
  const images: ImageInput[] = [];
  const truths: string[] = [];
  for (const reference of references) {
    const found = await findSample(dataset, reference!.key);
    // Named by the id found, which a position or #N names only indirectly.
    images.push({ file: `${reference!.spec}:${found.id}`, ...found.image });
    truths.push(dataset.classNames[found.label]!);
  }
  const labels: LabelSet = { source: dataset.name, labels: dataset.classNames, builtIn: true };
  return { images, truths, labels, dataset };
}

async function runClassify(files: string[], options: ClassifyOptions): Promise<number> {
  const logger = loggerFor(options);
  const models = modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] });
  if (models.length !== 1) throw usageError('classify uses one model: give at most one --model and one --variant');
  const samples = await datasetSamples(files, options);
  const labelSet: LabelSet = options.labels === undefined && samples ? samples.labels : await resolveLabels(options.labels ?? DEFAULT_LABELS);
  const templateSpec = options.templates ?? (options.labels === undefined && samples ? samples.dataset.defaultTemplates : defaultTemplateSpec(labelSet));
  const ownTemplates = templateSpec === 'dataset' ? samples?.dataset.templates : undefined;
  const templates = ownTemplates ? { name: 'dataset', templates: ownTemplates } : await resolveTemplates(templateSpec);
  const images = samples?.images ?? (await expandInputs(files, { recursive: options.recursive, readStdin: readStdinBytes, wording: FLAG_WORDING }));
  const truthOf = (index: number) => samples?.truths[index];
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
    family: options.family,
    textCache: options.cache,
    imageCache: options.cache,
    // A data set sample is decoded as the evaluation decodes it: Pillow's way, without EXIF rotation.
    decode: { autoOrient: samples ? false : options.autoOrient, maxPixels: options.maxPixels },
    offline: options.offline,
    logger,
    quiet: options.quiet ?? false,
    // Results streaming to a terminal are progress enough; a bar would tangle with them.
    imageProgress: !process.stdout.isTTY && images.length > options.batchSize,
    onResult: (result, index) => {
      if (isFailure(result)) process.stderr.write(`clip-eval: ${showUnprintable(result.error)}\n`);
      if (options.json) process.stdout.write(formatClassificationJson(result, truthOf(index)));
      else if (!isFailure(result)) process.stdout.write(`${blocks++ > 0 ? '\n' : ''}${formatClassificationBlock(result, labelWidth, truthOf(index))}`);
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
    .argument('<file...>', 'image files, folders of images, - for standard input, or data set samples DATASET:ID-OR-INDEX (cifar100:3637; DATASET:#N is always index N)')
    .option('-l, --labels <spec>', "'cifar100', 'cifar10', 'imagenet1k', a comma-separated list (\"cat,dog,a red car\") or @FILE with one label per line (default: the data set's class names for samples, else cifar100)")
    .option('--templates <spec>', "prompt templates: 'openai' (18), 'imagenet' (80), 'single' or a file with one template per line (default: openai for cifar100/cifar10, imagenet for imagenet1k, single for your own labels)")
    .option('-k, --top <n>', 'labels to show per image (at most the number of labels)', positiveInteger('--top'), 5)
    .option('--json', 'print JSON Lines, one object per image in input order, instead of the table');
  addImageFileOptions(command, 'classify');
  addModelOptions(command, false);
  addDataOptions(command);
  addInferenceOptions(command);
  addCommonOptions(command);
  command.action(async (files: string[], options: ClassifyOptions) => setExit(await runClassify(files, options)));
  return command;
}

