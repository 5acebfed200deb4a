import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'node:test';
import { l2NormaliseRows } from '../src/model/encoders.js';
import { ensembleClassEmbeddings } from '../src/text/classifier.js';
import { fileDigest, fileDigestKnown, OFF_THREAD_HASH_BYTES, readTextEmbeddings, textEmbeddingCachePath, textEmbeddingKeyDigest, writeTextEmbeddings, type TextEmbeddingKey } from '../src/text/embedding-cache.js';
import { OPENAI_CIFAR_TEMPLATES, fillTemplate, resolveTemplates, validateTemplates } from '../src/text/templates.js';
import { collectingLogger } from './support/log.js';
import { makeTempDir } from './support/paths.js';


test('ensemble: normalise each prompt, average per class, normalise again', () => {
  // Two classes, two templates, dim 2; unnormalised inputs of different lengths.
  const prompts = Float32Array.from([3, 0, 0, 10, 1, 1, 2, 2]);
  const classes = ensembleClassEmbeddings(prompts, 2, 2, 2);
  // Class 0: normalised (1,0) and (0,1) → mean (0.5,0.5) → (0.7071, 0.7071). Averaging raw vectors would tilt to (3,10).
  assert.ok(Math.abs(classes[0]! - Math.SQRT1_2) < 1e-6 && Math.abs(classes[1]! - Math.SQRT1_2) < 1e-6);
  assert.ok(Math.abs(classes[2]! - Math.SQRT1_2) < 1e-6 && Math.abs(classes[3]! - Math.SQRT1_2) < 1e-6);
  assert.throws(() => ensembleClassEmbeddings(prompts, 3, 2, 2), /expected 6 prompt embeddings/);
  const zero = l2NormaliseRows(Float32Array.from([0, 0]), 2);
  assert.deepEqual(Array.from(zero), [0, 0]);
});

test('templates: OpenAI has 18, files are validated, {} is filled', async () => {
  assert.equal(OPENAI_CIFAR_TEMPLATES.length, 18);
  assert.equal(new Set(OPENAI_CIFAR_TEMPLATES).size, 18);
  assert.equal(fillTemplate('a photo of a {}.', 'maple tree'), 'a photo of a maple tree.');
  assert.equal((await resolveTemplates('single')).templates.length, 1);
  assert.throws(() => validateTemplates(['a photo'], 'x'), /x: template "a photo" has no \{\}/);
  assert.throws(() => validateTemplates(['{}', '{}'], 'x'), /listed twice/);
  const dir = await makeTempDir();
  try {
    await writeFile(join(dir, 't.txt'), 'itap of a {}.\n\n  a {} in the wild. \n');
    const set = await resolveTemplates(join(dir, 't.txt'));
    assert.deepEqual(set.templates, ['itap of a {}.', 'a {} in the wild.']);
    await assert.rejects(resolveTemplates(join(dir, 'missing.txt')), /: templates .*missing\.txt: cannot read the file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('text-embedding cache: round trip, key sensitivity, damaged entries are reported and ignored', async () => {
  const root = await makeTempDir();
  try {
    const key: TextEmbeddingKey = {
      textModelSha256: 'a'.repeat(64),
      tokenizerSha256: 'b'.repeat(64),
      contextLength: 77,
      padToken: '<|endoftext|>',
      family: 'clip',
      templates: ['a photo of a {}.'],
      classNames: ['cat', 'dog'],
      reduction: 'l2-mean-l2',
    };
    const digest = textEmbeddingKeyDigest(key);
    assert.notEqual(digest, textEmbeddingKeyDigest({ ...key, classNames: ['dog', 'cat'] }));
    assert.notEqual(digest, textEmbeddingKeyDigest({ ...key, templates: ['a photo of the {}.'] }));
    assert.notEqual(digest, textEmbeddingKeyDigest({ ...key, textModelSha256: 'c'.repeat(64) }));
    assert.notEqual(digest, textEmbeddingKeyDigest({ ...key, family: 'siglip' }));
    const path = textEmbeddingCachePath(root, digest);
    const { logger, lines } = collectingLogger();
    assert.equal(await readTextEmbeddings(path, digest, logger), undefined);
    const matrix = Float32Array.from([0.6, 0.8, 1, 0]);
    await writeTextEmbeddings(path, digest, { classes: 2, dim: 2, matrix });
    const hit = await readTextEmbeddings(path, digest, logger);
    assert.deepEqual(Array.from(hit!.matrix), Array.from(matrix));
    assert.equal(lines.length, 0);

    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 3));
    assert.equal(await readTextEmbeddings(path, digest, logger), undefined);
    assert.match(lines.join(''), /damaged \(truncated payload\); rebuilding it/);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1]! ^= 0xff;
    await writeFile(path, flipped);
    assert.equal(await readTextEmbeddings(path, digest, logger), undefined);
    assert.match(lines.join(''), /checksum mismatch/);
    await writeFile(path, 'garbage');
    assert.equal(await readTextEmbeddings(path, digest, logger), undefined);
    assert.match(lines.join(''), /bad header/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('fileDigest re-hashes a file whose size or time changed', async () => {
  const root = await makeTempDir();
  try {
    const file = join(root, 'model.onnx');
    await writeFile(file, 'one');
    const first = await fileDigest(file, root);
    assert.equal(first, await fileDigest(file, root));
    await writeFile(file, 'two, longer');
    assert.notEqual(await fileDigest(file, root), first);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('fileDigest hashes a model-sized file on the hashing thread, once for concurrent callers, and again once it changes', async () => {
  const root = await makeTempDir();
  try {
    const file = join(root, 'model.onnx');
    const bytes = Buffer.alloc(OFF_THREAD_HASH_BYTES + 5, 7);
    await writeFile(file, bytes);
    const expected = createHash('sha256').update(bytes).digest('hex');
    assert.equal(await fileDigestKnown(file, root), false);
    const digests = await Promise.all([fileDigest(file, root), fileDigest(file, root), fileDigest(file, root)]);
    assert.deepEqual(digests, [expected, expected, expected]);
    assert.equal(await fileDigestKnown(file, root), true);
    bytes[0] = 8;
    await writeFile(file, bytes);
    assert.equal(await fileDigestKnown(file, root), false);
    assert.equal(await fileDigest(file, root), createHash('sha256').update(bytes).digest('hex'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
