import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough } from 'node:stream';
import { createProgress, formatBarLine } from '../src/core/progress.js';
import { makeTempDir, repoRoot } from './support/paths.js';

/**
 * The progress bar on a real pseudo-terminal: util-linux `script` runs a process that draws a bar, with
 * the terminal's size set by stty, and returns everything the process wrote to the terminal.
 */
const haveScript = spawnSync('script', ['--version']).status === 0;
const child = join(repoRoot, 'dist', 'test', 'support', 'progress-child.js');
let dir: string;

before(async () => {
  dir = await makeTempDir('clip-eval-progress-');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface TerminalRun {
  status: number | null;
  output: string;
  pidFile: string;
}

/** Starts `command` under a pseudo-terminal; `whileRunning` gets the pid the child wrote, once it wrote it. */
async function underTerminal(command: string, pidFile: string, whileRunning?: (pid: number) => void): Promise<TerminalRun> {
  const env = { ...process.env };
  delete env.CI;
  const run = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  run.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const closed = new Promise<number | null>((resolve) => run.on('close', resolve));
  if (whileRunning) {
    // A bounded wait for the bar to be drawn: the child writes its pid after its first updates.
    for (let waited = 0; !existsSync(pidFile) || (await readFile(pidFile, 'utf8')) === ''; waited += 50) {
      assert.ok(waited < 30_000, `the child never drew its bar; output so far: ${JSON.stringify(output)}`);
      await sleep(50);
    }
    whileRunning(Number(await readFile(pidFile, 'utf8')));
  }
  return { status: await closed, output, pidFile };
}

/** The lines the bar drew: each redraw starts at column 1 (ESC [ 1 G); escape sequences removed. */
function drawnLines(output: string): string[] {
  return output
    .split('\x1b[1G')
    .slice(1)
    .map((line) => line.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]|\r|\n/g, ''));
}

test('the bar line fits the terminal: the bar shrinks or goes, the rate and ETA stay', () => {
  const line = { label: 'cifar100 fp32', fraction: 0.5, amount: '5000/10000', rate: '812.3 images/s', eta: '6s', detail: 'top-1 64.12 %' };
  const wide = formatBarLine(line, 120);
  assert.match(wide, /^cifar100 fp32 \[█{20}░{20}\] 50% 5000\/10000 812\.3 images\/s ETA 6s top-1 64\.12 %$/);
  for (const columns of [80, 60, 40]) {
    const text = formatBarLine(line, columns);
    assert.ok(text.length < columns, `${columns}: ${text}`);
    assert.match(text, /812\.3 images\/s ETA 6s/, `${columns}: ${text}`);
  }
  assert.match(formatBarLine(line, 80), /^cifar100 fp32 \[█+░+\] 50% .* ETA 6s top-1 64\.12 %$/, 'at 80 columns a shorter bar');
  assert.match(formatBarLine(line, 60), /^cifar100 fp32 \[█+░+\] 50% .* ETA 6s$/, 'at 60 columns the detail goes first');
  assert.match(formatBarLine(line, 40), /^c… 50% 5000\/10000 812\.3 images\/s ETA 6s$/, 'at 40 columns the label is cut');
});

test('a stream of unknown length shows its count and rate, never "N/0", a percentage or an ETA', () => {
  const line = { label: 'wds/flickr30k fp32', fraction: undefined, amount: '5000', rate: '812.3 images/s', eta: '--', detail: 'top-1 64.12 %' };
  assert.equal(formatBarLine(line, 120), 'wds/flickr30k fp32 5000 812.3 images/s top-1 64.12 %');
  assert.equal(formatBarLine(line, 40), 'wds/flickr30k fp32 5000 812.3 images/s');

  const stream = new PassThrough();
  let written = '';
  stream.on('data', (chunk: Buffer) => (written += chunk.toString()));
  const progress = createProgress({ label: 'shards', total: undefined, unit: 'images', stream: stream as unknown as NodeJS.WriteStream });
  progress.update(250);
  progress.stop();
  assert.match(written, /^shards: 250 [0-9.]+ images\/s\n$/);

  const known = createProgress({ label: 'cifar100', total: 1000, unit: 'images', stream: stream as unknown as NodeJS.WriteStream });
  written = '';
  known.update(250);
  known.stop();
  assert.match(written, /^cifar100: 25% 250\/1000 [0-9.]+ images\/s ETA \S+\n$/);
});

test('on a 60-column terminal every drawn bar line fits and shows the rate and ETA', { skip: haveScript ? false : 'needs script (util-linux)' }, async () => {
  const pidFile = join(dir, 'narrow.pid');
  const run = await underTerminal(`stty cols 60; exec ${process.execPath} ${child} ${pidFile} finish`, pidFile);
  assert.equal(run.status, 0, run.output);
  const lines = drawnLines(run.output).filter((line) => line !== '');
  assert.ok(lines.length >= 2, JSON.stringify(run.output));
  for (const line of lines) {
    assert.ok(line.length <= 60, `${line.length} columns: ${line}`);
    assert.match(line, /images\/s ETA (\d+s|--)/, line);
  }
});

for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} while a bar is drawn gives the cursor back and ends the process by the signal (${status})`, { skip: haveScript ? false : 'needs script (util-linux)' }, async () => {
    const pidFile = join(dir, `${signal}.pid`);
    const run = await underTerminal(`exec ${process.execPath} ${child} ${pidFile} forever`, pidFile, (pid) => process.kill(pid, signal));
    assert.equal(run.status, status, JSON.stringify(run.output.slice(-200)));
    const hidden = run.output.lastIndexOf('\x1b[?25l');
    assert.ok(hidden >= 0, 'the bar hid the cursor');
    assert.ok(run.output.lastIndexOf('\x1b[?25h') > hidden, `the cursor is shown again: ${JSON.stringify(run.output.slice(-120))}`);
    assert.ok(run.output.lastIndexOf('\x1b[?7h') > run.output.lastIndexOf('\x1b[?7l'), 'line wrapping is on again');
  });
}
