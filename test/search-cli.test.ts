import assert from 'node:assert/strict';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/** `clip-eval search` end to end with the pattern CLIP: ranking order (by a text or an image), the image cache, unreadable files. */

let dir: string;
let photos: string;
const CLASSES = ['apple', 'bus', 'tulip', 'lion', 'snail'];

before(async () => {
  dir = await makeTempDir('clip-eval-search-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  photos = join(dir, 'photos');
  await mkdir(join(photos, 'more'), { recursive: true });
  for (const name of CLASSES) {
    await classImage(name).png().toFile(join(photos, `${name}.png`));
    await classImage(name, 200, 260).jpeg().toFile(join(photos, 'more', `${name}-2.jpg`));
  }
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Row {
  rank?: number;
  file?: string;
  score?: number;
  summary?: { images: number; encoded: number; cached: number };
}

function search(cache: string, query: string, ...extra: string[]) {
  return runCli(['search', query, photos, '--model', join(dir, 'model'), '--cache-dir', cache, '--threads', '1', '--quiet', ...extra]);
}

function rows(stdout: string): Row[] {
  return stdout.trim().split('\n').map((line) => JSON.parse(line) as Row);
}

test('search: the query "a photo of a <class>" ranks that class\'s images first; a second search encodes nothing', async () => {
  const cache = join(dir, 'cache');
  const cold = await search(cache, 'a photo of a bus', '--recursive', '--json', '-k', '3');
  assert.equal(cold.code, 0, cold.stderr);
  const coldRows = rows(cold.stdout);
  assert.equal(coldRows.length, 4);
  assert.deepEqual(coldRows.slice(0, 2).map((row) => row.file!.replace(`${photos}/`, '')).sort(), ['bus.png', 'more/bus-2.jpg']);
  assert.deepEqual(coldRows.slice(0, 3).map((row) => row.rank), [1, 2, 3]);
  assert.ok(coldRows[0]!.score! >= coldRows[1]!.score! && coldRows[1]!.score! > coldRows[2]!.score!);
  assert.ok(coldRows[0]!.score! <= 1 && coldRows[2]!.score! >= -1);
  assert.deepEqual(coldRows[3], { summary: { images: 10, encoded: 10, cached: 0 } });

  const warm = await search(cache, 'a photo of a tulip', '--recursive', '--json', '-k', '2');
  assert.equal(warm.code, 0, warm.stderr);
  const warmRows = rows(warm.stdout);
  assert.deepEqual(warmRows.slice(0, 2).map((row) => row.file!.replace(`${photos}/`, '')).sort(), ['more/tulip-2.jpg', 'tulip.png']);
  assert.deepEqual(warmRows[2], { summary: { images: 10, encoded: 0, cached: 10 } });

  const bypass = await search(cache, 'a photo of a tulip', '--json', '--no-cache');
  assert.deepEqual(rows(bypass.stdout).at(-1), { summary: { images: 5, encoded: 5, cached: 0 } });
});

test('search: a file that cannot be read gets its own one-line error, the others are still ranked (table output)', async () => {
  const broken = join(dir, 'broken.png');
  await writeFile(broken, 'not an image');
  const run = await runCli(['search', 'a photo of a lion', join(photos, 'lion.png'), broken, join(photos, 'apple.png'), '--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache-table'), '--threads', '1', '--quiet']);
  assert.equal(run.code, 3, run.stderr);
  const errors = run.stderr.trim().split('\n');
  assert.equal(errors.length, 2, run.stderr);
  assert.match(errors[0]!, /^clip-eval: .*broken\.png/);
  assert.equal(errors[1], 'clip-eval: 1 of 3 images could not be read');
  const lines = run.stdout.trim().split('\n');
  assert.match(lines[0]!, /^rank\s+score\s+path$/);
  assert.match(lines[1]!, /^\s+1\s+-?\d\.\d{4}\s+.*lion\.png$/);
  assert.match(lines[2]!, /^\s+2\s+-?\d\.\d{4}\s+.*apple\.png$/);
  assert.equal(lines.at(-1), '2 images ranked (2 encoded, 0 from the cache)');
});

test('search: an empty query is a usage error', async () => {
  const run = await search(join(dir, 'cache-empty'), ' ');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^clip-eval: the search query is empty/);
});

/** The lines a text query loads the text side with (--verbose): its session, its encoder, its cache. */
const TEXT_LINES = /text_model|text encoder|text embeddings|tokenizer/;
/** The line the vision session prints (with --verbose) when it is created. */
const VISION_SESSION_LINE = /^image encoder: /m;

test('search --image ranks the query\'s own class first, the query itself at 1.0; no text model is loaded; a second search encodes nothing, the query neither', async () => {
  // A copy of the model without its text side: an image query must not even look for it.
  const visionOnly = join(dir, 'vision-only');
  await cp(join(dir, 'model'), visionOnly, { recursive: true });
  await rm(join(visionOnly, 'tokenizer.json'));
  await rm(join(visionOnly, 'onnx', 'text_model.onnx'));
  const cache = join(dir, 'cache-image');
  const query = join(photos, 'lion.png');
  const searchByImage = (...extra: string[]) =>
    runCli(['search', '--image', query, photos, '--recursive', '--model', visionOnly, '--cache-dir', cache, '--threads', '1', '--verbose', '--json', ...extra]);

  const cold = await searchByImage('-k', '3');
  assert.equal(cold.code, 0, cold.stderr);
  const coldRows = rows(cold.stdout);
  assert.deepEqual(coldRows.slice(0, 3).map((row) => row.rank), [1, 2, 3]);
  // The query is among the searched files: listed like the others, first, with a similarity of 1.
  assert.equal(coldRows[0]!.file, query);
  assert.ok(Math.abs(coldRows[0]!.score! - 1) < 1e-5, String(coldRows[0]!.score));
  assert.equal(coldRows[1]!.file, join(photos, 'more', 'lion-2.jpg'));
  assert.ok(coldRows[1]!.score! > coldRows[2]!.score!);
  assert.notEqual(coldRows[2]!.file!.includes('lion'), true);
  // The query was encoded first and cached, so its own file among the ten is read from the cache.
  assert.deepEqual(coldRows[3], { summary: { images: 10, encoded: 9, cached: 1 } });
  assert.match(cold.stderr, /^query image embedding: encoded$/m);
  assert.match(cold.stderr, VISION_SESSION_LINE);
  assert.doesNotMatch(cold.stderr, TEXT_LINES);

  const warm = await searchByImage('-k', '3');
  assert.equal(warm.code, 0, warm.stderr);
  const warmRows = rows(warm.stdout);
  assert.deepEqual(warmRows.slice(0, 3), coldRows.slice(0, 3));
  assert.deepEqual(warmRows[3], { summary: { images: 10, encoded: 0, cached: 10 } });
  assert.match(warm.stderr, /^query image embedding: cached$/m);
  assert.doesNotMatch(warm.stderr, VISION_SESSION_LINE);
  assert.doesNotMatch(warm.stderr, TEXT_LINES);

  // --no-cache: the query and every image are encoded, and still rank the same.
  const bypass = await searchByImage('-k', '3', '--no-cache');
  assert.equal(bypass.code, 0, bypass.stderr);
  assert.deepEqual(rows(bypass.stdout).slice(0, 3).map((row) => row.file), coldRows.slice(0, 3).map((row) => row.file));
  assert.deepEqual(rows(bypass.stdout).at(-1), { summary: { images: 10, encoded: 10, cached: 0 } });
  assert.match(bypass.stderr, /^query image embedding: encoded$/m);
});

test('search --image with a query outside the searched files ranks the photos of its class first (table output)', async () => {
  const run = await runCli(['search', '--image', join(photos, 'more', 'tulip-2.jpg'), photos, '-k', '2', '--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache-image-table'), '--threads', '1', '--quiet']);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.match(lines[0]!, /^rank\s+score\s+path$/);
  assert.match(lines[1]!, /^\s+1\s+0\.9\d{3}\s+.*tulip\.png$/);
  assert.doesNotMatch(lines[2]!, /tulip/);
  assert.equal(lines.at(-1), '5 images ranked (5 encoded, 0 from the cache)');
});

test('search --image: an unreadable query image is exit 3 with one line naming it; a text query beside --image, or no images, is exit 2', async () => {
  const broken = join(dir, 'query-broken.png');
  await writeFile(broken, 'not an image');
  for (const query of [broken, join(dir, 'no-such-query.png')]) {
    const run = await runCli(['search', '--image', query, photos, '--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache-query-error'), '--quiet']);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, new RegExp(`^clip-eval: query image ${query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: [^\n]+\n$`));
  }
  const both = await search(join(dir, 'cache-query-error'), 'a photo of a lion', '--image', join(photos, 'lion.png'));
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /^clip-eval: "a photo of a lion" is no file or folder: search by a text query or by --image FILE, not both[^\n]*\n$/);
  const none = await runCli(['search', '--image', join(photos, 'lion.png'), '--model', join(dir, 'model')]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /^clip-eval: --image: give the images or folders to search\n$/);
});

test('search: its image progress line is headed "search", not "classify"', async () => {
  const run = await runCli(['search', 'a photo of a bus', photos, '--model', join(dir, 'model'), '--cache-dir', join(dir, 'progress-cache'), '--threads', '1', '--batch-size', '1']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /^search: .*5\/5/m);
  assert.doesNotMatch(run.stderr, /classify/);
});
