import { usageError } from '../../core/errors.js';

export interface SubsetOptions {
  /** The first N images of each class, in data set order. */
  perClass?: number;
  /** The first N images (after --per-class, when both are given). */
  limit?: number;
}

/** Indices of the evaluated images, in data set order; the same inputs always pick the same images. */
export function selectSubset(labels: ArrayLike<number>, options: SubsetOptions): Int32Array {
  const picked: number[] = [];
  const taken = new Map<number, number>();
  for (let i = 0; i < labels.length; i += 1) {
    if (options.perClass !== undefined) {
      const label = labels[i]!;
      const n = taken.get(label) ?? 0;
      if (n >= options.perClass) continue;
      taken.set(label, n + 1);
    }
    picked.push(i);
    if (options.limit !== undefined && picked.length >= options.limit) break;
  }
  if (picked.length === 0) throw usageError('the chosen --limit/--per-class select no image; give a positive number');
  return Int32Array.from(picked);
}
