import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { ConnectionClosedError, httpRequest } from '../src/net/http.js';

/** A bare HTTP server that answers once with `Connection: close` (or as HTTP/1.0) and closes: many mirrors do. */
async function closingServer(body: Buffer, statusLine: string, extraHeaders: string, sentBytes = body.length): Promise<{ url: URL; server: Server }> {
  const server = createServer((socket) => {
    socket.once('data', () => {
      socket.write(`${statusLine}\r\n${extraHeaders}\r\n`);
      socket.write(body.subarray(0, sentBytes));
      socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: new URL(`http://127.0.0.1:${port}/file.bin`), server };
}

for (const [statusLine, headers] of [['HTTP/1.1 200 OK', 'Connection: close\r\n'], ['HTTP/1.0 200 OK', '']] as const) {
  test(`a server that closes after the body (${statusLine}) while the reader is behind: the whole body arrives, no crash`, async () => {
    // Sizes around 1 MiB: a client that paused the connection for its late reader would be paused when
    // the server's FIN arrives, where undici 7 asserts and kills the process.
    for (let extra = 1; extra <= 2 ** 17; extra *= 2) {
      await readWholeBody(randomBytes(2 ** 20 + extra), statusLine, headers);
    }
  });
}

async function readWholeBody(body: Buffer, statusLine: string, headers: string): Promise<void> {
  const { url, server } = await closingServer(body, statusLine, `Content-Length: ${body.length}\r\n${headers}`);
  try {
    const response = await httpRequest(url, { timeoutMs: 10_000 });
    assert.equal(response.status, 200);
    // The reader starts late, so the body piles up and the server's FIN arrives before it is read.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const hash = createHash('sha256');
    let length = 0;
    for await (const chunk of response.chunks()) {
      hash.update(chunk);
      length += chunk.length;
    }
    assert.equal(length, body.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(body).digest('hex'));
  } finally {
    server.close();
  }
}

/** Reads a body to its end or failure: the bytes that arrived, and the error, if any. */
async function readUntilFailure(url: URL): Promise<{ received: number; closeDelimited: boolean; failure: unknown }> {
  const response = await httpRequest(url, { timeoutMs: 10_000 });
  let received = 0;
  try {
    for await (const chunk of response.chunks()) received += chunk.length;
  } catch (error) {
    return { received, closeDelimited: response.closeDelimited, failure: error };
  }
  return { received, closeDelimited: response.closeDelimited, failure: undefined };
}

test('a body cut on an HTTP/1.0 or Connection: close answer is a ConnectionClosedError after the bytes that came', async () => {
  const body = randomBytes(100_000);
  for (const [statusLine, headers] of [
    ['HTTP/1.0 200 OK', `Content-Length: ${body.length}\r\n`],
    ['HTTP/1.1 200 OK', `Content-Length: ${body.length}\r\nConnection: close\r\n`],
    ['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked\r\nConnection: close\r\n'],
  ] as const) {
    // A chunked body is sent as one chunk announcing the whole size, then cut.
    const chunkHeader = Buffer.from(headers.includes('chunked') ? `${body.length.toString(16)}\r\n` : '');
    const { url, server } = await closingServer(Buffer.concat([chunkHeader, body]), statusLine, headers, chunkHeader.length + 40_000);
    try {
      const { received, closeDelimited, failure } = await readUntilFailure(url);
      assert.ok(failure instanceof ConnectionClosedError, `${statusLine} ${headers}: ${String(failure)}`);
      assert.equal(received, 40_000);
      assert.equal(closeDelimited, false);
    } finally {
      server.close();
    }
  }
});

test('an HTTP/1.0 body without a length ends with the connection and says so', async () => {
  const body = randomBytes(50_000);
  const { url, server } = await closingServer(body, 'HTTP/1.0 200 OK', '', 20_000);
  try {
    assert.deepEqual(await readUntilFailure(url), { received: 20_000, closeDelimited: true, failure: undefined });
  } finally {
    server.close();
  }
});
