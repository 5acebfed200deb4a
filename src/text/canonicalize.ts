import { unescapeHtml } from './html-unescape.js';
import { fixText, PYTHON_WHITESPACE_CLASS } from './text-cleaning.js';

/**
 * The text rule of the SigLIP families: open_clip's `canonicalize_text(basic_clean(text))`, the rule
 * big_vision's zero-shot evaluator applies to every prompt and so the one the published numbers used.
 * basic_clean is ftfy.fix_text, html.unescape twice and strip; canonicalize_text turns `_` into a
 * space, removes ASCII punctuation (Python's string.punctuation), lower-cases, collapses whitespace
 * runs to one space and strips.
 */

/** Python's string.punctuation. */
const ASCII_PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
/** What Python's `re` calls \s and str.strip() strips: Unicode whitespace plus the separators \x1c-\x1f. */
const PYTHON_SPACE = `${PYTHON_WHITESPACE_CLASS}\\x1c-\\x1f`;
const SPACE_RUN = new RegExp(`[${PYTHON_SPACE}]+`, 'gu');
const STRIPPED_ENDS = new RegExp(`^[${PYTHON_SPACE}]+|[${PYTHON_SPACE}]+$`, 'gu');

const strip = (text: string): string => text.replace(STRIPPED_ENDS, '');

export function canonicalizeText(text: string): string {
  const basic = strip(unescapeHtml(unescapeHtml(fixText(text))));
  const canonical = basic.replace(/_/g, ' ').replace(ASCII_PUNCTUATION, '').toLowerCase();
  return strip(canonical.replace(SPACE_RUN, ' '));
}
