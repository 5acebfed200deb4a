import assert from 'node:assert/strict';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { CIFAR100_COARSE_NAMES, CIFAR100_FINE_TO_COARSE, CIFAR100_RAW_NAMES, writePatternClip } from '../scripts/make-pattern-clip.js';
import { renderClassificationHtml } from '../src/report/html/classification.js';
import { artifactPath, launchChromium, needsChromium, openFile, type OpenedPage } from './support/browser.js';
import { runCli } from './support/cli.js';
import { writeConfusableCifar100 } from '../scripts/lib/confusable-cifar.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { syntheticClassificationInput } from './support/synthetic-report.js';

/**
 * The --report page in a real browser (headless Chromium): it opens without a console error or any
 * request but the file's own, shows the numbers of the --json of the same run, draws one heatmap cell
 * per class pair it shows, and its thumbnails decode. Screenshots go to test-artifacts/.
 */
const skip = needsChromium();
let dir: string;
let browser: Browser | undefined;
let modelArgs: string[];

before(async () => {
  if (skip) return;
  dir = await makeTempDir('clip-eval-report-browser-');
  await writePatternClip(join(dir, 'model'), { variants: true });
  modelArgs = ['--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache'), '--threads', '1', '--quiet'];
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Report {
  results: { metrics: { images: number; top1: number; top5: number | null; meanPerClassRecall: number; superclassTop1?: number } }[];
  comparisons?: unknown[];
}

function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(2)} %`;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? '').replace(/\u00a0/g, ' ');
}

/** What every report must do in the browser: no console error, no request off the file. */
function assertClean(opened: OpenedPage): void {
  assert.deepEqual(opened.problems, []);
  assert.deepEqual(opened.requests, [opened.url], 'the only request is the file itself');
  assert.deepEqual(opened.dialogs, []);
}

/** One cell per (row, column) of each heatmap, as its headers say. */
async function assertHeatmapCells(page: Page): Promise<{ rows: number; columns: number }[]> {
  const tables = page.locator('table.heatmap');
  const shapes: { rows: number; columns: number }[] = [];
  for (let t = 0; t < (await tables.count()); t += 1) {
    const table = tables.nth(t);
    const rows = await table.locator('tbody th[scope=row]').count();
    const columns = await table.locator('thead th[scope=col]').count();
    assert.equal(await table.locator('tbody td').count(), rows * columns);
    assert.equal(Number(await table.getAttribute('data-rows')), rows);
    assert.equal(Number(await table.getAttribute('data-columns')), columns);
    shapes.push({ rows, columns });
  }
  return shapes;
}

/**
 * Each heatmap picture fits the window (its last column inside it, no scrollbar), and with super-classes
 * each block on the diagonal is outlined and named, over the rows of its classes.
 */
async function assertHeatmapFits(page: Page, superclasses?: { names: readonly string[]; of: readonly number[]; classNames: readonly string[] }): Promise<void> {
  const pictures = page.locator('svg.heatmap');
  assert.ok((await pictures.count()) > 0, 'a heatmap picture');
  for (let p = 0; p < (await pictures.count()); p += 1) {
    const picture = pictures.nth(p);
    const fit = await picture.evaluate((svg) => {
      const doc = (globalThis as unknown as { document: { documentElement: { clientWidth: number; scrollWidth: number } } }).document.documentElement;
      const cells = [...svg.querySelectorAll('rect.cell')].map((cell) => cell.getBoundingClientRect().right);
      const parent = svg.parentElement!;
      return { window: doc.clientWidth, page: doc.scrollWidth, right: svg.getBoundingClientRect().right, cells: Math.max(...cells), parentScroll: parent.scrollWidth, parentClient: parent.clientWidth };
    });
    assert.ok(fit.right <= fit.window && fit.cells <= fit.window, `the picture and its last column inside the ${fit.window} px window: ${JSON.stringify(fit)}`);
    assert.ok(fit.page <= fit.window && fit.parentScroll <= fit.parentClient, `no horizontal scrollbar: ${JSON.stringify(fit)}`);
    if (!superclasses) continue;
    const groups = await picture.locator('.group').evaluateAll((nodes) => nodes.map((g) => g.querySelector('title')!.textContent));
    assert.deepEqual(groups, [...superclasses.names], 'every super-class named, in order');
    const rows = await picture.locator('text[text-anchor=end] > title').allTextContents();
    const size = rows.length / groups.length;
    rows.forEach((name, r) => assert.equal(superclasses.of[superclasses.classNames.indexOf(name)], Math.floor(r / size), `row ${r} (${name}) in the block of its super-class`));
  }
}

/** The table of contents links every section and each model's parts; the page is a few screens per model. */
async function assertNavigable(page: Page, models: number): Promise<number> {
  const links = await page.locator('nav#contents a').evaluateAll((anchors) => anchors.map((a) => a.getAttribute('href')!));
  for (let m = 0; m < models; m += 1) for (const part of ['', '-classes', '-confusion', '-pairs']) assert.ok(links.includes(`#model-${m}${part}`), `the contents link #model-${m}${part}: ${links.join(' ')}`);
  for (const href of links) assert.equal(await page.locator(href).count(), 1, `${href} is on the page`);
  assert.equal(await page.locator('a.totop[href="#contents"]').count(), 1, 'a way back to the contents from anywhere');
  // Sections off screen are laid out lazily (content-visibility): lay them all out to measure the page.
  return page.evaluate(() => {
    const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): { style: { contentVisibility: string } }[]; documentElement: { scrollHeight: number } } }).document;
    for (const section of doc.querySelectorAll('section')) section.style.contentVisibility = 'visible';
    return doc.documentElement.scrollHeight;
  });
}

/** Every image is decoded (its natural width known), and how many there are. */
async function decodedImages(page: Page): Promise<number> {
  const widths = await page.$$eval('img', (images) => images.map((image) => (image as unknown as { complete: boolean; naturalWidth: number }).naturalWidth));
  assert.ok(widths.every((width) => width > 0), `every thumbnail decodes: ${widths.join(',')}`);
  return widths.length;
}

test('cifar100 --report of two variants: clean, the JSON\'s numbers, a 100 × 100 heatmap, decoded thumbnails, sortable by keyboard', { skip }, async (t) => {
  const dataDir = await writeConfusableCifar100(join(dir, 'cifar'), { perClass: 3 });
  const json = join(dir, 'cifar100.json');
  const html = join(dir, 'cifar100.html');
  const run = await runCli(['cifar100', '--data-dir', dataDir, '--variant', 'fp32,int8', ...modelArgs, '--json', json, '--report', html]);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as Report;
  assert.ok(report.results[0]!.metrics.top1 < 1, 'the blended images make mistakes to show');

  const opened = await openFile(browser!, html);
  const { page } = opened;
  try {
    assertClean(opened);
    for (const [m, result] of report.results.entries()) {
      const { metrics } = result;
      assert.equal(await text(page, `[data-metric=top1][data-model="${m}"]`), percent(metrics.top1));
      assert.equal(await text(page, `[data-metric=top5][data-model="${m}"]`), percent(metrics.top5!));
      assert.equal(await text(page, `[data-metric=meanPerClassRecall][data-model="${m}"]`), percent(metrics.meanPerClassRecall));
      assert.equal(await text(page, `[data-metric=superclassTop1][data-model="${m}"]`), percent(metrics.superclassTop1!));
      assert.equal(await text(page, `[data-metric=images][data-model="${m}"]`), String(metrics.images));
    }
    assert.equal(await page.locator('#comparisons tbody tr').count(), report.comparisons?.length ?? 0, 'a row per paired comparison in the JSON');
    assert.deepEqual(await assertHeatmapCells(page), [{ rows: 100, columns: 100 }, { rows: 100, columns: 100 }]);
    const superclasses = { names: CIFAR100_COARSE_NAMES.map((name) => name.replace(/_/g, ' ')), of: CIFAR100_FINE_TO_COARSE, classNames: CIFAR100_RAW_NAMES.map((name) => name.replace(/_/g, ' ')) };
    await assertHeatmapFits(page, superclasses);
    const height = await assertNavigable(page, 2);
    assert.ok(height < 10_000, `two variants of 100 classes in ${height} px`);
    assert.equal(await page.locator('#model-0 details.more ol.pairs > li').count(), 14, 'pairs beyond the first 6 folded');
    const images = await decodedImages(page);
    assert.ok(images > 0, 'the most-confused pairs show their images');
    assert.ok((await page.locator('img:not([alt])').count()) === 0, 'every image has alt text');

    // Sorting by keyboard: focus a column's button, press Enter.
    const table = page.locator('#model-0 table.perclass');
    await table.locator('th[data-key=index] button').focus();
    await page.keyboard.press('Enter');
    assert.equal(await table.locator('th[data-key=index]').getAttribute('aria-sort'), 'ascending');
    assert.equal(await table.locator('tbody tr').first().getAttribute('data-index'), '0');
    await page.keyboard.press('Enter');
    assert.equal(await table.locator('tbody tr').first().getAttribute('data-index'), '99');
    assertClean(opened);

    const screenshot = await artifactPath('report-cifar100.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    await page.locator('#model-0 figure.heatfig').screenshot({ path: await artifactPath('report-cifar100-heatmap.png') });
    t.diagnostic(`screenshot: ${screenshot}`);
  } finally {
    await opened.close();
  }
  // A smaller window: the matrix is drawn smaller, still whole.
  const narrow = await openFile(browser!, html, { width: 900 });
  try {
    assertClean(narrow);
    await assertHeatmapFits(narrow.page);
  } finally {
    await narrow.close();
  }
  const dark = await openFile(browser!, html, { colorScheme: 'dark' });
  try {
    assertClean(dark);
    const background = await dark.page.$eval('body', (body) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(body).backgroundColor);
    assert.equal(background, 'rgb(13, 17, 23)', 'dark mode follows prefers-color-scheme');
    await dark.page.screenshot({ path: await artifactPath('report-cifar100-dark.png') });
  } finally {
    await dark.close();
  }
});

test('an image folder --report: thumbnails of the misfiled image files decode', { skip }, async () => {
  const folder = join(dir, 'pets');
  const names = CIFAR100_RAW_NAMES.slice(0, 6);
  for (const [i, rawName] of names.entries()) {
    await mkdir(join(folder, rawName), { recursive: true });
    await classImage(rawName.replace(/_/g, ' ')).png().toFile(join(folder, rawName, 'a.png'));
    // One image of the next class filed here: a mistake whose picture the report must show.
    await classImage(names[(i + 1) % names.length]!.replace(/_/g, ' ')).jpeg().toFile(join(folder, rawName, 'misfiled.jpg'));
  }
  const html = join(dir, 'pets.html');
  const run = await runCli(['eval', folder, ...modelArgs, '--report', html]);
  assert.equal(run.code, 0, run.stderr);
  const opened = await openFile(browser!, html);
  try {
    assertClean(opened);
    assert.deepEqual(await assertHeatmapCells(opened.page), [{ rows: 6, columns: 6 }]);
    assert.equal(await decodedImages(opened.page), 6, 'one misfiled image per class');
    assert.match((await opened.page.locator('.shots code').allTextContents()).join(' '), /apple\/misfiled\.jpg/);
  } finally {
    await opened.close();
  }
});

test('hostile class names do not run in the page: no script, no dialog, shown as text', { skip }, async () => {
  const names = ['<script>globalThis.pwned = 1</script>', '<img src=x onerror="globalThis.pwned = 2">', '" onmouseover="alert(1)', 'a & b', "it's", 'plain'];
  const html = join(dir, 'hostile.html');
  await writeFile(html, renderClassificationHtml(await syntheticClassificationInput(names, { perClass: 8, thumbnails: true })));
  const opened = await openFile(browser!, html);
  try {
    assertClean(opened);
    assert.equal(await opened.page.evaluate('typeof globalThis.pwned'), 'undefined');
    assert.equal(await opened.page.locator('img[src=x], [onerror], [onmouseover]').count(), 0);
    const shown = await opened.page.locator('#model-0 table.perclass tbody th').allTextContents();
    assert.deepEqual([...shown].sort(), [...names].sort());
    await opened.page.hover('svg.heatmap rect.cell');
    assert.deepEqual(opened.dialogs, []);
  } finally {
    await opened.close();
  }
});

test('long ImageNet-style image ids wrap at their separators, never inside a word', { skip }, async () => {
  const input = await syntheticClassificationInput(['tench', 'goldfish', 'great white shark', 'tiger shark'], { perClass: 8, thumbnails: true });
  const ids = input.ids.map((id) => `n01440764/ILSVRC2012_val_${id.replace(/\D/g, '').padStart(8, '0')}.JPEG`);
  const thumbnails = new Map([...input.thumbnails.values()].map((thumbnail, n) => [ids[n]!, thumbnail]));
  const html = join(dir, 'imagenet-ids.html');
  await writeFile(html, renderClassificationHtml({ ...input, ids, thumbnails }));
  const opened = await openFile(browser!, html);
  try {
    assertClean(opened);
    const shown = await opened.page.locator('.shots code').evaluateAll((codes) =>
      codes.map((code) => ({
        text: code.textContent,
        // A run of text between break points that is laid out on more than one line was broken inside it.
        pieces: [...code.childNodes].filter((node) => node.nodeType === 3).map((node) => {
          const range = node.ownerDocument!.createRange();
          range.selectNodeContents(node);
          return { text: node.textContent, lines: new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size };
        }),
      })),
    );
    assert.ok(shown.length > 0);
    for (const id of shown) {
      assert.ok(ids.includes(id.text!), `the id whole in the text: ${id.text}`);
      for (const piece of id.pieces) assert.equal(piece.lines, 1, `${id.text}: "${piece.text}" is not broken across lines`);
    }
    assert.ok(shown.some((id) => id.pieces.length > 1), 'the ids are split at their separators');
  } finally {
    await opened.close();
  }
});

test('report size and open time at 100 and 1,000 classes (a unit-level report of 2 variants, thumbnails on the pairs)', { skip }, async (t) => {
  for (const classes of [100, 1000]) {
    const names = Array.from({ length: classes }, (_, i) => `class ${i}`);
    const html = join(dir, `synthetic-${classes}.html`);
    await writeFile(html, renderClassificationHtml(await syntheticClassificationInput(names, { perClass: 10, variants: ['fp32', 'int8'], thumbnails: true })));
    const opened = await openFile(browser!, html);
    try {
      assertClean(opened);
      const shapes = await assertHeatmapCells(opened.page);
      assert.equal(shapes.length, 2);
      if (classes === 100) assert.deepEqual(shapes[0], { rows: 100, columns: 100 });
      else assert.equal(shapes[0]!.rows, 30, 'at 1,000 classes the worst 30 classes');
      assert.equal(await opened.page.locator('#model-0 table.perclass tbody tr').count(), classes);
      await decodedImages(opened.page);
      t.diagnostic(`${classes} classes: ${((await stat(html)).size / 1024).toFixed(0)} KiB, loaded in ${opened.loadMs.toFixed(0)} ms`);
      if (classes === 1000) await opened.page.screenshot({ path: await artifactPath('report-1000-classes.png') });
    } finally {
      await opened.close();
    }
  }
});

test('retrieval --report: clean, the JSON\'s recalls, a curve with its table, decoded thumbnails of the worst captions', { skip }, async () => {
  const images = join(dir, 'captioned');
  await mkdir(images, { recursive: true });
  const rows: string[] = [];
  const names = CIFAR100_RAW_NAMES.slice(0, 12);
  for (const [i, raw] of names.entries()) {
    const name = raw.replace(/_/g, ' ');
    await classImage(name).png().toFile(join(images, `${raw}.png`));
    rows.push(`captioned/${raw}.png,a photo of a ${name}`);
    // Every third image also gets a caption of another class, with markup in it: the worst captions.
    if (i % 3 === 0) rows.push(`captioned/${raw}.png,"a <b>photo</b> of a ${names[(i + 5) % names.length]!.replace(/_/g, ' ')} & ""friends"""`);
  }
  const manifest = join(dir, 'captions.csv');
  await writeFile(manifest, `path,caption\n${rows.join('\n')}\n`);
  const json = join(dir, 'retrieval.json');
  const html = join(dir, 'retrieval.html');
  const run = await runCli(['retrieval', manifest, ...modelArgs, '--json', json, '--report', html]);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as { results: { metrics: { imageRetrievalRecall: Record<string, number>; textRetrievalRecall: Record<string, number> } }[] };
  const opened = await openFile(browser!, html);
  try {
    assertClean(opened);
    const { metrics } = report.results[0]!;
    for (const k of ['1', '5', '10']) {
      assert.equal(await text(opened.page, `[data-metric="imageRetrievalRecall@${k}"]`), percent(metrics.imageRetrievalRecall[k]!));
      assert.equal(await text(opened.page, `[data-metric="textRetrievalRecall@${k}"]`), percent(metrics.textRetrievalRecall[k]!));
    }
    assert.equal(await opened.page.locator('#curves svg polyline').count(), 2);
    assert.equal(await opened.page.locator('#curves table tbody tr').count(), names.length, 'a table row per k of the curve');
    assert.ok((await opened.page.locator('#worst h4').count()) >= 1);
    assert.match((await opened.page.locator('#worst h4').first().textContent())!, /<b>photo<\/b> of a .* & "friends"/, 'the caption shown as text');
    assert.ok((await decodedImages(opened.page)) > 0);
    await opened.page.screenshot({ path: await artifactPath('report-retrieval.png'), fullPage: true });
  } finally {
    await opened.close();
  }
});
