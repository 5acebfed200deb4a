import assert from 'node:assert/strict';
import test from 'node:test';
import { computeMetrics } from '../src/tasks/zero-shot/metrics.js';
import { createTopK, scoreImages, softmax } from '../src/tasks/zero-shot/scores.js';
import { wilsonInterval } from '../src/tasks/statistics.js';
import { selectSubset } from '../src/tasks/zero-shot/subset.js';

test('scoreImages keeps the k best classes by 100·cosine, best first, ties to the lower index', () => {
  // Three 2-d classes and two images.
  const weights = Float32Array.from([1, 0, 0, 1, Math.SQRT1_2, Math.SQRT1_2]);
  const images = Float32Array.from([1, 0, 0, 1]);
  const top = createTopK(2, 3);
  scoreImages(images, 2, weights, 2, top, 0);
  assert.deepEqual(Array.from(top.classes), [0, 2, 1, 1, 2, 0]);
  assert.ok(Math.abs(top.logits[0]! - 100) < 1e-4);
  assert.ok(Math.abs(top.logits[1]! - 100 * Math.SQRT1_2) < 1e-4);
  assert.equal(top.logits[2], 0);

  const tie = createTopK(1, 2);
  scoreImages(Float32Array.from([0, 0]), 1, weights, 2, tie, 0);
  assert.deepEqual(Array.from(tie.classes), [0, 1]);
});

test('softmax of logits sums to one and preserves order', () => {
  const p = softmax(Float32Array.from([10, 0, -5]));
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.ok(p[0]! > p[1]! && p[1]! > p[2]!);
  assert.ok(Math.abs(p[0]! - 1 / (1 + Math.exp(-10) + Math.exp(-15))) < 1e-12);
});

test('computeMetrics: top-1, top-5, mean per-class recall, super-classes and confusions', () => {
  const classNames = ['a', 'b', 'c', 'd', 'e', 'f'];
  const k = 5;
  const predictions = createTopK(4, k);
  const rows = [
    [0, 1, 2, 3, 4], // label 0: top-1 hit
    [2, 1, 0, 3, 4], // label 1: top-5 hit, predicted c
    [5, 4, 3, 1, 0], // label 2: miss, predicted f
    [5, 4, 3, 1, 0], // label 2: miss, predicted f
  ];
  predictions.classes.set(rows.flat());
  const labels = [0, 1, 2, 2];
  const superclassOf = [0, 0, 1, 1, 2, 1];
  const metrics = computeMetrics({ labels, predictions, classNames, superclassOf });
  assert.equal(metrics.images, 4);
  assert.equal(metrics.top1, 0.25);
  assert.equal(metrics.top5, 0.5);
  // Classes present: a (1/1), b (0/1), c (0/2).
  assert.ok(Math.abs(metrics.meanPerClassRecall - 1 / 3) < 1e-12);
  assert.equal(metrics.perClass[3]!.accuracy, null);
  assert.equal(metrics.perClass[2]!.images, 2);
  // Super-classes: image 0 right, image 1 (b→c: 0 vs 1) wrong, images 2-3 (c→f: 1 vs 1) right.
  assert.equal(metrics.superclassTop1, 0.75);
  assert.deepEqual(metrics.mostConfused[0], { label: 2, labelName: 'c', predicted: 5, predictedName: 'f', count: 2 });
  assert.equal(metrics.mostConfused.length, 2);
  assert.deepEqual(metrics.top1Interval, wilsonInterval(1, 4));
  assert.deepEqual(metrics.top5Interval, wilsonInterval(2, 4));
  assert.deepEqual(metrics.perClass[2]!.interval, wilsonInterval(0, 2));
  assert.deepEqual(metrics.perClass[3]!.interval, [0, 1]);
});

test('selectSubset picks the same images every time: first N per class, then a limit', () => {
  const labels = [0, 1, 0, 2, 1, 0, 2, 2];
  assert.deepEqual(Array.from(selectSubset(labels, {})), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(Array.from(selectSubset(labels, { perClass: 1 })), [0, 1, 3]);
  assert.deepEqual(Array.from(selectSubset(labels, { perClass: 2 })), [0, 1, 2, 3, 4, 6]);
  assert.deepEqual(Array.from(selectSubset(labels, { perClass: 2, limit: 4 })), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(selectSubset(labels, { limit: 3 })), [0, 1, 2]);
});
