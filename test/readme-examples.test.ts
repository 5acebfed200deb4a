import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, runScript } from './support/cli.js';
import { makeTempDir, repoRoot } from './support/paths.js';

/**
 * The README's examples, run as printed: every code block of `$ clip-eval …` commands on the fixture
 * (`npm run fixture -- --out fixture --examples`) is run from the folder holding `fixture/`, each block
 * with a cache of its own, and must print what the block shows, timings aside.
 */

interface Example {
  command: string;
  expected: string[];
}

const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');

/** Blocks whose every line starting `$ ` is a clip-eval command on fixture inputs, with nothing elided. */
function exampleBlocks(): Example[][] {
  const blocks: Example[][] = [];
  for (const [, body] of readme.matchAll(/```(?:text|console)\n([\s\S]*?)```/g)) {
    const lines = body!.replace(/\n$/, '').split('\n');
    if (!lines[0]!.startsWith('$ clip-eval ')) continue;
    const commands = lines.filter((line) => line.startsWith('$ '));
    if (commands.some((line) => !line.startsWith('$ clip-eval ') || !line.includes('fixture/') || line.includes('…'))) continue;
    const examples: Example[] = [];
    for (const line of lines) {
      if (line.startsWith('$ ')) examples.push({ command: line.slice(2), expected: [] });
      else examples.at(-1)!.expected.push(line);
    }
    blocks.push(examples);
  }
  return blocks;
}

/** The words of a command line as a shell splits them (double quotes only: all the README uses). */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2]!);
}

/** Timings and rates differ from run to run: compare them as placeholders. */
function withoutTimings(line: string): string {
  return line.replace(/\d+(?:\.\d+)?( s\b| images\/s| prompts\/s)/g, 'N$1');
}

function trimEnd(lines: string[]): string[] {
  const kept = [...lines];
  while (kept.length > 0 && kept.at(-1) === '') kept.pop();
  return kept;
}

let root: string;

before(async () => {
  root = await makeTempDir('clip-eval-readme-');
  const made = await runScript(join(repoRoot, 'dist/scripts/make-pattern-clip.js'), ['--out', 'fixture', '--examples'], { cwd: root });
  assert.equal(made.code, 0, made.stderr);
});

after(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

test('README: the example blocks on the fixture are found (classify, search, retrieval, cifar100)', () => {
  const commands = exampleBlocks().flat().map((example) => words(example.command)[1]);
  for (const command of ['classify', 'search', 'retrieval', 'cifar100']) assert.ok(commands.includes(command), `an example of ${command}`);
});

test('README: every example on the fixture prints what the README shows', { timeout: 300_000 }, async () => {
  for (const [index, block] of exampleBlocks().entries()) {
    const cache = join(root, `cache-${index}`);
    for (const { command, expected } of block) {
      const run = await runCli(words(command).slice(1), { cwd: root, env: { CLIP_EVAL_CACHE: cache } });
      const errors = expected.filter((line) => line.startsWith('clip-eval: '));
      const output = expected.filter((line) => !line.startsWith('clip-eval: '));
      assert.deepEqual(trimEnd(run.stdout.split('\n')).map(withoutTimings), trimEnd(output).map(withoutTimings), `stdout of: ${command}`);
      const stderrErrors = run.stderr.split('\n').filter((line) => line.startsWith('clip-eval: '));
      // A block may leave out stderr (the --json examples); where it shows its lines, they are the whole of it.
      if (errors.length > 0) assert.deepEqual(stderrErrors, errors, `clip-eval: lines of: ${command}`);
      assert.equal(run.code, stderrErrors.length > 0 ? 3 : 0, `exit code of: ${command}\n${run.stderr}`);
    }
  }
});
