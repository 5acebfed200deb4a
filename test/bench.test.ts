import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { writePatternClip } from '../scripts/make-pattern-clip.js';
import { compareTop5, readTop5Lines } from '../scripts/lib/bench-agreement.js';
import { defaultResultPath, parseBenchArguments } from '../scripts/lib/bench-options.js';
import { choosePeerBlasCore, cpuVectorLevel, openBlasCoreFromVerbose, parsePeerSummary, peerTokenRows } from '../scripts/lib/bench-peer.js';
import { evaluateTargets, formatTable, targetCells } from '../scripts/lib/bench-report.js';
import { EXIT } from '../src/core/errors.js';
import { runScript, type CliRun } from './support/cli.js';
import { isClipEvalError } from './support/errors.js';
import { makeTempDir, needsPython, needsShared, repoRoot, sharedPath } from './support/paths.js';

/**
 * The benchmark: its option parsing, peer plumbing and target arithmetic as units, then whole runs of
 * `dist/scripts/bench.js` on the pattern CLIP fixture (real sessions, real CLI processes) and, where the
 * shared harness and PyTorch are at hand, against the PyTorch peer on the harness's tiny model.
 */
const benchScript = join(repoRoot, 'dist', 'scripts', 'bench.js');
let dir: string;
let fixtureModel: string;

before(async () => {
  dir = await makeTempDir('clip-eval-bench-');
  fixtureModel = join(dir, 'model');
  await writePatternClip(fixtureModel, { variants: true });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runBench(args: string[]): Promise<CliRun> {
  return runScript(benchScript, args);
}

test('options: defaults match the issue (500 images, batch 64), and every bad flag is a one-line usage error', () => {
  const now = new Date('2025-03-04T05:06:07.891Z');
  const options = parseBenchArguments(['--model', 'm'], {}, now);
  assert.equal(options.images, 500);
  assert.equal(options.batchSize, 64);
  assert.equal(options.device, 'cpu');
  assert.equal(options.vsTorch, false);
  assert.equal(options.peerTextLength, 'context');
  assert.equal(options.folderImages, 500, 'the folder case: 500 JPEGs');
  assert.equal(options.folderRepeats, 3);
  assert.equal(options.out, join(repoRoot, 'bench-results', 'bench-2025-03-04T05-06-07Z.json'));
  assert.equal(defaultResultPath(now, '/r'), '/r/bench-results/bench-2025-03-04T05-06-07Z.json');
  assert.equal(parseBenchArguments(['--model', 'm'], { CLIP_EVAL_SHARED: '/elsewhere' }).sharedDir, '/elsewhere');

  const cases: [string[], RegExp][] = [
    [[], /--model DIR is required/],
    [['--model', 'm', '--images', '0'], /--images 0: expected a whole number from 1/],
    [['--model', 'm', '--images', '2.5'], /--images 2\.5/],
    [['--model', 'm', '--batch-size', 'x'], /--batch-size x/],
    [['--model', 'm', '--device', 'tpu'], /device: unknown device "tpu"/],
    [['--model', 'm', '--device-id', '1'], /--device-id applies to --device cuda or webgpu only/],
    [['--model', 'm', '--peer-text-length', 'longest'], /--peer-text-length applies to the PyTorch peer only; add --vs-torch/],
    [['--model', 'm', '--vs-torch', '--peer-text-length', 'short'], /--peer-text-length short: expected context/],
    [['--model', 'm', '--peer-blas', 'SkylakeX'], /--peer-blas applies to the PyTorch peer only/],
    [['--model', 'm', '--vs-torch', '--peer-blas', 'a b'], /--peer-blas a b: expected auto, installed or an OpenBLAS core name/],
    [['--model', 'm', '--folder-images', '0'], /--folder-images 0: expected a whole number from 1/],
    [['--model', 'm', '--folder-repeats', 'x'], /--folder-repeats x: expected a whole number from 1 to 100/],
    [['--model', 'm', '--frobnicate'], /frobnicate.*usage: npm run bench/],
  ];
  for (const [argv, pattern] of cases) assert.throws(() => parseBenchArguments(argv, {}), isClipEvalError(pattern), argv.join(' '));
});

test('peer prompts: padded with 0 to the context length as clip.tokenize does, or left ragged for the peer to pad to the longest', () => {
  const rows = [[49406, 320, 49407], [49406, 320, 1125, 539, 49407]];
  const padded = peerTokenRows(rows, 'context', 8);
  assert.deepEqual(padded, [[49406, 320, 49407, 0, 0, 0, 0, 0], [49406, 320, 1125, 539, 49407, 0, 0, 0]]);
  assert.deepEqual(peerTokenRows(rows, 'longest', 8), rows);
  assert.throws(() => peerTokenRows(rows, 'context', 4), /5 tokens, more than the context length 4/);
});

test('peer BLAS: a generic fallback core is pinned to the CPU\'s vector width; a fitting one, "installed" or a preset is left alone', () => {
  assert.equal(cpuVectorLevel('processor : 0\nflags : fpu sse2 avx2 avx512f avx512bw\n'), 'avx512');
  assert.equal(cpuVectorLevel('flags\t\t: fpu sse2 avx avx2 fma\n'), 'avx2');
  assert.equal(cpuVectorLevel('flags : fpu sse2\n'), undefined);
  assert.equal(cpuVectorLevel(''), undefined);
  assert.equal(openBlasCoreFromVerbose('Unknown CPU model - exfamily=6 model=207\nCore: Prescott\n'), 'Prescott');
  assert.equal(openBlasCoreFromVerbose('nothing'), undefined);

  assert.equal(choosePeerBlasCore('auto', 'Prescott', 'avx512').pinned, 'SkylakeX');
  assert.equal(choosePeerBlasCore('auto', 'Nehalem', 'avx2').pinned, 'Haswell');
  assert.equal(choosePeerBlasCore('auto', 'Haswell', 'avx512').pinned, 'SkylakeX', 'AVX2 kernels leave half of an AVX-512 CPU unused');
  assert.equal(choosePeerBlasCore('auto', 'Cooperlake', 'avx512').pinned, undefined);
  assert.equal(choosePeerBlasCore('auto', 'Zen', 'avx2').pinned, undefined);
  assert.equal(choosePeerBlasCore('auto', undefined, 'avx512').pinned, undefined, 'no report: nothing to correct');
  assert.equal(choosePeerBlasCore('installed', 'Prescott', 'avx512').pinned, undefined);
  assert.equal(choosePeerBlasCore('Haswell', 'Prescott', 'avx512').pinned, 'Haswell');
  assert.deepEqual(choosePeerBlasCore('auto', 'Prescott', 'avx512', 'Zen'), { detected: 'Prescott', pinned: 'Zen', reason: 'OPENBLAS_CORETYPE set in the environment' });
});

test('peer summary: the last {"summary"} line of torch_eval.py output; a missing one is a one-line error', () => {
  const summary = { images: 3, seconds: { end_to_end: 2 }, images_per_second: { end_to_end: 1.5 } };
  const output = `{"index": 0, "top5": [1], "scores": [1]}\n${JSON.stringify({ summary })}\n`;
  assert.deepEqual(parsePeerSummary(output, 'x'), summary);
  assert.throws(() => parsePeerSummary('{"index": 0, "top5": [1]}\n', 'peer.jsonl'), isClipEvalError(/peer\.jsonl: no \{"summary": …\} line/));
});

test('agreement: top-1 and ordered top-5 over the images both files hold; summary lines skipped, bad lines named', async () => {
  const reference = join(dir, 'reference.jsonl');
  const candidate = join(dir, 'candidate.jsonl');
  await writeFile(reference, ['{"index":0,"top5":[1,2,3]}', '{"index":1,"top5":[4,5,6]}', '{"index":2,"top5":[7,8,9]}', '{"summary":{}}', ''].join('\n'));
  await writeFile(candidate, ['{"index":0,"label":1,"top5":[1,2,3],"scores":[]}', '{"index":1,"top5":[5,4,6]}', '{"index":3,"top5":[0,1,2]}'].join('\n'));
  const agreement = compareTop5(await readTop5Lines(reference), await readTop5Lines(candidate));
  assert.deepEqual(agreement, { images: 2, top1: 0.5, top5Order: 0.5 });

  await writeFile(candidate, '{"index":0,"top5":[1,2,3]}\nnot json\n');
  await assert.rejects(readTop5Lines(candidate), isClipEvalError(/candidate\.jsonl:2: not JSON/));
  await writeFile(candidate, '{"index":9,"top5":[1]}\n');
  assert.throws(() => compareTop5(new Map([[0, [1]]]), new Map([[9, [1]]])), isClipEvalError(/no image is in both/));
});

test('targets: ratios to the peer against the issue\'s bounds, open without a peer; the table lines up', () => {
  const ours = {
    preprocessImagesPerSecond: 2100,
    imageEncodeImagesPerSecond: 20,
    coldImagesPerSecond: 10,
    warmImagesPerSecond: 17,
    peakRssBytes: 1.2e9,
  };
  const peer = { preprocessImagesPerSecond: 700, imageEncodeImagesPerSecond: 12, coldImagesPerSecond: 4, warmImagesPerSecond: 11, peakRssBytes: 1.3e9 };
  const targets = new Map(evaluateTargets(ours, peer).map((target) => [target.name, target]));
  assert.equal(targets.get('preprocessing, 1 core')!.met, true, '3.0× meets ≥ 3×');
  assert.ok(Math.abs(targets.get('image encoding')!.value! - 20 / 12) < 1e-12);
  assert.equal(targets.get('end to end, cold')!.met, true);
  assert.equal(targets.get('end to end, warm')!.met, false, '17/11 = 1.55 < 1.6');
  assert.equal(targets.get('warm / image encoding')!.met, false, '0.85 < 0.9');
  assert.equal(targets.get('peak RSS')!.met, false);
  assert.deepEqual(targetCells(targets.get('peak RSS')!), { ratio: '0.92×', target: '≤ 1000 MB', met: false });

  const alone = new Map(evaluateTargets(ours, undefined).map((target) => [target.name, target]));
  assert.equal(alone.get('image encoding')!.met, undefined);
  assert.equal(alone.get('warm / image encoding')!.met, false, 'our own ratio needs no peer');

  const table = formatTable('title', [{ stage: 'a', ours: '1 images/s', ratio: '2.00×', target: '≥ 1.5×', met: true }, { stage: 'longer stage', ours: '10', met: false }]);
  const lines = table.trimEnd().split('\n');
  assert.equal(lines[0], 'title');
  assert.match(lines[1]!, /^stage\s+clip-eval\s+peer\s+ratio\s+target\s+met$/);
  assert.match(lines[2]!, /^a\s+1 images\/s\s+2\.00×\s+≥ 1\.5×\s+yes$/);
  assert.match(lines[3]!, /^longer stage\s+10\s+NO$/);
});

test('bench on the pattern CLIP: every stage runs, warm reuses the text cache, the int8 variant is compared with fp32, the folder case against image encoding', async () => {
  const out = join(dir, 'fixture-bench.json');
  const work = join(dir, 'work');
  const run = await runBench([
    '--model', fixtureModel, '--images', '150', '--batch-size', '32', '--threads', '1', '--out', out, '--shared', join(dir, 'no-shared'),
    '--folder-images', '40', '--folder-repeats', '2', '--classify-images', '6', '--check-images', '300', '--check-per-class', '2', '--work-dir', work,
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /make_cifar_synth\.py not found/, 'without the shared harness the images come from the project itself');
  for (const stage of ['preprocessing, 1 core', 'image encoding', 'text encoding, cold', 'text from cache, warm', 'end to end, cold', 'end to end, warm', 'warm ÷ image encoding', 'peak RSS']) {
    assert.match(run.stdout, new RegExp(`^${stage.replace(/[()]/g, '\\$&')}\\s`, 'm'), stage);
  }
  assert.match(run.stdout, /^int8: image loop, top-1 = fp32\s+[\d.]+ images\/s, \d+\.\d %/m);
  assert.match(run.stdout, /^fp16: not in the bundle$/m);

  const result = JSON.parse(await readFile(out, 'utf8'));
  assert.equal(result.schema, 'clip-eval/bench@1');
  assert.equal(result.options.images, 150);
  assert.equal(result.ours.preprocess.images % 150, 0);
  assert.ok(result.ours.preprocess.imagesPerSecond > 0 && result.ours.imageEncode.imagesPerSecond > 0);
  assert.equal(result.ours.imageEncode.images, 150);
  assert.equal(result.ours.cold.timing.textEmbeddings, 'computed');
  assert.ok(result.ours.cold.timing.promptsPerSecond > 0);
  assert.equal(result.ours.warm.timing.textEmbeddings, 'cached');
  assert.equal(result.ours.cold.images, 150);
  assert.ok(result.ours.cold.top1 > 0.9, `the fixture classifies its own images (top-1 ${result.ours.cold.top1})`);
  assert.deepEqual(result.ours.warmAgreesWithCold, { images: 150, top1: 1, top5Order: 1 });
  assert.ok(result.ours.peakRssBytes > 20e6 && result.ours.peakRssBytes < 2e9, `peak RSS ${result.ours.peakRssBytes}`);
  const int8 = result.variants.find((variant: { variant: string }) => variant.variant === 'int8');
  assert.ok(int8.agreementWithFp32.top1 > 0.8, `int8 top-1 agreement ${int8.agreementWithFp32.top1}`);
  assert.match(result.variants.find((variant: { variant: string }) => variant.variant === 'fp16').skipped, /fp16/);
  assert.equal(result.peer.run, undefined);
  assert.equal(result.targets.length, 6);

  assert.match(run.stdout, /^folder of 40 JPEGs, image loop\s+[\d.]+ images\/s \([\d.]+–[\d.]+, 2 runs\)$/m);
  assert.match(run.stdout, /^folder ÷ image encoding\s+[\d.]+× \([\d.]+–[\d.]+\)\s+≥ 0\.90×\s+(yes|NO)$/m);
  const folder = result.ours.folder;
  assert.equal(folder.images, 40);
  assert.match(folder.command, /clip-eval\.cjs eval \S+folder /);
  assert.equal(folder.repeats.length, 2);
  for (const repeat of folder.repeats) {
    assert.ok(repeat.top1 > 0.9, `the fixture classifies the enlarged JPEGs too (top-1 ${repeat.top1})`);
    assert.ok(Math.abs(repeat.ratio - repeat.loopImagesPerSecond / repeat.imageEncodeImagesPerSecond) < 1e-9);
  }
  assert.ok(folder.ratio.min <= folder.ratio.median && folder.ratio.median <= folder.ratio.max);
  const classes = (await readdir(join(work, 'folder'))).sort();
  const first = join(work, 'folder', classes[0]!, (await readdir(join(work, 'folder', classes[0]!)))[0]!);
  const metadata = await sharp(first).metadata();
  assert.deepEqual([metadata.format, metadata.width, metadata.height], ['jpeg', 500, 375]);

  // The CI check case: its share outside image encoding and the parts of its wall time, which add up.
  assert.match(run.stdout, /^check: cifar100 --per-class 2 \(200 images\), outside encoding\s+[\d.]+ % \([\d.]+ %–[\d.]+ %, 2 runs\)\s+< 10\.0 %\s+(yes|NO)$/m);
  assert.match(run.stdout, /^    class embeddings \(cached\)\s+[\d.]+ s$/m);
  const { check } = result.ours;
  assert.equal(check.images, 200);
  assert.equal(check.repeats.length, 2);
  assert.match(check.command, /cifar100 .*--per-class 2/);
  for (const repeat of [check.first, ...check.repeats]) {
    const parts = repeat.breakdown;
    const sum = parts.outsideEvaluationSeconds + parts.textSeconds + parts.loopOverheadSeconds + parts.encodingSeconds + parts.restSeconds;
    assert.ok(Math.abs(sum - parts.wallSeconds) < 1e-9, `the parts add up to the wall time (${sum} vs ${parts.wallSeconds})`);
    assert.ok(parts.outsideEvaluationSeconds > 0 && parts.textSeconds >= 0 && parts.encodingSeconds > 0);
    assert.ok(Math.abs(repeat.outsideShare - (1 - parts.encodingSeconds / parts.wallSeconds)) < 1e-9);
  }
  for (const repeat of check.repeats) assert.equal(repeat.textEmbeddings, 'cached');

  // Preprocessing on every core, and the classify case's split and runs.
  assert.match(run.stdout, /^preprocessing, all cores \(\d+\)\s+[\d.]+ images\/s/m);
  assert.equal(result.ours.preprocessAllCores.images % 150, 0);
  assert.ok(result.ours.preprocessAllCores.workers >= 1);
  for (const stage of ['classify 6 photos 1000×750: decode, 1 core', '  resize \\+ normalise, 1 core', '  inference']) {
    assert.match(run.stdout, new RegExp(`^${stage}\\s+[\\d.]+ images/s \\([\\d.]+ ms each\\)$`, 'm'), stage);
  }
  assert.match(run.stdout, /^  classify, image loop\s+[\d.]+ images\/s \([\d.]+–[\d.]+, 2 runs\)$/m);
  const { classifyStages, classify } = result.ours;
  assert.equal(classifyStages.images, 6);
  assert.ok(classifyStages.decodeSeconds > 0 && classifyStages.resizeSeconds > 0 && classifyStages.inferenceSeconds > 0);
  assert.equal(classify.loopImagesPerSecond.length, 2);
  assert.match(classify.command, /clip-eval\.cjs classify \S+photos .*--no-cache/);
  const photo = await sharp(join(work, 'photos', '00000.jpg')).metadata();
  assert.deepEqual([photo.format, photo.width, photo.height], ['jpeg', 1000, 750]);
});

test('bench errors: --vs-torch on a model the harness did not write, a missing model folder, CUDA without its provider', async () => {
  const notHarness = await runBench(['--model', fixtureModel, '--vs-torch', '--out', join(dir, 'x.json')]);
  assert.equal(notHarness.code, EXIT.usage);
  assert.match(notHarness.stderr, /^bench: --vs-torch: .*config\.json has no "harness" section.*drop --vs-torch/m);

  const missing = await runBench(['--model', join(dir, 'nothing-here'), '--out', join(dir, 'x.json')]);
  assert.equal(missing.code, EXIT.usage);
  assert.match(missing.stderr, /^bench: --model .*nothing-here: not a folder/m);

  const cuda = await runBench(['--model', fixtureModel, '--images', '8', '--device', 'cuda', '--out', join(dir, 'x.json'), '--quiet']);
  assert.equal(cuda.code, EXIT.input, cuda.stderr);
  assert.match(cuda.stderr, /^bench: --device cuda: .*use --device cpu$/m);
});

const harnessDir = sharedPath('reference/harness');
const peerSkip = needsShared('reference/harness/torch_eval.py') || needsPython('import torch, torchvision, onnx', 'torch, torchvision and onnx (see the harness README)');

test('--vs-torch on the harness tiny model: the peer runs on the same images and prompts and agrees on top-1', { skip: peerSkip }, async () => {
  const model = join(dir, 'tiny');
  const exported = spawnSync('/usr/bin/python3', [join(harnessDir, 'export_onnx.py'), '--size', 'tiny', '--out', model], { encoding: 'utf8' });
  assert.equal(exported.status, 0, exported.stderr);
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(model, file), await readFile(sharedPath(`clip-tokenizer/${file}`)));

  const out = join(dir, 'tiny-bench.json');
  const run = await runBench(['--model', model, '--images', '64', '--vs-torch', '--peer-text-length', 'longest', '--out', out, '--quiet']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^top-1 agreement with peer\s+\d+\.\d %\s+≥ 99 %\s+yes$/m);
  const result = JSON.parse(await readFile(out, 'utf8'));
  assert.equal(result.data.source.includes('make_cifar_synth.py'), true);
  assert.equal(result.peer.run.summary.images, 64);
  assert.equal(result.peer.run.summary.classes, 100);
  assert.equal(result.peer.run.summary.templates, 18);
  assert.ok(result.peer.run.textLength < 77, 'ragged prompts: the peer pads to the longest');
  assert.ok(result.peer.agreement.top1 >= 0.99, `top-1 agreement ${result.peer.agreement.top1}`);
  for (const target of result.targets) assert.equal(typeof target.met, 'boolean', `${target.name} is decided with a peer`);
});
