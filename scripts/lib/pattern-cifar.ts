/**
 * Synthetic CIFAR-100 / CIFAR-10 test sets that the pattern CLIP classifies: class k's 32×32 image draws its
 * pattern p_k (summed name rows of the token table) as an 8×8 grid of 4×4 cells per channel, plus uniform noise.
 */
import {
  CIFAR100_CLEAN_NAMES,
  CIFAR100_COARSE_NAMES,
  CIFAR100_FINE_TO_COARSE,
  CIFAR100_RAW_NAMES,
  CIFAR10_NAMES,
} from './cifar-names.js';
import { cifar100Members, cifar10Members, writeTarGz, type ArchiveMembers } from './cifar-archive.js';
import { DEFAULT_SEED, GRID, buildPatternTable, checkSeed, classPattern } from './pattern-table.js';
import { SeededRandom, deriveSeed } from './seeded-random.js';

export type CifarName = 'cifar100' | 'cifar10';

export interface SyntheticCifarOptions {
  name: CifarName;
  /** Images per class; default 10. */
  perClass?: number;
  /** The pattern CLIP's seed (the images draw its table); default that of writePatternClip. */
  seed?: number;
  /** Amplitude of the uniform per-pixel noise in grey levels; default 24. */
  noise?: number;
}

export interface SyntheticCifar {
  /** The records back to back in the data set's binary format. */
  records: Uint8Array;
  /** The (fine) label of each record. */
  labels: Uint8Array;
  count: number;
}

const SIDE = 32;
const PIXELS = SIDE * SIDE;
const CELL = SIDE / GRID;
/** Grey level of a zero pattern value, and the swing of the pattern's largest component. */
const MID_GREY = 128;
const PATTERN_SWING = 100;
export const DEFAULT_PER_CLASS = 10;
export const DEFAULT_NOISE = 24;
const MAX_PER_CLASS = 1000;

/** Label bytes before the pixels of each record: coarse and fine for CIFAR-100, the label for CIFAR-10. */
const HEADER_BYTES: Record<CifarName, number> = { cifar100: 2, cifar10: 1 };
const CLASS_NAMES: Record<CifarName, string[]> = { cifar100: CIFAR100_CLEAN_NAMES, cifar10: CIFAR10_NAMES };

function checkOptions(options: SyntheticCifarOptions): Required<SyntheticCifarOptions> {
  const { name, perClass = DEFAULT_PER_CLASS, seed = DEFAULT_SEED, noise = DEFAULT_NOISE } = options;
  if (name !== 'cifar100' && name !== 'cifar10') throw new RangeError(`data set "${String(name)}" is not cifar100 or cifar10`);
  if (!Number.isInteger(perClass) || perClass < 1 || perClass > MAX_PER_CLASS) {
    throw new RangeError(`per-class count ${perClass} is not an integer in 1..${MAX_PER_CLASS}`);
  }
  checkSeed(seed);
  if (!Number.isFinite(noise) || noise < 0 || noise > 127) throw new RangeError(`noise ${noise} is not a number in 0..127`);
  return { name, perClass, seed, noise };
}

/** Each class's cell values in grey levels above mid-grey: p_k scaled so that its largest |component| is the swing. */
function cellOffsets(seed: number, classNames: string[]): Float64Array[] {
  const table = buildPatternTable(seed);
  return classNames.map((className) => {
    const pattern = classPattern(table, className);
    const largest = pattern.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
    return Float64Array.from(pattern, (value) => (PATTERN_SWING * value) / largest);
  });
}

/** Draws the synthetic test set: classes interleaved in a seeded order, each pixel with its own seeded noise. */
export function drawPatternCifar(options: SyntheticCifarOptions): SyntheticCifar {
  const { name, perClass, seed, noise } = checkOptions(options);
  const classNames = CLASS_NAMES[name];
  const offsets = cellOffsets(seed, classNames);
  const labels = Uint8Array.from(
    new SeededRandom(deriveSeed(seed, `${name}-order`)).shuffle(classNames.flatMap((_, label) => Array.from({ length: perClass }, () => label))),
  );
  const headerBytes = HEADER_BYTES[name];
  const recordBytes = headerBytes + 3 * PIXELS;
  const records = new Uint8Array(labels.length * recordBytes);
  const random = new SeededRandom(deriveSeed(seed, `${name}-noise`));
  labels.forEach((label, index) => {
    const start = index * recordBytes;
    if (name === 'cifar100') records.set([CIFAR100_FINE_TO_COARSE[label], label], start);
    else records[start] = label;
    const cells = offsets[label];
    for (let channel = 0; channel < 3; channel++) {
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          const cell = cells[channel * GRID * GRID + Math.floor(y / CELL) * GRID + Math.floor(x / CELL)];
          const value = Math.round(MID_GREY + cell + random.symmetric(noise));
          records[start + headerBytes + channel * PIXELS + y * SIDE + x] = Math.min(255, Math.max(0, value));
        }
      }
    }
  });
  return { records, labels, count: labels.length };
}

/** The synthetic set's files, laid out like the official binary release. */
export function patternCifarMembers(options: SyntheticCifarOptions): ArchiveMembers {
  const { records } = drawPatternCifar(options);
  return options.name === 'cifar100'
    ? cifar100Members(records, CIFAR100_RAW_NAMES, CIFAR100_COARSE_NAMES)
    : cifar10Members(records, CIFAR10_NAMES);
}

/** Writes the synthetic set as a .tar.gz laid out like the official binary release. */
export async function writePatternCifarArchive(path: string, options: SyntheticCifarOptions): Promise<void> {
  await writeTarGz(path, patternCifarMembers(options));
}
