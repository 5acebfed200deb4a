import assert from 'node:assert/strict';
import test from 'node:test';
import { countDiscordant, mcnemarExactPValue, wilsonInterval } from '../src/tasks/statistics.js';

/** Two-sided exact binomial p by exact rational arithmetic: an independent check of the log-space sum. */
function exactMcnemar(onlyA: number, onlyB: number): number {
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

test('wilsonInterval matches published values and stays inside [0, 1]', () => {
  const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 5e-5, `${actual} vs ${expected}`);
  // 5 of 10 and 0 of 10: the textbook values (Wilson 1927; R's prop.test(correct = FALSE)).
  const half = wilsonInterval(5, 10);
  close(half[0], 0.2366);
  close(half[1], 0.7634);
  const none = wilsonInterval(0, 10);
  assert.equal(none[0], 0);
  close(none[1], 0.2775);
  const all = wilsonInterval(10, 10);
  close(all[0], 0.7225);
  assert.equal(all[1], 1);
  // A CIFAR-100-sized run: 6453 of 10000.
  const cifar = wilsonInterval(6453, 10000);
  close(cifar[0], 0.63587);
  close(cifar[1], 0.65461);
  assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
  assert.throws(() => wilsonInterval(3, 2), RangeError);
  assert.throws(() => wilsonInterval(1.5, 2), RangeError);
});

test('mcnemarExactPValue equals the exact binomial tail, capped at 1', () => {
  assert.equal(mcnemarExactPValue(0, 0), 1);
  assert.equal(mcnemarExactPValue(4, 4), 1);
  assert.ok(Math.abs(mcnemarExactPValue(1, 5) - 14 / 64) < 1e-15);
  assert.ok(Math.abs(mcnemarExactPValue(5, 1) - 14 / 64) < 1e-15);
  assert.equal(mcnemarExactPValue(0, 1), 1);
  for (const [a, b] of [[37, 79], [3, 17], [100, 130], [0, 40], [1000, 1100], [4000, 4321]] as const) {
    const expected = exactMcnemar(a, b);
    const actual = mcnemarExactPValue(a, b);
    assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(expected, 1e-300) + 1e-300, `${a}/${b}: ${actual} vs ${expected}`);
  }
  // Very many discordant pairs neither underflow to NaN nor overflow.
  const huge = mcnemarExactPValue(24000, 26000);
  assert.ok(huge > 0 && huge < 1e-15 && Number.isFinite(huge));
  assert.throws(() => mcnemarExactPValue(-1, 2), RangeError);
});

test('countDiscordant counts the items only one side got right', () => {
  assert.deepEqual(countDiscordant([1, 1, 0, 0, 1], [1, 0, 1, 0, 0]), { onlyA: 2, onlyB: 1, items: 5 });
  assert.deepEqual(countDiscordant([true, false], [true, false]), { onlyA: 0, onlyB: 0, items: 2 });
  assert.throws(() => countDiscordant([1], [1, 0]), RangeError);
});
