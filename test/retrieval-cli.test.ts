import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SeededRandom } from '../scripts/lib/seeded-random.js';
import { CIFAR100_RAW_NAMES, writePatternClip } from '../scripts/make-pattern-clip.js';
import { runCli } from './support/cli.js';
import { numberDigits } from './support/json-numbers.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { encodeClassImage, publishDatasetRepo, writeShard, type ShardMember } from './support/webdataset.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { resultNumber } from '../src/core/format.js';
import { wilsonInterval } from '../src/tasks/statistics.js';
import { havePython, xmlElements } from './support/xml.js';

/**
 * `clip-eval retrieval` end to end through the built CLI with the pattern CLIP: one image per CIFAR-100
 * class and two captions each whose words carry the image's pattern ("a photo of a <class>", "<class>").
 * Through a correct pipeline recall@1 is ~100 %; with the captions shuffled among the images, ~chance.
 */

let dir: string;
let modelArgs: string[];
let hub: TestServer;
/** A caption webdataset (as CLIP_benchmark's flickr30k): 20 samples, an image and a .txt of 2 captions each, in 2 shards. */
const WDS_CLASSES = 20;
const names = CIFAR100_RAW_NAMES.map((raw) => raw.replace(/_/g, ' '));

function manifest(rows: readonly (readonly [string, string])[]): string {
  return `path,caption\n${rows.map(([path, caption]) => `${path},"${caption}"`).join('\n')}\n`;
}

/** Two captions per image, image i named first on row 2i. */
function captionRows(): [string, string][] {
  return CIFAR100_RAW_NAMES.flatMap((raw, i): [string, string][] => [
    [`images/${raw}.png`, `a photo of a ${names[i]}`],
    [`images/${raw}.png`, names[i]!],
  ]);
}

before(async () => {
  dir = await makeTempDir('clip-eval-retrieval-');
  await writePatternClip(join(dir, 'model'), { variants: false });
  modelArgs = ['--model', join(dir, 'model'), '--cache-dir', join(dir, 'cache'), '--threads', '1', '--quiet'];
  await mkdir(join(dir, 'images'));
  for (const [i, raw] of CIFAR100_RAW_NAMES.entries()) await classImage(names[i]!).png().toFile(join(dir, 'images', `${raw}.png`));
  await writeFile(join(dir, 'captions.csv'), manifest(captionRows()));
  // The same captions, each moved to a random image: the pipeline can no longer find the right one.
  const random = new SeededRandom(12);
  const rows = captionRows();
  const captions = rows.map(([, caption]) => caption);
  for (let i = captions.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random.next() * (i + 1));
    [captions[i], captions[j]] = [captions[j]!, captions[i]!];
  }
  await writeFile(join(dir, 'shuffled.csv'), manifest(rows.map(([path], i) => [path, captions[i]!])));

  const layout = join(dir, 'flickr');
  const members: ShardMember[] = [];
  for (let i = 0; i < WDS_CLASSES; i += 1) {
    const key = `s${String(i).padStart(7, '0')}`;
    members.push({ name: `${key}.webp`, bytes: await encodeClassImage(names[i]!, 'webp') });
    members.push({ name: `${key}.txt`, bytes: Buffer.from(`a photo of a ${names[i]}\n${names[i]}\n`) });
  }
  await mkdir(join(layout, 'test'), { recursive: true });
  await writeFile(join(layout, 'test', 'nshards.txt'), '2\n');
  await writeShard(join(layout, 'test', '0.tar'), members.slice(0, WDS_CLASSES));
  await writeShard(join(layout, 'test', '1.tar'), members.slice(WDS_CLASSES));
  hub = await startTestServer();
  await publishDatasetRepo(hub, 'clip-benchmark/wds_flickr', layout);
});

after(async () => {
  await hub?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Report {
  task: string;
  tool: { name: string; version: string; node: string; onnxruntime: string };
  createdAt: string;
  options: { batchSize: number; threads?: number; device: string; recallK: number[] };
  dataset: { images: number; captions: number; sha256: string };
  results: { model: { id: string; variant: string; files: { role: string; path: string; sha256: string }[] }; metrics: { images: number; captions: number; imageRetrievalRecall: Record<string, number>; textRetrievalRecall: Record<string, number>; imageRetrievalRecallInterval: Record<string, [number, number]>; textRetrievalRecallInterval: Record<string, [number, number]> }; timing: { wallSeconds: number; textEmbeddings: string; similarityBlockFloats: number } }[];
}

async function retrieval(spec: string, name: string, ...extra: string[]) {
  const json = join(dir, `${name}.json`);
  const predictions = join(dir, `${name}.jsonl`);
  const run = await runCli(['retrieval', spec, ...modelArgs, '--json', json, '--predictions', predictions, ...extra], { env: { HF_ENDPOINT: hub.origin } });
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as Report;
  const rows = (await readFile(predictions, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as { caption: number; image: number; rank: number; top: number[] });
  return { run, report, rows };
}

test('retrieval on a caption manifest: recall@1 ~100 % both ways, a table, JSON keyed by k and one prediction row per caption', async () => {
  const { run, report, rows } = await retrieval(join(dir, 'captions.csv'), 'captions');
  const [result] = report.results;
  assert.equal(report.task, 'retrieval');
  assert.deepEqual(report.dataset, { name: join(dir, 'captions.csv'), split: 'captions', images: 100, captions: 200, sha256: report.dataset.sha256 });
  assert.match(report.dataset.sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(Object.keys(result!.metrics.imageRetrievalRecall), ['1', '5', '10']);
  assert.ok(result!.metrics.imageRetrievalRecall['1']! >= 0.95, JSON.stringify(result!.metrics));
  assert.ok(result!.metrics.textRetrievalRecall['1']! >= 0.95, JSON.stringify(result!.metrics));
  assert.equal(result!.timing.textEmbeddings, 'computed');
  assert.ok(result!.timing.similarityBlockFloats > 0 && result!.timing.similarityBlockFloats < 200 * 100, 'a tile of the similarities, never the whole matrix');
  assert.match(run.stdout, /^retrieval: .*captions\.csv \(100 images, 200 captions\)/);
  assert.match(run.stdout, /^ {2}@1 +\d+\.\d\d % \(\d+\.\d\d–\d+\.\d\d\) +\d+\.\d\d % \(\d+\.\d\d–\d+\.\d\d\)$/m, 'each recall with its 95 % interval');
  assert.deepEqual(Object.keys(result!.metrics.textRetrievalRecallInterval), ['1', '5', '10']);
  assert.match(run.stdout, /^time: \d+\.\d\d s/m);
  assert.equal(rows.length, 200);
  rows.forEach((row, c) => {
    assert.equal(row.caption, c);
    assert.equal(row.image, Math.floor(c / 2));
    assert.equal(row.top.length, 10);
    assert.equal(row.rank === 1, row.top[0] === row.image);
  });
  const hits = rows.filter((row) => row.rank === 1).length;
  assert.equal(resultNumber(hits / rows.length), result!.metrics.imageRetrievalRecall['1']);
  assert.deepEqual(result!.metrics.imageRetrievalRecallInterval['1'], wilsonInterval(hits, rows.length).map(resultNumber), 'the interval is on (captions right, captions)');
  const images = Math.round(result!.metrics.textRetrievalRecall['5']! * 100);
  assert.deepEqual(result!.metrics.textRetrievalRecallInterval['5'], wilsonInterval(images, 100).map(resultNumber), 'the interval is on (images right, images)');

  const again = await retrieval(join(dir, 'captions.csv'), 'again', '--recall-k', '2,1');
  assert.equal(again.report.results[0]!.timing.textEmbeddings, 'cached');
  assert.deepEqual(Object.keys(again.report.results[0]!.metrics.textRetrievalRecall), ['1', '2']);
  assert.equal(again.report.results[0]!.metrics.imageRetrievalRecall['1'], result!.metrics.imageRetrievalRecall['1']);
  assert.equal(again.rows[0]!.top.length, 2);
});

test('retrieval --json traces its result as eval --json does: when, the tool and runtimes, the options, each model file and its sha256', async () => {
  const { report } = await retrieval(join(dir, 'captions.csv'), 'traced', '--batch-size', '7');
  assert.deepEqual(numberDigits(await readFile(join(dir, 'traced.json'), 'utf8')).filter(({ digits }) => digits > 15), [], 'no float noise');
  assert.equal(report.tool.name, 'clip-eval');
  assert.equal(report.tool.node, process.version);
  assert.match(report.tool.onnxruntime, /^\d+\.\d+\.\d+/);
  assert.ok(Math.abs(Date.parse(report.createdAt) - Date.now()) < 10 * 60_000, report.createdAt);
  assert.deepEqual(report.options, { batchSize: 7, threads: 1, device: 'cpu', recallK: [1, 5, 10] });
  const { files } = report.results[0]!.model;
  assert.deepEqual(files.map((file) => file.role), ['vision', 'text', 'tokenizer']);
  for (const file of files) {
    assert.ok(file.path.startsWith(join(dir, 'model')), file.path);
    assert.equal(file.sha256, createHash('sha256').update(await readFile(file.path)).digest('hex'), file.path);
  }
  const shared = await runCli(['retrieval', join(dir, 'captions.csv'), ...modelArgs, '--relative-paths', '--json', join(dir, 'shared.json')], { cwd: dir });
  assert.equal(shared.code, 0, shared.stderr);
  const sharedFiles = (JSON.parse(await readFile(join(dir, 'shared.json'), 'utf8')) as Report).results[0]!.model.files;
  assert.deepEqual(sharedFiles.map((file) => file.path), ['model/onnx/vision_model.onnx', 'model/onnx/text_model.onnx', 'model/tokenizer.json']);
  assert.deepEqual(sharedFiles.map((file) => file.sha256), files.map((file) => file.sha256));
});

test('retrieval with the captions shuffled among the images falls to about chance', async () => {
  const { report } = await retrieval(join(dir, 'shuffled.csv'), 'shuffled');
  const { metrics } = report.results[0]!;
  assert.ok(metrics.imageRetrievalRecall['1']! <= 0.1, JSON.stringify(metrics));
  assert.ok(metrics.imageRetrievalRecall['10']! <= 0.3, JSON.stringify(metrics));
});

test('retrieval on a webdataset with .txt captions: served by the hub (wds/NAME) and from a folder (wds:DIR)', async () => {
  for (const spec of ['wds/flickr', `wds:${join(dir, 'flickr')}`]) {
    const { report, rows } = await retrieval(spec, spec.startsWith('wds/') ? 'wds-hub' : 'wds-folder');
    const { metrics } = report.results[0]!;
    assert.equal(metrics.images, WDS_CLASSES);
    assert.equal(metrics.captions, 2 * WDS_CLASSES);
    assert.ok(metrics.imageRetrievalRecall['1']! >= 0.95, JSON.stringify(metrics));
    assert.ok(metrics.textRetrievalRecall['1']! >= 0.95, JSON.stringify(metrics));
    assert.deepEqual(rows.map((row) => row.image), Array.from({ length: 2 * WDS_CLASSES }, (_, c) => Math.floor(c / 2)));
  }
});

test('retrieval --min holds recall@k to a bar: pass exits 0, a bar missed exits 1 with a check-failed line', async () => {
  const pass = await runCli(['retrieval', join(dir, 'captions.csv'), ...modelArgs, '--recall-k', '1', '--min', 'imageRetrievalRecall@5=90%', '--min', 'textRetrievalRecall@1=0.9']);
  assert.equal(pass.code, 0, pass.stderr);
  assert.match(pass.stdout, /^ {2}@5 /m, 'a bar\'s k is measured even when --recall-k leaves it out');
  assert.match(pass.stdout, /^ {2}pass {2}.*imageRetrievalRecall@5 100\.00 % meets the bar 90\.00 %$/m);
  const junit = join(dir, 'shuffled.xml');
  const fail = await runCli(['retrieval', join(dir, 'shuffled.csv'), ...modelArgs, '--min', 'imageRetrievalRecall@1=50%', '--junit', junit]);
  assert.equal(fail.code, 1, fail.stderr);
  assert.match(fail.stdout, /^ {2}FAIL {2}.*imageRetrievalRecall@1 .* is below the bar 50\.00 %$/m);
  assert.match(fail.stderr, /^clip-eval: check failed: .*imageRetrievalRecall@1 [^\n]+\n$/);
  const xml = await readFile(junit, 'utf8');
  assert.match(xml, /<testsuites name="clip-eval" tests="6" failures="1"/);
  assert.match(xml, /name="imageRetrievalRecall@1" time="[\d.]+">\n {6}<failure message="[^"]*is below the bar 50\.00 %" type="AccuracyCheck">/);
  if (havePython) {
    const cases = xmlElements(xml, 'testcase');
    assert.deepEqual(cases.map((c) => c.name), ['imageRetrievalRecall@1', 'imageRetrievalRecall@5', 'imageRetrievalRecall@10', 'textRetrievalRecall@1', 'textRetrievalRecall@5', 'textRetrievalRecall@10']);
    assert.deepEqual(cases.map((c) => (c._children as unknown as string[]).includes('failure')), [true, false, false, false, false, false]);
  }
});

async function refuses(args: string[], pattern: RegExp, code = 3): Promise<void> {
  const run = await runCli(['retrieval', ...args, ...modelArgs]);
  assert.equal(run.code, code, run.stderr);
  assert.match(run.stderr, /^clip-eval: [^\n]+\n$/);
  assert.match(run.stderr, pattern);
}

test('retrieval errors are one line: a missing image, a data set without captions, eval on captions, bad --recall-k and --min', async () => {
  await writeFile(join(dir, 'missing.csv'), manifest([['images/nowhere.png', 'a photo of a cat']]));
  await refuses([join(dir, 'missing.csv')], /missing\.csv line 2: images\/nowhere\.png does not exist/);
  await writeFile(join(dir, 'empty-caption.csv'), 'path,caption\nimages/apple.png,\n');
  await refuses([join(dir, 'empty-caption.csv')], /line 2: the caption is empty/);
  // A classification manifest is refused by its header, before any image is read.
  await writeFile(join(dir, 'labels.csv'), 'path,label\nimages/apple.png,apple\n');
  await refuses([join(dir, 'labels.csv')], /manifest .*labels\.csv line 1: the header must be exactly path,caption \(one row per caption\) for a data set of captions\n$/);
  await mkdir(join(dir, 'pets', 'apple'), { recursive: true });
  await classImage('apple').png().toFile(join(dir, 'pets', 'apple', 'apple.png'));
  await refuses([join(dir, 'pets')], /sample apple\/apple\.png has no captions; retrieval needs one or more captions per image/);
  const evaluation = await runCli(['eval', join(dir, 'captions.csv'), ...modelArgs]);
  assert.equal(evaluation.code, 3, evaluation.stderr);
  assert.match(evaluation.stderr, /^clip-eval: [^\n]*captions\.csv: no class names, so nothing to classify \(a data set of captions is for retrieval\)\n$/);
  await refuses([join(dir, 'captions.csv'), '--recall-k', '1,0'], /--recall-k 1,0: expected positive whole numbers/, 2);
  // Flags that would do nothing here are refused, not ignored: CIFAR's data folder, a manifest's split.
  await refuses([join(dir, 'captions.csv'), '--data-dir', dir], /unknown option '--data-dir'/, 2);
  await refuses([join(dir, 'captions.csv'), '--split', 'train'], /--split train: only webdatasets have splits, not .*captions\.csv \(CSV manifest\)/, 2);
  await refuses([join(dir, 'captions.csv'), '--min', 'top1=50%'], /--min top1=50%: expected METRIC@K=VALUE/, 2);
  await refuses([join(dir, 'captions.csv'), '--min', 'imageRetrievalRecall@5=80'], /--min imageRetrievalRecall@5 80: expected a fraction/, 2);
});

test('fetch wds/NAME of a caption webdataset (no classnames.txt) fills the cache; retrieval then runs from it with the hub stopped', async () => {
  const server = await startTestServer();
  await publishDatasetRepo(server, 'clip-benchmark/wds_flickr', join(dir, 'flickr'));
  const cache = join(dir, 'cache-fetched');
  const fetched = await runCli(['fetch', 'wds/flickr', '--cache-dir', cache, '--quiet'], { env: { HF_ENDPOINT: server.origin } });
  assert.equal(fetched.code, 0, fetched.stderr);
  const folder = join(cache, 'datasets', 'hub', 'clip-benchmark--wds_flickr', 'main');
  assert.equal(fetched.stdout, `wds/flickr (test, 2 shards, captions): ${folder}\n`);
  await server.close();
  for (const offline of [[], ['--offline']]) {
    const json = join(dir, `fetched${offline.join('')}.json`);
    const run = await runCli(['retrieval', 'wds/flickr', '--model', join(dir, 'model'), '--cache-dir', cache, '--threads', '1', '--quiet', '--json', json, ...offline], { env: { HF_ENDPOINT: server.origin } });
    assert.equal(run.code, 0, run.stderr);
    const { metrics } = (JSON.parse(await readFile(json, 'utf8')) as Report).results[0]!;
    assert.equal(metrics.images, WDS_CLASSES);
    assert.equal(metrics.captions, 2 * WDS_CLASSES);
    assert.ok(metrics.imageRetrievalRecall['1']! >= 0.95, JSON.stringify(metrics));
  }

  const local = await runCli(['fetch', `wds:${join(dir, 'flickr')}`, '--cache-dir', cache, '--quiet']);
  assert.equal(local.code, 0, local.stderr);
  assert.equal(local.stdout, `wds:${join(dir, 'flickr')} (test, 2 shards, captions): ${join(dir, 'flickr')}\n`);
});

test('fetch of a webdataset with neither classnames.txt nor captions is one line, exit 3, before its other shards are downloaded', async () => {
  const layout = join(dir, 'unlabelled');
  const shard = async (first: number): Promise<ShardMember[]> => [
    { name: `s${first}.png`, bytes: await encodeClassImage(names[first]!, 'png') },
    { name: `s${first}.cls`, bytes: Buffer.from('0\n') },
  ];
  await mkdir(join(layout, 'test'), { recursive: true });
  await writeFile(join(layout, 'test', 'nshards.txt'), '2\n');
  await writeShard(join(layout, 'test', '0.tar'), await shard(0));
  await writeShard(join(layout, 'test', '1.tar'), await shard(1));
  await publishDatasetRepo(hub, 'clip-benchmark/wds_unlabelled', layout);
  const cache = join(dir, 'cache-unlabelled');
  const run = await runCli(['fetch', 'wds/unlabelled', '--cache-dir', cache, '--quiet'], { env: { HF_ENDPOINT: hub.origin } });
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, /^clip-eval: webdataset wds\/unlabelled has no classnames\.txt, so it was read as a caption data set, but webdataset shard test\/0\.tar: sample s0 has no captions \(\.txt member\)\n$/);
  const folder = join(cache, 'datasets', 'hub', 'clip-benchmark--wds_unlabelled', 'main', 'test');
  assert.ok(existsSync(join(folder, '0.tar')));
  assert.equal(existsSync(join(folder, '1.tar')), false);
});
