import { Command, Option } from 'commander';
import { usageError } from '../core/errors.js';
import { FAMILIES, familyNamed } from '../families/registry.js';
import { cifarSource } from '../datasets/cifar/source.js';
import { datasetSourceFor } from '../datasets/registry.js';
import { webdatasetSource } from '../datasets/wds/source.js';
import type { ModelChoice } from '../tasks/zero-shot/evaluate.js';
import { createLogger, type Logger } from '../core/log.js';
import { DEFAULT_MODEL, parseVariant, type Variant } from '../model/bundle.js';
import { MAX_BATCH_SIZE } from '../model/encoders.js';
import { DEFAULT_MAX_PIXELS } from '../preprocess/decode.js';
import { FLAG_WORDING } from './wording.js';
import { md5Hex, nonNegativeInteger, positiveInteger } from './options.js';

export const DEFAULT_BATCH_SIZE = 32;
export const BATCH_SIZE_LIMIT = { value: MAX_BATCH_SIZE, why: 'larger batches only cost memory: each holds 600 KB of pixels per image' };

export interface CommonOptions {
  cacheDir?: string;
  offline?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

export interface ModelOptions {
  model: string[];
  variant: Variant[];
  family?: string;
  visionModel?: string;
  textModel?: string;
  tokenizer?: string;
}

export interface DataOptions {
  dataDir?: string;
  datasetUrl?: string;
  datasetMd5?: string;
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

export function addCacheDirOption(command: Command): Command {
  return command.option('--cache-dir <dir>', 'cache folder (default: $CLIP_EVAL_CACHE, $XDG_CACHE_HOME/clip-eval or ~/.cache/clip-eval)');
}

export function addCommonOptions(command: Command): Command {
  return addCacheDirOption(command)
    .option('--offline', 'never use the network; fail if something is not cached')
    .option('-q, --quiet', 'no progress output')
    .option('-v, --verbose', 'say more about what is loaded and why');
}

/** Model flags; `several` for commands that compare models and variants in one run. */
export function addModelOptions(command: Command, several: boolean): Command {
  return command
    .option('-m, --model <id-or-dir>', `model folder or Hugging Face repo id org/name[@revision] (${several ? 'repeatable; ' : ''}default ${DEFAULT_MODEL})`, collect)
    .option('--variant <list>', several ? 'model variant(s): fp32, fp16, int8; comma-separated to compare several' : 'model variant: fp32, fp16 or int8', variantList)
    .option('--vision-model <file>', 'explicit image encoder .onnx (with --text-model and --tokenizer)')
    .option('--text-model <file>', 'explicit text encoder .onnx')
    .option('--tokenizer <file>', 'explicit tokenizer.json or bpe_simple_vocab_16e6.txt.gz')
    .option('--family <name>', `model family whose text rules and probabilities apply: ${FAMILIES.map((family) => family.name).join(', ')} (default: detected from the model's files)`, familyName);
}

function familyName(value: string): string {
  return familyNamed(value).name;
}

/** How image files are found and read, for the commands that take files and folders. */
export function addImageFileOptions(command: Command, verb: string): Command {
  return command
    .option('-r, --recursive', `also ${verb} images in subfolders of folder arguments`)
    .option('--no-auto-orient', 'ignore the EXIF orientation tag (default: rotate photos upright first)')
    .option('--max-pixels <n>', 'refuse images with more pixels than this (16383² by default), a guard against decompression bombs', positiveInteger('--max-pixels'), DEFAULT_MAX_PIXELS);
}

export function addInferenceOptions(command: Command): Command {
  return command
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda', 'webgpu']).default('cpu'))
    .option('--device-id <n>', 'GPU index for --device cuda', nonNegativeInteger('--device-id'))
    .option('--threads <n>', 'intra-op threads for ONNX Runtime (default: all cores)', positiveInteger('--threads'))
    .option('--batch-size <n>', `images per inference batch, at most ${MAX_BATCH_SIZE} (fixed-batch models use their own)`, positiveInteger('--batch-size', BATCH_SIZE_LIMIT), DEFAULT_BATCH_SIZE)
    .option('--no-cache', 'do not read or write cached text and image embeddings');
}

export function addDataOptions(command: Command): Command {
  return command
    .option('--data-dir <dir>', 'use an already extracted copy of the data set; never download')
    .option('--dataset-url <url>', 'download the data set from this mirror (default: the official URL; env CLIP_EVAL_DATASET_URL)')
    .option('--dataset-md5 <hex>', 'MD5 of the archive at --dataset-url', md5Hex('--dataset-md5'));
}

/**
 * --split chooses among a webdataset's splits. CIFAR has only its test split, and a folder or manifest
 * is one set of images: there --split is refused rather than ignored.
 */
export function checkSplitFlag(spec: string, split: string | undefined): void {
  const source = datasetSourceFor(spec);
  // A spec that names nothing is for openDataset to explain.
  if (split === undefined || source === undefined || source === webdatasetSource) return;
  if (source === cifarSource) {
    if (split !== 'test') throw usageError(`--split ${split}: ${spec} has only the test split`);
    return;
  }
  throw usageError(`--split ${split}: only webdatasets have splits, not ${spec} (${source.title}); drop --split`);
}

/** --data-dir, --dataset-url and --dataset-md5 say where CIFAR comes from; given for another data set they are refused, not ignored. */
export function checkDataFlags(spec: string, options: DataOptions): void {
  const source = datasetSourceFor(spec);
  if (source === undefined || source === cifarSource) return;
  const given = ([['--data-dir', options.dataDir], ['--dataset-url', options.datasetUrl], ['--dataset-md5', options.datasetMd5]] as const).find(([, value]) => value !== undefined);
  if (given) throw usageError(`${given[0]} ${given[1]}: only CIFAR is read from there, not ${spec} (${source.title}); drop ${given[0]}`);
}

/** --relative-paths, for the commands that write result files others may read; `outputs` says which carry the paths. */
export function addRelativePathsOption(command: Command, outputs: string): Command {
  return command.option('--relative-paths', `write the model files' paths in ${outputs} relative to the working folder (<cache>/… for the cache) instead of absolute, for reports and baselines shared with others`);
}

export function loggerFor(options: CommonOptions): Logger {
  return createLogger({ quiet: options.quiet, verbose: options.verbose, wording: FLAG_WORDING });
}

export function modelChoices(options: ModelOptions): ModelChoice[] {
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

export function dataOptions(options: DataOptions) {
  const url = options.datasetUrl ?? (process.env.CLIP_EVAL_DATASET_URL || undefined);
  if (options.datasetMd5 && !url) throw usageError('--dataset-md5 needs --dataset-url (the official archive has a known checksum)');
  return { dataDir: options.dataDir, url, md5: options.datasetMd5 };
}

