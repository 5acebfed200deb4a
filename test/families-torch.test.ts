import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { CIFAR100_CLEAN_NAMES } from '../src/datasets/cifar/class-names.js';
import { OPENAI_CIFAR_TEMPLATES } from '../src/text/templates.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { runCli } from './support/cli.js';
import { makeTempDir, needsPython, needsShared, REFERENCE_PYTHON, repoRoot, sharedPath } from './support/paths.js';

/**
 * SigLIP and SigLIP 2 end to end against PyTorch: the harness trains a SentencePiece vocabulary, exports
 * a seeded SiglipModel in the Xenova layout (SigLIP at 224 bicubic, SigLIP 2 at 256 bilinear), and
 * test/support/siglip-zero-shot.py computes PyTorch's answer; eval, classify and retrieval must give its
 * top-1 on every image (and caption), and their scores its cosines.
 */
const HARNESS = 'reference/harness';
const torchMissing =
  needsShared(`${HARNESS}/export_siglip.py`) ||
  needsPython('import torch, torchvision, onnx, sentencepiece, PIL', 'torch, torchvision, onnx, sentencepiece and Pillow (see the harness README)');

const CLASSES = ['apple', 'bus', 'lion', 'snail', 'tulip'];
/** Scores closer than this are a tie that float rounding may break either way: such images are not compared. */
const TIE = 1e-4;

interface Bundle {
  family: 'siglip' | 'siglip2';
  dir: string;
  spm: string;
}

let dir: string;
const bundles: Bundle[] = [];
const images: string[] = [];

function python(args: string[], cwd: string, input?: string): string {
  const run = spawnSync(REFERENCE_PYTHON, args, { cwd, encoding: 'utf8', input, maxBuffer: 64 * 2 ** 20 });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout;
}

interface TorchRow {
  top1: number;
  logits: number[];
}

/** PyTorch's rows for these images against these classes' prompts. */
async function torchAnswer(bundle: Bundle, files: string[], texts: string[][]): Promise<TorchRow[]> {
  const job = join(dir, `job-${bundle.family}.json`);
  await writeFile(job, JSON.stringify({ family: bundle.family, images: files, texts }));
  const out = python([join(repoRoot, 'test/support/siglip-zero-shot.py'), sharedPath(HARNESS), bundle.dir, bundle.spm, job], dir);
  return out.trim().split('\n').map((line) => JSON.parse(line) as TorchRow);
}

/** True when the row's best score leads the next by more than a tie. */
function decided(logits: number[]): boolean {
  const sorted = [...logits].sort((a, b) => b - a);
  return sorted.length < 2 || sorted[0]! - sorted[1]! > TIE;
}

before(async () => {
  if (torchMissing) return;
  dir = await makeTempDir('clip-eval-siglip-torch-');
  const corpus = [...CIFAR100_CLEAN_NAMES.flatMap((name) => OPENAI_CIFAR_TEMPLATES.map((template) => template.replace('{}', name))), 'A PHOTO OF 2 DOGS!'];
  await writeFile(join(dir, 'corpus.txt'), `${corpus.join('\n')}\n`);
  const spmScript = sharedPath(`${HARNESS}/spm_tokenizer.py`);
  for (const [family, vocab, size] of [['siglip', '200', 'tiny'], ['siglip2', '400', 'tiny256']] as const) {
    python([spmScript, 'train', '--family', family, '--corpus', 'corpus.txt', '--vocab-size', vocab, '--out', `${family}-spm`], dir);
    python([sharedPath(`${HARNESS}/export_siglip.py`), '--family', family, '--spm', `${family}-spm.model`, '--size', size, '--out', family], dir);
    bundles.push({ family, dir: join(dir, family), spm: join(dir, `${family}-spm.model`) });
  }
  // A folder data set: each class drawn three ways (sizes, codecs), so that squash and crop differ.
  for (const name of CLASSES) {
    const folder = join(dir, 'photos', name);
    await mkdir(folder, { recursive: true });
    for (const [file, image] of [
      [`${name}-wide.png`, classImage(name, 320, 180).png()],
      [`${name}-tall.jpg`, classImage(name, 150, 260).jpeg({ quality: 90 })],
      [`${name}-small.png`, classImage(name, 97, 61).png()],
    ] as const) {
      await image.toFile(join(folder, file));
      images.push(join(folder, file));
    }
  }
  await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toFile(join(dir, 'plain.png'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const family of ['siglip', 'siglip2'] as const) {
  test(`${family}: eval on an image folder gives PyTorch's top-1 on every image and its cosines`, { skip: torchMissing, timeout: 300_000 }, async () => {
    const bundle = bundles.find((candidate) => candidate.family === family)!;
    const predictions = join(dir, `${family}-predictions.jsonl`);
    const json = join(dir, `${family}-eval.json`);
    const run = await runCli(['eval', join(dir, 'photos'), '--model', bundle.dir, '--templates', 'single', '--predictions', predictions, '--json', json, '--cache-dir', join(dir, 'cache'), '--quiet']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(await readFile(json, 'utf8')) as { results: { model: { family: string } }[] };
    assert.equal(report.results[0]!.model.family, family);
    const rows = (await readFile(predictions, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { id: string; top5: number[]; scores: number[] });
    const files = rows.map((row) => join(dir, 'photos', row.id));
    const torch = await torchAnswer(bundle, files, CLASSES.map((name) => [`a photo of a ${name}.`]));
    const meta = JSON.parse(await readFile(join(bundle.dir, 'check', 'check.json'), 'utf8')) as { logit_scale_exp: number; logit_bias: number };
    let compared = 0;
    rows.forEach((row, i) => {
      const expected = torch[i]!;
      // clip-eval's scores are 100 · cosine; PyTorch's logits exp(scale) · cosine + bias.
      row.top5.forEach((label, rank) => {
        const cosine = (expected.logits[label]! - meta.logit_bias) / meta.logit_scale_exp;
        assert.ok(Math.abs(row.scores[rank]! / 100 - cosine) < 1e-4, `${row.id}: cosine ${row.scores[rank]! / 100} vs PyTorch ${cosine}`);
      });
      if (!decided(expected.logits)) return;
      assert.equal(row.top5[0], expected.top1, `${row.id}: top-1`);
      compared += 1;
    });
    assert.ok(compared >= rows.length - 2, `${compared} of ${rows.length} images compared (the rest are ties)`);
  });

  test(`${family}: classify and retrieval rank as PyTorch does`, { skip: torchMissing, timeout: 300_000 }, async () => {
    const bundle = bundles.find((candidate) => candidate.family === family)!;
    const files = [...images.slice(0, 6), join(dir, 'plain.png')];
    const labels = ['a photo of a bus', 'Tulips!', 'a snail_shell', 'an apple'];
    const run = await runCli(['classify', '--model', bundle.dir, '--labels', labels.join(','), '--templates', 'single', '-k', String(labels.length), '--json', '--cache-dir', join(dir, 'cache'), ...files]);
    assert.equal(run.code, 0, run.stderr);
    const records = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { top: { label: string; probability: number }[] });
    const torch = await torchAnswer(bundle, files, labels.map((label) => [`a photo of a ${label}.`]));
    records.forEach((record, i) => {
      if (decided(torch[i]!.logits)) assert.equal(record.top[0]!.label, labels[torch[i]!.top1], `${files[i]}: classify top-1`);
      // The family's own probabilities: sigmoid of PyTorch's logits, with the learned scale and bias from onnx/model.onnx.
      for (const { label, probability } of record.top) {
        const expected = 1 / (1 + Math.exp(-torch[i]!.logits[labels.indexOf(label)]!));
        assert.ok(Math.abs(probability - expected) < 1e-4, `${files[i]} ${label}: probability ${probability} vs PyTorch's sigmoid ${expected}`);
      }
    });

    // Retrieval: each caption's best image is PyTorch's.
    const captions = ['a photo of a lion', 'A BUS.', 'tulip', 'the snail', 'apple_pie'];
    const manifest = join(dir, `${family}-captions.csv`);
    await writeFile(manifest, `path,caption\n${captions.map((caption, i) => `${images[i * 3]!},"${caption}"`).join('\n')}\n`);
    const predictions = join(dir, `${family}-retrieval.jsonl`);
    const retrieval = await runCli(['retrieval', manifest, '--model', bundle.dir, '--predictions', predictions, '--cache-dir', join(dir, 'cache'), '--quiet']);
    assert.equal(retrieval.code, 0, retrieval.stderr);
    const rows = (await readFile(predictions, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { caption: number; top: number[] });
    const retrievalImages = captions.map((_, i) => images[i * 3]!);
    const byImage = await torchAnswer(bundle, retrievalImages, captions.map((caption) => [caption]));
    for (const row of rows) {
      const column = byImage.map((imageRow) => imageRow.logits[row.caption]!);
      if (!decided(column)) continue;
      assert.equal(row.top[0], column.indexOf(Math.max(...column)), `caption ${JSON.stringify(captions[row.caption])}: best image`);
    }
  });
}
