/**
 * Characters that no report format may carry raw: C0 and C1 controls, DEL, lone surrogates and the
 * non-characters U+FFFE/U+FFFF (none is allowed in XML 1.0, not even as a character reference).
 */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Replaces each unprintable character by a visible escape (\x01, \ud800), so names stay recognisable. */
export function showUnprintable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
