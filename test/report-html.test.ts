import assert from 'node:assert/strict';
import test from 'node:test';
import { renderClassificationHtml } from '../src/report/html/classification.js';
import { CONTENT_SECURITY_POLICY, escapeHtml } from '../src/report/html/page.js';
import { syntheticClassificationInput } from './support/synthetic-report.js';

/** The report page as a pure function of a run: escaping, self-containment, the cells it must show. */

const HOSTILE = ['<script>globalThis.pwned=1</script>', 'fish & chips', '"quoted" \'single\'', '<img src=x onerror=alert(1)>', 'tab\there', 'plain'];

function count(html: string, pattern: RegExp): number {
  return [...html.matchAll(pattern)].length;
}

test('escapeHtml escapes markup characters and makes control characters visible', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(escapeHtml('a\u0000b\u001bc'), 'a\\x00b\\x1bc');
});

test('hostile class names appear only escaped: no element, attribute or script comes from them', async () => {
  const input = await syntheticClassificationInput(HOSTILE, { perClass: 6, thumbnails: true });
  const html = renderClassificationHtml(input);
  assert.doesNotMatch(html, /globalThis\.pwned=1<\/script>/, 'the script tag of a class name is not in the page');
  assert.doesNotMatch(html, /<img src=x/);
  assert.equal(count(html, /onerror=/gi), count(html, /&lt;img src=x onerror=/g), 'onerror= appears only inside the escaped name');
  assert.match(html, /&lt;script&gt;globalThis\.pwned=1&lt;\/script&gt;/);
  assert.match(html, /fish &amp; chips/);
  assert.match(html, /&quot;quoted&quot; &#39;single&#39;/);
  assert.match(html, /tab\\x09here/, 'a control character is shown, not written raw');
  assert.equal(count(html, /<script>/g), 1, 'one script element: the page\'s own');
});

test('the page is self-contained: a CSP that forbids requests, and no URL but data: images and in-page links', async () => {
  const html = renderClassificationHtml(await syntheticClassificationInput(['cat', 'dog', 'bird', 'fish', 'frog', 'deer'], { thumbnails: true }));
  assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">`));
  assert.match(CONTENT_SECURITY_POLICY, /default-src 'none'/);
  assert.match(CONTENT_SECURITY_POLICY, /script-src 'sha256-[A-Za-z0-9+/]+=*'/);
  const urls = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
  assert.ok(urls.length > 0);
  for (const url of urls) assert.match(url, /^(data:image\/(png|jpeg);base64,|#)/, url);
  assert.doesNotMatch(html, /https?:\/\//);
});

test('at 100 classes the heatmap is the whole matrix; at 1,000 it is the worst rows against their confusions', async () => {
  const hundred = Array.from({ length: 100 }, (_, i) => `class ${i}`);
  const small = renderClassificationHtml(await syntheticClassificationInput(hundred));
  const smallMap = /<table class="heatmap[^"]*" data-rows="(\d+)" data-columns="(\d+)">([\s\S]*?)<\/table>/.exec(small)!;
  assert.deepEqual([smallMap[1], smallMap[2]], ['100', '100']);
  assert.equal(count(smallMap[3]!, /<tbody>[\s\S]*/g), 1);
  assert.equal(count(smallMap[3]!.slice(smallMap[3]!.indexOf('<tbody>')), /<td[ >]/g), 100 * 100);

  const thousand = Array.from({ length: 1000 }, (_, i) => `class ${i}`);
  const large = renderClassificationHtml(await syntheticClassificationInput(thousand));
  const largeMap = /<table class="heatmap[^"]*" data-rows="(\d+)" data-columns="(\d+)">([\s\S]*?)<\/table>/.exec(large)!;
  const [rows, columns] = [Number(largeMap[1]), Number(largeMap[2])];
  assert.equal(rows, 30);
  assert.ok(columns >= rows && columns <= rows * 4, `${columns} columns: the rows' own classes and up to three confusions each`);
  assert.equal(count(largeMap[3]!.slice(largeMap[3]!.indexOf('<tbody>')), /<td[ >]/g), rows * columns);
  assert.equal(count(large, /<tr data-index=/g), 1000, 'the per-class table still has every class');
});

test('the heatmap picture: one drawn cell per non-empty cell of the matrix, super-class blocks outlined and named in order', async () => {
  const names = ['apple', 'bee', 'cat', 'dog', 'eel', 'fig'];
  // Super-classes interleaved in class order: the matrix is reordered so that each block is contiguous.
  const superclasses = { names: ['fruit', 'animals', 'insects'], of: Int32Array.from([0, 2, 1, 1, 1, 0]) };
  const html = renderClassificationHtml(await syntheticClassificationInput(names, { perClass: 8, superclasses }));
  const picture = /<svg class="heatmap"[^>]*data-rows="6" data-columns="6">([\s\S]*?)<\/svg>/.exec(html)!;
  assert.ok(picture, 'an SVG picture of the matrix');
  const table = /<table class="heatmap[^"]*"[^>]*>([\s\S]*?)<\/table>/.exec(html)![1]!;
  const body = table.slice(table.indexOf('<tbody>'));
  assert.equal(count(picture[1]!, /<rect class="cell /g), count(body, /<td class="[dh]\d"/g), 'a drawn cell for each shaded cell of the table');
  assert.deepEqual([...picture[1]!.matchAll(/<g class="group">[\s\S]*?<title>([^<]*)<\/title>/g)].map((m) => m[1]), ['fruit', 'animals', 'insects']);
  const rows = [...picture[1]!.matchAll(/<text x="-4"[^>]*><title>([^<]*)<\/title>/g)].map((m) => m[1]);
  assert.deepEqual(rows, ['apple', 'fig', 'cat', 'dog', 'eel', 'bee'], 'rows grouped by super-class, in class order within');
  assert.match(html, /<details class="heattable"><summary>The matrix as a table \(6 × 6\)<\/summary>/, 'the table behind the picture, folded');
});

test('several variants: a section each and the paired comparisons with their counts and p-value', async () => {
  const input = await syntheticClassificationInput(['cat', 'dog', 'bird', 'fish', 'frog', 'deer'], { variants: ['fp32', 'int8'] });
  const html = renderClassificationHtml(input);
  assert.match(html, /<h2 id="model-0-h">Model 1: synthetic\/model \[fp32\]<\/h2>/);
  assert.match(html, /<h2 id="model-1-h">Model 2: synthetic\/model \[int8\]<\/h2>/);
  const comparison = input.report.comparisons![0]!;
  const row = /<th scope="row">synthetic\/model \[int8\] vs synthetic\/model \[fp32\]<\/th>([\s\S]*?)<\/tr>/.exec(html);
  assert.ok(row, 'a row for the pair');
  const pp = 100 * comparison.delta;
  assert.ok(row[1]!.includes(`${pp >= 0 ? '+' : '−'}${Math.abs(pp).toFixed(2)} pp`));
  assert.match(row[1]!, /<td class="n">3<\/td><td class="n">5<\/td><td class="n">0\.7266<\/td>/);
  for (const [m, result] of input.report.results.entries()) {
    assert.ok(html.includes(`<span data-metric="top1" data-model="${m}">${(100 * result.metrics.top1).toFixed(2)}\u00a0%</span>`));
  }
});

test('most-confused pairs show at most 8 images each, with alt text naming both classes', async () => {
  const input = await syntheticClassificationInput(['cat', 'dog', 'bird', 'fish', 'frog', 'deer'], { perClass: 40, thumbnails: true });
  const html = renderClassificationHtml(input);
  const pairs = [...html.matchAll(/<li><h4>([\s\S]*?)<\/ul><\/li>/g)];
  assert.ok(pairs.length > 0 && pairs.length <= 20);
  for (const pair of pairs) assert.ok(count(pair[1]!, /<img /g) <= 8);
  assert.match(html, /alt="img-\d+\.png: a \w+ taken for a \w+"/);
});
