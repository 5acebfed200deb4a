import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { EXIT, usageError } from '../core/errors.js';
import { DEFAULT_MODEL, resolveModelBundle, type ModelBundle } from '../model/bundle.js';
import { positiveInteger } from './options.js';
import { encoderInputRow } from '../families/family.js';
import { bundleFamily, familyNamed, FAMILIES } from '../families/registry.js';
import { formatTokenIds } from '../text/tokenizer.js';
import { addCommonOptions, loggerFor, type CommonOptions } from './flags.js';
import { readStdinLines } from './io.js';

/** The bundle's tokenizer file, family and context length. */
async function bundleTokenizer(bundle: ModelBundle, family: string | undefined) {
  return { tokenizerPath: bundle.tokenizerPath, contextLength: bundle.contextLength, ...(await bundleFamily(bundle, family)) };
}

export function tokenizeCommand(setExit: (code: number) => void): Command {
  const command = new Command('tokenize')
    .description("print the token ids of each text (the family's special tokens included, no padding), one JSON array per line; reads standard input when no TEXT is given")
    .argument('[text...]', 'texts to tokenize')
    .option('-m, --model <id-or-dir>', `take the tokenizer of this model (default ${DEFAULT_MODEL})`)
    .option('--tokenizer <file>', 'tokenizer.json or bpe_simple_vocab_16e6.txt.gz')
    .option('--context-length <n>', 'truncate to this many tokens, EOT last (default: the model\'s, 77)', positiveInteger('--context-length'))
    .option('--encoder-input', "print the row the text encoder receives: with the padding of families whose text tower sees every position (SigLIP: to the context length)")
    .option('--family <name>', `the model family whose text rules apply (${FAMILIES.map((family) => family.name).join(', ')}; default: detected from the model's files, clip for --tokenizer)`);
  addCommonOptions(command);
  command.action(async (texts: string[], options: CommonOptions & { model?: string; tokenizer?: string; contextLength?: number; encoderInput?: boolean; family?: string }) => {
    const logger = loggerFor(options);
    if (options.model && options.tokenizer) throw usageError('give either --model or --tokenizer, not both');
    const { family, tokenizerConfig, tokenizerPath, contextLength } = options.tokenizer
      ? { tokenizerPath: options.tokenizer, family: familyNamed(options.family ?? 'clip'), tokenizerConfig: {}, contextLength: 77 }
      : await bundleTokenizer(await resolveModelBundle({ model: options.model ?? DEFAULT_MODEL, cacheRoot: resolveCacheRoot(options.cacheDir), offline: options.offline, quiet: options.quiet, logger, needVision: false, needText: false }), options.family);
    const tokenizer = await family.loadTokenizer(tokenizerPath, tokenizerConfig);
    const length = options.contextLength ?? contextLength;
    const inputs = texts.length > 0 ? texts : await readStdinLines();
    const rows = inputs.map((text) => (options.encoderInput ? encoderInputRow(family, tokenizer, text, length) : tokenizer.encodeForModel(text, length)));
    process.stdout.write(rows.length > 0 ? `${rows.map(formatTokenIds).join('\n')}\n` : '');
    setExit(EXIT.ok);
  });
  return command;
}

