import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
  assert.deepEqual(waits, [`waiting up to 0.7 s for process ${process.pid} on ${hostname()}, which holds ${lockPath} (test data); that process is running`]);

  const elsewhere = join(dir, 'elsewhere.lock');
  await writeFile(elsewhere, JSON.stringify({ pid: 1, host: 'another-host', token: 'remote' }));
  await rejectsWithOneLine(withFileLock(elsewhere, async () => 'never', { maxWaitMs: 300, logger }), /elsewhere\.lock: is held by process 1 on another-host; gave up after 0\.3 s/);
  assert.equal(
    lines.at(-1),
    `waiting up to 0.3 s for process 1 on another-host, which holds ${elsewhere}; ` +
      'that process runs on another host, where this one cannot check it: the lock is taken over once left untouched for 30 s',
  );
});

test('a lock whose holder has exited but was never reaped (a zombie) is taken over at once, saying so', { skip: !existsSync('/proc/self/stat') && 'needs Linux /proc' }, async () => {
  // `sleep 0` exits at once, and its parent, exec'd into `sleep 30`, never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (data: Buffer) => resolve(data.toString()))));
    while (!/\) Z/.test(await readFile(`/proc/${zombie}/stat`, 'utf8'))) await new Promise((resolve) => setTimeout(resolve, 10));
    const lockPath = join(dir, 'zombie.lock');
    await writeFile(lockPath, JSON.stringify({ pid: zombie, host: hostname(), token: 'exited' }));
    const { lines, logger } = recordingLogger();
    assert.equal(await withFileLock(lockPath, async () => 'ran', { maxWaitMs: 2_000, logger }), 'ran');
    assert.deepEqual(lines, [`${lockPath}: process ${zombie} on ${hostname()}, which held it, is gone; taking the lock over`]);
  } finally {
    parent.kill();
  }
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
