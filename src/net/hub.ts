import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FOLDER_USE_RESOLUTION_MS, markUsed, writeFileAtomic } from '../core/cache.js';
import { ClipEvalError, describeError, inputError, usageError } from '../core/errors.js';
import { downloadFile } from './download.js';
import { httpRequest, type HttpResponse } from './http.js';
import { silentLogger, type Logger } from '../core/log.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** The two kinds of hub repository this tool reads; their URLs and cache folders differ. */
export type HubRepoType = 'model' | 'dataset';

/** A Hugging Face repository at one revision (branch, tag or commit); a model repo unless `type` says otherwise. */
export interface HubRepoId {
  repo: string;
  revision: string;
  type?: HubRepoType;
}

/** What can be a hub id at all: `org/name`, not a path (those start with '.' or have more '/'). */
const HUB_ID_SHAPE = /^[A-Za-z0-9_-][\w.-]*\/[\w.-]+$/;
const MAX_NAME_LENGTH = 96;
/** A commit id: files at a commit never change, so what the hub lacks there it always lacks. */
const COMMIT_PATTERN = /^[0-9a-f]{40}$/;

/**
 * `org/name` or `org/name@revision`, or undefined when `value` does not have that shape. An id of that
 * shape that the hub would refuse is a usage error: its rules also keep the cache folders apart.
 */
export function parseHubModelId(value: string): HubRepoId | undefined {
  const at = value.indexOf('@');
  const repo = at === -1 ? value : value.slice(0, at);
  const revision = at === -1 ? 'main' : value.slice(at + 1);
  if (!HUB_ID_SHAPE.test(repo)) return undefined;
  const id = { repo, revision };
  const problem = hubIdProblem(id);
  if (problem !== undefined) throw usageError(problem, { input: { name: 'model', value } });
  return id;
}

/**
 * Why the hub would refuse `id`, or undefined. Repo names follow the hub's rules: letters, digits, '_',
 * '-' and '.', no "--" or "..", neither starting nor ending with '.' or '-', at most 96 characters, not
 * ending with ".git"; so `org--name` names one repo only. Revisions are git ref names (no '.'-led,
 * empty or `.lock` parts, no "..", none of ~^:?*[\@, spaces or control characters) or commits.
 */
export function hubIdProblem({ repo, revision }: HubRepoId): string | undefined {
  const parts = repo.split('/');
  const invalid = (rule: string) => `not a valid hub repo id: ${rule}`;
  if (parts.length !== 2 || parts.some((part) => !/^[\w.-]+$/.test(part))) return invalid('expected org/name of letters, digits, "_", "-" and "."');
  for (const part of parts) {
    if (part.includes('--') || part.includes('..')) return invalid(`"${part}" contains ${part.includes('--') ? '"--"' : '".."'}`);
    if (/^[.-]|[.-]$/.test(part)) return invalid(`"${part}" may not start or end with "." or "-"`);
    if (part.length > MAX_NAME_LENGTH) return invalid(`"${part.slice(0, 20)}…" is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (repo.endsWith('.git')) return invalid('a name may not end with ".git"');
  const components = revision.split('/');
  const badRevision =
    revision === '' ||
    revision.endsWith('.') ||
    revision.includes('..') ||
    /[\x00-\x20\x7f~^:?*[\\@]/.test(revision) ||
    components.some((part) => part === '' || part.startsWith('.') || part.endsWith('.lock'));
  if (badRevision) return `bad revision ${JSON.stringify(revision)}; use org/name@branch, tag or commit`;
  return undefined;
}

/**
 * `<cacheRoot>/models/<org>--<name>/<revision>` for a model repo, `<cacheRoot>/datasets/hub/<org>--<name>/<revision>`
 * for a dataset repo (beside, never inside, CIFAR's `datasets/cifar*` folders); a revision with '/'
 * (refs/pr/1) is URL-encoded into one folder. Ids the hub refuses are refused here too, since two of
 * them could share a folder.
 */
export function hubCacheFolder(cacheRoot: string, id: HubRepoId): string {
  const problem = hubIdProblem(id);
  if (problem !== undefined) throw usageError(`${id.repo}@${id.revision}: ${problem}`);
  const repoFolder = id.repo.replace('/', '--');
  const revisionFolder = encodeURIComponent(id.revision);
  return join(hubCacheRoot(cacheRoot, id.type ?? 'model'), repoFolder, revisionFolder);
}

/** The folder holding every cached repo of one type: `<org>--<name>/<revision>` folders. */
export function hubCacheRoot(cacheRoot: string, type: HubRepoType): string {
  return type === 'dataset' ? join(cacheRoot, 'datasets', 'hub') : join(cacheRoot, 'models');
}

/** What a repo of this type holds, for messages. */
function contentWord(type: HubRepoType | undefined): 'model' | 'data set' {
  return type === 'dataset' ? 'data set' : 'model';
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
  readonly id: HubRepoId;
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
  /** The error for a file that is not cached, when offline. */
  notCachedError(path: string): Error;
}

/** What a HEAD request tells about a file. */
interface HubFileInfo {
  found: boolean;
  sha256?: string;
  size?: number;
}

const HEAD_TIMEOUT_MS = 30_000;
/** How long a 404 on a branch or tag is believed: files appear on a moving revision. */
const ABSENCE_TTL_MS = 24 * 3_600_000;

export function openHubRepo(id: HubRepoId, options: HubRepoOptions): HubRepo {
  const logger = options.logger ?? silentLogger;
  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
  const token = options.token ?? process.env.HF_TOKEN;
  const folder = hubCacheFolder(options.cacheRoot, id);
  const label = `${id.repo}@${id.revision}`;
  const infos = new Map<string, Promise<HubFileInfo>>();

  const localPath = (path: string) => join(folder, ...path.split('/'));
  const absenceMarker = (path: string) => `${localPath(path)}.absent`;
  const knownAbsent = (path: string) => isRememberedAbsence(absenceMarker(path), COMMIT_PATTERN.test(id.revision));
  const what = contentWord(id.type);
  // The hub serves dataset repos under /datasets/, model repos at the top level.
  const repoUrl = `${endpoint}/${id.type === 'dataset' ? 'datasets/' : ''}${id.repo}`;
  const fileUrl = (path: string) =>
    `${repoUrl}/resolve/${encodeURIComponent(id.revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
  const authHeaders = (): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});

  const info = (path: string): Promise<HubFileInfo> => {
    let pending = infos.get(path);
    if (!pending) {
      pending = headFile(fileUrl(path), authHeaders(), { label, revision: id.revision, endpoint, tokenSet: Boolean(token), what });
      infos.set(path, pending);
    }
    return pending;
  };

  const cached = (path: string) => {
    const local = localPath(path);
    if (!existsSync(local)) return undefined;
    markUsed(folder, FOLDER_USE_RESOLUTION_MS);
    return local;
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
      // Only a refusal is about access; a cut connection or a missing blob is not mended by a token.
      accessHint: token ? `check that HF_TOKEN grants access to the ${what}` : `if the ${what} is private or gated, set HF_TOKEN`,
    });
    return result.path;
  };

  const notCachedError = (path: string) =>
    inputError(`${localPath(path)} is not cached`, undefined, { input: { name: 'offline' }, hint: { kind: 'runOnline', download: label } });

  return {
    id,
    folder,
    cached,
    notCachedError,
    async has(path) {
      if (cached(path)) return true;
      if (knownAbsent(path) || options.offline) return false;
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
      if (knownAbsent(path) || options.offline) return undefined;
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
  what: 'model' | 'data set';
  revision: string;
  endpoint: string;
  tokenSet: boolean;
}

/**
 * Whether an absence marker is there and still to be believed: always at a commit; on a branch or tag for
 * ABSENCE_TTL_MS from when it was written (a marker dated in the future is not believed).
 */
function isRememberedAbsence(marker: string, atCommit: boolean): boolean {
  let writtenMs: number;
  try {
    writtenMs = statSync(marker).mtimeMs;
  } catch {
    return false;
  }
  if (atCommit) return true;
  const ageMs = Date.now() - writtenMs;
  return ageMs >= 0 && ageMs < ABSENCE_TTL_MS;
}

/**
 * HEAD on a resolve URL: the hub answers a large (LFS) file with a redirect carrying X-Linked-Etag (its
 * sha256, quoted) and X-Linked-Size, which is taken as the answer, and the download is then checked
 * against it. Other redirects (a renamed repo) are followed by the HTTP client, which sends the token to
 * the hub's own origin only.
 */
async function headFile(url: string, auth: Record<string, string>, context: HeadContext): Promise<HubFileInfo> {
  let response: HttpResponse;
  try {
    response = await httpRequest(new URL(url), {
      method: 'HEAD',
      headers: { 'Accept-Encoding': 'identity', ...auth },
      timeoutMs: HEAD_TIMEOUT_MS,
      keepRedirect: (answer) => linkedFileInfo(answer) !== undefined,
    });
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw inputError(
      `cannot reach ${context.endpoint} for ${context.label} (${describeError(error)}); check the connection, HF_ENDPOINT or the proxy settings (HTTPS_PROXY, NO_PROXY)`,
      error,
      { hint: { kind: 'useOffline', cached: context.what } },
    );
  }
  await response.discard();
  // A redirect gets here only with the linked file's details (the HTTP client follows the others).
  if (response.status >= 200 && response.status < 400) return linkedFileInfo(response) ?? { found: true, size: plainSize(response) };
  if (response.status === 404 && !isRepoLevelError(response)) return { found: false };
  throw hubStatusError(response, context);
}

function linkedFileInfo(response: HttpResponse): HubFileInfo | undefined {
  const etag = response.header('x-linked-etag');
  if (etag === undefined) return undefined;
  const sha256 = etag.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
  const size = Number(response.header('x-linked-size') ?? NaN);
  return {
    found: true,
    ...(/^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
    ...(Number.isSafeInteger(size) && size >= 0 ? { size } : {}),
  };
}

/** A plain (non-LFS) file's size, when the length header is that of the file itself. */
function plainSize(response: HttpResponse): number | undefined {
  if (response.header('content-encoding')) return undefined;
  const size = Number(response.header('content-length') ?? NaN);
  return Number.isSafeInteger(size) && size >= 0 ? size : undefined;
}

/** The hub says why a request failed in X-Error-Code; these mean the repo or revision, not the file, is missing. */
function isRepoLevelError(response: HttpResponse): boolean {
  const code = response.header('x-error-code');
  return code === 'RepoNotFound' || code === 'RevisionNotFound';
}

function hubStatusError(response: HttpResponse, context: HeadContext): Error {
  const url = response.url.href;
  const code = response.header('x-error-code');
  const tokenHint = context.tokenSet
    ? 'check that HF_TOKEN grants access to it'
    : 'if it is private or gated, set HF_TOKEN to a token with access';
  if (code === 'RepoNotFound') return inputError(`${context.label}: no such ${context.what === 'model' ? 'model' : 'dataset'} repo on ${context.endpoint} (${tokenHint})`);
  if (code === 'RevisionNotFound') return inputError(`${context.label}: the repo has no revision "${context.revision}" on ${context.endpoint}`);
  switch (response.status) {
    case 401:
      return inputError(`${context.label}: the hub refused ${url} with 401 Unauthorized; ${tokenHint}`);
    case 403:
      return inputError(
        `${context.label}: the hub refused ${url} with 403 Forbidden; the ${context.what} may be gated: accept its terms on the hub and ${context.tokenSet ? 'check HF_TOKEN' : 'set HF_TOKEN'}`,
      );
    default:
      return inputError(`${context.label}: the hub answered ${response.statusLine} for ${url}; try again later`);
  }
}
