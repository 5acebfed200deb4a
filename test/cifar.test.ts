import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import test, { after, before } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { cifar100Members, cifar10Members, writeTarGz, type ArchiveMembers } from '../scripts/lib/cifar-archive.js';
import { CIFAR100_COARSE_NAMES, CIFAR100_FINE_TO_COARSE, CIFAR100_RAW_NAMES, CIFAR10_NAMES } from '../src/datasets/cifar/class-names.js';
import { fetchCifar, loadCifarTestSet, parseCifarTestSet, type CifarLoadOptions } from '../src/datasets/cifar/cifar.js';
import { ClipEvalError } from '../src/core/errors.js';
import { createLogger } from '../src/core/log.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { makeTempDir, needsShared, sharedPath } from './support/paths.js';
import { rejectsWithOneLine } from './support/errors.js';
import { runNode, type CliRun } from './support/cli.js';

const PIXELS = 3072;
const FINE_LABELS = [0, 1, 41, 99, 58, 19, 83];

/** CIFAR-100 records with the given fine labels (coarse from the official mapping) and distinct pixels. */
function cifar100Records(fineLabels: number[]): Uint8Array {
  const records = new Uint8Array(fineLabels.length * (2 + PIXELS));
  fineLabels.forEach((fine, i) => {
    const offset = i * (2 + PIXELS);
    records[offset] = CIFAR100_FINE_TO_COARSE[fine]!;
    records[offset + 1] = fine;
    for (let p = 0; p < PIXELS; p += 1) records[offset + 2 + p] = (i * 31 + p * 7) & 255;
  });
  return records;
}

function cifar10Records(labels: number[]): Uint8Array {
  const records = new Uint8Array(labels.length * (1 + PIXELS));
  labels.forEach((label, i) => {
    records[i * (1 + PIXELS)] = label;
    for (let p = 0; p < PIXELS; p += 1) records[i * (1 + PIXELS) + 1 + p] = (i * 13 + p * 5) & 255;
  });
  return records;
}

const testBin = cifar100Records(FINE_LABELS);
const fineText = `${CIFAR100_RAW_NAMES.join('\n')}\n`;
const coarseText = `${CIFAR100_COARSE_NAMES.join('\n')}\n`;
const names = { testBin: 'test.bin', classes: 'fine_label_names.txt', coarse: 'coarse_label_names.txt' };

interface RawEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link';
  body?: Uint8Array;
  linkpath?: string;
}

/** A .tar.gz written block by block, for members that tar's own packer would not produce. */
function rawTarGz(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? new Uint8Array());
    const header = new Header({ path: entry.path, type: entry.type ?? 'File', size: body.length, mode: 0o644, mtime: new Date(0), linkpath: entry.linkpath });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

function md5Of(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

function sha256Of(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

let server: TestServer;
let work: string;
let goodArchive: Buffer;
let serial = 0;

before(async () => {
  server = await startTestServer();
  work = await makeTempDir('clip-eval-cifar-');
  const path = join(work, 'good.tar.gz');
  await writeTarGz(path, cifar100Members(testBin, CIFAR100_RAW_NAMES, CIFAR100_COARSE_NAMES));
  goodArchive = await readFile(path);
});

after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

/** A fresh cache root and a served archive path for one test. */
async function serve(archive: Uint8Array): Promise<{ url: string; path: string; cacheRoot: string }> {
  serial += 1;
  const path = `/mirror-${serial}/cifar-100-binary.tar.gz`;
  await server.route(path, { body: archive });
  return { url: server.url(path), path, cacheRoot: join(work, `cache-${serial}`) };
}

async function archiveOf(members: ArchiveMembers): Promise<Buffer> {
  serial += 1;
  const path = join(work, `archive-${serial}.tar.gz`);
  await writeTarGz(path, members);
  return readFile(path);
}

/** Everything under the cache's datasets folder: empty after a refused fetch, one folder after a good one. */
async function cacheEntries(cacheRoot: string): Promise<string[]> {
  const folder = join(cacheRoot, 'datasets');
  return existsSync(folder) ? (await readdir(folder)).sort() : [];
}

function quietOptions(cacheRoot: string, extra: Partial<CifarLoadOptions> = {}): CifarLoadOptions {
  return { cacheRoot, quiet: true, ...extra };
}

test('parses CIFAR-100 records: labels, coarse labels, planar pixels, cleaned and raw names', () => {
  const set = parseCifarTestSet('cifar100', testBin, { classes: fineText, coarse: coarseText }, names);
  assert.equal(set.count, FINE_LABELS.length);
  assert.equal(set.imageSize, 32);
  assert.deepEqual([...set.labels], FINE_LABELS);
  assert.deepEqual([...set.coarseLabels!], FINE_LABELS.map((fine) => CIFAR100_FINE_TO_COARSE[fine]));
  assert.equal(set.images.length, FINE_LABELS.length * PIXELS);
  for (let i = 0; i < set.count; i += 1) {
    const record = testBin.subarray(i * 3074 + 2, (i + 1) * 3074);
    assert.deepEqual(set.images.subarray(i * PIXELS, (i + 1) * PIXELS), record, `image ${i}`);
  }
  assert.deepEqual(set.rawClassNames, CIFAR100_RAW_NAMES);
  assert.deepEqual(set.coarseClassNames, CIFAR100_COARSE_NAMES);
  const cleaned = ['aquarium fish', 'lawn mower', 'maple tree', 'oak tree', 'palm tree', 'pickup truck', 'pine tree', 'sweet pepper', 'willow tree'];
  for (const name of cleaned) assert.equal(set.classNames[CIFAR100_RAW_NAMES.indexOf(name.replace(' ', '_'))], name);
  assert.equal(set.classNames.filter((name) => name.includes('_')).length, 0);
});

test('cleaned CIFAR-100 names equal the reference prompt list', { skip: needsShared('reference/cifar100-prompts.json') }, async () => {
  const reference = JSON.parse(await readFile(sharedPath('reference/cifar100-prompts.json'), 'utf8')) as { classes: string[] };
  const set = parseCifarTestSet('cifar100', testBin, { classes: fineText, coarse: coarseText }, names);
  assert.deepEqual(set.classNames, reference.classes);
});

test('parses CIFAR-10 records and batches.meta.txt with its trailing blank lines', () => {
  const records = cifar10Records([3, 9, 0]);
  const set = parseCifarTestSet('cifar10', records, { classes: `${CIFAR10_NAMES.join('\n')}\n\n` }, { testBin: 'test_batch.bin', classes: 'batches.meta.txt' });
  assert.equal(set.count, 3);
  assert.deepEqual([...set.labels], [3, 9, 0]);
  assert.equal(set.coarseLabels, undefined);
  assert.deepEqual(set.classNames, CIFAR10_NAMES);
  assert.deepEqual(set.images.subarray(PIXELS, 2 * PIXELS), records.subarray(3073 + 1, 2 * 3073));
});

test('rejects damaged test files and label files with an error naming the file', () => {
  const parse = (bin: Uint8Array, classes = fineText, coarse = coarseText) =>
    () => parseCifarTestSet('cifar100', bin, { classes, coarse }, names);
  const withByte = (index: number, value: number) => {
    const copy = testBin.slice();
    copy[index] = value;
    return copy;
  };
  const cases: [() => unknown, RegExp][] = [
    [parse(testBin.subarray(0, testBin.length - 1)), /^test\.bin has 21517 bytes, not a whole number of CIFAR-100 records of 3074 bytes/],
    [parse(new Uint8Array()), /^test\.bin has 0 bytes/],
    [parse(withByte(3074 * 2 + 1, 100)), /^test\.bin: record 2 has label 100, outside 0-99/],
    [parse(withByte(3074 * 4, 20)), /^test\.bin: record 4 has coarse label 20, outside 0-19/],
    [parse(testBin, CIFAR100_RAW_NAMES.slice(1).join('\n')), /^fine_label_names\.txt has 99 class names, expected 100/],
    [parse(testBin, fineText.replace('bear\n', '\n')), /^fine_label_names\.txt: line 4 is empty/],
    [parse(testBin, fineText.replace('bear\n', 'baby\n')), /^fine_label_names\.txt: class name "baby" appears on lines 3 and 4/],
    [parse(testBin, fineText, ''), /^coarse_label_names\.txt has 0 class names, expected 20/],
    [() => parseCifarTestSet('cifar10', cifar10Records([10]), { classes: CIFAR10_NAMES.join('\n') }, names), /record 0 has label 10, outside 0-9/],
  ];
  for (const [run, pattern] of cases) {
    assert.throws(run, (error: unknown) => error instanceof ClipEvalError && error.exitCode === 3 && pattern.test(error.message) && !error.message.includes('\n'));
  }
});

test('fetches from a mirror URL, checks the md5, caches only the extracted files and reads them offline', async () => {
  const { url, path, cacheRoot } = await serve(goodArchive);
  const md5 = md5Of(goodArchive);
  const set = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url, md5 }));
  assert.deepEqual([...set.labels], FINE_LABELS);
  const directory = join(cacheRoot, 'datasets', `cifar100-md5-${md5.slice(0, 12)}`);
  assert.equal(set.source.path, join(directory, 'test.bin'));
  assert.deepEqual(set.source.files, { 'test.bin': sha256Of(testBin), 'fine_label_names.txt': sha256Of(fineText), 'coarse_label_names.txt': sha256Of(coarseText) });
  // The documented way to recompute the data set's digest by hand.
  const bySha256sum = spawnSync('sh', ['-c', 'sha256sum test.bin fine_label_names.txt coarse_label_names.txt | sha256sum'], { cwd: directory, encoding: 'utf8' });
  assert.equal(set.source.sha256, bySha256sum.stdout.split(' ')[0]);
  assert.deepEqual(await cacheEntries(cacheRoot), [`cifar100-md5-${md5.slice(0, 12)}`]);
  assert.deepEqual((await readdir(directory)).sort(), ['clip-eval-source.json', 'coarse_label_names.txt', 'fine_label_names.txt', 'test.bin']);

  const again = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url, md5, offline: true }));
  assert.equal(again.source.sha256, set.source.sha256);
  assert.equal(server.count(path), 1);
});

test('a mirror without md5 is fetched with a warning into a cache folder of its own', async () => {
  const { url, cacheRoot } = await serve(goodArchive);
  const lines: string[] = [];
  const logger = createLogger({ stream: { write: (line: string) => lines.push(line) > 0 } as unknown as NodeJS.WritableStream });
  const directory = await fetchCifar('cifar100', { cacheRoot, url, logger, quiet: true });
  assert.match(directory, /cifar100-url-[0-9a-f]{12}$/);
  assert.ok(lines.some((line) => /warning: data set MD5: not given for .*, so its archive is checked for layout only/.test(line)), lines.join(''));
  const withMd5 = await fetchCifar('cifar100', quietOptions(cacheRoot, { url, md5: md5Of(goodArchive) }));
  assert.notEqual(withMd5, directory);
  assert.notEqual(directory, join(cacheRoot, 'datasets', 'cifar100'), 'never the official folder');
});

test('a wrong md5 is rejected and nothing is cached; the right one then works', async () => {
  const { url, cacheRoot } = await serve(goodArchive);
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url, md5: '0'.repeat(32) })), /has md5 [0-9a-f]{32}, expected 0{32}; the download was discarded/);
  assert.deepEqual(await cacheEntries(cacheRoot), []);
  await fetchCifar('cifar100', quietOptions(cacheRoot, { url, md5: md5Of(goodArchive) }));
});

test('an uncompressed tar at the archive URL is read as well', async () => {
  const { url, cacheRoot } = await serve(gunzipSync(goodArchive));
  const set = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url }));
  assert.deepEqual([...set.labels], FINE_LABELS);
});

test('a truncated archive is refused and leaves nothing cached', async () => {
  const { url, path, cacheRoot } = await serve(goodArchive.subarray(0, Math.floor(goodArchive.length / 2)));
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url })), /is not a complete, valid tar archive/);
  assert.deepEqual(await cacheEntries(cacheRoot), []);
  await server.route(path, { body: goodArchive });
  const set = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url }));
  assert.equal(set.count, FINE_LABELS.length);
});

test('refuses archives with escaping paths, links or unexpected members and writes nothing outside the cache', async () => {
  const escapeName = `escape-${process.pid}-${Date.now()}`;
  const absoluteTarget = join(work, `absolute-${escapeName}`);
  const good = cifar100Members(testBin, CIFAR100_RAW_NAMES, CIFAR100_COARSE_NAMES);
  const goodEntries: RawEntry[] = Object.entries(good).map(([path, body]) => ({ path, body: Buffer.from(body) }));
  const cases: [RawEntry, RegExp][] = [
    [{ path: `../${escapeName}`, body: Buffer.from('x') }, /climbs out of the archive with '\.\.'/],
    [{ path: `cifar-100-binary/../../${escapeName}`, body: Buffer.from('x') }, /climbs out/],
    [{ path: absoluteTarget, body: Buffer.from('x') }, /has an absolute or Windows path/],
    [{ path: 'cifar-100-binary/test.bin', type: 'SymbolicLink', linkpath: '/etc/passwd' }, /is a SymbolicLink, not a plain file/],
    [{ path: 'cifar-100-binary/extra', type: 'Link', linkpath: 'cifar-100-binary/test.bin' }, /is a Link, not a plain file/],
    [{ path: 'elsewhere/test.bin', body: Buffer.from('x') }, /unexpected member elsewhere\/test\.bin/],
    [{ path: 'cifar-100-binary/test.bin', body: testBin }, /member cifar-100-binary\/test\.bin appears twice/],
  ];
  for (const [bad, pattern] of cases) {
    // The bad member comes first, and again after the good ones, so both early and late checks count.
    for (const entries of [[bad, ...goodEntries], [...goodEntries, bad]]) {
      if (bad.body === testBin && entries[0] === bad) continue;
      const { url, cacheRoot } = await serve(rawTarGz(entries));
      await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url })), pattern);
      assert.deepEqual(await cacheEntries(cacheRoot), [], `nothing cached for ${bad.path}`);
      for (const outside of [join(cacheRoot, escapeName), join(cacheRoot, '..', escapeName), join(work, '..', escapeName), absoluteTarget]) {
        assert.equal(existsSync(outside), false, `${outside} must not exist`);
      }
    }
  }
});

test('a test.bin of the wrong size or with label 100 is refused, naming the archive member', async () => {
  const badLabel = testBin.slice();
  badLabel[3074 + 1] = 100;
  const cases: [Uint8Array, RegExp][] = [
    [testBin.subarray(0, 3074 * 2 + 10), /cifar-100-binary\/test\.bin in http:\S+ has 6158 bytes, not a whole number/],
    [badLabel, /cifar-100-binary\/test\.bin in http:\S+: record 1 has label 100, outside 0-99/],
  ];
  for (const [bin, pattern] of cases) {
    const { url, cacheRoot } = await serve(await archiveOf(cifar100Members(bin, CIFAR100_RAW_NAMES, CIFAR100_COARSE_NAMES)));
    await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url })), pattern);
    assert.deepEqual(await cacheEntries(cacheRoot), []);
  }
  const incomplete = await archiveOf({ 'cifar-100-binary/test.bin': testBin, 'cifar-100-binary/fine_label_names.txt': fineText });
  const { url, cacheRoot } = await serve(incomplete);
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url })), /lacks cifar-100-binary\/coarse_label_names\.txt$/);
});

test('--data-dir takes the files or the release folder and never downloads', async () => {
  const { url, path, cacheRoot } = await serve(goodArchive);
  const flat = join(work, `data-flat-${serial}`);
  const nested = join(work, `data-nested-${serial}`);
  for (const folder of [flat, join(nested, 'cifar-100-binary')]) {
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'test.bin'), testBin);
    await writeFile(join(folder, 'fine_label_names.txt'), fineText);
    await writeFile(join(folder, 'coarse_label_names.txt'), coarseText);
  }
  const fromFlat = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { dataDir: flat, url }));
  assert.equal(fromFlat.source.path, join(flat, 'test.bin'));
  const fromNested = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { dataDir: nested, url }));
  assert.equal(fromNested.source.path, join(nested, 'cifar-100-binary', 'test.bin'));
  assert.deepEqual(fromNested.labels, fromFlat.labels);
  await rejectsWithOneLine(fetchCifar('cifar10', quietOptions(cacheRoot, { dataDir: flat })), /^data folder .*: expected test_batch\.bin, batches\.meta\.txt there or in/);
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { dataDir: join(work, 'missing') })), /^data folder .*missing: no such folder$/);
  assert.equal(server.count(path), 0);
  assert.deepEqual(await cacheEntries(cacheRoot), []);
});

test('--offline with an empty cache fails clearly without a request', async () => {
  const { url, path, cacheRoot } = await serve(goodArchive);
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url, offline: true })), /^offline mode: CIFAR-100 is not in the cache \(.*\); fetch cifar100 where .* is reachable, or give a data folder$/);
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { offline: true })), /cache \(.*datasets\/cifar100\)/);
  assert.equal(server.count(path), 0);
});

test('concurrent fetches into one cache download once and agree', async () => {
  const { url, path, cacheRoot } = await serve(goodArchive);
  const directories = await Promise.all([1, 2, 3].map(() => fetchCifar('cifar100', quietOptions(cacheRoot, { url }))));
  assert.equal(new Set(directories).size, 1);
  assert.equal(server.count(path), 1);
  assert.deepEqual(await cacheEntries(cacheRoot), [directories[0]!.split('/').at(-1)]);
});

test('a cached test file changed after fetching is reported', async () => {
  const { url, cacheRoot } = await serve(goodArchive);
  const directory = await fetchCifar('cifar100', quietOptions(cacheRoot, { url }));
  const changed = testBin.slice();
  changed[5] ^= 1;
  await writeFile(join(directory, 'test.bin'), changed);
  await rejectsWithOneLine(loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url })), /test\.bin changed since it was fetched .*delete .* and fetch it again/);
});

test('CIFAR-10 goes through the same machinery', async () => {
  const records = cifar10Records([1, 2, 3, 4]);
  const { url, cacheRoot } = await serve(await archiveOf(cifar10Members(records, CIFAR10_NAMES)));
  const set = await loadCifarTestSet('cifar10', quietOptions(cacheRoot, { url }));
  assert.deepEqual([...set.labels], [1, 2, 3, 4]);
  assert.deepEqual(set.rawClassNames, CIFAR10_NAMES);
  assert.match(set.source.path, /cifar10-url-[0-9a-f]{12}\/test_batch\.bin$/);
});

test('an edited cached label file is refused on load, naming the file, as is an edited coarse label file', async () => {
  const { url, cacheRoot } = await serve(goodArchive);
  const directory = await fetchCifar('cifar100', quietOptions(cacheRoot, { url }));
  // Two names swapped: still a valid label file, but every prompt for those classes changes.
  const swapped = fineText.replace('apple\naquarium_fish\n', 'aquarium_fish\napple\n');
  assert.notEqual(swapped, fineText);
  await writeFile(join(directory, 'fine_label_names.txt'), swapped);
  await rejectsWithOneLine(
    loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url })),
    /fine_label_names\.txt changed since it was fetched \(sha256 [0-9a-f]{64}, recorded [0-9a-f]{64}\); delete .*cifar100-url-[0-9a-f]{12} and fetch it again$/,
  );
  await writeFile(join(directory, 'fine_label_names.txt'), fineText);
  await writeFile(join(directory, 'coarse_label_names.txt'), `${coarseText}\n`);
  await rejectsWithOneLine(loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url, offline: true })), /coarse_label_names\.txt changed since it was fetched/);
  await writeFile(join(directory, 'coarse_label_names.txt'), coarseText);
  assert.equal((await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url, offline: true }))).count, FINE_LABELS.length);
});

test('--data-dir: the digest of every file read is reported, and an edited label file changes the data set digest', async () => {
  const folder = join(work, `data-digests-${serial}`);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'test.bin'), testBin);
  await writeFile(join(folder, 'fine_label_names.txt'), fineText);
  await writeFile(join(folder, 'coarse_label_names.txt'), coarseText);
  const cacheRoot = join(work, `cache-digests-${serial}`);
  const original = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { dataDir: folder }));
  assert.deepEqual(original.source.files, { 'test.bin': sha256Of(testBin), 'fine_label_names.txt': sha256Of(fineText), 'coarse_label_names.txt': sha256Of(coarseText) });
  const renamed = fineText.replace(/^apple\n/, 'apples\n');
  assert.notEqual(renamed, fineText);
  await writeFile(join(folder, 'fine_label_names.txt'), renamed);
  const edited = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { dataDir: folder }));
  assert.equal(edited.source.files['test.bin'], original.source.files['test.bin']);
  assert.equal(edited.source.files['fine_label_names.txt'], sha256Of(renamed));
  assert.notEqual(edited.source.sha256, original.source.sha256, 'the data set digest covers the label files');
});

test('--data-dir: a label file in Latin-1 (not UTF-8) is refused naming it (exit 3), not read with U+FFFD in the names', async () => {
  const folder = join(work, `data-latin1-${serial}`);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'test.bin'), testBin);
  await writeFile(join(folder, 'fine_label_names.txt'), Buffer.from(fineText.replace(/^apple\n/, 'pomme de caf\xe9\n'), 'latin1'));
  await writeFile(join(folder, 'coarse_label_names.txt'), coarseText);
  const error = await rejectsWithOneLine(
    loadCifarTestSet('cifar100', quietOptions(join(work, `cache-latin1-${serial}`), { dataDir: folder })),
    /fine_label_names\.txt: not valid UTF-8 \(byte 12, line 1\); save the file as UTF-8$/,
  );
  assert.equal(error.exitCode, 3);
});

test('a cache entry recorded before label files had digests is extracted again', async () => {
  const { url, path, cacheRoot } = await serve(goodArchive);
  const directory = await fetchCifar('cifar100', quietOptions(cacheRoot, { url }));
  const markerPath = join(directory, 'clip-eval-source.json');
  await writeFile(markerPath, JSON.stringify({ url, md5: null, testSha256: sha256Of(testBin) }));
  await writeFile(join(directory, 'fine_label_names.txt'), fineText.replace('apple\naquarium_fish\n', 'aquarium_fish\napple\n'));
  const set = await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url }));
  assert.equal(server.count(path), 2, 'fetched again');
  assert.deepEqual(set.rawClassNames, CIFAR100_RAW_NAMES);
  const marker = JSON.parse(await readFile(markerPath, 'utf8')) as { files: Record<string, string> };
  assert.equal(marker.files['fine_label_names.txt'], sha256Of(fineText));
});

const cifarModule = new URL('../src/datasets/cifar/cifar.js', import.meta.url).href;

/**
 * Loads the test set in a child process that is killed after `timeoutMs`: a read that blocks
 * forever (a FIFO) blocks a thread that no timer can free, so it must not run in the test runner.
 */
function loadInChild(options: CifarLoadOptions, timeoutMs = 20_000): Promise<CliRun> {
  const script = `
    const { loadCifarTestSet } = await import(process.argv[1]);
    try {
      const set = await loadCifarTestSet('cifar100', JSON.parse(process.argv[2]));
      console.log(set.count);
    } catch (error) {
      console.error(error.message);
      process.exitCode = error.exitCode ?? 4;
    }`;
  return runNode(['--input-type=module', '-e', script, cifarModule, JSON.stringify(options)], { timeoutMs });
}

function assertRefused(run: CliRun, pattern: RegExp): void {
  assert.equal(run.signal, null, `the load hung and was killed (stderr: ${run.stderr})`);
  assert.equal(run.code, 3, run.stderr);
  assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  assert.match(run.stderr.trim(), pattern);
}

function mkfifo(path: string): void {
  const made = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  assert.equal(made.status, 0, `mkfifo ${path}: ${made.stderr}`);
}

test('a FIFO where a data file belongs is refused at once, naming it (--data-dir and cache)', { skip: process.platform === 'win32' && 'no FIFOs' }, async () => {
  for (const fifoName of ['test.bin', 'fine_label_names.txt']) {
    const folder = join(work, `data-fifo-${fifoName}`);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'test.bin'), testBin);
    await writeFile(join(folder, 'fine_label_names.txt'), fineText);
    await writeFile(join(folder, 'coarse_label_names.txt'), coarseText);
    await rm(join(folder, fifoName));
    mkfifo(join(folder, fifoName));
    const run = await loadInChild({ cacheRoot: join(work, 'cache-fifo'), dataDir: folder, quiet: true });
    assertRefused(run, new RegExp(`^${join(folder, fifoName).replace(/[.]/g, '\\.')} is a FIFO \\(named pipe\\), not a regular file`));
  }
  const { url, cacheRoot } = await serve(goodArchive);
  const directory = await fetchCifar('cifar100', quietOptions(cacheRoot, { url }));
  for (const fifoName of ['test.bin', 'clip-eval-source.json']) {
    const saved = await readFile(join(directory, fifoName));
    await rm(join(directory, fifoName));
    mkfifo(join(directory, fifoName));
    assertRefused(await loadInChild({ cacheRoot, url, quiet: true }), new RegExp(`${fifoName.replace(/[.]/g, '\\.')} is a FIFO`));
    await rm(join(directory, fifoName));
    await writeFile(join(directory, fifoName), saved);
  }
  assert.equal((await loadCifarTestSet('cifar100', quietOptions(cacheRoot, { url }))).count, FINE_LABELS.length);
});

test('a test file larger than the official one is refused before it is read, in a folder and in an archive', async () => {
  const records = 10_001;
  const folder = join(work, 'data-oversized');
  await mkdir(folder, { recursive: true });
  // A sparse file: all-zero records are valid CIFAR-100 records (labels 0), so only the size is wrong.
  await writeFile(join(folder, 'test.bin'), '');
  await truncate(join(folder, 'test.bin'), records * 3074);
  await writeFile(join(folder, 'fine_label_names.txt'), fineText);
  await writeFile(join(folder, 'coarse_label_names.txt'), coarseText);
  await rejectsWithOneLine(
    loadCifarTestSet('cifar100', quietOptions(join(work, 'cache-oversized'), { dataDir: folder })),
    /test\.bin has 30743074 bytes, more than the 30740000 expected$/,
  );
  const { url, cacheRoot } = await serve(await archiveOf(cifar100Members(new Uint8Array(records * 3074), CIFAR100_RAW_NAMES, CIFAR100_COARSE_NAMES)));
  await rejectsWithOneLine(fetchCifar('cifar100', quietOptions(cacheRoot, { url })), /member cifar-100-binary\/test\.bin has 30743074 bytes, more than the 30740000 expected; refusing to extract it$/);
  assert.deepEqual(await cacheEntries(cacheRoot), []);
});

test('staging folders of interrupted extractions are removed by the next fill, never a live one', async () => {
  const { url, cacheRoot } = await serve(goodArchive);
  const directory = await fetchCifar('cifar100', quietOptions(cacheRoot, { url }));
  const base = directory.split('/').at(-1)!;
  const datasets = join(cacheRoot, 'datasets');
  // A process that has exited: its pid is not running (pids are not reused this fast).
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const hostTag = (host: string) => createHash('sha256').update(host).digest('hex').slice(0, 12);
  const here = hostTag(hostname());
  const elsewhere = hostTag(`not-${hostname()}`);
  const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
  const planted: [string, 'old' | 'fresh', 'removed' | 'kept'][] = [
    [`${base}.staging-${here}-${deadPid}-0000000a`, 'fresh', 'removed'],
    [`${base}.staging-${here}-${process.pid}-0000000b`, 'old', 'kept'],
    [`${base}.staging-${elsewhere}-${process.pid}-0000000c`, 'old', 'removed'],
    [`${base}.staging-${elsewhere}-${deadPid}-0000000d`, 'fresh', 'kept'],
    [`${base}.${deadPid}-0000000e.tmp`, 'old', 'removed'],
    [`${base}.${deadPid}-0000000f.tmp`, 'fresh', 'kept'],
    [`${base}.${process.pid}-00000010.tmp`, 'old', 'kept'],
  ];
  // The run that left them was interrupted before its folder was renamed into place.
  await rm(directory, { recursive: true });
  for (const [name, age] of planted) {
    const folder = join(datasets, name);
    await mkdir(folder);
    await writeFile(join(folder, 'test.bin'), 'partial');
    if (age === 'old') {
      await utimes(join(folder, 'test.bin'), twoHoursAgo, twoHoursAgo);
      await utimes(folder, twoHoursAgo, twoHoursAgo);
    }
  }
  await fetchCifar('cifar100', quietOptions(cacheRoot, { url }));
  const expected = [base, ...planted.filter(([, , fate]) => fate === 'kept').map(([name]) => name)].sort();
  assert.deepEqual(await cacheEntries(cacheRoot), expected);
});
