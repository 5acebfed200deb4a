import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readTextFile } from '../../core/bounded-read.js';
import { FOLDER_USE_RESOLUTION_MS, markUsed } from '../../core/cache.js';
import { showUnprintable } from '../../core/unprintable.js';
import { ClipEvalError, describeError, fileSystemError, inputError, isFileSystemError, usageError } from '../../core/errors.js';
import { downloadFile } from '../../net/download.js';
import { httpRequest } from '../../net/http.js';
import { hubIdProblem, openHubRepo, type HubRepoId } from '../../net/hub.js';
import { MIN_CLASSES, samePromptPair, type ClassNameList } from '../class-names.js';
import type { Dataset, DatasetOpenOptions, DatasetSource, Sample } from '../dataset.js';
import { shardSamples, type ShardContent } from './shards.js';

/**
 * CLIP_benchmark's webdataset layout, from three places: the hub's mirror (`wds/<name>[@<revision>]`, the
 * dataset repo clip-benchmark/wds_<name>), a local folder or an http(s) root (`wds:<folder-or-url>`):
 *
 *   classnames.txt                           one class name per line, in label order
 *   zeroshot_classification_templates.txt    one prompt template per line, placeholder {c}
 *   <split>/nshards.txt                      the number n of shards
 *   <split>/0.tar … <split>/<n-1>.tar        the samples (see shards.ts)
 *
 * Remote files are fetched into the cache: hub files through the hub client (by repo and revision), files
 * under a URL root through the downloader (by URL). Shards are fetched one at a time as streaming reaches
 * them, after their presence has been checked, so a missing shard fails before the first sample.
 */
const HUB_PREFIX = 'wds/';
const LOCATION_PREFIX = 'wds:';
/** A wds: location read over HTTP rather than from a folder. */
const REMOTE_LOCATION = /^https?:\/\//i;
const HUB_ORG = 'clip-benchmark';
const HUB_NAME_PREFIX = 'wds_';
const DEFAULT_SPLIT = 'test';
const CLASS_NAMES_FILE = 'classnames.txt';
const TEMPLATES_FILE = 'zeroshot_classification_templates.txt';
const SHARD_COUNT_FILE = 'nshards.txt';
/** ImageNet-21k's shards number in the thousands; far more is a damaged count. */
const MAX_SHARDS = 100_000;
const HEAD_TIMEOUT_MS = 30_000;
/** Shards whose presence is checked at once. */
const CHECK_CONCURRENCY = 8;
/** A split is one folder name: no path, nothing hidden. */
const SPLIT_PATTERN = /^[A-Za-z0-9_][\w.-]*$/;

/** Where the layout's files are; paths are relative to the data set root, with '/'. */
interface WebdatasetFiles {
  /** The root, for messages: a folder, a URL. */
  readonly where: string;
  /** The folder that holds the local copies: the data set's own folder, or its folder in the cache. */
  readonly folder: string;
  /** Fails with one line when the file is absent (or, offline, not cached). */
  require(path: string): Promise<void>;
  /** Whether the file is there (offline: whether it is cached). */
  has(path: string): Promise<boolean>;
  /** A local copy of the file, fetched into the cache when remote. */
  fetch(path: string): Promise<string>;
}

function missingError(spec: string, files: { where: string }, path: string): ClipEvalError {
  const hint = path.endsWith(SHARD_COUNT_FILE) ? `; check the split name (${path.split('/')[0]}) and the data set's layout` : '';
  return inputError(`webdataset ${spec}: ${path} is missing in ${files.where}${hint}`);
}

function localFiles(spec: string, root: string): WebdatasetFiles {
  const where = root;
  const localPath = (path: string) => join(root, ...path.split('/'));
  const has = async (path: string) => {
    try {
      await stat(localPath(path));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw isFileSystemError(error) ? fileSystemError(error, `webdataset ${spec}:`, localPath(path)) : error;
    }
  };
  const require = async (path: string) => {
    if (!(await has(path))) throw missingError(spec, { where }, path);
  };
  return {
    where,
    folder: root,
    require,
    has,
    async fetch(path) {
      await require(path);
      return localPath(path);
    },
  };
}

function hubFiles(spec: string, id: HubRepoId, options: DatasetOpenOptions): WebdatasetFiles {
  const repo = openHubRepo(id, { cacheRoot: options.cacheRoot, offline: options.offline, quiet: options.quiet, logger: options.logger });
  const where = `the hub's dataset repo ${id.repo}@${id.revision}`;
  return {
    where,
    folder: repo.folder,
    async require(path) {
      if (repo.cached(path)) return;
      if (options.offline) throw repo.notCachedError(path);
      if (!(await repo.has(path))) throw missingError(spec, { where }, path);
    },
    has: (path) => repo.has(path),
    fetch: (path) => repo.fetch(path),
  };
}

/** The folder of the webdatasets fetched by URL: one `<first 16 hex of sha256(root URL)>` folder each. */
export function webdatasetUrlCacheRoot(cacheRoot: string): string {
  return join(resolve(cacheRoot), 'datasets', 'wds-url');
}

/** `<cacheRoot>/datasets/wds-url/<first 16 hex of sha256(root URL)>/<path>`: each file keyed by its URL. */
function urlFiles(spec: string, root: URL, options: DatasetOpenOptions): WebdatasetFiles {
  const where = root.href;
  const folder = join(webdatasetUrlCacheRoot(options.cacheRoot), createHash('sha256').update(root.href).digest('hex').slice(0, 16));
  const localPath = (path: string) => join(folder, ...path.split('/'));
  const fileUrl = (path: string) => new URL(path.split('/').map(encodeURIComponent).join('/'), root);
  const has = async (path: string) => {
    const cached = await stat(localPath(path)).then((info) => info.isFile(), () => false);
    if (cached) {
      markUsed(folder, FOLDER_USE_RESOLUTION_MS);
      return true;
    }
    if (options.offline) return false;
    let status: number;
    try {
      const response = await httpRequest(fileUrl(path), { method: 'HEAD', headers: { 'Accept-Encoding': 'identity' }, timeoutMs: HEAD_TIMEOUT_MS });
      await response.discard();
      status = response.status;
    } catch (error) {
      throw inputError(`webdataset ${spec}: cannot reach ${fileUrl(path).href} (${describeError(error)}); check the URL, the connection or the proxy settings`, error);
    }
    if (status === 404 || status === 410) return false;
    if (status >= 400) throw inputError(`webdataset ${spec}: ${fileUrl(path).href} answered HTTP ${status}`);
    return true;
  };
  return {
    where,
    folder,
    has,
    async require(path) {
      if (await has(path)) return;
      if (options.offline) throw inputError(`webdataset ${spec}: ${path} is not in the cache (${localPath(path)}) and offline mode forbids downloading it`);
      throw missingError(spec, { where }, path);
    },
    async fetch(path) {
      const result = await downloadFile({
        url: fileUrl(path).href,
        destination: localPath(path),
        offline: options.offline,
        quiet: options.quiet,
        logger: options.logger,
        label: `${spec} ${path}`,
      });
      return result.path;
    },
  };
}

/** The files a spec names: `wds/<name>[@<revision>]` on the hub, `wds:<url>` or `wds:<folder>`. */
async function filesFor(spec: string, options: DatasetOpenOptions): Promise<WebdatasetFiles> {
  if (spec.startsWith(HUB_PREFIX)) {
    const rest = spec.slice(HUB_PREFIX.length);
    const at = rest.indexOf('@');
    const name = at === -1 ? rest : rest.slice(0, at);
    const revision = at === -1 ? 'main' : rest.slice(at + 1);
    if (name === '' || name.includes('/')) throw usageError(`data set ${spec}: expected wds/<name>[@<revision>], e.g. wds/imagenet1k`);
    const id: HubRepoId = { repo: `${HUB_ORG}/${HUB_NAME_PREFIX}${name}`, revision, type: 'dataset' };
    const problem = hubIdProblem(id);
    if (problem !== undefined) throw usageError(`data set ${spec}: ${problem}`);
    return hubFiles(spec, id, options);
  }
  const location = spec.slice(LOCATION_PREFIX.length);
  if (location === '') throw usageError(`data set ${spec}: expected wds:<folder> or wds:<http(s) URL>`);
  if (REMOTE_LOCATION.test(location)) {
    let root: URL;
    try {
      root = new URL(location.endsWith('/') ? location : `${location}/`);
    } catch {
      throw usageError(`data set ${spec}: ${location} is not a valid URL`);
    }
    return urlFiles(spec, root, options);
  }
  const root = resolve(location);
  const info = await stat(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw inputError(`webdataset ${spec}: the folder ${root} does not exist`);
    throw isFileSystemError(error) ? fileSystemError(error, `webdataset ${spec}:`, root) : error;
  });
  if (!info.isDirectory()) throw inputError(`webdataset ${spec}: ${root} is not a folder`);
  return localFiles(spec, root);
}

/** The file's lines, trimmed, without the blank lines at its end. */
async function readLines(files: WebdatasetFiles, spec: string, path: string): Promise<string[]> {
  await files.require(path);
  const local = await files.fetch(path);
  const text = await readTextFile(local, `webdataset ${spec}: ${path}`, `${path} should be a text file of the webdataset layout`);
  const lines = text.split('\n').map((line) => line.trim());
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines;
}

async function readShardCount(files: WebdatasetFiles, spec: string, split: string): Promise<number> {
  const path = `${split}/${SHARD_COUNT_FILE}`;
  const lines = await readLines(files, spec, path);
  const text = lines.join(' ').trim();
  const count = Number(text);
  if (!/^\d+$/.test(text) || count < 1 || count > MAX_SHARDS) {
    throw inputError(`webdataset ${spec}: ${path} holds ${JSON.stringify(text.slice(0, 20))}, not a number of shards from 1 to ${MAX_SHARDS}`);
  }
  return count;
}

async function readClassNames(files: WebdatasetFiles, spec: string): Promise<string[]> {
  const names = await readLines(files, spec, CLASS_NAMES_FILE);
  if (names.length === 0) throw inputError(`webdataset ${spec}: ${CLASS_NAMES_FILE} lists no class names`);
  const blank = names.indexOf('');
  if (blank !== -1) throw inputError(`webdataset ${spec}: ${CLASS_NAMES_FILE} line ${blank + 1} is blank; every label needs a name`);
  return names;
}

/** classnames.txt as the prompts' names: two classes at least, no two of them one prompt. */
function checkOwnClassNames(spec: string, names: readonly string[]): void {
  if (names.length < MIN_CLASSES) throw inputError(`webdataset ${spec}: ${CLASS_NAMES_FILE} lists one class name, and zero-shot classification needs at least ${MIN_CLASSES}`);
  const same = samePromptPair(names);
  if (same !== undefined) {
    const [first, second] = same;
    throw inputError(
      `webdataset ${spec}: ${CLASS_NAMES_FILE} lines ${first + 1} and ${second + 1} ("${showUnprintable(names[first]!)}" and "${showUnprintable(names[second]!)}") are one class name to CLIP, whose tokenizer lowercases`,
      undefined,
      { hint: { kind: 'giveClassNames' } },
    );
  }
}

/** The user's class names in place of classnames.txt: one per label, so the count must match. */
function chosenClassNames(spec: string, own: readonly string[], chosen: ClassNameList | undefined): readonly string[] {
  if (chosen === undefined) {
    checkOwnClassNames(spec, own);
    return own;
  }
  if (chosen.names.length !== own.length) {
    throw inputError(`webdataset ${spec}: the class names ${chosen.spec} are ${chosen.names.length}, but ${CLASS_NAMES_FILE} lists ${own.length}; give one name per label`);
  }
  return chosen.names;
}

/**
 * CLIP_benchmark's templates use `{c}` for the class name; this tool's use `{}`. The file is data, so a
 * template without a place for the class name is an input error naming it, not a usage error.
 */
async function readTemplates(files: WebdatasetFiles, spec: string): Promise<string[]> {
  const lines = await readLines(files, spec, TEMPLATES_FILE);
  const templates: string[] = [];
  for (const [index, line] of lines.entries()) {
    if (line === '') continue;
    const template = line.replaceAll('{c}', '{}');
    if (!template.includes('{}')) throw inputError(`webdataset ${spec}: ${TEMPLATES_FILE} line ${index + 1} (${JSON.stringify(showUnprintable(line))}) has no {c} where the class name goes`);
    if (templates.includes(template)) throw inputError(`webdataset ${spec}: ${TEMPLATES_FILE} line ${index + 1} (${JSON.stringify(showUnprintable(line))}) repeats an earlier template`);
    templates.push(template);
  }
  if (templates.length === 0) throw inputError(`webdataset ${spec}: ${TEMPLATES_FILE} lists no templates`);
  return templates;
}

async function requireAll(files: WebdatasetFiles, paths: readonly string[]): Promise<void> {
  for (let start = 0; start < paths.length; start += CHECK_CONCURRENCY) {
    await Promise.all(paths.slice(start, start + CHECK_CONCURRENCY).map((path) => files.require(path)));
  }
}

function shardPaths(split: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${split}/${index}.tar`);
}

function checkSplit(spec: string, split: string): void {
  if (!SPLIT_PATTERN.test(split)) {
    throw usageError(`not a folder name (letters, digits, "_", "-", ".") in data set ${spec}`, { input: { name: 'split', value: JSON.stringify(split) } });
  }
}

async function openWebdataset(spec: string, options: DatasetOpenOptions): Promise<Dataset> {
  const split = options.split ?? DEFAULT_SPLIT;
  checkSplit(spec, split);
  const files = await filesFor(spec, options);
  const shardCount = await readShardCount(files, spec, split);
  // A caption data set (flickr30k, mscoco_captions) has no class names or templates, only .txt members.
  const classNames = options.captions ? [] : chosenClassNames(spec, await readClassNames(files, spec), options.classNames);
  const templates = options.captions ? undefined : await readTemplates(files, spec);
  const content: ShardContent = options.captions ? { kind: 'captions' } : { kind: 'labels', classCount: classNames.length };
  const shards = shardPaths(split, shardCount);
  await requireAll(files, shards);
  return {
    name: spec,
    split,
    classNames,
    defaultTemplates: 'dataset',
    ...(templates ? { templates } : {}),
    async *samples(): AsyncGenerator<Sample> {
      const seenKeys = new Set<string>();
      for (const shard of shards) {
        const local = await files.fetch(shard);
        for await (const sample of shardSamples(local, shard, content, seenKeys)) {
          const image = { kind: 'encoded', bytes: sample.bytes, format: sample.format, origin: `${shard}: ${sample.member}` } as const;
          yield { id: sample.key, label: sample.label, image, ...(sample.captions ? { captions: sample.captions } : {}) };
        }
      }
    },
  };
}

/** What a fetched webdataset holds: labelled images (classification) or captioned ones (retrieval). */
export type WebdatasetKind = { kind: 'classification'; classes: number } | { kind: 'captions' };

/**
 * Checks that a shard's first sample has captions: a data set without classnames.txt is taken for a
 * caption data set, and this says so before its other shards are downloaded if it is neither.
 */
async function checkCaptionShard(spec: string, local: string, shard: string): Promise<void> {
  const samples = shardSamples(local, shard, { kind: 'captions' }, new Set());
  try {
    await samples.next();
    await samples.return(undefined);
  } catch (error) {
    if (!(error instanceof ClipEvalError)) throw error;
    throw inputError(`webdataset ${spec} has no ${CLASS_NAMES_FILE}, so it was read as a caption data set, but ${error.message}`, error);
  }
}

/**
 * Fetches every file of a remote webdataset split into the cache (for later offline runs) and says how
 * many shards it has, where the copies are, and what it holds: a classification data set (classnames.txt
 * and the templates, fetched too) or, without classnames.txt, a caption data set (CLIP_benchmark's
 * flickr30k, mscoco_captions: .txt members), checked on the first sample. A local folder is only checked.
 */
export async function fetchWebdataset(spec: string, options: DatasetOpenOptions): Promise<{ shards: number; folder: string } & WebdatasetKind> {
  const split = options.split ?? DEFAULT_SPLIT;
  checkSplit(spec, split);
  const files = await filesFor(spec, options);
  const shardCount = await readShardCount(files, spec, split);
  const kind: WebdatasetKind = (await files.has(CLASS_NAMES_FILE)) ? { kind: 'classification', classes: (await readClassNames(files, spec)).length } : { kind: 'captions' };
  if (kind.kind === 'classification') await readTemplates(files, spec);
  const shards = shardPaths(split, shardCount);
  await requireAll(files, shards);
  for (const [index, shard] of shards.entries()) {
    const local = await files.fetch(shard);
    if (index === 0 && kind.kind === 'captions') await checkCaptionShard(spec, local, shard);
  }
  return { shards: shardCount, folder: files.folder, ...kind };
}

export function isWebdatasetSpec(spec: string): boolean {
  return spec.startsWith(HUB_PREFIX) || spec.startsWith(LOCATION_PREFIX);
}

/** A webdataset spec that names a folder on this machine (wds:DIR), not the hub or a URL. */
export function isLocalWebdatasetSpec(spec: string): boolean {
  return spec.startsWith(LOCATION_PREFIX) && !REMOTE_LOCATION.test(spec.slice(LOCATION_PREFIX.length));
}

export const webdatasetSource: DatasetSource = {
  title: 'webdataset',
  matches: isWebdatasetSpec,
  open: openWebdataset,
};
