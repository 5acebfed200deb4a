import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lastErrorLine, shellQuote, type MeasuredRun } from './bench-process.js';

/**
 * The GPU check's building blocks: one bounded child process per step (its output kept as logs, its
 * failure kept as one line so the check goes on), and the GPU memory nvidia-smi sees while it runs.
 */

export interface StepSpec {
  /** File-name-safe: names the step's log files. */
  name: string;
  command: string;
  args: readonly string[];
  timeoutSeconds: number;
  logDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface StepRun extends MeasuredRun {
  timedOut: boolean;
  /** Undefined when the step succeeded: else its last error line, or that it was killed at its time limit. */
  error?: string;
}

/** Grace between SIGTERM and SIGKILL for a step past its time limit. */
const KILL_GRACE_MS = 5_000;

/**
 * Runs one step to its end or its time limit, in its own process group so that a limit ends its
 * children too (the WebGPU probe, Python's workers). Never rejects: a command that cannot start is a
 * failed step like any other.
 */
export function runStep(spec: StepSpec): Promise<StepRun> {
  const command = shellQuote([spec.command, ...spec.args]);
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(spec.command, spec.args, { env: spec.env ?? process.env, cwd: spec.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // The group has already gone.
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const limitTimer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, spec.timeoutSeconds * 1000);
    const finish = async (code: number | null, signal: NodeJS.Signals | null, startError?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(limitTimer);
      clearTimeout(killTimer);
      const wallSeconds = (performance.now() - start) / 1000;
      const run: MeasuredRun = { command, code, signal, stdout, stderr, wallSeconds };
      let error: string | undefined;
      if (startError) error = `cannot start ${spec.command}: ${startError.message}`;
      else if (timedOut) error = `timed out after ${spec.timeoutSeconds} s (killed)`;
      else if (code !== 0) error = lastErrorLine(run);
      await writeFile(join(spec.logDir, `${spec.name}.log`), `$ ${command}\n# exit ${code ?? signal ?? 'none'}, ${wallSeconds.toFixed(2)} s\n--- stdout\n${stdout}\n--- stderr\n${stderr}${startError ? `\n${startError.message}\n` : ''}`);
      resolve({ ...run, timedOut, ...(error !== undefined ? { error } : {}) });
    };
    child.on('error', (error) => void finish(null, null, error));
    child.on('close', (code, signal) => void finish(code, signal));
  });
}

/** Peak GPU memory in use during a step, as nvidia-smi reports it, over what was in use before. */
export interface GpuMemoryReading {
  peakMiB?: number;
  baselineMiB?: number;
  /** Why there is no reading. */
  unavailable?: string;
}

export interface GpuMemorySampler {
  stop(): Promise<GpuMemoryReading>;
}

const SAMPLE_INTERVAL_MS = 100;

/** The largest memory.used figure in nvidia-smi's CSV lines (MiB, one line per GPU per sample). */
export function largestMemoryFigure(csv: string): number | undefined {
  const figures = csv
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^\d+(\.\d+)?$/.test(line))
    .map(Number);
  return figures.length > 0 ? Math.max(...figures) : undefined;
}

/**
 * Samples nvidia-smi's memory.used every 100 ms in the background. Where nvidia-smi is missing or fails,
 * stop() says so instead of a figure.
 */
export function sampleGpuMemory(baselineMiB: number | undefined): GpuMemorySampler {
  const child = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', `-lms`, String(SAMPLE_INTERVAL_MS)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let failure: string | undefined;
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (failure ??= chunk.toString().trim().split('\n')[0]));
  const ended = new Promise<void>((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure = error.code === 'ENOENT' ? 'no nvidia-smi' : `nvidia-smi: ${error.message}`;
      resolve();
    });
    child.on('close', () => resolve());
  });
  return {
    async stop() {
      child.kill('SIGTERM');
      await ended;
      const peak = largestMemoryFigure(output);
      if (peak === undefined) return { unavailable: failure ?? 'nvidia-smi reported no figure' };
      return { peakMiB: baselineMiB !== undefined ? Math.max(0, peak - baselineMiB) : peak, ...(baselineMiB !== undefined ? { baselineMiB } : {}) };
    },
  };
}

/** A table of plain columns, the first left-aligned, the rest too (they hold words as well as figures). */
export function formatColumns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd()).join('\n') + '\n';
}
