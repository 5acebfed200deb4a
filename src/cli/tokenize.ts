import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { EXIT, usageError } from '../core/errors.js';
import { DEFAULT_MODEL, resolveModelBundle } from '../model/bundle.js';
import { positiveInteger } from './options.js';
import { formatTokenIds, loadClipTokenizer, readPadTokenFromConfig } from '../text/tokenizer.js';
import { addCommonOptions, loggerFor, type CommonOptions } from './flags.js';
import { readStdinLines } from './io.js';

export function tokenizeCommand(setExit: (code: number) => void): Command {
  const command = new Command('tokenize')
    .description('print the token ids of each text (SOT and EOT included, no padding), one JSON array per line; reads standard input when no TEXT is given')
    .argument('[text...]', 'texts to tokenize')
    .option('-m, --model <id-or-dir>', `take the tokenizer of this model (default ${DEFAULT_MODEL})`)
    .option('--tokenizer <file>', 'tokenizer.json or bpe_simple_vocab_16e6.txt.gz')
    .option('--context-length <n>', 'truncate to this many tokens, EOT last (default: the model\'s, 77)', positiveInteger('--context-length'));
  addCommonOptions(command);
  command.action(async (texts: string[], options: CommonOptions & { model?: string; tokenizer?: string; contextLength?: number }) => {
    const logger = loggerFor(options);
    if (options.model && options.tokenizer) throw usageError('give either --model or --tokenizer, not both');
    let tokenizerPath = options.tokenizer;
    let contextLength = 77;
    let padToken: string | undefined;
    if (!tokenizerPath) {
      const bundle = await resolveModelBundle({ model: options.model ?? DEFAULT_MODEL, cacheRoot: resolveCacheRoot(options.cacheDir), offline: options.offline, quiet: options.quiet, logger, needVision: false, needText: false });
      tokenizerPath = bundle.tokenizerPath;
      contextLength = bundle.contextLength;
      if (bundle.tokenizerConfigPath) padToken = await readPadTokenFromConfig(bundle.tokenizerConfigPath);
    }
    const tokenizer = await loadClipTokenizer(tokenizerPath, { padToken });
    const inputs = texts.length > 0 ? texts : await readStdinLines();
    const lines = inputs.map((text) => formatTokenIds(tokenizer.encodeForModel(text, options.contextLength ?? contextLength)));
    process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
    setExit(EXIT.ok);
  });
  return command;
}

