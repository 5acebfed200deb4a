import { Command, CommanderError } from 'commander';
import { ClipEvalError, EXIT, describeError, fileSystemError, isFileSystemError } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import { evalCommand, evaluationCommand } from './evaluate.js';
import { cacheCommand } from './cache.js';
import { fetchCommand } from './fetch.js';
import { tokenizeCommand } from './tokenize.js';
import { classifyCommand } from './classify.js';
import { retrievalCommand } from './retrieval.js';
import { searchCommand } from './search.js';
import { wordError } from './wording.js';

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('clip-eval')
    .description('Zero-shot evaluation of CLIP models (ONNX): CIFAR-100, CIFAR-10, ImageNet-1k, image folders, CSV manifests and webdatasets')
    .version(VERSION);
  program.addCommand(evaluationCommand('cifar100', 'zero-shot top-1/top-5 accuracy on the CIFAR-100 test set (10,000 images)', setExit));
  program.addCommand(evaluationCommand('cifar10', 'zero-shot top-1/top-5 accuracy on the CIFAR-10 test set (10,000 images)', setExit));
  program.addCommand(evalCommand(setExit));
  program.addCommand(fetchCommand(setExit));
  program.addCommand(tokenizeCommand(setExit));
  program.addCommand(classifyCommand(setExit));
  program.addCommand(retrievalCommand(setExit));
  program.addCommand(searchCommand(setExit));
  program.addCommand(cacheCommand(setExit));
  return program;
}

/** Runs the CLI and returns the exit code; errors are printed as one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  program.exitOverride();
  const output = {
    writeErr: (text: string) => process.stderr.write(text),
    // Commander puts its suggestion on a line of its own ("(Did you mean --min-top1?)"): one line here, as every error.
    outputError: (text: string, write: (text: string) => void) => write(`clip-eval: ${describeError(text.replace(/^error: /, ''))} (see --help)\n`),
  };
  program.configureOutput(output);
  const configure = (command: Command): void => {
    for (const sub of command.commands) configure(sub.exitOverride().configureOutput(output));
  };
  configure(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; help shown because no command was given is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof ClipEvalError) {
      process.stderr.write(`clip-eval: ${wordError(error)}\n`);
      return error.exitCode;
    }
    // A filesystem condition met where no stage gave it context is still the environment, not a bug.
    if (isFileSystemError(error)) {
      const environment = fileSystemError(error);
      process.stderr.write(`clip-eval: ${describeError(environment)}\n`);
      return environment.exitCode;
    }
    process.stderr.write(`clip-eval: internal error: ${describeError(error)}\n`);
    if (process.env.CLIP_EVAL_DEBUG) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    return EXIT.internal;
  }
}

