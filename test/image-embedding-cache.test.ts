import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'node:test';
import { ImageEmbeddingCache, type ImageEmbeddingModelKey } from '../src/model/image-embedding-cache.js';
import { OPENAI_PREPROCESS } from '../src/preprocess/config.js';
import { collectingLogger } from './support/log.js';
import { makeTempDir, makeTestTempDir, repoRoot } from './support/paths.js';


const model: ImageEmbeddingModelKey = {
  visionModelSha256: 'a'.repeat(64), variant: 'fp32', executionProvider: 'cpu', preprocess: OPENAI_PREPROCESS,
  decode: { autoOrient: true, maxPixels: null, maxFileBytes: null },
};

test('image-embedding cache: round trip, every key part matters, damaged entries and special files are reported and rebuilt', { timeout: 60_000 }, async () => {
  const root = await makeTempDir();
  try {
    const { logger, lines } = collectingLogger();
    const cache = new ImageEmbeddingCache(root, model, logger);
    const image = { bytesSha256: 'c'.repeat(64) };
    const embedding = Float32Array.from([0.6, 0.8, 0]);
    assert.equal(await cache.read(image), undefined);
    await cache.write(image, embedding);
    assert.deepEqual(Array.from((await cache.read(image))!), Array.from(embedding));
    assert.equal(cache.hits, 1);
    assert.equal(cache.misses, 1);

    const others: ImageEmbeddingModelKey[] = [
      { ...model, visionModelSha256: 'b'.repeat(64) },
      { ...model, variant: 'fp16' },
      { ...model, executionProvider: 'cuda' },
      { ...model, preprocess: { ...OPENAI_PREPROCESS, resample: 'bilinear' } },
      { ...model, decode: { ...model.decode, autoOrient: false } },
      { ...model, decode: { ...model.decode, maxPixels: 1000 } },
    ];
    for (const other of others) assert.equal(await new ImageEmbeddingCache(root, other, logger).read(image), undefined, JSON.stringify(other));
    assert.equal(await cache.read({ bytesSha256: 'd'.repeat(64) }), undefined);
    const sample = { datasetSha256: 'e'.repeat(64), sampleId: '7' };
    await cache.write(sample, embedding);
    assert.ok(await cache.read(sample));
    assert.equal(await cache.read({ ...sample, sampleId: '8' }), undefined);
    assert.deepEqual(lines, []);

    const path = cache.entryPath(cache.entryDigest(image));
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(path, bytes);
    assert.equal(await cache.read(image), undefined);
    assert.match(lines.join(''), /image-embedding cache entry .* is damaged \(checksum mismatch\); rebuilding it/);
    await writeFile(path, bytes.subarray(0, bytes.length - 2));
    assert.equal(await cache.read(image), undefined);
    assert.match(lines.join(''), /truncated payload/);
    await cache.write(image, embedding);
    assert.deepEqual(Array.from((await cache.read(image))!), Array.from(embedding));

    // A FIFO where an entry should be is not waited on: reported as no entry, then written over.
    await rm(path);
    execFileSync('mkfifo', [path]);
    assert.equal(await cache.read(image), undefined);
    assert.match(lines.join(''), /image-embedding cache entry .*: is a FIFO \(named pipe\), not a regular file/);
    await cache.write(image, embedding);
    assert.deepEqual(Array.from((await cache.read(image))!), Array.from(embedding));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('image-embedding cache: a cache that cannot be written warns and the run goes on', async () => {
  const root = await makeTempDir();
  try {
    // A file where the cache folder should be: every write fails with ENOTDIR.
    await writeFile(`${root}/image-embeddings`, 'not a folder');
    const { logger, lines } = collectingLogger();
    const cache = new ImageEmbeddingCache(root, model, logger);
    await cache.write({ bytesSha256: 'c'.repeat(64) }, Float32Array.from([1]));
    assert.match(lines.join(''), /image-embedding cache entry .*; continuing without caching it/);
    assert.equal(await cache.read({ bytesSha256: 'c'.repeat(64) }), undefined);
    await cache.removeStaleTemporaries();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('image-embedding cache: temporaries of dead writers are removed from the entry folders', async () => {
  const root = await makeTempDir();
  try {
    const finished = spawn(process.execPath, ['-e', '']);
    await once(finished, 'exit');
    const folder = join(root, 'image-embeddings', 'ab');
    await mkdir(folder, { recursive: true });
    const stale = join(folder, `ab12.bin.${finished.pid}-0123abcd.tmp`);
    const fresh = join(folder, `ab34.bin.${finished.pid}-89abcdef.tmp`);
    await writeFile(stale, 'partial');
    await writeFile(fresh, 'partial');
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(stale, hourAgo, hourAgo);
    await new ImageEmbeddingCache(root, model, collectingLogger().logger).removeStaleTemporaries();
    assert.deepEqual(await readdir(folder), [`ab34.bin.${finished.pid}-89abcdef.tmp`]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a writer ended by SIGINT or SIGTERM mid-write removes its own temporary file and still ends by the signal', { timeout: 60_000 }, async (t) => {
  const root = await makeTestTempDir(t);
  const cacheModule = pathToFileURL(join(repoRoot, 'dist', 'src', 'core', 'cache.js')).href;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const folder = join(root, signal);
    // 256 MiB takes long enough to write and flush that the signal comes while the temporary is there.
    const code = `import { writeFileAtomic } from ${JSON.stringify(cacheModule)};
await writeFileAtomic(${JSON.stringify(join(folder, 'entry.bin'))}, Buffer.alloc(256 * 1024 * 1024, 1));
setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: 'ignore' });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    let temporary: string | undefined;
    while (temporary === undefined && child.exitCode === null) {
      temporary = (await readdir(folder).catch(() => [])).find((name) => name.endsWith('.tmp'));
      if (temporary === undefined) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    assert.ok(temporary, 'the write began');
    child.kill(signal);
    const [exitCode, ended] = await exited;
    assert.equal(ended, signal, `exit code ${exitCode}`);
    assert.deepEqual((await readdir(folder)).filter((name) => name.endsWith('.tmp')), [], `${signal}: no temporary left`);
  }
});
