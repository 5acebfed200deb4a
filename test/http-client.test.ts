import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { httpRequest } from '../src/net/http.js';

/** A bare HTTP server that answers once with `Connection: close` (or as HTTP/1.0) and closes: many mirrors do. */
async function closingServer(body: Buffer, statusLine: string, extraHeaders: string): Promise<{ url: URL; server: Server }> {
  const server = createServer((socket) => {
    socket.once('data', () => {
      socket.write(`${statusLine}\r\nContent-Length: ${body.length}\r\n${extraHeaders}\r\n`);
      socket.write(body);
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
  const { url, server } = await closingServer(body, statusLine, headers);
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
