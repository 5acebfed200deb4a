import { readTextFile } from '../core/bounded-read.js';
import { subjectError, type InputFact } from '../core/errors.js';
import { CIFAR100_CLEAN_NAMES, CIFAR10_NAMES } from './cifar/class-names.js';
import { IMAGENET_CLASSNAMES, IMAGENET_SYNSETS } from './imagenet/class-names.js';

/** Class names chosen by the user for a data set, and where they came from. */
export interface ClassNameList {
  /** 'imagenet1k', 'cifar100', 'cifar10' or the file's path. */
  spec: string;
  /** In label order. Duplicates are allowed: published lists have them (ImageNet's two "missile"). */
  names: readonly string[];
  /** ImageNet-1k only: the WordNet synset folder of each label. */
  synsets?: readonly string[];
}

export const BUILT_IN_CLASS_NAMES = ['imagenet1k', 'cifar100', 'cifar10'] as const;

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
  return { spec, names };
}
