import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CIFAR100_COARSE_NAMES, CIFAR100_RAW_NAMES } from '../../src/datasets/cifar/class-names.js';
import { lastErrorLine, spawnCollected } from './bench-process.js';
import { drawPatternCifar } from './pattern-cifar.js';

/** Bytes of one CIFAR-100 record: coarse label, fine label, 3072 pixel bytes. */
export const CIFAR100_RECORD_BYTES = 2 + 3 * 32 * 32;

/** A CIFAR-100-format folder for `clip-eval cifar100 --data-dir`, and the test file the peer reads. */
export interface BenchData {
  /** Pass as --data-dir: it holds cifar-100-binary/. */
  dataDir: string;
  testBin: string;
  count: number;
  /** How the images were made, for the report. */
  source: string;
}

export interface BenchDataOptions {
  count: number;
  seed: number;
  python: string;
  /** The reference harness folder; its make_cifar_synth.py is preferred when Python can run it. */
  harnessDir: string;
  /** Told why the fallback was taken. */
  onFallback?: (reason: string) => void;
}

/**
 * Writes `count` synthetic CIFAR-100 test records under `directory`: photograph-like images from the
 * harness's make_cifar_synth.py where Python and numpy are at hand, else the project's own pattern images.
 */
export async function writeBenchCifar(directory: string, options: BenchDataOptions): Promise<BenchData> {
  const dataDir = join(directory, 'data');
  const releaseDir = join(dataDir, 'cifar-100-binary');
  await mkdir(releaseDir, { recursive: true });
  const testBin = join(releaseDir, 'test.bin');

  let source: string | undefined;
  const script = join(options.harnessDir, 'make_cifar_synth.py');
  if (existsSync(script)) {
    const args = [script, '--out', testBin, '--count', String(options.count), '--seed', String(options.seed)];
    const run = await spawnCollected(options.python, args).catch((error: NodeJS.ErrnoException) => error);
    if (run instanceof Error) options.onFallback?.(`${options.python} cannot be started (${run.code ?? run.message})`);
    else if (run.code !== 0) options.onFallback?.(`${script} failed: ${lastErrorLine(run)}`);
    else source = run.command;
  } else {
    options.onFallback?.(`${script} not found`);
  }
  if (!source) await writeFile(testBin, patternRecords(options.count, options.seed));
  await writeFile(join(releaseDir, 'fine_label_names.txt'), `${CIFAR100_RAW_NAMES.join('\n')}\n`);
  await writeFile(join(releaseDir, 'coarse_label_names.txt'), `${CIFAR100_COARSE_NAMES.join('\n')}\n`);
  return { dataDir, testBin, count: options.count, source: source ?? `drawPatternCifar (scripts/lib/pattern-cifar.ts), seed ${options.seed}` };
}

/** The first `count` records of the pattern set, drawn with enough images per class. */
function patternRecords(count: number, seed: number): Uint8Array {
  const { records } = drawPatternCifar({ name: 'cifar100', perClass: Math.ceil(count / 100), seed });
  return records.subarray(0, count * CIFAR100_RECORD_BYTES);
}
