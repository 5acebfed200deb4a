import { readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server on 127.0.0.1 for tests: serves buffers or files at fixed paths and can misbehave
 * on purpose (ignore Range, cut or stall the connection once, trickle, answer with an error status, redirect),
 * and can mark a body's end as HTTP/1.0 servers do.
 */
export interface Route {
  /** The content served; give this or `file`. */
  body?: Uint8Array | string;
  /** A file whose content is served (read when the route is added). */
  file?: string;
  /** Answer with this status and a short text body instead of the content. */
  status?: number;
  /** How many requests get `status` before the content is served normally; default: all of them. */
  statusTimes?: number;
  /** Answer 302 with this Location (a path on this server or an absolute URL). */
  redirectTo?: string;
  /** Serve the whole content with 200 even when the request asks for a Range. */
  ignoreRange?: boolean;
  /** On the first content response to a GET only: send this many body bytes, then close the connection. */
  cutAfterBytes?: number;
  /** On the first content response to a GET only: send this many body bytes, then send nothing more. */
  stallAfterBytes?: number;
  /** On every content response: send `bytes` body bytes every `everyMs` (a server too slow to use). */
  trickle?: { bytes: number; everyMs: number };
  /**
   * How the end of the content is marked: by Content-Length (the default), by chunked encoding, or by
   * nothing but the connection's close (`close`: no length, as HTTP/1.0 servers send).
   */
  framing?: 'length' | 'chunked' | 'close';
  /** Close the connection after each answer (`Connection: close`); `framing: 'close'` implies it. */
  connectionClose?: boolean;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export interface TestServer {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  url(path: string): string;
  /** Adds or replaces the route at `path` (which starts with '/'). */
  route(path: string, route: Route): Promise<void>;
  /** How many requests asked for `path`. */
  count(path: string): number;
  close(): Promise<void>;
}

interface ServedRoute extends Route {
  content: Buffer;
  statusServed: number;
  misbehaved: boolean;
}

export async function startTestServer(routes: Record<string, Route> = {}): Promise<TestServer> {
  const served = new Map<string, ServedRoute>();
  const requests: RecordedRequest[] = [];

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    requests.push({ method: request.method ?? 'GET', path, headers: request.headers });
    const route = served.get(path);
    if (!route) {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    respond(route, request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const testServer: TestServer = {
    origin,
    requests,
    url: (path) => `${origin}${path}`,
    async route(path, route) {
      if (!path.startsWith('/')) throw new Error(`route path must start with '/': ${path}`);
      const content = route.file !== undefined ? await readFile(route.file) : Buffer.from(route.body ?? '');
      served.set(path, { ...route, content, statusServed: 0, misbehaved: false });
    },
    count: (path) => requests.filter((request) => request.path === path).length,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
  for (const [path, route] of Object.entries(routes)) await testServer.route(path, route);
  return testServer;
}

function respond(route: ServedRoute, request: IncomingMessage, response: ServerResponse): void {
  const headers = route.headers ?? {};
  if (route.status !== undefined && route.statusServed < (route.statusTimes ?? Infinity)) {
    route.statusServed += 1;
    response.writeHead(route.status, { ...headers, 'Content-Type': 'text/plain' }).end(`status ${route.status}\n`);
    return;
  }
  if (route.redirectTo !== undefined) {
    response.writeHead(302, { ...headers, Location: route.redirectTo }).end();
    return;
  }
  const size = route.content.length;
  const range = route.ignoreRange ? undefined : parseRange(request.headers.range, size);
  if (range === 'unsatisfiable') {
    response.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` }).end();
    return;
  }
  const [start, end] = range ?? [0, size - 1];
  const body = route.content.subarray(start, end + 1);
  const framing = route.framing ?? 'length';
  // Without a length or chunked encoding, Node ends the body by closing the connection.
  if (framing === 'close') response.useChunkedEncodingByDefault = false;
  response.writeHead(range ? 206 : 200, {
    ...headers,
    'Content-Type': 'application/octet-stream',
    ...(framing === 'length' ? { 'Content-Length': String(body.length) } : {}),
    ...(route.connectionClose || framing === 'close' ? { Connection: 'close' } : {}),
    'Accept-Ranges': route.ignoreRange ? 'none' : 'bytes',
    ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
  });
  if (route.trickle !== undefined) {
    trickle(body, route.trickle, response);
    return;
  }
  // A HEAD answer has no body to cut or stall.
  const misbehaveAt = route.misbehaved || request.method === 'HEAD' ? undefined : (route.cutAfterBytes ?? route.stallAfterBytes);
  if (misbehaveAt === undefined) {
    response.end(body);
    return;
  }
  route.misbehaved = true;
  response.write(body.subarray(0, misbehaveAt));
  // A cut ends the connection once the bytes are sent (so the client gets exactly that many); a stall
  // keeps it open until the client gives up or the server closes.
  if (route.cutAfterBytes !== undefined) response.socket?.end();
}

function trickle(body: Buffer, { bytes, everyMs }: { bytes: number; everyMs: number }, response: ServerResponse): void {
  let sent = 0;
  const timer = setInterval(() => {
    const piece = body.subarray(sent, sent + bytes);
    sent += piece.length;
    if (sent >= body.length) {
      clearInterval(timer);
      response.end(piece);
    } else {
      response.write(piece);
    }
  }, everyMs);
  response.on('close', () => clearInterval(timer));
}

/** [start, end] (inclusive) for a single `bytes=` range, undefined when absent or unusable. */
function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header ?? '');
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    return suffix === 0 ? 'unsatisfiable' : [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(match[1]);
  if (start >= size) return 'unsatisfiable';
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  return end < start ? undefined : [start, end];
}
