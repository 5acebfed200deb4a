import assert from 'node:assert/strict';
import { execFileSync, spawn, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { EXIT } from '../src/core/errors.js';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { runCli } from './support/cli.js';
import { cliPath, makeTempDir } from './support/paths.js';

/** classify with hostile inputs: devices, FIFOs, elongated and broken images, control characters, bad UTF-8. */

let dir: string;
let modelArgs: string[];
const file = (name: string) => join(dir, name);

before(async () => {
  dir = await makeTempDir('clip-eval-classify-inputs-');
  await writePatternClip(file('model'), { variants: false });
  modelArgs = ['--model', file('model'), '--cache-dir', file('cache'), '--threads', '1', '--labels', 'apple,tulip,bicycle'];
  await classImage('apple').png().toFile(file('apple.png'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `clip-eval classify` with standard input from `stdin` (bytes, or an open file descriptor); a run
 * still going after `limitMs` is killed and fails the test, so that a hang cannot hang the suite.
 */
function classify(args: string[], stdin: Uint8Array | number = new Uint8Array(), limitMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = [typeof stdin === 'number' ? stdin : 'pipe', 'pipe', 'pipe'];
    const child = spawn(process.execPath, [cliPath, 'classify', ...args], { stdio, env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`classify ${args.join(' ')} did not finish within ${limitMs} ms (a hang); stderr so far: ${stderr.slice(0, 500)}`));
    }, limitMs);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (typeof stdin !== 'number') child.stdin!.end(stdin);
  });
}

function errorLines(run: Run): string[] {
  return run.stderr.split('\n').filter((line) => line.startsWith('clip-eval: '));
}

test('classify: a 1x300000 PNG is refused as too elongated at once; a 1x50000 one is classified from its crop', { timeout: 120_000 }, async () => {
  const line = (height: number) => sharp({ create: { width: 1, height, channels: 3, background: { r: 200, g: 30, b: 40 } } }).png().toBuffer();
  await writeFile(file('line-300000.png'), await line(300_000));
  await writeFile(file('line-50000.png'), await line(50_000));
  const run = await classify([...modelArgs, '--json', file('line-300000.png'), file('line-50000.png')]);
  assert.equal(run.code, EXIT.input, run.stderr);
  assert.doesNotMatch(run.stderr, /heap|FATAL|at .*\.js:\d+/);
  assert.deepEqual(errorLines(run), [
    `clip-eval: ${file('line-300000.png')}: image is 1x300000, too elongated: resizing its shorter side to 224 would make the longer 67200000 pixels, over the limit of 16777216`,
    'clip-eval: 1 of 2 images could not be classified',
  ]);
  const records = run.stdout.trimEnd().split('\n').map((text) => JSON.parse(text) as { file: string; top?: unknown[] });
  assert.deepEqual(records.map((record) => [record.file, record.top?.length]), [[file('line-300000.png'), undefined], [file('line-50000.png'), 3]]);
});

test('classify: a FIFO or /dev/zero named as an image is refused at once, by name; the other images run', { timeout: 120_000 }, async () => {
  execFileSync('mkfifo', [file('pipe.png')]);
  const run = await classify([...modelArgs, '--top', '1', file('pipe.png'), '/dev/zero', file('apple.png')]);
  assert.equal(run.code, EXIT.input, run.stderr);
  assert.deepEqual(errorLines(run), [
    `clip-eval: ${file('pipe.png')}: is a FIFO (named pipe), not a regular file; give a file`,
    'clip-eval: /dev/zero: is a character device, not a regular file; give a file',
    'clip-eval: 2 of 3 images could not be classified',
  ]);
  assert.match(run.stdout, new RegExp(`${file('apple.png')}\\n.*\\n\\s+1\\s+apple\\s`));
});

test('a FIFO in place of any file of the model folder is refused by name, never waited on (cached digests or not)', { timeout: 240_000 }, async () => {
  for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/vision_model.onnx', 'onnx/text_model.onnx']) {
    const model = file(`model-fifo-${name.replaceAll('/', '-')}`);
    await cp(file('model'), model, { recursive: true });
    await rm(join(model, name));
    execFileSync('mkfifo', [join(model, name)]);
    for (const cache of [['--cache-dir', file('cache')], ['--no-cache']]) {
      const run = await classify(['--model', model, ...cache, '--threads', '1', '--labels', 'apple,tulip', file('apple.png')], new Uint8Array(), 30_000);
      assert.equal(run.code, EXIT.input, `${name} ${cache.join(' ')}: ${run.stderr}`);
      const [line] = errorLines(run);
      const subject = line?.replace(/^clip-eval: (tokenizer (file|config) )?/, '').replace(/: is a FIFO \(named pipe\), not a regular file; give (a file|a tokenizer\.json or bpe_simple_vocab_16e6\.txt\.gz)$/, '');
      assert.equal(subject, join(model, name), `${name}: ${line}`);
    }
  }
});

test('cifar100 --baseline naming a FIFO is refused by name, never waited on', { timeout: 120_000 }, async () => {
  execFileSync('mkfifo', [file('baseline.json')]);
  const run = await runCli(['cifar100', '--model', file('model'), '--no-cache', '--baseline', file('baseline.json')], { timeoutMs: 30_000 });
  assert.equal(run.signal, null, `--baseline FIFO: killed after 30 s (a hang); stderr: ${run.stderr}`);
  assert.equal(run.code, EXIT.input, run.stderr);
  assert.deepEqual(errorLines(run), [`clip-eval: --baseline ${file('baseline.json')}: is a FIFO (named pipe), not a regular file; give a file`]);
});

test('classify -: standard input from /dev/zero stops at the size limit with one error line', { timeout: 120_000 }, async () => {
  const zero = openSync('/dev/zero', 'r');
  try {
    const run = await classify([...modelArgs, '-'], zero);
    assert.equal(run.code, EXIT.input, run.stderr);
    assert.deepEqual(errorLines(run), ['clip-eval: standard input: more than the limit of 512 MiB (536870912 bytes); a larger input is refused']);
  } finally {
    closeSync(zero);
  }
});

test('classify: truncated JPEGs and broken PNGs in one batch each report their own decoder error, the same every run', { timeout: 120_000 }, async () => {
  const noise = (seed: number) => Uint8Array.from({ length: 192 * 192 * 3 }, (_, i) => (Math.imul(i + seed, 2654435761) >>> 24) & 0xff);
  const jpeg = await sharp(noise(1), { raw: { width: 192, height: 192, channels: 3 } }).jpeg().toBuffer();
  const png = await sharp(noise(2), { raw: { width: 192, height: 192, channels: 3 } }).png().toBuffer();
  const names: string[] = [];
  for (let i = 0; i < 16; i++) {
    const name = file(i % 2 === 0 ? `broken-${i}.jpg` : `broken-${i}.png`);
    await writeFile(name, i % 2 === 0 ? jpeg.subarray(0, jpeg.length >> 1) : png.subarray(0, png.length >> 1));
    names.push(name);
  }
  const runOnce = async () => {
    const run = await classify([...modelArgs, '--batch-size', '16', ...names]);
    assert.equal(run.code, EXIT.input, run.stderr);
    return errorLines(run);
  };
  const first = await runOnce();
  assert.equal(first.length, names.length + 1, first.join('\n'));
  names.forEach((name, i) => {
    const line = first[i]!;
    assert.ok(line.startsWith(`clip-eval: ${name}: corrupt or truncated image (`), line);
    const detail = line.slice(`clip-eval: ${name}`.length);
    assert.doesNotMatch(detail, /unknown error/i);
    if (name.endsWith('.jpg')) assert.ok(/jpe?g/i.test(detail) && !/png/i.test(detail), line);
    else assert.ok(/png/i.test(detail) && !/jpe?g/i.test(detail), line);
  });
  assert.deepEqual(await runOnce(), first);
});

test('classify: control characters in labels and file names are escaped in the table', { timeout: 120_000 }, async () => {
  const name = file('evil\x1b]0;owned\x07.png');
  await writeFile(name, await readFile(file('apple.png')));
  await writeFile(file('labels.txt'), 'apple\x1b[31m\ntulip\x00\nbicycle\x9b2J\n');
  const run = await classify(['--model', file('model'), '--cache-dir', file('cache'), '--threads', '1', '--labels', `@${file('labels.txt')}`, name]);
  assert.equal(run.code, EXIT.ok, run.stderr);
  assert.doesNotMatch(run.stdout, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/, 'no raw control character reaches the terminal');
  const lines = run.stdout.split('\n');
  assert.equal(lines[0], file('evil\\x1b]0;owned\\x07.png'));
  assert.deepEqual(lines.slice(2, 5).map((row) => row.trim().split(/\s+/)[1]).sort(), ['apple\\x1b[31m', 'bicycle\\x9b2J', 'tulip\\x00']);
  assert.equal(new Set(lines.slice(2, 5).map((row) => row.indexOf('%'))).size, 1, 'the escaped labels keep the columns aligned');
});

test('classify: label and template files that are not UTF-8 are refused naming the byte and line', { timeout: 120_000 }, async () => {
  await writeFile(file('latin1-labels.txt'), Buffer.from('apple\ncaf\xe9\ntulip\n', 'latin1'));
  await writeFile(file('latin1-templates.txt'), Buffer.concat([Buffer.from('a photo of a {}.\n'), Buffer.from([0x61, 0xff, 0x7b, 0x7d, 0x0a])]));
  const labels = await classify(['--model', file('model'), '--cache-dir', file('cache'), '--labels', `@${file('latin1-labels.txt')}`, file('apple.png')]);
  assert.equal(labels.code, EXIT.input, labels.stderr);
  assert.deepEqual(labels.stderr.trimEnd().split('\n'), [`clip-eval: --labels @${file('latin1-labels.txt')}: not valid UTF-8 (byte 9, line 2); save the file as UTF-8`]);
  const templates = await classify([...modelArgs, '--templates', file('latin1-templates.txt'), file('apple.png')]);
  assert.equal(templates.code, EXIT.input, templates.stderr);
  assert.deepEqual(templates.stderr.trimEnd().split('\n'), [`clip-eval: --templates ${file('latin1-templates.txt')}: not valid UTF-8 (byte 18, line 2); save the file as UTF-8`]);
});
