import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { describeError, inputError } from '../core/errors.js';
import { VERSION } from '../core/version.js';

/**
 * The tool's one HTTP client (data set downloads, hub requests), on undici. Requests go through the
 * proxy named by HTTPS_PROXY / HTTP_PROXY (https_proxy / http_proxy first) unless NO_PROXY lists the
 * host; plain http:// URLs are sent to an HTTP proxy as ordinary proxy requests, https:// ones through
 * a CONNECT tunnel. Redirects are followed up to MAX_REDIRECTS, and credentials are never sent again once
 * a redirect leaves the origin they were given for.
 */
const MAX_REDIRECTS = 10;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);
/** Network errors worth another attempt; others (unknown host, refused, unreachable) fail at once. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** A failed HTTP exchange; a `transient` one may succeed when tried again; `status` when the server answered with an error. */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The connection ended before the end of the body: worth resuming from what arrived. */
export class ConnectionClosedError extends HttpError {
  constructor() {
    super('the connection closed before the end of the body', true);
  }
}

/** At least `bytes` body bytes in every `windowMs`: what a usable transfer delivers. */
export interface MinimumRate {
  bytes: number;
  windowMs: number;
}

export interface HttpRequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** Give up after this long waiting for an answer, or for more of the body. */
  timeoutMs: number;
  /** The body's minimum throughput; a slower transfer is cut off (an idle time-out alone never ends a trickle). */
  minRate?: MinimumRate;
  /** Returns true for a redirect answer to be returned as it is instead of followed. */
  keepRedirect?: (response: HttpResponse) => boolean;
}

export interface HttpResponse {
  /** The URL that gave this answer, after redirects. */
  readonly url: URL;
  readonly status: number;
  /** "404 Not Found" */
  readonly statusLine: string;
  /**
   * The body has neither a Content-Length nor chunked encoding (as HTTP/1.0 servers send): only the
   * connection's close ends it, so a body cut short looks complete.
   */
  readonly closeDelimited: boolean;
  header(name: string): string | undefined;
  /** The body; a lost connection, a time-out or a too slow transfer is thrown as an HttpError. */
  chunks(): AsyncIterable<Buffer>;
  /** Drops the body. */
  discard(): Promise<void>;
}

export async function httpRequest(url: URL, options: HttpRequestOptions): Promise<HttpResponse> {
  let current = url;
  let headers: Record<string, string> = { 'user-agent': `clip-eval/${VERSION}`, ...lowerCaseNames(options.headers ?? {}) };
  for (let hops = 0; ; hops += 1) {
    const response = await send(current, headers, options);
    if (!REDIRECT_STATUSES.has(response.status) || options.keepRedirect?.(response)) return response;
    await response.discard();
    const location = response.header('location');
    if (!location) throw new HttpError(`HTTP ${response.status} redirect without a Location header`, false);
    if (hops >= MAX_REDIRECTS) throw new HttpError(`more than ${MAX_REDIRECTS} redirects`, false);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new HttpError(`HTTP ${response.status} redirect to an invalid URL (${location})`, false);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new HttpError(`redirected to an unsupported URL scheme (${next.protocol})`, false);
    }
    if (next.origin !== current.origin) {
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name)));
    }
    current = next;
  }
}

function lowerCaseNames(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

/**
 * A body as it arrives. Unlike a stream, a failure is raised only after every byte received before it was
 * read, so that a download cut off half-way keeps what it got.
 *
 * The connection is never paused for a slow reader: undici 7 crashes the process (an uncatchable
 * assertion, undici issue 5360, fixed only in undici 8, which needs Node 22) when a server closes the
 * connection while its parser is paused, as HTTP/1.0 and `Connection: close` mirrors do. Every reader
 * here writes to a local file, which keeps up with the network, so the queue stays short.
 */
class BodyQueue {
  controller?: Dispatcher.DispatchController;
  received = 0;
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: unknown;
  private wake?: () => void;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    this.notify();
  }

  end(failure?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    this.notify();
  }

  /** Ends the transfer from this side; what was received so far can still be read. */
  abort(reason: Error): void {
    this.end(reason);
    this.controller?.abort(reason);
  }

  /** The next chunk, or undefined at the end of the body. */
  async next(): Promise<Buffer | undefined> {
    while (this.chunks.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    const chunk = this.chunks.shift();
    if (chunk !== undefined) {
      return chunk;
    }
    if (this.failure !== undefined) throw this.failure;
    return undefined;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

async function send(url: URL, headers: Record<string, string>, options: HttpRequestOptions): Promise<HttpResponse> {
  const dispatcher = await proxyAwareDispatcher(options.timeoutMs);
  const body = new BodyQueue();
  return new Promise((resolve, reject) => {
    let answered = false;
    // undici starts a request once it has a connection: an error before that came while connecting.
    let connected = false;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) {
        connected = true;
        body.controller = controller;
      },
      onResponseStart(_controller, status, received) {
        if (status < 200) return;
        answered = true;
        resolve(response(url, status, received, body, options));
      },
      onResponseData(_controller, chunk) {
        body.push(chunk);
      },
      onResponseEnd() {
        body.end();
      },
      onResponseError(_controller, error) {
        if (answered) body.end(error);
        else reject(connected ? networkError(error, options.timeoutMs) : connectError(error, options.timeoutMs));
      },
    };
    try {
      dispatcher.dispatch(
        {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: options.method ?? 'GET',
          headers,
          headersTimeout: options.timeoutMs,
          bodyTimeout: options.timeoutMs,
        },
        handler,
      );
    } catch (error) {
      reject(connectError(error, options.timeoutMs));
    }
  });
}

function response(url: URL, status: number, received: IncomingHttpHeaders, body: BodyQueue, options: HttpRequestOptions): HttpResponse {
  return {
    url,
    status,
    statusLine: `${status} ${STATUS_CODES[status] ?? ''}`.trim(),
    closeDelimited: received['content-length'] === undefined && !/chunked/i.test(String(received['transfer-encoding'] ?? '')),
    header(name) {
      const value = received[name.toLowerCase()];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    chunks: () => readBody(body, options),
    async discard() {
      body.abort(new HttpError('the body was not wanted', false));
    },
  };
}

async function* readBody(body: BodyQueue, options: HttpRequestOptions): AsyncGenerator<Buffer> {
  const { minRate } = options;
  let windowStart = body.received;
  const rateCheck =
    minRate &&
    setInterval(() => {
      const windowBytes = body.received - windowStart;
      windowStart = body.received;
      if (windowBytes < minRate.bytes) {
        const window = seconds(minRate.windowMs);
        body.abort(new HttpError(`too slow: ${windowBytes} bytes in ${window} s, under the minimum of ${minRate.bytes} bytes per ${window} s`, true));
      }
    }, minRate.windowMs);
  try {
    for (let chunk = await next(body, options); chunk !== undefined; chunk = await next(body, options)) yield chunk;
  } finally {
    clearInterval(rateCheck);
    body.abort(new HttpError('the reader stopped', false));
  }
}

async function next(body: BodyQueue, options: HttpRequestOptions): Promise<Buffer | undefined> {
  try {
    return await body.next();
  } catch (error) {
    if (isCutBody(error)) throw new ConnectionClosedError();
    throw networkError(error, options.timeoutMs);
  }
}

/**
 * How undici reports a body cut short: a kept-alive socket closing (UND_ERR_SOCKET), a reset, and on a
 * `Connection: close` or HTTP/1.0 response the parser's end-of-input checks, fewer bytes than the
 * Content-Length or a chunked body without its last chunk ("Invalid EOF state", an HTTPParserError
 * without a code).
 */
function isCutBody(error: unknown): boolean {
  const { code, name, message } = error as NodeJS.ErrnoException;
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return true;
  return name === 'HTTPParserError' && /Invalid EOF state/.test(message);
}

function networkError(error: unknown, timeoutMs: number): HttpError {
  if (error instanceof HttpError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (TIMEOUT_CODES.has(code)) return new HttpError(`no data for ${seconds(timeoutMs)} s (timed out)`, true);
  return new HttpError(describeError(error), TRANSIENT_CODES.has(code));
}

/**
 * A failure before the request was sent. A headers time-out then is a proxy that took the connection
 * but never answered its CONNECT request: not retried, since that proxy has had the whole time-out.
 */
function connectError(error: unknown, timeoutMs: number): HttpError {
  if (TIMEOUT_CODES.has((error as NodeJS.ErrnoException).code ?? '')) {
    return new HttpError(`the proxy did not answer the tunnel (CONNECT) request within ${seconds(timeoutMs)} s; check HTTPS_PROXY and NO_PROXY`, false);
  }
  return networkError(error, timeoutMs);
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

let shared: { settings: string; byTimeout: Map<number, Dispatcher> } | undefined;

/**
 * EnvHttpProxyAgent reads the proxy variables when it is made (NO_PROXY on every request), so new ones
 * are made when they change. The CONNECT request that opens a tunnel is not a request of ours, and
 * undici gives it its own 300 s headers time-out; so there is one dispatcher per time-out, whose proxy
 * connections wait that long for the proxy's answer.
 */
async function proxyAwareDispatcher(timeoutMs: number): Promise<Dispatcher> {
  // undici is loaded with the first request: a run that downloads nothing does not pay for it.
  const { EnvHttpProxyAgent, Pool } = await import('undici');
  const httpProxy = proxyFromEnvironment('http_proxy', 'HTTP_PROXY');
  const httpsProxy = proxyFromEnvironment('https_proxy', 'HTTPS_PROXY');
  const settings = `${httpProxy ?? ''} ${httpsProxy ?? ''}`;
  if (shared?.settings !== settings) {
    for (const dispatcher of shared?.byTimeout.values() ?? []) void dispatcher.close().catch(() => undefined);
    shared = { settings, byTimeout: new Map() };
  }
  let dispatcher = shared.byTimeout.get(timeoutMs);
  if (dispatcher === undefined) {
    dispatcher = new EnvHttpProxyAgent({
      httpProxy,
      httpsProxy,
      proxyTunnel: false,
      clientFactory: (origin, options) => new Pool(origin, { ...options, headersTimeout: timeoutMs }),
    });
    shared.byTimeout.set(timeoutMs, dispatcher);
  }
  return dispatcher;
}

/** The proxy URL from the first of `names` that is set; `host:port` means http://host:port, as for curl. */
function proxyFromEnvironment(...names: string[]): string | undefined {
  for (const name of names) {
    const value = process.env[name];
    if (!value) continue;
    let url: URL | undefined;
    try {
      url = new URL(/^[a-z][a-z\d+.-]*:\/\//i.test(value) ? value : `http://${value}`);
    } catch {
      url = undefined;
    }
    // The value is not quoted in the message: it may hold a password.
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw inputError(`${name} is not a proxy URL: expected http://host:port (or https://); fix or unset it`);
    }
    return url.href;
  }
  return undefined;
}
