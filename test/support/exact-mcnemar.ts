/** Two-sided exact binomial p by exact rational arithmetic: an independent check of the log-space sum. */
export function exactMcnemar(onlyA: number, onlyB: number): number {
  const n = onlyA + onlyB;
  const k = Math.min(onlyA, onlyB);
  let binomial = 1n;
  let tail = 0n;
  for (let i = 0; i <= k; i += 1) {
    if (i > 0) binomial = (binomial * BigInt(n - i + 1)) / BigInt(i);
    tail += binomial;
  }
  const scale = 10n ** 30n;
  const p = Number((2n * tail * scale) / 2n ** BigInt(n)) / 1e30;
  return Math.min(1, p);
}
