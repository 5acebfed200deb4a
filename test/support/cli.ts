import { spawn } from 'node:child_process';
import { cliPath } from './paths.js';

export interface CliRun {
  code: number | null;
  /** The signal that ended the process (SIGKILL after timeoutMs), or null. */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  cwd?: string;
  /** Kill the process with SIGKILL after this long: for runs that could hang. */
  timeoutMs?: number;
}

/** Runs the built CLI as a user would: a separate node process, CI set so progress is plain text. */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliRun> {
  return runScript(cliPath, args, options);
}

/** Runs a built script (the CLI, a scripts/ entry point) in its own node process and collects its output. */
export function runScript(script: string, args: string[], options: RunOptions = {}): Promise<CliRun> {
  return runNode([script, ...args], options);
}

/** Runs node with these arguments (a script, or `-e` code) and collects its output. */
export function runNode(nodeArgs: string[], options: RunOptions = {}): Promise<CliRun> {
  return runCommand(process.execPath, nodeArgs, options);
}

/**
 * Runs a command (node, bash) and collects its output. `options.env` is laid over this process's
 * environment; a variable set to undefined there is left out of the child's.
 */
export function runCommand(command: string, args: string[], options: RunOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, CI: 'true', GITHUB_STEP_SUMMARY: '', ...options.env },
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    // A child that exits without reading its input closes the pipe: EPIPE then says nothing the exit code does not.
    child.stdin.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') reject(error);
    });
    child.stdin.end(options.input ?? '');
  });
}
