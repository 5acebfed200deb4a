import { inputError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ModelBundle } from '../../model/bundle.js';
import { assertEmbeddingDimsMatch, createImageEncoder, createTextEncoder, type ImageEncoder } from '../../model/encoders.js';
import { boundedThreads, type SessionOptions } from '../../model/session.js';
import { zeroShotClassifier, type ZeroShotClassifier } from '../../text/classifier.js';
import { loadClipTokenizer, readPadTokenFromConfig } from '../../text/tokenizer.js';

export interface ZeroShotModelOptions {
  bundle: ModelBundle;
  classNames: readonly string[];
  templates: readonly string[];
  session: SessionOptions;
  /** Cache root for text embeddings; undefined for --no-cache. */
  textCacheRoot?: string;
  logger: Logger;
  quiet: boolean;
}

/** A model ready for zero-shot use: the class embeddings and an open image encoder that fit them. */
export interface ZeroShotModel {
  classifier: ZeroShotClassifier;
  encoder: ImageEncoder;
}

/**
 * Builds (or reads from the cache) the class embeddings, then opens the image encoder and checks that
 * both encoders and the preprocessing config agree. The caller releases `encoder`.
 */
export async function openZeroShotModel(options: ZeroShotModelOptions): Promise<ZeroShotModel> {
  const { bundle, logger } = options;
  const session = { ...options.session, threads: boundedThreads(options.session.threads, logger) };
  const padToken = bundle.tokenizerConfigPath ? await readPadTokenFromConfig(bundle.tokenizerConfigPath) : undefined;
  const classifier = await zeroShotClassifier({
    classNames: options.classNames,
    templates: options.templates,
    tokenizerPath: bundle.tokenizerPath,
    padToken,
    loadTokenizer: () => loadClipTokenizer(bundle.tokenizerPath, { padToken }),
    openTextEncoder: (tokenizer) => createTextEncoder(bundle, { ...session, padId: tokenizer.padId }),
    contextLength: bundle.contextLength,
    textModelPath: bundle.textModelPath,
    cacheRoot: options.textCacheRoot,
    logger,
    quiet: options.quiet,
  });
  const encoder = await createImageEncoder(bundle, session);
  try {
    logger.debug(`image encoder: ${encoder.describe()}`);
    assertEmbeddingDimsMatch(bundle, encoder.embeddingDim, classifier.dim);
    if (encoder.imageSize !== bundle.preprocess.imageSize) {
      throw inputError(`${bundle.visionModelPath}: the model takes ${encoder.imageSize}×${encoder.imageSize} images but the bundle's preprocessing config crops to ${bundle.preprocess.imageSize}`);
    }
    return { classifier, encoder };
  } catch (error) {
    await encoder.release();
    throw error;
  }
}
