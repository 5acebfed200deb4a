import { readTextFile } from '../core/bounded-read.js';
import { inputError } from '../core/errors.js';
import { percent } from '../core/format.js';
import { comparePaired } from '../tasks/zero-shot/comparisons.js';
import type { BaselineComparison, EvaluationReport } from '../tasks/zero-shot/result.js';
import { baselineIndexFor, modelKey, type Baseline } from './checks.js';

/**
 * The baseline run's per-image predictions (the JSON Lines its run wrote beside its JSON result), read
 * so that the comparison with the baseline is paired: the same images, one by one, right or wrong under
 * each side, tested with the exact McNemar test instead of comparing two accuracies.
 */

/** A predictions file holds about 150 bytes per image and model: this is 50,000 images of 30 models. */
export const MAX_BASELINE_PREDICTIONS_BYTES = 256 * 2 ** 20;

/** One baseline result's rows, in image order. */
export interface BaselineRows {
  ids: string[];
  labels: Int32Array;
  /** 1 where the row's best class is its label. */
  correct: Uint8Array;
  /** The line each row was read from, for errors. */
  lines: Int32Array;
}

export interface BaselinePredictions {
  /** Names the file in errors ("--baseline-predictions FILE"). */
  label: string;
  /** By index into the baseline's results. */
  results: Map<number, BaselineRows>;
}

type Row = Record<string, unknown>;

function wholeNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * Reads and checks the baseline's predictions against the baseline's JSON result (already validated):
 * every row well formed (else the line and what is wrong), every image of each result present once, and
 * each result's rows giving the top-1 the JSON holds, so that the two files are from the same run. Rows
 * without "model" (files from before it was written) belong to the first result.
 */
export async function readBaselinePredictions(path: string, label: string, baseline: Baseline): Promise<BaselinePredictions> {
  const text = await readTextFile(path, label, 'give the per-image predictions written by the baseline run', MAX_BASELINE_PREDICTIONS_BYTES);
  const images = baseline.dataset.images;
  const rows = new Map<number, { ids: string[]; labels: Int32Array; correct: Uint8Array; lines: Int32Array; seen: number }>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((rawLine, i) => {
    const lineNumber = i + 1;
    const fail = (problem: string): never => {
      throw inputError(`${label}: line ${lineNumber}: ${problem}; give the per-image predictions written by the baseline run`);
    };
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      fail('is not a JSON object');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('is not a JSON object');
    const row = parsed as Row;
    const model = row.model === undefined ? 0 : row.model;
    if (!wholeNumber(model) || model >= baseline.results.length) fail(`"model" ${JSON.stringify(row.model)} is not the index of one of the baseline's ${baseline.results.length} results`);
    if (!wholeNumber(row.index)) fail('"index" is not a whole number');
    if ((row.index as number) >= images) fail(`"index" ${row.index as number} is past the ${images} images of the baseline`);
    if (typeof row.id !== 'string') fail('"id" is not a string');
    if (!wholeNumber(row.label)) fail('"label" is not a whole number');
    if (!Array.isArray(row.top5) || row.top5.length === 0 || !row.top5.every(wholeNumber)) fail('"top5" is not a non-empty list of class indices');
    const index = row.index as number;
    let entry = rows.get(model as number);
    if (!entry) {
      entry = { ids: new Array<string>(images), labels: new Int32Array(images), correct: new Uint8Array(images), lines: new Int32Array(images), seen: 0 };
      rows.set(model as number, entry);
    }
    if (entry.lines[index] !== 0) fail(`repeats image ${index} of result ${model as number}, first on line ${entry.lines[index]!}`);
    entry.ids[index] = row.id as string;
    entry.labels[index] = row.label as number;
    entry.correct[index] = (row.top5 as number[])[0] === row.label ? 1 : 0;
    entry.lines[index] = lineNumber;
    entry.seen += 1;
  });
  if (rows.size === 0) throw inputError(`${label}: holds no rows; give the per-image predictions written by the baseline run`);
  const results = new Map<number, BaselineRows>();
  for (const [model, entry] of rows) {
    if (entry.seen < images) {
      throw inputError(`${label}: has no row for image ${entry.lines.indexOf(0)} of result ${model}; the baseline was measured on ${images} images`);
    }
    let correct = 0;
    for (const value of entry.correct) correct += value;
    const top1 = baseline.results[model]!.metrics.top1;
    // The JSON's top-1 is correct / images as a double: the same run's rows give it to the last bit.
    if (top1 !== undefined && top1 !== null && Math.abs(correct / images - top1) > 1e-12) {
      throw inputError(`${label}: the rows of result ${model} (${modelKey(baseline.results[model]!)}) give top-1 ${percent(correct / images)}, the baseline result says ${percent(top1)}; give the predictions of the same run`);
    }
    results.set(model, { ids: entry.ids, labels: entry.labels, correct: entry.correct, lines: entry.lines });
  }
  return { label, results };
}

/**
 * Pairs every result of the run with its baseline result image by image. The rows must be this run's
 * images one to one, in order (the same ids and labels); otherwise an error names the first row that
 * differs.
 */
export function compareWithBaseline(
  report: EvaluationReport,
  run: { ids: readonly string[]; labels: ArrayLike<number>; correct: readonly Uint8Array[] },
  baseline: Baseline,
  predictions: BaselinePredictions,
): BaselineComparison[] {
  const { label } = predictions;
  return report.results.map((result, index): BaselineComparison => {
    const before = baselineIndexFor(baseline, result.model, report.results.length);
    if (before < 0) throw inputError(`${label}: the baseline has no result for ${modelKey(result)}`);
    const rows = predictions.results.get(before);
    if (!rows) throw inputError(`${label}: has no rows of the baseline's result ${before} (${modelKey(baseline.results[before]!)}), which ${modelKey(result)} is compared with`);
    if (rows.ids.length !== run.ids.length) {
      throw inputError(`${label}: holds ${rows.ids.length} images per result, this run evaluated ${run.ids.length}; the rows do not match this run's images one to one`);
    }
    for (let n = 0; n < run.ids.length; n += 1) {
      if (rows.ids[n] !== run.ids[n] || rows.labels[n] !== run.labels[n]) {
        throw inputError(
          `${label}: line ${rows.lines[n]!} (image ${n} of result ${before}) is ${JSON.stringify(rows.ids[n])} with label ${rows.labels[n]!}, this run's image ${n} is ${JSON.stringify(run.ids[n])} with label ${run.labels[n]!}; the rows do not match this run's images one to one`,
        );
      }
    }
    const { delta, onlyA, onlyB, pValue } = comparePaired(rows.correct, run.correct[index]!);
    return { result: index, baseline: before, metric: 'top1', delta, onlyBaseline: onlyA, onlyResult: onlyB, pValue };
  });
}
