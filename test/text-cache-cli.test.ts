import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writePatternClip } from '../scripts/lib/pattern-clip.js';
import { runCommand, runCli } from './support/cli.js';
import { startTestServer } from './support/http-server.js';
import { classImage } from '../scripts/lib/pattern-images.js';
import { cliPath, makeTempDir } from './support/paths.js';

/** The text-side caches (file-digest memos, text embeddings) through the built CLI, when the cache is not as it should be. */
let dir: string;
let model: string;
let image: string;
/** An image folder: two classes, three images each. */
let pets: string;

before(async () => {
  dir = await makeTempDir('clip-eval-text-cache-');
  model = join(dir, 'model');
  await writePatternClip(model, { variants: false });
  image = join(dir, 'apple.png');
  await classImage('apple').png().toFile(image);
  pets = join(dir, 'pets');
  for (const name of ['apple', 'bus']) {
    await mkdir(join(pets, name), { recursive: true });
    for (const width of [320, 300, 280]) await classImage(name, width, 240).png().toFile(join(pets, name, `${width}.png`));
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function classify(cache: string) {
  return runCli(['classify', image, '--model', model, '--labels', 'apple,bus', '--cache-dir', cache, '--quiet', '--json']);
}

/**
 * `eval` on the image folder under a file-size limit of `blocks` KiB (ulimit -f). The shell would be
 * killed by SIGXFSZ past the limit; node ignores that signal, so its write fails with EFBIG instead.
 */
function evaluateUnderFileLimit(blocks: number, cache: string, ...extra: string[]) {
  return runCommand('bash', ['-c', `ulimit -f ${blocks}; exec "$@"`, 'bash', process.execPath, cliPath, 'eval', pets, '--model', model, '--cache-dir', cache, '--quiet', ...extra]);
}

function topLabel(stdout: string): string {
  return (JSON.parse(stdout.trim()) as { top: { label: string }[] }).top[0]!.label;
}

test('stale embedding temporaries of dead writers are removed on the next run; a live writer\'s and fresh ones stay', async () => {
  const cache = join(dir, 'cache-stale');
  const first = await classify(cache);
  assert.equal(first.code, 0, first.stderr);

  const finished = spawn(process.execPath, ['-e', '']);
  await once(finished, 'exit');
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)']);
  try {
    const hourAgo = new Date(Date.now() - 3600_000);
    const planted: Record<string, { path: string; stays: boolean }> = {};
    for (const folder of ['text-embeddings', 'file-digests']) {
      const plant = async (name: string, stays: boolean, old: boolean) => {
        const path = join(cache, folder, name);
        await writeFile(path, 'partial');
        if (old) await utimes(path, hourAgo, hourAgo);
        planted[`${folder}/${name}`] = { path, stays };
      };
      await plant(`a.bin.${finished.pid}-0123abcd.tmp`, false, true);
      await plant(`b.bin.${live.pid}-0123abcd.tmp`, true, true);
      await plant(`c.bin.${finished.pid}-89abcdef.tmp`, true, false);
      await plant(`unrelated-${finished.pid}.tmp`, true, true);
    }
    const second = await classify(cache);
    assert.equal(second.code, 0, second.stderr);
    for (const folder of ['text-embeddings', 'file-digests']) {
      const names = new Set(await readdir(join(cache, folder)));
      for (const [key, { stays }] of Object.entries(planted)) {
        if (!key.startsWith(`${folder}/`)) continue;
        assert.equal(names.has(key.slice(folder.length + 1)), stays, `${key} ${stays ? 'stays' : 'is removed'}`);
      }
    }
  } finally {
    live.kill();
  }
});

test('a run removes no stale temporary through a link: text-embeddings, file-digests or image-embeddings linked out of the cache are left alone', async () => {
  const cache = join(dir, 'cache-linked');
  const first = await classify(cache);
  assert.equal(first.code, 0, first.stderr);
  const finished = spawn(process.execPath, ['-e', '']);
  await once(finished, 'exit');
  const outside = join(dir, 'outside');
  await mkdir(outside);
  const hourAgo = new Date(Date.now() - 3600_000);
  const temporaries: string[] = [];
  for (const folder of ['text-embeddings', 'file-digests', 'image-embeddings']) {
    await rename(join(cache, folder), join(outside, folder));
    await symlink(join(outside, folder), join(cache, folder));
  }
  // The image entries' shard folder is real, but reached through the link.
  const [shard] = await readdir(join(outside, 'image-embeddings'));
  for (const folder of ['text-embeddings', 'file-digests', `image-embeddings/${shard}`]) {
    const path = join(outside, folder, `a.bin.${finished.pid}-0123abcd.tmp`);
    await writeFile(path, 'not the cache\'s');
    await utimes(path, hourAgo, hourAgo);
    temporaries.push(path);
  }
  const second = await classify(cache);
  assert.equal(second.code, 0, second.stderr);
  for (const path of temporaries) assert.ok(existsSync(path), `${path} is outside the cache and stays`);
});

test('cache writes are best-effort: folders planted where entries go, or a cache root that is a file, still give the right result with a warning', async () => {
  const cache = join(dir, 'cache-blocked');
  const first = await classify(cache);
  assert.equal(first.code, 0, first.stderr);
  // Every entry the run reads or writes is a folder now: it can be neither read nor replaced.
  for (const folder of ['text-embeddings', 'file-digests']) {
    for (const name of await readdir(join(cache, folder))) {
      await rm(join(cache, folder, name));
      await mkdir(join(cache, folder, name));
    }
  }
  const blocked = await classify(cache);
  assert.equal(blocked.code, 0, blocked.stderr);
  assert.equal(topLabel(blocked.stdout), 'apple');
  assert.match(blocked.stderr, /^clip-eval: warning: text-embedding cache entry .*text-embeddings\/\w+\.bin: is a directory, not a regular file; remove it or choose another path; computing the embeddings instead$/m);
  assert.match(blocked.stderr, /^clip-eval: warning: file-digest memo .*file-digests\/\w+\.json: .*; continuing without caching it \(not repeated for other file-digest memo writes failing with \w+\)$/m);
  assert.doesNotMatch(blocked.stderr, /internal error/);

  const rootFile = join(dir, 'cache-is-a-file');
  await writeFile(rootFile, '');
  const fileRoot = await classify(rootFile);
  assert.equal(fileRoot.code, 0, fileRoot.stderr);
  assert.equal(topLabel(fileRoot.stdout), 'apple');
  assert.match(fileRoot.stderr, /^clip-eval: warning: text-embedding cache entry .*cache-is-a-file\/text-embeddings\/\w+\.bin: a part of the path is a file, not a folder/m);
});

test('a cache root that is a file where the run needs the cache (a hub model download) is exit 3 with the path, not an internal error', async () => {
  const hub = await startTestServer();
  try {
    for (const path of ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/vision_model.onnx', 'onnx/text_model.onnx']) {
      await hub.route(`/org/name/resolve/main/${path}`, { file: join(model, path) });
    }
    const rootFile = join(dir, 'cache-root-file');
    await writeFile(rootFile, '');
    const run = await runCli(['classify', image, '--model', 'org/name', '--labels', 'apple,bus', '--cache-dir', rootFile, '--quiet'], { env: { HF_ENDPOINT: hub.origin } });
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^clip-eval: .*cache-root-file\/models\/.*: a part of the path is a file, not a folder; choose another path/);
  } finally {
    await hub.close();
  }
});

test('a file-size limit (ulimit -f) is the environment: a cache write over it is a warning and the run goes on, an output over it is exit 3 naming the flag', async () => {
  const cache = join(dir, 'cache-ulimit');
  const json = join(dir, 'ulimit-report.json');
  // 1 KiB: the digest memos and image entries fit, the text-embedding entry (2 x 192 floats) and the report do not.
  const cached = await evaluateUnderFileLimit(1, cache);
  assert.equal(cached.code, 0, cached.stderr);
  assert.match(cached.stdout, /top-1/);
  assert.match(cached.stderr, /^clip-eval: warning: text-embedding cache entry .*text-embeddings\/\w+\.bin: the file would exceed the file-size limit \(ulimit -f\).* \(EFBIG on write\); continuing without caching it \(not repeated for other text-embedding cache entry writes failing with EFBIG\)$/m);
  assert.doesNotMatch(cached.stderr, /internal error/);

  const output = await evaluateUnderFileLimit(1, cache, '--json', json);
  assert.equal(output.code, 3, output.stderr);
  assert.match(output.stderr, /^clip-eval: --json output .*ulimit-report\.json: the file would exceed the file-size limit \(ulimit -f\)[^\n]*\(EFBIG on write\)\n$/m);
  assert.equal(output.stderr.split('\n').filter((line) => line.startsWith('clip-eval:') && !line.startsWith('clip-eval: warning:')).length, 1, output.stderr);
});

test('a cache that can take no byte (a full disk) is one warning per kind of entry, not one per image or memo, and the result is right', async () => {
  const cache = join(dir, 'cache-full');
  const run = await evaluateUnderFileLimit(0, cache);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /top-1\s+100\.00 %/);
  // Six images, three model files (each digest is taken twice: for the cache key and for the report), one text entry.
  const warnings = run.stderr.split('\n').filter((line) => line.startsWith('clip-eval: warning:'));
  assert.deepEqual(warnings.map((line) => /^clip-eval: warning: ([a-z -]+?) \//.exec(line)?.[1]).sort(), ['file-digest memo', 'image-embedding cache entry', 'text-embedding cache entry'], run.stderr);
  for (const line of warnings) assert.match(line, /\(EFBIG on write\); continuing without caching it \(not repeated for other .* writes failing with EFBIG\)$/);
});

test('--no-cache writes nothing under the cache root: no embeddings, and no file-digest memos either (the report\'s digests are computed)', async () => {
  const cache = join(dir, 'cache-off');
  const json = join(dir, 'no-cache-report.json');
  const run = await runCli(['eval', pets, '--model', model, '--cache-dir', cache, '--quiet', '--no-cache', '--json', json]);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(await readFile(json, 'utf8')) as { results: { model: { files: { role: string; sha256: string }[] } }[] };
  assert.deepEqual(report.results[0]!.model.files.map((file) => file.role), ['vision', 'text', 'tokenizer']);
  for (const file of report.results[0]!.model.files) assert.match(file.sha256, /^[0-9a-f]{64}$/);
  assert.ok(!existsSync(cache), `nothing was written under ${cache}: ${existsSync(cache) ? (await readdir(cache, { recursive: true })).join(', ') : ''}`);
});
