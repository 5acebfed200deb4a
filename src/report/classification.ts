/**
 * How `classify` prints its results: an aligned block per image for people, or JSON Lines for
 * scripts. The JSON field names (file, top, label, probability, logit, error) are a public interface.
 */
import { showUnprintable } from '../core/unprintable.js';
import { isFailure, type ImageClassification, type LabelScore } from '../tasks/zero-shot/classification.js';

/** Labels longer than this overflow their column rather than widen every row. */
const MAX_LABEL_COLUMN = 40;

/** The label column's width for a label set: the same in every block, so that blocks line up. */
export function labelColumnWidth(labels: readonly string[]): number {
  const longest = labels.reduce((max, label) => Math.max(max, showUnprintable(label).length), 0);
  return Math.min(Math.max(longest, 'label'.length), MAX_LABEL_COLUMN);
}

export function formatProbability(probability: number): string {
  return `${(100 * probability).toFixed(2)}%`;
}

export function formatLogit(logit: number): string {
  return logit.toFixed(2);
}

/**
 * One image's block: its name, then rank, label, probability and logit, one label per row (names and
 * labels with control characters escaped), e.g.
 *
 *     photos/cat.jpg
 *       #  label   probability  logit
 *       1  cat          96.50%  28.31
 */
export function formatClassificationBlock(result: { file: string; top: readonly LabelScore[] }, labelWidth: number, truth?: string): string {
  const rankWidth = Math.max(1, String(result.top.length).length);
  const probabilities = result.top.map((score) => formatProbability(score.probability));
  const logits = result.top.map((score) => formatLogit(score.logit));
  const probabilityWidth = Math.max('probability'.length, ...probabilities.map((text) => text.length));
  const logitWidth = Math.max('logit'.length, ...logits.map((text) => text.length));
  const row = (rank: string, label: string, probability: string, logit: string) =>
    `  ${rank.padStart(rankWidth)}  ${label.padEnd(labelWidth)}  ${probability.padStart(probabilityWidth)}  ${logit.padStart(logitWidth)}`;
  const name = truth === undefined ? showUnprintable(result.file) : `${showUnprintable(result.file)}  (truth: ${showUnprintable(truth)})`;
  const lines = [name, row('#', 'label', 'probability', 'logit')];
  result.top.forEach((score, i) => lines.push(row(String(i + 1), showUnprintable(score.label), probabilities[i]!, logits[i]!)));
  return `${lines.join('\n')}\n`;
}

/**
 * One JSON Lines record: {"file", "top": [{"label", "probability", "logit"}]} or {"file", "error"},
 * with "truth" (the true class name) after "file" for a data set sample.
 */
export function formatClassificationJson(result: ImageClassification, truth?: string): string {
  const named = truth === undefined ? { file: result.file } : { file: result.file, truth };
  const record = isFailure(result)
    ? { ...named, error: result.error }
    : { ...named, top: result.top.map(({ label, probability, logit }) => ({ label, probability, logit })) };
  return `${JSON.stringify(record)}\n`;
}

export interface ClassificationTotals {
  images: number;
  failed: number;
  seconds: number;
}

/** The closing line: how many images, how many failed, and the rate of the image loop. */
export function formatClassificationTotals(totals: ClassificationTotals): string {
  const rate = totals.seconds > 0 ? totals.images / totals.seconds : 0;
  const failed = totals.failed > 0 ? `, ${totals.failed} failed` : '';
  const noun = totals.images === 1 ? 'image' : 'images';
  return `${totals.images} ${noun}${failed} in ${totals.seconds.toFixed(2)} s (${rate.toFixed(1)} images/s)\n`;
}
