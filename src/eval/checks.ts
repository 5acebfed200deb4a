import { readFile } from 'node:fs/promises';
import { inputError, usageError } from '../errors.js';
import { percent, type EvaluationReport, type ModelResult } from '../report/result.js';

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
}

export interface CheckOptions {
  minTop1?: number;
  minTop5?: number;
  baseline?: EvaluationReport;
  baselineFile?: string;
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

export function modelKey(result: ModelResult): string {
  return `${result.model.id} [${result.model.variant}]`;
}

export async function readBaseline(path: string): Promise<EvaluationReport> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw inputError(`--baseline ${path}: ${code ? `cannot read the file (${code})` : 'not valid JSON'}; give a file written by --json`);
  }
  const report = parsed as Partial<EvaluationReport>;
  if (report.schema !== 'clip-eval/evaluation@1' || !Array.isArray(report.results) || !report.dataset) {
    throw inputError(`--baseline ${path}: not a clip-eval result (schema clip-eval/evaluation@1); give a file written by --json`);
  }
  return report as EvaluationReport;
}

/** A baseline only compares with a run on the same data set and the same images. */
export function assertComparable(baseline: EvaluationReport, current: EvaluationReport, file: string): void {
  const b = baseline.dataset;
  const c = current.dataset;
  if (b.name !== c.name) throw inputError(`--baseline ${file}: was measured on ${b.name}, this run is ${c.name}; compare like with like`);
  if (b.images !== c.images || b.subset.limit !== c.subset.limit || b.subset.perClass !== c.subset.perClass) {
    const describe = (d: typeof b) => `${d.images} images (limit ${d.subset.limit ?? 'none'}, per-class ${d.subset.perClass ?? 'none'})`;
    throw inputError(`--baseline ${file}: was measured on ${describe(b)}, this run on ${describe(c)}; use the same --limit/--per-class`);
  }
  if (b.sha256 !== c.sha256) throw inputError(`--baseline ${file}: was measured on a different copy of ${c.name} (sha256 ${b.sha256.slice(0, 12)}…, now ${c.sha256.slice(0, 12)}…)`);
}

function baselineFor(baseline: EvaluationReport, result: ModelResult, current: EvaluationReport): ModelResult | undefined {
  const key = modelKey(result);
  const same = baseline.results.find((r) => modelKey(r) === key);
  if (same) return same;
  // A single-model baseline compares with a single-model run even when the model changed: that is the point.
  return baseline.results.length === 1 && current.results.length === 1 ? baseline.results[0] : undefined;
}

/** Applies every threshold and the baseline comparison to every model of the run. */
export function runChecks(report: EvaluationReport, options: CheckOptions): CheckOutcome[] {
  const outcomes: CheckOutcome[] = [];
  for (const result of report.results) {
    const key = modelKey(result);
    const bars: ['top1' | 'top5', number | undefined][] = [
      ['top1', options.minTop1],
      ['top5', options.minTop5],
    ];
    for (const [metric, bar] of bars) {
      if (bar === undefined) continue;
      const value = result.metrics[metric];
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
    const before = baselineFor(options.baseline, result, report);
    if (!before) throw inputError(`--baseline ${options.baselineFile}: has no result for ${key}; it holds ${options.baseline.results.map(modelKey).join(', ')}`);
    for (const metric of CHECKED_METRICS) {
      const value = result.metrics[metric];
      const previous = before.metrics[metric];
      if (value === undefined || previous === undefined) continue;
      const drop = 100 * (previous - value);
      // Compare in rounded hundredths of a point so that float noise in the JSON cannot flip a verdict.
      const passed = Math.round(drop * 100) <= Math.round(options.maxDrop * 100);
      const change = `${drop > 0 ? '-' : '+'}${Math.abs(drop).toFixed(2)} pp`;
      outcomes.push({
        modelKey: key,
        metric,
        value,
        passed,
        requirement: `baseline ${percent(previous)}, max drop ${options.maxDrop.toFixed(2)} pp`,
        message: `${key}: ${METRIC_LABELS[metric]} ${percent(value)} vs baseline ${percent(previous)} (${change}${passed ? '' : `, more than the allowed ${options.maxDrop.toFixed(2)} pp`})`,
      });
    }
  }
  return outcomes;
}
