import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import test, { after, afterEach, before } from 'node:test';
import { downloadFile } from '../src/net/download.js';
import { openHubRepo } from '../src/net/hub.js';
import { startSilentProxy, startTestProxy, type TestProxy } from './support/http-proxy.js';
import { startTestServer, type TestServer } from './support/http-server.js';
import { rejectsWithOneLine } from './support/errors.js';
import { makeTempDir } from './support/paths.js';

/** The downloader and the hub client share one HTTP client, so both honour HTTP_PROXY and NO_PROXY. */
const PROXY_VARIABLES = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'];
const saved = Object.fromEntries(PROXY_VARIABLES.map((name) => [name, process.env[name]]));

let dir: string;
let server: TestServer;
let cdn: TestServer;
let proxy: TestProxy;
const content = randomBytes(50_000);

function useProxy(noProxy?: string): void {
  for (const name of PROXY_VARIABLES) delete process.env[name];
  process.env.HTTP_PROXY = proxy.origin;
  if (noProxy !== undefined) process.env.NO_PROXY = noProxy;
}

before(async () => {
  dir = await makeTempDir('clip-eval-proxy-');
  [server, cdn, proxy] = await Promise.all([startTestServer(), startTestServer(), startTestProxy()]);
});

afterEach(() => {
  for (const name of PROXY_VARIABLES) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

after(async () => {
  await Promise.all([server.close(), cdn.close(), proxy.close()]);
  await rm(dir, { recursive: true, force: true });
});

test('downloads go through HTTP_PROXY, and straight to the hosts in NO_PROXY', async () => {
  useProxy();
  await server.route('/through-proxy.bin', { body: content });
  const destination = join(dir, 'through-proxy.bin');
  await downloadFile({ url: server.url('/through-proxy.bin'), destination, quiet: true, retries: 0 });
  assert.ok((await readFile(destination)).equals(content));
  assert.deepEqual(
    proxy.requests.map((r) => `${r.method} ${r.url}`),
    [`GET ${server.url('/through-proxy.bin')}`],
  );

  useProxy('localhost,127.0.0.1');
  await server.route('/direct.bin', { body: content });
  await downloadFile({ url: server.url('/direct.bin'), destination: join(dir, 'direct.bin'), quiet: true, retries: 0 });
  assert.equal(server.count('/direct.bin'), 1);
  assert.equal(proxy.requests.length, 1, 'a NO_PROXY host is reached without the proxy');
});

test('the hub client goes through HTTP_PROXY too, and the token still goes to the hub only', async () => {
  useProxy();
  const start = proxy.requests.length;
  await server.route('/acme/tiny/resolve/main/config.json', { body: '{}' });
  await cdn.route('/blob/model', { body: content });
  await server.route('/acme/tiny/resolve/main/model.onnx', {
    redirectTo: cdn.url('/blob/model'),
    headers: { 'X-Linked-Size': String(content.length), 'X-Linked-Etag': '"not-a-sha256"' },
  });
  const hub = openHubRepo({ repo: 'acme/tiny', revision: 'main' }, { cacheRoot: join(dir, 'cache'), endpoint: server.origin, token: 'hf_secret', quiet: true });
  assert.equal(await readFile(await hub.fetch('config.json'), 'utf8'), '{}');
  assert.ok((await readFile(await hub.fetch('model.onnx'))).equals(content));
  assert.equal(await hub.fetchOptional('missing.json'), undefined);

  const seen = proxy.requests.slice(start).map((r) => ({ request: `${r.method} ${r.url}`, token: r.headers.authorization }));
  const hubUrl = (path: string) => server.url(`/acme/tiny/resolve/main/${path}`);
  assert.deepEqual(seen, [
    { request: `HEAD ${hubUrl('config.json')}`, token: 'Bearer hf_secret' },
    { request: `GET ${hubUrl('config.json')}`, token: 'Bearer hf_secret' },
    { request: `HEAD ${hubUrl('model.onnx')}`, token: 'Bearer hf_secret' },
    { request: `GET ${hubUrl('model.onnx')}`, token: 'Bearer hf_secret' },
    { request: `GET ${cdn.url('/blob/model')}`, token: undefined },
    { request: `HEAD ${hubUrl('missing.json')}`, token: 'Bearer hf_secret' },
  ]);
});

test('a proxy variable that is not a proxy URL is a one-line error naming it, without its value', async () => {
  useProxy();
  process.env.HTTP_PROXY = 'ftp://user:secret@127.0.0.1:21';
  await server.route('/bad-proxy.bin', { body: content });
  const error = await rejectsWithOneLine(
    downloadFile({ url: server.url('/bad-proxy.bin'), destination: join(dir, 'bad-proxy.bin'), quiet: true, retries: 0 }),
    /^HTTP_PROXY is not a proxy URL: expected http:\/\/host:port \(or https:\/\/\); fix or unset it$/,
  );
  assert.equal(error.exitCode, 3);
  const hub = openHubRepo({ repo: 'acme/tiny', revision: 'main' }, { cacheRoot: join(dir, 'bad-proxy-cache'), endpoint: server.origin, quiet: true });
  await rejectsWithOneLine(hub.fetch('other.json'), /^HTTP_PROXY is not a proxy URL/);
  assert.equal(server.count('/bad-proxy.bin'), 0);
});

test('an HTTPS proxy that never answers CONNECT fails the download after the time-out, once, not after 300 s', { timeout: 20_000 }, async () => {
  const silent = await startSilentProxy();
  try {
    for (const name of PROXY_VARIABLES) delete process.env[name];
    process.env.HTTPS_PROXY = silent.origin;
    const destination = join(dir, 'silent-proxy.bin');
    const error = await rejectsWithOneLine(
      downloadFile({ url: 'https://127.0.0.1:9/file.bin', destination, quiet: true, timeoutMs: 300, retries: 3, retryDelayMs: 10 }),
      /^could not download https:\/\/127\.0\.0\.1:9\/file\.bin: the proxy did not answer the tunnel \(CONNECT\) request within 0\.3 s; check HTTPS_PROXY and NO_PROXY$/,
    );
    assert.equal(error.exitCode, 3);
    assert.deepEqual(silent.requests, ['CONNECT 127.0.0.1:9 HTTP/1.1'], 'a proxy that had the whole time-out is not asked again');
    assert.equal(existsSync(destination), false);
  } finally {
    await silent.close();
  }
});
