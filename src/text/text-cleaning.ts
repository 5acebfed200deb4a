import { C1_AS_WINDOWS_1252, unescapeHtml, unescapeHtmlLikeFtfy } from './html-unescape.js';

/**
 * The text cleaning of OpenAI's CLIP tokenizer (simple_tokenizer.py), which the Hub's tokenizer.json
 * does not describe: ftfy.fix_text, html.unescape twice, strip, whitespace collapse, lowercase.
 *
 * fixText reproduces ftfy 6.3's fix_text with its default settings except for fix_encoding, the
 * mojibake detector: text that ftfy judges to be UTF-8 misread as a single-byte code page ("cafÃ©")
 * is left as it is here, and so are its sub-steps restore_byte_a0, replace_lossy_sequences and
 * decode_inconsistent_utf8. ASCII text never reaches that step in ftfy either. Nor are lines longer
 * than ftfy's max_decode_length (a million code points) cut into pieces. Everything else is here:
 * HTML entities, C1 controls, Latin ligatures, full/halfwidth forms, curly quotes, line breaks,
 * lone surrogates, terminal escapes, control characters and NFC, repeated until nothing changes.
 */

/** What Python's `regex` module calls \s (Unicode White_Space); JavaScript's \s differs in \x85 and \ufeff. */
export const PYTHON_WHITESPACE_CLASS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const WHITESPACE_RUN = new RegExp(`[${PYTHON_WHITESPACE_CLASS}]+`, 'gu');
/** Python's str.strip() also strips the information separators \x1c-\x1f. */
const STRIPPED_ENDS = new RegExp(`^[${PYTHON_WHITESPACE_CLASS}\\x1c-\\x1f]+|[${PYTHON_WHITESPACE_CLASS}\\x1c-\\x1f]+$`, 'gu');

const C1_CONTROL = /[\x80-\x9f]/g;
const LATIN_LIGATURES: ReadonlyMap<string, string> = new Map([
  ['Ĳ', 'IJ'], ['ĳ', 'ij'], ['ŉ', 'ʼn'], ['Ǳ', 'DZ'], ['ǲ', 'Dz'], ['ǳ', 'dz'], ['Ǆ', 'DŽ'], ['ǅ', 'Dž'], ['ǆ', 'dž'],
  ['Ǉ', 'LJ'], ['ǈ', 'Lj'], ['ǉ', 'lj'], ['Ǌ', 'NJ'], ['ǋ', 'Nj'], ['ǌ', 'nj'],
  ['ﬀ', 'ff'], ['ﬁ', 'fi'], ['ﬂ', 'fl'], ['ﬃ', 'ffi'], ['ﬄ', 'ffl'], ['ﬅ', 'ſt'], ['ﬆ', 'st'],
]);
const LATIN_LIGATURE = new RegExp(`[${[...LATIN_LIGATURES.keys()].join('')}]`, 'gu');
/** ftfy's width map: the ideographic space and every half/fullwidth form (U+FF01–U+FFEF) that NFKC changes. */
const WIDTH_FORMS: ReadonlyMap<string, string> = (() => {
  const forms = new Map<string, string>([['\u3000', ' ']]);
  for (let codePoint = 0xff01; codePoint < 0xfff0; codePoint += 1) {
    const form = String.fromCodePoint(codePoint);
    const standard = form.normalize('NFKC');
    if (standard !== form) forms.set(form, standard);
  }
  return forms;
})();
const WIDTH_FORM = /[\u3000\uff01-\uffef]/g;
const CURLY_SINGLE_QUOTE = /[\u02bc\u2018-\u201b]/g;
const CURLY_DOUBLE_QUOTE = /[\u201c-\u201f]/g;
const LINE_BREAK = /\r\n|[\r\u2028\u2029\x85]/g;
const LONE_SURROGATE = /[\ud800-\udfff]/gu;
/** ANSI colour and cursor sequences; Python's \d there is any decimal digit. */
const TERMINAL_ESCAPE = /\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu;
const CONTROL_CHARACTER = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

function fixSegment(segment: string, unescapeEntities: boolean): string {
  let text = segment;
  for (;;) {
    const before = text;
    if (unescapeEntities) text = unescapeHtmlLikeFtfy(text);
    text = text
      .replace(C1_CONTROL, (control) => C1_AS_WINDOWS_1252.get(control.charCodeAt(0))!)
      .replace(LATIN_LIGATURE, (ligature) => LATIN_LIGATURES.get(ligature)!)
      .replace(WIDTH_FORM, (form) => WIDTH_FORMS.get(form) ?? form)
      .replace(CURLY_DOUBLE_QUOTE, '"')
      .replace(CURLY_SINGLE_QUOTE, "'")
      .replace(LINE_BREAK, '\n')
      .replace(LONE_SURROGATE, '\ufffd')
      .replace(TERMINAL_ESCAPE, '')
      .replace(CONTROL_CHARACTER, '')
      .normalize('NFC');
    if (text === before) return text;
  }
}

/** ftfy.fix_text as far as the header says, line by line as ftfy works. */
export function fixText(text: string): string {
  let unescapeEntities = true;
  let fixed = '';
  for (let start = 0; start < text.length; ) {
    const newline = text.indexOf('\n', start);
    const end = newline === -1 ? text.length : newline + 1;
    const segment = text.slice(start, end);
    // ftfy leaves entities alone from the first line that looks like HTML on, for the rest of the text.
    if (segment.includes('<')) unescapeEntities = false;
    fixed += fixSegment(segment, unescapeEntities);
    start = end;
  }
  return fixed;
}

function stripLikePython(text: string): string {
  return text.replace(STRIPPED_ENDS, '');
}

/** OpenAI's basic_clean, whitespace_clean and lower(), in that order: the text its regex then splits. */
export function cleanText(text: string): string {
  const basic = stripLikePython(unescapeHtml(unescapeHtml(fixText(text))));
  return stripLikePython(basic.replace(WHITESPACE_RUN, ' ')).toLowerCase();
}
