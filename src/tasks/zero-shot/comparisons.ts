import { countDiscordant, mcnemarExactPValue } from '../statistics.js';
import type { PairedComparison } from './result.js';
import type { TopK } from './scores.js';

/** Per image, 1 where the best class is the label: what a paired comparison compares. */
export function topOneCorrect(labels: ArrayLike<number>, predictions: TopK): Uint8Array {
  const correct = new Uint8Array(labels.length);
  for (let n = 0; n < labels.length; n += 1) correct[n] = predictions.classes[n * predictions.k] === labels[n] ? 1 : 0;
  return correct;
}

/** Two correctness vectors on the same images: the change from a to b and its exact McNemar p-value. */
export function comparePaired(correctA: ArrayLike<number>, correctB: ArrayLike<number>): Omit<PairedComparison, 'a' | 'b' | 'metric'> {
  const { onlyA, onlyB, items } = countDiscordant(correctA, correctB);
  // On the same images the accuracies differ by exactly the discordant images: no float noise from two divisions.
  return { delta: items > 0 ? (onlyB - onlyA) / items : 0, onlyA, onlyB, pValue: mcnemarExactPValue(onlyA, onlyB) };
}

/** Every pair a < b of the results (one correctness vector each, on the same images), in order. */
export function pairedComparisons(correct: readonly ArrayLike<number>[]): PairedComparison[] {
  const comparisons: PairedComparison[] = [];
  for (let a = 0; a < correct.length; a += 1) {
    for (let b = a + 1; b < correct.length; b += 1) comparisons.push({ a, b, metric: 'top1', ...comparePaired(correct[a]!, correct[b]!) });
  }
  return comparisons;
}
