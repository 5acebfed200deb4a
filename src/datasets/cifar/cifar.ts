import { createHash, randomBytes } from 'node:crypto';
import { constants, existsSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { decodeUtf8 } from '../../core/bounded-read.js';
import { FOLDER_USE_RESOLUTION_MS, markUsed, writeFileAtomic } from '../../core/cache.js';
import { downloadFile } from '../../net/download.js';
import { processExists, withFileLock } from '../../net/file-lock.js';
import { ClipEvalError, describeError, inputError, usageError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';
import { cleanClassName } from './class-names.js';
import { extractMembers } from '../extract.js';

/**
 * CIFAR-100 and CIFAR-10 test sets from the official binary releases: where they come from, how they
 * get into the cache (download, safe extraction of the few files evaluation needs, validation), and
 * how their records are parsed.
 */
export type CifarName = 'cifar100' | 'cifar10';

export const CIFAR_NAMES: readonly CifarName[] = ['cifar100', 'cifar10'];

export interface CifarTestSet {
  name: CifarName;
  count: number;
  imageSize: 32;
  /** count × 3072 bytes; image i at i × 3072: 1024 red, 1024 green, 1024 blue, each row-major 32×32. */
  images: Uint8Array;
  /** The (fine) label of each image. */
  labels: Uint8Array;
  /** CIFAR-100 only: the super-class of each image. */
  coarseLabels?: Uint8Array;
  /** OpenAI's cleaned names (underscores read as spaces), for prompts. */
  classNames: string[];
  /** As in the label file, for reports. */
  rawClassNames: string[];
  coarseClassNames?: string[];
  /**
   * What was read, which reports cite: the test file's path, the sha256 of each file read (test and
   * label files, by file name) and `sha256`, one digest of them all (see datasetDigest).
   */
  source: { path: string; sha256: string; files: Record<string, string> };
}

/** A parsed test set, before it is tied to the files it was read from. */
export type ParsedCifarTestSet = Omit<CifarTestSet, 'source'>;

export interface CifarLoadOptions {
  cacheRoot: string;
  /** An already extracted copy (the files, or the folder holding the release's folder); never downloads. */
  dataDir?: string;
  /** A mirror of the release archive instead of the official URL. */
  url?: string;
  /** The archive's md5; without it a custom URL's archive is checked for layout only. */
  md5?: string;
  offline?: boolean;
  quiet?: boolean;
  logger?: Logger;
}

/** The label files' text, as read. */
export interface CifarLabelTexts {
  /** fine_label_names.txt (CIFAR-100) or batches.meta.txt (CIFAR-10). */
  classes: string;
  /** coarse_label_names.txt (CIFAR-100 only). */
  coarse?: string;
}

/** How errors name each input: a path, or an archive member and where it came from. */
export interface CifarFileNames {
  testBin: string;
  classes: string;
  coarse?: string;
}

interface CifarSpec {
  name: CifarName;
  title: string;
  url: string;
  md5: string;
  archiveBytes: number;
  /** The release's top-level folder inside the archive. */
  folder: string;
  testFile: string;
  classFile: string;
  coarseFile?: string;
  classCount: number;
  coarseCount?: number;
}

const CIFAR_SPECS: Record<CifarName, CifarSpec> = {
  cifar100: {
    name: 'cifar100',
    title: 'CIFAR-100',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    md5: '03b5dce01913d631647c71ecec9e9cb8',
    archiveBytes: 168_513_733,
    folder: 'cifar-100-binary',
    testFile: 'test.bin',
    classFile: 'fine_label_names.txt',
    coarseFile: 'coarse_label_names.txt',
    classCount: 100,
    coarseCount: 20,
  },
  cifar10: {
    name: 'cifar10',
    title: 'CIFAR-10',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    md5: 'c32a1d4ab5d03f1284b67883e8d87530',
    archiveBytes: 170_052_171,
    folder: 'cifar-10-batches-bin',
    testFile: 'test_batch.bin',
    classFile: 'batches.meta.txt',
    classCount: 10,
  },
};

const IMAGE_SIZE = 32;
const PIXEL_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE;
/** The official test files hold 10,000 records; a larger file is not a CIFAR test set. */
const MAX_RECORDS = 10_000;
/** The label files are about 1 KB; anything near this is not one. */
const MAX_LABEL_FILE_BYTES = 64 * 1024;
/** The official archives hold about 185 MB of tar data; this leaves room for any faithful repack. */
const MAX_TAR_BYTES = 1024 ** 3;
/**
 * Written last into the extracted folder: where it came from and the sha256 of every file
 * evaluation reads, checked on every load.
 */
const MARKER_FILE = 'clip-eval-source.json';
const MAX_MARKER_BYTES = 64 * 1024;
/**
 * An extraction takes seconds to minutes; a staging folder untouched for this long whose owner
 * cannot be asked (another host) is a leftover.
 */
const STAGING_STALE_MS = 60 * 60 * 1000;

interface CacheMarker {
  url: string;
  md5: string | null;
  /** File name to sha256, for each of memberFiles(spec). */
  files: Record<string, string>;
}

function cifarSpec(name: CifarName): CifarSpec {
  const spec = CIFAR_SPECS[name];
  if (!spec) throw usageError(`unknown data set "${String(name)}": choose ${CIFAR_NAMES.join(' or ')}`);
  return spec;
}

function memberFiles(spec: CifarSpec): string[] {
  return spec.coarseFile ? [spec.testFile, spec.classFile, spec.coarseFile] : [spec.testFile, spec.classFile];
}

function recordBytes(spec: CifarSpec): number {
  return (spec.coarseCount === undefined ? 1 : 2) + PIXEL_BYTES;
}

/** The most bytes each file may have: the official test file's size, or a label file's bound. */
function maxFileBytes(spec: CifarSpec, file: string): number {
  return file === spec.testFile ? MAX_RECORDS * recordBytes(spec) : MAX_LABEL_FILE_BYTES;
}

/**
 * Makes sure the test file and label files are on disk and returns their folder: the --data-dir copy
 * as it is, or the cache's copy, downloaded and extracted first when missing.
 */
export async function fetchCifar(name: CifarName, options: CifarLoadOptions): Promise<string> {
  return (await prepareCifar(cifarSpec(name), options)).directory;
}

/** Reads, validates and parses the test set (fetching it first when needed). */
export async function loadCifarTestSet(name: CifarName, options: CifarLoadOptions): Promise<CifarTestSet> {
  const spec = cifarSpec(name);
  const { directory, recorded } = await prepareCifar(spec, options);
  return readTestSet(spec, directory, { recorded });
}

interface PreparedCifar {
  directory: string;
  /** For the cache's copy: the digests recorded when it was extracted, which every read must match. */
  recorded?: Record<string, string>;
}

async function prepareCifar(spec: CifarSpec, options: CifarLoadOptions): Promise<PreparedCifar> {
  if (options.dataDir !== undefined) return { directory: await locateDataDir(spec, options.dataDir) };
  const logger = options.logger ?? silentLogger;
  const source = resolveSource(spec, options);
  const cached = await readMarker(spec, source.directory);
  if (cached !== undefined) {
    markUsed(source.directory, FOLDER_USE_RESOLUTION_MS);
    return { directory: source.directory, recorded: cached.files };
  }
  if (options.offline) {
    throw inputError(`${spec.title} is not in the cache (${source.directory})`, undefined, {
      input: { name: 'offline' },
      hint: { kind: 'fetchDataset', dataset: spec.name, url: source.url },
    });
  }
  if (source.md5 === undefined) {
    logger.warn({ input: { name: 'datasetMd5' }, detail: `not given for ${source.url}, so its archive is checked for layout only` });
  }
  const marker = await withFileLock(
    cifarCacheLock(source.directory),
    async () => (await readMarker(spec, source.directory)) ?? fillCache(spec, source, options, logger),
    { logger, label: spec.title },
  );
  return { directory: source.directory, recorded: marker.files };
}

interface Source {
  url: string;
  md5?: string;
  expectedSize?: number;
  /** The extracted copy's folder in the cache. */
  directory: string;
}

/** The folder of the extracted copies, named as resolveSource says. */
export function cifarCacheRoot(cacheRoot: string): string {
  return join(resolve(cacheRoot), 'datasets');
}

/** The names resolveSource gives cache folders. */
export const CIFAR_CACHE_FOLDER = /^(cifar100|cifar10)(-(md5|url)-[0-9a-f]{12})?$/;

/** The lock under which a cache folder and its archive are filled (and may be removed). */
export function cifarCacheLock(directory: string): string {
  return `${directory}.lock`;
}

/** Where a cache folder's archive is downloaded; it is removed once extracted. */
export function cifarCacheArchive(directory: string): string {
  return `${directory}.tar.gz`;
}

/**
 * Cache folders: the official release (from its URL or any mirror given its md5) is
 * `datasets/cifar100`. Other content gets a folder of its own so it can never stand in for the
 * official one: `cifar100-md5-<first 12 hex of the md5>` when a checksum names the content, else
 * `cifar100-url-<first 12 hex of sha256(URL)>`.
 */
function resolveSource(spec: CifarSpec, options: CifarLoadOptions): Source {
  if (!options.cacheRoot) throw usageError('a cache folder is needed to fetch data sets');
  const url = options.url ?? spec.url;
  if (!/^https?:\/\/[^/]/i.test(url)) throw usageError('expected an http:// or https:// URL', { input: { name: 'datasetUrl', value: url } });
  const md5 = options.md5?.toLowerCase() ?? (url === spec.url ? spec.md5 : undefined);
  const root = cifarCacheRoot(options.cacheRoot);
  if (md5 === spec.md5) return { url, md5, expectedSize: spec.archiveBytes, directory: join(root, spec.name) };
  const key = md5 !== undefined ? `md5-${md5.slice(0, 12)}` : `url-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
  return { url, md5, directory: join(root, `${spec.name}-${key}`) };
}

/**
 * The completion record of a cached copy, or undefined when there is none. A record written before
 * label files had digests (it has only `testSha256`) counts as none, so the copy is extracted again.
 */
async function readMarker(spec: CifarSpec, directory: string): Promise<CacheMarker | undefined> {
  const path = join(directory, MARKER_FILE);
  if (!existsSync(path)) return undefined;
  const text = (await readDataFile(path, MAX_MARKER_BYTES, path)).toString('utf8');
  try {
    const marker = JSON.parse(text) as Partial<CacheMarker> & { testSha256?: unknown };
    if (marker.files === undefined && typeof marker.testSha256 === 'string') return undefined;
    const files = marker.files ?? {};
    const complete = memberFiles(spec).every((file) => /^[0-9a-f]{64}$/.test(String(files[file])));
    if (typeof marker.url === 'string' && complete) return marker as CacheMarker;
  } catch {
    // Reported below like any other damage.
  }
  throw inputError(`${path} is damaged; delete ${directory} and fetch it again`);
}

/**
 * Reads a whole data file, at most `maxBytes` of it. Only a regular file is read: a FIFO would block
 * forever and a device would never end, so they are refused before any read (the open does not wait
 * for a FIFO's writer).
 */
async function readDataFile(path: string, maxBytes: number, name: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw inputError(`could not read ${name}: ${describeError(error)}`, error);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw inputError(`${name} is ${fileKind(info)}, not a regular file; put the file itself there`);
    if (info.size > maxBytes) throw inputError(`${name} has ${info.size} bytes, more than the ${maxBytes} expected`);
    const data = Buffer.alloc(info.size);
    let filled = 0;
    while (filled < data.length) {
      const { bytesRead } = await handle.read(data, filled, data.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return data.subarray(0, filled);
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`could not read ${name}: ${describeError(error)}`, error);
  } finally {
    await handle.close();
  }
}

function fileKind(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  if (info.isSocket()) return 'a socket';
  if (info.isDirectory()) return 'a folder';
  return 'a special file';
}

/**
 * Downloads the archive beside the target folder, extracts the needed members into a private
 * staging folder, validates them, writes the marker last and renames the folder into place, so a
 * crash or a bad archive at any point leaves no folder that looks complete. Runs under the lock.
 */
async function fillCache(spec: CifarSpec, source: Source, options: CifarLoadOptions, logger: Logger): Promise<CacheMarker> {
  const { directory, url } = source;
  const archive = cifarCacheArchive(directory);
  await removeStaleStaging(directory, logger);
  await downloadFile({
    url,
    destination: archive,
    expectedSize: source.expectedSize,
    md5: source.md5,
    quiet: options.quiet,
    label: `${spec.title} archive`,
    logger,
    hint: { kind: 'workWithoutNetwork' },
  });
  const staging = stagingFolder(directory);
  let marker: CacheMarker;
  try {
    await mkdir(staging);
    const members = memberFiles(spec).map((file) => ({ name: file, maxBytes: maxFileBytes(spec, file) }));
    await extractMembers({ archive, destination: staging, folder: spec.folder, members, maxTarBytes: MAX_TAR_BYTES });
    const testSet = await readTestSet(spec, staging, { nameOf: (file) => `${spec.folder}/${file} in ${url}` });
    marker = { url, md5: source.md5 ?? null, files: testSet.source.files };
    await writeFileAtomic(join(staging, MARKER_FILE), `${JSON.stringify(marker, null, 2)}\n`);
    // A folder without a marker is what a crash or a hand-deleted marker leaves; replace it.
    await rm(directory, { recursive: true, force: true });
    await rename(staging, directory);
  } catch (error) {
    // A bad archive must not be found again as a cached download.
    await rm(archive, { force: true });
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  // The extracted files are all that evaluation reads; the archive would only take space.
  await rm(archive, { force: true });
  logger.info(`${spec.title}: cached in ${directory}`);
  return marker;
}

/** This host, as staging folder names carry it: a hash, so that any host name makes a plain file name. */
function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 12);
}

/** `<folder>.staging-<host tag>-<pid>-<random>`: its name says who may still be writing it. */
function stagingFolder(directory: string): string {
  return `${directory}.staging-${hostTag()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Removes the staging folders that interrupted extractions of `directory` left behind. One is stale
 * when its process is gone (this host) or, when that cannot be asked (another host, or a name from
 * before names carried the host: `<folder>.<pid>-<random>.tmp`), when nothing in it changed for
 * STAGING_STALE_MS. A folder of a live process on this host is never touched. Best effort: a folder
 * that cannot be removed is only reported. Runs under the folder's lock.
 */
async function removeStaleStaging(directory: string, logger: Logger): Promise<void> {
  const parent = dirname(directory);
  const prefix = `${basename(directory)}.`;
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const current = /^staging-([0-9a-f]{12})-(\d+)-[0-9a-f]{8}$/.exec(rest);
    const legacy = /^(\d+)-[0-9a-f]{8}\.tmp$/.exec(rest);
    if (!current && !legacy) continue;
    const owner = current ? { host: current[1], pid: Number(current[2]) } : { pid: Number(legacy![1]) };
    const path = join(parent, name);
    try {
      if (!(await isStaleStaging(path, owner))) continue;
      await rm(path, { recursive: true, force: true });
      logger.info(`removed ${path}, left by an interrupted extraction`);
    } catch (error) {
      logger.warn(`could not remove ${path}, left by an interrupted extraction: ${describeError(error)}`);
    }
  }
}

async function isStaleStaging(path: string, owner: { host?: string; pid: number }): Promise<boolean> {
  if (owner.host === hostTag()) return !processExists(owner.pid);
  // Another host's process cannot be asked. An old name does not say its host, but a live process
  // here with its pid may well be its owner.
  if (owner.host === undefined && processExists(owner.pid)) return false;
  return (await untouchedFor(path)) > STAGING_STALE_MS;
}

/** How long ago (in either direction, for skewed clocks) a path or anything directly in it last changed. */
async function untouchedFor(path: string): Promise<number> {
  const entries = (await lstat(path)).isDirectory() ? await readdir(path) : [];
  const times = await Promise.all([path, ...entries.map((entry) => join(path, entry))].map(async (each) => (await lstat(each)).mtimeMs));
  return Math.abs(Date.now() - Math.max(...times));
}

/** The folder of an extracted copy: DIR itself or DIR/<release folder>, whichever holds the files. */
async function locateDataDir(spec: CifarSpec, dataDir: string): Promise<string> {
  const base = resolve(dataDir);
  const isDirectory = await stat(base).then(
    (info) => info.isDirectory(),
    () => false,
  );
  if (!isDirectory) throw inputError('no such folder', undefined, { input: { name: 'dataDir', value: dataDir } });
  const files = memberFiles(spec);
  for (const candidate of [base, join(base, spec.folder)]) {
    if (files.every((file) => existsSync(join(candidate, file)))) return candidate;
  }
  throw inputError(`expected ${files.join(', ')} there or in ${join(dataDir, spec.folder)}/ (an extracted ${spec.url.split('/').at(-1)})`, undefined, {
    input: { name: 'dataDir', value: dataDir },
  });
}

interface ReadOptions {
  /** How errors name each file; default its path. */
  nameOf?: (file: string) => string;
  /** The sha256 each file must have: the record of a cached copy. */
  recorded?: Record<string, string>;
}

/** Reads the test file and label files (each checked against `recorded` when given) and parses them. */
async function readTestSet(spec: CifarSpec, directory: string, options: ReadOptions = {}): Promise<CifarTestSet> {
  const nameOf = options.nameOf ?? ((file: string) => join(directory, file));
  const contents = await Promise.all(
    memberFiles(spec).map(async (file) => {
      const data = await readDataFile(join(directory, file), maxFileBytes(spec, file), nameOf(file));
      const sha256 = sha256Hex(data);
      const expected = options.recorded?.[file];
      if (expected !== undefined && expected !== sha256) {
        throw inputError(`${nameOf(file)} changed since it was fetched (sha256 ${sha256}, recorded ${expected}); delete ${directory} and fetch it again`);
      }
      return { file, data, sha256 };
    }),
  );
  const dataOf = (file: string) => contents.find((content) => content.file === file)!.data;
  const parsed = parseCifarTestSet(
    spec.name,
    dataOf(spec.testFile),
    // Strictly decoded, as every other text file: a Latin-1 name would otherwise become U+FFFD in the prompts.
    { classes: decodeUtf8(dataOf(spec.classFile), nameOf(spec.classFile)), coarse: spec.coarseFile && decodeUtf8(dataOf(spec.coarseFile), nameOf(spec.coarseFile)) },
    { testBin: nameOf(spec.testFile), classes: nameOf(spec.classFile), coarse: spec.coarseFile && nameOf(spec.coarseFile) },
  );
  // Reports cite the files on disk, also when errors name the archive members.
  const files = Object.fromEntries(contents.map(({ file, sha256 }) => [file, sha256]));
  return { ...parsed, source: { path: join(directory, spec.testFile), sha256: datasetDigest(contents), files } };
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * One digest of the data set as read: the sha256 of the lines `sha256sum` prints for its files, in
 * the release's order, so that `sha256sum test.bin fine_label_names.txt coarse_label_names.txt |
 * sha256sum` in the data folder prints the same value.
 */
function datasetDigest(files: readonly { file: string; sha256: string }[]): string {
  return sha256Hex(files.map(({ file, sha256 }) => `${sha256}  ${file}\n`).join(''));
}

/**
 * Parses and validates a test file and its label files (pure). Records are `labelBytes` label bytes
 * (CIFAR-100: coarse then fine; CIFAR-10: the label) followed by 3072 pixel bytes; any count of whole
 * records is accepted (reading caps a file at the official 10,000), every label must be in range.
 */
export function parseCifarTestSet(name: CifarName, testBin: Uint8Array, labelFiles: CifarLabelTexts, fileNames: CifarFileNames): ParsedCifarTestSet {
  const spec = cifarSpec(name);
  const rawClassNames = parseLabelNames(labelFiles.classes, spec.classCount, fileNames.classes);
  const coarseClassNames =
    spec.coarseCount === undefined ? undefined : parseLabelNames(labelFiles.coarse ?? '', spec.coarseCount, fileNames.coarse ?? 'the coarse label file');

  const labelBytes = spec.coarseCount === undefined ? 1 : 2;
  const recordSize = recordBytes(spec);
  if (testBin.length === 0 || testBin.length % recordSize !== 0) {
    throw inputError(
      `${fileNames.testBin} has ${testBin.length} bytes, not a whole number of ${spec.title} records of ${recordSize} bytes (the official file has 10,000: ${MAX_RECORDS * recordSize} bytes)`,
    );
  }
  const count = testBin.length / recordSize;
  const images = new Uint8Array(count * PIXEL_BYTES);
  const labels = new Uint8Array(count);
  const coarseLabels = labelBytes === 2 ? new Uint8Array(count) : undefined;
  for (let i = 0; i < count; i += 1) {
    const offset = i * recordSize;
    const label = testBin[offset + labelBytes - 1]!;
    if (label >= spec.classCount) {
      throw inputError(`${fileNames.testBin}: record ${i} has label ${label}, outside 0-${spec.classCount - 1}; the file is damaged or not ${spec.title}`);
    }
    labels[i] = label;
    if (coarseLabels) {
      const coarse = testBin[offset]!;
      if (coarse >= spec.coarseCount!) {
        throw inputError(`${fileNames.testBin}: record ${i} has coarse label ${coarse}, outside 0-${spec.coarseCount! - 1}; the file is damaged or not ${spec.title}`);
      }
      coarseLabels[i] = coarse;
    }
    images.set(testBin.subarray(offset + labelBytes, offset + recordSize), i * PIXEL_BYTES);
  }
  return {
    name,
    count,
    imageSize: IMAGE_SIZE,
    images,
    labels,
    ...(coarseLabels ? { coarseLabels } : {}),
    classNames: rawClassNames.map(cleanClassName),
    rawClassNames,
    ...(coarseClassNames ? { coarseClassNames } : {}),
  };
}

/** One name a line, exactly `count` of them; trailing blank lines (CIFAR-10 has some) are ignored. */
function parseLabelNames(text: string, count: number, fileName: string): string[] {
  const lines = text.split('\n').map((line) => line.trim());
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  if (lines.length !== count) throw inputError(`${fileName} has ${lines.length} class names, expected ${count}, one a line`);
  const seen = new Map<string, number>();
  lines.forEach((line, index) => {
    if (line === '') throw inputError(`${fileName}: line ${index + 1} is empty, expected a class name`);
    const first = seen.get(line);
    if (first !== undefined) throw inputError(`${fileName}: class name "${line}" appears on lines ${first + 1} and ${index + 1}`);
    seen.set(line, index);
  });
  return lines;
}
