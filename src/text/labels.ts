import { readTextFile } from '../core/bounded-read.js';
import { CIFAR100_CLEAN_NAMES, CIFAR10_NAMES } from '../datasets/cifar/class-names.js';
import { IMAGENET_CLASSNAMES } from '../datasets/imagenet/class-names.js';
import { usageError } from '../core/errors.js';

/** The labels `classify` chooses among, and where they came from. */
export interface LabelSet {
  /** 'imagenet1k', 'cifar100', 'cifar10', 'list' (comma-separated on the command line) or the @file's path. */
  source: string;
  labels: readonly string[];
  /** True for the published class names, whose prompts default to OpenAI's template ensembles. */
  builtIn: boolean;
}

export const DEFAULT_LABELS = 'cifar100';

/** CLIP's tokenizer lowercases and collapses whitespace, so labels equal under this are one prompt. */
function promptKey(label: string): string {
  return label.toLowerCase().replace(/\s+/g, ' ');
}

/** Rejects an empty list and labels that are the same to CLIP. `origin` names the flag or file. */
export function validateLabels(labels: readonly string[], origin: string): void {
  if (labels.length === 0) throw usageError(`${origin}: no labels given; list at least one, e.g. --labels "cat,dog"`);
  const seen = new Map<string, string>();
  for (const label of labels) {
    if (label.trim() === '') throw usageError(`${origin}: a label is empty; remove the stray comma or blank entry`);
    const key = promptKey(label);
    const earlier = seen.get(key);
    if (earlier === label) throw usageError(`${origin}: label "${label}" is listed twice`);
    if (earlier !== undefined) throw usageError(`${origin}: labels "${earlier}" and "${label}" are the same to CLIP (its tokenizer lowercases); keep one`);
    seen.set(key, label);
  }
}

async function readLabelFile(path: string): Promise<string[]> {
  const text = await readTextFile(path, `--labels @${path}`, 'give a file with one label per line');
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
}

/**
 * Resolves --labels: 'imagenet1k', 'cifar100', 'cifar10', '@FILE' (one label per line, blank lines ignored) or a
 * comma-separated list.
 */
export async function resolveLabels(spec: string): Promise<LabelSet> {
  if (spec === 'imagenet1k') return { source: spec, labels: IMAGENET_CLASSNAMES, builtIn: true };
  if (spec === 'cifar100') return { source: spec, labels: CIFAR100_CLEAN_NAMES, builtIn: true };
  if (spec === 'cifar10') return { source: spec, labels: CIFAR10_NAMES, builtIn: true };
  if (spec.startsWith('@')) {
    const path = spec.slice(1);
    if (path === '') throw usageError('--labels @: give a file name after @, e.g. --labels @labels.txt');
    const labels = await readLabelFile(path);
    validateLabels(labels, `--labels @${path}`);
    return { source: path, labels, builtIn: false };
  }
  const labels = spec.trim() === '' ? [] : spec.split(',').map((label) => label.trim());
  validateLabels(labels, `--labels "${spec}"`);
  return { source: 'list', labels, builtIn: false };
}

/** --templates when not given: OpenAI's ensembles for the published names (80 for ImageNet), its single prompt for free-form labels. */
export function defaultTemplateSpec(labels: LabelSet): 'openai' | 'imagenet' | 'single' {
  if (labels.source === 'imagenet1k') return 'imagenet';
  return labels.builtIn ? 'openai' : 'single';
}
