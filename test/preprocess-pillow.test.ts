import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp, { type Sharp } from 'sharp';
import { OPENAI_PREPROCESS, type PreprocessConfig } from '../src/preprocess/config.js';
import { preprocessImageFile } from '../src/preprocess/transform.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { makeTempDir, needsPython, REFERENCE_PYTHON, repoRoot } from './support/paths.js';

/**
 * Every resize mode, filter, size and normalisation the model families use, against torchvision's PIL
 * pipeline spelled out on Pillow (test/support/pillow-preprocess.py): max |difference| ≤ 1e-6.
 */
const pillowMissing = needsPython('import PIL, numpy', 'Pillow and numpy (apt-get install python3-pil python3-numpy)');

const HALF: [number, number, number] = [0.5, 0.5, 0.5];
const CONFIGS: Record<string, PreprocessConfig> = {
  // SigLIP: squash, bicubic, mean = std = 0.5.
  siglip224: { imageSize: 224, resizeMode: 'squash', resizeSize: 224, mean: HALF, std: HALF, resample: 'bicubic' },
  // SigLIP 2 (Hugging Face configs): squash, bilinear; and the larger sizes.
  siglip2bilinear256: { imageSize: 256, resizeMode: 'squash', resizeSize: 256, mean: HALF, std: HALF, resample: 'bilinear' },
  siglip512: { imageSize: 512, resizeMode: 'squash', resizeSize: 512, mean: HALF, std: HALF, resample: 'bicubic' },
  // MobileCLIP S: shorter side + crop at 256, bilinear, no normalisation.
  mobileclip256: { imageSize: 256, resizeMode: 'shortest', resizeSize: 256, mean: [0, 0, 0], std: [1, 1, 1], resample: 'bilinear' },
  // A squash then a centre crop, and OpenAI's pipeline as the control.
  squashThenCrop: { ...OPENAI_PREPROCESS, resizeMode: 'squash', resizeSize: 256, imageSize: 224 },
  openai: OPENAI_PREPROCESS,
};

let dir: string;
const images: string[] = [];

before(async () => {
  dir = await makeTempDir('clip-eval-pillow-');
  // Noise, so that every filter tap shows; odd, wide, tall, smaller and larger than the outputs.
  const noise = (width: number, height: number, channels: 3 | 4) => {
    const data = Buffer.alloc(width * height * channels);
    let state = width * 7919 + height;
    for (let i = 0; i < data.length; i += 1) {
      state = (state * 1103515245 + 12345) >>> 0;
      data[i] = state >>> 24;
    }
    return sharp(data, { raw: { width, height, channels } });
  };
  const write = async (name: string, image: Sharp) => {
    const path = join(dir, name);
    await image.toFile(path);
    images.push(path);
  };
  await write('noise-97x61.png', noise(97, 61, 3).png());
  await write('noise-300x700.png', noise(300, 700, 3).png());
  await write('noise-640x480.png', noise(640, 480, 3).png());
  await write('photo-320x240.jpg', classImage('tulip').jpeg({ quality: 90 }));
  await write('grey-50x80.png', noise(50, 80, 3).greyscale().png());
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('preprocessing matches torchvision on Pillow for squash, bilinear, no normalisation, sizes to 512 (max |Δ| ≤ 1e-6)', { skip: pillowMissing, timeout: 120_000 }, async () => {
  const items = Object.entries(CONFIGS).flatMap(([configName, config]) =>
    images.map((image, i) => ({ image, name: `${configName}-${i}`, config })),
  );
  const job = join(dir, 'job.json');
  await writeFile(job, JSON.stringify({ out: dir, items }));
  const reference = spawnSync(REFERENCE_PYTHON, [join(repoRoot, 'test/support/pillow-preprocess.py'), job], { encoding: 'utf8' });
  assert.equal(reference.status, 0, reference.stderr);
  const worst: Record<string, number> = {};
  for (const { image, name, config } of items) {
    const expected = await readFile(join(dir, `${name}.f32`));
    const want = new Float32Array(expected.buffer, expected.byteOffset, expected.length / 4);
    const got = await preprocessImageFile(image, config);
    assert.equal(got.length, want.length, name);
    let max = 0;
    for (let i = 0; i < got.length; i += 1) max = Math.max(max, Math.abs(got[i]! - want[i]!));
    const configName = name.replace(/-\d+$/, '');
    worst[configName] = Math.max(worst[configName] ?? 0, max);
  }
  for (const [configName, max] of Object.entries(worst)) assert.ok(max <= 1e-6, `${configName}: max |difference| ${max}`);
});

test('the reference tells the modes apart: crop for squash, bilinear for bicubic or OpenAI\'s normalisation for none each differ', { skip: pillowMissing, timeout: 120_000 }, async () => {
  const image = images[2]!;
  const wrong: [string, PreprocessConfig, PreprocessConfig][] = [
    ['crop instead of squash', CONFIGS.siglip224!, { ...CONFIGS.siglip224!, resizeMode: 'shortest' }],
    ['bilinear instead of bicubic', CONFIGS.siglip224!, { ...CONFIGS.siglip224!, resample: 'bilinear' }],
    ['normalised instead of not', CONFIGS.mobileclip256!, { ...CONFIGS.mobileclip256!, mean: OPENAI_PREPROCESS.mean, std: OPENAI_PREPROCESS.std }],
  ];
  for (const [what, right, mistaken] of wrong) {
    const a = await preprocessImageFile(image, right);
    const b = await preprocessImageFile(image, mistaken);
    let max = 0;
    for (let i = 0; i < a.length; i += 1) max = Math.max(max, Math.abs(a[i]! - b[i]!));
    assert.ok(max > 0.05, `${what}: the outputs differ by ${max}`);
  }
});
