/**
 * Generates the pattern CLIP fixture: a tiny deterministic CLIP bundle and synthetic CIFAR-100/10 archives it
 * classifies, with no download and no Python. As a script:
 *
 *   node dist/scripts/make-pattern-clip.js --out DIR [--layout hf|immich] [--per-class N] [--seed S] [--examples]
 *
 * writes DIR/model, DIR/cifar-100-binary.tar.gz, DIR/cifar-10-binary.tar.gz, their extracted copy DIR/data
 * and, with --examples, the README examples' inputs (see --help).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ClipEvalError, EXIT, describeError, usageError } from '../src/core/errors.js';
import { writeMembers, writeTarGz } from './lib/cifar-archive.js';
import { writeExampleInputs } from './lib/example-inputs.js';
import { DEFAULT_PER_CLASS, patternCifarMembers } from './lib/pattern-cifar.js';
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

const USAGE = 'usage: make-pattern-clip --out DIR [--layout hf|immich] [--per-class N] [--seed S] [--examples]';

const HELP = `${USAGE}

Writes the pattern CLIP fixture, deterministically and without network:
  DIR/model                       a tiny ONNX CLIP with its tokenizer (--layout hf, the default, or immich)
  DIR/cifar-100-binary.tar.gz     a synthetic CIFAR-100 test set, N images per class (--per-class, default ${DEFAULT_PER_CLASS})
  DIR/cifar-10-binary.tar.gz      the same for CIFAR-10
  DIR/data                        both archives extracted: pass it as --data-dir
and prints each archive's MD5 (for --dataset-md5 when the archives are served as a mirror).

  --examples    also write the inputs of the README's examples: DIR/photos (classify), DIR/library
                (search by text, 500 JPEGs), DIR/gallery (search by image), DIR/captions/captions.csv
                (retrieval) and DIR/blended (a CIFAR-100 for --data-dir that the model partly gets wrong)
  --seed S      another model and data set (default ${DEFAULT_SEED}; the examples need the default)
  -h, --help    this text
`;

interface FixtureArguments {
  out: string;
  layout: PatternClipLayout;
  perClass: number;
  seed: number;
  examples: boolean;
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
        examples: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw usageError(`${describeError(error)}; ${USAGE}`);
  }
}

/** The fixture's arguments, or 'help' when the help text was asked for. */
export function parseFixtureArguments(argv: string[]): FixtureArguments | 'help' {
  const values = parseFlags(argv);
  if (values.help) return 'help';
  if (!values.out) throw usageError(`--out DIR is required; ${USAGE}`);
  const layout = values.layout ?? 'hf';
  if (layout !== 'hf' && layout !== 'immich') throw usageError(`--layout ${layout}: expected hf or immich`);
  const seed = integerOption('--seed', values.seed, DEFAULT_SEED, 0, 0xffffffff);
  const examples = values.examples ?? false;
  // The example images draw the default seed's patterns: with another model they would be noise.
  if (examples && seed !== DEFAULT_SEED) throw usageError(`--examples draws images for the default seed (${DEFAULT_SEED}); leave --seed out`);
  return {
    out: resolve(values.out),
    layout,
    perClass: integerOption('--per-class', values['per-class'], DEFAULT_PER_CLASS, 1, 1000),
    seed,
    examples,
  };
}

function md5Of(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

async function main(argv: string[]): Promise<void> {
  const parsed = parseFixtureArguments(argv);
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return;
  }
  const { out, layout, perClass, seed, examples } = parsed;
  const { vocabSize } = await writePatternClip(join(out, 'model'), { layout, seed });
  const lines = [`model     ${join(out, 'model')} (pattern CLIP, ${layout} layout, seed ${seed}, vocabulary ${vocabSize})`];
  for (const [name, archive, count] of [
    ['cifar100', 'cifar-100-binary.tar.gz', 100 * perClass],
    ['cifar10', 'cifar-10-binary.tar.gz', 10 * perClass],
  ] as const) {
    const members = patternCifarMembers({ name, perClass, seed });
    await writeTarGz(join(out, archive), members);
    await writeMembers(join(out, 'data'), members);
    lines.push(`${name.padEnd(9)} ${join(out, archive)} (${count} images)  md5 ${md5Of(await readFile(join(out, archive)))}`);
  }
  lines.push(`data dir  ${join(out, 'data')} (both archives extracted)`);
  if (examples) {
    const inputs = await writeExampleInputs(out);
    lines.push(`examples  ${[inputs.photos, inputs.library, inputs.gallery, inputs.captions, inputs.blended].join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

const runAsScript = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (runAsScript) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    const known = error instanceof ClipEvalError;
    process.stderr.write(`make-pattern-clip: ${known ? error.message : describeError(error)}\n`);
    process.exitCode = known ? error.exitCode : EXIT.internal;
  });
}
