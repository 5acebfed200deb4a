/** A fraction as a percentage for people: 0.6453 -> "64.53 %". */
export function percent(fraction: number, digits = 2): string {
  return `${(100 * fraction).toFixed(digits)} %`;
}

/** A metric that may not have been measured (top-5 of fewer than 5 classes): "n/a" then. */
export function percentOrNa(fraction: number | null, digits = 2): string {
  return fraction === null ? 'n/a' : percent(fraction, digits);
}

/** A 95 % interval of a fraction as percentages for people, after its value: [0.6358, 0.6546] -> "(63.58–65.46)". */
export function percentInterval(interval: readonly [number, number], digits = 2): string {
  return `(${(100 * interval[0]).toFixed(digits)}–${(100 * interval[1]).toFixed(digits)})`;
}

/** A change of a fraction in percentage points with its sign: -0.0042 -> "-0.42 pp", 0 -> "+0.00 pp". */
export function signedPoints(change: number, digits = 2): string {
  const magnitude = Math.abs(100 * change).toFixed(digits);
  const negative = change < 0 && Number(magnitude) !== 0;
  return `${negative ? '-' : '+'}${magnitude} pp`;
}

/** A p-value for people: "p = 0.0312", and "p < 0.0001" below what four decimals show. */
export function pValueText(p: number): string {
  return p < 0.0001 ? 'p < 0.0001' : `p = ${p.toFixed(4)}`;
}

/** A duration for people: "0.7 s" up to two minutes, "45 min" above. */
export function durationText(ms: number): string {
  return ms < 120_000 ? `${Math.round(ms / 100) / 10} s` : `${Math.round(ms / 60_000)} min`;
}

/**
 * Significant digits of a fraction or time in a result file: 15 is the most a double always carries
 * back and forth through decimal, so this removes only the float noise of derived values (a mean of
 * 0.8789999999999998 is written 0.879) and never a difference a gate can see (hundredths of a point).
 */
const RESULT_SIGNIFICANT_DIGITS = 15;

/** A number as a result file holds it: integers as they are, anything else to 15 significant digits. */
export function resultNumber(value: number): number {
  return Number.isInteger(value) || !Number.isFinite(value) ? value : Number(value.toPrecision(RESULT_SIGNIFICANT_DIGITS));
}

/** A result document as JSON (indented, one final newline), every number as resultNumber writes it. */
export function formatResultJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, item: unknown) => (typeof item === 'number' ? resultNumber(item) : item), 2)}\n`;
}
