import sharp from 'sharp';
import type { ClassificationHtmlInput } from '../../src/report/html/classification.js';
import type { Thumbnail } from '../../src/report/thumbnails.js';
import { computeMetrics } from '../../src/tasks/zero-shot/metrics.js';
import type { EvaluationReport, ModelResult } from '../../src/tasks/zero-shot/result.js';
import { createTopK, type TopK } from '../../src/tasks/zero-shot/scores.js';

/**
 * A classification report built without a model: `perClass` images per class, each right unless its
 * position says otherwise, when its top-1 is one of the next three classes. Deterministic, so that a
 * test can count what the page must show. `models` results differ in which images they get wrong.
 */
export function syntheticPredictions(classes: number, perClass: number, model: number, wrongEvery = 4): { labels: Int32Array; predictions: TopK } {
  const count = classes * perClass;
  const k = Math.min(5, classes);
  const labels = new Int32Array(count);
  const predictions = createTopK(count, k);
  for (let n = 0; n < count; n += 1) {
    const label = n % classes;
    labels[n] = label;
    const wrong = (Math.floor(n / classes) + label + model) % wrongEvery === 0;
    const best = wrong ? (label + 1 + (n % 3)) % classes : label;
    const row = [best, ...Array.from({ length: classes }, (_, c) => (label + c) % classes).filter((c) => c !== best)].slice(0, k);
    row.forEach((c, slot) => {
      predictions.classes[n * k + slot] = c;
      predictions.logits[n * k + slot] = 30 - slot;
    });
  }
  return { labels, predictions };
}

function result(metrics: ModelResult['metrics'], variant: string): ModelResult {
  return {
    model: {
      id: 'synthetic/model',
      layout: 'huggingface',
      variant,
      embeddingDim: 8,
      files: [
        { role: 'vision', path: '/models/vision_model.onnx', sha256: 'a'.repeat(64) },
        { role: 'text', path: '/models/text_model.onnx', sha256: 'b'.repeat(64) },
        { role: 'tokenizer', path: '/models/tokenizer.json', sha256: 'c'.repeat(64) },
      ],
      imageEncoder: 'vision_model.onnx: pixel_values float32 [batch_size,3,224,224]',
    },
    device: 'cpu',
    metrics,
    timing: { wallSeconds: 1, imageSeconds: 1, imagesPerSecond: 100, textSeconds: 0.1, textEmbeddings: 'computed' },
  };
}

export interface SyntheticReportOptions {
  perClass?: number;
  /** Variants to evaluate; two or more get paired comparisons. */
  variants?: string[];
  /** Give every image a thumbnail (a small PNG); default none. */
  thumbnails?: boolean;
  superclasses?: ClassificationHtmlInput['superclasses'];
}

export async function syntheticClassificationInput(classNames: readonly string[], options: SyntheticReportOptions = {}): Promise<ClassificationHtmlInput> {
  const perClass = options.perClass ?? 4;
  const variants = options.variants ?? ['fp32'];
  const runs = variants.map((_, m) => syntheticPredictions(classNames.length, perClass, m));
  const labels = runs[0]!.labels;
  const results = runs.map((run, m) =>
    result(computeMetrics({ labels, predictions: run.predictions, classNames, ...(options.superclasses ? { superclassOf: options.superclasses.of } : {}) }), variants[m]!),
  );
  const ids = Array.from(labels, (_, n) => `img-${n}.png`);
  const report: EvaluationReport = {
    schema: 'clip-eval/evaluation@1',
    tool: { name: 'clip-eval', version: '0.0.0-test', node: 'v20.0.0', onnxruntime: '1.30.0' },
    createdAt: '2026-01-02T03:04:05.000Z',
    dataset: { name: 'synthetic', split: 'test', classes: classNames.length, images: labels.length, sha256: 'd'.repeat(64), subset: {} },
    templates: { name: 'single', templates: ['a photo of a {}.'] },
    options: { batchSize: 32, device: 'cpu' },
    results,
  };
  if (results.length > 1) {
    report.comparisons = results.slice(1).map((b, i) => {
      const a = results[0]!;
      return { a: 0, b: i + 1, metric: 'top1' as const, delta: b.metrics.top1 - a.metrics.top1, onlyA: 3, onlyB: 5, pValue: 0.7266 };
    });
  }
  const thumbnails = new Map<string, Thumbnail>();
  if (options.thumbnails) {
    const png = await sharp({ create: { width: 16, height: 12, channels: 3, background: { r: 200, g: 80, b: 40 } } }).png().toBuffer();
    for (const id of ids) thumbnails.set(id, { src: `data:image/png;base64,${png.toString('base64')}`, width: 16, height: 12 });
  }
  return { report, classNames, ...(options.superclasses ? { superclasses: options.superclasses } : {}), ids, labels, predictions: runs.map((run) => run.predictions), thumbnails };
}
