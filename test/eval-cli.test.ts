import assert from 'node:assert/strict';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import { writePatternCifarArchive, writePatternClip } from '../scripts/make-pattern-clip.js';
import { oneErrorLine } from './support/baseline.js';
import { runCli } from './support/cli.js';
import { numberDigits } from './support/json-numbers.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';
import { makeSamples, sampleMembers, writeLayout } from './support/webdataset.js';
import { CIFAR10_NAMES } from '../src/datasets/cifar/class-names.js';

/** `clip-eval eval <dataset>` on the CIFAR fixture: the same run as `clip-eval cifar100`, and the new flags. */
let dir: string;
let model: string;
let data: string;

before(async () => {
  dir = await makeTempDir('clip-eval-eval-cli-');
  model = join(dir, 'model');
  await writePatternClip(model, { variants: false });
  await writePatternCifarArchive(join(dir, 'cifar-100-binary.tar.gz'), { name: 'cifar100', perClass: 2 });
  await tar.x({ file: join(dir, 'cifar-100-binary.tar.gz'), cwd: dir });
  data = join(dir, 'cifar-100-binary');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function args(command: string[], ...extra: string[]): string[] {
  return [...command, '--model', model, '--data-dir', data, '--cache-dir', join(dir, 'cache'), '--quiet', ...extra];
}

interface Report {
  dataset: { name: string; split: string; classes: number; images: number; skipped: number; sha256: string };
  results: { metrics: Record<string, unknown> }[];
}

test('eval cifar100 is clip-eval cifar100: the same report fields and metrics', async () => {
  const viaEval = await runCli(args(['eval', 'cifar100'], '--per-class', '1', '--json', join(dir, 'eval.json')));
  assert.equal(viaEval.code, 0, viaEval.stderr);
  const viaName = await runCli(args(['cifar100'], '--per-class', '1', '--json', join(dir, 'named.json')));
  assert.equal(viaName.code, 0, viaName.stderr);
  const text = await readFile(join(dir, 'eval.json'), 'utf8');
  // Derived values (intervals, means, times) carry 15 significant digits at most: no float noise.
  const noisy = numberDigits(text).filter(({ digits }) => digits > 15);
  assert.deepEqual(noisy, []);
  assert.ok(numberDigits(text).some(({ literal }) => literal.includes('.')), 'the report has fractions to round');
  const a = JSON.parse(text) as Report;
  const b = JSON.parse(await readFile(join(dir, 'named.json'), 'utf8')) as Report;
  assert.deepEqual(a.dataset, b.dataset);
  assert.deepEqual(a.results[0]!.metrics, b.results[0]!.metrics);
  assert.deepEqual({ name: a.dataset.name, split: a.dataset.split, classes: a.dataset.classes, images: a.dataset.images, skipped: a.dataset.skipped }, { name: 'cifar100', split: 'test', classes: 100, images: 100, skipped: 0 });
  assert.equal(a.results[0]!.metrics.top1, 1);
  assert.match(viaEval.stdout, /super-class top-1\s+100\.00 %/);
  const timeless = (text: string) => text.replace(/(throughput|wall time|text embeddings|image embeddings) .*\n/g, '');
  assert.equal(timeless(viaEval.stdout), timeless(viaName.stdout));
});

test('eval --classnames: shifted names score about chance, change the digest, and a baseline refuses them', async () => {
  const names = (await readFile(join(data, 'fine_label_names.txt'), 'utf8')).trim().split('\n').map((n) => n.replace(/_/g, ' '));
  const shifted = join(dir, 'shifted.txt');
  await writeFile(shifted, `${[...names.slice(1), names[0]].join('\n')}\n`);
  const baseline = join(dir, 'baseline.json');
  const plain = await runCli(args(['eval', 'cifar100'], '--per-class', '1', '--templates', 'single', '--json', baseline));
  assert.equal(plain.code, 0, plain.stderr);
  const run = await runCli(args(['eval', 'cifar100'], '--per-class', '1', '--templates', 'single', '--classnames', shifted, '--json', join(dir, 'shifted.json')));
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(join(dir, 'shifted.json'), 'utf8')) as Report;
  assert.ok((report.results[0]!.metrics.top1 as number) <= 0.05, `top-1 ${String(report.results[0]!.metrics.top1)}`);
  const before = JSON.parse(await readFile(baseline, 'utf8')) as Report;
  assert.notEqual(report.dataset.sha256, before.dataset.sha256);
  const refused = await runCli(args(['eval', 'cifar100'], '--per-class', '1', '--templates', 'single', '--classnames', shifted, '--baseline', baseline));
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /^clip-eval: --baseline .*baseline\.json: was measured on a different copy of cifar100/);
  const wrongCount = await runCli(args(['eval', 'cifar100'], '--classnames', 'cifar10'));
  assert.equal(wrongCount.code, 3, wrongCount.stderr);
  assert.match(wrongCount.stderr, /^clip-eval: --classnames cifar10: 10 names, but cifar100 has 100 classes\n$/);
});

test('eval: errors are one line with their exit codes', async () => {
  const cases: [string[], number, RegExp][] = [
    [args(['eval', 'cifar100'], '--split', 'train'), 2, /--split train: cifar100 has only the test split$/],
    // A folder (here the extracted CIFAR) has no splits: --split is refused, not ignored.
    [args(['eval', data], '--split', 'test'), 2, /--split test: only webdatasets have splits, not .*cifar-100-binary \(image folder\); drop --split$/],
    // args() passes --data-dir: for a folder it would do nothing, so it is refused.
    [args(['eval', data]), 2, /--data-dir .*cifar-100-binary: only CIFAR is read from there, not .*cifar-100-binary \(image folder\); drop --data-dir$/],
    [args(['eval', 'cifar100'], '--templates', 'dataset'), 2, /--templates dataset: cifar100 has no templates of its own/],
    [args(['eval', 'cifar100'], '--classnames', join(dir, 'no-such-names.txt')), 3, /no-such-names\.txt/],
    [['eval'], 2, /missing required argument 'dataset'/],
  ];
  for (const [argv, code, message] of cases) {
    const run = await runCli(argv);
    assert.equal(run.code, code, `${argv.join(' ')}: ${run.stderr}`);
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0]!, /^clip-eval: /);
    assert.match(lines[0]!, message);
  }
});

test('eval: an unreadable image is one line naming it, the decoder quoted up to a whole word, and --skip-unreadable suggested', async () => {
  const folder = join(dir, 'unreadable');
  await mkdir(join(folder, 'apple'), { recursive: true });
  await mkdir(join(folder, 'bear'), { recursive: true });
  await classImage('apple').png().toFile(join(folder, 'apple', 'apple.png'));
  // Three quarters of an AVIF: libvips says "source: bad seek to N" again and again, more than the line quotes.
  const avif = await classImage('bear').avif().toBuffer();
  await writeFile(join(folder, 'bear', 'bear.avif'), avif.subarray(0, (3 * avif.length) >> 2));
  const run = await runCli(['eval', folder, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet']);
  assert.equal(run.code, 3, run.stderr);
  const line = oneErrorLine(run.stderr);
  // Whole words only before the ellipsis: "… source: bad seek to 652 source: bad…", never "… source: ba…".
  assert.match(line, /bear\.avif: corrupt or truncated image \((?:(?:source:|bad|seek|to|\d+) )+(?:source:|bad|seek|to|\d+)…\); add --skip-unreadable to skip and count such images instead$/);
  const skipped = await runCli(['eval', folder, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet', '--skip-unreadable']);
  assert.equal(skipped.code, 0, skipped.stderr);
  assert.match(skipped.stdout, /images +1 of 2 \(1 unreadable, skipped\)/);
});

test('eval --relative-paths: the model files in --json and --report relative to the working folder, or <cache>/… inside the cache', async () => {
  await cp(model, join(dir, 'shared-cache', 'models', 'local'), { recursive: true });
  // The model as the user names it (relative, from the working folder): its id stays as given.
  for (const [modelPath, prefix] of [['model', 'model/'], ['shared-cache/models/local', '<cache>/models/local/']] as const) {
    const json = join(dir, 'relative.json');
    const html = join(dir, 'relative.html');
    const run = await runCli(['eval', 'cifar100', '--model', modelPath, '--data-dir', 'cifar-100-binary', '--cache-dir', 'shared-cache', '--quiet', '--per-class', '1', '--relative-paths', '--json', json, '--report', html], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    const files = (JSON.parse(await readFile(json, 'utf8')) as { results: { model: { files: { path: string }[] } }[] }).results[0]!.model.files.map((file) => file.path);
    assert.deepEqual(files, [`${prefix}onnx/vision_model.onnx`, `${prefix}onnx/text_model.onnx`, `${prefix}tokenizer.json`]);
    const page = await readFile(html, 'utf8');
    assert.ok(!page.includes(dir), 'no absolute path of this machine in the HTML report');
  }
});

test('classify cifar100:N: the data set\'s class names, the true label beside the prediction, the logits of eval', async () => {
  const run = await runCli(['classify', 'cifar100:137', '--model', model, '--data-dir', data, '--cache-dir', join(dir, 'cache'), '--quiet', '--templates', 'single']);
  assert.equal(run.code, 0, run.stderr);
  const [header, , first] = run.stdout.split('\n');
  const names = (await readFile(join(data, 'fine_label_names.txt'), 'utf8')).trim().split('\n').map((n) => n.replace(/_/g, ' '));
  const truth = /^cifar100:137 {2}\(truth: (.+)\)$/.exec(header!)?.[1];
  assert.ok(truth && names.includes(truth), header);
  assert.match(first!, new RegExp(`^\\s+1\\s+${truth}\\s`), 'the fixture classifies its own image');

  const json = await runCli(['classify', 'cifar100:137', 'cifar100:5', '--model', model, '--data-dir', data, '--cache-dir', join(dir, 'cache'), '--quiet', '--templates', 'single', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const records = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; truth: string; top: { label: string; logit: number }[] });
  assert.deepEqual(records.map((r) => Object.keys(r)), [['file', 'truth', 'top'], ['file', 'truth', 'top']]);
  assert.equal(records[0]!.truth, truth);
  assert.equal(records[0]!.top.length, 5);

  const predictions = join(dir, 'predictions.jsonl');
  const evaluated = await runCli(args(['eval', 'cifar100'], '--templates', 'single', '--predictions', predictions));
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const rows = new Map((await readFile(predictions, 'utf8')).trim().split('\n').map((line) => {
    const row = JSON.parse(line) as { id: string; label: number; top5: number[]; scores: number[] };
    return [row.id, row];
  }));
  for (const [i, id] of ['137', '5'].entries()) {
    const row = rows.get(id)!;
    assert.equal(records[i]!.truth, names[row.label]);
    assert.deepEqual(records[i]!.top.map((s) => s.label), row.top5.map((c) => names[c]), `sample ${id}`);
    assert.deepEqual(records[i]!.top.map((s) => s.logit), row.scores, `sample ${id}: the planar fast path and the decoded PNG give the same logits`);
  }

  const cases: [string[], number, RegExp][] = [
    [['classify', 'cifar100:5000', '--model', model, '--data-dir', data, '--cache-dir', join(dir, 'cache')], 3, /cifar100: has no sample 5000 \(it has 200, numbered from 0, and none has that id\)/],
    [['classify', 'cifar100:5', join(dir, 'photo.png')], 2, /either image files or data set samples/],
  ];
  for (const [argv, code, message] of cases) {
    const failed = await runCli(argv);
    assert.equal(failed.code, code, failed.stderr);
    assert.equal(failed.stderr.trim().split('\n').length, 1, failed.stderr);
    assert.match(failed.stderr, message);
  }
});

test('classify wds:DIR:KEY: a shard sample by key, the data set\'s names and own templates by default', async () => {
  const samples = await makeSamples(CIFAR10_NAMES, 2);
  const layout = join(dir, 'wds-layout');
  await writeLayout(layout, { classNames: CIFAR10_NAMES, templates: ['a photo of a {c}.', 'a picture of a {c}.'], shards: [samples.flatMap(sampleMembers)] });
  const sample = samples[13]!;
  const run = await runCli(['classify', `wds:${layout}:${sample.key}`, `wds:${layout}:4`, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet', '--json', '--verbose']);
  assert.equal(run.code, 0, run.stderr);
  const records = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; truth: string; top: { label: string }[] });
  assert.deepEqual(records.map((r) => r.truth), [CIFAR10_NAMES[sample.label], CIFAR10_NAMES[samples[4]!.label]]);
  assert.deepEqual(records.map((r) => r.top[0]!.label), records.map((r) => r.truth), 'the fixture classifies its own images');
  assert.deepEqual(records.map((r) => r.file), [`wds:${layout}:${sample.key}`, `wds:${layout}:${samples[4]!.key}`], 'a position is shown as the key it names');
  const missing = await runCli(['classify', `wds:${layout}:s9999999`, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet']);
  assert.equal(missing.code, 3, missing.stderr);
  assert.match(missing.stderr, /^clip-eval: wds:.*: has no sample with id s9999999\n$/);
});

test('classify wds:DIR:KEY with all-digit keys (as img2dataset writes them): the key is an id first; #N and other numbers are positions', async () => {
  // Keys 000000000, 000000003, 000000006, …: the sample with key 000000001 is at position 7.
  const samples = (await makeSamples(CIFAR10_NAMES, 1)).map((sample, index) => ({ ...sample, key: String((index * 3) % 10).padStart(9, '0') }));
  const layout = join(dir, 'wds-digit-keys');
  await writeLayout(layout, { classNames: CIFAR10_NAMES, templates: ['a photo of a {c}.'], shards: [samples.flatMap(sampleMembers)] });
  const run = await runCli(['classify', `wds:${layout}:000000001`, `wds:${layout}:#1`, `wds:${layout}:4`, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const records = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; truth: string });
  assert.deepEqual(records.map((r) => r.file), [`wds:${layout}:000000001`, `wds:${layout}:000000003`, `wds:${layout}:000000002`]);
  assert.deepEqual(records.map((r) => r.truth), [CIFAR10_NAMES[samples[7]!.label], CIFAR10_NAMES[samples[1]!.label], CIFAR10_NAMES[samples[4]!.label]]);
  const beyond = await runCli(['classify', `wds:${layout}:#10`, '--model', model, '--cache-dir', join(dir, 'cache'), '--quiet']);
  assert.equal(beyond.code, 3, beyond.stderr);
  assert.match(beyond.stderr, /^clip-eval: wds:.*: has no sample #10 \(it has 10, numbered from 0\)\n$/);
});

