import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { temporarySibling, writeFileAtomic } from '../cache.js';
import { downloadFile } from '../download.js';
import { withFileLock } from '../file-lock.js';
import { describeError, inputError, usageError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { cleanClassName } from './cifar-names.js';
import { extractMembers } from './extract.js';

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
  /** The test file read and its sha256, which reports cite. */
  source: { path: string; sha256: string };
}

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
/** Written last into the extracted folder: where it came from and the test file's sha256. */
const MARKER_FILE = 'clip-eval-source.json';
const NETWORK_HINT =
  'to work without the network pass --data-dir DIR (an extracted copy) or --offline with a filled cache, or download from a mirror with --dataset-url URL';

interface CacheMarker {
  url: string;
  md5: string | null;
  testSha256: string;
}

function cifarSpec(name: CifarName): CifarSpec {
  const spec = CIFAR_SPECS[name];
  if (!spec) throw usageError(`unknown data set "${String(name)}": choose ${CIFAR_NAMES.join(' or ')}`);
  return spec;
}

function memberFiles(spec: CifarSpec): string[] {
  return spec.coarseFile ? [spec.testFile, spec.classFile, spec.coarseFile] : [spec.testFile, spec.classFile];
}

/**
 * Makes sure the test file and label files are on disk and returns their folder: the --data-dir copy
 * as it is, or the cache's copy, downloaded and extracted first when missing.
 */
export async function fetchCifar(name: CifarName, options: CifarLoadOptions): Promise<string> {
  const spec = cifarSpec(name);
  if (options.dataDir !== undefined) return locateDataDir(spec, options.dataDir);
  const logger = options.logger ?? silentLogger;
  const source = resolveSource(spec, options);
  if ((await readMarker(source.directory)) !== undefined) return source.directory;
  if (options.offline) {
    throw inputError(
      `--offline: ${spec.title} is not in the cache (${source.directory}); run \`clip-eval fetch ${name}\` where ${source.url} is reachable, or pass --data-dir`,
    );
  }
  if (source.md5 === undefined) logger.warn(`no --dataset-md5 for ${source.url}: its archive is checked for layout only`);
  await withFileLock(
    `${source.directory}.lock`,
    async () => {
      if ((await readMarker(source.directory)) === undefined) await fillCache(spec, source, options, logger);
    },
    { logger, label: spec.title },
  );
  return source.directory;
}

/** Reads, validates and parses the test set (fetching it first when needed). */
export async function loadCifarTestSet(name: CifarName, options: CifarLoadOptions): Promise<CifarTestSet> {
  const spec = cifarSpec(name);
  const directory = await fetchCifar(name, options);
  const testSet = await readTestSet(spec, directory);
  if (options.dataDir === undefined) {
    const marker = await readMarker(directory);
    if (marker !== undefined && marker.testSha256 !== testSet.source.sha256) {
      throw inputError(
        `${testSet.source.path} changed since it was fetched (sha256 ${testSet.source.sha256}, recorded ${marker.testSha256}); delete ${directory} and fetch it again`,
      );
    }
  }
  return testSet;
}

interface Source {
  url: string;
  md5?: string;
  expectedSize?: number;
  /** The extracted copy's folder in the cache. */
  directory: string;
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
  if (!/^https?:\/\/[^/]/i.test(url)) throw usageError(`--dataset-url ${url}: expected an http:// or https:// URL`);
  const md5 = options.md5?.toLowerCase() ?? (url === spec.url ? spec.md5 : undefined);
  const root = join(resolve(options.cacheRoot), 'datasets');
  if (md5 === spec.md5) return { url, md5, expectedSize: spec.archiveBytes, directory: join(root, spec.name) };
  const key = md5 !== undefined ? `md5-${md5.slice(0, 12)}` : `url-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
  return { url, md5, directory: join(root, `${spec.name}-${key}`) };
}

async function readMarker(directory: string): Promise<CacheMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(directory, MARKER_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const marker = JSON.parse(text) as CacheMarker;
    if (typeof marker.testSha256 === 'string') return marker;
  } catch {
    // Reported below like any other damage.
  }
  throw inputError(`${join(directory, MARKER_FILE)} is damaged; delete ${directory} and fetch it again`);
}

/**
 * Downloads the archive beside the target folder, extracts the needed members into a private
 * temporary folder, validates them, writes the marker last and renames the folder into place, so a
 * crash or a bad archive at any point leaves no folder that looks complete. Runs under the lock.
 */
async function fillCache(spec: CifarSpec, source: Source, options: CifarLoadOptions, logger: Logger): Promise<void> {
  const { directory, url } = source;
  const archive = `${directory}.tar.gz`;
  await downloadFile({
    url,
    destination: archive,
    expectedSize: source.expectedSize,
    md5: source.md5,
    quiet: options.quiet,
    label: `${spec.title} archive`,
    logger,
    hint: NETWORK_HINT,
  });
  const staging = temporarySibling(directory);
  try {
    await mkdir(staging);
    await extractMembers({ archive, destination: staging, folder: spec.folder, members: memberFiles(spec) });
    const memberName = (file: string) => `${spec.folder}/${file} in ${url}`;
    const testSet = await readTestSet(spec, staging, memberName);
    const marker: CacheMarker = { url, md5: source.md5 ?? null, testSha256: testSet.source.sha256 };
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
}

/** The folder of an extracted copy: DIR itself or DIR/<release folder>, whichever holds the files. */
async function locateDataDir(spec: CifarSpec, dataDir: string): Promise<string> {
  const base = resolve(dataDir);
  const isDirectory = await stat(base).then(
    (info) => info.isDirectory(),
    () => false,
  );
  if (!isDirectory) throw inputError(`--data-dir ${dataDir}: no such folder`);
  const files = memberFiles(spec);
  for (const candidate of [base, join(base, spec.folder)]) {
    if (files.every((file) => existsSync(join(candidate, file)))) return candidate;
  }
  throw inputError(
    `--data-dir ${dataDir}: expected ${files.join(', ')} there or in ${join(dataDir, spec.folder)}/ (an extracted ${spec.url.split('/').at(-1)})`,
  );
}

async function readTestSet(spec: CifarSpec, directory: string, nameOf: (file: string) => string = (file) => join(directory, file)): Promise<CifarTestSet> {
  const read = (file: string) =>
    readFile(join(directory, file)).catch((error: unknown) => {
      throw inputError(`could not read ${nameOf(file)}: ${describeError(error)}`, error);
    });
  const [testBin, classes, coarse] = await Promise.all([
    read(spec.testFile),
    read(spec.classFile),
    spec.coarseFile ? read(spec.coarseFile) : undefined,
  ]);
  const testSet = parseCifarTestSet(
    spec.name,
    testBin,
    { classes: classes.toString('utf8'), coarse: coarse?.toString('utf8') },
    { testBin: nameOf(spec.testFile), classes: nameOf(spec.classFile), coarse: spec.coarseFile && nameOf(spec.coarseFile) },
  );
  // Reports cite the file on disk, also when errors name the archive member.
  return { ...testSet, source: { ...testSet.source, path: join(directory, spec.testFile) } };
}

/**
 * Parses and validates a test file and its label files (pure). Records are `labelBytes` label bytes
 * (CIFAR-100: coarse then fine; CIFAR-10: the label) followed by 3072 pixel bytes; any count of whole
 * records is accepted (the official files hold 10,000), every label must be in range.
 */
export function parseCifarTestSet(name: CifarName, testBin: Uint8Array, labelFiles: CifarLabelTexts, fileNames: CifarFileNames): CifarTestSet {
  const spec = cifarSpec(name);
  const rawClassNames = parseLabelNames(labelFiles.classes, spec.classCount, fileNames.classes);
  const coarseClassNames =
    spec.coarseCount === undefined ? undefined : parseLabelNames(labelFiles.coarse ?? '', spec.coarseCount, fileNames.coarse ?? 'the coarse label file');

  const labelBytes = spec.coarseCount === undefined ? 1 : 2;
  const recordBytes = labelBytes + PIXEL_BYTES;
  if (testBin.length === 0 || testBin.length % recordBytes !== 0) {
    throw inputError(
      `${fileNames.testBin} has ${testBin.length} bytes, not a whole number of ${spec.title} records of ${recordBytes} bytes (the official file has 10,000: ${10_000 * recordBytes} bytes)`,
    );
  }
  const count = testBin.length / recordBytes;
  const images = new Uint8Array(count * PIXEL_BYTES);
  const labels = new Uint8Array(count);
  const coarseLabels = labelBytes === 2 ? new Uint8Array(count) : undefined;
  for (let i = 0; i < count; i += 1) {
    const offset = i * recordBytes;
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
    images.set(testBin.subarray(offset + labelBytes, offset + recordBytes), i * PIXEL_BYTES);
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
    source: { path: fileNames.testBin, sha256: createHash('sha256').update(testBin).digest('hex') },
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
