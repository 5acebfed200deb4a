import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readRegularFile } from '../core/bounded-read.js';
import { ClipEvalError, describeError, inputError, usageError, type InputName } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
import { OPENAI_PREPROCESS, preprocessConfigFromHf, preprocessConfigFromOpenClip, type PreprocessConfig } from '../preprocess/config.js';
import { openHubRepo, parseHubModelId, type HubRepoId } from '../net/hub.js';

export type Variant = 'fp32' | 'fp16' | 'int8';
export type BundleLayout = 'huggingface' | 'immich' | 'files';

export const VARIANTS: readonly Variant[] = ['fp32', 'fp16', 'int8'];
export const DEFAULT_MODEL = 'Xenova/clip-vit-base-patch32';
export const DEFAULT_CONTEXT_LENGTH = 77;
/** Far above any CLIP-family text tower (77 for CLIP, 64 for SigLIP, 248 for Long-CLIP, 8192 for jina-clip-v2). */
export const MAX_CONTEXT_LENGTH = 8192;

export interface ModelBundle {
  /** What the user named: the hub id (with @revision when given), the folder, or the vision/text model file. */
  id: string;
  layout: BundleLayout;
  variant: Variant;
  /** '' when the run does not need that encoder (needVision / needText false). */
  visionModelPath: string;
  textModelPath: string;
  tokenizerPath: string;
  tokenizerConfigPath?: string;
  preprocess: PreprocessConfig;
  /** The layout says the models output unit-length embeddings (immich); the encoders normalise anyway. */
  embeddingsNormalised: boolean;
  /** From the bundle's config.json when it says, else 77. */
  contextLength: number;
  /** config.json's `model_type` ("clip", "siglip", ...), which tells the model family. */
  modelType?: string;
  /**
   * An open_clip model config's text settings (immich's config.json): `tokenizer_kwargs.clean`
   * ("canonicalize" for SigLIP) and `hf_tokenizer_name` ("timm/ViT-B-16-SigLIP2"), which tell the family.
   */
  openClipText?: { clean?: string; hfTokenizerName?: string };
}

export interface ResolveBundleOptions {
  model?: string;
  variant?: Variant;
  visionModel?: string;
  textModel?: string;
  tokenizer?: string;
  cacheRoot: string;
  offline?: boolean;
  quiet?: boolean;
  logger?: Logger;
  /**
   * Which encoders the run uses (default both): only their files are fetched. With neither, only the
   * tokenizer is resolved (`clip-eval tokenize --model`).
   */
  needVision?: boolean;
  needText?: boolean;
}

export function parseVariant(value: string): Variant {
  const variant = VARIANTS.find((candidate) => candidate === value);
  if (!variant) throw usageError(`unknown variant "${value}"; use fp32, fp16 or int8`, { input: { name: 'variant' } });
  return variant;
}

/** The files a layout keeps where, relative to the bundle's root. */
interface LayoutSpec {
  layout: 'huggingface' | 'immich';
  title: string;
  /** Undefined for a variant the layout never has. */
  visionModel(variant: Variant): string | undefined;
  textModel(variant: Variant): string | undefined;
  tokenizer: string;
  tokenizerConfig: string;
  preprocess: string;
  embeddingsNormalised: boolean;
  readPreprocess(json: unknown, file: string): PreprocessConfig;
  contextLength(config: unknown): unknown;
}

/** Xenova / transformers.js file names of the variants. */
const HF_VARIANT_SUFFIX: Record<Variant, string> = { fp32: '', fp16: '_fp16', int8: '_quantized' };

const HUGGING_FACE: LayoutSpec = {
  layout: 'huggingface',
  title: 'Hugging Face',
  visionModel: (variant) => `onnx/vision_model${HF_VARIANT_SUFFIX[variant]}.onnx`,
  textModel: (variant) => `onnx/text_model${HF_VARIANT_SUFFIX[variant]}.onnx`,
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  preprocess: 'preprocessor_config.json',
  embeddingsNormalised: false,
  readPreprocess: preprocessConfigFromHf,
  contextLength: (config) => field(field(config, 'text_config'), 'max_position_embeddings'),
};

const IMMICH: LayoutSpec = {
  layout: 'immich',
  title: 'immich',
  visionModel: (variant) => (variant === 'fp32' ? 'visual/model.onnx' : undefined),
  textModel: (variant) => (variant === 'fp32' ? 'textual/model.onnx' : undefined),
  tokenizer: 'textual/tokenizer.json',
  tokenizerConfig: 'textual/tokenizer_config.json',
  preprocess: 'visual/preprocess_cfg.json',
  embeddingsNormalised: true,
  readPreprocess: preprocessConfigFromOpenClip,
  contextLength: (config) => field(field(config, 'text_cfg'), 'context_length'),
};

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

/** Where a bundle's files come from: a local folder or a hub repo fetched file by file. */
interface FileSource {
  readonly name: string;
  /** Whether the file is on disk already (a folder's file, a cached hub file). */
  hasLocally(path: string): Promise<boolean>;
  has(path: string): Promise<boolean>;
  require(path: string): Promise<string>;
  optional(path: string): Promise<string | undefined>;
  /** The error for a model file that could not be found, given what was searched; offline, that it is not cached. */
  missingError(path: string, error: ClipEvalError): Error;
}

interface Needs {
  vision: boolean;
  text: boolean;
  tokenizer: boolean;
}

/**
 * Turns a model (a folder, or a hub id `org/name[@revision]`) or its explicit vision model, text model and
 * tokenizer files into the files of one model, fetching from the hub only what the run needs.
 */
export async function resolveModelBundle(options: ResolveBundleOptions): Promise<ModelBundle> {
  const vision = options.needVision ?? true;
  const text = options.needText ?? true;
  const needs: Needs = { vision, text, tokenizer: text || !vision };
  const explicit = options.visionModel !== undefined || options.textModel !== undefined || options.tokenizer !== undefined;
  if (explicit) {
    if (options.model !== undefined) {
      throw usageError('a model and its files are both given', { input: { name: 'model' }, hint: { kind: 'modelOrFiles' } });
    }
    return explicitFilesBundle(options, needs);
  }

  const model = options.model ?? DEFAULT_MODEL;
  const variant = options.variant ?? 'fp32';
  const source = await modelSource(model, options);
  const spec = await detectLayout(source, variant, needs);
  return loadBundle(model, spec, source, variant, needs);
}

async function modelSource(model: string, options: ResolveBundleOptions): Promise<FileSource> {
  // resolve('') is the current folder, which no one means by an empty model.
  if (model.trim() === '') throw usageError('is empty; give a model folder or a hub id org/name', { input: { name: 'model' } });
  const folder = resolve(model);
  if (existsSync(folder)) {
    if (!statSync(folder).isDirectory()) {
      throw usageError('is a file; give a model folder or hub id', { input: { name: 'model', value: model }, hint: { kind: 'giveModelFiles', tokenizerOnly: false } });
    }
    return folderSource(folder);
  }
  const hubId = parseHubModelId(model);
  if (!hubId) throw inputError('no such folder, and not a hub id of the form org/name[@revision]', undefined, { input: { name: 'model', value: model } });
  // `fx/modle` beside a folder fx is a misspelt path far more often than a hub repo of an org named fx.
  const org = hubId.repo.split('/')[0]!;
  if (existsSync(org) && statSync(org).isDirectory()) {
    throw inputError(
      `no such folder (${org} is a folder here, so this is read as a path; hub ids org/name are looked up only when no folder org exists)`,
      undefined,
      { input: { name: 'model', value: model } },
    );
  }
  return hubSource(hubId, options);
}

function folderSource(folder: string): FileSource {
  const local = (path: string) => join(folder, ...path.split('/'));
  const has = async (path: string) => existsSync(local(path));
  return {
    name: folder,
    hasLocally: has,
    has,
    async require(path) {
      if (!existsSync(local(path))) throw inputError(`${folder}: ${path} is missing`);
      return local(path);
    },
    optional: async (path) => (existsSync(local(path)) ? local(path) : undefined),
    missingError: (_path, error) => error,
  };
}

function hubSource(id: HubRepoId, options: ResolveBundleOptions): FileSource {
  const hub = openHubRepo(id, { cacheRoot: options.cacheRoot, offline: options.offline, quiet: options.quiet, logger: options.logger ?? silentLogger });
  return {
    name: `${id.repo}@${id.revision}`,
    hasLocally: async (path) => hub.cached(path) !== undefined,
    has: (path) => hub.has(path),
    require: (path) => hub.fetch(path),
    optional: (path) => hub.fetchOptional(path),
    missingError: (path, error) => (options.offline ? hub.notCachedError(path) : error),
  };
}

/**
 * Which layout a source has, from the one model file the run needs first, for the chosen variant: the
 * Hugging Face file, else immich's. Files already at hand (a folder, the cache) are checked before the hub
 * is asked, which costs one HEAD request per try and no listing. When neither is there but another
 * Hugging Face variant is, the variant is what is missing.
 */
async function detectLayout(source: FileSource, variant: Variant, needs: Needs): Promise<LayoutSpec> {
  // A tokenizer-only run (tokenize) must not need, or fetch, any model file.
  const primary = (spec: LayoutSpec, v: Variant) => (needs.vision ? spec.visionModel(v) : needs.text ? spec.textModel(v) : spec.tokenizer);
  const hfFile = primary(HUGGING_FACE, variant)!;
  const immichFile = primary(IMMICH, 'fp32')!;
  const candidates: [LayoutSpec, string][] = [
    [HUGGING_FACE, hfFile],
    [IMMICH, immichFile],
  ];
  for (const check of [source.hasLocally, source.has]) {
    for (const [spec, file] of candidates) {
      if (!(await check(file))) continue;
      if (spec.visionModel(variant) === undefined) {
        throw inputError(`${source.name} has the ${spec.title} layout, which has fp32 models only`, undefined, { input: { name: 'variant', value: variant } });
      }
      return spec;
    }
  }
  if (variant !== 'fp32') {
    const available: Variant[] = [];
    for (const other of VARIANTS) if (other !== variant && (await source.has(primary(HUGGING_FACE, other)!))) available.push(other);
    if (available.length > 0) {
      throw source.missingError(
        hfFile,
        inputError(`${source.name} has no ${hfFile} (variants there: ${available.join(', ')})`, undefined, { input: { name: 'variant', value: variant } }),
      );
    }
  }
  throw source.missingError(
    hfFile,
    inputError(`${source.name}: no recognised model layout (looked for ${hfFile} (${HUGGING_FACE.title}) and ${immichFile} (${IMMICH.title}))`, undefined, {
      hint: { kind: 'giveModelFiles', tokenizerOnly: !needs.vision && !needs.text },
    }),
  );
}

async function loadBundle(model: string, spec: LayoutSpec, source: FileSource, variant: Variant, needs: Needs): Promise<ModelBundle> {
  // Small files first, so that a problem with them shows before a large download.
  const configPath = await source.optional('config.json');
  const preprocessPath = needs.vision ? await source.optional(spec.preprocess) : undefined;
  const tokenizerPath = needs.tokenizer ? await source.require(spec.tokenizer) : '';
  const tokenizerConfigPath = needs.tokenizer ? await source.optional(spec.tokenizerConfig) : undefined;
  const visionModelPath = needs.vision ? await source.require(spec.visionModel(variant)!) : '';
  const textModelPath = needs.text ? await source.require(spec.textModel(variant)!) : '';

  const config = configPath ? await readJsonFile(configPath) : undefined;
  const contextLength = configPath ? readContextLength(spec.contextLength(config), configPath) : DEFAULT_CONTEXT_LENGTH;
  const preprocess = preprocessPath ? spec.readPreprocess(await readJsonFile(preprocessPath), preprocessPath) : OPENAI_PREPROCESS;
  const modelType = field(config, 'model_type');
  const openClipText = openClipTextSettings(field(config, 'text_cfg'));
  return {
    id: model,
    layout: spec.layout,
    variant,
    visionModelPath,
    textModelPath,
    tokenizerPath,
    ...(tokenizerConfigPath ? { tokenizerConfigPath } : {}),
    preprocess,
    embeddingsNormalised: spec.embeddingsNormalised,
    contextLength,
    ...(typeof modelType === 'string' ? { modelType } : {}),
    ...(openClipText ? { openClipText } : {}),
  };
}

function openClipTextSettings(textConfig: unknown): ModelBundle['openClipText'] {
  const clean = field(field(textConfig, 'tokenizer_kwargs'), 'clean');
  const hfTokenizerName = field(textConfig, 'hf_tokenizer_name');
  if (typeof clean !== 'string' && typeof hfTokenizerName !== 'string') return undefined;
  return { ...(typeof clean === 'string' ? { clean } : {}), ...(typeof hfTokenizerName === 'string' ? { hfTokenizerName } : {}) };
}

function readContextLength(value: unknown, file: string): number {
  if (value === undefined) return DEFAULT_CONTEXT_LENGTH;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 2 || value > MAX_CONTEXT_LENGTH) {
    throw inputError(`${file}: the text context length should be a whole number from 2 to ${MAX_CONTEXT_LENGTH}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A model folder's JSON configs are a few kilobytes. */
const MAX_CONFIG_FILE_BYTES = 16 * 2 ** 20;

async function readJsonFile(path: string): Promise<unknown> {
  try {
    return JSON.parse((await readRegularFile(path, { maxBytes: MAX_CONFIG_FILE_BYTES, label: path })).toString('utf8'));
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`${path}: cannot read it as JSON (${describeError(error)})`, error);
  }
}

/**
 * Files given one by one, for models in no known layout. Preprocessing is OpenAI's, the context length 77;
 * a tokenizer_config.json beside a tokenizer.json is used for its pad token.
 */
async function explicitFilesBundle(options: ResolveBundleOptions, needs: Needs): Promise<ModelBundle> {
  const visionModelPath = needs.vision ? existingFile('visionModel', options.visionModel, 'the image encoder') : '';
  const textModelPath = needs.text ? existingFile('textModel', options.textModel, 'the text encoder') : '';
  const tokenizerPath = needs.tokenizer ? existingFile('tokenizer', options.tokenizer, 'the text encoder') : '';
  const siblingConfig = join(dirname(tokenizerPath), 'tokenizer_config.json');
  const tokenizerConfigPath = tokenizerPath && basename(tokenizerPath) === 'tokenizer.json' && existsSync(siblingConfig) ? siblingConfig : undefined;
  return {
    id: visionModelPath || textModelPath,
    layout: 'files',
    variant: options.variant ?? 'fp32',
    visionModelPath,
    textModelPath,
    tokenizerPath,
    ...(tokenizerConfigPath ? { tokenizerConfigPath } : {}),
    preprocess: OPENAI_PREPROCESS,
    embeddingsNormalised: false,
    contextLength: DEFAULT_CONTEXT_LENGTH,
  };
}

function existingFile(name: InputName, path: string | undefined, purpose: string): string {
  if (path === undefined) throw usageError(`is needed for ${purpose} when the model is given as files`, { input: { name } });
  const absolute = resolve(path);
  if (!existsSync(absolute) || !statSync(absolute).isFile()) throw inputError('no such file', undefined, { input: { name, value: path } });
  return absolute;
}
