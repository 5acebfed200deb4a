import { escapeHtml, intervalText, percentText } from './page.js';

/**
 * Charts drawn as inline SVG or CSS bars. Each is a picture of a table that the page also carries, so
 * the SVG is one labelled image (role="img") and the numbers are read from the table.
 */

/** An accuracy bar with its 95 % interval as a whisker: a cell of the table it illustrates. */
export function accuracyBar(accuracy: number | null, interval: readonly [number, number]): string {
  if (accuracy === null) return '<div class="bar" aria-hidden="true"></div>';
  const pct = (value: number) => (100 * value).toFixed(1);
  return `<div class="bar" aria-hidden="true"><i style="width:${pct(accuracy)}%"></i><b style="left:${pct(interval[0])}%;width:${pct(interval[1] - interval[0])}%"></b></div>`;
}

/** Sorted accuracies (best first) as one bar per class: a single path, small even at 1,000 classes. */
export function sortedAccuracyChart(accuracies: readonly number[], label: string): string {
  const width = 900;
  const height = 120;
  const step = width / Math.max(accuracies.length, 1);
  let path = '';
  accuracies.forEach((value, i) => {
    const x = (i + 0.5) * step;
    path += `M${x.toFixed(1)} ${height}V${(height - value * height).toFixed(1)}`;
  });
  const stroke = Math.max(0.5, Math.min(12, step * 0.8)).toFixed(2);
  return `<svg role="img" aria-label="${escapeHtml(label)}" viewBox="-34 -6 ${width + 40} ${height + 22}" width="100%" style="max-width:${width + 40}px">
<path class="axis" d="M0 0H${width}M0 ${height / 2}H${width}M0 ${height}H${width}"/>
<text x="-4" y="4" text-anchor="end">100%</text><text x="-4" y="${height / 2 + 4}" text-anchor="end">50%</text><text x="-4" y="${height + 4}" text-anchor="end">0%</text>
<path class="bars" stroke-width="${stroke}" d="${path}"/>
<text x="0" y="${height + 15}">best</text><text x="${width}" y="${height + 15}" text-anchor="end">worst</text>
</svg>`;
}

export interface Curve {
  name: string;
  /** Fractions at k = 1, 2, … */
  values: readonly number[];
}

/** Recall@k curves over k = 1 … values.length, with a log-scaled k axis when it is long. */
export function recallCurveChart(curves: readonly Curve[], label: string): string {
  const width = 640;
  const height = 220;
  const count = Math.max(...curves.map((curve) => curve.values.length), 1);
  const logScale = count > 20;
  const xOf = (k: number) => (count === 1 ? 0 : logScale ? (Math.log(k) / Math.log(count)) * width : ((k - 1) / (count - 1)) * width);
  const yOf = (value: number) => height - value * height;
  const lines = curves
    .map((curve, i) => {
      const points = curve.values.map((value, j) => `${xOf(j + 1).toFixed(1)},${yOf(value).toFixed(1)}`).join(' ');
      return `<polyline class="curve-${i === 0 ? 'a' : 'b'}" points="${points}"/>`;
    })
    .join('');
  const ticks = [...new Set([1, 5, 10, 20, 50, 100, 200, 500, 1000, count])].filter((k) => k <= count);
  const xTicks = ticks.map((k) => `<text x="${xOf(k).toFixed(1)}" y="${height + 15}" text-anchor="middle">${k}</text>`).join('');
  const legend = curves
    .map((curve, i) => `<g transform="translate(${10 + i * 170},${height + 32})"><path class="curve-${i === 0 ? 'a' : 'b'}" d="M0 -4H24"/><text x="30" y="0">${escapeHtml(curve.name)}</text></g>`)
    .join('');
  return `<svg role="img" aria-label="${escapeHtml(label)}" viewBox="-40 -8 ${width + 60} ${height + 50}" width="100%" style="max-width:${width + 60}px">
<path class="axis" d="M0 0H${width}M0 ${height / 2}H${width}M0 ${height}H${width}M0 0V${height}"/>
<text x="-4" y="4" text-anchor="end">100%</text><text x="-4" y="${height / 2 + 4}" text-anchor="end">50%</text><text x="-4" y="${height + 4}" text-anchor="end">0%</text>
${xTicks}${lines}${legend}
</svg>`;
}

/** "64.53 % (63.58–65.46)" for a table cell. */
export function accuracyWithInterval(accuracy: number, interval: readonly [number, number]): string {
  return `${percentText(accuracy)} <span class="muted">${intervalText(interval)}</span>`;
}
