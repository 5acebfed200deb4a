import { confusionCount, type ConfusionCounts, type ConfusionPair } from './confusion.js';
import { escapeHtml } from './page.js';

/** Up to this many classes the whole matrix is drawn (CIFAR-100: 100 × 100 cells). */
export const FULL_HEATMAP_CLASSES = 100;
/** Beyond it, the rows of the worst classes … */
export const HEATMAP_WORST_ROWS = 30;
/** … and the columns of their own classes and their largest mistakes. */
export const HEATMAP_CONFUSIONS_PER_ROW = 3;
/** Tables this narrow get cells large enough to print their counts. */
const LARGE_CELL_COLUMNS = 40;

export interface HeatmapView {
  rows: number[];
  columns: number[];
  /** True when every class is a row and a column. */
  full: boolean;
}

/**
 * Which classes the heatmap shows: all of them (grouped by super-class when there are super-classes,
 * so that their blocks lie on the diagonal) up to FULL_HEATMAP_CLASSES; else the rows that matter,
 * the worst classes, against their own and the classes they are most often taken for.
 */
export function heatmapView(counts: ConfusionCounts, byClass: readonly ConfusionPair[][], superclassOf?: ArrayLike<number>): HeatmapView {
  const all = Array.from({ length: counts.classes }, (_, i) => i);
  if (counts.classes <= FULL_HEATMAP_CLASSES) {
    const order = superclassOf ? all.sort((a, b) => superclassOf[a]! - superclassOf[b]! || a - b) : all;
    return { rows: order, columns: order, full: true };
  }
  const accuracy = (c: number) => counts.correct[c]! / counts.images[c]!;
  const rows = all
    .filter((c) => counts.images[c]! > 0)
    .sort((a, b) => accuracy(a) - accuracy(b) || a - b)
    .slice(0, HEATMAP_WORST_ROWS);
  const columns = new Set(rows);
  for (const row of rows) for (const pair of byClass[row]!.slice(0, HEATMAP_CONFUSIONS_PER_ROW)) columns.add(pair.predicted);
  return { rows, columns: [...columns].sort((a, b) => a - b), full: false };
}

/** Five shades each: the diagonal by the class's accuracy, a mistake by its share of the row's images. */
function shade(count: number, rowImages: number, diagonal: boolean): string {
  if (rowImages === 0 || (count === 0 && !diagonal)) return '';
  const share = count / rowImages;
  if (diagonal) return ` class="d${Math.min(5, 1 + Math.floor(share * 5))}"`;
  const level = share < 0.02 ? 1 : share < 0.05 ? 2 : share < 0.1 ? 3 : share < 0.25 ? 4 : 5;
  return ` class="h${level}"`;
}

export const HEATMAP_LEGEND = `<ul class="legend" aria-label="Colour key">
<li><span class="d5"></span>right, 80–100 % of the class</li><li><span class="d3"></span>right, 40–60 %</li><li><span class="d1"></span>right, under 20 %</li>
<li><span class="h1"></span>taken for this class: under 2 % of the row</li><li><span class="h3"></span>5–10 %</li><li><span class="h5"></span>25 % or more</li>
</ul>`;

/** The matrix as a table: row headers are true classes, column headers predicted ones, each cell a count. */
export function renderHeatmap(counts: ConfusionCounts, view: HeatmapView, classNames: readonly string[], caption: string): string {
  const large = view.columns.length <= LARGE_CELL_COLUMNS;
  const names = classNames.map((name) => escapeHtml(name));
  const head = view.columns.map((c) => `<th scope="col" title="${names[c]}">${names[c]}</th>`).join('');
  const body = view.rows
    .map((row) => {
      const rowImages = counts.images[row]!;
      const cells = view.columns
        .map((column) => {
          const count = confusionCount(counts, row, column);
          const diagonal = row === column;
          const title = count > 0 || (diagonal && rowImages > 0) ? ` title="${names[row]} → ${names[column]}: ${count} of ${rowImages}"` : '';
          return `<td${shade(count, rowImages, diagonal)}${title}>${count > 0 ? count : ''}</td>`;
        })
        .join('');
      return `<tr><th scope="row" title="${names[row]}">${names[row]}</th>${cells}</tr>`;
    })
    .join('\n');
  return `<div class="heatwrap"><table class="heatmap${large ? ' large' : ''}" data-rows="${view.rows.length}" data-columns="${view.columns.length}">
<caption>${escapeHtml(caption)}</caption>
<thead><tr><td></td>${head}</tr></thead>
<tbody>
${body}
</tbody></table></div>`;
}
