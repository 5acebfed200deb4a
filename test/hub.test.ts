import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, utimes } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { resolveModelBundle } from '../src/model/bundle.js';
import { hubCacheFolder, openHubRepo, parseHubModelId } from '../src/net/hub.js';
import { writePatternClip } from '../scripts/lib/pattern-clip.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { makeTempDir } from './support/paths.js';
import { isClipEvalError, rejectsWithOneLine } from './support/errors.js';

/**
 * A server on 127.0.0.1 poses as the hub (HF_ENDPOINT) and a second one as its CDN: like the real hub,
 * `resolve` answers .onnx files with a 302 to the CDN carrying X-Linked-Etag (sha256) and X-Linked-Size,
 * and small files directly.
 */
let dir: string;
let hub: TestServer;
let cdn: TestServer;
const bundles: Record<'hf' | 'immich', Map<string, Buffer>> = { hf: new Map(), immich: new Map() };
let cacheCount = 0;
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

interface PublishOptions {
  /** Paths to leave out of the repo. */
  omit?: string[];
  /** Announce a wrong sha256 for the .onnx files. */
  wrongSha?: boolean;
  /** Default: main. */
  revision?: string;
}

async function publish(repo: string, files: Map<string, Buffer>, options: PublishOptions = {}): Promise<void> {
  for (const [path, content] of files) {
    if (options.omit?.includes(path)) continue;
    const resolvePath = `/${repo}/resolve/${options.revision ?? 'main'}/${path}`;
    if (!path.endsWith('.onnx')) {
      await hub.route(resolvePath, { body: content });
      continue;
    }
    const sha256 = createHash('sha256').update(options.wrongSha ? Buffer.concat([content, Buffer.from('x')]) : content).digest('hex');
    await cdn.route(`/blobs/${repo}/${sha256}`, { body: content });
    await hub.route(resolvePath, {
      redirectTo: cdn.url(`/blobs/${repo}/${sha256}`),
      headers: { 'X-Linked-Etag': `"${sha256}"`, 'X-Linked-Size': String(content.length), ETag: '"git-sha1-not-a-sha256"' },
    });
  }
}

function freshCache(): string {
  cacheCount += 1;
  return join(dir, `cache-${cacheCount}`);
}

/** Requests to both servers since `mark` (an index into each one's request list). */
function requestsSince(mark: [number, number]) {
  return [...hub.requests.slice(mark[0]), ...cdn.requests.slice(mark[1])];
}
function mark(): [number, number] {
  return [hub.requests.length, cdn.requests.length];
}

before(async () => {
  dir = await makeTempDir('clip-eval-hub-');
  hub = await startTestServer();
  cdn = await startTestServer();
  for (const layout of ['hf', 'immich'] as const) {
    const folder = join(dir, `source-${layout}`);
    await writePatternClip(folder, { layout });
    for (const path of await listFiles(folder)) bundles[layout].set(path.split('\\').join('/'), await readFile(join(folder, path)));
  }
  await publish('acme/pattern-clip', bundles.hf);
  await publish('acme/immich-clip', bundles.immich);
  await publish('acme/tampered', bundles.hf, { wrongSha: true });
  await publish('acme/no-preprocess', bundles.hf, { omit: ['preprocessor_config.json'] });
  await publish('acme/no-preprocess', bundles.hf, { omit: ['preprocessor_config.json'], revision: COMMIT });
  await hub.route('/acme/private/resolve/main/onnx/vision_model.onnx', { status: 401 });
  await hub.route('/acme/gone/resolve/main/onnx/vision_model.onnx', { status: 401, headers: { 'X-Error-Code': 'RepoNotFound' } });
  process.env.HF_ENDPOINT = hub.origin;
  delete process.env.HF_TOKEN;
});

after(async () => {
  await Promise.all([hub.close(), cdn.close()]);
  await rm(dir, { recursive: true, force: true });
});

test('hub ids: org/name[@revision], and the cache folder for them', () => {
  assert.deepEqual(parseHubModelId('Xenova/clip-vit-base-patch32'), { repo: 'Xenova/clip-vit-base-patch32', revision: 'main' });
  assert.deepEqual(parseHubModelId('immich-app/ViT-B-32__openai@v1.2'), { repo: 'immich-app/ViT-B-32__openai', revision: 'v1.2' });
  assert.equal(parseHubModelId('./models/clip'), undefined);
  assert.equal(parseHubModelId('just-a-name'), undefined);
  assert.equal(parseHubModelId('a/b/c'), undefined);
  assert.throws(() => parseHubModelId('org/name@'), /bad revision ""/);
  assert.equal(hubCacheFolder('/c', { repo: 'org/name', revision: 'refs/pr/1' }), join('/c', 'models', 'org--name', 'refs%2Fpr%2F1'));
});

test('repo ids follow the hub rules, so that two repos never share a cache folder', () => {
  for (const [id, rule] of [
    ['a/b--c', /"--"/],
    ['a--b/c', /"--"/],
    ['a/b..c', /"\.\."/],
    ['org/-name', /start or end with "\." or "-"/],
    ['org/name-', /start or end with "\." or "-"/],
    ['org/name.', /start or end with "\." or "-"/],
    ['org/name.git', /end with "\.git"/],
    [`org/${'n'.repeat(97)}`, /longer than 96/],
  ] as const) {
    assert.throws(() => parseHubModelId(id), isClipEvalError(new RegExp(`^model ${id.replace(/\./g, '\\.')}: not a valid hub repo id: .*${rule.source}`)), id);
    assert.throws(() => parseHubModelId(id), (error: { exitCode?: number }) => error.exitCode === 2);
    assert.throws(() => hubCacheFolder('/c', { repo: id, revision: 'main' }), isClipEvalError(/not a valid hub repo id/), id);
  }
  assert.deepEqual(parseHubModelId(`org/${'n'.repeat(96)}`), { repo: `org/${'n'.repeat(96)}`, revision: 'main' });
  assert.deepEqual(parseHubModelId('my-org/my.model_v2'), { repo: 'my-org/my.model_v2', revision: 'main' });
  assert.notEqual(hubCacheFolder('/c', { repo: 'a-b/c', revision: 'main' }), hubCacheFolder('/c', { repo: 'a/b-c', revision: 'main' }));
  // Path-like arguments are not hub ids at all (the caller says there is no such folder).
  assert.equal(parseHubModelId('../models'), undefined);
  assert.equal(parseHubModelId('.cache/model'), undefined);
});

test('revisions that are not git ref names or commits are usage errors', () => {
  for (const revision of ['.', '..', 'a/../b', './main', '/main', 'main/', 'a//b', '.hidden', 'v1.', 'x.lock', 'a b', 'a~1', 'a^2', 'a:b', 'a?', 'a*', 'a[0]', 'a\\b', 'a@{1}', 'tab\t']) {
    assert.throws(
      () => parseHubModelId(`org/name@${revision}`),
      (error: { exitCode?: number; message?: string }) => error.exitCode === 2 && /bad revision/.test(error.message ?? ''),
      JSON.stringify(revision),
    );
    assert.throws(() => hubCacheFolder('/c', { repo: 'org/name', revision }), isClipEvalError(/bad revision/), JSON.stringify(revision));
  }
  for (const revision of ['main', 'v1.2', 'refs/pr/1', 'release/2024-01', COMMIT]) {
    assert.deepEqual(parseHubModelId(`org/name@${revision}`), { repo: 'org/name', revision });
  }
});

test('a Hugging Face repo: only the files of the run, verified by the linked sha256, cached by path', async () => {
  const cacheRoot = freshCache();
  const start = mark();
  const bundle = await resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot, quiet: true });
  const folder = join(cacheRoot, 'models', 'acme--pattern-clip', 'main');
  assert.equal(bundle.layout, 'huggingface');
  assert.equal(bundle.id, 'acme/pattern-clip');
  assert.equal(bundle.visionModelPath, join(folder, 'onnx', 'vision_model.onnx'));
  assert.equal(bundle.textModelPath, join(folder, 'onnx', 'text_model.onnx'));
  assert.equal(bundle.tokenizerConfigPath, join(folder, 'tokenizer_config.json'));
  for (const path of ['onnx/vision_model.onnx', 'onnx/text_model.onnx', 'tokenizer.json', 'preprocessor_config.json', 'config.json']) {
    assert.deepEqual(await readFile(join(folder, path)), bundles.hf.get(path), path);
  }

  const gets = requestsSince(start).filter((r) => r.method === 'GET').map((r) => r.path);
  assert.ok(!gets.some((path) => path.includes('quantized')), 'the int8 files were not asked for');
  assert.ok(!gets.some((path) => path.includes('visual/')), 'the immich layout was not probed once the Hugging Face one was found');
  // .onnx files: GET resolve → 302 → GET on the CDN.
  assert.equal(gets.filter((path) => path === '/acme/pattern-clip/resolve/main/onnx/vision_model.onnx').length, 1);
  assert.equal(gets.filter((path) => path.startsWith('/blobs/acme/pattern-clip/')).length, 2);

  // A second run uses the cache and asks nothing.
  const again = mark();
  assert.deepEqual(await resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot, quiet: true }), bundle);
  assert.deepEqual(requestsSince(again), []);

  // Another variant fetches its own files only.
  const int8Start = mark();
  const int8 = await resolveModelBundle({ model: 'acme/pattern-clip', variant: 'int8', cacheRoot, quiet: true });
  assert.equal(int8.visionModelPath, join(folder, 'onnx', 'vision_model_quantized.onnx'));
  const int8Gets = requestsSince(int8Start).filter((r) => r.method === 'GET' && r.path.startsWith('/acme/'));
  assert.deepEqual(int8Gets.map((r) => r.path).sort(), ['/acme/pattern-clip/resolve/main/onnx/text_model_quantized.onnx', '/acme/pattern-clip/resolve/main/onnx/vision_model_quantized.onnx']);
});

test('--offline: the cache only, with the missing file named', async () => {
  const cacheRoot = freshCache();
  const start = mark();
  await assert.rejects(
    resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot, offline: true }),
    isClipEvalError(/^offline mode: .*cache-\d+\/models\/acme--pattern-clip\/main\/onnx\/vision_model\.onnx is not cached; run once online to download acme\/pattern-clip@main$/),
  );
  const online = await resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot, quiet: true, needVision: false });
  // The text files are now cached, the vision model is not.
  await assert.rejects(resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot, offline: true }), isClipEvalError(/onnx\/vision_model\.onnx is not cached/));
  const cachedStart = mark();
  assert.deepEqual(await resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot, offline: true, needVision: false }), online);
  assert.deepEqual(requestsSince(cachedStart), []);
  assert.ok(requestsSince(start).every((r) => !r.path.includes('vision_model') && !r.path.includes('preprocessor')), 'a text-only run fetched no vision files');
});

test('an immich repo is found after the Hugging Face probe misses', async () => {
  const cacheRoot = freshCache();
  const start = mark();
  const bundle = await resolveModelBundle({ model: 'acme/immich-clip', cacheRoot, quiet: true });
  assert.equal(bundle.layout, 'immich');
  assert.equal(bundle.embeddingsNormalised, true);
  assert.deepEqual(await readFile(bundle.textModelPath), bundles.immich.get('textual/model.onnx'));
  const probes = requestsSince(start).filter((r) => r.method === 'HEAD').map((r) => r.path);
  assert.deepEqual(probes.slice(0, 2), ['/acme/immich-clip/resolve/main/onnx/vision_model.onnx', '/acme/immich-clip/resolve/main/visual/model.onnx']);
});

test('a download whose sha256 differs from X-Linked-Etag is rejected and not cached', async () => {
  const cacheRoot = freshCache();
  await assert.rejects(resolveModelBundle({ model: 'acme/tampered', cacheRoot, quiet: true }), isClipEvalError(/has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; the download was discarded/));
  assert.equal(existsSync(join(cacheRoot, 'models', 'acme--tampered', 'main', 'onnx', 'vision_model.onnx')), false);
});

test('HF_TOKEN goes to the hub as a bearer token, never to the CDN', async () => {
  process.env.HF_TOKEN = 'hf_test_token';
  try {
    const start = mark();
    await resolveModelBundle({ model: 'acme/pattern-clip', cacheRoot: freshCache(), quiet: true });
    const requests = requestsSince(start);
    const hubRequests = requests.filter((r) => r.path.startsWith('/acme/'));
    const cdnRequests = requests.filter((r) => r.path.startsWith('/blobs/'));
    assert.ok(hubRequests.length > 0 && cdnRequests.length > 0);
    for (const r of hubRequests) assert.equal(r.headers.authorization, 'Bearer hf_test_token', `${r.method} ${r.path}`);
    for (const r of cdnRequests) assert.equal(r.headers.authorization, undefined, `${r.method} ${r.path}`);
  } finally {
    delete process.env.HF_TOKEN;
  }
});

test('hub refusals and misses are one-line errors with a hint', async () => {
  const cacheRoot = freshCache();
  await assert.rejects(
    resolveModelBundle({ model: 'acme/private', cacheRoot }),
    isClipEvalError(/^acme\/private@main: the hub refused .* with 401 Unauthorized; if it is private or gated, set HF_TOKEN to a token with access$/),
  );
  await assert.rejects(resolveModelBundle({ model: 'acme/gone', cacheRoot }), isClipEvalError(/^acme\/gone@main: no such model repo on http:\/\/127\.0\.0\.1:\d+ \(if it is private or gated, set HF_TOKEN/));
  await assert.rejects(resolveModelBundle({ model: 'acme/nothing', cacheRoot }), isClipEvalError(/^acme\/nothing@main: no recognised model layout \(looked for onnx\/vision_model\.onnx/));
  await assert.rejects(
    resolveModelBundle({ model: 'acme/pattern-clip', variant: 'fp16', cacheRoot }),
    isClipEvalError(/^variant fp16: acme\/pattern-clip@main has no onnx\/vision_model_fp16\.onnx \(variants there: fp32, int8\)$/),
  );
});

test('an optional file the repo lacks is remembered as absent, not asked for again', async () => {
  const cacheRoot = freshCache();
  const first = await resolveModelBundle({ model: 'acme/no-preprocess', cacheRoot, quiet: true });
  assert.equal(first.preprocess.imageSize, 224);
  const start = mark();
  assert.deepEqual(await resolveModelBundle({ model: 'acme/no-preprocess', cacheRoot, quiet: true }), first);
  assert.deepEqual(requestsSince(start), []);
});

test('a remembered 404 on a branch expires after a day; on a commit it is kept', async () => {
  const DAY_AND_A_BIT = 25 * 3_600_000;
  const marker = (cacheRoot: string, revision: string) =>
    join(cacheRoot, 'models', 'acme--no-preprocess', revision, 'preprocessor_config.json.absent');
  const age = async (path: string, ms: number) => {
    const then = new Date(Date.now() - ms);
    await utimes(path, then, then);
  };
  const askedAgain = (since: [number, number]) =>
    requestsSince(since).some((r) => r.method === 'HEAD' && r.path.endsWith('/preprocessor_config.json'));

  const branchCache = freshCache();
  await resolveModelBundle({ model: 'acme/no-preprocess', cacheRoot: branchCache, quiet: true });
  assert.ok(existsSync(marker(branchCache, 'main')));
  await age(marker(branchCache, 'main'), DAY_AND_A_BIT);
  let start = mark();
  await resolveModelBundle({ model: 'acme/no-preprocess', cacheRoot: branchCache, quiet: true });
  assert.ok(askedAgain(start), 'a day-old absence on a branch is checked again');
  start = mark();
  await resolveModelBundle({ model: 'acme/no-preprocess', cacheRoot: branchCache, quiet: true });
  assert.ok(!askedAgain(start), 'and remembered again');
  await age(marker(branchCache, 'main'), -DAY_AND_A_BIT);
  start = mark();
  await resolveModelBundle({ model: 'acme/no-preprocess', cacheRoot: branchCache, quiet: true });
  assert.ok(askedAgain(start), 'an absence dated in the future is not trusted');

  const commitCache = freshCache();
  await resolveModelBundle({ model: `acme/no-preprocess@${COMMIT}`, cacheRoot: commitCache, quiet: true });
  await age(marker(commitCache, COMMIT), 30 * DAY_AND_A_BIT);
  start = mark();
  await resolveModelBundle({ model: `acme/no-preprocess@${COMMIT}`, cacheRoot: commitCache, quiet: true });
  assert.deepEqual(requestsSince(start), [], 'a commit never changes: its absence stays remembered');
});

test('a hub file sent without a length (as HTTP/1.0 servers do) and cut short is completed, not cached short', async () => {
  const templates = Buffer.from(Array.from({ length: 4_000 }, (_, i) => `a photo of a {} number ${i}.`).join('\n'));
  await hub.route('/acme/templates/resolve/main/templates.txt', { body: templates, framing: 'close', cutAfterBytes: 20_000 });
  const repo = openHubRepo({ repo: 'acme/templates', revision: 'main' }, { cacheRoot: freshCache(), quiet: true });
  assert.deepEqual(await readFile(await repo.fetch('templates.txt')), templates);
});

test('HF_TOKEN is suggested when the hub or its CDN refuses access, not for other failures', async () => {
  const sha256 = 'ab'.repeat(32);
  const linked = (blob: string) => ({ redirectTo: cdn.url(blob), headers: { 'X-Linked-Etag': `"${sha256}"`, 'X-Linked-Size': '10' } });
  await cdn.route('/blobs/missing', { status: 404 });
  await cdn.route('/blobs/forbidden', { status: 403 });
  await hub.route('/acme/hints/resolve/main/missing.onnx', linked('/blobs/missing'));
  await hub.route('/acme/hints/resolve/main/forbidden.onnx', linked('/blobs/forbidden'));
  const repo = openHubRepo({ repo: 'acme/hints', revision: 'main' }, { cacheRoot: freshCache(), quiet: true });
  await rejectsWithOneLine(repo.fetch('missing.onnx'), /^could not download http:\S+\/missing\.onnx: HTTP 404 Not Found$/);
  await rejectsWithOneLine(repo.fetch('forbidden.onnx'), /^could not download http:\S+\/forbidden\.onnx: HTTP 403 Forbidden; if the model is private or gated, set HF_TOKEN$/);
});
