import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import test, { after, before } from 'node:test';
import { withFileLock } from '../src/net/file-lock.js';
import { createLogger } from '../src/core/log.js';
import { rejectsWithOneLine } from './support/errors.js';
import { makeTempDir } from './support/paths.js';

let dir: string;

before(async () => {
  dir = await makeTempDir('clip-eval-lock-');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A logger whose info lines are kept. */
function recordingLogger(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const stream = { write: (text: string) => lines.push(text.trimEnd()) > 0 } as unknown as NodeJS.WritableStream;
  return { lines, logger: createLogger({ stream }) };
}

test('a lock file dated in the future (clock skew, copied from another host) is stale, not waited on', { timeout: 20_000 }, async () => {
  const lockPath = join(dir, 'future.lock');
  await writeFile(lockPath, JSON.stringify({ pid: 1, host: 'another-host', token: 'copied' }));
  const inAnHour = new Date(Date.now() + 3_600_000);
  await utimes(lockPath, inAnHour, inAnHour);
  assert.equal(await withFileLock(lockPath, async () => 'ran'), 'ran');
  assert.equal(existsSync(lockPath), false);
});

test('every wait for a lock ends, naming the holder and what to do; the wait is announced once', { timeout: 20_000 }, async () => {
  const lockPath = join(dir, 'held.lock');
  const { lines, logger } = recordingLogger();
  await withFileLock(lockPath, async () => {
    const error = await rejectsWithOneLine(
      withFileLock(lockPath, async () => 'never', { maxWaitMs: 700, logger, label: 'test data' }),
      new RegExp(
        `^${lockPath}: is held by process ${process.pid} on ${hostname()} \\(test data\\); gave up after 0\\.7 s of waiting\\. ` +
          `If that process is gone or stuck, delete ${lockPath}; otherwise try again once it has finished$`,
      ),
    );
    assert.equal(error.exitCode, 3);
  });
  const waits = lines.filter((line) => line.includes('waiting'));
  assert.deepEqual(waits, [`waiting up to 0.7 s for process ${process.pid} on ${hostname()}, which holds ${lockPath} (test data)`]);
});

test('a symlink planted at a lock path is refused, and neither it nor its target is touched', async () => {
  const target = join(dir, 'target.txt');
  await writeFile(target, 'precious');
  const lockPath = join(dir, 'linked.lock');
  await symlink(target, lockPath);
  await rejectsWithOneLine(withFileLock(lockPath, async () => 'never'), /linked\.lock: is a symbolic link, not a lock file of this tool; remove it$/);
  assert.ok((await lstat(lockPath)).isSymbolicLink());
  assert.equal(await readFile(target, 'utf8'), 'precious');
});
