import { readTextFile } from '../core/bounded-read.js';
import { subjectError, type InputFact, type Subject } from '../core/errors.js';
import { IMAGENET_TEMPLATES } from './imagenet-templates.js';

/** OpenAI's 18 CIFAR prompt templates (CLIP's notebook and CLIP_benchmark), "{}" standing for the class name. */
export const OPENAI_CIFAR_TEMPLATES: readonly string[] = [
  'a photo of a {}.',
  'a blurry photo of a {}.',
  'a black and white photo of a {}.',
  'a low contrast photo of a {}.',
  'a high contrast photo of a {}.',
  'a bad photo of a {}.',
  'a good photo of a {}.',
  'a photo of a small {}.',
  'a photo of a big {}.',
  'a photo of the {}.',
  'a blurry photo of the {}.',
  'a black and white photo of the {}.',
  'a low contrast photo of the {}.',
  'a high contrast photo of the {}.',
  'a bad photo of the {}.',
  'a good photo of the {}.',
  'a photo of the small {}.',
  'a photo of the big {}.',
];

export const SINGLE_TEMPLATE: readonly string[] = ['a photo of a {}.'];

export interface TemplateSet {
  /** 'openai', 'imagenet', 'single', 'dataset' or the file the templates came from. */
  name: string;
  templates: readonly string[];
}

const USAGE = { kind: 'usage' } as const;

/** Checks user templates: each must contain "{}" and they must be distinct. `origin` names the input or file. */
export function validateTemplates(templates: readonly string[], origin: Subject): void {
  if (templates.length === 0) throw subjectError(origin, `no templates given; write one template per line, each containing {}`, USAGE);
  const seen = new Set<string>();
  for (const template of templates) {
    if (!template.includes('{}')) throw subjectError(origin, `template "${template}" has no {} where the class name goes`, USAGE);
    if (seen.has(template)) throw subjectError(origin, `template "${template}" is listed twice`, USAGE);
    seen.add(template);
  }
}

/** Resolves a template spec: 'openai' (18, CIFAR), 'imagenet' (80), 'single', or a file with one template per line. */
export async function resolveTemplates(spec: string): Promise<TemplateSet> {
  if (spec === 'openai') return { name: 'openai', templates: OPENAI_CIFAR_TEMPLATES };
  if (spec === 'imagenet') return { name: 'imagenet', templates: IMAGENET_TEMPLATES };
  if (spec === 'single') return { name: 'single', templates: SINGLE_TEMPLATE };
  const origin: InputFact = { name: 'templates', value: spec };
  const text = await readTextFile(spec, origin, "give 'openai', 'single' or a file with one template per line");
  // CLIP_benchmark's template files write the class name as {c}; the project's placeholder is {}.
  const templates = text.split(/\r?\n/).map((line) => line.trim().replaceAll('{c}', '{}')).filter((line) => line.length > 0);
  validateTemplates(templates, origin);
  return { name: spec, templates };
}

/** The prompt for one class: every "{}" replaced by the class name. */
export function fillTemplate(template: string, className: string): string {
  return template.split('{}').join(className);
}
