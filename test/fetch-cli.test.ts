import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import test, { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { cifar100Members, writeTarGz } from '../scripts/lib/cifar-archive.js';
import { startTestServer, type Route, type TestServer } from './support/http-server.js';
import { startSilentProxy } from './support/http-proxy.js';
import { runCli, type CliRun } from './support/cli.js';
import { cliPath, makeTempDir } from './support/paths.js';

const RECORD_BYTES = 3074;
const RECORDS = 40;
const fineNames = Array.from({ length: 100 }, (_, i) => `class_${i}`);
const coarseNames = Array.from({ length: 20 }, (_, i) => `group_${i}`);

/** Records with labels (i % 100, i % 20) and noisy pixels, so that the archive does not shrink to nothing. */
function records(count: number, badLabelAt?: number): Uint8Array {
  const bytes = new Uint8Array(count * RECORD_BYTES);
  let state = 12345;
  for (let i = 0; i < count; i += 1) {
    bytes[i * RECORD_BYTES] = i % 20;
    bytes[i * RECORD_BYTES + 1] = i === badLabelAt ? 100 : i % 100;
    for (let p = 2; p < RECORD_BYTES; p += 1) {
      state = (state * 1103515245 + 12345) >>> 0;
      bytes[i * RECORD_BYTES + p] = state >>> 24;
    }
  }
  return bytes;
}

let server: TestServer;
let work: string;
let goodArchive: Buffer;
let serial = 0;

before(async () => {
  server = await startTestServer();
  work = await makeTempDir('clip-eval-fetch-cli-');
  goodArchive = await archive(records(RECORDS));
});

after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

async function archive(testBin: Uint8Array): Promise<Buffer> {
  serial += 1;
  const path = join(work, `archive-${serial}.tar.gz`);
  await writeTarGz(path, cifar100Members(testBin, fineNames, coarseNames));
  return readFile(path);
}

function md5Of(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

async function serve(body: Uint8Array, misbehaviour: Omit<Route, 'body' | 'file'> = {}) {
  serial += 1;
  const path = `/${serial}/cifar-100-binary.tar.gz`;
  await server.route(path, { body, ...misbehaviour });
  return { path, url: server.url(path), cacheDir: join(work, `cache-${serial}`) };
}

/** Variables that would steer the CLI away from the arguments given are blanked. */
const neutralEnv = { CLIP_EVAL_DATASET_URL: '', CLIP_EVAL_CACHE: '' };

function runFetch(args: string[]): Promise<CliRun> {
  return runCli(args, { env: neutralEnv });
}

function fetchArgs(url: string, cacheDir: string, ...extra: string[]): string[] {
  return ['fetch', 'cifar100', '--dataset-url', url, '--cache-dir', cacheDir, ...extra];
}

/** The data set folders in a cache: none after any failure, exactly one after a success. */
async function cachedFolders(cacheDir: string): Promise<string[]> {
  const folder = join(cacheDir, 'datasets');
  return existsSync(folder) ? (await readdir(folder)).sort() : [];
}

function assertOneLineError(run: CliRun, exitCode: number, pattern: RegExp): void {
  assert.equal(run.code, exitCode, run.stderr);
  assert.equal(run.stdout, '');
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${run.stderr}`);
  assert.match(lines[0]!, pattern);
}

test('fetch cifar100 from a local mirror fills the cache, then works offline', async () => {
  const { url, path, cacheDir } = await serve(goodArchive);
  const run = await runFetch(fetchArgs(url, cacheDir, '--dataset-md5', md5Of(goodArchive)));
  assert.equal(run.code, 0, run.stderr);
  const directory = join(cacheDir, 'datasets', `cifar100-md5-${md5Of(goodArchive).slice(0, 12)}`);
  assert.equal(run.stdout, `cifar100: ${directory}\n`);
  assert.match(run.stderr, /CIFAR-100 archive: 100% /, 'a plain progress line when stderr is not a terminal');
  assert.equal((await stat(join(directory, 'test.bin'))).size, RECORDS * RECORD_BYTES);

  const offline = await runFetch(fetchArgs(url, cacheDir, '--dataset-md5', md5Of(goodArchive), '--offline', '--quiet'));
  assert.equal(offline.code, 0, offline.stderr);
  assert.equal(offline.stderr, '');
  assert.equal(server.count(path), 1);
});

test('every failed fetch prints one line, exits non-zero and leaves the cache usable', async () => {
  const badLabel = await archive(records(RECORDS, 7));
  const truncated = goodArchive.subarray(0, goodArchive.length - 200);
  const cases: [string, Uint8Array, string[], number, RegExp][] = [
    ['wrong md5', goodArchive, ['--dataset-md5', '0'.repeat(32)], 3, /md5 [0-9a-f]{32}, expected 0{32}; the download was discarded/],
    ['truncated archive', truncated, ['--dataset-md5', md5Of(truncated)], 3, /is not a complete, valid tar archive/],
    ['label 100', badLabel, ['--dataset-md5', md5Of(badLabel)], 3, /cifar-100-binary\/test\.bin in http:\S+: record 7 has label 100, outside 0-99/],
    ['HTTP 404', goodArchive, ['--dataset-md5', md5Of(goodArchive)], 3, /could not download http:\S+: HTTP 404 Not Found; .*--data-dir/],
    ['offline, empty cache', goodArchive, ['--dataset-md5', md5Of(goodArchive), '--offline'], 3, /--offline: CIFAR-100 is not in the cache/],
    ['bad URL', goodArchive, ['--dataset-md5', md5Of(goodArchive)], 2, /ftp:\/\/example\.org\/x/],
  ];
  const cacheDir = join(work, 'cache-errors');
  for (const [name, body, extra, exitCode, pattern] of cases) {
    const { url } = await serve(body, name === 'HTTP 404' ? { status: 404 } : {});
    const target = name === 'bad URL' ? 'ftp://example.org/x' : url;
    const run = await runFetch([...fetchArgs(target, cacheDir, '--quiet'), ...extra]);
    assertOneLineError(run, exitCode, pattern);
    assert.deepEqual(await cachedFolders(cacheDir), [], `${name}: nothing cached`);
  }
  const { url } = await serve(goodArchive);
  const good = await runFetch(fetchArgs(url, cacheDir, '--quiet', '--dataset-md5', md5Of(goodArchive)));
  assert.equal(good.code, 0, `a good fetch into the same cache works afterwards: ${good.stderr}`);
});

test('a mirror that closes the connection mid-file (HTTP/1.0 style, or Connection: close) is resumed in the same run', async () => {
  const half = Math.floor(goodArchive.length / 2);
  for (const misbehaviour of [{ framing: 'close' }, { connectionClose: true }, { framing: 'chunked', connectionClose: true }] as const) {
    const { url, path, cacheDir } = await serve(goodArchive, { ...misbehaviour, cutAfterBytes: half });
    const run = await runFetch(fetchArgs(url, cacheDir, '--quiet', '--dataset-md5', md5Of(goodArchive)));
    assert.equal(run.code, 0, `${JSON.stringify(misbehaviour)}: ${run.stderr}`);
    assert.match(server.requests.filter((r) => r.path === path)[1]?.headers.range ?? '', /^bytes=\d+-$/, JSON.stringify(misbehaviour));
    assert.equal((await cachedFolders(cacheDir)).length, 1);
  }
});

test('a first run that cannot reach the hub points to a local model folder and the fixture, not only to --offline', async () => {
  const closed = await startTestServer();
  const endpoint = closed.origin;
  await closed.close();
  const run = await runCli(['fetch', 'model', '--model', 'acme/tiny', '--cache-dir', join(work, 'cache-unreachable'), '--quiet'], {
    env: { ...neutralEnv, HF_ENDPOINT: endpoint, HTTPS_PROXY: '', HTTP_PROXY: '', https_proxy: '', http_proxy: '' },
  });
  assertOneLineError(
    run,
    3,
    /^clip-eval: cannot reach http:\/\/127\.0\.0\.1:\d+ for acme\/tiny@main .*; or use --offline with a cached model, or --model DIR with a model folder on disk \(a first run has nothing cached; `npm run fixture -- --out DIR` in a checkout writes a small one\)$/,
  );
});

test('behind an HTTPS proxy that never answers, fetch ends with exit 3 after the 30 s time-out, not undici\'s 300 s per attempt', { timeout: 150_000 }, async () => {
  const silent = await startSilentProxy();
  try {
    const proxyEnv = { HTTPS_PROXY: silent.origin, https_proxy: '', HTTP_PROXY: '', http_proxy: '', NO_PROXY: '', no_proxy: '' };
    const run = await runCli(fetchArgs('https://127.0.0.1:9/cifar-100-binary.tar.gz', join(work, 'cache-silent-proxy'), '--quiet', '--dataset-md5', md5Of(goodArchive)), {
      env: { ...neutralEnv, ...proxyEnv },
      timeoutMs: 120_000,
    });
    assert.equal(run.signal, null, 'the run ended by itself within 2 minutes');
    assertOneLineError(run, 3, /the proxy did not answer the tunnel \(CONNECT\) request within 30 s; check HTTPS_PROXY and NO_PROXY/);
    assert.equal(silent.requests.length, 1);
  } finally {
    await silent.close();
  }
});

test('two concurrent fetch processes share one download', async () => {
  const { url, path, cacheDir } = await serve(goodArchive);
  const args = fetchArgs(url, cacheDir, '--quiet', '--dataset-md5', md5Of(goodArchive));
  const runs = await Promise.all([runFetch(args), runFetch(args)]);
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  assert.equal(runs[0]!.stdout, runs[1]!.stdout);
  assert.equal(server.count(path), 1);
  assert.equal((await cachedFolders(cacheDir)).length, 1);
});

test('a fetch killed mid-download is resumed by the next process', async () => {
  const half = Math.floor(goodArchive.length / 2);
  const { url, path, cacheDir } = await serve(goodArchive, { stallAfterBytes: half });
  const args = fetchArgs(url, cacheDir, '--quiet', '--dataset-md5', md5Of(goodArchive));
  const part = join(cacheDir, 'datasets', `cifar100-md5-${md5Of(goodArchive).slice(0, 12)}.tar.gz.part`);
  const first = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...neutralEnv }, stdio: 'ignore' });
  const exited = new Promise((resolve) => first.on('close', resolve));
  const deadline = Date.now() + 15_000;
  while (!(existsSync(part) && (await stat(part)).size === half)) {
    assert.ok(Date.now() < deadline, 'the first process did not write half of the archive in time');
    await sleep(50);
  }
  first.kill('SIGKILL');
  await exited;
  assert.ok(existsSync(`${part.slice(0, -'.tar.gz.part'.length)}.lock`), 'the killed process left its lock behind');

  const second = await runFetch(args);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(server.requests.filter((r) => r.path === path).at(-1)?.headers.range, `bytes=${half}-`);
  assert.equal(existsSync(part), false);
  assert.equal((await cachedFolders(cacheDir)).length, 1);
});

/** Runs the CLI like runFetch, but kills it after `timeoutMs`: for runs that could hang. */
function runFetchWithin(args: string[], timeoutMs: number): Promise<CliRun> {
  return runCli(args, { env: neutralEnv, timeoutMs });
}

test('data after the tar end marker is not read: 64 MiB of trailing zeros extract at once, and the archive is not kept', async () => {
  // Enough incompressible records that the whole stays far below any decompression-ratio bound.
  const tar = gunzipSync(await archive(records(200)));
  const padded = gzipSync(Buffer.concat([tar, Buffer.alloc(64 * 1024 * 1024)]));
  const { url, cacheDir } = await serve(padded);
  // Reading past the end marker took minutes here (quadratic buffering); the bound is generous.
  const run = await runFetchWithin(fetchArgs(url, cacheDir, '--quiet'), 30_000);
  assert.equal(run.signal, null, `the fetch hung and was killed (stderr: ${run.stderr})`);
  assert.equal(run.code, 0, run.stderr);
  const [folder, ...others] = await cachedFolders(cacheDir);
  assert.deepEqual(others, [], 'only the extracted folder: no archive, no staging folder left');
  assert.equal((await stat(join(cacheDir, 'datasets', folder!, 'test.bin'))).size, 200 * RECORD_BYTES);
});
