import { createHash } from 'node:crypto';
import { showUnprintable } from '../../core/unprintable.js';

/**
 * The shell of a --report page: one self-contained HTML document (inline CSS and script, images as
 * data: URIs) whose Content-Security-Policy forbids every request, so that it opens offline from a CI
 * artifact and nothing in it (a hostile class name, a caption) can load or run anything.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for an element or a quoted attribute: markup characters escaped, controls made visible. */
export function escapeHtml(text: string): string {
  return showUnprintable(text).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** A fraction as a percentage, as the summary prints it ("64.53 %"), with a no-break space. */
export function percentText(fraction: number, digits = 2): string {
  return `${(100 * fraction).toFixed(digits)}\u00a0%`;
}

/** A 95 % interval as "(63.58–65.46)". */
export function intervalText(interval: readonly [number, number]): string {
  return `(${(100 * interval[0]).toFixed(2)}–${(100 * interval[1]).toFixed(2)})`;
}

const STYLE = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--panel:#f6f8fa;--bar:#0969da;--whisker:#1b1f24;--good:#1a7f37;--bad:#cf222e;--focus:#bf8700;
--h1:#fde8e1;--h2:#fbc4b2;--h3:#f59a7f;--h4:#e5614a;--h5:#b42318;--d1:#e6f4ea;--d2:#b7e1c1;--d3:#7cc990;--d4:#3fa45b;--d5:#1a7f37}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--panel:#151b23;--bar:#4493f8;--whisker:#e6edf3;--good:#3fb950;--bad:#f85149;--focus:#d29922;
--h1:#3d1d17;--h2:#6b2a1f;--h3:#9c3a27;--h4:#d0492f;--h5:#ff7b5c;--d1:#12261a;--d2:#1b4228;--d3:#24653a;--d4:#2f8f4d;--d5:#46c06a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,nav{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:1.6em;margin:.3em 0}h2{font-size:1.3em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}h3{font-size:1.08em;margin:1.3em 0 .4em}
a{color:var(--bar)}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
nav ul{list-style:none;padding:0;margin:.4em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
nav li.parts{flex-basis:100%}nav li.parts ul{display:inline-flex;margin:0 0 0 .8em;gap:.2em 1em;font-size:.9em}
.totop{position:fixed;right:14px;bottom:14px;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:3px 10px;font-size:.85em;text-decoration:none}
h2,h3{scroll-margin-top:8px}
details.more>summary{cursor:pointer;color:var(--bar);margin:.5em 0}
.muted{color:var(--muted)}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.n,th.n{text-align:right}
caption{text-align:left;color:var(--muted);padding:4px 0;caption-side:top}
.headline td.big{font-size:1.25em;font-weight:600}.headline td{white-space:nowrap}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dl.meta dt{color:var(--muted)}
table.files td{font-size:.9em}dl.meta dd{margin:0;overflow-wrap:anywhere}
code,.hash{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.88em;overflow-wrap:anywhere}
.scroll{max-height:460px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.scroll thead th{position:sticky;top:0;background:var(--panel);z-index:1}
.bar{position:relative;width:240px;height:14px;background:var(--panel);border-radius:3px}
.bar i{position:absolute;left:0;top:0;bottom:0;background:var(--bar);border-radius:3px}
.bar b{position:absolute;top:6px;height:2px;background:var(--whisker)}
th button{font:inherit;font-weight:600;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th button::after{content:" \\2195";color:var(--muted)}
th[aria-sort=ascending] button::after{content:" \\2191"}th[aria-sort=descending] button::after{content:" \\2193"}
figure{margin:.6em 0}
section{content-visibility:auto;contain-intrinsic-size:auto 1600px}
figcaption{color:var(--muted);font-size:.9em}
svg text{fill:var(--fg);font-size:11px}
svg .axis{stroke:var(--line)}svg .bars{stroke:var(--bar)}
svg .curve-a{stroke:var(--bar);fill:none;stroke-width:2}svg .curve-b{stroke:var(--bad);fill:none;stroke-width:2;stroke-dasharray:5 3}
.heatwrap{overflow:auto;max-width:100%}
svg.heatmap{display:block;height:auto}
svg.heatmap text{font-size:8px}svg.heatmap text.n{font-size:5.5px;text-anchor:middle;pointer-events:none}svg.heatmap text.strong{fill:var(--bg)}
svg.heatmap .bg{fill:var(--panel)}svg.heatmap .sep{stroke:var(--line);stroke-width:.6;fill:none}
svg.heatmap .group rect{fill:none;stroke:var(--fg);stroke-width:.8}
details.heattable>summary{cursor:pointer;color:var(--muted)}
table.heatmap{table-layout:fixed;border-collapse:separate;border-spacing:1px}
table.heatmap th,table.heatmap td{border:0;padding:0}
table.heatmap td{width:8px;height:8px;min-width:8px;overflow:hidden;color:transparent;font-size:6px;line-height:8px;background:var(--panel)}
table.heatmap.large td{width:24px;height:20px;min-width:24px;color:var(--fg);font-size:10px;line-height:20px;text-align:center}
table.heatmap thead th{writing-mode:vertical-rl;transform:rotate(180deg);font-size:9px;font-weight:400;white-space:nowrap;max-height:110px;overflow:hidden;text-overflow:ellipsis;vertical-align:bottom}
table.heatmap tbody th{font-size:9px;font-weight:400;white-space:nowrap;max-width:120px;overflow:hidden;text-overflow:ellipsis;padding-right:4px;text-align:right}
table.heatmap.large thead th,table.heatmap.large tbody th{font-size:11px}
.h1{background:var(--h1)!important;fill:var(--h1)}.h2{background:var(--h2)!important;fill:var(--h2)}.h3{background:var(--h3)!important;fill:var(--h3)}.h4{background:var(--h4)!important;fill:var(--h4)}.h5{background:var(--h5)!important;fill:var(--h5)}
.d1{background:var(--d1)!important;fill:var(--d1)}.d2{background:var(--d2)!important;fill:var(--d2)}.d3{background:var(--d3)!important;fill:var(--d3)}.d4{background:var(--d4)!important;fill:var(--d4)}.d5{background:var(--d5)!important;fill:var(--d5)}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:.85em;color:var(--muted);margin:.4em 0;padding:0;list-style:none}
.legend span{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px;border:1px solid var(--line)}
.pairs{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px}
.pairs>li{border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.pairs h4{margin:0 0 6px;font-size:1em}
.shots{display:flex;flex-wrap:wrap;gap:10px;list-style:none;padding:0;margin:0}
.shots li{width:112px;font-size:.78em;overflow-wrap:anywhere}
.shots img{display:block;width:64px;height:64px;object-fit:contain;image-rendering:pixelated;background:var(--panel);border:1px solid var(--line)}
.shots ol{margin:4px 0 0;padding-left:1.4em}
.shots .right{color:var(--good);font-weight:600}
.noimg{display:flex;align-items:center;justify-content:center;width:64px;height:64px;border:1px dashed var(--line);color:var(--muted)}
.good{color:var(--good)}.bad{color:var(--bad)}
footer{max-width:1180px;margin:2em auto;padding:0 20px;color:var(--muted);font-size:.85em}
`;

/**
 * Sortable tables: a column header's button sorts the rows of its table by that column's data-key
 * value on each row (numbers numerically), and aria-sort tells assistive technology the order.
 */
const SCRIPT = `
document.querySelectorAll('table[data-sortable]').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('th[data-key] button').forEach(function (button) {
    button.addEventListener('click', function () {
      var th = button.parentElement;
      var key = th.getAttribute('data-key');
      var order = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
      table.querySelectorAll('th[data-key]').forEach(function (other) { other.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', order);
      var numeric = th.hasAttribute('data-numeric');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.getAttribute('data-' + key), y = b.getAttribute('data-' + key);
        var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        if (c === 0) c = Number(a.getAttribute('data-index')) - Number(b.getAttribute('data-index'));
        return order === 'ascending' ? c : -c;
      });
      var fragment = document.createDocumentFragment();
      rows.forEach(function (row) { fragment.appendChild(row); });
      body.appendChild(fragment);
    });
  });
});
`;

/** The script's hash, for a CSP that runs this script and nothing else. */
const SCRIPT_HASH = createHash('sha256').update(SCRIPT).digest('base64');

export const CONTENT_SECURITY_POLICY = `default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-${SCRIPT_HASH}'; base-uri 'none'; form-action 'none'`;

export interface PageContent {
  title: string;
  /** The line under the title. */
  subtitle: string;
  /** Section ids and their headings, and the parts of a long one, for the table of contents. */
  sections: readonly { id: string; heading: string; parts?: readonly { id: string; heading: string }[] }[];
  /** The main content, already HTML. */
  body: string;
  footer: string;
}

export function renderPage(content: PageContent): string {
  const link = (s: { id: string; heading: string }) => `<a href="#${escapeHtml(s.id)}">${escapeHtml(s.heading)}</a>`;
  const nav = content.sections
    .map((s) => (s.parts && s.parts.length > 0 ? `<li class="parts">${link(s)}<ul>${s.parts.map((part) => `<li>${link(part)}</li>`).join('')}</ul></li>` : `<li>${link(s)}</li>`))
    .join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(content.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(content.title)}</h1><p class="muted">${content.subtitle}</p></header>
<nav id="contents" aria-label="Contents"><ul>${nav}</ul></nav>
<main>
${content.body}
</main>
<footer>${content.footer}</footer>
<a class="totop" href="#contents">↑ Contents</a>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** An id or path as text that wraps after its separators (/ _ . -), not inside a word. */
export function wrappableId(text: string): string {
  return escapeHtml(text).replace(/[/_.-]/g, (c) => `${c}<wbr>`);
}

/** A section with its heading, labelled by it for screen readers. */
export function section(id: string, heading: string, body: string): string {
  return `<section id="${escapeHtml(id)}" aria-labelledby="${escapeHtml(id)}-h"><h2 id="${escapeHtml(id)}-h">${escapeHtml(heading)}</h2>\n${body}\n</section>`;
}

/** A definition list of run facts; values are HTML. */
export function metaList(label: string, pairs: readonly (readonly [string, string])[]): string {
  return `<dl class="meta" aria-label="${escapeHtml(label)}">${pairs.map(([key, value]) => `<dt>${escapeHtml(key)}</dt><dd>${value}</dd>`).join('')}</dl>`;
}
