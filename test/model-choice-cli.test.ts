import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/lib/pattern-clip.js';
import { runCli, type CliRun } from './support/cli.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/** How --model and --variant are read: what the user meant, or one line saying what is wrong. */
let dir: string;
let image: string;
let hub: TestServer;

before(async () => {
  dir = await makeTempDir('clip-eval-model-choice-');
  await writePatternClip(join(dir, 'fx', 'model'), { variants: true });
  image = join(dir, 'apple.png');
  await classImage('apple').png().toFile(image);
  hub = await startTestServer();
});

after(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

function assertOneLine(run: CliRun, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, run.stderr);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${run.stderr}`);
  assert.match(lines[0]!, pattern);
}

test('a misspelt relative model path beside an existing folder says the path does not exist, and asks no hub', async () => {
  const run = await runCli(['classify', image, '--model', 'fx/modle', '--labels', 'apple,bus', '--cache-dir', join(dir, 'cache'), '--quiet'], { cwd: dir, env: { HF_ENDPOINT: hub.origin } });
  assertOneLine(run, 3, /^clip-eval: --model fx\/modle: no such folder \(fx is a folder here, so this is read as a path; hub ids org\/name are looked up only when no folder org exists\)$/);
  assert.equal(hub.requests.length, 0, 'the hub is not asked');
  const right = await runCli(['classify', image, '--model', 'fx/model', '--labels', 'apple,bus', '--cache-dir', join(dir, 'cache'), '--quiet'], { cwd: dir });
  assert.equal(right.code, 0, right.stderr);
});

test('--model \'\' is a usage error, not the current folder', async () => {
  const classify = await runCli(['classify', image, '--model', '', '--labels', 'apple,bus', '--cache-dir', join(dir, 'cache'), '--quiet'], { cwd: join(dir, 'fx', 'model') });
  assertOneLine(classify, 2, /^clip-eval: --model: is empty; give a model folder or a hub id org\/name$/);
  const tokenize = await runCli(['tokenize', '--model', '', '--cache-dir', join(dir, 'cache'), 'apple'], { cwd: join(dir, 'fx', 'model') });
  assertOneLine(tokenize, 2, /^clip-eval: --model: is empty/);
});

test('--variant given twice is a usage error, never the same model run twice', async () => {
  for (const variants of [['--variant', 'fp32,fp32'], ['--variant', 'fp32,int8', '--variant', 'int8']]) {
    const run = await runCli(['cifar100', '--model', join(dir, 'fx', 'model'), ...variants, '--data-dir', join(dir, 'none'), '--cache-dir', join(dir, 'cache'), '--quiet']);
    assertOneLine(run, 2, /^clip-eval: --variant (fp32,fp32|int8): (fp32|int8) is given twice; each variant runs once/);
  }
  const classify = await runCli(['classify', image, '--model', join(dir, 'fx', 'model'), '--variant', 'fp32,fp32', '--labels', 'apple,bus', '--quiet']);
  assertOneLine(classify, 2, /^clip-eval: --variant fp32,fp32: fp32 is given twice/);
});
