import { createServer, request as forward, type IncomingHttpHeaders } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';

/**
 * A real forward HTTP proxy on 127.0.0.1 for tests: takes requests in absolute form
 * (`GET http://127.0.0.1:PORT/path`), records them and relays them to their target. It relays only to
 * 127.0.0.1, and refuses CONNECT, so a client that tunnels or goes elsewhere is seen failing.
 */
export interface ProxiedRequest {
  method: string;
  /** The absolute URL asked for. */
  url: string;
  headers: IncomingHttpHeaders;
}

export interface TestProxy {
  /** http://127.0.0.1:PORT, the value for HTTP_PROXY. */
  readonly origin: string;
  /** Every request received, in order (CONNECT requests as method CONNECT with the target as url). */
  readonly requests: ProxiedRequest[];
  close(): Promise<void>;
}

/** Headers that belong to one connection, not to the request relayed. */
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export async function startTestProxy(): Promise<TestProxy> {
  const requests: ProxiedRequest[] = [];
  const server = createServer((request, response) => {
    const url = request.url ?? '';
    requests.push({ method: request.method ?? 'GET', url, headers: request.headers });
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      response.writeHead(400, { 'Content-Type': 'text/plain' }).end('a proxy request needs an absolute URL\n');
      return;
    }
    if (target.protocol !== 'http:' || target.hostname !== '127.0.0.1') {
      response.writeHead(502, { 'Content-Type': 'text/plain' }).end('this test proxy relays to http://127.0.0.1 only\n');
      return;
    }
    const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
    const relayed = forward(target, { method: request.method, headers }, (answer) => {
      const answerHeaders = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
      response.writeHead(answer.statusCode ?? 502, answerHeaders);
      answer.pipe(response);
    });
    relayed.on('error', () => response.destroy());
    response.on('close', () => relayed.destroy());
    request.pipe(relayed);
  });
  server.on('connect', (request, socket) => {
    requests.push({ method: 'CONNECT', url: request.url ?? '', headers: request.headers });
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n');
  });
  return {
    origin: await listenOnLoopback(server),
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

export interface SilentProxy {
  /** http://127.0.0.1:PORT, the value for HTTPS_PROXY. */
  readonly origin: string;
  /** The first line of each request received ("CONNECT host:port HTTP/1.1"). */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A proxy that takes connections and reads requests but never answers: a black-holed or wedged proxy. */
export async function startSilentProxy(): Promise<SilentProxy> {
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (data) => requests.push(data.toString('latin1').split('\r\n')[0]!));
  });
  return {
    origin: await listenOnLoopback(server),
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const socket of sockets) socket.destroy();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** Starts `server` on a free loopback port; its http:// origin. */
async function listenOnLoopback(server: TcpServer): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
