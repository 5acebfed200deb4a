import { inputError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ModelBundle } from '../../model/bundle.js';
import { assertEmbeddingDimsMatch, createImageEncoder, createTextEncoder, type ImageEncoder } from '../../model/encoders.js';
import { ImageEmbeddingCache } from '../../model/image-embedding-cache.js';
import { boundedThreads, type SessionOptions } from '../../model/session.js';
import { fileDigest } from '../../text/embedding-cache.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { zeroShotClassifier, type TextClassifier, type ZeroShotClassifier } from '../../text/classifier.js';
import { bundleFamily } from '../../families/registry.js';

export interface ZeroShotModelOptions {
  bundle: ModelBundle;
  classNames: readonly string[];
  templates: readonly string[];
  session: SessionOptions;
  /** Cache root for text embeddings; undefined for --no-cache. */
  textCacheRoot?: string;
  /** Cache root for image embeddings; undefined for --no-cache. With it the vision session opens only for an image not cached. */
  imageCacheRoot?: string;
  /** How the images are decoded (part of the image-cache key). */
  imageDecode?: Omit<DecodeOptions, 'reserve'>;
  /** The model family by name; undefined: detected from the bundle's files. */
  family?: string;
  logger: Logger;
  quiet: boolean;
}

/** A model ready for zero-shot use: the class embeddings and an open image encoder that fit them. */
export interface ZeroShotModel {
  classifier: ZeroShotClassifier;
  encoder: ImageEncoder;
  /** The model's image-embedding cache, when one is used. */
  imageCache?: ImageEmbeddingCache;
}

/**
 * The text side of a bundle: the embeddings of `classNames` under `templates`, from the text-embedding
 * cache when `textCacheRoot` is given and holds them (then neither tokenizer nor text encoder loads).
 */
export async function bundleClassifier(
  bundle: ModelBundle,
  options: Pick<ZeroShotModelOptions, 'classNames' | 'templates' | 'session' | 'textCacheRoot' | 'family' | 'logger' | 'quiet'>,
): Promise<TextClassifier> {
  const { family, tokenizerConfig } = await bundleFamily(bundle, options.family);
  return zeroShotClassifier({
    classNames: options.classNames,
    templates: options.templates,
    tokenizerPath: bundle.tokenizerPath,
    padToken: tokenizerConfig.padToken,
    family: family.name,
    loadTokenizer: () => family.loadTokenizer(bundle.tokenizerPath, tokenizerConfig),
    openTextEncoder: (tokenizer) => createTextEncoder(bundle, { ...options.session, padId: tokenizer.padId, padding: family.textPadding }),
    contextLength: bundle.contextLength,
    textModelPath: bundle.textModelPath,
    cacheRoot: options.textCacheRoot,
    logger: options.logger,
    quiet: options.quiet,
  });
}

/**
 * Opens the bundle's vision session and checks that it takes the images the preprocessing config makes
 * and gives `embeddingDim`-dimensional embeddings (`mismatch` words the error; undefined: any size).
 */
async function openImageEncoder(
  bundle: ModelBundle,
  session: SessionOptions,
  logger: Logger,
  embeddingDim: number | undefined,
  mismatch: (encoder: ImageEncoder) => void,
): Promise<ImageEncoder> {
  const encoder = await createImageEncoder(bundle, session);
  try {
    logger.debug(`image encoder: ${encoder.describe()}`);
    if (embeddingDim !== undefined && encoder.embeddingDim !== embeddingDim) mismatch(encoder);
    if (encoder.imageSize !== bundle.preprocess.imageSize) {
      throw inputError(`${bundle.visionModelPath}: the model takes ${encoder.imageSize}×${encoder.imageSize} images but the bundle's preprocessing config crops to ${bundle.preprocess.imageSize}`);
    }
    return encoder;
  } catch (error) {
    await encoder.release();
    throw error;
  }
}

/**
 * The image-embedding cache of the bundle's vision model as this session runs it and these decode options
 * read images. `visionDigest` is the vision model's digest when the caller started hashing it already.
 */
async function openImageCache(
  options: Pick<ZeroShotModelOptions, 'bundle' | 'imageDecode' | 'logger'>,
  cacheRoot: string,
  session: SessionOptions,
  visionDigest: Promise<string> = fileDigest(options.bundle.visionModelPath, cacheRoot, options.logger),
): Promise<ImageEmbeddingCache> {
  const { bundle, logger } = options;
  const imageCache = new ImageEmbeddingCache(
    cacheRoot,
    {
      visionModelSha256: await visionDigest,
      variant: bundle.variant,
      executionProvider: session.device,
      preprocess: bundle.preprocess,
      decode: {
        autoOrient: options.imageDecode?.autoOrient ?? true,
        maxPixels: options.imageDecode?.maxPixels ?? null,
        maxFileBytes: options.imageDecode?.maxFileBytes ?? null,
      },
    },
    logger,
  );
  await imageCache.removeStaleTemporaries();
  return imageCache;
}

/**
 * Builds (or reads from the cache) the class embeddings, then opens the image encoder and checks that
 * both encoders and the preprocessing config agree. The caller releases `encoder`.
 */
export async function openZeroShotModel(options: ZeroShotModelOptions): Promise<ZeroShotModel> {
  const { bundle, logger } = options;
  const session = { ...options.session, threads: boundedThreads(options.session.threads, logger) };
  // Started before the text side so that, on a first run, the vision model is hashed on another thread
  // while the tokenizer and text encoder load.
  const visionDigest = options.imageCacheRoot === undefined ? undefined : fileDigest(bundle.visionModelPath, options.imageCacheRoot, logger);
  visionDigest?.catch(() => undefined);
  const classifier = await bundleClassifier(bundle, { ...options, session });
  const open = () => openImageEncoder(bundle, session, logger, classifier.dim, (encoder) => assertEmbeddingDimsMatch(bundle, encoder.embeddingDim, classifier.dim));
  if (options.imageCacheRoot === undefined || visionDigest === undefined) return { classifier, encoder: await open() };
  const imageCache = await openImageCache(options, options.imageCacheRoot, session, visionDigest);
  return { classifier, encoder: lazyImageEncoder(open, classifier.dim, bundle.preprocess.imageSize), imageCache };
}

export interface ImageQueryModelOptions extends Omit<ZeroShotModelOptions, 'classNames' | 'templates' | 'textCacheRoot'> {
  /** What the query is called: the one class name of the classifier. */
  label: string;
  /**
   * The query image's embedding: from `imageCache` when it holds it, else encoded with `openEncoder`'s
   * encoder (and cached). Called once, before the images to rank are read.
   */
  embedQuery: (imageCache: ImageEmbeddingCache | undefined, openEncoder: () => Promise<ImageEncoder>) => Promise<Float32Array>;
}

/**
 * A model whose one class is a query image (search by image): its embedding stands where the class
 * embeddings would, so neither the tokenizer nor the text encoder is loaded. The vision session opens
 * for the query when it is not cached, else only when an image to rank is not cached either.
 */
export async function openImageQueryModel(options: ImageQueryModelOptions): Promise<ZeroShotModel> {
  const { bundle, logger } = options;
  const session = { ...options.session, threads: boundedThreads(options.session.threads, logger) };
  const imageCache = options.imageCacheRoot === undefined ? undefined : await openImageCache(options, options.imageCacheRoot, session);
  const start = performance.now();
  let opened: Promise<ImageEncoder> | undefined;
  const openForQuery = () => (opened ??= openImageEncoder(bundle, session, logger, undefined, () => undefined));
  let query: Float32Array;
  try {
    query = await options.embedQuery(imageCache, openForQuery);
  } catch (error) {
    await (await opened?.catch(() => undefined))?.release();
    throw error;
  }
  const dim = query.length;
  // The query's embedding came from this model's cache, whose key holds the vision model's digest, so the sizes agree unless the entry lies.
  const mismatch = (encoder: ImageEncoder) => {
    throw inputError(`${bundle.visionModelPath} gives ${encoder.embeddingDim}-dimensional image embeddings but the cached query embedding has ${dim}; run again without the cache`);
  };
  const classifier = { classNames: [options.label], dim, weights: query, cached: opened === undefined, seconds: (performance.now() - start) / 1000 };
  const encoder = opened ? await opened : lazyImageEncoder(() => openImageEncoder(bundle, session, logger, dim, mismatch), dim, bundle.preprocess.imageSize);
  return { classifier, encoder, ...(imageCache ? { imageCache } : {}) };
}

/**
 * An image encoder whose session opens on the first encode, so that a run whose images are all cached
 * never loads the vision model. Its size and embedding size are what the open encoder is checked against.
 */
function lazyImageEncoder(open: () => Promise<ImageEncoder>, embeddingDim: number, imageSize: number): ImageEncoder {
  let opening: Promise<ImageEncoder> | undefined;
  let opened: ImageEncoder | undefined;
  return {
    embeddingDim,
    imageSize,
    fixedBatch: undefined,
    describe: () => opened?.describe() ?? 'not opened: every image embedding was cached',
    async encode(pixels, count) {
      opening ??= open().then((encoder) => (opened = encoder));
      return (await opening).encode(pixels, count);
    },
    async release() {
      if (opening) await (await opening.catch(() => undefined))?.release();
    },
  };
}
