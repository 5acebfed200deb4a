import type { Superclasses } from '../../datasets/dataset.js';
import { confusionCount, type ConfusionCounts, type ConfusionPair } from './confusion.js';
import { escapeHtml } from './page.js';

/** Up to this many classes the whole matrix is drawn (CIFAR-100: 100 × 100 cells). */
export const FULL_HEATMAP_CLASSES = 100;
/** Beyond it, the rows of the worst classes … */
export const HEATMAP_WORST_ROWS = 30;
/** … and the columns of their own classes and their largest mistakes. */
export const HEATMAP_CONFUSIONS_PER_ROW = 3;
/** Matrices this narrow print the count in each cell. */
const LARGE_CELL_COLUMNS = 40;

/** A run of rows (and, the matrix being square, columns) of one super-class. */
export interface HeatmapGroup {
  name: string;
  /** Its first row and how many rows it has. */
  start: number;
  count: number;
}

export interface HeatmapView {
  rows: number[];
  columns: number[];
  /** True when every class is a row and a column. */
  full: boolean;
  /** The super-classes' blocks on the diagonal, in order, when the full matrix is grouped by them; else none. */
  groups: HeatmapGroup[];
}

/** Consecutive classes of one super-class in `order`, as blocks. */
function groupsOf(order: readonly number[], superclasses: Superclasses): HeatmapGroup[] {
  const groups: HeatmapGroup[] = [];
  order.forEach((c, i) => {
    const superclass = superclasses.of[c]!;
    const last = groups.at(-1);
    if (last && superclasses.of[order[last.start]!] === superclass) last.count += 1;
    else groups.push({ name: superclasses.names[superclass] ?? '', start: i, count: 1 });
  });
  return groups;
}

/**
 * Which classes the heatmap shows: all of them (grouped by super-class when there are super-classes,
 * so that their blocks lie on the diagonal) up to FULL_HEATMAP_CLASSES; else the rows that matter,
 * the worst classes, against their own and the classes they are most often taken for.
 */
export function heatmapView(counts: ConfusionCounts, byClass: readonly ConfusionPair[][], superclasses?: Superclasses): HeatmapView {
  const all = Array.from({ length: counts.classes }, (_, i) => i);
  if (counts.classes <= FULL_HEATMAP_CLASSES) {
    if (!superclasses) return { rows: all, columns: all, full: true, groups: [] };
    const order = all.sort((a, b) => superclasses.of[a]! - superclasses.of[b]! || a - b);
    return { rows: order, columns: order, full: true, groups: groupsOf(order, superclasses) };
  }
  const accuracy = (c: number) => counts.correct[c]! / counts.images[c]!;
  const rows = all
    .filter((c) => counts.images[c]! > 0)
    .sort((a, b) => accuracy(a) - accuracy(b) || a - b)
    .slice(0, HEATMAP_WORST_ROWS);
  const columns = new Set(rows);
  for (const row of rows) for (const pair of byClass[row]!.slice(0, HEATMAP_CONFUSIONS_PER_ROW)) columns.add(pair.predicted);
  return { rows, columns: [...columns].sort((a, b) => a - b), full: false, groups: [] };
}

/** Five shades each: the diagonal by the class's accuracy, a mistake by its share of the row's images; 0 for none. */
function shadeLevel(count: number, rowImages: number, diagonal: boolean): number {
  if (rowImages === 0 || (count === 0 && !diagonal)) return 0;
  const share = count / rowImages;
  if (diagonal) return Math.min(5, 1 + Math.floor(share * 5));
  return share < 0.02 ? 1 : share < 0.05 ? 2 : share < 0.1 ? 3 : share < 0.25 ? 4 : 5;
}

function shade(count: number, rowImages: number, diagonal: boolean): string {
  const level = shadeLevel(count, rowImages, diagonal);
  return level === 0 ? '' : `${diagonal ? 'd' : 'h'}${level}`;
}

export const HEATMAP_LEGEND = `<ul class="legend" aria-label="Colour key">
<li><span class="d5"></span>right, 80–100 % of the class</li><li><span class="d3"></span>right, 40–60 %</li><li><span class="d1"></span>right, under 20 %</li>
<li><span class="h1"></span>taken for this class: under 2 % of the row</li><li><span class="h3"></span>5–10 %</li><li><span class="h5"></span>25 % or more</li>
</ul>`;

/** The picture's geometry, in SVG units: a cell is CELL square; labels are 8 high (the page's style). */
const CELL = 10;
/** Labels longer than this are cut (the tooltip has the whole name). */
const LABEL_CHARS = 28;
/** The width of a label character, about, 8 units high in a sans-serif face. */
const CHAR_WIDTH = 5.2;
/** The largest scale the picture is drawn at: few classes get big cells, not a page-wide square. */
const MAX_SCALE = 2.4;

/** Super-class names are fewer and have room to the right: longer ones are kept whole. */
const GROUP_LABEL_CHARS = 36;

function label(name: string, most = LABEL_CHARS): string {
  const chars = Array.from(name);
  return chars.length > most ? `${chars.slice(0, most - 1).join('')}…` : name;
}

function labelWidth(names: readonly string[], most = LABEL_CHARS): number {
  return Math.min(most, Math.max(1, ...names.map((name) => Array.from(name).length))) * CHAR_WIDTH + 6;
}

/**
 * The matrix as one SVG picture that scales to the page's width (100 columns and their names fit a
 * laptop window), only its non-empty cells drawn; each super-class block on the diagonal outlined and
 * named on the right. Each drawn cell's tooltip says what it counts; the table beside it has them all.
 */
function heatmapPicture(counts: ConfusionCounts, view: HeatmapView, classNames: readonly string[], caption: string): string {
  const large = view.columns.length <= LARGE_CELL_COLUMNS;
  const left = labelWidth(view.rows.map((c) => classNames[c]!));
  const top = labelWidth(view.columns.map((c) => classNames[c]!));
  const width = view.columns.length * CELL;
  const height = view.rows.length * CELL;
  const right = view.groups.length > 0 ? labelWidth(view.groups.map((g) => g.name), GROUP_LABEL_CHARS) + 6 : 4;
  const names = classNames.map((name) => escapeHtml(name));
  const cells: string[] = [];
  view.rows.forEach((row, r) => {
    const rowImages = counts.images[row]!;
    view.columns.forEach((column, c) => {
      const count = confusionCount(counts, row, column);
      const diagonal = row === column;
      const level = shadeLevel(count, rowImages, diagonal);
      if (level === 0) return;
      const [x, y] = [c * CELL, r * CELL];
      const text = large && count > 0 ? `<text x="${x + CELL / 2}" y="${y + CELL / 2 + 2}" class="${level >= 4 ? 'n strong' : 'n'}">${count}</text>` : '';
      cells.push(`<g><title>${names[row]} → ${names[column]}: ${count} of ${rowImages}</title><rect class="cell ${shade(count, rowImages, diagonal)}" x="${x + 0.5}" y="${y + 0.5}" width="${CELL - 1}" height="${CELL - 1}"/>${text}</g>`);
    });
  });
  const rowLabels = view.rows.map((row, r) => `<text x="-4" y="${r * CELL + CELL / 2 + 3}" text-anchor="end"><title>${names[row]}</title>${escapeHtml(label(classNames[row]!))}</text>`);
  const columnLabels = view.columns.map(
    (column, c) => `<text transform="translate(${c * CELL + CELL / 2 + 3} -4) rotate(-90)"><title>${names[column]}</title>${escapeHtml(label(classNames[column]!))}</text>`,
  );
  // Faint lines between the super-classes under the cells; each block's outline and name over them.
  const separators = view.groups.slice(1).map((g) => `M0 ${g.start * CELL}H${width}M${g.start * CELL} 0V${height}`);
  const groups = view.groups.map((g) => {
    const [at, size] = [g.start * CELL, g.count * CELL];
    return `<g class="group"><rect x="${at}" y="${at}" width="${size}" height="${size}"/><text x="${width + 6}" y="${at + size / 2 + 3}"><title>${escapeHtml(g.name)}</title>${escapeHtml(label(g.name, GROUP_LABEL_CHARS))}</text></g>`;
  });
  const viewWidth = left + width + right;
  const viewHeight = top + height + 4;
  return `<svg class="heatmap" role="img" aria-label="${escapeHtml(caption)}" viewBox="${-left} ${-top} ${viewWidth} ${viewHeight}" width="100%" style="max-width:${Math.round(viewWidth * MAX_SCALE)}px" data-rows="${view.rows.length}" data-columns="${view.columns.length}">
<rect class="bg" x="0" y="0" width="${width}" height="${height}"/>${separators.length > 0 ? `<path class="sep" d="${separators.join('')}"/>` : ''}
${cells.join('')}
${groups.join('')}
${rowLabels.join('')}${columnLabels.join('')}
</svg>`;
}

/** The matrix as a table: row headers are true classes, column headers predicted ones, each cell a count. */
function heatmapTable(counts: ConfusionCounts, view: HeatmapView, classNames: readonly string[], caption: string): string {
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
          const level = shade(count, rowImages, diagonal);
          const title = count > 0 || (diagonal && rowImages > 0) ? ` title="${names[row]} → ${names[column]}: ${count} of ${rowImages}"` : '';
          return `<td${level ? ` class="${level}"` : ''}${title}>${count > 0 ? count : ''}</td>`;
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

/** The heatmap as a picture that fits the page, and behind it, folded, the table it is drawn from. */
export function renderHeatmap(counts: ConfusionCounts, view: HeatmapView, classNames: readonly string[], caption: string): string {
  return `<figure class="heatfig">${heatmapPicture(counts, view, classNames, caption)}<figcaption>${escapeHtml(caption)}.</figcaption></figure>
<details class="heattable"><summary>The matrix as a table (${view.rows.length} × ${view.columns.length})</summary>
${heatmapTable(counts, view, classNames, caption)}
</details>`;
}
