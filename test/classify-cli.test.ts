import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EXIT } from '../src/core/errors.js';
import { formatLogit, formatProbability } from '../src/report/classification.js';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { classImage, rotatedJpegWithExif } from '../scripts/lib/pattern-images.js';
import { cliPath, makeTempDir } from './support/paths.js';

let dir: string;
let modelArgs: string[];
const file = (name: string) => join(dir, name);

before(async () => {
  dir = await makeTempDir('clip-eval-classify-cli-');
  await writePatternClip(file('model'), { variants: false });
  modelArgs = ['--model', file('model'), '--cache-dir', file('cache'), '--threads', '1'];
  await classImage('apple').png().toFile(file('apple.png'));
  await classImage('bicycle').jpeg({ quality: 90 }).toFile(file('bicycle.jpg'));
  await classImage('tulip').webp({ quality: 90 }).toFile(file('tulip.webp'));
  await writeFile(file('bicycle-exif6.jpg'), await rotatedJpegWithExif('bicycle'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], stdin?: Uint8Array): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'classify', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

interface TableBlock {
  file: string;
  rows: { label: string; probability: string; logit: string }[];
}

/** Reads the table back: a file line, a header line, then "rank label probability logit" rows. */
function parseTable(stdout: string): { blocks: TableBlock[]; totals?: string } {
  const chunks = stdout.trimEnd().split('\n\n');
  const totals = /^\d+ images?[, ]/.test(chunks.at(-1)!) ? chunks.pop() : undefined;
  const blocks = chunks.map((chunk) => {
    const [name, header, ...rows] = chunk.split('\n');
    assert.match(header!, /^\s+#\s+label\s+probability\s+logit$/);
    return {
      file: name!,
      rows: rows.map((row, i) => {
        const match = /^\s+(\d+)\s{2}(.+?)\s+(\d+\.\d\d%)\s+(-?\d+\.\d\d)$/.exec(row);
        assert.ok(match && Number(match[1]) === i + 1, `row "${row}"`);
        return { label: match[2]!, probability: match[3]!, logit: match[4]! };
      }),
    };
  });
  return { blocks, totals };
}

interface JsonRecord {
  file: string;
  top?: { label: string; probability: number; logit: number }[];
  error?: string;
}

function parseJsonLines(stdout: string): JsonRecord[] {
  return stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as JsonRecord);
}

test('classify FILE...: PNG, JPEG and WebP in a table, one block per image, then the totals', async () => {
  const run = await runCli([...modelArgs, file('apple.png'), file('bicycle.jpg'), file('tulip.webp')]);
  assert.equal(run.code, EXIT.ok, run.stderr);
  const { blocks, totals } = parseTable(run.stdout);
  assert.deepEqual(blocks.map((block) => block.file), [file('apple.png'), file('bicycle.jpg'), file('tulip.webp')]);
  assert.deepEqual(blocks.map((block) => block.rows[0]!.label), ['apple', 'bicycle', 'tulip']);
  for (const block of blocks) assert.equal(block.rows.length, 5);
  assert.match(totals ?? '', /^3 images in \d+\.\d\d s \(\d+\.\d images\/s\)$/);
  // All blocks share column positions.
  const probabilityColumns = new Set(run.stdout.split('\n').filter((line) => /%/.test(line)).map((line) => line.indexOf('%')));
  assert.equal(probabilityColumns.size, 1);
});

test('classify --json: JSON Lines in input order that agree with the table', async () => {
  const args = [...modelArgs, '--labels', 'apple, bicycle ,tulip,a red car', '--top', '9', file('tulip.webp'), file('apple.png')];
  const table = await runCli(args);
  const json = await runCli([...args, '--json']);
  assert.equal(table.code, EXIT.ok, table.stderr);
  assert.equal(json.code, EXIT.ok, json.stderr);
  const records = parseJsonLines(json.stdout);
  const { blocks } = parseTable(table.stdout);
  assert.deepEqual(records.map((record) => record.file), [file('tulip.webp'), file('apple.png')]);
  records.forEach((record, i) => {
    assert.deepEqual(Object.keys(record), ['file', 'top']);
    assert.equal(record.top!.length, 4, '--top is capped at the number of labels');
    assert.deepEqual(Object.keys(record.top![0]!), ['label', 'probability', 'logit']);
    assert.deepEqual(
      record.top!.map((score) => ({ label: score.label, probability: formatProbability(score.probability), logit: formatLogit(score.logit) })),
      blocks[i]!.rows,
    );
  });
  assert.deepEqual(records.map((record) => record.top![0]!.label), ['tulip', 'apple']);
});

test('classify: an EXIF-rotated JPEG is upright by default and sideways with --no-auto-orient', async () => {
  const upright = await runCli([...modelArgs, '--json', '--top', '1', file('bicycle-exif6.jpg')]);
  const sideways = await runCli([...modelArgs, '--json', '--top', '1', '--no-auto-orient', file('bicycle-exif6.jpg')]);
  assert.equal(upright.code, EXIT.ok, upright.stderr);
  assert.equal(sideways.code, EXIT.ok, sideways.stderr);
  assert.equal(parseJsonLines(upright.stdout)[0]!.top![0]!.label, 'bicycle');
  assert.notEqual(parseJsonLines(sideways.stdout)[0]!.top![0]!.label, 'bicycle');
});

test('classify DIR: mixed good and bad files; one error line each, the rest classified, exit 3', async () => {
  const folder = file('mixed');
  await mkdir(join(folder, 'nested'), { recursive: true });
  await copyFile(file('apple.png'), join(folder, 'a-apple.png'));
  await copyFile(file('bicycle.jpg'), join(folder, 'b-bicycle.jpg'));
  await copyFile(file('tulip.webp'), join(folder, 'nested', 'tulip.webp'));
  const jpeg = await readFile(file('bicycle.jpg'));
  await writeFile(join(folder, 'c-truncated.jpg'), jpeg.subarray(0, 2000));
  await writeFile(join(folder, 'd-empty.jpg'), '');
  await writeFile(join(folder, 'e-text.png'), 'hello\n');
  await writeFile(join(folder, 'notes.txt'), 'not taken from a folder');

  const run = await runCli([...modelArgs, '--json', '--top', '1', folder, file('missing.webp')]);
  assert.equal(run.code, EXIT.input, run.stderr);
  const records = parseJsonLines(run.stdout);
  assert.deepEqual(records.map((record) => record.file), [
    ...['a-apple.png', 'b-bicycle.jpg', 'c-truncated.jpg', 'd-empty.jpg', 'e-text.png'].map((name) => join(folder, name)),
    file('missing.webp'),
  ]);
  assert.deepEqual(records.map((record) => record.top?.[0]?.label ?? 'error'), ['apple', 'bicycle', 'error', 'error', 'error', 'error']);
  const errorLines = run.stderr.split('\n').filter((line) => line.startsWith('clip-eval: '));
  const failed = records.filter((record) => record.error !== undefined);
  assert.equal(errorLines.length, failed.length + 1, run.stderr);
  for (const record of failed) {
    assert.ok(errorLines.includes(`clip-eval: ${record.error}`), `${record.error} on stderr`);
    assert.ok(record.error!.startsWith(`${record.file}: `), record.error);
  }
  assert.equal(errorLines.at(-1), 'clip-eval: 4 of 6 images could not be classified');

  const recursive = await runCli([...modelArgs, '--top', '1', '--recursive', folder]);
  assert.equal(recursive.code, EXIT.input);
  assert.deepEqual(parseTable(recursive.stdout).blocks.map((block) => [block.file, block.rows[0]!.label]), [
    [join(folder, 'a-apple.png'), 'apple'],
    [join(folder, 'b-bicycle.jpg'), 'bicycle'],
    [join(folder, 'nested', 'tulip.webp'), 'tulip'],
  ]);
  assert.match(parseTable(recursive.stdout).totals ?? '', /^6 images, 3 failed in /);
});

test('classify -: reads one image from standard input; --max-pixels refuses larger images', async () => {
  const piped = await runCli([...modelArgs, '--json', '--top', '1', '-'], await readFile(file('tulip.webp')));
  assert.equal(piped.code, EXIT.ok, piped.stderr);
  assert.deepEqual(parseJsonLines(piped.stdout).map((record) => [record.file, record.top?.[0]?.label]), [['-', 'tulip']]);

  const limited = await runCli([...modelArgs, '--max-pixels', String(320 * 240 - 1), file('apple.png'), file('bicycle.jpg')]);
  assert.equal(limited.code, EXIT.input);
  assert.match(limited.stdout, /^2 images, 2 failed in \S+ s \(.*\)\n$/, 'no blocks, only the totals');
  for (const name of ['apple.png', 'bicycle.jpg']) assert.match(limited.stderr, new RegExp(`clip-eval: ${file(name)}: .*pixel`, 'i'));
});

test('classify: empty or duplicate labels and templates without {} are usage errors (exit 2)', async () => {
  const templates = file('templates.txt');
  await writeFile(templates, 'a photo of a {}.\na photo\n');
  const cases: [string[], RegExp][] = [
    [['--labels', ''], /--labels "": no labels given/],
    [['--labels', 'cat, dog,cat'], /label "cat" is listed twice/],
    [['--labels', 'cat,,dog'], /a label is empty/],
    [['--labels', 'cat,dog', '--templates', templates], /template "a photo" has no \{\}/],
    [['--top', '0'], /--top 0: expected a positive whole number/],
    [['--max-pixels', 'many'], /--max-pixels many: expected a positive whole number/],
  ];
  for (const [args, message] of cases) {
    const run = await runCli([...modelArgs, ...args, file('apple.png')]);
    assert.equal(run.code, EXIT.usage, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0]!, message);
  }
});
