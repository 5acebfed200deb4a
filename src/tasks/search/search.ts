import { isFailure } from '../zero-shot/classification.js';
import type { ImageInput } from '../../datasets/image-files.js';
import { classifyByImage, classifyImages, type ClassificationRun, type ClassifyOptions } from '../zero-shot/classify.js';
import { LOGIT_SCALE } from '../zero-shot/scores.js';

export interface SearchOptions extends Omit<ClassifyOptions, 'labels' | 'templates' | 'top' | 'onResult'> {
  /**
   * What the images are ranked by: a text, encoded as it is (no template), or an image, read and cached
   * as the others are (then no text model is loaded). The query image is ranked too if it is among them.
   */
  query: { text: string } | { image: Exclude<ImageInput, { error: string }> };
  /** How many of the best images to return. */
  k: number;
  /** Told each image that could not be read, with its one-line error. */
  onFailure?: (error: string) => void;
}

export interface SearchHit {
  rank: number;
  file: string;
  /** Cosine similarity of the L2-normalised image and query embeddings. */
  score: number;
}

export interface SearchRun {
  /** The k best images, best first; ties go to the earlier input. */
  hits: SearchHit[];
  /** Images ranked (readable ones). */
  images: number;
  /** Of those, how many were encoded and how many came from the image-embedding cache. */
  encoded: number;
  cached: number;
  failed: number;
}

/**
 * Ranks images by similarity to a query: classification against the query as the only label (a text
 * with itself as the prompt, or an image's embedding), so images go through the same pipeline and
 * cache as classify.
 */
export async function searchImages(options: SearchOptions): Promise<SearchRun> {
  const { query, k, onFailure, ...shared } = options;
  const rest = { ...shared, progressLabel: 'search' };
  const onResult: ClassifyOptions['onResult'] = (result) => {
    if (isFailure(result)) onFailure?.(result.error);
  };
  const run: ClassificationRun =
    'text' in query ? await classifyImages({ ...rest, labels: [query.text], templates: ['{}'], top: 1, familyProbabilities: false, onResult }) : await classifyByImage({ ...rest, query: query.image, onResult });
  const ranked = run.results
    .map((result, index) => ({ result, index }))
    .flatMap(({ result, index }) => (isFailure(result) ? [] : [{ file: result.file, logit: result.top[0]!.logit, index }]))
    .sort((a, b) => b.logit - a.logit || a.index - b.index);
  return {
    hits: ranked.slice(0, k).map((hit, i) => ({ rank: i + 1, file: hit.file, score: Math.round((hit.logit / LOGIT_SCALE) * 1e6) / 1e6 })),
    images: ranked.length,
    encoded: ranked.length - run.imagesCached,
    cached: run.imagesCached,
    failed: run.failed,
  };
}
