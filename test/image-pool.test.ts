import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'node:test';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { ClipEvalError, describeError } from '../src/core/errors.js';
import { OPENAI_PREPROCESS, type PreprocessConfig } from '../src/preprocess/config.js';
import { decodeImage } from '../src/preprocess/decode.js';
import { defaultImageWorkers, ImageJobError, ImagePool } from '../src/preprocess/image-pool.js';
import { MemoryBudget } from '../src/preprocess/memory-budget.js';
import { CIFAR_IMAGE_BYTES, createCifarPreprocessor, preprocessDecoded } from '../src/preprocess/transform.js';
import { runNode } from './support/cli.js';
import { cliPath, repoRoot, makeTestTempDir } from './support/paths.js';
import { classImage } from '../scripts/lib/pattern-images.js';

const SMALL: PreprocessConfig = { ...OPENAI_PREPROCESS, imageSize: 64, resizeMode: 'shortest', resizeSize: 64 };

/** The in-thread chain the pool replaces: decodeImage then preprocessDecoded; its error's message on failure. */
async function inThread(input: string | Uint8Array, label: string, config: PreprocessConfig): Promise<Float32Array | string> {
  try {
    const out = new Float32Array(3 * config.imageSize * config.imageSize);
    preprocessDecoded(await decodeImage(input, label, {}), config, out, 0, label);
    return out;
  } catch (error) {
    assert.ok(error instanceof ClipEvalError, `in-thread ${label}: ${describeError(error)}`);
    return error.message;
  }
}

async function inPool(pool: ImagePool, input: string | Uint8Array, label: string, config: PreprocessConfig): Promise<Float32Array | string> {
  try {
    return (await pool.prepare({ source: typeof input === 'string' ? { path: input } : { bytes: input }, label, config })).pixels;
  } catch (error) {
    assert.ok(error instanceof ImageJobError, `pool ${label}: ${describeError(error)}`);
    return error.message;
  }
}

/** Good images of every kind the in-thread tests cover (alpha, palette, grey, EXIF) and broken ones. */
async function writeImages(dir: string): Promise<string[]> {
  const files: [string, Promise<Buffer>][] = [
    ['apple.png', classImage('apple', 320, 240).png().toBuffer()],
    ['bear.jpg', classImage('bear', 500, 375).jpeg({ quality: 85 }).toBuffer()],
    ['tulip.webp', classImage('tulip', 240, 320).webp({ lossless: true }).toBuffer()],
    ['grey.png', classImage('rose', 200, 300).greyscale().png().toBuffer()],
    ['alpha.png', classImage('maple tree', 256, 192).ensureAlpha(0.5).png().toBuffer()],
    ['palette.png', classImage('cloud', 300, 200).png({ palette: true, colours: 16 }).toBuffer()],
    ['rotated.jpg', classImage('whale', 320, 240).jpeg().withMetadata({ orientation: 6 }).toBuffer()],
    ['small.png', classImage('bee', 40, 30).png().toBuffer()],
  ];
  const paths: string[] = [];
  for (const [name, bytes] of files) {
    const path = join(dir, name);
    await writeFile(path, await bytes);
    paths.push(path);
  }
  const jpeg = await classImage('bear', 500, 375).jpeg().toBuffer();
  const broken: [string, Uint8Array][] = [
    ['truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2))],
    ['text.png', Buffer.from('not an image at all\n')],
    ['empty.png', new Uint8Array(0)],
    ['header-only.png', (await classImage('apple').png().toBuffer()).subarray(0, 40)],
  ];
  for (const [name, bytes] of broken) {
    const path = join(dir, name);
    await writeFile(path, bytes);
    paths.push(path);
  }
  paths.push(join(dir, 'missing.jpg'), dir);
  return paths;
}

test('image pool: every image equals the in-thread chain bit for bit, and every bad file gets its own in-thread message', async (t) => {
  const dir = await makeTestTempDir(t);
  const paths = await writeImages(dir);
  const pool = new ImagePool({ workers: 2, jobsPerWorker: 3 });
  try {
    for (const config of [SMALL, OPENAI_PREPROCESS]) {
      // All in flight at once, twice over: decodes run side by side across both workers.
      const inputs = [...paths, ...paths];
      const pooled = await Promise.all(inputs.map((path) => inPool(pool, path, path, config)));
      for (const [i, path] of inputs.entries()) {
        const expected = await inThread(path, path, config);
        if (typeof expected === 'string') {
          assert.equal(pooled[i], expected, path);
          assert.ok(expected.startsWith(path), expected);
        } else {
          assert.ok(pooled[i] instanceof Float32Array, `${path}: ${String(pooled[i])}`);
          assert.deepEqual(pooled[i], expected, path);
        }
      }
    }
    const good = await inThread(paths[1]!, 'bytes', SMALL);
    // Bytes given as a view into a larger buffer: only the view's bytes travel.
    const padded = Buffer.concat([Buffer.from('xxxx'), await readFile(paths[1]!), Buffer.from('yyyy')]);
    const view = padded.subarray(4, padded.length - 4);
    assert.deepEqual(await inPool(pool, view, 'bytes', SMALL), good);
    assert.equal(view.length, padded.length - 8, 'the caller keeps its bytes');
    assert.equal(await inPool(pool, new Uint8Array(0), 'standard input', SMALL), 'standard input: image data is empty (0 bytes)');
  } finally {
    await pool.close();
  }
});

test('image pool: the digest of the bytes comes with the pixels, and with the error once the bytes were read', async (t) => {
  const dir = await makeTestTempDir(t);
  const [apple, , , , , , , , truncated] = await writeImages(dir);
  const pool = new ImagePool({ workers: 1 });
  try {
    const sha = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
    const prepared = await pool.prepare({ source: { path: apple! }, label: apple!, config: SMALL, digest: true });
    assert.equal(prepared.sha256, await sha(apple!));
    const failed = await pool.prepare({ source: { path: truncated! }, label: truncated!, config: SMALL, digest: true }).catch((error: unknown) => error);
    assert.ok(failed instanceof ImageJobError);
    assert.equal(failed.sha256, await sha(truncated!));
    const missing = await pool.prepare({ source: { path: join(dir, 'missing.jpg') }, label: 'missing', config: SMALL, digest: true }).catch((error: unknown) => error);
    assert.ok(missing instanceof ImageJobError);
    assert.equal(missing.sha256, undefined);
    assert.equal(missing.exitCode, 3);
  } finally {
    await pool.close();
  }
});

test('image pool: workers reserve from the caller\'s memory budget, which holds across workers and is all released', async (t) => {
  const dir = await makeTestTempDir(t);
  const paths = (await writeImages(dir)).slice(0, 8);
  const budget = new MemoryBudget(400_000);
  const pool = new ImagePool({ workers: 2, jobsPerWorker: 4 });
  const reserved: number[] = [];
  try {
    const results = await Promise.all(
      [...paths, ...paths, ...paths].map(async (path) => {
        const lease = budget.lease();
        try {
          const prepared = await pool.prepare({ source: { path }, label: path, config: SMALL, memory: { budget: budget.shared, lease } });
          reserved.push(lease.bytes);
          return prepared;
        } finally {
          lease.release();
        }
      }),
    );
    assert.equal(results.length, 24);
    // Each lease holds what its worker reserved: the file, then the decoded pixels.
    for (const bytes of reserved) assert.ok(bytes > 30 * 40 * 3, `reserved ${bytes}`);
    const largestImage = 500 * 375 * 3 + 200_000;
    assert.ok(budget.peak <= budget.limit + largestImage, `peak ${budget.peak}`);
    assert.ok(budget.peak > 0);
    // All released: a lease as large as the budget is granted at once, even when it is not the oldest.
    const older = budget.lease();
    await budget.lease().reserve(budget.limit);
    older.release();
  } finally {
    await pool.close();
  }
});

test('image pool: a bug in one job rejects that job only; a worker that dies fails every pending image, once, without hanging', async (t) => {
  const dir = await makeTestTempDir(t);
  const [apple] = await writeImages(dir);
  const pool = new ImagePool({ workers: 1 });
  try {
    const bug = await pool.prepare({ source: { path: apple! }, label: 'apple', config: { ...SMALL, imageSize: 0 } }).catch((error: unknown) => error);
    assert.ok(bug instanceof Error && !(bug instanceof ClipEvalError), String(bug));
    assert.match(bug.message, /imageSize must be a positive integer/);
    assert.ok((await pool.prepare({ source: { path: apple! }, label: 'apple', config: SMALL })).pixels.length > 0);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.prepare({ source: { path: apple! }, label: 'apple', config: SMALL }), /image pool closed/);

  // A worker out of memory: the environment's (exit 3), one line, for every image waiting.
  const starved = new ImagePool({ workers: 2, resourceLimits: { maxOldGenerationSizeMb: 1, maxYoungGenerationSizeMb: 1 } });
  try {
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => starved.prepare({ source: { path: apple! }, label: 'apple', config: SMALL })));
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      const error = outcome.reason as ClipEvalError;
      assert.ok(error instanceof ClipEvalError && !(error instanceof ImageJobError), String(error));
      assert.equal(error.exitCode, 3);
      assert.match(error.message, /^an image worker thread ran out of memory \(.*\); prepare fewer or smaller images at once$/);
    }
    await assert.rejects(starved.prepare({ source: { path: apple! }, label: 'apple', config: SMALL }), /ran out of memory/);
  } finally {
    await starved.close();
  }
});

test('image pool: a pool closed mid-decode leaves the decoder gate free: a failed decode after it still gets its own message', { timeout: 120_000 }, async (t) => {
  const dir = await makeTestTempDir(t);
  const paths = await writeImages(dir);
  const [, bear, , , , , , , truncated] = paths;
  const pool = new ImagePool({ workers: 2, jobsPerWorker: 8 });
  const jobs = Array.from({ length: 48 }, (_, i) => pool.prepare({ source: { path: i % 3 === 0 ? truncated! : bear! }, label: `image ${i}`, config: OPENAI_PREPROCESS }));
  await Promise.race(jobs.map((job) => job.catch(() => undefined)));
  await pool.close();
  const outcomes = await Promise.allSettled(jobs);
  assert.ok(outcomes.some((outcome) => outcome.status === 'rejected' && /image pool closed/.test(String(outcome.reason))), 'some images were still in flight');

  const expected = await inThread(truncated!, truncated!, SMALL);
  assert.match(String(expected), /corrupt or truncated image/);
  const again = new ImagePool({ workers: 2 });
  try {
    assert.equal(await inPool(again, truncated!, truncated!, SMALL), expected);
  } finally {
    await again.close();
  }
});

/** Runs `body` (an ES module's text) in a fresh node process; resolves with its exit code and signal. */
function runModule(dir: string, body: string, whenStarted?: (child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const script = join(dir, `child-${Math.random().toString(36).slice(2)}.mjs`);
    void writeFile(script, body).then(() => {
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('started')) whenStarted?.(child);
      });
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  });
}

test('image pool: a process that never closes its pool still exits once its images are done, and SIGINT ends one mid-run', async (t) => {
  const dir = await makeTestTempDir(t);
  const [apple] = await writeImages(dir);
  const poolUrl = pathToFileURL(join(repoRoot, 'dist/src/preprocess/image-pool.js')).href;
  const prelude = `import { ImagePool } from ${JSON.stringify(poolUrl)};
const pool = new ImagePool({ workers: 2 });
const config = { imageSize: 224, resizeMode: 'shortest', resizeSize: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resample: 'bicubic' };
const prepare = () => pool.prepare({ source: { path: ${JSON.stringify(apple)} }, label: 'apple', config });
`;
  const idle = await runModule(dir, `${prelude}const images = await Promise.all(Array.from({ length: 8 }, prepare));\nconsole.log('prepared', images.length);\n`);
  assert.equal(idle.code, 0, idle.stderr);
  assert.match(idle.stdout, /prepared 8/);

  const interrupted = await runModule(
    dir,
    `${prelude}console.log('started');\nfor (;;) await Promise.all(Array.from({ length: 16 }, prepare));\n`,
    (child) => child.kill('SIGINT'),
  );
  assert.equal(interrupted.signal, 'SIGINT', `code ${interrupted.code}: ${interrupted.stderr}`);
});

test('image pool: one worker per core but one, and at least one', () => {
  assert.equal(defaultImageWorkers(1), 1);
  assert.equal(defaultImageWorkers(2), 1);
  assert.equal(defaultImageWorkers(16), 15);
  assert.ok(defaultImageWorkers() >= 1);
});

test('image pool: planar batches, sent together, come back in order and equal the in-thread planar path bit for bit', async () => {
  const count = 40;
  const records = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  for (let i = 0; i < records.length; i++) records[i] = (Math.imul(i, 2654435761) >>> 24) & 0xff;
  const imageFloats = 3 * SMALL.imageSize * SMALL.imageSize;
  const expected = new Float32Array(count * imageFloats);
  const inThreadCifar = createCifarPreprocessor(SMALL);
  for (let i = 0; i < count; i++) inThreadCifar(records, i, expected, i * imageFloats);
  const pool = new ImagePool({ workers: 3 });
  try {
    for (let round = 0; round < 2; round++) {
      // Chunks of 7 (the last one shorter), all in flight at once over three workers.
      const chunks = Array.from({ length: Math.ceil(count / 7) }, (_, c) => ({ first: c * 7, count: Math.min(7, count - c * 7) }));
      const results = await Promise.all(
        chunks.map(({ first, count: n }) =>
          pool.preparePlanar({ records: records.subarray(first * CIFAR_IMAGE_BYTES, (first + n) * CIFAR_IMAGE_BYTES), width: 32, height: 32, count: n, config: SMALL }),
        ),
      );
      results.forEach(({ pixels }, c) => {
        const { first, count: n } = chunks[c]!;
        assert.equal(pixels.length, n * imageFloats);
        assert.deepEqual(pixels, expected.subarray(first * imageFloats, (first + n) * imageFloats), `round ${round}, chunk ${c}`);
        // Recycled buffers are written into on the next round: its results must still be exact.
        pool.recycle(pixels);
      });
    }
    await assert.rejects(pool.preparePlanar({ records: records.subarray(0, 100), width: 32, height: 32, count: 1, config: SMALL }), RangeError);
  } finally {
    await pool.close();
  }
});

test('bin/clip-eval.cjs gives libuv\'s pool (where sharp decodes) a thread per core, at least 4, unless UV_THREADPOOL_SIZE is set; exit codes and one-line errors pass through', async () => {
  // A hook loaded before the launcher reports the variable as the process exits, after the launcher set it.
  const hook = `data:text/javascript,process.on('exit', () => process.stderr.write('UV_THREADPOOL_SIZE=' + process.env.UV_THREADPOOL_SIZE + '\\n'))`;
  const launch = (args: string[], threadPoolSize: string | undefined) => runNode(['--import', hook, cliPath, ...args], { env: { UV_THREADPOOL_SIZE: threadPoolSize } });
  const sized = await launch(['--version'], undefined);
  assert.equal(sized.code, 0, sized.stderr);
  assert.match(sized.stdout, /^\d+\.\d+\.\d+\n$/);
  assert.match(sized.stderr, new RegExp(`^UV_THREADPOOL_SIZE=${Math.max(4, availableParallelism())}$`, 'm'));
  const kept = await launch(['--bogus'], '3');
  assert.equal(kept.code, 2);
  assert.match(kept.stderr, /^UV_THREADPOOL_SIZE=3$/m);
  const lines = kept.stderr.split('\n').filter((line) => line.startsWith('clip-eval:'));
  assert.deepEqual(lines.length, 1, kept.stderr);
});
