import { readTextFile } from '../core/bounded-read.js';
import { samePromptPair } from '../datasets/class-names.js';
import { CIFAR100_CLEAN_NAMES, CIFAR10_NAMES } from '../datasets/cifar/class-names.js';
import { IMAGENET_CLASSNAMES } from '../datasets/imagenet/class-names.js';
import { subjectError, usageError, type Subject } from '../core/errors.js';

/** The labels `classify` chooses among, and where they came from. */
export interface LabelSet {
  /** 'imagenet1k', 'cifar100', 'cifar10', 'list' (comma-separated on the command line) or the @file's path. */
  source: string;
  labels: readonly string[];
  /** True for the published class names, whose prompts default to OpenAI's template ensembles. */
  builtIn: boolean;
}

export const DEFAULT_LABELS = 'cifar100';

const USAGE = { kind: 'usage' } as const;

/**
 * Rejects an empty list and labels that are the same to CLIP, by the rule class names follow too
 * (samePromptPair: ImageNet-1k's published duplicates pass). `origin` names the input or file.
 */
export function validateLabels(labels: readonly string[], origin: Subject): void {
  if (labels.length === 0) throw subjectError(origin, `no labels given; list at least one, e.g. "cat,dog"`, USAGE);
  if (labels.some((label) => label.trim() === '')) throw subjectError(origin, `a label is empty; remove the stray comma or blank entry`, USAGE);
  const same = samePromptPair(labels);
  if (same === undefined) return;
  const [earlier, label] = [labels[same[0]]!, labels[same[1]]!];
  if (earlier === label) throw subjectError(origin, `label "${label}" is listed twice`, USAGE);
  throw subjectError(origin, `labels "${earlier}" and "${label}" are the same to CLIP (its tokenizer lowercases); keep one`, USAGE);
}

async function readLabelFile(path: string): Promise<string[]> {
  const text = await readTextFile(path, { name: 'labels', value: `@${path}` }, 'give a file with one label per line');
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
}

/**
 * Resolves a labels spec: 'imagenet1k', 'cifar100', 'cifar10', '@FILE' (one label per line, blank lines ignored) or a
 * comma-separated list.
 */
export async function resolveLabels(spec: string): Promise<LabelSet> {
  if (spec === 'imagenet1k') return { source: spec, labels: IMAGENET_CLASSNAMES, builtIn: true };
  if (spec === 'cifar100') return { source: spec, labels: CIFAR100_CLEAN_NAMES, builtIn: true };
  if (spec === 'cifar10') return { source: spec, labels: CIFAR10_NAMES, builtIn: true };
  if (spec.startsWith('@')) {
    const path = spec.slice(1);
    if (path === '') throw usageError('give a file name after @, e.g. @labels.txt', { input: { name: 'labels', value: '@' } });
    const labels = await readLabelFile(path);
    validateLabels(labels, { name: 'labels', value: `@${path}` });
    return { source: path, labels, builtIn: false };
  }
  const labels = spec.trim() === '' ? [] : spec.split(',').map((label) => label.trim());
  validateLabels(labels, { name: 'labels', value: `"${spec}"` });
  return { source: 'list', labels, builtIn: false };
}

/** The templates when none are given: OpenAI's ensembles for the published names (80 for ImageNet), its single prompt for free-form labels. */
export function defaultTemplateSpec(labels: LabelSet): 'openai' | 'imagenet' | 'single' {
  if (labels.source === 'imagenet1k') return 'imagenet';
  return labels.builtIn ? 'openai' : 'single';
}
