import type { TopConfusion } from '../tasks/zero-shot/metrics.js';
import type { EvaluationReport } from '../tasks/zero-shot/result.js';

/** The columns of --csv, one row per model and class. */
export const PER_CLASS_CSV_COLUMNS = [
  'model',
  'model_id',
  'variant',
  'class_index',
  'class_name',
  'images',
  'correct',
  'accuracy',
  'interval_low',
  'interval_high',
  'top_confusion',
  'top_confusion_count',
] as const;

/**
 * One RFC 4180 field: quoted, with quotes doubled, when it holds a comma, a quote or a line break. A
 * text (a class name, a model path) that a spreadsheet would run as a formula, one starting with = + -
 * @, a tab or a carriage return, gets a leading single quote, as OWASP advises against CSV injection;
 * numbers are written as they are, so that -0.5 stays a number.
 */
export function csvField(value: string | number | null): string {
  const text = value === null ? '' : typeof value === 'string' && /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * --csv: the per-class table for spreadsheets, RFC 4180 (CRLF line ends, a header row). Several models
 * share one table with a `model` column (the index into the report's results), so that a spreadsheet can
 * filter or pivot on it. Fractions are written as the JSON holds them; an empty accuracy is a class with
 * no image, an empty confusion a class with no mistake. `confusions` is per result, per class.
 */
export function formatPerClassCsv(report: EvaluationReport, confusions: readonly (readonly (TopConfusion | null)[])[]): string {
  const rows: (string | number | null)[][] = [[...PER_CLASS_CSV_COLUMNS]];
  report.results.forEach((result, model) => {
    for (const entry of result.metrics.perClass) {
      const confusion = confusions[model]?.[entry.index] ?? null;
      rows.push([
        model,
        result.model.id,
        result.model.variant,
        entry.index,
        entry.name,
        entry.images,
        entry.correct,
        entry.accuracy,
        entry.interval[0],
        entry.interval[1],
        confusion?.predictedName ?? null,
        confusion?.count ?? null,
      ]);
    }
  });
  return rows.map((row) => `${row.map(csvField).join(',')}\r\n`).join('');
}
