import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Command } from 'commander';
import { DEFAULT_PER_CLASS } from '../scripts/lib/pattern-cifar.js';
import { buildProgram } from '../src/cli/main.js';
import { EXIT } from '../src/core/errors.js';
import { repoRoot } from './support/paths.js';

/** The README is the user's manual: these tests hold it to what the CLI really does. */
const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');

function section(heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`);
  assert.notEqual(start, -1, `README has a section "${heading}"`);
  const next = readme.indexOf('\n## ', start + heading.length + 2);
  return readme.slice(start, next === -1 ? undefined : next);
}

test('README: every command and every long flag of the CLI is documented', () => {
  const program: Command = buildProgram(() => undefined);
  const missing: string[] = [];
  for (const command of program.commands) {
    if (!readme.includes(`clip-eval ${command.name()}`)) missing.push(`command ${command.name()}`);
    for (const option of command.options) {
      const long = option.long!;
      if (long === '--version' || long === '--help') continue;
      // Documented as `--flag …` or `-f, --flag …` in a table or the text.
      if (!new RegExp(`(\`|, )${long}(?![\\w-])`).test(readme)) missing.push(`${command.name()} ${long}`);
    }
  }
  assert.deepEqual(missing, []);
});

test('README: the exit-code table lists every code the CLI uses, and says 4 is only a bug', () => {
  const exitCodes = section('## Exit codes');
  for (const code of Object.values(EXIT)) assert.match(exitCodes, new RegExp(`^\\| ${code} \\|`, 'm'), `exit code ${code}`);
  assert.match(exitCodes, /^\| 4 \|.*bug/m);
  assert.match(exitCodes, /never exit 4|never 4/i, 'says that filesystem and network conditions are never exit 4');
});

test('README: installing outside a checkout says how to skip onnxruntime-node\'s download step', () => {
  const install = section('## Install');
  assert.match(install, /ONNXRUNTIME_NODE_INSTALL=skip npm install -g clip-eval/);
});

test('README: the fixture example shows the image count the fixture really generates', () => {
  const cifar = section('## Commands');
  const example = /```text\n\$ clip-eval cifar100 --model fixture\/model[^\n]*\n([\s\S]*?)```/.exec(cifar);
  assert.ok(example, 'the cifar100 fixture example is there');
  const images = /^\s+images\s+(\d+)$/m.exec(example[1]!);
  assert.ok(images, 'the example shows an images line');
  assert.equal(Number(images[1]), 100 * DEFAULT_PER_CLASS, 'npm run fixture writes DEFAULT_PER_CLASS images per CIFAR-100 class');
});

test('--help: every default once and as a user types it; cache --help shows what cache list and cache prune take', () => {
  const program: Command = buildProgram(() => undefined);
  const commands = (command: Command): Command[] => [command, ...command.commands.flatMap(commands)];
  for (const command of commands(program)) {
    assert.doesNotMatch(command.helpInformation(), /default:? ?[["]/, `${command.name()} --help shows a default as a JavaScript value`);
    const helper = command.createHelp();
    for (const option of command.options) {
      const description = helper.optionDescription(option);
      assert.ok((description.match(/\bdefault\b/gi) ?? []).length <= 1, `${command.name()} ${option.long}: ${description}`);
    }
  }
  const cache = program.commands.find((command) => command.name() === 'cache')!.helpInformation();
  for (const flag of ['--cache-dir', '--json', '--verbose', '--older-than', '--max-size', '--dry-run']) assert.ok(cache.includes(flag), `cache --help shows ${flag}`);
});
