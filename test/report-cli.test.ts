import assert from 'node:assert/strict';
import { readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { writeConfusableCifar100 } from '../scripts/lib/confusable-cifar.js';
import { makeTempDir, repoRoot } from './support/paths.js';

/** `--report FILE.html` through the built CLI, without a browser (report-browser.test.ts opens the page). */
let dir: string;
let args: string[];

before(async () => {
  dir = await makeTempDir('clip-eval-report-cli-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  const dataDir = await writeConfusableCifar100(join(dir, 'cifar'), { perClass: 2 });
  args = ['cifar100', '--data-dir', dataDir, '--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache'), '--threads', '1', '--quiet'];
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('cifar100 --report writes one self-contained HTML page with the run\'s top-1 and thumbnails inside', async () => {
  const html = join(dir, 'report.html');
  const json = join(dir, 'report.json');
  const run = await runCli([...args, '--json', json, '--report', html]);
  assert.equal(run.code, 0, run.stderr);
  const page = await readFile(html, 'utf8');
  const report = JSON.parse(await readFile(json, 'utf8')) as { results: { metrics: { top1: number } }[] };
  assert.match(page, /^<!DOCTYPE html>/);
  assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:;/);
  assert.ok(page.includes(`<span data-metric="top1" data-model="0">${(100 * report.results[0]!.metrics.top1).toFixed(2)}\u00a0%</span>`));
  assert.match(page, /<img src="data:image\/jpeg;base64,/);
  assert.doesNotMatch(page, /https?:\/\//);
});

test('--report writes through a symlink to the file it names, not over the link', async () => {
  const target = join(dir, 'target.html');
  await writeFile(target, '');
  const link = join(dir, 'link.html');
  await symlink(target, link);
  const run = await runCli([...args, '--report', link]);
  assert.equal(run.code, 0, run.stderr);
  assert.ok((await stat(target)).size > 1000);
  assert.match(await readFile(link, 'utf8'), /^<!DOCTYPE html>/);
});

test('--report and another output naming one file, or a folder, is a usage error before any work', async () => {
  const same = join(dir, 'same.out');
  const clash = await runCli([...args, '--json', same, '--report', same]);
  assert.equal(clash.code, 2);
  assert.match(clash.stderr, /^clip-eval: --json and --report name the same file \(.*same\.out\); give each its own\n$/);
  const folder = await runCli([...args, '--report', dir]);
  assert.equal(folder.code, 2);
  assert.match(folder.stderr, /^clip-eval: --report .*: is a folder; give a file name\n$/);
});

test('the README\'s report screenshot is a PNG under 300 KB', async () => {
  const png = await readFile(join(repoRoot, 'docs', 'report.png'));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(png.length < 300 * 1024, `${png.length} bytes`);
  assert.match(await readFile(join(repoRoot, 'README.md'), 'utf8'), /!\[[^\]]+\]\(docs\/report\.png\)/);
});
