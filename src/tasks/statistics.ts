/** An interval as [low, high] fractions in [0, 1]. */
export type Interval = [number, number];

/** z for a two-sided 95 % interval: the 0.975 quantile of the standard normal. */
const Z95 = 1.959963984540054;

/**
 * The Wilson score interval for `successes` out of `trials`. Unlike the normal approximation it
 * stays inside [0, 1] and keeps its coverage near 0 % and 100 %, where small classes live.
 * With no trials nothing is known: [0, 1].
 */
export function wilsonInterval(successes: number, trials: number, z = Z95): Interval {
  if (!Number.isInteger(successes) || !Number.isInteger(trials) || successes < 0 || trials < 0 || successes > trials) {
    throw new RangeError(`wilsonInterval needs whole numbers 0 <= successes <= trials, got ${successes} of ${trials}`);
  }
  if (trials === 0) return [0, 1];
  const p = successes / trials;
  const z2 = z * z;
  const denominator = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denominator;
  // At 0 or n successes one bound is exactly 0 or 1; clamp away rounding past it.
  return [successes === 0 ? 0 : Math.max(0, centre - half), successes === trials ? 1 : Math.min(1, centre + half)];
}

/**
 * The exact two-sided McNemar test on the discordant pairs of a paired comparison: under the null
 * hypothesis each of the `onlyA + onlyB` discordant images is equally likely to favour either side,
 * so p = 2 · P(X <= min(onlyA, onlyB)) for X ~ Binomial(onlyA + onlyB, 1/2), capped at 1.
 * Summed in log space so that tens of thousands of discordant pairs neither underflow nor overflow.
 */
export function mcnemarExactPValue(onlyA: number, onlyB: number): number {
  if (!Number.isInteger(onlyA) || !Number.isInteger(onlyB) || onlyA < 0 || onlyB < 0) {
    throw new RangeError(`mcnemarExactPValue needs whole counts >= 0, got ${onlyA} and ${onlyB}`);
  }
  const n = onlyA + onlyB;
  if (n === 0) return 1;
  const k = Math.min(onlyA, onlyB);
  if (2 * k === n) return 1;
  // log C(n, i) built up term by term: C(n, i) = C(n, i - 1) · (n - i + 1) / i.
  const logHalfToN = -n * Math.LN2;
  const logTerms: number[] = [];
  let logBinomial = 0;
  for (let i = 0; i <= k; i += 1) {
    if (i > 0) logBinomial += Math.log(n - i + 1) - Math.log(i);
    logTerms.push(logBinomial + logHalfToN);
  }
  const largest = logTerms[logTerms.length - 1]!;
  let sum = 0;
  for (const term of logTerms) sum += Math.exp(term - largest);
  return Math.min(1, 2 * Math.exp(largest + Math.log(sum)));
}

/** One pair of runs compared on the same items (images, captions): which side got which right. */
export interface PairedCounts {
  /** Items right under a only. */
  onlyA: number;
  /** Items right under b only. */
  onlyB: number;
  /** Items compared. */
  items: number;
}

/** Counts the discordant items of two per-item correctness vectors of the same length and order. */
export function countDiscordant(correctA: ArrayLike<boolean | number>, correctB: ArrayLike<boolean | number>): PairedCounts {
  if (correctA.length !== correctB.length) {
    throw new RangeError(`paired comparison needs the same items on both sides, got ${correctA.length} and ${correctB.length}`);
  }
  let onlyA = 0;
  let onlyB = 0;
  for (let i = 0; i < correctA.length; i += 1) {
    const a = Boolean(correctA[i]);
    const b = Boolean(correctB[i]);
    if (a && !b) onlyA += 1;
    else if (b && !a) onlyB += 1;
  }
  return { onlyA, onlyB, items: correctA.length };
}
