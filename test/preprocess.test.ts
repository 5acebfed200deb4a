import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'node:test';
import sharp from 'sharp';
import { ClipEvalError } from '../src/core/errors.js';
import {
  OPENAI_PREPROCESS,
  preprocessConfigFromHf,
  preprocessConfigFromOpenClip,
  type PreprocessConfig,
} from '../src/preprocess/config.js';
import { decodeImage, type DecodedImage } from '../src/preprocess/decode.js';
import { axisPlan, createChannelResizer, PRECISION_BITS, resampleColumns, resampleRows } from '../src/preprocess/resample.js';
import {
  CIFAR_IMAGE_BYTES,
  createCifarPreprocessor,
  cropOffset,
  MAX_RESIZED_SIDE,
  normalisationTable,
  preprocessDecoded,
  preprocessImageFile,
  resizedSize,
} from '../src/preprocess/transform.js';
import { makeTempDir, needsShared, sharedPath } from './support/paths.js';

const REFERENCE_DIR = 'reference/preprocess';
/** Normalising with mean 0 and std 1 leaves fround(v/255), from which v is recovered exactly. */
const BYTES_CONFIG: PreprocessConfig = { ...OPENAI_PREPROCESS, mean: [0, 0, 0], std: [1, 1, 1] };

function floats(bytes: Buffer): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Deterministic bytes (an LCG), so that failures reproduce. */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

/** Interleaved RGB of CIFAR record `index` (planar R, G, B). */
function cifarToRgb(records: Uint8Array, index: number): Uint8Array {
  const rgb = new Uint8Array(32 * 32 * 3);
  for (let p = 0; p < 1024; p++) {
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = records[index * CIFAR_IMAGE_BYTES + c * 1024 + p];
  }
  return rgb;
}

/** The bytes a BYTES_CONFIG-style output encodes, channel-major. */
function outputBytes(out: Float32Array): number[] {
  return Array.from(out, (value) => Math.round(value * 255));
}

/** Interleaved (row-major, RGB) bytes → channel-major, as the output layout. */
function toPlanar(rgb: number[], pixels: number): number[] {
  return [0, 1, 2].flatMap((c) => Array.from({ length: pixels }, (_, p) => rgb[p * 3 + c]));
}

/** Pillow's two-pass resize with the scalar kernels: horizontal pass over all rows, then vertical. */
function scalarResize(data: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: PreprocessConfig['resample']): Uint8ClampedArray {
  const horizontal = new Uint8ClampedArray(outWidth * height * channels);
  resampleRows({ data, offset: 0, rowStride: width * channels, channels }, axisPlan(width, outWidth, filter), 0, height, 0, outWidth, horizontal, outWidth * channels);
  const out = new Uint8ClampedArray(outWidth * outHeight * channels);
  const view = { data: horizontal, offset: 0, rowStride: outWidth * channels, channels };
  resampleColumns(view, 0, axisPlan(height, outHeight, filter), 0, outHeight, outWidth * channels, out, outWidth * channels);
  return out;
}

/** An independent CIFAR preprocessing from the scalar kernels, crop and table (no SIMD, no skipping). */
function scalarCifar(records: Uint8Array, index: number, config: PreprocessConfig): Float32Array {
  const side = config.resizeSize;
  const crop = config.imageSize;
  const resized = scalarResize(cifarToRgb(records, index), 32, 32, 3, side, side, config.resample);
  const table = normalisationTable(config);
  const offset = cropOffset(side, crop);
  const out = new Float32Array(3 * crop * crop);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < crop; i++) {
      for (let j = 0; j < crop; j++) {
        const y = offset + i;
        const x = offset + j;
        const inside = y >= 0 && y < side && x >= 0 && x < side;
        out[(c * crop + i) * crop + j] = table[c * 256 + (inside ? resized[(y * side + x) * 3 + c] : 0)];
      }
    }
  }
  return out;
}

function assertInputError(error: unknown, ...fragments: string[]): true {
  assert.ok(error instanceof ClipEvalError, `expected a ClipEvalError, got ${String(error)}`);
  assert.equal(error.kind, 'input');
  assert.ok(!error.message.includes('\n'), `one line: ${error.message}`);
  for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" should mention "${fragment}"`);
  return true;
}

// ---- torchvision's reference output ----

const referenceImages = existsSync(sharedPath(REFERENCE_DIR))
  ? readdirSync(sharedPath(REFERENCE_DIR)).filter((name) => /\.(png|jpe?g)$/i.test(name))
  : [];

test('torchvision reference images are present', { skip: needsShared(REFERENCE_DIR) }, () => {
  assert.ok(referenceImages.length >= 7, `found ${referenceImages.join(', ')}`);
});

for (const name of referenceImages) {
  test(`matches torchvision on ${name} (max |diff| <= 1e-6)`, async () => {
    const expected = floats(await readFile(sharedPath(join(REFERENCE_DIR, name.replace(/\.\w+$/, '.f32')))));
    const actual = await preprocessImageFile(sharedPath(join(REFERENCE_DIR, name)), OPENAI_PREPROCESS);
    assert.equal(actual.length, 3 * 224 * 224);
    assert.ok(maxAbsDifference(actual, expected) <= 1e-6, `max |diff| ${maxAbsDifference(actual, expected)}`);
  });
}

test('CIFAR records match torchvision, through the fast path and the general path', { skip: needsShared(`${REFERENCE_DIR}/cifar100_records_8.bin`) }, async () => {
  const file = await readFile(sharedPath(`${REFERENCE_DIR}/cifar100_records_8.bin`));
  const expected = floats(await readFile(sharedPath(`${REFERENCE_DIR}/cifar100_records_8_8.f32`)));
  const count = file.length / (CIFAR_IMAGE_BYTES + 2);
  assert.equal(count, 8);
  const records = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  for (let i = 0; i < count; i++) records.set(file.subarray(i * 3074 + 2, (i + 1) * 3074), i * CIFAR_IMAGE_BYTES);

  const fast = new Float32Array(expected.length);
  const general = new Float32Array(expected.length);
  const preprocess = createCifarPreprocessor(OPENAI_PREPROCESS);
  for (let i = 0; i < count; i++) {
    preprocess(records, i, fast, i * 150528);
    const image: DecodedImage = { data: cifarToRgb(records, i), width: 32, height: 32, channels: 3, palette: false };
    preprocessDecoded(image, OPENAI_PREPROCESS, general, i * 150528);
  }
  assert.ok(maxAbsDifference(fast, expected) <= 1e-6, `fast path max |diff| ${maxAbsDifference(fast, expected)}`);
  assert.ok(maxAbsDifference(general, expected) <= 1e-6, `general path max |diff| ${maxAbsDifference(general, expected)}`);
});

// ---- geometry (torchvision) ----

test('resizedSize: shorter side to the size, longer int(size·long/short)', () => {
  assert.deepEqual(resizedSize(500, 375, 224), { width: 298, height: 224 });
  assert.deepEqual(resizedSize(375, 500, 224), { width: 224, height: 298 });
  assert.deepEqual(resizedSize(301, 200, 224), { width: 337, height: 224 });
  assert.deepEqual(resizedSize(97, 61, 224), { width: 356, height: 224 });
  assert.deepEqual(resizedSize(300, 300, 224), { width: 224, height: 224 });
  assert.deepEqual(resizedSize(1, 300, 224), { width: 224, height: 67200 });
});

test('cropOffset: round half to even, and padding when the crop is larger', () => {
  assert.equal(cropOffset(337, 224), 56); // 56.5 → 56
  assert.equal(cropOffset(225, 224), 0); // 0.5 → 0
  assert.equal(cropOffset(227, 224), 2); // 1.5 → 2
  assert.equal(cropOffset(298, 224), 37);
  assert.equal(cropOffset(224, 224), 0);
  assert.equal(cropOffset(200, 224), -12);
  assert.equal(cropOffset(201, 224), -11); // pads floor(23/2) before
});

// ---- Pillow's resampling, against values Pillow 9.4 computed ----

test('scalar kernels reproduce Pillow on one row (bicubic, bilinear, nearest; down and up)', () => {
  const row = Uint8Array.from([0, 10, 200, 255, 30, 90, 180, 60, 5, 250, 128]);
  const resize = (width: number, filter: PreprocessConfig['resample']): number[] => Array.from(scalarResize(row, 11, 1, 1, width, 1, filter));
  assert.deepEqual(resize(4, 'bicubic'), [74, 146, 90, 137]);
  assert.deepEqual(resize(17, 'bicubic'), [0, 0, 25, 161, 246, 249, 84, 29, 90, 163, 158, 66, 3, 50, 236, 194, 120]);
  assert.deepEqual(resize(4, 'bilinear'), [76, 137, 97, 140]);
  assert.deepEqual(resize(4, 'nearest'), [10, 30, 180, 250]);
  assert.deepEqual(resize(17, 'nearest'), [0, 0, 10, 200, 200, 255, 30, 30, 90, 180, 180, 60, 5, 5, 250, 128, 128]);
});

const RGB_5X3 = Uint8Array.from([
  248, 194, 190, 207, 147, 26, 237, 21, 245, 211, 239, 45, 5, 157, 159, 60, 54, 236, 109, 46, 199, 82, 32, 205, 36, 7, 134, 222,
  57, 146, 8, 149, 14, 15, 22, 10, 144, 208, 24, 24, 7, 41, 11, 85, 59,
]);

test('scalar kernels reproduce Pillow in 2-D with the uint8 intermediate (5x3 → 7x4 bicubic)', () => {
  assert.deepEqual(Array.from(scalarResize(RGB_5X3, 5, 3, 3, 7, 4, 'bicubic')), [
    255, 204, 198, 230, 183, 77, 217, 110, 66, 245, 20, 247, 243, 198, 88, 119, 227, 79, 0, 157, 167, 132, 100, 240, 145, 96, 180, 150,
    65, 166, 136, 16, 233, 106, 73, 136, 124, 98, 121, 162, 92, 160, 25, 82, 157, 47, 47, 148, 78, 46, 139, 94, 98, 135, 28, 14, 112,
    76, 14, 107, 166, 65, 113, 5, 161, 2, 0, 67, 0, 47, 65, 3, 147, 217, 15, 59, 57, 30, 5, 28, 46, 0, 92, 55,
  ]);
});

test('preprocessDecoded: resize 5x3 → 6x4 and crop 4, per filter; palette images always NEAREST', () => {
  const expected = {
    nearest: [
      207, 147, 26, 237, 21, 245, 237, 21, 245, 211, 239, 45, 109, 46, 199, 82, 32, 205, 82, 32, 205, 36, 7, 134, 109, 46, 199, 82,
      32, 205, 82, 32, 205, 36, 7, 134, 15, 22, 10, 144, 208, 24, 144, 208, 24, 24, 7, 41,
    ],
    bicubic: [
      220, 172, 39, 232, 54, 162, 249, 107, 175, 169, 247, 52, 149, 94, 161, 145, 37, 204, 118, 42, 186, 112, 99, 110, 57, 36, 145,
      91, 76, 138, 59, 58, 123, 45, 0, 105, 0, 36, 0, 102, 147, 7, 109, 144, 23, 10, 10, 42,
    ],
    bilinear: [
      217, 159, 67, 224, 74, 154, 226, 112, 162, 160, 219, 74, 142, 90, 155, 142, 52, 184, 124, 56, 170, 112, 95, 113, 66, 50, 134,
      92, 73, 133, 75, 60, 121, 60, 23, 103, 13, 54, 11, 90, 130, 18, 94, 124, 31, 21, 27, 46,
    ],
  };
  const config = (resample: PreprocessConfig['resample']): PreprocessConfig => ({ ...BYTES_CONFIG, imageSize: 4, resizeMode: 'shortest', resizeSize: 4, resample });
  const run = (palette: boolean, resample: PreprocessConfig['resample']): number[] => {
    const out = new Float32Array(3 * 16);
    preprocessDecoded({ data: RGB_5X3, width: 5, height: 3, channels: 3, palette }, config(resample), out, 0);
    return outputBytes(out);
  };
  for (const filter of ['nearest', 'bicubic', 'bilinear'] as const) {
    assert.deepEqual(run(false, filter), toPlanar(expected[filter], 16), filter);
  }
  assert.deepEqual(run(true, 'bicubic'), toPlanar(expected.nearest, 16), 'palette');
});

test('preprocessDecoded: alpha images resize premultiplied, as Pillow does for RGBA', () => {
  const rgba = [
    [255, 0, 0, 255], [0, 255, 0, 0], [0, 0, 255, 128], [200, 100, 50, 60],
    [10, 20, 30, 0], [250, 250, 250, 255], [40, 80, 120, 200], [255, 255, 255, 10],
  ];
  const image: DecodedImage = {
    data: Uint8Array.from(rgba.flatMap(([r, g, b]) => [r, g, b])),
    alpha: Uint8Array.from(rgba.map((pixel) => pixel[3])),
    width: 4,
    height: 2,
    channels: 3,
    palette: false,
  };
  // Pillow: resize((6, 3), BICUBIC) of the RGBA image, convert('RGB'), columns 2..4 (the centre crop).
  const expected = [0, 0, 2, 0, 0, 255, 66, 30, 193, 237, 243, 255, 47, 69, 182, 41, 49, 148, 254, 255, 255, 72, 108, 135, 15, 66, 100];
  const out = new Float32Array(3 * 9);
  preprocessDecoded(image, { ...BYTES_CONFIG, imageSize: 3, resizeMode: 'shortest', resizeSize: 3 }, out, 0);
  assert.deepEqual(outputBytes(out), toPlanar(expected, 9));

  // Not resized at all: Pillow returns a copy and convert('RGB') just drops the alpha.
  const same = new Float32Array(3 * 4);
  preprocessDecoded(image, { ...BYTES_CONFIG, imageSize: 2, resizeMode: 'shortest', resizeSize: 2 }, same, 0);
  assert.deepEqual(outputBytes(same), toPlanar([0, 255, 0, 0, 0, 255, 250, 250, 250, 40, 80, 120], 4));
});

test('normalisation table holds torch float32 results (bits computed by numpy float32)', () => {
  const table = normalisationTable(OPENAI_PREPROCESS);
  const bits = (value: number): string => `0x${new Uint32Array(Float32Array.of(value).buffer)[0].toString(16)}`;
  const expected: Record<number, string[]> = {
    0: ['0xbfe568dc', '0xbfe044b8', '0xbfbd77d8'],
    1: ['0xbfe38a7f', '0xbfde58f1', '0xbfbba5e1'],
    128: ['0x3d9c5620', '0x3e2cf36b', '0x3eae0dc4'],
    255: ['0x3ff71541', '0x4004cae5', '0x40095660'],
  };
  for (const [value, channels] of Object.entries(expected)) {
    assert.deepEqual([0, 1, 2].map((c) => bits(table[c * 256 + Number(value)])), channels, `value ${value}`);
  }
});

test('axis plans: weights are 22-bit fixed point summing to about one, windows inside the image', () => {
  for (const [inSize, outSize] of [[32, 224], [1000, 224], [224, 224], [61, 224], [5, 3]]) {
    for (const filter of ['bicubic', 'bilinear', 'nearest'] as const) {
      const plan = axisPlan(inSize, outSize, filter);
      for (let i = 0; i < outSize; i++) {
        assert.ok(plan.start[i] >= 0 && plan.start[i] + plan.taps <= inSize, `${filter} ${inSize}->${outSize} window ${i}`);
        let sum = 0;
        for (let k = 0; k < plan.taps; k++) sum += plan.weights[i * plan.taps + k];
        assert.ok(Math.abs(sum - (1 << PRECISION_BITS)) <= plan.taps, `${filter} ${inSize}->${outSize} weights ${i} sum ${sum}`);
      }
    }
  }
  assert.equal(axisPlan(32, 224, 'bicubic'), axisPlan(32, 224, 'bicubic'), 'plans are cached');
});

// ---- the SIMD kernel against the scalar kernels ----

test('CIFAR fast path equals the scalar kernels for many configurations', () => {
  const records = pseudoRandomBytes(3 * CIFAR_IMAGE_BYTES, 42);
  const configs: PreprocessConfig[] = [
    OPENAI_PREPROCESS,
    { ...OPENAI_PREPROCESS, resample: 'bilinear' },
    { ...OPENAI_PREPROCESS, resample: 'nearest' },
    { ...OPENAI_PREPROCESS, resizeMode: 'shortest', resizeSize: 256 },
    { ...OPENAI_PREPROCESS, resizeMode: 'shortest', resizeSize: 200 }, // crop larger than the image: zero padding
    { ...OPENAI_PREPROCESS, imageSize: 336, resizeMode: 'shortest', resizeSize: 336, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    { ...OPENAI_PREPROCESS, imageSize: 13, resizeMode: 'shortest', resizeSize: 16 }, // downscaling: wider windows
    { ...OPENAI_PREPROCESS, imageSize: 32, resizeMode: 'shortest', resizeSize: 32 }, // no resize
    { ...OPENAI_PREPROCESS, imageSize: 5, resizeMode: 'shortest', resizeSize: 7 }, // narrower than 8 lanes: general path
  ];
  for (const config of configs) {
    const preprocess = createCifarPreprocessor(config);
    const size = 3 * config.imageSize * config.imageSize;
    const out = new Float32Array(size * 3 + 7);
    for (let i = 0; i < 3; i++) preprocess(records, i, out, 7 + i * size);
    for (let i = 0; i < 3; i++) {
      const expected = scalarCifar(records, i, config);
      const actual = out.subarray(7 + i * size, 7 + (i + 1) * size);
      assert.equal(maxAbsDifference(actual, expected), 0, `${JSON.stringify(config)} image ${i}`);
    }
  }
});

test('general path (SIMD) equals the scalar path on odd sizes and aspect ratios', () => {
  const config = OPENAI_PREPROCESS;
  for (const [width, height] of [[301, 200], [97, 61], [224, 400], [400, 224], [640, 480], [1000, 750], [750, 1000], [250, 9], [9, 250]]) {
    const data = pseudoRandomBytes(width * height * 3, width * 1000 + height);
    const viaSimd = new Float32Array(150528);
    preprocessDecoded({ data, width, height, channels: 3, palette: false }, config, viaSimd, 0);
    // Opaque alpha sends the image through the scalar (premultiplied) path with identical values.
    const opaque = new Uint8Array(width * height).fill(255);
    const viaScalar = new Float32Array(150528);
    preprocessDecoded({ data, alpha: opaque, width, height, channels: 3, palette: false }, config, viaScalar, 0);
    assert.equal(maxAbsDifference(viaSimd, viaScalar), 0, `${width}x${height}`);
  }
});

test('createChannelResizer declines windows narrower than its 8 lanes', () => {
  const spec = (colCount: number, sourceRows: number) => ({
    horizontal: axisPlan(32, 32, 'bicubic'),
    vertical: axisPlan(sourceRows, sourceRows, 'bicubic'),
    colFrom: 0,
    colCount,
    rowFrom: 0,
    rowCount: sourceRows,
    planes: 1,
    outputPlane: colCount * sourceRows,
    outputOffset: 0,
    outputStride: colCount,
  });
  assert.equal(createChannelResizer(spec(7, 32)), undefined);
  assert.equal(createChannelResizer(spec(8, 7)), undefined);
  assert.ok(createChannelResizer(spec(8, 8)));
});

test('createCifarPreprocessor validates the index and the output', () => {
  const preprocess = createCifarPreprocessor(OPENAI_PREPROCESS);
  const records = new Uint8Array(2 * CIFAR_IMAGE_BYTES);
  assert.throws(() => preprocess(records, 2, new Float32Array(150528), 0), /index 2 is outside 0\.\.1/);
  assert.throws(() => preprocess(records, 0, new Float32Array(150528), 1), /does not fit/);
});

// ---- decoding ----

test('decodeImage: RGB, grey, alpha, palette, orientation', async () => {
  const dir = await makeTempDir();
  try {
    const width = 20;
    const height = 10;
    const rgb = pseudoRandomBytes(width * height * 3, 1);
    const raw = (channels: 1 | 3 | 4, data: Uint8Array) => sharp(data, { raw: { width, height, channels } });

    await raw(3, rgb).png().toFile(join(dir, 'rgb.png'));
    const decodedRgb = await decodeImage(join(dir, 'rgb.png'), 'rgb.png');
    assert.deepEqual([decodedRgb.width, decodedRgb.height, decodedRgb.channels, decodedRgb.palette], [20, 10, 3, false]);
    assert.deepEqual(Array.from(decodedRgb.data), Array.from(rgb));
    assert.equal(decodedRgb.alpha, undefined);

    const grey = pseudoRandomBytes(width * height, 2);
    const decodedGrey = await decodeImage(await raw(1, grey).png().toBuffer(), 'grey.png');
    assert.deepEqual(Array.from(decodedGrey.data), Array.from(grey).flatMap((v) => [v, v, v]));

    const rgba = pseudoRandomBytes(width * height * 4, 3);
    const decodedRgba = await decodeImage(await raw(4, rgba).png().toBuffer(), 'rgba.png');
    assert.deepEqual(Array.from(decodedRgba.alpha ?? []), Array.from(rgba).filter((_, i) => i % 4 === 3));
    assert.deepEqual(Array.from(decodedRgba.data), Array.from(rgba).filter((_, i) => i % 4 !== 3));

    assert.equal((await decodeImage(await raw(3, rgb).png({ palette: true, colours: 16 }).toBuffer(), 'p.png')).palette, true);
    assert.equal((await decodeImage(await raw(3, rgb).gif().toBuffer(), 'p.gif')).palette, true);

    const rotated = await raw(3, rgb).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const oriented = await decodeImage(rotated, 'exif.jpg');
    assert.deepEqual([oriented.width, oriented.height], [10, 20]);
    const unoriented = await decodeImage(rotated, 'exif.jpg', { autoOrient: false });
    assert.deepEqual([unoriented.width, unoriented.height], [20, 10]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('decodeImage: one-line input errors naming the file', async () => {
  const dir = await makeTempDir();
  try {
    const png = await sharp(pseudoRandomBytes(64 * 64 * 3, 5), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    await writeFile(join(dir, 'empty.png'), '');
    await writeFile(join(dir, 'text.jpg'), 'this is not an image\n');
    await writeFile(join(dir, 'truncated.png'), png.subarray(0, Math.floor(png.length / 2)));
    await writeFile(join(dir, 'whole.png'), png);
    await mkdir(join(dir, 'folder.png'));

    const cases: [string, string][] = [
      ['missing.png', 'not found'],
      ['empty.png', 'empty'],
      ['text.jpg', 'not an image'],
      ['truncated.png', 'corrupt or truncated'],
      ['folder.png', 'directory'],
    ];
    for (const [name, fragment] of cases) {
      const path = join(dir, name);
      await assert.rejects(decodeImage(path, path), (error) => assertInputError(error, path, fragment));
    }
    await assert.rejects(decodeImage(join(dir, 'whole.png'), 'whole.png', { maxPixels: 4095 }), (error) =>
      assertInputError(error, 'whole.png', '64x64', '4095'),
    );
    assert.equal((await decodeImage(join(dir, 'whole.png'), 'whole.png', { maxPixels: 4096 })).width, 64);
    await assert.rejects(preprocessImageFile(join(dir, 'missing.png'), OPENAI_PREPROCESS), (error) => assertInputError(error, 'missing.png'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---- bundle configs ----

test('preprocessConfigFromHf: CLIP processor configs, old and new style', () => {
  const openai = preprocessConfigFromHf(
    { crop_size: 224, size: 224, image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3 },
    'p.json',
  );
  assert.deepEqual(openai, OPENAI_PREPROCESS);
  const modern = preprocessConfigFromHf(
    { crop_size: { height: 336, width: 336 }, size: { shortest_edge: 336 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 2, do_normalize: true },
    'p.json',
  );
  assert.deepEqual(modern, { imageSize: 336, resizeMode: 'shortest', resizeSize: 336, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resample: 'bilinear' });
  assert.deepEqual(preprocessConfigFromHf({}, 'p.json'), OPENAI_PREPROCESS);
  assert.deepEqual(preprocessConfigFromHf({ do_normalize: false, resample: 0 }, 'p.json').mean, [0, 0, 0]);
});

test('preprocessConfigFromHf: SigLIP, SigLIP 2 and MobileCLIP configs as their processors read them', () => {
  // SiglipImageProcessor: size {height, width}, no crop step, mean = std = 0.5; SigLIP 2's HF configs resize bilinear.
  const siglip = { image_processor_type: 'SiglipImageProcessor', size: { height: 384, width: 384 }, resample: 3, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
  assert.deepEqual(preprocessConfigFromHf(siglip, 'p.json'), { imageSize: 384, resizeMode: 'squash', resizeSize: 384, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resample: 'bicubic' });
  assert.equal(preprocessConfigFromHf({ ...siglip, resample: 2 }, 'p.json').resample, 'bilinear');
  // A squash followed by an explicit crop (CLIPImageProcessor with size {height, width}).
  assert.deepEqual(preprocessConfigFromHf({ size: { height: 256, width: 256 }, crop_size: 224 }, 'p.json'), { ...OPENAI_PREPROCESS, imageSize: 224, resizeMode: 'squash', resizeSize: 256 });
  assert.equal(preprocessConfigFromHf({ size: { height: 256, width: 256 }, do_center_crop: false, crop_size: 224 }, 'p.json').imageSize, 256);
  // MobileCLIP S: shorter side and crop at 256, bilinear, no normalisation (x/255 is mean 0, std 1).
  const mobile = preprocessConfigFromHf({ size: { shortest_edge: 256 }, crop_size: { height: 256, width: 256 }, do_center_crop: true, do_normalize: false, resample: 2 }, 'p.json');
  assert.deepEqual(mobile, { imageSize: 256, resizeMode: 'shortest', resizeSize: 256, mean: [0, 0, 0], std: [1, 1, 1], resample: 'bilinear' });
  // open_clip's squash (DFN, immich's SigLIP exports).
  assert.deepEqual(preprocessConfigFromOpenClip({ size: 224, resize_mode: 'squash', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, 'c.json'), {
    imageSize: 224, resizeMode: 'squash', resizeSize: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resample: 'bicubic',
  });
});

test('preprocessConfigFromHf: precise errors', () => {
  const bad: [unknown, string][] = [
    [[], 'JSON object'],
    [{ crop_size: { height: 224, width: 200 } }, 'square'],
    [{ size: { height: 224, width: 200 } }, 'square'],
    [{ size: { longest_edge: 224 } }, 'shortest_edge'],
    [{ size: 0 }, '"size"'],
    [{ crop_size: 22.5 }, '"crop_size"'],
    [{ resample: 1 }, 'LANCZOS'],
    [{ image_mean: [0.5, 0.5] }, '"image_mean"'],
    [{ image_std: [0.5, 0, 0.5] }, 'positive'],
    [{ do_center_crop: false }, 'do_center_crop'],
    [{ do_center_crop: 'yes' }, 'do_center_crop'],
    [{ rescale_factor: 0.5 }, 'rescale_factor'],
  ];
  for (const [json, fragment] of bad) {
    assert.throws(() => preprocessConfigFromHf(json, 'bundle/preprocessor_config.json'), (error) =>
      assertInputError(error, 'bundle/preprocessor_config.json', fragment),
    );
  }
});

test('preprocessConfigFromOpenClip: immich preprocess_cfg.json', () => {
  const config = preprocessConfigFromOpenClip(
    { size: [224, 224], mode: 'RGB', mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711], interpolation: 'bicubic', resize_mode: 'shortest', fill_color: 0 },
    'visual/preprocess_cfg.json',
  );
  assert.deepEqual(config, OPENAI_PREPROCESS);
  assert.deepEqual(preprocessConfigFromOpenClip({ size: 384, interpolation: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, 'c.json'), {
    imageSize: 384,
    resizeMode: 'shortest', resizeSize: 384,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    resample: 'bilinear',
  });
  const bad: [unknown, string][] = [
    [{ size: [224, 256] }, 'square'],
    [{ resize_mode: 'longest' }, 'resize_mode'],
    [{ interpolation: 'lanczos' }, 'interpolation'],
    [{ mode: 'RGBA' }, '"mode"'],
    [{ std: [1, 1, -1] }, '"std"'],
  ];
  for (const [json, fragment] of bad) {
    assert.throws(() => preprocessConfigFromOpenClip(json, 'visual/preprocess_cfg.json'), (error) =>
      assertInputError(error, 'visual/preprocess_cfg.json', fragment),
    );
  }
});

// ---- elongated images: only the crop's rows and columns are planned ----

/** preprocessDecoded's crop computed the long way: a full resize of both axes, then the centre crop. */
function fullResizeThenCrop(image: DecodedImage, config: PreprocessConfig, filter: PreprocessConfig['resample']): Float32Array {
  const resized = resizedSize(image.width, image.height, config.resizeSize);
  const pixels = scalarResize(image.data, image.width, image.height, 3, resized.width, resized.height, filter);
  const crop = config.imageSize;
  const left = cropOffset(resized.width, crop);
  const top = cropOffset(resized.height, crop);
  const table = normalisationTable(config);
  const out = new Float32Array(3 * crop * crop);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < crop; i++) {
      for (let j = 0; j < crop; j++) {
        out[(c * crop + i) * crop + j] = table[c * 256 + pixels[((top + i) * resized.width + left + j) * 3 + c]];
      }
    }
  }
  return out;
}

test('axis plans of a window equal that part of the whole axis plan', () => {
  for (const [inSize, outSize, from, count] of [[3, 33600, 16688, 224], [5000, 224, 0, 224], [61, 224, 10, 200], [300, 1000, 999, 1]]) {
    for (const filter of ['bicubic', 'bilinear', 'nearest'] as const) {
      const whole = axisPlan(inSize, outSize, filter);
      const part = axisPlan(inSize, outSize, filter, from, count);
      assert.equal(part.count, count);
      for (let i = 0; i < count; i++) {
        const w = (from + i) * whole.taps;
        let sum = 0;
        for (let k = 0; k < whole.taps; k++) sum += whole.weights[w + k] * (whole.start[from + i] + k);
        let partSum = 0;
        for (let k = 0; k < part.taps; k++) partSum += part.weights[i * part.taps + k] * (part.start[i] + k);
        assert.equal(partSum, sum, `${filter} ${inSize}->${outSize} output ${from + i}`);
      }
    }
  }
  assert.throws(() => axisPlan(10, 20, 'bicubic', 15, 6), RangeError);
});

test('preprocessDecoded: a tall, thin image equals a full resize and centre crop, bit for bit', () => {
  for (const [width, height, palette] of [[2, 300, false], [300, 3, false], [2, 300, true]] as const) {
    const image: DecodedImage = { data: pseudoRandomBytes(width * height * 3, width * 7 + height), width, height, channels: 3, palette };
    const out = new Float32Array(3 * 224 * 224);
    preprocessDecoded(image, OPENAI_PREPROCESS, out, 0);
    const expected = fullResizeThenCrop(image, OPENAI_PREPROCESS, palette ? 'nearest' : OPENAI_PREPROCESS.resample);
    assert.equal(maxAbsDifference(out, expected), 0, `${width}x${height}${palette ? ' palette' : ''}`);
  }
});

test('preprocessDecoded: a 1x70000 line is resized from its crop alone; a 1x300000 one is refused as too elongated', { timeout: 60_000 }, () => {
  const out = new Float32Array(3 * 224 * 224);
  for (const palette of [false, true]) {
    const line: DecodedImage = { data: pseudoRandomBytes(70_000 * 3, 5), width: 1, height: 70_000, channels: 3, palette };
    preprocessDecoded(line, OPENAI_PREPROCESS, out, 0, 'line.png');
    assert.ok(out.every(Number.isFinite));
  }
  const tooLong: DecodedImage = { data: pseudoRandomBytes(300_000 * 3, 6), width: 1, height: 300_000, channels: 3, palette: false };
  assert.throws(() => preprocessDecoded(tooLong, OPENAI_PREPROCESS, out, 0, 'line.png'), (error) =>
    assertInputError(error, 'line.png', '1x300000', 'too elongated', String(224 * 300_000), String(MAX_RESIZED_SIDE)),
  );
});

test('decodeImage: images failing side by side each get their own decoder message, the same on every run', async () => {
  const jpeg = await sharp(pseudoRandomBytes(256 * 256 * 3, 11), { raw: { width: 256, height: 256, channels: 3 } }).jpeg().toBuffer();
  const png = await sharp(pseudoRandomBytes(256 * 256 * 3, 12), { raw: { width: 256, height: 256, channels: 3 } }).png().toBuffer();
  const broken = Array.from({ length: 24 }, (_, i) =>
    i % 2 === 0 ? { name: `truncated-${i}.jpg`, bytes: jpeg.subarray(0, jpeg.length >> 1) } : { name: `broken-${i}.png`, bytes: png.subarray(0, png.length >> 1) },
  );
  const decodeAll = () => Promise.all(broken.map(({ name, bytes }) => decodeImage(bytes, name).then(() => `${name}: decoded`, (error: Error) => error.message)));
  const first = await decodeAll();
  first.forEach((message, i) => {
    const { name } = broken[i]!;
    assert.ok(message.startsWith(`${name}: corrupt or truncated image (`), message);
    const detail = message.slice(name.length);
    if (name.endsWith('.jpg')) assert.match(detail, /jpe?g/i), assert.doesNotMatch(detail, /png/i);
    else assert.match(detail, /png/i), assert.doesNotMatch(detail, /jpe?g/i);
    assert.doesNotMatch(detail, /unknown error/i);
  });
  const byKind = (messages: string[]) => new Set(messages.map((message, i) => message.slice(broken[i]!.name.length)));
  assert.equal(byKind(first).size, 2, [...byKind(first)].join(' | '));
  assert.deepEqual(await decodeAll(), first);
});
