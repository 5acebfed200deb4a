import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'node:test';
import { gzipSync } from 'node:zlib';
import { ClipEvalError } from '../src/core/errors.js';
import { BYTE_SYMBOLS, BYTE_SYMBOLS_IN_VOCABULARY_ORDER, toByteSymbols } from '../src/text/byte-level.js';
import { CLIP_MERGE_COUNT } from '../src/text/bpe-vocab.js';
import { cleanText } from '../src/text/text-cleaning.js';
import { formatTokenIds, loadClipTokenizer, readPadTokenFromConfig, type ClipTokenizer } from '../src/text/tokenizer.js';
import { makeTempDir, needsShared, sharedPath } from './support/paths.js';

interface ReferenceCase {
  text: string;
  ids: number[];
}

interface CifarPrompts {
  classes: string[];
  templates: string[];
  single_template: string;
  single: number[][];
  openai18: number[][];
}

const VOCABULARY_FILES = ['clip-tokenizer/tokenizer.json', 'clip-tokenizer/bpe_simple_vocab_16e6.txt.gz'];

/** Each shared vocabulary file is loaded once for all the tests that read it. */
const sharedTokenizers = new Map<string, Promise<ClipTokenizer>>();
function sharedTokenizer(relativePath: string): Promise<ClipTokenizer> {
  let tokenizer = sharedTokenizers.get(relativePath);
  if (!tokenizer) {
    tokenizer = loadClipTokenizer(sharedPath(relativePath));
    sharedTokenizers.set(relativePath, tokenizer);
  }
  return tokenizer;
}

async function readJson<T>(relativePath: string): Promise<T> {
  return JSON.parse(await readFile(sharedPath(relativePath), 'utf8')) as T;
}

/** Fails with a ClipEvalError whose one-line message names `path` and contains `fragment`. */
async function assertLoadFails(path: string, fragment: string, options = {}): Promise<void> {
  await assert.rejects(loadClipTokenizer(path, options), (error: unknown) => {
    assert.ok(error instanceof ClipEvalError, `expected a ClipEvalError, got ${String(error)}`);
    assert.equal(error.kind, 'input');
    assert.ok(error.message.includes(path), `"${error.message}" does not name ${path}`);
    assert.ok(error.message.includes(fragment), `"${error.message}" does not say "${fragment}"`);
    assert.ok(!error.message.includes('\n'), `"${error.message}" is not one line`);
    return true;
  });
}

// --- A handmade CLIP-style vocabulary: 512 byte symbols, three merges, SOT and EOT. ---

const BASE_TOKENS = [...BYTE_SYMBOLS_IN_VOCABULARY_ORDER, ...BYTE_SYMBOLS_IN_VOCABULARY_ORDER.map((symbol) => `${symbol}</w>`)];
const TINY_MERGES = ['h i</w>', 't h', 'th e</w>'];
const TINY_VOCAB = Object.fromEntries([...BASE_TOKENS, 'hi</w>', 'th', 'the</w>'].map((token, id) => [token, id]));
const TINY_SOT = 515;
const TINY_EOT = 516;

function tinyTokenizerJson(overrides: { model?: Record<string, unknown>; added_tokens?: unknown } = {}): string {
  return JSON.stringify({
    version: '1.0',
    added_tokens: overrides.added_tokens ?? [
      { id: TINY_SOT, content: '<|startoftext|>', special: true },
      { id: TINY_EOT, content: '<|endoftext|>', special: true },
    ],
    model: { type: 'BPE', end_of_word_suffix: '</w>', vocab: TINY_VOCAB, merges: TINY_MERGES, ...overrides.model },
  });
}

/**
 * An OpenAI-format merges file: "h i</w>", "t h", "th e</w>" first, then filler merges of two symbols
 * that never meet in the words the tests use.
 */
function syntheticOpenAiMerges(mergeCount = CLIP_MERGE_COUNT): string {
  const lines = ['#version: 0.2', ...TINY_MERGES];
  const filler = BYTE_SYMBOLS_IN_VOCABULARY_ORDER.filter((symbol) => !'hite'.includes(symbol));
  for (const left of filler) {
    for (const right of filler) {
      if (lines.length > mergeCount) return `${lines.join('\n')}\n`;
      lines.push(`${left} ${right}`);
    }
  }
  throw new Error('not enough filler merges');
}

const tinyId = (token: string): number => TINY_VOCAB[token]!;

test('the byte-level alphabet is GPT-2 bytes_to_unicode', () => {
  assert.equal(BYTE_SYMBOLS.length, 256);
  assert.equal(new Set(BYTE_SYMBOLS).size, 256);
  assert.equal(BYTE_SYMBOLS[0x41], 'A');
  assert.equal(BYTE_SYMBOLS[0x20], '\u0120'); // the "Ġ" of GPT-2's space tokens
  assert.equal(BYTE_SYMBOLS[0x0a], '\u010a');
  assert.equal(BYTE_SYMBOLS[0xad], '\u0143'); // the last remapped byte
  assert.equal(BYTE_SYMBOLS_IN_VOCABULARY_ORDER[0], '!');
  assert.equal(BYTE_SYMBOLS_IN_VOCABULARY_ORDER[187], '\u00ff');
  assert.equal(BYTE_SYMBOLS_IN_VOCABULARY_ORDER[188], '\u0100');
  assert.equal(toByteSymbols('é '), '\u00c3\u00a9\u0120');
});

test('text cleaning matches OpenAI basic_clean + whitespace_clean + lower (ftfy 6.3.1)', () => {
  // Expected values printed by OpenAI's own cleaning steps under Python 3.11 with ftfy 6.3.1.
  const cases: [string, string][] = [
    ['  Hello,\tWORLD \n', 'hello, world'],
    ['Broken text&hellip; it&#x2019;s \ufb02ubberi\ufb01c!', "broken text\u2026 it's flubberific!"],
    ['\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33', 'loud noises'],
    ['P&EACUTE;REZ &amp;amp; &amp;lt;b&amp;gt;', 'p\u00e9rez & <b>'],
    ['&lt;b&gt; stays &amp;eacute; once', '<b> stays \u00e9 once'],
    ['<i>P&EACUTE;REZ</i>', '<i>p&eacute;rez</i>'],
    ['P&EACUTE;REZ\n<p> P&EACUTE;REZ\nP&EACUTE;REZ', 'p\u00e9rez <p> p&eacute;rez p&eacute;rez'],
    ['&amp;amp;EACUTE; &SZLIG;', '\u00e9 ss'],
    ['&#65&#x42;&#X43 &amp', 'abc &'],
    ['<p> &amp;eacute; &amp;amp;amp;', '<p> \u00e9 &amp;'],
    ['&Eacute &amp;quot', '\u00e9 "'],
    ['this&not that &notit; &#128; &#x85; &#0; &#xD800; &#99999999; &#1;', 'this\u00ac that \u00acit; \u20ac \u2026 \ufffd \ufffd \ufffd'],
    ['\x1b[31mred\x1b[0m \x07bell\x7f \ufeffbom\u200b', 'red bell bom\u200b'],
    ['cafe\u0301 \x80 \x81 \x9d', 'caf\u00e9 \u20ac \x81 \x9d'],
    ['\u2018quoted\u2019 \u201cdouble\u201d \u02bcn \u0149', "'quoted' \"double\" 'n 'n"],
    ['a\u2028b\u2029c\r\nd\re\x85f', 'a b c d e\u2026f'],
    ['\x1c\x1dpadded\x1e\x1f', 'padded'],
    ['\u0130stanbul \u039f\u0394\u039f\u03a3 Stra\u00dfe', 'i\u0307stanbul \u03bf\u03b4\u03bf\u03c2 stra\u00dfe'],
  ];
  for (const [text, expected] of cases) assert.equal(cleanText(text), expected, JSON.stringify(text));
});

test('a handmade tokenizer.json: BPE merges, SOT/EOT, truncation, padding id', async () => {
  const dir = await makeTempDir();
  try {
    const path = join(dir, 'tokenizer.json');
    await writeFile(path, tinyTokenizerJson());
    const tokenizer = await loadClipTokenizer(path);
    assert.equal(tokenizer.source, path);
    assert.equal(tokenizer.sotId, TINY_SOT);
    assert.equal(tokenizer.eotId, TINY_EOT);
    assert.equal(tokenizer.padId, 0, 'OpenAI pads with 0 unless a pad token is named');
    assert.equal(tokenizer.vocabSize, 517);

    assert.deepEqual(tokenizer.encode('Hi'), [tinyId('hi</w>')]);
    assert.deepEqual(tokenizer.encode('THE hit'), [tinyId('the</w>'), tinyId('h'), tinyId('i'), tinyId('t</w>')]);
    assert.deepEqual(tokenizer.encode("hi, it's"), [tinyId('hi</w>'), tinyId(',</w>'), tinyId('i'), tinyId('t</w>'), tinyId("'"), tinyId('s</w>')]);
    assert.deepEqual(tokenizer.encode(' \t\n '), []);
    assert.deepEqual(tokenizer.encode('hi <|endoftext|>'), [tinyId('hi</w>'), TINY_EOT], 'a special token in the text is kept whole');

    assert.deepEqual(tokenizer.encodeForModel('hi the'), [TINY_SOT, tinyId('hi</w>'), tinyId('the</w>'), TINY_EOT]);
    assert.deepEqual(tokenizer.encodeForModel(''), [TINY_SOT, TINY_EOT]);
    assert.deepEqual(tokenizer.encodeForModel('hi hi hi hi', 4), [TINY_SOT, tinyId('hi</w>'), tinyId('hi</w>'), TINY_EOT]);
    assert.deepEqual(tokenizer.encodeForModel('hi hi', 4), [TINY_SOT, tinyId('hi</w>'), tinyId('hi</w>'), TINY_EOT], 'exactly full is not cut');
    assert.deepEqual(tokenizer.encodeForModel('hi hi hi', 2), [TINY_SOT, TINY_EOT]);
    const long = tokenizer.encodeForModel('hi '.repeat(200));
    assert.equal(long.length, 77);
    assert.equal(long[0], TINY_SOT);
    assert.equal(long[76], TINY_EOT);
    assert.equal(long[75], tinyId('hi</w>'));
    for (const bad of [1, 0, -5, 7.5, Number.NaN]) {
      assert.throws(() => tokenizer.encodeForModel('hi', bad), ClipEvalError, `context length ${bad}`);
    }

    const padded = await loadClipTokenizer(path, { padToken: '<|endoftext|>' });
    assert.equal(padded.padId, TINY_EOT);
    await assertLoadFails(path, '"<|pad|>"', { padToken: '<|pad|>' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an OpenAI-format merges file (gz, or plain) builds the same vocabulary layout', async () => {
  const dir = await makeTempDir();
  try {
    const gzPath = join(dir, 'bpe_simple_vocab_16e6.txt.gz');
    const plainPath = join(dir, 'merges.txt');
    const merges = syntheticOpenAiMerges();
    await writeFile(gzPath, gzipSync(merges));
    await writeFile(plainPath, merges);
    for (const path of [gzPath, plainPath]) {
      const tokenizer = await loadClipTokenizer(path);
      assert.equal(tokenizer.vocabSize, 49408);
      assert.equal(tokenizer.sotId, 49406);
      assert.equal(tokenizer.eotId, 49407);
      // Byte symbols first, the same with </w> from 256, merge results from 512 in file order.
      assert.deepEqual(tokenizer.encode('!'), [256]);
      assert.deepEqual(tokenizer.encode('hi'), [512]);
      assert.deepEqual(tokenizer.encode('the'), [514]);
      assert.deepEqual(tokenizer.encode('hh'), [tinyId('h'), tinyId('h</w>')]);
      assert.deepEqual(tokenizer.encodeForModel('the hi'), [49406, 514, 512, 49407]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('broken or foreign vocabulary files fail with one line naming the file', async () => {
  const dir = await makeTempDir();
  try {
    const write = async (name: string, content: string | Uint8Array): Promise<string> => {
      const path = join(dir, name);
      await writeFile(path, content);
      return path;
    };
    await assertLoadFails(join(dir, 'absent.json'), 'not found');
    await assertLoadFails(dir, 'is a directory');
    await assertLoadFails(await write('truncated.json', tinyTokenizerJson().slice(0, 500)), 'not valid JSON');
    await assertLoadFails(await write('list.json', '[1, 2]'), 'no "model"');
    await assertLoadFails(await write('wordpiece.json', tinyTokenizerJson({ model: { type: 'WordPiece' } })), 'WordPiece');
    await assertLoadFails(await write('gpt2.json', tinyTokenizerJson({ model: { end_of_word_suffix: null } })), 'end_of_word_suffix');
    await assertLoadFails(await write('no-merges.json', tinyTokenizerJson({ model: { merges: undefined } })), 'model.merges');
    await assertLoadFails(await write('bad-merge.json', tinyTokenizerJson({ model: { merges: ['h i</w>', 'x'] } })), 'model.merges[1]');
    await assertLoadFails(await write('lost-merge.json', tinyTokenizerJson({ model: { merges: ['h e'] } })), 'merge 1');
    await assertLoadFails(
      await write('no-sot.json', tinyTokenizerJson({ added_tokens: [{ id: TINY_EOT, content: '<|endoftext|>' }] })),
      'no <|startoftext|>',
    );
    await assertLoadFails(
      await write('bad-id.json', tinyTokenizerJson({ model: { vocab: { ...TINY_VOCAB, oops: -1 } } })),
      'not a non-negative integer',
    );
    const { A: _dropped, ...withoutA } = TINY_VOCAB;
    await assertLoadFails(await write('no-bytes.json', tinyTokenizerJson({ model: { vocab: withoutA } })), 'no token "A"');

    await assertLoadFails(await write('fake.txt.gz', 'not gzip at all'), 'not gzip data');
    await assertLoadFails(await write('cut.txt.gz', gzipSync(syntheticOpenAiMerges()).subarray(0, 2000)), 'damaged gzip');
    await assertLoadFails(await write('short.txt.gz', gzipSync(syntheticOpenAiMerges(1000))), 'it has 1000 merge lines');
    await assertLoadFails(await write('three.txt.gz', gzipSync(syntheticOpenAiMerges().replace('\nt h\n', '\nt h x\n'))), 'line 3');
    await assertLoadFails(await write('unknown.txt.gz', gzipSync(syntheticOpenAiMerges().replace('\nt h\n', '\nt hh\n'))), 'line 3');
    await assertLoadFails(await write('binary.gz', gzipSync(Buffer.from([0xff, 0xfe, 0x00]))), 'not UTF-8');
    await assertLoadFails(await write('headless.gz', gzipSync('h i\nt h\n')), '"#version" header');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readPadTokenFromConfig reads pad_token as a string or {content}', async () => {
  const dir = await makeTempDir();
  try {
    const path = join(dir, 'tokenizer_config.json');
    await writeFile(path, JSON.stringify({ pad_token: '<|endoftext|>' }));
    assert.equal(await readPadTokenFromConfig(path), '<|endoftext|>');
    await writeFile(path, JSON.stringify({ pad_token: { __type: 'AddedToken', content: '!', lstrip: false } }));
    assert.equal(await readPadTokenFromConfig(path), '!');
    await writeFile(path, JSON.stringify({ model_max_length: 77 }));
    assert.equal(await readPadTokenFromConfig(path), undefined);
    await writeFile(path, JSON.stringify({ pad_token: null }));
    assert.equal(await readPadTokenFromConfig(path), undefined);
    for (const broken of ['{"pad_token": 7}', '{"pad_token": ', '"text"']) {
      await writeFile(path, broken);
      await assert.rejects(readPadTokenFromConfig(path), (error: unknown) => error instanceof ClipEvalError && error.message.includes(path));
    }
    await assert.rejects(readPadTokenFromConfig(join(dir, 'absent.json')), ClipEvalError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('formatTokenIds prints one JSON array on one line', () => {
  assert.equal(formatTokenIds([49406, 320, 1125, 49407]), '[49406,320,1125,49407]');
  assert.equal(formatTokenIds([]), '[]');
});

for (const file of VOCABULARY_FILES) {
  const skip = needsShared(file) || needsShared('reference/tokenizer-cases.json');
  test(`all 1,488 reference cases match OpenAI's tokenizer through ${file}`, { skip }, async (t) => {
    const cases = await readJson<ReferenceCase[]>('reference/tokenizer-cases.json');
    assert.equal(cases.length, 1488);
    let started = performance.now();
    const tokenizer = await sharedTokenizer(file);
    t.diagnostic(`load ${(performance.now() - started).toFixed(0)} ms`);
    started = performance.now();
    const mismatches = cases.filter((reference) => formatTokenIds(tokenizer.encode(reference.text)) !== formatTokenIds(reference.ids));
    t.diagnostic(`encode all cases ${(performance.now() - started).toFixed(0)} ms`);
    assert.deepEqual(mismatches.slice(0, 3).map((reference) => [reference.text, tokenizer.encode(reference.text), reference.ids]), []);
    assert.equal(tokenizer.vocabSize, 49408);
    assert.equal(tokenizer.sotId, 49406);
    assert.equal(tokenizer.eotId, 49407);
  });

  test(`CIFAR-100 prompts (SOT…EOT, cut to 77) match through ${file}`, { skip: needsShared(file) || needsShared('reference/cifar100-prompts.json') }, async () => {
    const prompts = await readJson<CifarPrompts>('reference/cifar100-prompts.json');
    const tokenizer = await sharedTokenizer(file);
    const fill = (template: string, name: string): string => template.replace('{}', name);
    assert.deepEqual(prompts.classes.map((name) => tokenizer.encodeForModel(fill(prompts.single_template, name))), prompts.single);
    const openai18 = prompts.classes.flatMap((name) => prompts.templates.map((template) => tokenizer.encodeForModel(fill(template, name))));
    assert.equal(openai18.length, 1800);
    assert.deepEqual(openai18, prompts.openai18);
  });
}

test('edge cases of OpenAI tokenizing: special tokens in text, contractions, case folding', { skip: needsShared(VOCABULARY_FILES[0]) }, async () => {
  // Expected ids from OpenAI's algorithm (ftfy 6.3.1, Python regex) on the same vocabulary.
  const tokenizer = await sharedTokenizer(VOCABULARY_FILES[0]!);
  const cases: [string, number[]][] = [
    ['a photo of a <|endoftext|> dog.', [320, 1125, 539, 320, 49407, 1929, 269]],
    ['x!<|endoftext|>', [343, 0, 27, 347, 40786, 4160, 91, 285]],
    ['<|startoftext|>', [49406]],
    ['<|\u017ftartoftext|>', [27, 91, 129, 123, 2002, 6659, 18169, 91, 285]],
    ["it's IT'S it'\u017f don't we're", [585, 568, 585, 568, 585, 6, 129, 379, 847, 713, 649, 982]],
    ['a\u0345b', [320, 321]],
    ['&lt;b&gt;bold&lt;/b&gt;', [283, 321, 285, 8911, 34308, 321, 285]],
    ['\ufb01sh &amp; chips', [2759, 261, 8855]],
    ['\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33', [7464, 31575]],
    ['\ud83c\uddef\ud83c\uddf5 \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67', [26527, 25023, 26304, 964, 356]],
    ['x'.repeat(200), [...Array<number>(49).fill(32035), 22819]],
  ];
  for (const [text, ids] of cases) assert.deepEqual(tokenizer.encode(text), ids, JSON.stringify(text));
});

test("tokenizer_config.json's pad token gives padId 49407", { skip: needsShared('clip-tokenizer/tokenizer_config.json') }, async () => {
  const padToken = await readPadTokenFromConfig(sharedPath('clip-tokenizer/tokenizer_config.json'));
  assert.equal(padToken, '<|endoftext|>');
  const tokenizer = await loadClipTokenizer(sharedPath(VOCABULARY_FILES[0]!), { padToken });
  assert.equal(tokenizer.padId, 49407);
  assert.equal((await sharedTokenizer(VOCABULARY_FILES[0]!)).padId, 0);
});
