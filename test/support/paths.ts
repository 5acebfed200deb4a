import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Compiled tests live in dist/test/support, three levels below the repository root. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const cliPath = join(repoRoot, 'bin', 'clip-eval.cjs');

/** ../shared beside the checkout; CLIP_EVAL_SHARED overrides it. */
export const sharedDir = process.env.CLIP_EVAL_SHARED ?? resolve(repoRoot, '..', 'shared');

/**
 * The reason to skip a test that needs ../shared, or false when it is there.
 * Use as `test('name', { skip: needsShared('reference/x.json') }, ...)`.
 */
export function needsShared(relativePath = ''): string | false {
  const path = join(sharedDir, relativePath);
  return existsSync(path) ? false : `needs ${path} (the shared reference folder beside the checkout); skipped`;
}

/** Debian's Python, where the reference packages (Pillow, sentencepiece, torch) are installed. */
export const REFERENCE_PYTHON = '/usr/bin/python3';

/**
 * The reason to skip a test that needs Python modules, or false when `imports` (Python statements)
 * runs; `what` says which modules and how to get them.
 */
export function needsPython(imports: string, what: string): string | false {
  return spawnSync(REFERENCE_PYTHON, ['-c', imports], { stdio: 'ignore' }).status === 0 ? false : `needs ${REFERENCE_PYTHON} with ${what}; skipped`;
}

export function sharedPath(relativePath: string): string {
  return join(sharedDir, relativePath);
}

export async function makeTempDir(prefix = 'clip-eval-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A temporary folder that is removed when the test `t` ends, passed or failed. */
export async function makeTestTempDir(t: TestContext, prefix?: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
