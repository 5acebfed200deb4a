import { Command, CommanderError, Help, type Option } from 'commander';
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
  configureHelp(program);
  return program;
}

/** An option's help: its choices and its default once, as a user would type them (1,5,10, not [1,5,10]). */
function optionDescription(option: Option): string {
  const extra: string[] = [];
  if (option.argChoices) extra.push(`one of ${option.argChoices.join(', ')}`);
  const value: unknown = option.defaultValue;
  // A description that speaks of its default already says it in words ("16383² by default").
  if (value !== undefined && (option.required || option.optional) && !/\bdefault\b/i.test(option.description)) {
    extra.push(`default ${option.defaultValueDescription ?? (Array.isArray(value) ? value.join(',') : String(value))}`);
  }
  return extra.length > 0 ? `${option.description} (${extra.join('; ')})` : option.description;
}

/**
 * Help for every command: defaults once, and below a command's own help the options of each of its
 * subcommands (`cache --help` runs `cache list` by default, so what that takes belongs there too);
 * the program's help only lists the commands.
 */
function configureHelp(command: Command): void {
  command.configureHelp({
    optionDescription,
    formatHelp: (cmd, helper) => {
      const sections = (cmd.parent ? cmd.commands : []).map((sub) => {
        const width = helper.padWidth(sub, helper);
        const items = helper.visibleOptions(sub).filter((option) => option.long !== '--help').map((option) => helper.formatItem(helper.optionTerm(option), width, helper.optionDescription(option), helper));
        return helper.formatItemList(`Options of ${cmd.name()} ${sub.name()}:`, items, helper).join('\n');
      });
      return [Help.prototype.formatHelp.call(helper, cmd, helper), ...sections.filter((section) => section !== '')].join('\n');
    },
  });
  for (const sub of command.commands) configureHelp(sub);
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

