import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'node:test';
import { writePatternClip } from '../scripts/lib/pattern-clip.js';
import { runCli } from './support/cli.js';
import { startTestServer } from './support/http-server.js';
import { makeTempDir, needsShared, sharedPath } from './support/paths.js';

const SOT = 49406;
const EOT = 49407;

interface Case {
  text: string;
  ids: number[];
}

for (const vocabulary of ['clip-tokenizer/tokenizer.json', 'clip-tokenizer/bpe_simple_vocab_16e6.txt.gz']) {
  test(`clip-eval tokenize matches OpenAI on all reference cases through ${vocabulary}`, { skip: needsShared('reference/tokenizer-cases.json') || needsShared(vocabulary) }, async () => {
    const cases = JSON.parse(await readFile(sharedPath('reference/tokenizer-cases.json'), 'utf8')) as Case[];
    assert.equal(cases.length, 1488);
    // Texts may hold newlines, so they go as arguments; a large context length turns truncation off.
    const run = await runCli(['tokenize', '--tokenizer', sharedPath(vocabulary), '--context-length', '100000', ...cases.map((c) => c.text)]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, cases.length);
    const mismatches = cases.filter((c, i) => lines[i] !== JSON.stringify([SOT, ...c.ids, EOT]));
    assert.deepEqual(mismatches.slice(0, 3), []);
  });
}

test('clip-eval tokenize reads standard input, one text per line, and truncates to 77 with EOT last', { skip: needsShared('reference/cifar100-prompts.json') }, async () => {
  const prompts = JSON.parse(await readFile(sharedPath('reference/cifar100-prompts.json'), 'utf8')) as { classes: string[]; single: number[][] };
  const input = `${prompts.classes.map((name) => `a photo of a ${name}.`).join('\n')}\n`;
  const run = await runCli(['tokenize', '--tokenizer', sharedPath('clip-tokenizer/tokenizer.json')], { input });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.trim().split('\n').map((line) => JSON.parse(line) as number[]), prompts.single);

  const long = await runCli(['tokenize', '--tokenizer', sharedPath('clip-tokenizer/tokenizer.json'), 'word '.repeat(200)]);
  const ids = JSON.parse(long.stdout) as number[];
  assert.equal(ids.length, 77);
  assert.equal(ids[0], SOT);
  assert.equal(ids[76], EOT);
});

test('clip-eval tokenize: a missing tokenizer file is one clear line and exit 3', async () => {
  const run = await runCli(['tokenize', '--tokenizer', '/nonexistent/tokenizer.json', 'hello']);
  assert.equal(run.code, 3);
  assert.match(run.stderr, /^clip-eval: .*\/nonexistent\/tokenizer\.json/);
  assert.equal(run.stderr.trim().split('\n').length, 1);
});

test('clip-eval tokenize --model fetches only the tokenizer files, then works --offline from that cache', async () => {
  const dir = await makeTempDir('clip-eval-tokenize-');
  const hub = await startTestServer();
  try {
    const model = join(dir, 'model');
    await writePatternClip(model, { variants: false });
    const files = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'onnx/vision_model.onnx', 'onnx/text_model.onnx'];
    for (const path of files) await hub.route(`/org/name/resolve/main/${path}`, { file: join(model, path) });
    const cache = join(dir, 'cache');
    const args = ['tokenize', '--model', 'org/name', '--cache-dir', cache, '--quiet', 'apple'];
    const online = await runCli(args, { env: { HF_ENDPOINT: hub.origin } });
    assert.equal(online.code, 0, online.stderr);
    assert.deepEqual(hub.requests.filter((request) => request.path.includes('/onnx/')), [], 'no model file is asked for');
    const cached = await readdir(cache, { recursive: true });
    assert.ok(!cached.some((path) => path.endsWith('.onnx')), cached.join(', '));

    const offline = await runCli([...args, '--offline'], { env: { HF_ENDPOINT: 'http://127.0.0.1:9' } });
    assert.equal(offline.code, 0, offline.stderr);
    assert.equal(offline.stdout, online.stdout);

    // A local folder with the tokenizer and no ONNX files is enough too.
    await rm(join(model, 'onnx'), { recursive: true });
    const folder = await runCli(['tokenize', '--model', model, '--quiet', 'apple']);
    assert.equal(folder.code, 0, folder.stderr);
    assert.equal(folder.stdout, online.stdout);
  } finally {
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});
