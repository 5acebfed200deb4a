/**
 * GPT-2's byte-level alphabet (bytes_to_unicode): each of the 256 byte values stands for one printable
 * character, so BPE can work on strings. Printable Latin-1 bytes stand for themselves; the other 68
 * take U+0100, U+0101, … in byte order.
 */
function isSelfStanding(byte: number): boolean {
  return (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
}

/** The symbol of each byte value, indexed by byte. */
export const BYTE_SYMBOLS: readonly string[] = (() => {
  const symbols: string[] = [];
  let next = 0x100;
  for (let byte = 0; byte < 256; byte += 1) {
    symbols.push(String.fromCodePoint(isSelfStanding(byte) ? byte : next++));
  }
  return symbols;
})();

/**
 * The 256 symbols in the order OpenAI's vocabulary lists them (the order of bytes_to_unicode's
 * values): the self-standing bytes ascending, then the others ascending.
 */
export const BYTE_SYMBOLS_IN_VOCABULARY_ORDER: readonly string[] = [
  ...BYTE_SYMBOLS.filter((_symbol, byte) => isSelfStanding(byte)),
  ...BYTE_SYMBOLS.filter((_symbol, byte) => !isSelfStanding(byte)),
];

const utf8 = new TextEncoder();

/** A word's UTF-8 bytes written in the byte-level alphabet. */
export function toByteSymbols(word: string): string {
  let symbols = '';
  for (const byte of utf8.encode(word)) symbols += BYTE_SYMBOLS[byte]!;
  return symbols;
}
