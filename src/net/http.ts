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

/** A failed HTTP exchange; a `transient` one may succeed when tried again. */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
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
  const dispatcher = await proxyAwareDispatcher();
  const body = new BodyQueue();
  return new Promise((resolve, reject) => {
    let answered = false;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) {
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
        else reject(networkError(error, options.timeoutMs));
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
      reject(networkError(error, options.timeoutMs));
    }
  });
}

function response(url: URL, status: number, received: IncomingHttpHeaders, body: BodyQueue, options: HttpRequestOptions): HttpResponse {
  return {
    url,
    status,
    statusLine: `${status} ${STATUS_CODES[status] ?? ''}`.trim(),
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
    if ((error as NodeJS.ErrnoException).code === 'UND_ERR_SOCKET') throw new HttpError('the connection closed before the end of the file', true);
    throw networkError(error, options.timeoutMs);
  }
}

function networkError(error: unknown, timeoutMs: number): HttpError {
  if (error instanceof HttpError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (TIMEOUT_CODES.has(code)) return new HttpError(`no data for ${seconds(timeoutMs)} s (timed out)`, true);
  return new HttpError(describeError(error), TRANSIENT_CODES.has(code));
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

let shared: { settings: string; dispatcher: Dispatcher } | undefined;

/**
 * EnvHttpProxyAgent reads the proxy variables when it is made (NO_PROXY on every request), so a new one
 * is made when they change.
 */
async function proxyAwareDispatcher(): Promise<Dispatcher> {
  // undici is loaded with the first request: a run that downloads nothing does not pay for it.
  const { EnvHttpProxyAgent } = await import('undici');
  const httpProxy = proxyFromEnvironment('http_proxy', 'HTTP_PROXY');
  const httpsProxy = proxyFromEnvironment('https_proxy', 'HTTPS_PROXY');
  const settings = `${httpProxy ?? ''} ${httpsProxy ?? ''}`;
  if (shared?.settings !== settings) {
    void shared?.dispatcher.close().catch(() => undefined);
    shared = { settings, dispatcher: new EnvHttpProxyAgent({ httpProxy, httpsProxy, proxyTunnel: false }) };
  }
  return shared.dispatcher;
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
