import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseVariant, resolveModelBundle } from '../src/model/bundle.js';
import { createImageEncoder, createTextEncoder } from '../src/model/encoders.js';
import { OPENAI_PREPROCESS } from '../src/preprocess/config.js';
import { writePatternClip } from '../scripts/lib/pattern-clip.js';
import { makeTempDir } from './support/paths.js';
import { isClipEvalError } from './support/errors.js';

let dir: string;
let hf: string;
let immich: string;
let cacheRoot: string;

before(async () => {
  dir = await makeTempDir('clip-eval-bundle-');
  hf = join(dir, 'hf');
  immich = join(dir, 'immich');
  cacheRoot = join(dir, 'cache');
  await writePatternClip(hf, { layout: 'hf' });
  await writePatternClip(immich, { layout: 'immich' });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a Hugging Face folder: layout, files, preprocessing and context length from its configs', async () => {
  const bundle = await resolveModelBundle({ model: hf, cacheRoot });
  assert.equal(bundle.layout, 'huggingface');
  assert.equal(bundle.variant, 'fp32');
  assert.equal(bundle.id, hf);
  assert.equal(bundle.visionModelPath, join(hf, 'onnx', 'vision_model.onnx'));
  assert.equal(bundle.textModelPath, join(hf, 'onnx', 'text_model.onnx'));
  assert.equal(bundle.tokenizerPath, join(hf, 'tokenizer.json'));
  assert.equal(bundle.tokenizerConfigPath, join(hf, 'tokenizer_config.json'));
  assert.equal(bundle.embeddingsNormalised, false);
  assert.equal(bundle.contextLength, 77);
  assert.deepEqual(bundle.preprocess, { ...OPENAI_PREPROCESS });
});

test('an immich folder: its own file names, normalised embeddings, OpenCLIP preprocessing', async () => {
  const bundle = await resolveModelBundle({ model: immich, cacheRoot });
  assert.equal(bundle.layout, 'immich');
  assert.equal(bundle.visionModelPath, join(immich, 'visual', 'model.onnx'));
  assert.equal(bundle.textModelPath, join(immich, 'textual', 'model.onnx'));
  assert.equal(bundle.tokenizerPath, join(immich, 'textual', 'tokenizer.json'));
  assert.equal(bundle.embeddingsNormalised, true);
  assert.equal(bundle.preprocess.imageSize, 224);

  // The encoders see immich's fixed batch of 1 and int32 ids [1,77].
  const image = await createImageEncoder(bundle, { device: 'cpu', threads: 1 });
  const text = await createTextEncoder(bundle, { device: 'cpu', threads: 1, padId: 0, padding: 'longest' });
  try {
    assert.equal(image.fixedBatch, 1);
    assert.equal(image.embeddingDim, 192);
    assert.equal(text.contextLength, 77);
    assert.match(text.describe(), /text int32 \[1,77\] → embedding float32 \[1,192\] \(unit length from the model/);
  } finally {
    await Promise.all([image.release(), text.release()]);
  }
});

test('variants: int8 picks the _quantized files; a missing variant names the file and what is there', async () => {
  const int8 = await resolveModelBundle({ model: hf, variant: 'int8', cacheRoot });
  assert.equal(int8.variant, 'int8');
  assert.equal(int8.visionModelPath, join(hf, 'onnx', 'vision_model_quantized.onnx'));
  assert.equal(int8.textModelPath, join(hf, 'onnx', 'text_model_quantized.onnx'));

  await assert.rejects(
    resolveModelBundle({ model: hf, variant: 'fp16', cacheRoot }),
    isClipEvalError(/^variant fp16: .*\/hf has no onnx\/vision_model_fp16\.onnx \(variants there: fp32, int8\)$/),
  );
  await assert.rejects(
    resolveModelBundle({ model: immich, variant: 'int8', cacheRoot }),
    isClipEvalError(/^variant int8: .*\/immich has the immich layout, which has fp32 models only$/),
  );
  assert.equal(parseVariant('fp16'), 'fp16');
  assert.throws(() => parseVariant('q4'), isClipEvalError(/^variant: unknown variant "q4"; use fp32, fp16 or int8$/));
});

test('only what the run needs: a text-only run of a folder without vision files', async () => {
  const textOnly = join(dir, 'text-only');
  await mkdir(join(textOnly, 'onnx'), { recursive: true });
  await writeFile(join(textOnly, 'onnx', 'text_model.onnx'), '');
  await writeFile(join(textOnly, 'tokenizer.json'), '{}');
  const bundle = await resolveModelBundle({ model: textOnly, cacheRoot, needVision: false });
  assert.equal(bundle.layout, 'huggingface');
  assert.equal(bundle.visionModelPath, '');
  assert.equal(bundle.tokenizerConfigPath, undefined);
  await assert.rejects(resolveModelBundle({ model: textOnly, cacheRoot }), isClipEvalError(/no recognised model layout/));

  await rm(join(textOnly, 'tokenizer.json'));
  await assert.rejects(resolveModelBundle({ model: textOnly, cacheRoot, needVision: false }), isClipEvalError(/text-only: tokenizer\.json is missing$/));
});

test('a folder without a known layout lists what was looked for', async () => {
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(
    resolveModelBundle({ model: empty, cacheRoot }),
    isClipEvalError(
      /empty: no recognised model layout \(looked for onnx\/vision_model\.onnx \(Hugging Face\) and visual\/model\.onnx \(immich\)\); or give the model files one by one \(vision model, text model, tokenizer\)$/,
    ),
  );
  await assert.rejects(resolveModelBundle({ model: join(hf, 'config.json'), cacheRoot }), isClipEvalError(/config\.json: is a file; give a model folder or hub id/));
  await assert.rejects(resolveModelBundle({ model: './no/such/folder', cacheRoot }), isClipEvalError(/no such folder, and not a hub id/));
});

test('a bad config.json is reported with its path', async () => {
  const broken = join(dir, 'broken-config');
  await writePatternClip(broken, { layout: 'hf', variants: false });
  await writeFile(join(broken, 'config.json'), JSON.stringify({ text_config: { max_position_embeddings: 'long' } }));
  await assert.rejects(resolveModelBundle({ model: broken, cacheRoot }), isClipEvalError(/config\.json: the text context length should be a whole number from 2 to 8192, got "long"/));
  await writeFile(join(broken, 'config.json'), JSON.stringify({ text_config: { max_position_embeddings: 1e9 } }));
  await assert.rejects(resolveModelBundle({ model: broken, cacheRoot }), isClipEvalError(/broken-config\/config\.json: the text context length should be a whole number from 2 to 8192, got 1000000000/));
  await writeFile(join(broken, 'config.json'), JSON.stringify({ text_config: { max_position_embeddings: 8192 } }));
  assert.equal((await resolveModelBundle({ model: broken, cacheRoot })).contextLength, 8192);
  await writeFile(join(broken, 'config.json'), '{ not json');
  await assert.rejects(resolveModelBundle({ model: broken, cacheRoot }), isClipEvalError(/config\.json: cannot read it as JSON/));
});

test('explicit files: OpenAI preprocessing, the tokenizer config beside tokenizer.json, clear flag errors', async () => {
  const files = {
    visionModel: join(hf, 'onnx', 'vision_model.onnx'),
    textModel: join(immich, 'textual', 'model.onnx'),
    tokenizer: join(hf, 'tokenizer.json'),
  };
  const bundle = await resolveModelBundle({ ...files, cacheRoot });
  assert.equal(bundle.layout, 'files');
  assert.equal(bundle.visionModelPath, files.visionModel);
  assert.equal(bundle.textModelPath, files.textModel);
  assert.equal(bundle.tokenizerConfigPath, join(hf, 'tokenizer_config.json'));
  assert.deepEqual(bundle.preprocess, OPENAI_PREPROCESS);
  assert.equal(bundle.contextLength, 77);

  const textOnly = await resolveModelBundle({ textModel: files.textModel, tokenizer: files.tokenizer, cacheRoot, needVision: false });
  assert.equal(textOnly.visionModelPath, '');

  await assert.rejects(resolveModelBundle({ textModel: files.textModel, tokenizer: files.tokenizer, cacheRoot }), isClipEvalError(/^vision model file: is needed for the image encoder/));
  await assert.rejects(resolveModelBundle({ ...files, textModel: join(dir, 'nope.onnx'), cacheRoot }), isClipEvalError(/^text model file .*nope\.onnx: no such file$/));
  await assert.rejects(resolveModelBundle({ ...files, model: hf, cacheRoot }), isClipEvalError(/^model: a model and its files are both given; give either a model or its files$/));
});
