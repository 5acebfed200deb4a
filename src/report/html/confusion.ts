import type { TopK } from '../../tasks/zero-shot/scores.js';

/**
 * The full confusion counts of one model, from its top-1 predictions: the metrics keep only the most
 * confused pairs, the report needs every cell it shows. Off-diagonal counts are sparse (a Map), so a
 * data set of many classes costs memory by its mistakes, not by classes².
 */
export interface ConfusionCounts {
  classes: number;
  /** Images per true class. */
  images: Int32Array;
  /** Top-1 right per true class. */
  correct: Int32Array;
  /** Mistakes, keyed label · classes + predicted. */
  mistakes: Map<number, number>;
}

export interface ConfusionPair {
  label: number;
  predicted: number;
  count: number;
}

export function countConfusions(labels: ArrayLike<number>, predictions: TopK, classes: number): ConfusionCounts {
  const images = new Int32Array(classes);
  const correct = new Int32Array(classes);
  const mistakes = new Map<number, number>();
  for (let n = 0; n < labels.length; n += 1) {
    const label = labels[n]!;
    const best = predictions.classes[n * predictions.k]!;
    images[label]! += 1;
    if (best === label) correct[label]! += 1;
    else mistakes.set(label * classes + best, (mistakes.get(label * classes + best) ?? 0) + 1);
  }
  return { classes, images, correct, mistakes };
}

/** The cell (label, predicted): the right ones on the diagonal. */
export function confusionCount(counts: ConfusionCounts, label: number, predicted: number): number {
  return label === predicted ? counts.correct[label]! : (counts.mistakes.get(label * counts.classes + predicted) ?? 0);
}

/** The `limit` largest mistakes, largest first; ties in class order (as the metrics' mostConfused). */
export function mostConfusedPairs(counts: ConfusionCounts, limit: number): ConfusionPair[] {
  return [...counts.mistakes.entries()]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, limit)
    .map(([key, count]) => ({ label: Math.floor(key / counts.classes), predicted: key % counts.classes, count }));
}

/** For each pair, the first `perPair` images (evaluation order) of its label predicted as its class. */
export function pairImages(labels: ArrayLike<number>, predictions: TopK, pairs: readonly ConfusionPair[], perPair: number): number[][] {
  const slots = new Map<number, number[]>();
  const classes = Math.max(0, ...pairs.map((pair) => Math.max(pair.label, pair.predicted))) + 1;
  for (const pair of pairs) slots.set(pair.label * classes + pair.predicted, []);
  for (let n = 0; n < labels.length; n += 1) {
    const label = labels[n]!;
    const best = predictions.classes[n * predictions.k]!;
    if (best === label || label >= classes || best >= classes) continue;
    const found = slots.get(label * classes + best);
    if (found && found.length < perPair) found.push(n);
  }
  return pairs.map((pair) => slots.get(pair.label * classes + pair.predicted)!);
}

/** Each class's mistakes, largest first; ties in class order. */
export function mistakesByClass(counts: ConfusionCounts): ConfusionPair[][] {
  const byClass: ConfusionPair[][] = Array.from({ length: counts.classes }, () => []);
  for (const [key, count] of counts.mistakes) {
    const label = Math.floor(key / counts.classes);
    byClass[label]!.push({ label, predicted: key % counts.classes, count });
  }
  for (const list of byClass) list.sort((a, b) => b.count - a.count || a.predicted - b.predicted);
  return byClass;
}
