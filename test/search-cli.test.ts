import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { classImage } from './support/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/** `clip-eval search` end to end with the pattern CLIP: ranking order, the image cache, unreadable files. */

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
