import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { createGzip, gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import { CIFAR100_CLEAN_NAMES, CIFAR10_NAMES } from '../src/datasets/cifar/class-names.js';
import type { Dataset, DatasetOpenOptions } from '../src/datasets/dataset.js';
import { datasetSourceFor, openDataset } from '../src/datasets/registry.js';
import { hubCacheFolder } from '../src/net/hub.js';
import { runCli, runNode } from './support/cli.js';
import { rejectsWithOneLine } from './support/errors.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { makeTempDir, repoRoot } from './support/paths.js';
import { makeSamples, publishDatasetRepo, sampleMembers, writeLayout, writeShard, type FixtureSample } from './support/webdataset.js';

/**
 * The webdataset source against shards this test writes: a folder in CLIP_benchmark's layout, the same
 * files served by a local hub (HF_ENDPOINT) as the dataset repo clip-benchmark/wds_pattern10, and under a
 * plain http root.
 */
let dir: string;
let hub: TestServer;
let layout: string;
let samples: FixtureSample[];
let cacheCount = 0;
const TEMPLATES = ['a photo of a {c}.', 'a blurry photo of the {c}.'];
const REPO = 'clip-benchmark/wds_pattern10';
const savedEndpoint = process.env.HF_ENDPOINT;

function freshCache(): string {
  cacheCount += 1;
  return join(dir, `cache-${cacheCount}`);
}

/** Shard 0: samples 0-4 at the archive root; shard 1: the rest, 5-6 inside a folder `part1/`. */
function fixtureShards(list: FixtureSample[]) {
  const inFolder = (sample: FixtureSample) => sampleMembers(sample).map((member) => ({ ...member, name: `part1/${member.name}` }));
  return [
    list.slice(0, 5).flatMap(sampleMembers),
    [...list.slice(5, 7).flatMap(inFolder), ...list.slice(7).flatMap(sampleMembers)],
  ];
}

function expectedIds(list: FixtureSample[]): string[] {
  return list.map((sample, index) => (index === 5 || index === 6 ? `part1/${sample.key}` : sample.key));
}

async function collect(dataset: Dataset) {
  const read = [];
  for await (const sample of dataset.samples()) {
    assert.equal(sample.image.kind, 'encoded');
    if (sample.image.kind !== 'encoded') continue;
    read.push({ id: sample.id, label: sample.label, format: sample.image.format, origin: sample.image.origin, bytes: Buffer.from(sample.image.bytes) });
  }
  return read;
}

async function assertFixture(dataset: Dataset, name: string): Promise<void> {
  assert.equal(dataset.name, name);
  assert.equal(dataset.split, 'test');
  assert.deepEqual(dataset.classNames, CIFAR10_NAMES);
  assert.equal(dataset.defaultTemplates, 'dataset');
  assert.deepEqual(dataset.templates, ['a photo of a {}.', 'a blurry photo of the {}.']);
  const read = await collect(dataset);
  assert.deepEqual(read.map((sample) => sample.id), expectedIds(samples));
  assert.deepEqual(read.map((sample) => sample.label), samples.map((sample) => sample.label));
  assert.deepEqual(read.map((sample) => sample.format), samples.map((sample) => sample.format));
  assert.equal(read[0]!.origin, `test/0.tar: ${samples[0]!.key}.png`);
  assert.equal(read[6]!.origin, `test/1.tar: part1/${samples[6]!.key}.${samples[6]!.format}`);
  for (const [index, sample] of read.entries()) assert.ok(sample.bytes.equals(samples[index]!.bytes), `sample ${sample.id}: bytes differ from what was written`);
  // A second pass starts again from the first sample.
  assert.deepEqual((await collect(dataset)).map((sample) => sample.id), expectedIds(samples));
}

before(async () => {
  dir = await makeTempDir('clip-eval-wds-');
  hub = await startTestServer();
  process.env.HF_ENDPOINT = hub.origin;
  samples = await makeSamples(CIFAR10_NAMES, 2);
  layout = join(dir, 'layout');
  await writeLayout(layout, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: fixtureShards(samples) });
  await publishDatasetRepo(hub, REPO, layout);
  await publishDatasetRepo(hub, REPO, layout, 'v1.0');
  for (const path of ['classnames.txt', 'zeroshot_classification_templates.txt', 'test/nshards.txt', 'test/0.tar', 'test/1.tar']) {
    await hub.route(`/mirror/pattern10/${path}`, { file: join(layout, ...path.split('/')) });
  }
});

after(async () => {
  if (savedEndpoint === undefined) delete process.env.HF_ENDPOINT;
  else process.env.HF_ENDPOINT = savedEndpoint;
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

test('the registry gives wds/ and wds: specs to the webdataset source', () => {
  assert.equal(datasetSourceFor('wds/imagenet1k')?.title, 'webdataset');
  assert.equal(datasetSourceFor('wds:/data/food101')?.title, 'webdataset');
  assert.equal(datasetSourceFor('wds:https://example.org/food101')?.title, 'webdataset');
});

test('wds/<name>: samples, class names and templates from the hub dataset repo, cached apart from models', async () => {
  const cacheRoot = freshCache();
  await assertFixture(await openDataset('wds/pattern10', { cacheRoot, quiet: true }), 'wds/pattern10');
  const folder = hubCacheFolder(cacheRoot, { repo: REPO, revision: 'main', type: 'dataset' });
  assert.equal(folder, join(cacheRoot, 'datasets', 'hub', 'clip-benchmark--wds_pattern10', 'main'));
  assert.notEqual(folder, hubCacheFolder(cacheRoot, { repo: REPO, revision: 'main' }));
  for (const path of ['classnames.txt', 'test/nshards.txt', 'test/0.tar', 'test/1.tar']) assert.ok(existsSync(join(folder, ...path.split('/'))), path);
  assert.ok(hub.count(`/datasets/${REPO}/resolve/main/test/1.tar`) >= 1);

  // Offline, the cached copy is enough: nothing is asked of the hub.
  const requests = hub.requests.length;
  await assertFixture(await openDataset('wds/pattern10', { cacheRoot, offline: true, quiet: true }), 'wds/pattern10');
  assert.equal(hub.requests.length, requests);
});

test('wds/<name>@<revision> reads that revision into its own cache folder', async () => {
  const cacheRoot = freshCache();
  const before = hub.count(`/datasets/${REPO}/resolve/v1.0/test/nshards.txt`);
  await assertFixture(await openDataset('wds/pattern10@v1.0', { cacheRoot, quiet: true }), 'wds/pattern10@v1.0');
  assert.ok(hub.count(`/datasets/${REPO}/resolve/v1.0/test/nshards.txt`) > before);
  assert.ok(existsSync(join(cacheRoot, 'datasets', 'hub', 'clip-benchmark--wds_pattern10', 'v1.0', 'test', '0.tar')));
});

test('wds/<name> offline without a cached copy fails with one line (exit 3)', async () => {
  const error = await rejectsWithOneLine(openDataset('wds/pattern10', { cacheRoot: freshCache(), offline: true, quiet: true }), /offline.*not cached/);
  assert.equal(error.exitCode, 3);
});

test('wds/<name> that the hub does not have fails with one line naming the repo (exit 3)', async () => {
  const error = await rejectsWithOneLine(openDataset('wds/no-such-set', { cacheRoot: freshCache(), quiet: true }), /wds\/no-such-set: test\/nshards\.txt is missing in the hub's dataset repo clip-benchmark\/wds_no-such-set@main/);
  assert.equal(error.exitCode, 3);
});

test('wds/ specs the hub would refuse are usage errors', async () => {
  for (const spec of ['wds/', 'wds/a/b', 'wds/x@', 'wds/bad..name']) {
    const error = await rejectsWithOneLine(openDataset(spec, { cacheRoot: freshCache(), quiet: true }), new RegExp(`data set ${spec.replace(/\./g, '\\.')}:`));
    assert.equal(error.exitCode, 2, spec);
  }
});

test('wds:<folder> reads the layout in place', async () => {
  const cacheRoot = freshCache();
  await assertFixture(await openDataset(`wds:${layout}`, { cacheRoot, quiet: true }), `wds:${layout}`);
  assert.equal(existsSync(cacheRoot), false, 'a local folder is read in place, never copied');
});

test('wds:<url> downloads into the cache keyed by the URL, then works offline', async () => {
  const cacheRoot = freshCache();
  const spec = `wds:${hub.url('/mirror/pattern10')}`;
  await assertFixture(await openDataset(spec, { cacheRoot, quiet: true }), spec);
  assert.equal(hub.count('/mirror/pattern10/test/0.tar') >= 1, true);
  const requests = hub.requests.length;
  await assertFixture(await openDataset(spec, { cacheRoot, offline: true, quiet: true }), spec);
  assert.equal(hub.requests.length, requests);
  await rejectsWithOneLine(openDataset(spec, { cacheRoot: freshCache(), offline: true, quiet: true }), /test\/nshards\.txt is not in the cache .*offline/);
});

test('wds:<url> with a shard missing fails before the first sample, naming the shard', async () => {
  await hub.route('/broken-mirror/classnames.txt', { file: join(layout, 'classnames.txt') });
  await hub.route('/broken-mirror/zeroshot_classification_templates.txt', { file: join(layout, 'zeroshot_classification_templates.txt') });
  await hub.route('/broken-mirror/test/nshards.txt', { file: join(layout, 'test', 'nshards.txt') });
  await hub.route('/broken-mirror/test/0.tar', { file: join(layout, 'test', '0.tar') });
  const spec = `wds:${hub.url('/broken-mirror/')}`;
  const error = await rejectsWithOneLine(openDataset(spec, { cacheRoot: freshCache(), quiet: true }), /test\/1\.tar is missing in http:\/\/127\.0\.0\.1:\d+\/broken-mirror\//);
  assert.equal(error.exitCode, 3);
});

/** A layout folder with these shards (and whatever the options change), opened and streamed to the end. */
async function openAndStream(name: string, shards: Parameters<typeof writeLayout>[1]['shards'], extra: Partial<Parameters<typeof writeLayout>[1]> = {}, options: Partial<DatasetOpenOptions> = {}) {
  const root = join(dir, name);
  await writeLayout(root, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards, ...extra });
  const dataset = await openDataset(`wds:${root}`, { cacheRoot: freshCache(), quiet: true, ...options });
  return collect(dataset);
}

test('errors: a missing nshards.txt, or a split the data set lacks, is one line naming the file (exit 3)', async () => {
  const noCount = await rejectsWithOneLine(openAndStream('no-nshards', fixtureShards(samples), { nshards: null }), /wds:.*no-nshards: test\/nshards\.txt is missing in .*no-nshards; check the split name \(test\)/);
  assert.equal(noCount.exitCode, 3);
  const wrongSplit = await rejectsWithOneLine(openDataset(`wds:${layout}`, { cacheRoot: freshCache(), split: 'train' }), /train\/nshards\.txt is missing/);
  assert.equal(wrongSplit.exitCode, 3);
  await rejectsWithOneLine(openDataset(`wds:${layout}`, { cacheRoot: freshCache(), split: '../test' }), /^split "\.\.\/test": not a folder name/);
  await rejectsWithOneLine(openAndStream('bad-nshards', fixtureShards(samples), { nshards: 0 }), /test\/nshards\.txt holds "0", not a number of shards/);
});

test('errors: a shard missing is one line naming it, before any sample is read (exit 3)', async () => {
  const error = await rejectsWithOneLine(openAndStream('missing-shard', fixtureShards(samples), { nshards: 3 }), /wds:.*missing-shard: test\/2\.tar is missing in /);
  assert.equal(error.exitCode, 3);
});

test('errors: a sample without label, or without image, is one line naming shard and key (exit 3)', async () => {
  const withoutLabel = fixtureShards(samples);
  withoutLabel[1] = withoutLabel[1]!.filter((member) => member.name !== `${samples[8]!.key}.cls`);
  const error = await rejectsWithOneLine(openAndStream('no-label', withoutLabel), new RegExp(`webdataset shard test/1\\.tar: sample ${samples[8]!.key} has no label \\(\\.cls member\\)`));
  assert.equal(error.exitCode, 3);
  const withoutImage = fixtureShards(samples);
  withoutImage[0] = withoutImage[0]!.filter((member) => member.name !== `${samples[0]!.key}.png`);
  await rejectsWithOneLine(openAndStream('no-image', withoutImage), new RegExp(`webdataset shard test/0\\.tar: sample ${samples[0]!.key} has no image`));
});

test('errors: a label out of range, or not a number, is one line naming shard and key (exit 3)', async () => {
  const outOfRange = fixtureShards(samples);
  outOfRange[0] = outOfRange[0]!.map((member) => (member.name === `${samples[3]!.key}.cls` ? { ...member, bytes: Buffer.from(' 10 \n') } : member));
  const error = await rejectsWithOneLine(openAndStream('out-of-range', outOfRange), new RegExp(`webdataset shard test/0\\.tar: sample ${samples[3]!.key} has label 10, out of range for 10 classes \\(0 to 9\\)`));
  assert.equal(error.exitCode, 3);
  const notNumber = fixtureShards(samples);
  notNumber[0] = notNumber[0]!.map((member) => (member.name === `${samples[2]!.key}.cls` ? { ...member, bytes: Buffer.from('cat') } : member));
  await rejectsWithOneLine(openAndStream('not-number', notNumber), new RegExp(`sample ${samples[2]!.key} has label "cat" in ${samples[2]!.key}\\.cls, not a whole number`));
});

test('errors: a key used twice, or two images in one sample, is refused', async () => {
  const repeated = fixtureShards(samples);
  repeated[1] = [...repeated[1]!, ...sampleMembers(samples[0]!)];
  await rejectsWithOneLine(openAndStream('repeated-key', repeated), new RegExp(`webdataset shard test/1\\.tar: sample key ${samples[0]!.key} appears twice`));
  const twoImages = fixtureShards(samples);
  twoImages[0] = [{ name: `${samples[0]!.key}.jpg`, bytes: samples[1]!.bytes }, ...twoImages[0]!];
  await rejectsWithOneLine(openAndStream('two-images', twoImages), new RegExp(`sample ${samples[0]!.key} has two images`));
});

test('errors: a link member, a damaged shard and text files that are not UTF-8 are refused with one line', async () => {
  const root = join(dir, 'link-member');
  await writeLayout(root, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: fixtureShards(samples) });
  const staging = join(dir, 'link-staging');
  await writeShard(join(staging, 'unused.tar'), sampleMembers(samples[0]!));
  await writeFile(join(staging, 's0000000.cls'), '0\n');
  await symlink('/etc/passwd', join(staging, 's0000000.png'));
  await tar.create({ file: join(root, 'test', '0.tar'), cwd: staging, portable: true }, ['s0000000.png', 's0000000.cls']);
  const dataset = await openDataset(`wds:${root}`, { cacheRoot: freshCache(), quiet: true });
  await rejectsWithOneLine(collect(dataset), /webdataset shard test\/0\.tar: member s0000000\.png is a SymbolicLink, not a plain file; refusing the shard/);

  await writeFile(join(root, 'test', '0.tar'), Buffer.alloc(700, 7));
  await rejectsWithOneLine(collect(dataset), /webdataset shard test\/0\.tar .* is not a complete, valid tar archive/);

  await writeFile(join(root, 'classnames.txt'), Buffer.from([0x63, 0x61, 0x74, 0xff, 0x0a]));
  await rejectsWithOneLine(openDataset(`wds:${root}`, { cacheRoot: freshCache() }), /classnames\.txt: not valid UTF-8 \(byte 3, line 1\)/);
});

test('errors: a truncated shard is one line, not a silent short data set', async () => {
  const root = join(dir, 'truncated');
  await writeLayout(root, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: fixtureShards(samples) });
  const whole = await readFile(join(root, 'test', '1.tar'));
  await writeFile(join(root, 'test', '1.tar'), whole.subarray(0, Math.floor(whole.length / 2)));
  const dataset = await openDataset(`wds:${root}`, { cacheRoot: freshCache(), quiet: true });
  await rejectsWithOneLine(collect(dataset), /webdataset shard test\/1\.tar .*(not a complete, valid tar archive|truncated)/i);
});

test('wds:<folder> that does not exist is one line (exit 3)', async () => {
  const error = await rejectsWithOneLine(openDataset(`wds:${join(dir, 'nowhere')}`, { cacheRoot: freshCache() }), /the folder .*nowhere does not exist/);
  assert.equal(error.exitCode, 3);
});

test('chosen class names replace classnames.txt, and must be as many', async () => {
  const names = CIFAR10_NAMES.map((name) => `${name} picture`);
  const dataset = await openDataset(`wds:${layout}`, { cacheRoot: freshCache(), classNames: { spec: 'names.txt', names } });
  assert.deepEqual(dataset.classNames, names);
  assert.deepEqual((await collect(dataset)).map((sample) => sample.label), samples.map((sample) => sample.label));
  const error = await rejectsWithOneLine(
    openDataset(`wds:${layout}`, { cacheRoot: freshCache(), classNames: { spec: 'cifar100', names: CIFAR100_CLEAN_NAMES } }),
    /the class names cifar100 are 100, but classnames\.txt lists 10; give one name per label/,
  );
  assert.equal(error.exitCode, 3);
});

test('clip-eval fetch wds/<name> fills the cache for offline runs; a missing split is one line, exit 3', async () => {
  const cacheRoot = freshCache();
  const run = await runCli(['fetch', 'wds/pattern10', '--cache-dir', cacheRoot, '--quiet'], { env: { HF_ENDPOINT: hub.origin } });
  assert.equal(run.code, 0, run.stderr);
  const folder = join(cacheRoot, 'datasets', 'hub', 'clip-benchmark--wds_pattern10', 'main');
  assert.equal(run.stdout, `wds/pattern10 (test, 2 shards, 10 classes): ${folder}\n`);
  const requests = hub.requests.length;
  await assertFixture(await openDataset('wds/pattern10', { cacheRoot, offline: true, quiet: true }), 'wds/pattern10');
  assert.equal(hub.requests.length, requests);

  const missing = await runCli(['fetch', 'wds/pattern10', '--split', 'train', '--cache-dir', cacheRoot, '--quiet'], { env: { HF_ENDPOINT: hub.origin } });
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /^clip-eval: webdataset wds\/pattern10: train\/nshards\.txt is missing in the hub's dataset repo clip-benchmark\/wds_pattern10@main; check the split name \(train\) and the data set's layout\n$/);
});

test('wds/<name> of a repo the hub does not show is one line saying so, with the token hint (exit 3)', async () => {
  await hub.route('/datasets/clip-benchmark/wds_private/resolve/main/test/nshards.txt', { status: 401, headers: { 'X-Error-Code': 'RepoNotFound' } });
  const error = await rejectsWithOneLine(
    openDataset('wds/private', { cacheRoot: freshCache(), quiet: true }),
    /clip-benchmark\/wds_private@main: no such dataset repo on http:\/\/127\.0\.0\.1:\d+ \((if it is private or gated, set HF_TOKEN|check that HF_TOKEN grants access)/,
  );
  assert.equal(error.exitCode, 3);
});

/** Where each member's header starts and its data ends (padded to the block) in a tar file of ustar headers only. */
function memberBlocks(archive: Buffer): { start: number; end: number }[] {
  const members: { start: number; end: number }[] = [];
  for (let start = 0; start + 512 <= archive.length && archive[start] !== 0; ) {
    const size = parseInt(archive.subarray(start + 124, start + 136).toString('latin1').replace(/\0.*$/, '').trim(), 8);
    const end = start + 512 + Math.ceil(size / 512) * 512;
    members.push({ start, end });
    start = end;
  }
  return members;
}

test('errors: a shard cut at a member boundary, without the end-of-archive blocks, is one line naming it (exit 3); record padding is fine', async () => {
  const root = join(dir, 'cut-at-member');
  await writeLayout(root, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: fixtureShards(samples) });
  const path = join(root, 'test', '1.tar');
  const whole = await readFile(path);
  const members = memberBlocks(whole);
  // Shard 1 holds samples 5-19, three members each.
  assert.equal(members.length, 45);
  const dataset = await openDataset(`wds:${root}`, { cacheRoot: freshCache(), quiet: true });
  // Cut before sample 7's first member.
  await writeFile(path, whole.subarray(0, members[6]!.start));
  const cut = await rejectsWithOneLine(collect(dataset), /^webdataset shard test\/1\.tar \(.*1\.tar\) ends without the tar end-of-archive marker \(two zero blocks\): it was cut short/);
  assert.equal(cut.exitCode, 3);
  // All the members but one zero block: no end marker either.
  await writeFile(path, Buffer.concat([whole.subarray(0, members.at(-1)!.end), Buffer.alloc(512)]));
  await rejectsWithOneLine(collect(dataset), /test\/1\.tar .* ends without the tar end-of-archive marker/);
  // GNU tar pads the archive to its 10240-byte record with zeros after the end marker.
  await writeFile(path, Buffer.concat([whole, Buffer.alloc(10240 - (whole.length % 10240))]));
  assert.deepEqual((await collect(dataset)).map((sample) => sample.id), expectedIds(samples));
});

/**
 * A gzip'd tar of `count` samples, each a 4 MiB image of zeros, its label and 8 KiB of random bytes: it
 * decompresses about 350 times, under tar's guard of 1000. Written as a stream, never held whole.
 */
async function writeCompressibleShard(path: string, count: number): Promise<void> {
  const blocks = Readable.from(
    (function* () {
      for (let index = 0; index < count; index++) {
        const key = `s${String(index).padStart(7, '0')}`;
        const members = [
          { name: `${key}.png`, bytes: Buffer.alloc(4 << 20) },
          { name: `${key}.cls`, bytes: Buffer.from(`${index % 10}\n`) },
          { name: `${key}.json`, bytes: randomBytes(8192) },
        ];
        for (const { name, bytes } of members) {
          const header = Buffer.alloc(512);
          new tar.Header({ path: name, mode: 0o644, size: bytes.length, mtime: new Date(0), type: 'File' }).encode(header, 0);
          yield header;
          yield bytes;
          yield Buffer.alloc((512 - (bytes.length % 512)) % 512);
        }
      }
      yield Buffer.alloc(1024);
    })(),
  );
  await pipeline(blocks, createGzip(), createWriteStream(path));
}

test('a gzip\'d shard is streamed: the reader holds about one sample, not what a megabyte of gzip decompresses to', { timeout: 120_000 }, async () => {
  const root = join(dir, 'gzip-bomb');
  await writeLayout(root, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: [], nshards: 1 });
  await writeCompressibleShard(join(root, 'test', '0.tar'), 100);
  // 400 MiB of tar in about 1.2 MB of gzip: a reader that decompresses what it reads before handing the
  // samples on holds hundreds of megabytes; one that waits for its reader holds a sample or two.
  const script = `
    const { openDataset } = await import(${JSON.stringify(pathToFileURL(join(repoRoot, 'dist', 'src', 'datasets', 'registry.js')).href)});
    const dataset = await openDataset(${JSON.stringify(`wds:${root}`)}, { cacheRoot: ${JSON.stringify(freshCache())}, quiet: true });
    let count = 0;
    for await (const sample of dataset.samples()) count += sample.image.bytes.length === 4 << 20 ? 1 : 0;
    console.log(JSON.stringify({ count, peakRssMiB: process.resourceUsage().maxRSS / 1024 }));
  `;
  const run = await runNode(['--input-type=module', '-e', script], { timeoutMs: 100_000 });
  assert.equal(run.code, 0, run.stderr);
  const { count, peakRssMiB } = JSON.parse(run.stdout) as { count: number; peakRssMiB: number };
  assert.equal(count, 100);
  assert.ok(peakRssMiB < 300, `peak RSS ${peakRssMiB.toFixed(0)} MiB while streaming a 400 MiB gzip'd shard`);
});

test('a gzip\'d shard reads as the same samples as the plain one', async () => {
  const root = join(dir, 'gzipped');
  await writeLayout(root, { classNames: CIFAR10_NAMES, templates: TEMPLATES, shards: fixtureShards(samples) });
  for (const shard of ['0.tar', '1.tar']) await writeFile(join(root, 'test', shard), gzipSync(await readFile(join(root, 'test', shard))));
  const dataset = await openDataset(`wds:${root}`, { cacheRoot: freshCache(), quiet: true });
  assert.deepEqual((await collect(dataset)).map((sample) => sample.id), expectedIds(samples));
  await writeFile(join(root, 'test', '1.tar'), gzipSync(Buffer.alloc(10)).subarray(0, 15));
  await rejectsWithOneLine(collect(dataset), /webdataset shard test\/1\.tar \(.*\) (is not valid gzip data|ends without the tar end-of-archive marker)/);
});

test('errors: a templates file with a line without {c} is data, exit 3 naming the file and line', async () => {
  const error = await rejectsWithOneLine(
    openAndStream('templates-without-c', fixtureShards(samples), { templates: ['a photo of a {c}.', 'a photo of a cat.'] }),
    /^webdataset wds:.*templates-without-c: zeroshot_classification_templates\.txt line 2 \("a photo of a cat\."\) has no \{c\} where the class name goes$/,
  );
  assert.equal(error.exitCode, 3);
});

test('errors: a caption member in Latin-1 (not UTF-8) is one line naming shard and member (exit 3)', async () => {
  const captioned = (caption: Buffer) => [[...sampleMembers(samples[0]!).slice(0, 1), { name: `${samples[0]!.key}.txt`, bytes: caption }]];
  const read = await openAndStream('captions-utf8', captioned(Buffer.from('un caf\u00e9 au lait\n')), {}, { captions: true });
  assert.deepEqual(read.map((sample) => sample.id), [samples[0]!.key]);
  const error = await rejectsWithOneLine(
    openAndStream('captions-latin1', captioned(Buffer.from('un caf\u00e9 au lait\n', 'latin1')), {}, { captions: true }),
    new RegExp(`^webdataset shard test/0\\.tar: member ${samples[0]!.key}\\.txt: not valid UTF-8 \\(byte 6, line 1\\)`),
  );
  assert.equal(error.exitCode, 3);
});

test('errors: classnames.txt with one class, or two names that are one prompt to CLIP, is refused; ImageNet\'s published duplicates are not', async () => {
  const one = await rejectsWithOneLine(openAndStream('one-class', fixtureShards(samples), { classNames: ['cat'] }), /classnames\.txt lists one class name, and zero-shot classification needs at least 2$/);
  assert.equal(one.exitCode, 3);
  const names = [...CIFAR10_NAMES];
  names[9] = 'Airplane';
  const same = await rejectsWithOneLine(
    openAndStream('same-prompt', fixtureShards(samples), { classNames: names }),
    /classnames\.txt lines 1 and 10 \("airplane" and "Airplane"\) are one class name to CLIP, whose tokenizer lowercases; give the class names$/,
  );
  assert.equal(same.exitCode, 3);
  // Names given in its place are the prompts' names: classnames.txt's own are not checked then.
  const chosen = CIFAR10_NAMES.map((name) => `${name} picture`);
  assert.equal((await openAndStream('same-prompt', fixtureShards(samples), { classNames: names }, { classNames: { spec: 'names.txt', names: chosen } })).length, samples.length);
  names[9] = 'missile';
  names[8] = 'missile';
  assert.equal((await openAndStream('published-duplicates', fixtureShards(samples), { classNames: names })).length, samples.length);
});

