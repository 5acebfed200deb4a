import { wilsonInterval, type Interval } from '../statistics.js';
import type { TopK } from './scores.js';

export interface PerClassAccuracy {
  index: number;
  name: string;
  images: number;
  correct: number;
  /** Fraction in [0, 1]; null for a class with no image in the evaluated set. */
  accuracy: number | null;
  /** 95 % Wilson score interval of the accuracy ([0, 1] for a class with no image). */
  interval: Interval;
}

export interface ConfusedPair {
  label: number;
  labelName: string;
  predicted: number;
  predictedName: string;
  count: number;
}

export interface Metrics {
  images: number;
  /** Fractions in [0, 1]. */
  top1: number;
  /** Null when the data set has fewer than 5 classes (as CLIP_benchmark reports it). */
  top5: number | null;
  /** 95 % Wilson score intervals on (correct, images). */
  top1Interval: Interval;
  top5Interval: Interval | null;
  meanPerClassRecall: number;
  /** CIFAR-100 only: how often the top-1 fine prediction lies in the right super-class. */
  superclassTop1?: number;
  perClass: PerClassAccuracy[];
  mostConfused: ConfusedPair[];
}

export interface MetricsInput {
  labels: ArrayLike<number>;
  predictions: TopK;
  classNames: readonly string[];
  /** Fine class → super-class, when the data set has super-classes. */
  superclassOf?: ArrayLike<number>;
  confusedPairs?: number;
}

export function computeMetrics(input: MetricsInput): Metrics {
  const { labels, predictions, classNames } = input;
  const { k, classes } = predictions;
  const count = labels.length;
  const classCount = classNames.length;
  const perClassImages = new Int32Array(classCount);
  const perClassCorrect = new Int32Array(classCount);
  const confusion = new Map<number, number>();
  let top1 = 0;
  let top5 = 0;
  let superclassHits = 0;
  for (let n = 0; n < count; n += 1) {
    const label = labels[n]!;
    const best = classes[n * k]!;
    perClassImages[label]! += 1;
    if (best === label) {
      top1 += 1;
      perClassCorrect[label]! += 1;
    } else {
      const pair = label * classCount + best;
      confusion.set(pair, (confusion.get(pair) ?? 0) + 1);
    }
    for (let slot = 0; slot < Math.min(k, 5); slot += 1) {
      if (classes[n * k + slot] === label) {
        top5 += 1;
        break;
      }
    }
    if (input.superclassOf && input.superclassOf[best] === input.superclassOf[label]) superclassHits += 1;
  }
  const perClass: PerClassAccuracy[] = Array.from(classNames, (name, index) => ({
    index,
    name,
    images: perClassImages[index]!,
    correct: perClassCorrect[index]!,
    accuracy: perClassImages[index]! > 0 ? perClassCorrect[index]! / perClassImages[index]! : null,
    interval: wilsonInterval(perClassCorrect[index]!, perClassImages[index]!),
  }));
  const present = perClass.filter((entry) => entry.accuracy !== null);
  const mostConfused = [...confusion.entries()]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, input.confusedPairs ?? 10)
    .map(([pair, pairCount]) => {
      const label = Math.floor(pair / classCount);
      const predicted = pair % classCount;
      return { label, labelName: classNames[label]!, predicted, predictedName: classNames[predicted]!, count: pairCount };
    });
  const metrics: Metrics = {
    images: count,
    top1: count > 0 ? top1 / count : 0,
    top5: classCount < 5 ? null : count > 0 ? top5 / count : 0,
    top1Interval: wilsonInterval(top1, count),
    top5Interval: classCount < 5 ? null : wilsonInterval(top5, count),
    meanPerClassRecall: present.length > 0 ? present.reduce((sum, entry) => sum + entry.accuracy!, 0) / present.length : 0,
    perClass,
    mostConfused,
  };
  if (input.superclassOf) metrics.superclassTop1 = count > 0 ? superclassHits / count : 0;
  return metrics;
}
