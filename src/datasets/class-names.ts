import { readTextFile } from '../core/bounded-read.js';
import { subjectError, type InputFact } from '../core/errors.js';
import { CIFAR100_CLEAN_NAMES, CIFAR10_NAMES } from './cifar/class-names.js';
import { IMAGENET_CLASSNAMES, IMAGENET_SYNSETS } from './imagenet/class-names.js';

/** Class names chosen by the user for a data set, and where they came from. */
export interface ClassNameList {
  /** 'imagenet1k', 'cifar100', 'cifar10' or the file's path. */
  spec: string;
  /** In label order. Only the published duplicates may repeat (see samePromptPair). */
  names: readonly string[];
  /** ImageNet-1k only: the WordNet synset folder of each label. */
  synsets?: readonly string[];
}

export const BUILT_IN_CLASS_NAMES = ['imagenet1k', 'cifar100', 'cifar10'] as const;

/** Zero-shot classification ranks classes against each other: one class is always right. */
export const MIN_CLASSES = 2;

/** CLIP's tokenizer lowercases and collapses whitespace, so names equal under this make one prompt. */
export function promptKey(name: string): string {
  return name.trim().toLowerCase().replace(/\s+/g, ' ');
}

/**
 * The names OpenAI's ImageNet-1k list repeats ("missile", labels 657 and 744; "sunglasses", 836 and
 * 837): published so, scored so by every tool, and carried into the lists derived from it (ImageNet-V2,
 * -Sketch, and CLIP_benchmark's copies). Such a name may repeat, exactly as written; nothing else may.
 */
export const PUBLISHED_DUPLICATES: ReadonlySet<string> = new Set(IMAGENET_CLASSNAMES.filter((name, index) => IMAGENET_CLASSNAMES.indexOf(name) !== index));

/**
 * The first two labels (indices) whose names make the same prompt, which gives them identical text
 * embeddings and a tie broken by label order; undefined when there are none but the published duplicates.
 */
export function samePromptPair(names: readonly string[]): [number, number] | undefined {
  const firstOf = new Map<string, number>();
  for (const [index, name] of names.entries()) {
    const key = promptKey(name);
    const earlier = firstOf.get(key);
    if (earlier !== undefined && !(names[earlier] === name && PUBLISHED_DUPLICATES.has(name))) return [earlier, index];
    if (earlier === undefined) firstOf.set(key, index);
  }
  return undefined;
}

/** Resolves a class-name spec: a built-in list or a UTF-8 file with one name per line, in label order. */
export async function resolveClassNames(spec: string): Promise<ClassNameList> {
  if (spec === 'imagenet1k') return { spec, names: IMAGENET_CLASSNAMES, synsets: IMAGENET_SYNSETS };
  if (spec === 'cifar100') return { spec, names: CIFAR100_CLEAN_NAMES };
  if (spec === 'cifar10') return { spec, names: CIFAR10_NAMES };
  const origin: InputFact = { name: 'classnames', value: spec };
  const text = await readTextFile(spec, origin, `give ${BUILT_IN_CLASS_NAMES.join(', ')} or a file with one class name per line`);
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  const names = lines.map((line) => line.trim());
  const blank = names.findIndex((name) => name === '');
  if (names.length === 0) throw subjectError(origin, 'the file is empty; write one class name per line, in label order', { kind: 'usage' });
  if (blank !== -1) throw subjectError(origin, `line ${blank + 1} is blank; every line is one class name, in label order`, { kind: 'usage' });
  if (names.length < MIN_CLASSES) throw subjectError(origin, `only one class name; zero-shot classification needs at least ${MIN_CLASSES}, one per line in label order`, { kind: 'usage' });
  const same = samePromptPair(names);
  if (same !== undefined) {
    const [first, second] = same;
    throw subjectError(origin, `lines ${first + 1} and ${second + 1} (${JSON.stringify(names[first])} and ${JSON.stringify(names[second])}) are the same prompt to CLIP, whose tokenizer lowercases; give each class a name of its own`, { kind: 'usage' });
  }
  return { spec, names };
}
