import { usageError } from '../../core/errors.js';

export interface SubsetOptions {
  /** The first N images of each class, in data set order. */
  perClass?: number;
  /** The first N images (after --per-class, when both are given). */
  limit?: number;
}

/**
 * The subset as a stream sees it: `take(label)` says, image by image in data set order, whether the
 * image is evaluated; `full()` is true once the limit is reached, so that a stream can end before
 * reading further. selectSubset uses it, so a streamed data set and an array of labels pick the same images.
 */
export interface SubsetSelector {
  take(label: number): boolean;
  full(): boolean;
}

export function createSubsetSelector(options: SubsetOptions): SubsetSelector {
  const taken = new Map<number, number>();
  let picked = 0;
  return {
    take(label) {
      if (options.perClass !== undefined) {
        const n = taken.get(label) ?? 0;
        if (n >= options.perClass) return false;
        taken.set(label, n + 1);
      }
      picked += 1;
      return true;
    },
    full: () => options.limit !== undefined && picked >= options.limit,
  };
}

/** The error for a subset that selects nothing. */
export function emptySubsetError(): Error {
  return usageError('selects no image; give a positive number', { input: { name: 'subset' } });
}

/** Indices of the evaluated images, in data set order; the same inputs always pick the same images. */
export function selectSubset(labels: ArrayLike<number>, options: SubsetOptions): Int32Array {
  const select = createSubsetSelector(options);
  const picked: number[] = [];
  for (let i = 0; i < labels.length && !select.full(); i += 1) {
    if (select.take(labels[i]!)) picked.push(i);
  }
  if (picked.length === 0) throw emptySubsetError();
  return Int32Array.from(picked);
}
