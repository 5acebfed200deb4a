import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, lstat, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import test, { after, before } from 'node:test';
import { downloadFile, type DownloadOptions } from '../src/net/download.js';
import { withFileLock } from '../src/net/file-lock.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { makeTempDir } from './support/paths.js';
import { rejectsWithOneLine } from './support/errors.js';

const content = randomBytes(300_000);
const md5 = createHash('md5').update(content).digest('hex');
const sha256 = createHash('sha256').update(content).digest('hex');

let server: TestServer;
let root: string;
let serial = 0;

before(async () => {
  server = await startTestServer();
  root = await makeTempDir('clip-eval-download-');
});

after(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

/** A fresh route path and destination for each test, so that tests cannot see each other's files. */
function fresh(): { path: string; destination: string } {
  serial += 1;
  return { path: `/file-${serial}.bin`, destination: join(root, `case-${serial}`, 'file.bin') };
}

function options(path: string, destination: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return { url: server.url(path), destination, quiet: true, retryDelayMs: 10, timeoutMs: 5_000, ...extra };
}

/** Files left beside the destination (a .part, .lock or temporary file would show here). */
async function siblings(destination: string): Promise<string[]> {
  const folder = dirname(destination);
  return existsSync(folder) ? (await readdir(folder)).sort() : [];
}

test('downloads, verifies size, md5 and sha256, then serves the file from the cache', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  const first = await downloadFile(options(path, destination, { expectedSize: content.length, md5, sha256 }));
  assert.deepEqual(first, { path: destination, bytes: content.length, fromCache: false, resumed: false });
  assert.ok((await readFile(destination)).equals(content));
  assert.deepEqual(await siblings(destination), ['file.bin']);

  const second = await downloadFile(options(path, destination, { expectedSize: content.length, md5 }));
  assert.equal(second.fromCache, true);
  assert.equal(server.count(path), 1, 'a cached file is not fetched again');
});

test('resumes with a Range request after the server cuts the connection half-way', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, cutAfterBytes: 120_000 });
  const result = await downloadFile(options(path, destination, { md5 }));
  assert.equal(result.resumed, true);
  assert.ok((await readFile(destination)).equals(content));
  // The client may lose what it had received but not yet written when the connection died.
  const [firstRange, resumeRange, ...more] = server.requests.filter((r) => r.path === path).map((r) => r.headers.range);
  assert.equal(firstRange, undefined);
  const offset = Number(/^bytes=(\d+)-$/.exec(resumeRange ?? '')?.[1]);
  assert.ok(offset > 0 && offset <= 120_000, `resumed at ${resumeRange}`);
  assert.deepEqual(more, []);
});

test('a cut on a `Connection: close` answer (Content-Length or chunked, as HTTP/1.0 mirrors send) is resumed', async () => {
  for (const framing of ['length', 'chunked'] as const) {
    const { path, destination } = fresh();
    await server.route(path, { body: content, framing, connectionClose: true, cutAfterBytes: 120_000 });
    const result = await downloadFile(options(path, destination));
    assert.equal(result.resumed, true, framing);
    assert.ok((await readFile(destination)).equals(content), framing);
    assert.match(server.requests.filter((r) => r.path === path).at(-1)?.headers.range ?? '', /^bytes=\d+-$/, framing);
  }
  const { path, destination } = fresh();
  await server.route(path, { body: content, connectionClose: true, cutAfterBytes: 120_000 });
  await rejectsWithOneLine(downloadFile(options(path, destination, { retries: 0 })), /: the connection closed after \d+ of 300000 bytes$/);
  const { path: chunked, destination: chunkedDestination } = fresh();
  await server.route(chunked, { body: content, framing: 'chunked', connectionClose: true, cutAfterBytes: 120_000 });
  await rejectsWithOneLine(
    downloadFile(options(chunked, chunkedDestination, { retries: 0 })),
    /: the connection closed after \d+ bytes, before the end of the file$/,
  );
});

test('a body that only the connection close ends is confirmed by a Range request before it is kept', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, framing: 'close', cutAfterBytes: 120_000 });
  const result = await downloadFile(options(path, destination));
  assert.ok((await readFile(destination)).equals(content), 'the cut file is completed, not cached short');
  assert.equal(result.resumed, true);
  // The 206 names the whole size, so the resumed part is checked against it.
  const [first, confirm, ...more] = server.requests.filter((r) => r.path === path).map((r) => r.headers.range);
  assert.equal(first, undefined);
  assert.match(confirm ?? '', /^bytes=\d+-$/);
  assert.deepEqual(more, []);

  const { path: whole, destination: wholeDestination } = fresh();
  await server.route(whole, { body: content, framing: 'close' });
  assert.equal((await downloadFile(options(whole, wholeDestination))).resumed, false);
  assert.deepEqual(
    server.requests.filter((r) => r.path === whole).map((r) => r.headers.range),
    [undefined, `bytes=${content.length}-`],
    'the end is confirmed by a 416 naming the size already there',
  );

  const { path: empty, destination: emptyDestination } = fresh();
  await server.route(empty, { body: '', framing: 'close' });
  assert.equal((await downloadFile(options(empty, emptyDestination))).bytes, 0);
  assert.deepEqual(server.requests.filter((r) => r.path === empty).map((r) => r.headers.range), [undefined, 'bytes=0-']);
});

test('a body without a length from a server that ignores Range is kept only when a checksum vouches for it', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, framing: 'close', ignoreRange: true, cutAfterBytes: 120_000 });
  const error = await rejectsWithOneLine(
    downloadFile(options(path, destination)),
    /: the server sent \d+ bytes without saying how many there are and ignores range requests, so a cut could not be told from the end; nothing was kept$/,
  );
  assert.equal(error.exitCode, 3);
  assert.deepEqual(await siblings(destination), [], 'nothing cached, no .part left');

  const { path: vouched, destination: vouchedDestination } = fresh();
  await server.route(vouched, { body: content, framing: 'close', ignoreRange: true });
  await downloadFile(options(vouched, vouchedDestination, { md5 }));
  assert.ok((await readFile(vouchedDestination)).equals(content));
});

test('a later run resumes the .part file that a failed run left behind', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, cutAfterBytes: 100_000 });
  await rejectsWithOneLine(downloadFile(options(path, destination, { md5, retries: 0 })), /could not download .*file-\d+\.bin/);
  assert.equal(existsSync(destination), false, 'nothing at the destination after a failed download');
  const part = await readFile(`${destination}.part`);
  assert.ok(part.length > 0 && part.length <= 100_000, `.part holds ${part.length} bytes`);
  assert.ok(part.equals(content.subarray(0, part.length)));
  assert.equal(existsSync(`${destination}.lock`), false);

  const result = await downloadFile(options(path, destination, { md5 }));
  assert.equal(result.resumed, true);
  assert.ok((await readFile(destination)).equals(content));
  assert.equal(server.requests.filter((r) => r.path === path).at(-1)?.headers.range, `bytes=${part.length}-`);
});

test('restarts cleanly from zero when the server ignores Range', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, cutAfterBytes: 150_000, ignoreRange: true });
  const result = await downloadFile(options(path, destination, { md5, expectedSize: content.length }));
  assert.equal(result.resumed, false);
  assert.ok((await readFile(destination)).equals(content), 'no bytes appended twice');
  assert.equal(server.count(path), 2);
});

test('a .part file that does not fit the file is discarded and the download starts again', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  await mkdir(dirname(destination), { recursive: true });
  await writeFile(`${destination}.part`, Buffer.alloc(1_000, 7));
  const result = await downloadFile(options(path, destination, { md5 }));
  assert.equal(result.resumed, false);
  assert.ok((await readFile(destination)).equals(content));
  assert.deepEqual(server.requests.filter((r) => r.path === path).map((r) => r.headers.range), ['bytes=1000-', undefined]);

  const { path: shorter, destination: longer } = fresh();
  await server.route(shorter, { body: content });
  await mkdir(dirname(longer), { recursive: true });
  await writeFile(`${longer}.part`, Buffer.alloc(content.length + 10));
  await downloadFile(options(shorter, longer, { md5 }));
  assert.ok((await readFile(longer)).equals(content), 'a 416 answer to the resume request restarts from zero');
  assert.deepEqual(server.requests.filter((r) => r.path === shorter).map((r) => r.headers.range), [`bytes=${content.length + 10}-`, undefined]);
});

test('rejects a wrong md5 or sha256 and caches nothing', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  const wrongMd5 = md5.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  await rejectsWithOneLine(downloadFile(options(path, destination, { md5: wrongMd5 })), new RegExp(`md5 ${md5}, expected ${wrongMd5}`));
  assert.deepEqual(await siblings(destination), []);
  await rejectsWithOneLine(downloadFile(options(path, destination, { sha256: '0'.repeat(64) })), /sha256 .*expected 0{64}/);
  assert.deepEqual(await siblings(destination), []);
});

test('rejects a file of the wrong size', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  await rejectsWithOneLine(downloadFile(options(path, destination, { expectedSize: content.length + 1 })), /offers 300000 bytes, expected 300001/);
  assert.equal(existsSync(destination), false);
});

test('an HTTP error fails at once with the URL, the status and the hint', async () => {
  const { path, destination } = fresh();
  await server.route(path, { status: 404 });
  const error = await rejectsWithOneLine(
    downloadFile(options(path, destination, { hint: 'use --data-dir' })),
    new RegExp(`could not download ${server.url(path)}: HTTP 404 Not Found; use --data-dir$`),
  );
  assert.equal(error.exitCode, 3);
  assert.equal(server.count(path), 1, 'a 404 is not retried');
  assert.deepEqual(await siblings(destination), []);
});

test('retries transient server errors with back-off', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, status: 503, statusTimes: 2 });
  const result = await downloadFile(options(path, destination, { md5 }));
  assert.equal(result.bytes, content.length);
  assert.equal(server.count(path), 3);

  const { path: failing, destination: failed } = fresh();
  await server.route(failing, { status: 503 });
  await rejectsWithOneLine(downloadFile(options(failing, failed, { retries: 2 })), /HTTP 503 Service Unavailable \(3 attempts\)/);
});

test('a stalled transfer times out and resumes', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content, stallAfterBytes: 50_000 });
  const result = await downloadFile(options(path, destination, { md5, timeoutMs: 300 }));
  assert.equal(result.resumed, true);
  assert.ok((await readFile(destination)).equals(content));

  const { path: silent, destination: stalled } = fresh();
  await server.route(silent, { body: content, stallAfterBytes: 0 });
  await rejectsWithOneLine(downloadFile(options(silent, stalled, { timeoutMs: 200, retries: 0 })), /no data for 0\.2 s \(timed out\)/);
});

test('a trickling server is cut off by the minimum-rate rule, resumed, and the lock released', { timeout: 30_000 }, async () => {
  const { path, destination } = fresh();
  // 1 byte every 20 ms never trips the 5 s idle time-out, and would take 100 minutes.
  await server.route(path, { body: content, trickle: { bytes: 1, everyMs: 20 } });
  const error = await rejectsWithOneLine(
    downloadFile(options(path, destination, { retries: 1, minBytesPerWindow: 1_000, rateWindowMs: 300 })),
    /could not download .*: too slow: \d+ bytes in 0\.3 s, under the minimum of 1000 bytes per 0\.3 s \(2 attempts\)/,
  );
  assert.equal(error.exitCode, 3);
  const [first, second] = server.requests.filter((r) => r.path === path).map((r) => r.headers.range);
  assert.equal(first, undefined);
  assert.match(second ?? '', /^bytes=\d+-$/, 'the second attempt resumes what trickled in');
  assert.equal(existsSync(`${destination}.lock`), false, 'the lock is released for the processes waiting behind it');
});

test('a trickle that passes the minimum rate still meets the deadline its size sets, which the error states', { timeout: 30_000 }, async () => {
  const { path, destination } = fresh();
  // 3,000 bytes every 20 ms passes a minimum of 1,000 bytes per 300 ms, but takes 2 s for the file.
  await server.route(path, { body: content, trickle: { bytes: 3_000, everyMs: 20 } });
  const error = await rejectsWithOneLine(
    downloadFile(options(path, destination, { minBytesPerWindow: 1_000, rateWindowMs: 300, minAverageBytesPerSecond: 1_000_000, deadlineGraceMs: 200 })),
    /: too slow: \d+ of 300000 bytes in 0\.\d s, past the deadline of 0\.5 s \(0\.2 s, plus 300000 bytes at the minimum average rate of 1000000 bytes\/s\)$/,
  );
  assert.equal(error.exitCode, 3);
  assert.equal(server.count(path), 1, 'a deadline is for all attempts: not retried');
  assert.equal(existsSync(destination), false);
  assert.equal(existsSync(`${destination}.lock`), false);
});

test('a 416 to a request without Range is an HTTP error, not a refused resume', async () => {
  const { path, destination } = fresh();
  await server.route(path, { status: 416 });
  await rejectsWithOneLine(downloadFile(options(path, destination)), /: HTTP 416 Range Not Satisfiable$/);
  assert.equal(server.count(path), 1);
});

test('the access hint is given for a 401 or 403 only, the general hint for other failures', async () => {
  const hints = { hint: 'use a mirror', accessHint: 'set HF_TOKEN' };
  const { path, destination } = fresh();
  await server.route(path, { status: 403 });
  await rejectsWithOneLine(downloadFile(options(path, destination, hints)), /: HTTP 403 Forbidden; set HF_TOKEN$/);
  const { path: cut, destination: cutDestination } = fresh();
  await server.route(cut, { body: content, connectionClose: true, cutAfterBytes: 1_000 });
  await rejectsWithOneLine(downloadFile(options(cut, cutDestination, { ...hints, retries: 0 })), /: the connection closed after \d+ of 300000 bytes; use a mirror$/);
});

test('a download refuses a symlink, hard link or folder planted at its .part or final path', async () => {
  const outside = join(root, 'outside.txt');
  await writeFile(outside, 'precious');
  const planted = async (suffix: string, plant: (at: string) => Promise<void>, pattern: RegExp) => {
    const { path, destination } = fresh();
    await server.route(path, { body: content });
    await mkdir(dirname(destination), { recursive: true });
    await plant(`${destination}${suffix}`);
    const error = await rejectsWithOneLine(downloadFile(options(path, destination, { md5 })), pattern);
    assert.equal(error.exitCode, 3);
    return { path, destination };
  };
  await planted('.part', (at) => symlink(outside, at), /file\.bin\.part: is a symbolic link, not a partial download of this tool; remove it/);
  const dangling = join(root, 'created-through-link');
  await planted('.part', (at) => symlink(dangling, at), /file\.bin\.part: is a symbolic link/);
  assert.equal(existsSync(dangling), false, 'nothing created through a dangling link');
  await planted('.part', (at) => link(outside, at), /file\.bin\.part: has 2 hard links, not a partial download of this tool; remove it/);
  assert.equal(await readFile(outside, 'utf8'), 'precious', 'the link target is untouched');

  const { destination } = await planted('', (at) => symlink(dangling, at), /case-\d+\/file\.bin: is a symbolic link, not a file this tool downloaded; remove it/);
  assert.ok((await lstat(destination)).isSymbolicLink(), 'the link is not replaced');
  assert.equal(existsSync(dangling), false);
  await planted('', (at) => mkdir(at), /case-\d+\/file\.bin: is a folder, not a file this tool downloaded; remove it/);
});

test('a download waiting for a held lock gives up in time, naming the holder', { timeout: 20_000 }, async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  await mkdir(dirname(destination), { recursive: true });
  await withFileLock(`${destination}.lock`, () =>
    rejectsWithOneLine(
      downloadFile(options(path, destination, { lockWaitMs: 300 })),
      new RegExp(`file\\.bin\\.lock: is held by process ${process.pid} on ${hostname()} \\(file\\.bin\\); gave up after 0\\.3 s`),
    ),
  );
  assert.equal(server.count(path), 0);
});

test('follows redirects and keeps credentials on the same origin only', async () => {
  const other = await startTestServer();
  try {
    const { path, destination } = fresh();
    await server.route(path, { redirectTo: '/hop' });
    await server.route('/hop', { redirectTo: other.url('/target') });
    await other.route('/target', { body: content });
    const result = await downloadFile(options(path, destination, { md5, headers: { Authorization: 'Bearer secret' } }));
    assert.equal(result.bytes, content.length);
    const hop = server.requests.find((r) => r.path === '/hop');
    assert.equal(hop?.headers.authorization, 'Bearer secret');
    assert.equal(other.requests[0]?.headers.authorization, undefined, 'no token sent to another origin');
  } finally {
    await other.close();
  }
});

test('offline mode uses a cached file and refuses to download a missing one', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  await rejectsWithOneLine(downloadFile(options(path, destination, { offline: true })), /not in the cache and offline mode forbids downloading/);
  assert.equal(server.count(path), 0);
  await downloadFile(options(path, destination));
  const cached = await downloadFile(options(path, destination, { offline: true }));
  assert.equal(cached.fromCache, true);
});

test('rejects bad options with usage errors', async () => {
  const { destination } = fresh();
  for (const [extra, pattern] of [
    [{ url: 'ftp://example.org/x' }, /only http:\/\/ and https:\/\//],
    [{ url: 'not a url' }, /invalid download URL/],
    [{ md5: 'abc' }, /invalid md5 checksum "abc"/],
    [{ expectedSize: -1 }, /expected size/],
    [{ retries: 1.5 }, /retries/],
  ] as const) {
    const error = await rejectsWithOneLine(downloadFile({ ...options('/x', destination), ...extra }), pattern);
    assert.equal(error.exitCode, 2);
  }
});

test('concurrent downloads of one file fetch it once', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  const results = await Promise.all([1, 2, 3].map(() => downloadFile(options(path, destination, { md5 }))));
  assert.equal(server.count(path), 1);
  assert.deepEqual(results.map((r) => r.fromCache).sort(), [false, true, true]);
  assert.ok((await readFile(destination)).equals(content));
  assert.deepEqual(await siblings(destination), ['file.bin']);
});

test('a lock left by a dead process is broken; a live one is waited for', async () => {
  const { path, destination } = fresh();
  await server.route(path, { body: content });
  const child = spawn(process.execPath, ['-e', '']);
  const deadPid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
  await mkdir(dirname(destination), { recursive: true });
  await writeFile(`${destination}.lock`, JSON.stringify({ pid: deadPid, host: hostname(), token: 'stale' }));
  const result = await downloadFile(options(path, destination, { md5 }));
  assert.equal(result.fromCache, false);
  assert.equal(existsSync(`${destination}.lock`), false);

  const lockPath = join(root, 'live.lock');
  const order: string[] = [];
  await Promise.all([
    withFileLock(lockPath, async () => {
      order.push('first in');
      await new Promise((resolve) => setTimeout(resolve, 300));
      order.push('first out');
    }),
    new Promise((resolve) => setTimeout(resolve, 50)).then(() => withFileLock(lockPath, async () => void order.push('second'))),
  ]);
  assert.deepEqual(order, ['first in', 'first out', 'second']);
});
