import assert from 'node:assert/strict';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import { encodeOnnxModel } from '../scripts/lib/onnx-writer.js';
import { writePatternCifarArchive } from '../scripts/lib/pattern-cifar.js';
import { OPENAI_MEAN, patternTextGraph, patternVisionGraph, writePatternClip } from '../scripts/lib/pattern-clip.js';
import { EMBED_DIM } from '../scripts/lib/pattern-table.js';
import { runCli, type CliRun } from './support/cli.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir } from './support/paths.js';

/**
 * Broken models end to end: real ONNX files that output NaN or that a tokenizer's ids overflow, run through
 * the built CLI. Each must end in one line naming the model file and exit 3, never exit 0 or an internal error.
 */
let dir: string;
let model: string;
let dataDir: string;
let image: string;

before(async () => {
  dir = await makeTempDir('clip-eval-model-errors-');
  model = join(dir, 'model');
  await writePatternClip(model, { variants: false });
  const archive = join(dir, 'cifar-100-binary.tar.gz');
  await writePatternCifarArchive(archive, { name: 'cifar100', perClass: 1 });
  await tar.x({ file: archive, cwd: dir });
  dataDir = join(dir, 'cifar-100-binary');
  image = join(dir, 'apple.png');
  await classImage('apple').png().toFile(image);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A copy of the pattern CLIP with one of its ONNX files replaced. */
async function modelWith(name: string, file: 'vision_model.onnx' | 'text_model.onnx', bytes: Uint8Array): Promise<string> {
  const copy = join(dir, name);
  await cp(model, copy, { recursive: true });
  await writeFile(join(copy, 'onnx', file), bytes);
  return copy;
}

function assertOneLineError(run: CliRun, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, run.stderr);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${run.stderr}`);
  assert.match(lines[0]!, /^clip-eval: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr, /internal error|\x1b\[/);
}

const NAN_CHANNELS = [NaN, NaN, NaN];

test('a vision model that outputs NaN: cifar100 and classify fail with exit 3 naming the model file', async () => {
  const nanVision = await modelWith('nan-vision', 'vision_model.onnx', encodeOnnxModel(patternVisionGraph('hf', OPENAI_MEAN, NAN_CHANNELS)));
  const visionFile = join(nanVision, 'onnx', 'vision_model.onnx').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const cache = join(dir, 'cache-nan-vision');
  const evaluation = await runCli(['cifar100', '--model', nanVision, '--data-dir', dataDir, '--cache-dir', cache, '--quiet', '--templates', 'single']);
  assertOneLineError(evaluation, 3, new RegExp(`^clip-eval: ${visionFile}: the model output NaN in image_embeds`));
  assert.doesNotMatch(evaluation.stdout, /top-1/);
  const classify = await runCli(['classify', image, '--model', nanVision, '--labels', 'apple,bus', '--cache-dir', cache, '--quiet']);
  assertOneLineError(classify, 3, new RegExp(`^clip-eval: ${visionFile}: the model output NaN in image_embeds`));
  assert.equal(classify.stdout, '');
});

test('a text model that outputs infinities: classify and cifar100 fail with exit 3 before any image is scored', async () => {
  const table = new Float32Array(1100 * EMBED_DIM).fill(Infinity);
  const infText = await modelWith('inf-text', 'text_model.onnx', encodeOnnxModel(patternTextGraph('hf', table)));
  const textFile = join(infText, 'onnx', 'text_model.onnx').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const cache = join(dir, 'cache-inf-text');
  const classify = await runCli(['classify', image, '--model', infText, '--labels', 'apple,bus', '--cache-dir', cache, '--quiet']);
  assertOneLineError(classify, 3, new RegExp(`^clip-eval: ${textFile}: the model output Infinity in text_embeds`));
  const evaluation = await runCli(['cifar100', '--model', infText, '--data-dir', dataDir, '--cache-dir', cache, '--quiet', '--templates', 'single']);
  assertOneLineError(evaluation, 3, new RegExp(`^clip-eval: ${textFile}: the model output Infinity`));
  assert.deepEqual(await readdir(join(cache, 'text-embeddings')).catch(() => []), [], 'nothing broken is cached');
});

test('token ids past the text model\'s vocabulary: one line naming the model, no onnxruntime log, exit 3', async () => {
  const tenTokens = await modelWith('ten-tokens', 'text_model.onnx', encodeOnnxModel(patternTextGraph('hf', new Float32Array(10 * EMBED_DIM).fill(0.1))));
  const textFile = join(tenTokens, 'onnx', 'text_model.onnx').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const run = await runCli(['classify', image, '--model', tenTokens, '--labels', 'apple,bus', '--no-cache', '--cache-dir', join(dir, 'cache-ten'), '--quiet']);
  assertOneLineError(run, 3, new RegExp(`^clip-eval: ${textFile}: onnxruntime failed to run this model \\(.*Gather.*out of data bounds`));
  assert.doesNotMatch(run.stderr, /onnxruntime_src|\[E:onnxruntime/);
});

test('onnxruntime telemetry is off: a classify and an evaluation write nothing under $HOME', async () => {
  const home = join(dir, 'home');
  // onnxruntime's telemetry also stays off under CI markers (CI, TF_BUILD, GITHUB_ACTIONS...): a user's shell has none.
  const ciMarkers = Object.keys(process.env).filter((name) => /^(CI|CONTINUOUS_INTEGRATION|TF_BUILD|BUILD_ID|BUILD_NUMBER|RUN_ID|GITHUB_\w+|GITLAB_CI|JENKINS_\w+|TEAMCITY_\w+|CODEBUILD_\w+|BUILDKITE|CIRCLECI|TRAVIS)$/.test(name));
  const env = { ...Object.fromEntries(['CI', ...ciMarkers].map((name) => [name, undefined])), HOME: home, XDG_CACHE_HOME: undefined, CLIP_EVAL_CACHE: undefined, ORT_DISABLE_TELEMETRY: undefined };
  const classify = await runCli(['classify', image, '--model', model, '--labels', 'apple,bus', '--cache-dir', join(dir, 'cache-home'), '--quiet'], { env });
  assert.equal(classify.code, 0, classify.stderr);
  const evaluation = await runCli(['cifar100', '--model', model, '--data-dir', dataDir, '--cache-dir', join(dir, 'cache-home'), '--quiet', '--templates', 'single'], { env });
  assert.equal(evaluation.code, 0, evaluation.stderr);
  assert.deepEqual(await readdir(home, { recursive: true }).catch(() => []), [], 'nothing under $HOME (onnxruntime kept ~/.cache/Microsoft/DeveloperTools)');
});

test('bounds: --batch-size above 1024 is a usage error; --threads above the core count is a warning and runs on the cores', async () => {
  for (const command of [['cifar100', '--data-dir', dataDir], ['classify', image, '--labels', 'apple,bus']]) {
    const run = await runCli([...command, '--model', model, '--batch-size', '100000', '--cache-dir', join(dir, 'cache-bounds'), '--quiet']);
    assertOneLineError(run, 2, /^clip-eval: --batch-size 100000: at most 1024 \(/);
  }
  const cores = availableParallelism();
  const threads = await runCli(['classify', image, '--model', model, '--labels', 'apple,bus', '--threads', String(cores + 1), '--cache-dir', join(dir, 'cache-bounds'), '--quiet', '--json']);
  assert.equal(threads.code, 0, threads.stderr);
  assert.equal(threads.stderr, `clip-eval: warning: --threads ${cores + 1}: this machine has ${cores} cores; using ${cores}, since more threads than cores only slow inference down\n`);
  const json = join(dir, 'threads.json');
  const evaluation = await runCli(['cifar100', '--model', model, '--data-dir', dataDir, '--variant', 'fp32', '--threads', String(cores + 1), '--cache-dir', join(dir, 'cache-bounds'), '--quiet', '--templates', 'single', '--json', json]);
  assert.equal(evaluation.code, 0, evaluation.stderr);
  assert.equal(evaluation.stderr.match(/warning: --threads/g)?.length, 1, evaluation.stderr);
  assert.equal((JSON.parse(await readFile(json, 'utf8')) as { options: { threads: number } }).options.threads, cores, 'the report says how many threads ran');
});

test('--device webgpu: without an adapter, exactly one line on stderr (no driver noise); with one, the run works', async () => {
  const run = await runCli(['classify', image, '--model', model, '--labels', 'apple,bus', '--device', 'webgpu', '--cache-dir', join(dir, 'cache-webgpu'), '--quiet']);
  if (run.code === 0) {
    assert.match(run.stdout, /apple/);
    return;
  }
  assertOneLineError(run, 3, /^clip-eval: --device webgpu: .*; use --device cpu$/);
});

test('--device cuda: without the CUDA provider or a GPU, one line naming what is missing, exit 3; with them, the run works', async () => {
  const run = await runCli(['cifar100', '--model', model, '--data-dir', dataDir, '--variant', 'fp32', '--device', 'cuda', '--cache-dir', join(dir, 'cache-cuda'), '--quiet']);
  if (run.code === 0) return;
  assertOneLineError(run, 3, /^clip-eval: --device cuda: (the CUDA provider is not installed \(\S+libonnxruntime_providers_\w+\.so is missing\)|CUDA\/cuDNN library \S+ not found|no usable CUDA GPU|the CUDA provider failed to load).*; use --device cpu$/);
});
