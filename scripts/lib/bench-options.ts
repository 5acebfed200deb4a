import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeError, usageError } from '../../src/core/errors.js';
import { parseDevice, type Device } from '../../src/model/session.js';

/** How the peer's prompts are padded: to OpenAI's 77 tokens as clip.tokenize does, or to the longest prompt. */
export type PeerTextLength = 'context' | 'longest';

export interface BenchOptions {
  model: string;
  images: number;
  batchSize: number;
  threads: number;
  device: Device;
  deviceId?: number;
  vsTorch: boolean;
  peerTextLength: PeerTextLength;
  /** The peer's OpenBLAS kernels: 'auto', 'installed' or an OPENBLAS_CORETYPE name. */
  peerBlas: string;
  python: string;
  sharedDir: string;
  out: string;
  /** Keeps the generated data and run outputs here; undefined: a temporary folder, removed at the end. */
  workDir?: string;
  seed: number;
  /** JPEGs of 500×375 in the folder case. */
  folderImages: number;
  /** Times the folder case and the image encoding it is compared with are measured, for the spread (and the classify case runs). */
  folderRepeats: number;
  /** JPEG photos of 1000×750 in the classify case. */
  classifyImages: number;
  /** The CI check case: `cifar100 --per-class checkPerClass` on a synthetic test set of checkImages. */
  checkImages: number;
  checkPerClass: number;
  quiet: boolean;
}

export const BENCH_USAGE =
  'usage: npm run bench -- --model DIR [--images N] [--batch-size N] [--threads N] [--device cpu|cuda|webgpu] [--device-id N] ' +
  '[--vs-torch [--peer-text-length context|longest] [--peer-blas auto|installed|CORE]] [--python PATH] [--shared DIR] [--out FILE] [--work-dir DIR] [--seed S] [--folder-images N] [--folder-repeats N] [--classify-images N] [--check-images N] [--check-per-class N] [--quiet]';

export const DEFAULT_IMAGES = 500;
/** The folder case: 500 JPEGs of 500×375, as the issue asks, measured three times for the spread. */
export const DEFAULT_FOLDER_IMAGES = 500;
export const DEFAULT_FOLDER_REPEATS = 3;
/** The classify case: 200 JPEG photos of 1000×750, as issue #14 asks. */
export const DEFAULT_CLASSIFY_IMAGES = 200;
/** The CI check case: 10 images per class of a 10,000-image CIFAR-100 test set, 1,000 images in all, as issue #14 asks. */
export const DEFAULT_CHECK_IMAGES = 10_000;
export const DEFAULT_CHECK_PER_CLASS = 10;
export const DEFAULT_BENCH_BATCH = 64;
const MAX_IMAGES = 50_000;

/** Compiled, this file is dist/scripts/lib/bench-options.js: the repository root is three folders up. */
export const benchRepoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function wholeNumber(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw usageError(`${flag} ${text}: expected a whole number from ${min} to ${max}`);
  return value;
}

/** bench-results/bench-2025-01-31T12-00-00Z.json: sortable, and valid as a file name everywhere. */
export function defaultResultPath(now: Date, root = benchRepoRoot): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
  return join(root, 'bench-results', `bench-${stamp}.json`);
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        images: { type: 'string' },
        'batch-size': { type: 'string' },
        threads: { type: 'string' },
        device: { type: 'string' },
        'device-id': { type: 'string' },
        'vs-torch': { type: 'boolean' },
        'peer-text-length': { type: 'string' },
        'peer-blas': { type: 'string' },
        python: { type: 'string' },
        shared: { type: 'string' },
        out: { type: 'string' },
        'work-dir': { type: 'string' },
        seed: { type: 'string' },
        'folder-images': { type: 'string' },
        'folder-repeats': { type: 'string' },
        'classify-images': { type: 'string' },
        'check-images': { type: 'string' },
        'check-per-class': { type: 'string' },
        quiet: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw usageError(`${describeError(error)}; ${BENCH_USAGE}`);
  }
}

export function parseBenchArguments(argv: string[], env: NodeJS.ProcessEnv = process.env, now = new Date()): BenchOptions {
  const values = parseFlags(argv);
  if (!values.model) throw usageError(`--model DIR is required (a model folder, e.g. one written by export_onnx.py); ${BENCH_USAGE}`);
  const peerTextLength = values['peer-text-length'] ?? 'context';
  if (peerTextLength !== 'context' && peerTextLength !== 'longest') {
    throw usageError(`--peer-text-length ${peerTextLength}: expected context (77 tokens, as clip.tokenize pads) or longest`);
  }
  for (const flag of ['peer-text-length', 'peer-blas'] as const) {
    if (!values['vs-torch'] && values[flag] !== undefined) throw usageError(`--${flag} applies to the PyTorch peer only; add --vs-torch`);
  }
  const peerBlas = values['peer-blas'] ?? 'auto';
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(peerBlas)) {
    throw usageError(`--peer-blas ${peerBlas}: expected auto, installed or an OpenBLAS core name such as SkylakeX or Haswell`);
  }
  const device = parseDevice(values.device ?? 'cpu');
  const deviceId = values['device-id'] === undefined ? undefined : wholeNumber('--device-id', values['device-id'], 0, 0, 255);
  if (deviceId !== undefined && device === 'cpu') throw usageError('--device-id applies to --device cuda or webgpu only');
  return {
    model: resolve(values.model),
    images: wholeNumber('--images', values.images, DEFAULT_IMAGES, 1, MAX_IMAGES),
    batchSize: wholeNumber('--batch-size', values['batch-size'], DEFAULT_BENCH_BATCH, 1, 4096),
    threads: wholeNumber('--threads', values.threads, availableParallelism(), 1, 1024),
    device,
    ...(deviceId !== undefined ? { deviceId } : {}),
    vsTorch: values['vs-torch'] ?? false,
    peerTextLength,
    peerBlas,
    python: values.python ?? '/usr/bin/python3',
    sharedDir: resolve(values.shared ?? env.CLIP_EVAL_SHARED ?? join(benchRepoRoot, '..', 'shared')),
    out: resolve(values.out ?? defaultResultPath(now)),
    ...(values['work-dir'] !== undefined ? { workDir: resolve(values['work-dir']) } : {}),
    seed: wholeNumber('--seed', values.seed, 1, 0, 0xffffffff),
    folderImages: wholeNumber('--folder-images', values['folder-images'], DEFAULT_FOLDER_IMAGES, 1, MAX_IMAGES),
    folderRepeats: wholeNumber('--folder-repeats', values['folder-repeats'], DEFAULT_FOLDER_REPEATS, 1, 100),
    classifyImages: wholeNumber('--classify-images', values['classify-images'], DEFAULT_CLASSIFY_IMAGES, 1, MAX_IMAGES),
    checkImages: wholeNumber('--check-images', values['check-images'], DEFAULT_CHECK_IMAGES, 1, MAX_IMAGES),
    checkPerClass: wholeNumber('--check-per-class', values['check-per-class'], DEFAULT_CHECK_PER_CLASS, 1, MAX_IMAGES),
    quiet: values.quiet ?? false,
  };
}
