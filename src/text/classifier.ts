import { removeStaleTemporaries, writeCacheEntry } from '../core/cache.js';
import type { Logger } from '../core/log.js';
import { createProgress } from '../core/progress.js';
import { l2NormaliseRows, type TextEncoder } from '../model/encoders.js';
import type { PromptTokenizer } from './tokenizer.js';
import { fillTemplate } from './templates.js';
import {
  fileDigest,
  fileDigestFolder,
  fileDigestKnown,
  readTextEmbeddings,
  textEmbeddingCachePath,
  textEmbeddingFolder,
  textEmbeddingKeyDigest,
  writeTextEmbeddings,
  type TextEmbeddingKey,
} from './embedding-cache.js';

/** One L2-normalised text embedding per class: the zero-shot classifier's weights. */
export interface ZeroShotClassifier {
  classNames: readonly string[];
  /** The model family whose text rules made the embeddings; absent when they are no text's (a query image). */
  family?: string;
  dim: number;
  /** classes × dim, row-major. */
  weights: Float32Array;
  /** True when the weights came from the cache and the text encoder was never opened. */
  cached: boolean;
  /** Prompts per second of the text encoder (undefined when cached). */
  promptsPerSecond?: number;
  seconds: number;
}

export interface ZeroShotClassifierOptions {
  classNames: readonly string[];
  templates: readonly string[];
  /** The tokenizer's file (part of the cache key) and its pad token (undefined: OpenAI's 0). */
  tokenizerPath: string;
  padToken: string | undefined;
  /** The model family whose text rules make the token ids (part of the cache key). */
  family: string;
  /** Loaded only on a cache miss: a hit needs neither token ids nor the text encoder. */
  loadTokenizer: () => Promise<PromptTokenizer>;
  /** Opened only on a cache miss. */
  openTextEncoder: (tokenizer: PromptTokenizer) => Promise<TextEncoder>;
  contextLength: number;
  textModelPath: string;
  /** Cache root; undefined disables the cache (--no-cache). */
  cacheRoot?: string;
  batchSize?: number;
  logger: Logger;
  quiet?: boolean;
}

/**
 * CLIP's ensemble: normalise every prompt embedding, average a class's templates, normalise again.
 * `promptEmbeddings` is class-major: class c, template t at row c * templateCount + t.
 */
export function ensembleClassEmbeddings(promptEmbeddings: Float32Array, classCount: number, templateCount: number, dim: number): Float32Array {
  if (promptEmbeddings.length !== classCount * templateCount * dim) {
    throw new Error(`expected ${classCount * templateCount} prompt embeddings of size ${dim}, got ${promptEmbeddings.length} values`);
  }
  const normalised = l2NormaliseRows(Float32Array.from(promptEmbeddings), dim);
  const classes = new Float32Array(classCount * dim);
  for (let c = 0; c < classCount; c += 1) {
    for (let t = 0; t < templateCount; t += 1) {
      const row = (c * templateCount + t) * dim;
      for (let i = 0; i < dim; i += 1) classes[c * dim + i]! += normalised[row + i]!;
    }
  }
  return l2NormaliseRows(classes, dim);
}

/**
 * Encodes prompts in batches of similar length, so that a dynamic-length text model pads each
 * batch only to its longest prompt; returns embeddings in the original order.
 */
async function encodePrompts(encoder: TextEncoder, tokenIds: number[][], batchSize: number, quiet: boolean): Promise<Float32Array> {
  const order = tokenIds.map((_, i) => i).sort((a, b) => tokenIds[a]!.length - tokenIds[b]!.length || a - b);
  const dim = encoder.embeddingDim;
  const out = new Float32Array(tokenIds.length * dim);
  const progress = createProgress({ label: 'text encoder', total: tokenIds.length, unit: 'prompts', quiet });
  try {
    for (let start = 0; start < order.length; start += batchSize) {
      const indices = order.slice(start, start + batchSize);
      const embeddings = await encoder.encode(indices.map((i) => tokenIds[i]!));
      indices.forEach((promptIndex, row) => out.set(embeddings.subarray(row * dim, (row + 1) * dim), promptIndex * dim));
      progress.update(start + indices.length);
    }
  } finally {
    progress.stop();
  }
  return out;
}

/** What a cache miss needs before the text encoder runs: token ids and an open encoder. */
interface PreparedText {
  tokenIds: number[][];
  encoder: TextEncoder;
}

/** Class embeddings from text: the family that made them is always known. */
export type TextClassifier = ZeroShotClassifier & { family: string };

export async function zeroShotClassifier(options: ZeroShotClassifierOptions): Promise<TextClassifier> {
  const start = performance.now();
  const { classNames, templates, logger } = options;
  const prompts = classNames.flatMap((name) => templates.map((template) => fillTemplate(template, name)));
  let preparing: Promise<PreparedText> | undefined;
  const prepare = () =>
    (preparing ??= (async () => {
      const tokenizer = await options.loadTokenizer();
      const tokenIds = prompts.map((prompt) => tokenizer.encodeForModel(prompt, options.contextLength));
      return { tokenIds, encoder: await options.openTextEncoder(tokenizer) };
    })());
  let cachePath: string | undefined;
  let digest = '';
  if (options.cacheRoot) {
    for (const folder of [textEmbeddingFolder(options.cacheRoot), fileDigestFolder(options.cacheRoot)]) await removeStaleTemporaries(options.cacheRoot, folder);
    const cacheRoot = options.cacheRoot;
    // A text model never hashed here before has, all but always, no cached embeddings either: its
    // tokenizer and encoder load while it is hashed (on another thread) instead of after.
    if (!(await fileDigestKnown(options.textModelPath, cacheRoot))) prepare().catch(() => undefined);
    const [textModelSha256, tokenizerSha256] = await Promise.all([options.textModelPath, options.tokenizerPath].map((path) => fileDigest(path, cacheRoot, logger)));
    const key: TextEmbeddingKey = {
      textModelSha256: textModelSha256!,
      tokenizerSha256: tokenizerSha256!,
      contextLength: options.contextLength,
      padToken: options.padToken ?? null,
      family: options.family,
      templates,
      classNames,
      reduction: 'l2-mean-l2',
    };
    digest = textEmbeddingKeyDigest(key);
    cachePath = textEmbeddingCachePath(cacheRoot, digest);
    const hit = await readTextEmbeddings(cachePath, digest, logger);
    if (hit && hit.classes === classNames.length) {
      logger.debug(`text embeddings: cached (${cachePath})`);
      if (preparing) await preparing.then(({ encoder }) => encoder.release(), () => undefined);
      return { classNames, family: options.family, dim: hit.dim, weights: hit.matrix, cached: true, seconds: (performance.now() - start) / 1000 };
    }
  }

  const { tokenIds, encoder } = await prepare();
  try {
    logger.debug(`text encoder: ${encoder.describe()}`);
    const encodeStart = performance.now();
    const promptEmbeddings = await encodePrompts(encoder, tokenIds, options.batchSize ?? 64, options.quiet ?? logger.quiet);
    const promptsPerSecond = prompts.length / ((performance.now() - encodeStart) / 1000);
    const weights = ensembleClassEmbeddings(promptEmbeddings, classNames.length, templates.length, encoder.embeddingDim);
    if (cachePath) {
      const entry = { classes: classNames.length, dim: encoder.embeddingDim, matrix: weights };
      await writeCacheEntry('text-embedding cache entry', cachePath, () => writeTextEmbeddings(cachePath, digest, entry), logger);
    }
    return { classNames, family: options.family, dim: encoder.embeddingDim, weights, cached: false, promptsPerSecond, seconds: (performance.now() - start) / 1000 };
  } finally {
    await encoder.release();
  }
}
