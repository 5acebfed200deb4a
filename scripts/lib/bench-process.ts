import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A finished child process: its output, wall-clock time (spawn to exit) and peak RSS when measured. */
export interface MeasuredRun {
  /** The command line, shell-quoted, for reports. */
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallSeconds: number;
  maxRssBytes?: number;
}

const RSS_HOOK = fileURLToPath(new URL('./bench-rss-hook.js', import.meta.url));

/** Python's getrusage(RUSAGE_CHILDREN) is the largest peak RSS among its finished children: here, the one command. */
const PYTHON_RSS_WRAPPER = [
  'import resource, subprocess, sys',
  'code = subprocess.call(sys.argv[2:])',
  "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))",
  'sys.exit(code)',
].join('\n');

export function shellQuote(words: readonly string[]): string {
  return words.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`)).join(' ');
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Runs a command to completion, collecting stdout and stderr; never rejects for a non-zero exit. */
export function spawnCollected(command: string, args: readonly string[], options: SpawnOptions = {}): Promise<MeasuredRun> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ command: shellQuote([command, ...args]), code, signal, stdout, stderr, wallSeconds: (performance.now() - start) / 1000 }),
    );
  });
}

/** Runs a node script in a fresh process with its peak RSS recorded through the --import hook. */
export async function runNodeMeasured(script: string, args: readonly string[], scratchDir: string, options: SpawnOptions = {}): Promise<MeasuredRun> {
  const rssFile = join(scratchDir, `rss-${process.pid}-${Date.now()}.txt`);
  const env = { ...(options.env ?? process.env), CLIP_EVAL_BENCH_RSS_FILE: rssFile };
  const run = await spawnCollected(process.execPath, ['--import', RSS_HOOK, script, ...args], { ...options, env });
  const measured = { ...run, command: shellQuote(['node', script, ...args]) };
  return withRss(measured, rssFile);
}

/** Runs a command under a small Python parent that reports the command's peak RSS. */
export async function runPythonMeasured(python: string, args: readonly string[], scratchDir: string, options: SpawnOptions = {}): Promise<MeasuredRun> {
  const rssFile = join(scratchDir, `rss-${process.pid}-${Date.now()}.txt`);
  const run = await spawnCollected(python, ['-c', PYTHON_RSS_WRAPPER, rssFile, python, ...args], options);
  const measured = { ...run, command: shellQuote([python, ...args]) };
  return withRss(measured, rssFile);
}

async function withRss(run: MeasuredRun, rssFile: string): Promise<MeasuredRun> {
  try {
    const bytes = Number((await readFile(rssFile, 'utf8')).trim());
    return Number.isFinite(bytes) && bytes > 0 ? { ...run, maxRssBytes: bytes } : run;
  } catch {
    // The process died before writing it (killed, or failed to start): no figure.
    return run;
  } finally {
    await rm(rssFile, { force: true });
  }
}

/** The last non-empty line of a failed run's stderr: for a clip-eval error, its one-line message. */
export function lastErrorLine(run: MeasuredRun): string {
  const lines = run.stderr.split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  return lines.at(-1) ?? (run.signal ? `killed by ${run.signal}` : `exit code ${run.code}`);
}
