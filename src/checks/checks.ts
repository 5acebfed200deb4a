import { readRegularFile } from '../core/bounded-read.js';
import { ClipEvalError, fileSystemError, inputError, isFileSystemError, usageError } from '../core/errors.js';
import { percent, pValueText } from '../core/format.js';
import { namesLocalFiles } from '../datasets/registry.js';
import type { EvaluationReport } from '../tasks/zero-shot/result.js';

/** The metrics a check can name, as stored in the JSON report. */
export const CHECKED_METRICS = ['top1', 'top5', 'meanPerClassRecall', 'superclassTop1'] as const;
export type CheckedMetric = (typeof CHECKED_METRICS)[number];

export const METRIC_LABELS: Record<CheckedMetric, string> = {
  top1: 'top-1',
  top5: 'top-5',
  meanPerClassRecall: 'mean per-class recall',
  superclassTop1: 'super-class top-1',
};

/** One verdict: a model's metric against a bar or a baseline. */
export interface CheckOutcome {
  modelKey: string;
  metric: CheckedMetric;
  value: number;
  passed: boolean;
  /** What the value was held to, for people: "≥ 64.50 %" or "baseline 64.52 %, max drop 0.50 pp". */
  requirement: string;
  message: string;
  /** The exact McNemar p-value of the change, when the baseline's per-image predictions were given (top-1). */
  pValue?: number;
}

export interface CheckOptions {
  minTop1?: number;
  minTop5?: number;
  baseline?: Baseline;
  /** Names the baseline in errors ("--baseline FILE"). */
  baselineLabel?: string;
  /** Allowed drop against the baseline, in percentage points. */
  maxDrop: number;
}

/**
 * Parses an accuracy bar: a fraction (0.645) or a percentage with its sign (64.5%). A bare number
 * above 1 is refused, since "64.5" and "0.645" must not be confused in a CI file.
 */
export function parseAccuracy(flag: string): (value: string) => number {
  return (value) => {
    const text = value.trim();
    const match = /^(\d+(?:\.\d+)?|\.\d+)(%?)$/.exec(text);
    const number = match ? Number(match[1]) : NaN;
    const fraction = match?.[2] === '%' ? number / 100 : number;
    if (!match || !(fraction >= 0 && fraction <= 1)) {
      throw usageError(`${flag} ${value}: expected a fraction between 0 and 1 (0.645) or a percentage (64.5%)`);
    }
    return fraction;
  };
}

export function parsePercentagePoints(flag: string): (value: string) => number {
  return (value) => {
    const number = Number(value.trim().replace(/pp$/, ''));
    if (value.trim() === '' || !Number.isFinite(number) || number < 0 || number > 100) {
      throw usageError(`${flag} ${value}: expected percentage points between 0 and 100 (0.5 allows 64.5 % → 64.0 %)`);
    }
    return number;
  };
}

export function modelKey(result: { model: { id: string; variant: string } }): string {
  return `${result.model.id} [${result.model.variant}]`;
}

/** What a baseline must hold to be compared with: the parts of a --json result that checks read. */
export interface Baseline {
  dataset: { name: string; images: number; sha256: string; subset: { limit?: number; perClass?: number } };
  templates: { name: string; templates: readonly string[] };
  results: BaselineResult[];
}

export interface BaselineResult {
  model: { id: string; variant: string };
  /** Null where the metric was not measured (top-5 of fewer than 5 classes). */
  metrics: Partial<Record<CheckedMetric, number | null>>;
}

/** Metrics every run measures: a baseline result must hold at least one of them to compare with. */
const ALWAYS_MEASURED: readonly CheckedMetric[] = ['top1', 'top5', 'meanPerClassRecall'];

/** Field readers for validating a parsed result file: each refuses a bad field with its path. */
function resultFields(label: string, schema: string) {
  const fail = (path: string, expected: string): never => {
    throw inputError(`${label}: ${path} ${expected}; give a result file written by clip-eval (schema ${schema})`);
  };
  const object = (item: unknown, path: string): Record<string, unknown> => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) fail(path, 'is not an object');
    return item as Record<string, unknown>;
  };
  const text = (item: unknown, path: string): string => {
    if (typeof item !== 'string' || item === '') fail(path, 'is not a non-empty string');
    return item as string;
  };
  const count = (item: unknown, path: string, optional: boolean): number | undefined => {
    if (item === undefined && optional) return undefined;
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 1) fail(path, 'is not a positive whole number');
    return item as number;
  };
  const fraction = (item: unknown, path: string): number => {
    if (typeof item !== 'number' || !(item >= 0 && item <= 1)) fail(path, 'is not a fraction between 0 and 1');
    return item as number;
  };
  const root = (value: unknown): Record<string, unknown> => {
    const document = object(value, 'the document');
    if (document.schema !== schema) fail('schema', `is not "${schema}"`);
    return document;
  };
  const sha256 = (item: unknown, path: string): string => {
    const digest = text(item, path);
    if (!/^[0-9a-f]{64}$/.test(digest)) fail(path, 'is not a sha256 of 64 hex digits');
    return digest;
  };
  const model = (item: unknown, path: string): { id: string; variant: string } => {
    const fields = object(item, path);
    return { id: text(fields.id, `${path}.id`), variant: text(fields.variant, `${path}.variant`) };
  };
  const list = (item: unknown, path: string): unknown[] => {
    if (!Array.isArray(item) || item.length === 0) fail(path, 'is not a non-empty list');
    return item as unknown[];
  };
  return { fail, object, text, count, fraction, root, sha256, model, list };
}

/**
 * Checks the whole shape of a parsed baseline, so that a hand-edited or truncated file is refused
 * before any work with the path of the bad field (`results[0].metrics.top1`), never coerced.
 */
export function validateBaseline(value: unknown, label: string): Baseline {
  const { fail, object, text, count, fraction, root: rootOf, sha256: digestOf, model: modelOf, list } = resultFields(label, 'clip-eval/evaluation@1');
  const root = rootOf(value);
  const dataset = object(root.dataset, 'dataset');
  const sha256 = digestOf(dataset.sha256, 'dataset.sha256');
  const subset = object(dataset.subset, 'dataset.subset');
  const templates = object(root.templates, 'templates');
  if (!Array.isArray(templates.templates) || templates.templates.length === 0) fail('templates.templates', 'is not a non-empty list');
  const templateList = (templates.templates as unknown[]).map((template, i) => text(template, `templates.templates[${i}]`));
  const results = list(root.results, 'results').map((item, i): BaselineResult => {
    const result = object(item, `results[${i}]`);
    const model = modelOf(result.model, `results[${i}].model`);
    const metrics = object(result.metrics, `results[${i}].metrics`);
    const checked: Partial<Record<CheckedMetric, number>> = {};
    for (const metric of CHECKED_METRICS) {
      const number = metrics[metric];
      if (number === undefined || number === null) continue;
      checked[metric] = fraction(number, `results[${i}].metrics.${metric}`);
    }
    if (!ALWAYS_MEASURED.some((metric) => checked[metric] !== undefined)) {
      fail(`results[${i}].metrics`, `holds none of ${ALWAYS_MEASURED.join(', ')}, so nothing would be compared`);
    }
    return { model, metrics: checked };
  });
  return {
    dataset: {
      name: text(dataset.name, 'dataset.name'),
      images: count(dataset.images, 'dataset.images', false)!,
      sha256,
      subset: { limit: count(subset.limit, 'dataset.subset.limit', true), perClass: count(subset.perClass, 'dataset.subset.perClass', true) },
    },
    templates: { name: text(templates.name, 'templates.name'), templates: templateList },
    results,
  };
}

/** A result JSON holds a few metrics per class and model: far below this even for ImageNet and many models. */
const MAX_RESULT_FILE_BYTES = 64 * 2 ** 20;

async function readResultFile(path: string, what: string): Promise<unknown> {
  try {
    return JSON.parse((await readRegularFile(path, { maxBytes: MAX_RESULT_FILE_BYTES, label: `${what} ${path}` })).toString('utf8'));
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    if (isFileSystemError(error)) throw fileSystemError(error, what, path);
    throw inputError(`${what} ${path}: not valid JSON; give a result file written by clip-eval`);
  }
}

/** Reads and validates a baseline; `what` names it in errors (the CLI passes its flag). */
export async function readBaseline(path: string, what = 'baseline'): Promise<Baseline> {
  return validateBaseline(await readResultFile(path, what), `${what} ${path}`);
}

/** What a run is, as far as a baseline comparison cares; the images and digest once they are known. */
export interface RunSetup {
  dataset: RunData;
  templates: { name: string; templates: readonly string[] };
  models: readonly { id: string; variant: string }[];
}

export interface RunData {
  name: string;
  /** The images chosen (zero-shot's --limit, --per-class); absent for a task that always takes them all. */
  subset?: { limit?: number; perClass?: number };
  /** Undefined until the data has streamed, for a data set that is counted and digested as it streams. */
  images?: number;
  sha256?: string;
}

/** The data a baseline was measured on, as checkBaselineData compares it. */
export interface BaselineData {
  name: string;
  images: number;
  sha256: string;
  subset?: { limit?: number; perClass?: number };
}

/**
 * A baseline only compares with a run on the same data set, the same copy of it and the same images:
 * refused otherwise. A data set named by a local path is the same whatever the spelling when its
 * digest is (a CI job may run from another folder). What the run does not know yet (`images`, `sha256` of a streamed data set) is
 * not compared; call this again once it is known.
 */
export function checkBaselineData(baseline: { dataset: BaselineData }, run: RunData, label: string): void {
  const b = baseline.dataset;
  const c = run;
  const otherData = `${label}: was measured on ${b.name}, this run is ${c.name}`;
  // Paths are spelled from where each run started; for them the digest says whether the data is the same.
  const sameName = b.name === c.name || (namesLocalFiles(b.name) && namesLocalFiles(c.name));
  if (!sameName) throw inputError(`${otherData}; compare like with like`);
  const subsetOf = (d: { subset?: RunData['subset'] }) => (d.subset ? ` (limit ${d.subset.limit ?? 'none'}, per-class ${d.subset.perClass ?? 'none'})` : '');
  const sameSubset = b.subset?.limit === c.subset?.limit && b.subset?.perClass === c.subset?.perClass;
  if (!sameSubset || (c.images !== undefined && b.images !== c.images)) {
    const now = c.images !== undefined ? `this run on ${c.images} images${subsetOf(c)}` : `this run selects${subsetOf(c)}`;
    throw inputError(`${label}: was measured on ${b.images} images${subsetOf(b)}, ${now}; ${b.subset ? 'use the same subset (limit, per class)' : 'compare like with like'}`);
  }
  if (c.sha256 !== undefined && b.sha256 !== c.sha256) {
    const digests = `sha256 ${b.sha256.slice(0, 12)}…, now ${c.sha256.slice(0, 12)}…`;
    throw inputError(b.name === c.name ? `${label}: was measured on a different copy of ${c.name} (${digests})` : `${otherData}, other data (${digests}); compare like with like`);
  }
}

/**
 * checkBaselineData, and a result for every model of the run, checked before any image is encoded.
 * Returns warnings for what is allowed but usually a mistake (another model, another template set).
 */
export function checkBaselineFits(baseline: Baseline, run: RunSetup, label: string): string[] {
  checkBaselineData(baseline, run.dataset, label);
  const warnings: string[] = [];
  const sameTemplates = baseline.templates.templates.length === run.templates.templates.length && baseline.templates.templates.every((t, i) => t === run.templates.templates[i]);
  if (!sameTemplates) {
    warnings.push(`${label}: was measured with the template set ${baseline.templates.name} (${baseline.templates.templates.length}), this run uses ${run.templates.name} (${run.templates.templates.length}); the comparison mixes two prompt sets`);
  }
  for (const model of run.models) {
    const before = baselineFor(baseline.results, model, run.models.length);
    if (!before) throw inputError(`${label}: has no result for ${modelKey({ model })}; it holds ${baseline.results.map(modelKey).join(', ')}`);
    if (modelKey(before) !== modelKey({ model })) warnings.push(`${label}: holds ${modelKey(before)}, compared with ${modelKey({ model })}, another model`);
  }
  return warnings;
}

/** The index of the baseline result a run's model is compared with, or -1 when there is none. */
export function baselineIndexFor(baseline: Baseline, model: { id: string; variant: string }, runModels: number): number {
  const found = baselineFor(baseline.results, model, runModels);
  return found ? baseline.results.indexOf(found) : -1;
}

function baselineFor<R extends { model: { id: string; variant: string } }>(results: readonly R[], model: { id: string; variant: string }, runModels: number): R | undefined {
  const key = modelKey({ model });
  const same = results.find((r) => modelKey(r) === key);
  if (same) return same;
  // A single-model baseline compares with a single-model run even when the model changed: that is the point.
  return results.length === 1 && runModels === 1 ? results[0] : undefined;
}

/** A metric against its baseline value: passed unless it dropped more than `maxDrop` percentage points. */
function againstBaseline(
  key: string,
  label: string,
  value: number,
  previous: number,
  maxDrop: number,
  note = '',
): { passed: boolean; requirement: string; message: string } {
  const drop = 100 * (previous - value);
  // Compare in rounded hundredths of a point so that float noise in the JSON cannot flip a verdict.
  const passed = Math.round(drop * 100) <= Math.round(maxDrop * 100);
  const change = `${drop > 0 ? '-' : '+'}${Math.abs(drop).toFixed(2)} pp`;
  return {
    passed,
    requirement: `baseline ${percent(previous)}, max drop ${maxDrop.toFixed(2)} pp`,
    message: `${key}: ${label} ${percent(value)} vs baseline ${percent(previous)} (${change}${note}${passed ? '' : `, more than the allowed ${maxDrop.toFixed(2)} pp`})`,
  };
}

/** Applies every threshold and the baseline comparison to every model of the run. */
export function runChecks(report: EvaluationReport, options: CheckOptions): CheckOutcome[] {
  const outcomes: CheckOutcome[] = [];
  for (const [index, result] of report.results.entries()) {
    const key = modelKey(result);
    const bars: ['top1' | 'top5', number | undefined][] = [
      ['top1', options.minTop1],
      ['top5', options.minTop5],
    ];
    for (const [metric, bar] of bars) {
      const value = result.metrics[metric];
      // Top-5 of fewer than 5 classes is not measured: there is nothing to hold to the bar.
      if (bar === undefined || value === null) continue;
      const passed = value >= bar;
      outcomes.push({
        modelKey: key,
        metric,
        value,
        passed,
        requirement: `≥ ${percent(bar)}`,
        message: `${key}: ${METRIC_LABELS[metric]} ${percent(value)} ${passed ? 'meets' : 'is below'} the bar ${percent(bar)}`,
      });
    }
    if (!options.baseline) continue;
    const before = baselineFor(options.baseline.results, result.model, report.results.length);
    if (!before) throw inputError(`${options.baselineLabel ?? 'the baseline'}: has no result for ${key}; it holds ${options.baseline.results.map(modelKey).join(', ')}`);
    for (const metric of CHECKED_METRICS) {
      const value = result.metrics[metric];
      const previous = before.metrics[metric];
      if (value === undefined || value === null || previous === undefined || previous === null) continue;
      const pValue = metric === 'top1' ? report.baselineComparisons?.find((c) => c.result === index)?.pValue : undefined;
      const paired = pValue === undefined ? '' : `, paired ${pValueText(pValue)}`;
      outcomes.push({
        modelKey: key,
        metric,
        value,
        ...againstBaseline(key, METRIC_LABELS[metric], value, previous, options.maxDrop, paired),
        ...(pValue === undefined ? {} : { pValue }),
      });
    }
  }
  return outcomes;
}

/** Parses repeated `top1=VALUE` / `top5=VALUE` bars of a zero-shot run (the value as parseAccuracy takes it). */
export function parseAccuracyBar(flag: string): (value: string, previous?: Partial<Record<'top1' | 'top5', number>>) => Partial<Record<'top1' | 'top5', number>> {
  return (value, previous = {}) => {
    const match = /^(top1|top5)=(.+)$/.exec(value.trim());
    if (!match) throw usageError(`${flag} ${value}: expected top1=VALUE or top5=VALUE, e.g. top1=64%`);
    const metric = match[1] as 'top1' | 'top5';
    if (previous[metric] !== undefined) throw usageError(`${flag} ${value}: a bar on ${metric} is given twice; give one`);
    return { ...previous, [metric]: parseAccuracy(`${flag} ${metric}`)(match[2]!) };
  };
}

/** The retrieval metrics a bar can name, as stored in the JSON result (each keyed by k). */
export const RETRIEVAL_METRICS = ['imageRetrievalRecall', 'textRetrievalRecall'] as const;
export type RetrievalMetric = (typeof RETRIEVAL_METRICS)[number];

/** A bar on one retrieval metric at one k: `imageRetrievalRecall@5=80%`. */
export interface RetrievalBar {
  metric: RetrievalMetric;
  k: number;
  bar: number;
}

/** Parses repeated `METRIC@K=VALUE` bars (the value as parseAccuracy takes it). */
export function parseRetrievalBar(flag: string): (value: string, previous?: RetrievalBar[]) => RetrievalBar[] {
  return (value, previous = []) => {
    const match = /^(\w+)@(\d+)=(.+)$/.exec(value.trim());
    const metric = match?.[1] as RetrievalMetric | undefined;
    if (!match || !RETRIEVAL_METRICS.includes(metric!) || Number(match[2]) < 1) {
      throw usageError(`${flag} ${value}: expected METRIC@K=VALUE with METRIC one of ${RETRIEVAL_METRICS.join(', ')}, e.g. imageRetrievalRecall@5=80%`);
    }
    return [...previous, { metric: metric!, k: Number(match[2]), bar: parseAccuracy(`${flag} ${metric}@${match[2]}`)(match[3]!) }];
  };
}

export interface RetrievalOutcome {
  metric: RetrievalMetric;
  k: number;
  passed: boolean;
  /** "≥ 80.00 %" */
  requirement: string;
  message: string;
}

/** Holds a retrieval result's metrics to each bar. */
export function checkRetrievalBars(key: string, metrics: Readonly<Record<RetrievalMetric, Readonly<Record<string, number>>>>, bars: readonly RetrievalBar[]): RetrievalOutcome[] {
  return bars.map(({ metric, k, bar }) => {
    const value = metrics[metric][String(k)];
    if (value === undefined) throw new RangeError(`retrieval check: ${metric}@${k} was not measured`);
    const passed = value >= bar;
    return { metric, k, passed, requirement: `≥ ${percent(bar)}`, message: `${key}: ${metric}@${k} ${percent(value)} ${passed ? 'meets' : 'is below'} the bar ${percent(bar)}` };
  });
}

/** The schema of a retrieval --json result, and so of a retrieval baseline. */
export const RETRIEVAL_SCHEMA = 'clip-eval/retrieval@1';

/** What a retrieval baseline must hold: the parts of a retrieval --json result that checks read. */
export interface RetrievalBaseline {
  dataset: BaselineData & { captions: number };
  results: RetrievalBaselineResult[];
}

export interface RetrievalBaselineResult {
  model: { id: string; variant: string };
  /** Fractions keyed by k. */
  metrics: Record<RetrievalMetric, Record<string, number>>;
}

/** Checks the whole shape of a parsed retrieval baseline, as validateBaseline does for zero-shot results. */
export function validateRetrievalBaseline(value: unknown, label: string): RetrievalBaseline {
  const { fail, object, text, count, fraction, root: rootOf, sha256, model, list } = resultFields(label, RETRIEVAL_SCHEMA);
  const root = rootOf(value);
  const dataset = object(root.dataset, 'dataset');
  const results = list(root.results, 'results').map((item, i): RetrievalBaselineResult => {
    const result = object(item, `results[${i}]`);
    const metrics = object(result.metrics, `results[${i}].metrics`);
    const byMetric = (metric: RetrievalMetric): Record<string, number> => {
      const path = `results[${i}].metrics.${metric}`;
      const entries = Object.entries(object(metrics[metric], path));
      if (entries.length === 0) fail(path, 'holds no k, so nothing would be compared');
      return Object.fromEntries(entries.map(([k, number]) => {
        if (!/^[1-9]\d*$/.test(k)) fail(`${path}["${k}"]`, 'is not keyed by a positive whole number k');
        return [k, fraction(number, `${path}["${k}"]`)];
      }));
    };
    return { model: model(result.model, `results[${i}].model`), metrics: { imageRetrievalRecall: byMetric('imageRetrievalRecall'), textRetrievalRecall: byMetric('textRetrievalRecall') } };
  });
  return {
    dataset: {
      name: text(dataset.name, 'dataset.name'),
      images: count(dataset.images, 'dataset.images', false)!,
      captions: count(dataset.captions, 'dataset.captions', false)!,
      sha256: sha256(dataset.sha256, 'dataset.sha256'),
    },
    results,
  };
}

/** Reads and validates a retrieval baseline; `what` names it in errors (the CLI passes its flag). */
export async function readRetrievalBaseline(path: string, what = 'baseline'): Promise<RetrievalBaseline> {
  return validateRetrievalBaseline(await readResultFile(path, what), `${what} ${path}`);
}

/**
 * The baseline's result for the run's one model, checked before any image is encoded: refused for
 * another data set or when it has no result to compare with; a warning when that result is another model's.
 */
export function retrievalBaselineFor(baseline: RetrievalBaseline, run: { dataset: RunData; model: { id: string; variant: string } }, label: string): { result: RetrievalBaselineResult; warnings: string[] } {
  checkBaselineData(baseline, run.dataset, label);
  const result = baselineFor(baseline.results, run.model, 1);
  if (!result) throw inputError(`${label}: has no result for ${modelKey(run)}; it holds ${baseline.results.map(modelKey).join(', ')}`);
  const warnings = modelKey(result) !== modelKey(run) ? [`${label}: holds ${modelKey(result)}, compared with ${modelKey(run)}, another model`] : [];
  return { result, warnings };
}

/** Every metric@k of the baseline result against the run's: a drop over `maxDrop` points fails. */
export function checkRetrievalBaseline(key: string, metrics: Readonly<Record<RetrievalMetric, Readonly<Record<string, number>>>>, before: RetrievalBaselineResult, maxDrop: number): RetrievalOutcome[] {
  return RETRIEVAL_METRICS.flatMap((metric) =>
    Object.keys(before.metrics[metric])
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => {
        const value = metrics[metric][k];
        if (value === undefined) throw new RangeError(`retrieval check: ${metric}@${k} was not measured`);
        return { metric, k: Number(k), ...againstBaseline(key, `${metric}@${k}`, value, before.metrics[metric][k]!, maxDrop) };
      }),
  );
}
