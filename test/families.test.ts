import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ClipEvalError, EXIT } from '../src/core/errors.js';
import { CIFAR100_CLEAN_NAMES } from '../src/datasets/cifar/class-names.js';
import { FAMILIES, bundleFamily, familyNamed, probabilityHead } from '../src/families/registry.js';
import { readLogitHead } from '../src/model/logit-head.js';
import { encodeOnnxModel } from '../scripts/lib/onnx-writer.js';
import type { ModelBundle } from '../src/model/bundle.js';
import { OPENAI_PREPROCESS } from '../src/preprocess/config.js';
import { canonicalizeText } from '../src/text/canonicalize.js';
import { OPENAI_CIFAR_TEMPLATES } from '../src/text/templates.js';
import { runCli } from './support/cli.js';
import { collectingLogger } from './support/log.js';
import { makeTempDir, needsPython, needsShared, REFERENCE_PYTHON, sharedPath } from './support/paths.js';

/**
 * The family seam: detection from a bundle's own files, SigLIP's canonicalize rule against open_clip's
 * (the harness's siglip_text.py), and every family's encoder rows against sentencepiece's own ids.
 */
const HARNESS = 'reference/harness';
const sentencepieceMissing =
  needsShared(`${HARNESS}/spm_tokenizer.py`) ||
  needsPython('import sentencepiece; from sentencepiece import sentencepiece_model_pb2', 'sentencepiece (apt-get install python3-sentencepiece python3-protobuf)');

/** Texts that ftfy leaves as they are (the harness's rule has no ftfy; clip-eval's, as open_clip's, does). */
const TEXTS = [
  'a photo of a cat.',
  'A PHOTO OF 2 DOGS!',
  'a photo of a golden_retriever, the (large) one.',
  'dog_house, 3 apples &amp; 2 pears.',
  '  lots   of\tspace\nand lines\r\n',
  '"quoted" [brackets] {braces} <angle> @at #hash $dollar %percent ^caret `tick` ~tilde |pipe \\back /slash',
  'Straße café naïve résumé über jalapeño',
  '東京 タワー 👍 🐱',
  'x'.repeat(300),
  Array.from({ length: 80 }, (_, i) => `word${i}`).join(' '),
  '',
  '...',
  'a photo of a {}.',
  'itap of a maple_tree.',
];

function bundleWith(files: { modelType?: string; tokenizerConfigPath?: string; openClipText?: ModelBundle['openClipText'] }): ModelBundle {
  return {
    id: 'bundle',
    layout: 'huggingface',
    variant: 'fp32',
    visionModelPath: '',
    textModelPath: '',
    tokenizerPath: 'tokenizer.json',
    preprocess: OPENAI_PREPROCESS,
    embeddingsNormalised: false,
    contextLength: 64,
    ...files,
  };
}

let dir: string;

before(async () => {
  dir = await makeTempDir('clip-eval-families-');
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('families: detected from config.json model_type and tokenizer_config.json tokenizer_class', async () => {
  const detect = async (modelType: string | undefined, tokenizerClass: string | undefined) => {
    let tokenizerConfigPath: string | undefined;
    if (tokenizerClass !== undefined) {
      tokenizerConfigPath = join(dir, `${tokenizerClass}.json`);
      await writeFile(tokenizerConfigPath, JSON.stringify({ tokenizer_class: tokenizerClass }));
    }
    const bundle = bundleWith({ ...(modelType ? { modelType } : {}), ...(tokenizerConfigPath ? { tokenizerConfigPath } : {}) });
    return (await bundleFamily(bundle)).family.name;
  };
  assert.equal(await detect(undefined, undefined), 'clip');
  assert.equal(await detect('clip', 'CLIPTokenizer'), 'clip');
  assert.equal(await detect('clip', 'CLIPTokenizerFast'), 'clip');
  assert.equal(await detect('mobileclip', 'CLIPTokenizer'), 'clip');
  assert.equal(await detect('siglip', 'SiglipTokenizer'), 'siglip');
  assert.equal(await detect('siglip', undefined), 'siglip');
  assert.equal(await detect('siglip', 'GemmaTokenizer'), 'siglip2');
  assert.equal(await detect('siglip', 'GemmaTokenizerFast'), 'siglip2');
  await assert.rejects(detect('bert', 'BertTokenizer'), (error: unknown) => {
    assert.ok(error instanceof ClipEvalError);
    assert.equal(error.exitCode, EXIT.input);
    assert.match(error.message, /bundle: no known model family has model_type "bert" and tokenizer_class "BertTokenizer"/);
    return true;
  });
  // immich's open_clip configs: text_cfg.tokenizer_kwargs.clean says SigLIP, its hf_tokenizer_name SigLIP 2.
  const openClip = async (clean: string, hfTokenizerName: string) => (await bundleFamily(bundleWith({ openClipText: { clean, hfTokenizerName } }))).family.name;
  assert.equal(await openClip('canonicalize', 'timm/ViT-B-16-SigLIP'), 'siglip');
  assert.equal(await openClip('canonicalize', 'timm/ViT-B-16-SigLIP2'), 'siglip2');
  assert.equal(await openClip('whitespace', 'openai/clip'), 'clip');
  // A chosen family wins over the files.
  assert.equal((await bundleFamily(bundleWith({ modelType: 'clip' }), 'siglip2')).family.name, 'siglip2');
  assert.throws(() => familyNamed('eva'), (error: unknown) => error instanceof ClipEvalError && error.exitCode === EXIT.usage && /unknown model family "eva"; use clip, siglip, siglip2/.test(error.message));
  assert.deepEqual(FAMILIES.map((family) => family.name), ['clip', 'siglip', 'siglip2']);
});

test("canonicalizeText is open_clip's canonicalize_text(basic_clean(text)) on every text", { skip: needsShared(`${HARNESS}/siglip_text.py`) }, () => {
  const script = `import json, sys\nsys.path.insert(0, sys.argv[1])\nimport siglip_text\nprint(json.dumps([siglip_text.canonicalize_text(siglip_text.basic_clean(t)) for t in json.loads(sys.stdin.read())]))`;
  const run = spawnSync(REFERENCE_PYTHON, ['-c', script, sharedPath(HARNESS)], { input: JSON.stringify(TEXTS), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(TEXTS.map(canonicalizeText), JSON.parse(run.stdout) as string[]);
  assert.equal(canonicalizeText('A photo of a Golden_Retriever!'), 'a photo of a golden retriever');
});

for (const family of ['siglip', 'siglip2'] as const) {
  test(`${family}: clip-eval tokenize --encoder-input gives sentencepiece's 64-id rows (text rule, EOS, pad id, truncation)`, { skip: sentencepieceMissing, timeout: 120_000 }, async () => {
    const work = join(dir, family);
    await mkdir(work, { recursive: true });
    const corpus = [...CIFAR100_CLEAN_NAMES.flatMap((name) => OPENAI_CIFAR_TEMPLATES.map((template) => template.replace('{}', name))), ...TEXTS];
    await writeFile(join(work, 'corpus.txt'), `${corpus.join('\n')}\n`);
    const spm = sharedPath(`${HARNESS}/spm_tokenizer.py`);
    const python = (...args: string[]) => {
      const run = spawnSync(REFERENCE_PYTHON, [spm, ...args], { encoding: 'utf8', cwd: work });
      assert.equal(run.status, 0, run.stderr);
      return run.stdout;
    };
    python('train', '--family', family, '--corpus', 'corpus.txt', '--vocab-size', family === 'siglip' ? '200' : '400', '--out', 'spm');
    python('convert', 'spm.model', '--out', 'tokenizer.json');
    const expected = python('encode', 'spm.model', '--family', family, ...TEXTS).trim().split('\n').map((line) => JSON.parse(line) as number[]);
    const run = await runCli(['tokenize', '--tokenizer', join(work, 'tokenizer.json'), '--family', family, '--context-length', '64', '--encoder-input', ...TEXTS]);
    assert.equal(run.code, 0, run.stderr);
    const rows = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as number[]);
    assert.equal(rows.length, TEXTS.length);
    rows.forEach((row, i) => assert.deepEqual(row, expected[i], `row of ${JSON.stringify(TEXTS[i])}`));
    // The padding is the family's: SigLIP pads with its EOS (1), SigLIP 2 with <pad> (0), whatever a
    // tokenizer_config.json names (a T5 config says <pad>).
    assert.equal(rows[0]!.at(-1), family === 'siglip' ? 1 : 0);
    const tokenizer = await familyNamed(family).loadTokenizer(join(work, 'tokenizer.json'), { padToken: family === 'siglip' ? '<pad>' : '<eos>' });
    assert.equal(tokenizer.padId, family === 'siglip' ? 1 : 0);
  });
}

test("a sigmoid family's learned head is read from onnx/model.onnx; without it classify says its probabilities are a softmax", async () => {
  const onnx = join(dir, 'head', 'onnx');
  await mkdir(onnx, { recursive: true });
  const graph = (initializers: { name: string; value: number }[]) =>
    encodeOnnxModel({
      name: 'full',
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', type: 'float32', shape: [1] }],
      outputs: [{ name: 'y', type: 'float32', shape: [1] }],
      initializers: initializers.map(({ name, value }) => ({ name, type: 'float32', dims: [1], data: Float32Array.of(value) })),
    });
  await writeFile(join(onnx, 'model.onnx'), graph([{ name: 'logit_scale', value: Math.log(10) }, { name: 'logit_bias', value: -2 }]));
  const head = await readLogitHead(join(onnx, 'model.onnx'));
  assert.ok(head && Math.abs(head.scale - 10) < 1e-5 && head.bias === -2);
  const bundle = { ...bundleWith({ modelType: 'siglip' }), visionModelPath: join(onnx, 'vision_model.onnx') };
  const { logger, lines } = collectingLogger();
  const sigmoid = await probabilityHead(bundle, 'siglip', logger);
  assert.equal(sigmoid.kind, 'sigmoid');
  assert.deepEqual(lines, []);
  assert.deepEqual(await probabilityHead(bundle, 'clip', logger), { kind: 'softmax' });

  await writeFile(join(onnx, 'model.onnx'), graph([{ name: 'other', value: 1 }]));
  assert.equal(await readLogitHead(join(onnx, 'model.onnx')), undefined);
  await rm(join(onnx, 'model.onnx'));
  assert.deepEqual(await probabilityHead(bundle, 'siglip2', logger), { kind: 'softmax' });
  assert.match(lines.join(''), /no .*model\.onnx, where SigLIP 2 .*learned logit scale and bias are kept: probabilities are a softmax over 100 · cosine/);
  await writeFile(join(onnx, 'model.onnx'), 'not protobuf at all, just text');
  await assert.rejects(readLogitHead(join(onnx, 'model.onnx')), (error: unknown) => error instanceof ClipEvalError && error.exitCode === EXIT.input);
});

test('--family chooses the family on every command; an unknown one is a usage error naming the flag', async () => {
  const run = await runCli(['eval', dir, '--family', 'eva', '--quiet']);
  assert.equal(run.code, EXIT.usage);
  assert.match(run.stderr, /^clip-eval: .*--family eva: unknown model family "eva"; use clip, siglip, siglip2\n$/);
  for (const command of [['classify', 'x.png'], ['retrieval', 'c.csv'], ['search', 'a cat', 'x.png']]) {
    const refused = await runCli([...command, '--family', 'eva', '--quiet']);
    assert.equal(refused.code, EXIT.usage, `${command[0]}: ${refused.stderr}`);
  }
});
