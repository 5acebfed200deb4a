/**
 * Generates the pattern CLIP fixture: a tiny deterministic CLIP bundle and synthetic CIFAR-100/10 archives it
 * classifies, with no download and no Python. As a script:
 *
 *   node dist/scripts/make-pattern-clip.js --out DIR [--layout hf|immich] [--per-class N] [--seed S]
 *
 * writes DIR/model, DIR/cifar-100-binary.tar.gz and DIR/cifar-10-binary.tar.gz.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ClipEvalError, EXIT, describeError, usageError } from '../src/core/errors.js';
import { DEFAULT_PER_CLASS, writePatternCifarArchive } from './lib/pattern-cifar.js';
import { writePatternClip, type PatternClipLayout } from './lib/pattern-clip.js';
import { DEFAULT_SEED } from './lib/pattern-table.js';

export {
  CIFAR100_CLEAN_NAMES,
  CIFAR100_COARSE_NAMES,
  CIFAR100_FINE_TO_COARSE,
  CIFAR100_RAW_NAMES,
  CIFAR10_NAMES,
  OPENAI_CIFAR_TEMPLATES,
} from './lib/cifar-names.js';
export { drawPatternCifar, writePatternCifarArchive, type SyntheticCifar, type SyntheticCifarOptions } from './lib/pattern-cifar.js';
export {
  IMAGE_SIZE,
  OPENAI_MEAN,
  OPENAI_STD,
  patternTextGraph,
  patternVisionGraph,
  writePatternClip,
  type PatternClipLayout,
  type PatternClipOptions,
  type PatternClipResult,
} from './lib/pattern-clip.js';
export { EMBED_DIM, FIXTURE_WORDS, GRID, buildPatternTable, classNameTokenIds, classPattern } from './lib/pattern-table.js';

const USAGE = 'usage: make-pattern-clip --out DIR [--layout hf|immich] [--per-class N] [--seed S]';

interface FixtureArguments {
  out: string;
  layout: PatternClipLayout;
  perClass: number;
  seed: number;
}

function integerOption(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw usageError(`${flag} ${text}: expected a whole number from ${min} to ${max}`);
  }
  return value;
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        layout: { type: 'string' },
        'per-class': { type: 'string' },
        seed: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw usageError(`${describeError(error)}; ${USAGE}`);
  }
}

export function parseFixtureArguments(argv: string[]): FixtureArguments {
  const values = parseFlags(argv);
  if (!values.out) throw usageError(`--out DIR is required; ${USAGE}`);
  const layout = values.layout ?? 'hf';
  if (layout !== 'hf' && layout !== 'immich') throw usageError(`--layout ${layout}: expected hf or immich`);
  return {
    out: resolve(values.out),
    layout,
    perClass: integerOption('--per-class', values['per-class'], DEFAULT_PER_CLASS, 1, 1000),
    seed: integerOption('--seed', values.seed, DEFAULT_SEED, 0, 0xffffffff),
  };
}

async function main(argv: string[]): Promise<void> {
  const { out, layout, perClass, seed } = parseFixtureArguments(argv);
  const { vocabSize } = await writePatternClip(resolve(out, 'model'), { layout, seed });
  await writePatternCifarArchive(resolve(out, 'cifar-100-binary.tar.gz'), { name: 'cifar100', perClass, seed });
  await writePatternCifarArchive(resolve(out, 'cifar-10-binary.tar.gz'), { name: 'cifar10', perClass, seed });
  process.stderr.write(
    `pattern CLIP (${layout} layout, seed ${seed}, vocabulary ${vocabSize}) in ${resolve(out, 'model')}; ` +
      `synthetic CIFAR-100 (${100 * perClass} images) and CIFAR-10 (${10 * perClass} images) beside it\n`,
  );
}

const runAsScript = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (runAsScript) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    const known = error instanceof ClipEvalError;
    process.stderr.write(`make-pattern-clip: ${known ? error.message : describeError(error)}\n`);
    process.exitCode = known ? error.exitCode : EXIT.internal;
  });
}
