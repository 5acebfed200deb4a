import { roundLogit, type TopK } from '../tasks/zero-shot/scores.js';

/**
 * --predictions: JSON Lines, one object per evaluated image and model, each model's rows in evaluation
 * order, model after model: {"model": index into the report's results, "index": position, "id": sample id,
 * "label": y, "top5": [class indices, best first], "scores": [their logits]}.
 */
export function formatPredictions(ids: readonly string[], labels: ArrayLike<number>, predictions: readonly TopK[]): string {
  const lines: string[] = [];
  predictions.forEach(({ k, classes, logits }, model) => {
    for (let n = 0; n < ids.length; n += 1) {
      const top5 = Array.from(classes.subarray(n * k, n * k + Math.min(k, 5)));
      const scores = Array.from(logits.subarray(n * k, n * k + Math.min(k, 5)), roundLogit);
      lines.push(JSON.stringify({ model, index: n, id: ids[n], label: labels[n], top5, scores }));
    }
  });
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}
