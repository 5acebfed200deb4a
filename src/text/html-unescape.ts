import { namedCharacterReferences } from './html-entities.js';

/**
 * What HTML5 (and Python's html.unescape) makes of the numeric references &#128; … &#159;: the
 * Windows-1252 characters, the five holes of that code page staying as they are. ftfy's
 * fix_c1_controls maps raw C1 characters the same way ("sloppy-windows-1252").
 */
export const C1_AS_WINDOWS_1252: ReadonlyMap<number, string> = new Map(
  [
    0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
    0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
  ].map((codePoint, index) => [0x80 + index, String.fromCodePoint(codePoint)]),
);

/** Code points that a numeric reference turns into nothing (Python's html._invalid_codepoints). */
function isDroppedCodePoint(codePoint: number): boolean {
  return (
    (codePoint >= 0x1 && codePoint <= 0x8) ||
    codePoint === 0xb ||
    (codePoint >= 0xe && codePoint <= 0x1f) ||
    (codePoint >= 0x7f && codePoint <= 0x9f) ||
    (codePoint >= 0xfdd0 && codePoint <= 0xfdef) ||
    (codePoint & 0xfffe) === 0xfffe
  );
}

function decodeNumericReference(digits: string, radix: 10 | 16): string {
  const codePoint = Number.parseInt(digits, radix);
  if (codePoint === 0) return '\ufffd';
  if (codePoint === 0x0d) return '\r';
  const windows1252 = C1_AS_WINDOWS_1252.get(codePoint);
  if (windows1252 !== undefined) return windows1252;
  if ((codePoint >= 0xd800 && codePoint <= 0xdfff) || codePoint > 0x10ffff) return '\ufffd';
  if (isDroppedCodePoint(codePoint)) return '';
  return String.fromCodePoint(codePoint);
}

/** Python's html._charref: numeric references with or without ';', and up to 32 characters of a name. */
const CHARACTER_REFERENCE = /&(?:#([0-9]+);?|#[xX]([0-9a-fA-F]+);?|([^\t\n\f <&#;]{1,32};?))/gu;

function decodeNamedReference(name: string): string {
  const references = namedCharacterReferences();
  const whole = references.get(name);
  if (whole !== undefined) return whole;
  // The longest name that prefixes the text wins, as the HTML5 standard says ("&notit;" is "¬it;").
  for (let length = name.length - 1; length > 1; length -= 1) {
    const prefix = references.get(name.slice(0, length));
    if (prefix !== undefined) return prefix + name.slice(length);
  }
  return `&${name}`;
}

/** Python's html.unescape: every named and numeric character reference, by the HTML5 rules. */
export function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARACTER_REFERENCE, (_match, decimal?: string, hex?: string, name?: string) => {
    if (decimal !== undefined) return decodeNumericReference(decimal, 10);
    if (hex !== undefined) return decodeNumericReference(hex, 16);
    return decodeNamedReference(name!);
  });
}

let ftfyEntities: ReadonlyMap<string, string> | undefined;

/**
 * ftfy's entity table: every "&name;" of HTML5, plus the all-caps form of each all-lowercase name
 * when that form is not itself a reference ("&EACUTE;" → "É").
 */
function ftfyEntityTable(): ReadonlyMap<string, string> {
  if (ftfyEntities) return ftfyEntities;
  const table = new Map<string, string>();
  for (const [name, text] of namedCharacterReferences()) {
    if (!name.endsWith(';')) continue;
    table.set(`&${name}`, text);
    if (name === name.toLowerCase()) {
      const upper = `&${name.toUpperCase()}`;
      if (unescapeHtml(upper) === upper) table.set(upper, text.toUpperCase());
    }
  }
  ftfyEntities = table;
  return table;
}

const FTFY_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

/**
 * ftfy's unescape_html: only references that end in ';' (so "this&not that" stays as it is), with
 * all-caps names accepted too.
 */
export function unescapeHtmlLikeFtfy(text: string): string {
  if (!text.includes('&')) return text;
  const table = ftfyEntityTable();
  return text.replace(FTFY_ENTITY, (reference) => {
    const known = table.get(reference);
    if (known !== undefined) return known;
    if (!reference.startsWith('&#')) return reference;
    // A numeric reference counts only when html.unescape consumes it up to its ';'.
    const decoded = unescapeHtml(reference);
    return decoded.includes(';') ? reference : decoded;
  });
}
