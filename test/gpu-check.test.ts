import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseGpuCheckArguments, tableLines, type CheckRow } from '../scripts/gpu-check.js';
import { formatColumns, largestMemoryFigure, runStep } from '../scripts/lib/gpu-check-steps.js';
import { EXIT } from '../src/core/errors.js';
import { runCommand, runScript } from './support/cli.js';
import { makeTempDir, needsPython, needsShared, repoRoot, sharedPath } from './support/paths.js';

/**
 * The GPU check (scripts/gpu-check.ts, gpu-check.sh): bounded steps whose failures become table rows,
 * and a whole check on this CPU machine with the harness's tiny model, where the GPU steps fail with
 * their exact errors and the check still prints its table.
 */
let dir: string;

before(async () => {
  dir = await makeTempDir('clip-eval-gpu-check-');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('gpu-check step: success, a failure kept as its last stderr line, a command that cannot start, each with its log', async () => {
  const ok = await runStep({ name: 'ok', command: process.execPath, args: ['-e', 'console.log("fine")'], timeoutSeconds: 60, logDir: dir });
  assert.equal(ok.error, undefined);
  assert.equal(ok.stdout.trim(), 'fine');
  const failed = await runStep({ name: 'failed', command: process.execPath, args: ['-e', 'console.error("noise"); console.error("clip-eval: the real reason"); process.exit(3)'], timeoutSeconds: 60, logDir: dir });
  assert.equal(failed.code, 3);
  assert.equal(failed.error, 'clip-eval: the real reason');
  const log = await readFile(join(dir, 'failed.log'), 'utf8');
  assert.match(log, /^\$ .*node -e /);
  assert.match(log, /# exit 3, /);
  assert.match(log, /noise\nclip-eval: the real reason/);
  const missing = await runStep({ name: 'missing', command: join(dir, 'no-such-command'), args: [], timeoutSeconds: 60, logDir: dir });
  assert.match(missing.error ?? '', /^cannot start .*no-such-command: .*ENOENT/);
});

test('gpu-check step: past its time limit the step and its children are killed and the row says so', async () => {
  const pidFile = join(dir, 'grandchild.pid');
  // A child that starts a grandchild and both wait forever: the limit must end the whole group.
  const code = `const { spawn } = require('node:child_process'); const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); setInterval(() => {}, 1000);`;
  const run = await runStep({ name: 'slow', command: process.execPath, args: ['-e', code], timeoutSeconds: 1, logDir: dir });
  assert.equal(run.timedOut, true);
  assert.equal(run.error, 'timed out after 1 s (killed)');
  const grandchild = Number(await readFile(pidFile, 'utf8'));
  // Gone, or a zombie waiting for a reaper that this container's init may never be.
  const alive = () => {
    try {
      return readFileSync(`/proc/${grandchild}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
    } catch {
      return false;
    }
  };
  for (let tries = 0; alive() && tries < 100; tries += 1) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(alive(), false, 'the grandchild was ended with its group');
});

test('gpu-check: nvidia-smi memory lines, the table, the options', () => {
  assert.equal(largestMemoryFigure('512\n81000\n\n  700 \n[N/A]\n'), 81000);
  assert.equal(largestMemoryFigure('No devices were found\n'), undefined);
  assert.equal(formatColumns(['a', 'long b', 'c'], [['xx', 'y', 'last cell']]), 'a   long b  c\nxx  y       last cell\n');
  const rows: CheckRow[] = [
    { step: 'clip-eval webgpu, cold', status: 'ok', images: 10000, wallSeconds: 4.25, endToEndImagesPerSecond: 2352.9, imageLoopImagesPerSecond: 6000, gpuMemory: { peakMiB: 1834.4, baselineMiB: 3 }, agreement: { images: 1000, top1: 0.999, top5Order: 0.99 }, note: 'top-1 1.00 %' },
    { step: 'clip-eval cuda, cold', status: 'failed', wallSeconds: 0.5, gpuMemory: { unavailable: 'no nvidia-smi' }, note: 'clip-eval: --device cuda: the CUDA provider is not installed' },
  ];
  const lines = tableLines(rows).split('\n');
  assert.match(lines[0]!, /^step +status +images +wall s +img\/s e2e +img\/s loop +GPU MiB +top-1 = cpu +note \/ exact error$/);
  assert.match(lines[1]!, /^clip-eval webgpu, cold +ok +10000 +4\.3 +2352\.9 +6000\.0 +1834 +99\.90 % of 1000 +top-1 1\.00 %$/);
  assert.match(lines[2]!, /^clip-eval cuda, cold +failed +0\.5 +n\/a +clip-eval: --device cuda: the CUDA provider is not installed$/);

  const options = parseGpuCheckArguments(['--harness', 'h', '--tokenizer-dir', 't', '--out', 'o']);
  assert.equal(options.images, 10_000);
  assert.equal(options.cpuImages, 1_000);
  assert.deepEqual(options.devices, ['webgpu', 'cuda']);
  assert.deepEqual(options.peerDevices, ['cuda', 'cuda-amp']);
  assert.equal(parseGpuCheckArguments(['--harness', 'h', '--tokenizer-dir', 't', '--out', 'o', '--images', '50', '--cpu-images', '80']).cpuImages, 50, 'the reference never has more images than the check');
  assert.throws(() => parseGpuCheckArguments(['--harness', 'h', '--out', 'o']), /--tokenizer-dir is required/);
  assert.throws(() => parseGpuCheckArguments(['--harness', 'h', '--tokenizer-dir', 't', '--out', 'o', '--devices', 'gpu']), /unknown device "gpu"/);
  assert.throws(() => parseGpuCheckArguments(['--harness', 'h', '--tokenizer-dir', 't', '--out', 'o', '--peer-devices', 'tpu']), /--peer-devices: unknown "tpu"/);
  assert.throws(() => parseGpuCheckArguments(['--harness', 'h', '--tokenizer-dir', 't', '--out', 'o', '--size', 'l14']), /--size l14: expected b32 or tiny/);
});

test('gpu-check.sh: without the pack, one line saying how to build it, exit 3', async () => {
  const run = await runCommand('bash', [join(repoRoot, 'scripts', 'gpu-check.sh'), '--pack', join(dir, 'none.tar.xz'), '--out', join(dir, 'out-none')]);
  assert.equal(run.code, EXIT.input);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^gpu-check: .*none\.tar\.xz not found; build it with scripts\/gpu-pack\.sh and carry \.gpu-pack to this machine\n$/);
});

const checkSkip =
  needsShared('reference/harness/export_onnx.py') || needsShared('clip-tokenizer/tokenizer.json') || needsPython('import torch, torchvision, onnx', 'torch, torchvision and onnx (see the harness README)');

test('gpu-check on this machine (tiny model): CPU rows measured and agreeing, GPU rows failed with their exact errors, one table; exit 1 when a step failed', { skip: checkSkip }, async () => {
  const out = join(dir, 'check');
  const run = await runScript(join(repoRoot, 'dist', 'scripts', 'gpu-check.js'), [
    '--harness', sharedPath('reference/harness'),
    '--tokenizer-dir', sharedPath('clip-tokenizer'),
    '--out', out,
    '--python', '/usr/bin/python3',
    '--size', 'tiny',
    '--images', '24',
    '--cpu-images', '12',
    '--batch-size', '8',
    '--devices', 'cpu,cuda',
    '--peer-devices', 'cuda',
  ], { timeoutMs: 600_000 });
  const rows = (JSON.parse(await readFile(join(out, 'gpu-check.json'), 'utf8')) as { rows: CheckRow[] }).rows;
  const row = (step: string) => rows.find((candidate) => candidate.step === step) ?? assert.fail(`no row "${step}" in ${JSON.stringify(rows)}`);
  assert.equal(row('export tiny CLIP (PyTorch → ONNX)').status, 'ok');
  assert.equal(row('synthetic CIFAR-100 images').images, 24);
  assert.equal(row('clip-eval cpu, first 12 (reference)').images, 12);
  for (const temperature of ['cold', 'warm']) {
    const cpu = row(`clip-eval cpu, ${temperature}`);
    assert.equal(cpu.status, 'ok', cpu.note);
    assert.equal(cpu.images, 24);
    assert.deepEqual(cpu.agreement && { images: cpu.agreement.images, top1: cpu.agreement.top1 }, { images: 12, top1: 1 }, 'the same model on the same device agrees with the reference');
    assert.ok(cpu.endToEndImagesPerSecond! > 0 && cpu.imageLoopImagesPerSecond! > 0);
  }
  assert.match(row('clip-eval cpu, warm').note, /text embeddings cached/);
  const cuda = row('clip-eval cuda, cold');
  if (cuda.status === 'failed') assert.match(cuda.note, /^clip-eval: --device cuda: .*; use --device cpu$/);
  const peer = row('PyTorch peer cuda');
  if (peer.status === 'failed') assert.match(peer.note, /CUDA|cuda/);
  assert.equal(run.code, rows.every((candidate) => candidate.status === 'ok') ? EXIT.ok : EXIT.checkFailed, run.stderr);
  assert.equal(run.stdout, await readFile(join(out, 'gpu-check.txt'), 'utf8'), 'the printed table is the one written');
  assert.match(run.stdout, /^clip-eval GPU check: harness tiny CLIP .*24 synthetic CIFAR-100 images/);
  assert.match(run.stdout, /onnxruntime-node [\d.]+, providers: cpu/);
  const logs = await readdir(join(out, 'logs'));
  for (const name of ['export.log', 'data.log', 'clip-eval-cpu-cold.log', 'clip-eval-cuda-cold.log', 'peer-cuda.log']) assert.ok(logs.includes(name), `${name} in ${logs.join(', ')}`);
  assert.equal(existsSync(join(out, 'model')), false, 'the exported model stays in the temporary folder, which is removed');
});
