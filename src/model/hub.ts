import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../cache.js';
import { describeError, inputError, usageError } from '../errors.js';
import { downloadFile } from '../download.js';
import { silentLogger, type Logger } from '../log.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** A Hugging Face model repository at one revision (branch, tag or commit). */
export interface HubModelId {
  repo: string;
  revision: string;
}

/** Hub repo names: letters, digits, '-', '_' and '.', as `org/name`. */
const REPO_PATTERN = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** `org/name` or `org/name@revision`, or undefined when `value` does not have that shape. */
export function parseHubModelId(value: string): HubModelId | undefined {
  const at = value.indexOf('@');
  const repo = at === -1 ? value : value.slice(0, at);
  const revision = at === -1 ? 'main' : value.slice(at + 1);
  if (!REPO_PATTERN.test(repo) || repo.includes('..')) return undefined;
  if (revision === '' || revision.includes('..') || /[\s\\@]/.test(revision)) {
    throw usageError(`--model ${value}: bad revision "${revision}"; use org/name@branch, tag or commit`);
  }
  return { repo, revision };
}

/** `<cacheRoot>/models/<org>--<name>/<revision>`; a revision with '/' (refs/pr/1) is URL-encoded into one folder. */
export function hubCacheFolder(cacheRoot: string, id: HubModelId): string {
  return join(cacheRoot, 'models', id.repo.replace('/', '--'), encodeURIComponent(id.revision));
}

export interface HubRepoOptions {
  cacheRoot: string;
  offline?: boolean;
  quiet?: boolean;
  logger?: Logger;
  /** Defaults: $HF_ENDPOINT or https://huggingface.co, and $HF_TOKEN. */
  endpoint?: string;
  token?: string;
}

/**
 * Files of one hub repo, fetched one by one into the cache (never the whole repo). A file already in the
 * cache is used without asking the hub: cached files are complete, because downloads land by rename.
 */
export interface HubRepo {
  readonly id: HubModelId;
  /** The local folder mirroring the repo. */
  readonly folder: string;
  /** The cached copy of `path`, if there is one. */
  cached(path: string): string | undefined;
  /** Whether the repo has `path`: the cache, else a HEAD request (false when offline and not cached). */
  has(path: string): Promise<boolean>;
  /** The local path of `path`, downloaded when not cached; an error when the hub has no such file. */
  fetch(path: string): Promise<string>;
  /** Like fetch, but undefined when the repo has no such file; the absence is remembered in the cache. */
  fetchOptional(path: string): Promise<string | undefined>;
  /** The --offline error for a file that is not cached. */
  notCachedError(path: string): Error;
}

/** What a HEAD request tells about a file. */
interface HubFileInfo {
  found: boolean;
  sha256?: string;
  size?: number;
}

const MAX_REDIRECTS = 5;
const HEAD_TIMEOUT_MS = 30_000;

export function openHubRepo(id: HubModelId, options: HubRepoOptions): HubRepo {
  const logger = options.logger ?? silentLogger;
  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
  const token = options.token ?? process.env.HF_TOKEN;
  const folder = hubCacheFolder(options.cacheRoot, id);
  const label = `${id.repo}@${id.revision}`;
  const infos = new Map<string, Promise<HubFileInfo>>();

  const localPath = (path: string) => join(folder, ...path.split('/'));
  const absenceMarker = (path: string) => `${localPath(path)}.absent`;
  const fileUrl = (path: string) =>
    `${endpoint}/${id.repo}/resolve/${encodeURIComponent(id.revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
  const authHeaders = (): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});

  const info = (path: string): Promise<HubFileInfo> => {
    let pending = infos.get(path);
    if (!pending) {
      pending = headFile(fileUrl(path), authHeaders(), { label, revision: id.revision, endpoint, tokenSet: Boolean(token) });
      infos.set(path, pending);
    }
    return pending;
  };

  const cached = (path: string) => {
    const local = localPath(path);
    return existsSync(local) ? local : undefined;
  };

  const download = async (path: string, found: HubFileInfo): Promise<string> => {
    const destination = localPath(path);
    logger.debug(`fetching ${fileUrl(path)}${found.sha256 ? ` (sha256 ${found.sha256})` : ''}`);
    const result = await downloadFile({
      url: fileUrl(path),
      destination,
      expectedSize: found.size,
      sha256: found.sha256,
      headers: authHeaders(),
      quiet: options.quiet,
      label: `${id.repo} ${path}`,
      logger,
      hint: token ? undefined : 'if the model is private or gated, set HF_TOKEN',
    });
    return result.path;
  };

  const notCachedError = (path: string) =>
    inputError(`--offline: ${localPath(path)} is not cached; run once without --offline to download ${label}`);

  return {
    id,
    folder,
    cached,
    notCachedError,
    async has(path) {
      if (cached(path)) return true;
      if (existsSync(absenceMarker(path)) || options.offline) return false;
      return (await info(path)).found;
    },
    async fetch(path) {
      const local = cached(path);
      if (local) return local;
      if (options.offline) throw notCachedError(path);
      const found = await info(path);
      if (!found.found) throw inputError(`${label}: the hub has no file ${path} (${fileUrl(path)} answered 404)`);
      return download(path, found);
    },
    async fetchOptional(path) {
      const local = cached(path);
      if (local) return local;
      if (existsSync(absenceMarker(path)) || options.offline) return undefined;
      const found = await info(path);
      if (!found.found) {
        await writeFileAtomic(absenceMarker(path), `${fileUrl(path)} answered 404\n`);
        return undefined;
      }
      return download(path, found);
    },
  };
}

interface HeadContext {
  label: string;
  revision: string;
  endpoint: string;
  tokenSet: boolean;
}

/**
 * HEAD on a resolve URL without following redirects: the hub answers a large (LFS) file with a redirect
 * carrying X-Linked-Etag (its sha256, quoted) and X-Linked-Size, which the download is then checked
 * against. Other redirects (a renamed repo) are followed, sending the token to the hub's own origin only.
 */
async function headFile(url: string, auth: Record<string, string>, context: HeadContext): Promise<HubFileInfo> {
  const origin = new URL(url).origin;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
    let response: Response;
    try {
      response = await fetch(current, {
        method: 'HEAD',
        redirect: 'manual',
        headers: { 'Accept-Encoding': 'identity', ...(new URL(current).origin === origin ? auth : {}) },
        signal: AbortSignal.timeout(HEAD_TIMEOUT_MS),
      });
    } catch (error) {
      throw inputError(
        `cannot reach ${context.endpoint} for ${context.label} (${describeError(error)}); check the connection or HF_ENDPOINT, or use --offline with a cached model`,
        error,
      );
    }
    const linked = linkedFileInfo(response.headers);
    if (response.status >= 300 && response.status < 400) {
      if (linked) return linked;
      const location = response.headers.get('location');
      if (!location) throw inputError(`${context.label}: the hub answered ${response.status} without a Location for ${current}`);
      current = new URL(location, current).toString();
      continue;
    }
    if (response.ok) return linked ?? { found: true, size: plainSize(response.headers) };
    if (response.status === 404 && !isRepoLevelError(response.headers)) return { found: false };
    throw hubStatusError(response, current, context);
  }
  throw inputError(`${context.label}: more than ${MAX_REDIRECTS} redirects for ${url}`);
}

function linkedFileInfo(headers: Headers): HubFileInfo | undefined {
  const etag = headers.get('x-linked-etag');
  if (etag === null) return undefined;
  const sha256 = etag.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
  const size = Number(headers.get('x-linked-size') ?? NaN);
  return {
    found: true,
    ...(/^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
    ...(Number.isSafeInteger(size) && size >= 0 ? { size } : {}),
  };
}

/** A plain (non-LFS) file's size, when the length header is that of the file itself. */
function plainSize(headers: Headers): number | undefined {
  if (headers.get('content-encoding')) return undefined;
  const size = Number(headers.get('content-length') ?? NaN);
  return Number.isSafeInteger(size) && size >= 0 ? size : undefined;
}

/** The hub says why a request failed in X-Error-Code; these mean the repo or revision, not the file, is missing. */
function isRepoLevelError(headers: Headers): boolean {
  const code = headers.get('x-error-code');
  return code === 'RepoNotFound' || code === 'RevisionNotFound';
}

function hubStatusError(response: Response, url: string, context: HeadContext): Error {
  const code = response.headers.get('x-error-code');
  const tokenHint = context.tokenSet
    ? 'check that HF_TOKEN grants access to it'
    : 'if it is private or gated, set HF_TOKEN to a token with access';
  if (code === 'RepoNotFound') return inputError(`${context.label}: no such model repo on ${context.endpoint} (${tokenHint})`);
  if (code === 'RevisionNotFound') return inputError(`${context.label}: the repo has no revision "${context.revision}" on ${context.endpoint}`);
  switch (response.status) {
    case 401:
      return inputError(`${context.label}: the hub refused ${url} with 401 Unauthorized; ${tokenHint}`);
    case 403:
      return inputError(
        `${context.label}: the hub refused ${url} with 403 Forbidden; the model may be gated: accept its terms on the hub and ${context.tokenSet ? 'check HF_TOKEN' : 'set HF_TOKEN'}`,
      );
    default:
      return inputError(`${context.label}: the hub answered ${response.status} ${response.statusText} for ${url}; try again later`);
  }
}
