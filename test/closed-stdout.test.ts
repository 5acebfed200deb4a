import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { cliPath, makeTempDir } from './support/paths.js';

/**
 * `clip-eval … | head -1`: the reader closes stdout after the first line. The CLI must end quietly
 * (nothing on stderr) with 141, the status of a command that SIGPIPE ended.
 */
let dir: string;
let model: string;
let images: string;

before(async () => {
  dir = await makeTempDir('clip-eval-closed-stdout-');
  model = join(dir, 'model');
  images = join(dir, 'images');
  await writePatternClip(model, { variants: false });
  await mkdir(images);
  const png = await classImage('apple', 64, 48).png().toBuffer();
  for (let i = 0; i < 40; i += 1) await writeFile(join(images, `apple-${String(i).padStart(2, '0')}.png`), png);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI with stdout read by a reader that goes away after the first chunk, as `head -1` does. */
function runUntilFirstOutput(args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string; firstOutput: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
    let stderr = '';
    let firstOutput = '';
    child.stdout.once('data', (chunk: Buffer) => {
      firstOutput = chunk.toString();
      child.stdout.destroy();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, firstOutput }));
  });
}

const cases: [string, () => string[]][] = [
  ['tokenize', () => ['tokenize', '--tokenizer', join(model, 'tokenizer.json'), ...Array.from({ length: 20000 }, (_, i) => `text ${i}`)]],
  ['classify', () => ['classify', '--model', model, '--cache-dir', join(dir, 'cache'), '--labels', 'apple,bicycle', '--batch-size', '1', '--quiet', images]],
  ['classify --json', () => ['classify', '--model', model, '--cache-dir', join(dir, 'cache'), '--labels', 'apple,bicycle', '--batch-size', '1', '--quiet', '--json', images]],
];

for (const [name, args] of cases) {
  test(`${name} | head -1: a closed stdout ends the run quietly with exit 141`, async () => {
    const run = await runUntilFirstOutput(args());
    assert.notEqual(run.firstOutput, '', 'the command printed something before its reader left');
    assert.equal(run.stderr, '', 'no stack trace, no message');
    assert.equal(run.signal, null);
    assert.equal(run.code, 141);
  });
}
