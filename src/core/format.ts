/** A fraction as a percentage for people: 0.6453 -> "64.53 %". */
export function percent(fraction: number, digits = 2): string {
  return `${(100 * fraction).toFixed(digits)} %`;
}

/** A metric that may not have been measured (top-5 of fewer than 5 classes): "n/a" then. */
export function percentOrNa(fraction: number | null, digits = 2): string {
  return fraction === null ? 'n/a' : percent(fraction, digits);
}
