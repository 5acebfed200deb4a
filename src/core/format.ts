/** A fraction as a percentage for people: 0.6453 -> "64.53 %". */
export function percent(fraction: number, digits = 2): string {
  return `${(100 * fraction).toFixed(digits)} %`;
}
