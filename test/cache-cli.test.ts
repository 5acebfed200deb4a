import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { lstat, lutimes, mkdir, readFile, readdir, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { writePatternCifarArchive, writePatternClip } from '../scripts/make-pattern-clip.js';
import { byteSize, durationMs } from '../src/cli/options.js';
import { CIFAR10_NAMES } from '../src/datasets/cifar/class-names.js';
import { runCli } from './support/cli.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir, repoRoot } from './support/paths.js';
import { makeSamples, publishDatasetRepo, sampleMembers, writeLayout } from './support/webdataset.js';

/**
 * `clip-eval cache` and `cache prune` through the built CLI, on caches that real runs filled: a CIFAR
 * download, a webdataset from the hub, a hub model and the text and image embeddings of a classify run.
 */
let dir: string;
let server: TestServer;
let image: string;
const MODEL_FILES = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/vision_model.onnx', 'onnx/text_model.onnx'];
const MODEL = 'models/org--name/main';
const WDS = 'datasets/hub/clip-benchmark--wds_pattern10/main';
const DAY_MS = 86_400_000;

before(async () => {
  dir = await makeTempDir('clip-eval-cache-cli-');
  const model = join(dir, 'model');
  await writePatternClip(model, { variants: false });
  await writePatternCifarArchive(join(dir, 'cifar-100-binary.tar.gz'), { name: 'cifar100', perClass: 1 });
  server = await startTestServer({ '/cifar-100-binary.tar.gz': { file: join(dir, 'cifar-100-binary.tar.gz') } });
  for (const path of MODEL_FILES) await server.route(`/org/name/resolve/main/${path}`, { file: join(model, path) });
  const layout = join(dir, 'layout');
  const samples = await makeSamples(CIFAR10_NAMES, 1);
  await writeLayout(layout, { classNames: CIFAR10_NAMES, templates: ['a photo of a {c}.'], shards: [samples.flatMap(sampleMembers)] });
  await publishDatasetRepo(server, 'clip-benchmark/wds_pattern10', layout);
  image = join(dir, 'apple.png');
  await classImage('apple').png().toFile(image);
});

after(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const env = () => ({ HF_ENDPOINT: server.origin, CLIP_EVAL_CACHE: '', CLIP_EVAL_DATASET_URL: '' });

function classify(cache: string) {
  return runCli(['classify', image, '--model', 'org/name', '--labels', 'apple,bus', '--cache-dir', cache, '--quiet', '--json'], { env: env() });
}

/** Fills a cache by real runs: one entry of each kind and a second data set. */
async function populate(name: string): Promise<string> {
  const cache = join(dir, name);
  for (const args of [['fetch', 'cifar100', '--dataset-url', server.url('/cifar-100-binary.tar.gz')], ['fetch', 'wds/pattern10']]) {
    const run = await runCli([...args, '--cache-dir', cache, '--quiet'], { env: env() });
    assert.equal(run.code, 0, run.stderr);
  }
  const run = await classify(cache);
  assert.equal(run.code, 0, run.stderr);
  return cache;
}

async function cifarEntry(cache: string): Promise<string> {
  const [name] = (await readdir(join(cache, 'datasets'))).filter((each) => /^cifar100-url-[0-9a-f]{12}$/.test(each));
  assert.ok(name, 'the CIFAR copy is in the cache');
  return `datasets/${name}`;
}

/** Files below `path`, found independently of the tool: every regular file, by lstat. */
async function filesUnder(path: string): Promise<string[]> {
  const info = await lstat(path);
  if (!info.isDirectory()) return info.isFile() ? [path] : [];
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

async function bytesUnder(path: string): Promise<number> {
  let bytes = 0;
  for (const file of await filesUnder(path)) bytes += (await lstat(file)).size;
  return bytes;
}

/** Dates a path and everything in it `days` back, as if last used then. */
async function age(path: string, days: number): Promise<void> {
  const when = new Date(Date.now() - days * DAY_MS);
  const info = await lstat(path);
  if (info.isDirectory()) for (const entry of await readdir(path)) await age(join(path, entry), days);
  // A link's own time, never its target's.
  await (info.isSymbolicLink() ? lutimes : utimes)(path, when, when);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

interface Listing {
  root: string;
  kinds: { kind: string; entries: number; bytes: number; lastUse: string | null }[];
  total: { entries: number; bytes: number };
  entries: { path: string; kind: string; bytes: number; lastUse: string }[];
  skipped: { path: string; reason: string }[];
}

async function list(cache: string, ...extra: string[]): Promise<Listing> {
  const run = await runCli(['cache', 'list', '--cache-dir', cache, '--json', ...extra]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as Listing;
}

interface PruneReport {
  dryRun: boolean;
  removed: { path: string; kind: string; bytes: number }[];
  kept: { path: string; reason: string }[];
  temporaries: { path: string; bytes: number }[];
  freedBytes: number;
  remaining: { entries: number; bytes: number };
}

async function prune(cache: string, ...flags: string[]) {
  const run = await runCli(['cache', 'prune', '--cache-dir', cache, ...flags]);
  assert.equal(run.code, 0, run.stderr);
  return run;
}

async function pruneJson(cache: string, ...flags: string[]): Promise<PruneReport> {
  return JSON.parse((await prune(cache, ...flags, '--json')).stdout) as PruneReport;
}

test('cache lists what real runs stored: entries, sizes and last use of each kind, every entry with --json and --verbose', async () => {
  const cache = await populate('cache-list');
  const cifar = await cifarEntry(cache);
  const textEntries = await filesUnder(join(cache, 'text-embeddings'));
  const imageEntries = await filesUnder(join(cache, 'image-embeddings'));
  assert.equal(textEntries.length, 1, 'one classify run: one text-embedding entry');
  assert.equal(imageEntries.length, 1, 'one image: one image-embedding entry');
  const memos = await filesUnder(join(cache, 'file-digests'));
  assert.equal(memos.length, 4, 'digest memos of the three model files and the image');

  const listing = await list(cache);
  assert.equal(listing.root, cache);
  const kinds = Object.fromEntries(listing.kinds.map((row) => [row.kind, row]));
  assert.equal(kinds.dataset!.entries, 2);
  assert.equal(kinds.dataset!.bytes, (await bytesUnder(join(cache, cifar))) + (await bytesUnder(join(cache, WDS))));
  assert.equal(kinds.model!.entries, 1);
  assert.equal(kinds.model!.bytes, await bytesUnder(join(cache, MODEL)));
  assert.equal(kinds.textEmbedding!.entries, 1);
  assert.equal(kinds.textEmbedding!.bytes, (await stat(textEntries[0]!)).size);
  assert.equal(kinds.imageEmbedding!.entries, 1);
  assert.equal(kinds.imageEmbedding!.bytes, (await stat(imageEntries[0]!)).size);
  assert.equal(kinds.fileDigest!.entries, 4);
  assert.equal(kinds.fileDigest!.bytes, await bytesUnder(join(cache, 'file-digests')));
  assert.equal(listing.total.entries, 9);
  assert.equal(listing.total.bytes, listing.kinds.reduce((sum, row) => sum + row.bytes, 0));
  for (const row of listing.kinds) assert.ok(Date.now() - Date.parse(row.lastUse!) < 10 * 60_000, `${row.kind} was used just now`);
  assert.deepEqual(listing.entries.map((entry) => [entry.kind, entry.path]).sort(), [
    ['dataset', WDS],
    ['dataset', cifar],
    ['imageEmbedding', relative(cache, imageEntries[0]!)],
    ['model', MODEL],
    ['textEmbedding', relative(cache, textEntries[0]!)],
    ...memos.map((memo) => ['fileDigest', relative(cache, memo)]),
  ].sort());
  const modelFile = join(cache, MODEL, 'onnx', 'vision_model.onnx');
  assert.ok(listing.entries.find((entry) => entry.path === MODEL)!.bytes > (await stat(modelFile)).size);

  const table = await runCli(['cache', '--cache-dir', cache, '--verbose']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`^cache folder: ${cache}$`, 'm'));
  assert.match(table.stdout, /^data sets\s+2\s+\S+ \w?B\s+just now$/m);
  assert.match(table.stdout, /^models\s+1\s/m);
  assert.match(table.stdout, /^text embeddings\s+1\s/m);
  assert.match(table.stdout, /^image embeddings\s+1\s/m);
  assert.match(table.stdout, /^file digests\s+4\s/m);
  assert.match(table.stdout, /^total\s+9\s/m);
  assert.match(table.stdout, new RegExp(`^model\\s+\\S+ \\w?B\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+${MODEL}$`, 'm'), 'the entry lines of --verbose');

  // CLIP_EVAL_CACHE is the same option as for the other commands.
  const fromEnv = await runCli(['cache', '--json'], { env: { CLIP_EVAL_CACHE: cache } });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.equal((JSON.parse(fromEnv.stdout) as Listing).total.entries, 9);
});

test('a cache hit records the last use: on the entry file for embeddings, on the folder (not the files) for a downloaded model', async () => {
  const cache = await populate('cache-hit');
  await age(join(cache, 'text-embeddings'), 40);
  await age(join(cache, 'file-digests'), 40);
  await age(join(cache, MODEL), 40);
  const modelFile = join(cache, MODEL, 'onnx', 'vision_model.onnx');
  const fileTime = (await stat(modelFile, { bigint: true })).mtimeNs;
  const again = await classify(cache);
  assert.equal(again.code, 0, again.stderr);
  const listing = await list(cache);
  for (const kind of ['textEmbedding', 'model']) {
    const row = listing.kinds.find((each) => each.kind === kind)!;
    assert.ok(Date.now() - Date.parse(row.lastUse!) < 10 * 60_000, `${kind}: used just now`);
  }
  assert.equal((await stat(modelFile, { bigint: true })).mtimeNs, fileTime, 'the model file itself is not touched');
  // The image did not change: its digest memo was read, not rewritten, and the hit is its last use.
  const imageMemo = `file-digests/${createHash('sha256').update(image).digest('hex')}.json`;
  assert.ok(Date.now() - Date.parse(listing.entries.find((entry) => entry.path === imageMemo)!.lastUse) < 10 * 60_000, `${imageMemo}: used just now`);
  assert.deepEqual((await pruneJson(cache, '--older-than', '30d')).removed, [], 'entries just used are not old');
});

test('prune --older-than removes only entries last used before then, says what and how much, and a re-run rebuilds them', async () => {
  const cache = await populate('cache-old');
  const cifar = await cifarEntry(cache);
  const [textEntry] = await filesUnder(join(cache, 'text-embeddings'));
  await age(join(cache, MODEL), 40);
  await age(textEntry!, 31);
  await age(join(cache, WDS), 20);
  const expectedFreed = (await bytesUnder(join(cache, MODEL))) + (await stat(textEntry!)).size;

  const dry = await prune(cache, '--older-than', '30d', '--dry-run');
  assert.match(dry.stdout, new RegExp(`^would remove ${MODEL} \\(model, .*, last used 40 d ago\\)$`, 'm'));
  assert.match(dry.stdout, /^would remove 1 text embedding \(1\.\d kB, last used 31 d ago or earlier\)$/m);
  const dryVerbose = await prune(cache, '--older-than', '30d', '--dry-run', '--verbose');
  assert.match(dryVerbose.stdout, /^would remove text-embeddings\/[0-9a-f]{64}\.bin \(text embedding, /m);
  assert.ok(await exists(join(cache, MODEL)), 'a dry run removes nothing');
  assert.ok(await exists(textEntry!));

  const report = await pruneJson(cache, '--older-than', '30d');
  assert.deepEqual(report.removed.map((entry) => entry.path).sort(), [MODEL, relative(cache, textEntry!)].sort());
  assert.equal(report.freedBytes, expectedFreed);
  assert.equal(report.remaining.entries, 7, 'two data sets, the image entry and four digest memos');
  assert.ok(!(await exists(join(cache, MODEL))), 'the model bundle is gone');
  assert.ok(!(await exists(join(cache, 'models', 'org--name'))), 'and its empty repo folder');
  assert.ok(!(await exists(textEntry!)));
  for (const kept of [cifar, WDS]) assert.ok(await exists(join(cache, kept)), `${kept} stays`);
  assert.equal((await filesUnder(join(cache, 'image-embeddings'))).length, 1);

  const downloads = () => server.requests.filter((request) => request.method === 'GET' && request.path === '/org/name/resolve/main/onnx/vision_model.onnx').length;
  const gets = downloads();
  const rerun = await classify(cache);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.equal((JSON.parse(rerun.stdout.trim()) as { top: { label: string }[] }).top[0]!.label, 'apple');
  assert.equal(downloads(), gets + 1, 'the model is downloaded again');
  assert.equal((await list(cache)).total.entries, 9);
  const offline = await runCli(['cifar100', '--model', 'org/name', '--cache-dir', cache, '--offline', '--quiet', '--dataset-url', server.url('/cifar-100-binary.tar.gz'), '--limit', '10'], { env: env() });
  assert.equal(offline.code, 0, `the kept data set still works offline: ${offline.stderr}`);
});

test('prune --max-size removes the least recently used first until the cache fits; data sets and models in use just now are kept', async () => {
  const cache = await populate('cache-lru');
  const cifar = await cifarEntry(cache);
  const [textEntry] = await filesUnder(join(cache, 'text-embeddings'));
  const [imageEntry] = await filesUnder(join(cache, 'image-embeddings'));
  await age(join(cache, cifar), 50);
  await age(imageEntry!, 40);
  await age(join(cache, MODEL), 30);
  await age(textEntry!, 20);
  // WDS stays as the run left it: used just now.
  const sizes = { cifar: await bytesUnder(join(cache, cifar)), model: await bytesUnder(join(cache, MODEL)), image: (await stat(imageEntry!)).size, text: (await stat(textEntry!)).size, wds: await bytesUnder(join(cache, WDS)), memos: await bytesUnder(join(cache, 'file-digests')) };
  const total = Object.values(sizes).reduce((sum, bytes) => sum + bytes, 0);
  // Room for all but the two least recently used: the CIFAR copy and the image entry go, the model stays.
  const limit = total - sizes.cifar - sizes.image;
  const report = await pruneJson(cache, '--max-size', `${limit}B`);
  assert.deepEqual(report.removed.map((entry) => entry.path), [cifar, relative(cache, imageEntry!)], 'oldest first');
  assert.equal(report.remaining.bytes, limit);
  assert.ok(await exists(join(cache, MODEL)));

  const all = await prune(cache, '--max-size', '0B');
  assert.match(all.stdout, new RegExp(`^removed ${MODEL} \\(model, `, 'm'));
  // One age per entry: its own last use; the reason gives the rule.
  assert.match(all.stdout, new RegExp(`^kept ${WDS} \\(data set, [^,]+, last used just now\\): used in the last 10 min; a run may be reading it$`, 'm'));
  assert.match(all.stdout, /^removed 4 file digests \(/m);
  assert.match(all.stdout, /^freed .*; the cache holds 1 entry, [^,]+, more than --max-size 0 B: what was kept is in use$/m);
  assert.ok(await exists(join(cache, WDS)));
  assert.equal((await list(cache)).total.entries, 1);
});

/** A process that holds these locks (as a download or extraction does) until it is killed. */
async function holdLocks(locks: string[]): Promise<ChildProcess> {
  const module = pathToFileURL(join(repoRoot, 'dist', 'src', 'net', 'file-lock.js')).href;
  const code = `import { withFileLock } from ${JSON.stringify(module)};
const locks = ${JSON.stringify(locks)};
const hold = (index) => index === locks.length ? (process.stdout.write('held\\n'), new Promise(() => setInterval(() => {}, 1000))) : withFileLock(locks[index], () => hold(index + 1));
await hold(0);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'held\n');
  return child;
}

test('prune keeps an entry whose lock another process holds, says who holds it, and removes it once that process is gone', async () => {
  const cache = await populate('cache-locked');
  const cifar = await cifarEntry(cache);
  await age(cache, 40);
  const modelLock = join(cache, MODEL, 'onnx', 'vision_model.onnx.lock');
  const holder = await holdLocks([join(cache, `${cifar}.lock`), modelLock]);
  try {
    const run = await prune(cache, '--older-than', '30d');
    assert.match(run.stdout, new RegExp(`^kept ${cifar} \\(data set, .*\\): ${cifar}\\.lock is held by process ${holder.pid} on \\S+$`, 'm'));
    assert.match(run.stdout, new RegExp(`^kept ${MODEL} \\(model, .*\\): ${MODEL}/onnx/vision_model\\.onnx\\.lock is held by process ${holder.pid} on \\S+$`, 'm'));
    assert.match(run.stdout, new RegExp(`^removed ${WDS} `, 'm'));
    assert.equal((await filesUnder(join(cache, cifar))).length, 4, 'the CIFAR copy is whole');
    assert.deepEqual((await filesUnder(join(cache, MODEL))).length, MODEL_FILES.length + 1, 'the model bundle is whole, its lock too');
  } finally {
    holder.kill('SIGKILL');
    await once(holder, 'exit');
  }
  // The locks are left behind by a killed process: stale, so they are broken and the entries go.
  assert.ok(await exists(modelLock));
  const report = await pruneJson(cache, '--older-than', '30d');
  assert.deepEqual(report.kept, []);
  assert.deepEqual(report.removed.map((entry) => entry.path).sort(), [cifar, MODEL].sort());
  assert.ok(!(await exists(join(cache, MODEL))));
  assert.ok(!(await exists(join(cache, cifar))));
  assert.ok(!(await exists(join(cache, `${cifar}.lock`))));
});

test('prune follows no symbolic link out of the cache and removes nothing it does not recognise; stale temporaries of dead writers go', async () => {
  const cache = await populate('cache-links');
  const outside = join(dir, 'outside');
  await mkdir(join(outside, 'cifar100'), { recursive: true });
  await writeFile(join(outside, 'cifar100', 'clip-eval-source.json'), '{}');
  await mkdir(join(outside, 'shard'), { recursive: true });
  const digest = 'ab'.repeat(32);
  await writeFile(join(outside, 'shard', `${digest}.bin`), 'not ours');
  await writeFile(join(outside, 'file.onnx'), 'not ours either');
  await symlink(join(outside, 'cifar100'), join(cache, 'datasets', 'cifar100'));
  await symlink(join(outside, 'shard'), join(cache, 'image-embeddings', 'ab'));
  await symlink(join(outside, 'shard', `${digest}.bin`), join(cache, 'text-embeddings', `${digest}.bin`));
  await symlink(join(outside, 'file.onnx'), join(cache, MODEL, 'onnx', 'linked.onnx'));
  await symlink(outside, join(cache, MODEL, 'onnx', 'linked-folder'));
  await writeFile(join(cache, 'notes.txt'), 'mine');
  await writeFile(join(cache, 'text-embeddings', 'readme.txt'), 'mine');
  await writeFile(join(cache, 'datasets', 'cifar100-old'), 'mine');
  const finished = spawn(process.execPath, ['-e', '']);
  await once(finished, 'exit');
  const temporary = join(cache, 'text-embeddings', `${'cd'.repeat(32)}.bin.${finished.pid}-0123abcd.tmp`);
  await writeFile(temporary, 'partial');
  await age(cache, 40);

  const verbose = await runCli(['cache', '--cache-dir', cache, '--verbose']);
  assert.match(verbose.stdout, /^skipped datasets\/cifar100: a symbolic link, not followed$/m);
  assert.match(verbose.stdout, /^skipped image-embeddings\/ab: a symbolic link, not followed$/m);
  assert.match(verbose.stdout, new RegExp(`^skipped text-embeddings/${digest}\\.bin: a symbolic link, not followed$`, 'm'));

  const report = await pruneJson(cache, '--max-size', '0B');
  assert.equal(report.removed.length, 9, `every entry it recognises, digest memos too: ${JSON.stringify(report)}`);
  assert.equal(report.remaining.entries, 0);
  assert.deepEqual(report.temporaries.map((file) => file.path), [temporary]);
  assert.ok(!(await exists(temporary)));
  for (const target of [join(outside, 'cifar100', 'clip-eval-source.json'), join(outside, 'shard', `${digest}.bin`), join(outside, 'file.onnx')]) {
    assert.ok(await exists(target), `${target} survives`);
  }
  for (const kept of ['datasets/cifar100', 'image-embeddings/ab', `text-embeddings/${digest}.bin`, 'notes.txt', 'text-embeddings/readme.txt', 'datasets/cifar100-old']) {
    assert.ok(await exists(join(cache, kept)), `${kept} is not a cache entry and stays`);
  }
  assert.ok(!(await exists(join(cache, MODEL))), 'the links inside the model bundle were removed as links');
  assert.equal(await readFile(join(outside, 'file.onnx'), 'utf8'), 'not ours either');
});

test('a link on the way into the cache (datasets, text-embeddings, image-embeddings, file-digests) is never descended: nothing outside is listed or pruned; a linked root is resolved once', async () => {
  const cache = await populate('cache-linked-folders');
  const outside = join(dir, 'outside-folders');
  await mkdir(outside);
  const finished = spawn(process.execPath, ['-e', '']);
  await once(finished, 'exit');
  const temporary = `${'cd'.repeat(32)}.bin.${finished.pid}-0123abcd.tmp`;
  await writeFile(join(cache, 'text-embeddings', temporary), 'partial');
  const shard = (await readdir(join(cache, 'image-embeddings')))[0]!;
  await writeFile(join(cache, 'image-embeddings', shard, temporary), 'partial');
  await writeFile(join(cache, 'file-digests', temporary), 'partial');
  await age(cache, 40);
  // Each folder moves out of the cache and a link takes its place: what is below it is no longer the cache's.
  for (const folder of ['datasets', 'text-embeddings', 'image-embeddings', 'file-digests']) {
    await rename(join(cache, folder), join(outside, folder));
    await symlink(join(outside, folder), join(cache, folder));
  }
  const before = await filesUnder(outside);
  assert.ok(before.length > 10, `${before.length} files outside`);

  const listing = await list(cache);
  assert.deepEqual(listing.entries.map((entry) => entry.path), [MODEL], 'only the model is below real folders');
  for (const folder of ['datasets', 'text-embeddings', 'image-embeddings', 'file-digests']) {
    assert.equal(listing.skipped.filter((skip) => skip.path === folder).length, 1, `${folder} is skipped once: ${JSON.stringify(listing.skipped)}`);
    assert.equal(listing.skipped.find((skip) => skip.path === folder)!.reason, 'a symbolic link, not followed');
  }
  const report = await pruneJson(cache, '--max-size', '0B');
  assert.deepEqual(report.removed.map((entry) => entry.path), [MODEL]);
  assert.deepEqual(report.temporaries, []);
  assert.deepEqual(await filesUnder(outside), before, 'every file outside the cache survives');

  // A cache root that is itself a link is the user's choice: resolved once, listed at its real path.
  const linkedRoot = join(dir, 'linked-root');
  await symlink(cache, linkedRoot);
  const viaLink = await list(linkedRoot);
  assert.equal(viaLink.root, cache);
  assert.deepEqual(viaLink.skipped, listing.skipped);
});

test('bad --older-than and --max-size values, and prune without either, are exit 2 with one line naming the flag', async () => {
  const cache = join(dir, 'cache-usage');
  const cases: [string[], RegExp][] = [
    [['--older-than', '30'], /^clip-eval: --older-than 30: expected a whole number and a unit/],
    [['--older-than', '1.5d'], /^clip-eval: --older-than 1\.5d: /],
    [['--older-than', '-1d'], /^clip-eval: --older-than -1d: /],
    [['--older-than', '3y'], /^clip-eval: --older-than 3y: /],
    [['--older-than', '99999999999999999d'], /^clip-eval: --older-than 99999999999999999d: /],
    [['--max-size', '5'], /^clip-eval: --max-size 5: expected a size with a unit/],
    [['--max-size', '5XB'], /^clip-eval: --max-size 5XB: /],
    [['--max-size', 'GB'], /^clip-eval: --max-size GB: /],
    [['--max-size', '-1GB'], /^clip-eval: --max-size -1GB: /],
    [['--max-size', ''], /^clip-eval: --max-size : /],
    [[], /^clip-eval: cache prune: give --older-than and\/or --max-size/],
  ];
  for (const [flags, pattern] of cases) {
    const run = await runCli(['cache', 'prune', '--cache-dir', cache, ...flags]);
    assert.equal(run.code, 2, `${flags.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, pattern);
  }
  for (const [value, bytes] of [['5GB', 5e9], ['500MB', 5e8], ['1GiB', 2 ** 30], ['1.5kB', 1500], ['2 MiB', 2 ** 21], ['0B', 0]] as const) {
    assert.equal(byteSize('--max-size')(value), bytes, value);
  }
  for (const [value, ms] of [['30d', 30 * DAY_MS], ['12h', 12 * 3_600_000], ['90m', 90 * 60_000], ['45s', 45_000], ['2w', 14 * DAY_MS]] as const) {
    assert.equal(durationMs('--older-than')(value), ms, value);
  }
  const dry = await runCli(['cache', 'prune', '--cache-dir', cache, '--max-size', '1GiB', '--older-than', '90m', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  const file = join(dir, 'cache-is-a-file');
  await writeFile(file, '');
  const notFolder = await runCli(['cache', '--cache-dir', file]);
  assert.equal(notFolder.code, 3);
  assert.match(notFolder.stderr, /^clip-eval: .*cache-is-a-file: the cache folder is not a folder/);
});
