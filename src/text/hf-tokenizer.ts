import { Tokenizer } from '@huggingface/tokenizers';
import { inputError, usageError } from '../core/errors.js';
import { decodeText, readTokenizerFile, type PromptTokenizer } from './tokenizer.js';

/**
 * A tokenizer.json of any model kind (SentencePiece Unigram, BPE with byte fallback, WordPiece) run by
 * @huggingface/tokenizers, under a family's text rule: the rule cleans the text, the tokenizer.json
 * (normaliser, pre-tokeniser, model) gives the ids, and EOS is appended here rather than by the
 * post-processor, so that a cut keeps it last as open_clip's tokenizers do.
 */
export interface HfTokenizerOptions {
  /** The family's text rule, applied before the tokenizer.json's own normaliser. */
  clean: (text: string) => string;
  /** The token appended to every prompt (SigLIP's `</s>`, Gemma's `<eos>`). */
  eosToken: string;
  /** The token rows are padded with. */
  padToken: string;
}

class HfPromptTokenizer implements PromptTokenizer {
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;

  constructor(
    readonly source: string,
    private readonly tokenizer: Tokenizer,
    private readonly options: HfTokenizerOptions,
    vocabSize: number,
  ) {
    this.eosId = this.idOf(options.eosToken, 'end-of-text');
    this.padId = this.idOf(options.padToken, 'padding');
    this.vocabSize = vocabSize;
  }

  private idOf(token: string, role: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw inputError(`${this.source} has no token ${JSON.stringify(token)}, the family's ${role} token`);
    return id;
  }

  encodeForModel(text: string, contextLength = 64): number[] {
    if (!Number.isInteger(contextLength) || contextLength < 1) {
      throw usageError(`context length must be an integer of at least 1 (room for EOS), got ${contextLength}`);
    }
    const { ids } = this.tokenizer.encode(this.options.clean(text), { add_special_tokens: false });
    return [...ids.slice(0, contextLength - 1), this.eosId];
  }
}

function vocabularySize(json: Record<string, unknown>): number {
  const model = json.model as { vocab?: unknown } | undefined;
  const vocab = model?.vocab;
  const added = Array.isArray(json.added_tokens) ? json.added_tokens.length : 0;
  if (Array.isArray(vocab)) return Math.max(vocab.length, added);
  if (vocab && typeof vocab === 'object') return Math.max(Object.keys(vocab).length, added);
  return added;
}

/** Loads a tokenizer.json for a family that is not CLIP's byte-level BPE. */
export async function loadHfTokenizer(path: string, options: HfTokenizerOptions): Promise<PromptTokenizer> {
  const { text } = await decodeText(await readTokenizerFile(path), path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw inputError(`${path} is not valid JSON (${(error as Error).message}); expected a tokenizer.json`, error);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json) || typeof (json as { model?: unknown }).model !== 'object') {
    throw inputError(`${path} is not a tokenizer.json (no "model" object)`);
  }
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, {});
  } catch (error) {
    throw inputError(`${path}: the tokenizer.json cannot be loaded (${(error as Error).message})`, error);
  }
  return new HfPromptTokenizer(path, tokenizer, options, vocabularySize(json as Record<string, unknown>));
}
