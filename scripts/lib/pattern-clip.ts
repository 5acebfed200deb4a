/**
 * The "pattern CLIP": a tiny, exact stand-in for a CLIP model bundle. The vision model averages each 28×28
 * block of the 224×224 input (an 8×8 grid per channel), undoes the normalisation and centres on 0.5, giving
 * a 192-d embedding; the text model sums the token embedding table's rows of its ids. Synthetic CIFAR images
 * that draw a class's summed name rows as 4×4 cells are therefore classified correctly by zero-shot CLIP.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/core/cache.js';
import { CONTEXT_LENGTH, fixtureTokenizerConfig, fixtureTokenizerJson, wordsNotSingleTokens } from './fixture-tokenizer.js';
import { encodeOnnxModel, type OnnxGraph, type OnnxNode, type OnnxValue } from './onnx-writer.js';
import {
  DEFAULT_SEED,
  EMBED_DIM,
  GRID,
  buildPatternTable,
  roundTableToInt8Levels,
  type PatternTable,
} from './pattern-table.js';

export const IMAGE_SIZE = 224;
export const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711];

export type PatternClipLayout = 'hf' | 'immich';

export interface PatternClipOptions {
  layout?: PatternClipLayout;
  seed?: number;
  /** Also write onnx/*_quantized.onnx (Hugging Face layout only); default true. */
  variants?: boolean;
}

export interface PatternClipResult {
  tokenEmbeddings: Float32Array;
  vocabSize: number;
  dim: 192;
}

interface GraphNames {
  input: string;
  output: string;
  /** Fixed sizes (Immich exports) or symbolic ones (Hugging Face exports) per input dimension. */
  inputShape: (number | string)[];
  outputShape: (number | string)[];
  /** Immich's exports return L2-normalised embeddings. */
  normalize: boolean;
}

const VISION_NAMES: Record<PatternClipLayout, GraphNames> = {
  hf: {
    input: 'pixel_values', output: 'image_embeds',
    inputShape: ['batch_size', 3, IMAGE_SIZE, IMAGE_SIZE], outputShape: ['batch_size', EMBED_DIM], normalize: false,
  },
  immich: {
    input: 'image', output: 'embedding',
    inputShape: [1, 3, IMAGE_SIZE, IMAGE_SIZE], outputShape: [1, EMBED_DIM], normalize: true,
  },
};

const TEXT_NAMES: Record<PatternClipLayout, GraphNames> = {
  hf: {
    input: 'input_ids', output: 'text_embeds',
    inputShape: ['batch_size', 'sequence_length'], outputShape: ['batch_size', EMBED_DIM], normalize: false,
  },
  immich: {
    input: 'text', output: 'embedding',
    inputShape: [1, CONTEXT_LENGTH], outputShape: [1, EMBED_DIM], normalize: true,
  },
};

/** The last node, to `output`: either the embedding itself or its L2 normalisation. */
function finalNodes(embedding: string, names: GraphNames): OnnxNode[] {
  return names.normalize
    ? [{ op: 'LpNormalization', inputs: [embedding], outputs: [names.output], attributes: { axis: { int: -1 }, p: { int: 2 } } }]
    : [{ op: 'Identity', inputs: [embedding], outputs: [names.output] }];
}

function channelConstant(name: string, values: number[]) {
  return { name, type: 'float32' as const, dims: [1, 3, 1, 1], data: Float32Array.from(values) };
}

/** pixels → AveragePool 28×28 → × std + mean − 0.5 → [N, 192] (index c·64 + y·8 + x). */
export function patternVisionGraph(layout: PatternClipLayout, mean = OPENAI_MEAN, std = OPENAI_STD): OnnxGraph {
  const names = VISION_NAMES[layout];
  const cell = IMAGE_SIZE / GRID;
  const input: OnnxValue = { name: names.input, type: 'float32', shape: names.inputShape };
  return {
    name: 'pattern_clip_vision',
    inputs: [input],
    outputs: [{ name: names.output, type: 'float32', shape: names.outputShape }],
    initializers: [
      channelConstant('std', std),
      channelConstant('mean', mean),
      { name: 'half', type: 'float32', dims: [], data: Float32Array.of(0.5) },
      { name: 'embedding_shape', type: 'int64', dims: [2], data: BigInt64Array.of(-1n, BigInt(EMBED_DIM)) },
    ],
    nodes: [
      {
        op: 'AveragePool', inputs: [names.input], outputs: ['cell_means'],
        attributes: { kernel_shape: { ints: [cell, cell] }, strides: { ints: [cell, cell] } },
      },
      { op: 'Mul', inputs: ['cell_means', 'std'], outputs: ['scaled'] },
      { op: 'Add', inputs: ['scaled', 'mean'], outputs: ['unnormalized'] },
      { op: 'Sub', inputs: ['unnormalized', 'half'], outputs: ['centred'] },
      { op: 'Reshape', inputs: ['centred', 'embedding_shape'], outputs: ['embedding_raw'] },
      ...finalNodes('embedding_raw', names),
    ],
  };
}

/** ids → Gather rows of the table → sum over the sequence → [N, 192]. */
export function patternTextGraph(layout: PatternClipLayout, tokenEmbeddings: Float32Array): OnnxGraph {
  const names = TEXT_NAMES[layout];
  const vocabSize = tokenEmbeddings.length / EMBED_DIM;
  return {
    name: 'pattern_clip_text',
    inputs: [{ name: names.input, type: layout === 'immich' ? 'int32' : 'int64', shape: names.inputShape }],
    outputs: [{ name: names.output, type: 'float32', shape: names.outputShape }],
    initializers: [
      { name: 'token_embedding', type: 'float32', dims: [vocabSize, EMBED_DIM], data: tokenEmbeddings },
      { name: 'sequence_axis', type: 'int64', dims: [1], data: BigInt64Array.of(1n) },
    ],
    nodes: [
      { op: 'Gather', inputs: ['token_embedding', names.input], outputs: ['token_rows'], attributes: { axis: { int: 0 } } },
      { op: 'ReduceSum', inputs: ['token_rows', 'sequence_axis'], outputs: ['embedding_raw'], attributes: { keepdims: { int: 0 } } },
      ...finalNodes('embedding_raw', names),
    ],
  };
}

/** Per-channel constants rounded to 1/255 steps, so the int8 variant's vision output differs slightly. */
function roundToByteLevels(values: number[]): number[] {
  return values.map((value) => Math.round(value * 255) / 255);
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function huggingFaceFiles(table: PatternTable, seed: number, variants: boolean): Record<string, Uint8Array | string> {
  const { vocabulary, tokenEmbeddings, vocabSize } = table;
  const files: Record<string, Uint8Array | string> = {
    'onnx/vision_model.onnx': encodeOnnxModel(patternVisionGraph('hf')),
    'onnx/text_model.onnx': encodeOnnxModel(patternTextGraph('hf', tokenEmbeddings)),
    'tokenizer.json': json(fixtureTokenizerJson(vocabulary)),
    'tokenizer_config.json': json(fixtureTokenizerConfig()),
    'preprocessor_config.json': json({
      crop_size: IMAGE_SIZE,
      do_center_crop: true,
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: OPENAI_MEAN,
      image_processor_type: 'CLIPImageProcessor',
      image_std: OPENAI_STD,
      resample: 3,
      rescale_factor: 1 / 255,
      size: { shortest_edge: IMAGE_SIZE },
    }),
    'config.json': json({
      architectures: ['CLIPModel'],
      model_type: 'clip',
      projection_dim: EMBED_DIM,
      logit_scale_init_value: 2.6592,
      text_config: {
        model_type: 'clip_text_model',
        vocab_size: vocabSize,
        hidden_size: EMBED_DIM,
        projection_dim: EMBED_DIM,
        max_position_embeddings: CONTEXT_LENGTH,
        num_hidden_layers: 0,
        bos_token_id: vocabulary.startOfTextId,
        eos_token_id: vocabulary.endOfTextId,
        pad_token_id: vocabulary.endOfTextId,
      },
      vision_config: {
        model_type: 'clip_vision_model',
        image_size: IMAGE_SIZE,
        patch_size: IMAGE_SIZE / GRID,
        num_channels: 3,
        hidden_size: EMBED_DIM,
        projection_dim: EMBED_DIM,
        num_hidden_layers: 0,
      },
      pattern_clip: { seed },
    }),
  };
  if (variants) {
    files['onnx/vision_model_quantized.onnx'] = encodeOnnxModel(
      patternVisionGraph('hf', roundToByteLevels(OPENAI_MEAN), roundToByteLevels(OPENAI_STD)),
    );
    files['onnx/text_model_quantized.onnx'] = encodeOnnxModel(patternTextGraph('hf', roundTableToInt8Levels(tokenEmbeddings)));
  }
  return files;
}

function immichFiles(table: PatternTable): Record<string, Uint8Array | string> {
  const { vocabulary, tokenEmbeddings, vocabSize } = table;
  return {
    'visual/model.onnx': encodeOnnxModel(patternVisionGraph('immich')),
    'visual/preprocess_cfg.json': json({
      size: [IMAGE_SIZE, IMAGE_SIZE],
      mode: 'RGB',
      mean: OPENAI_MEAN,
      std: OPENAI_STD,
      interpolation: 'bicubic',
      resize_mode: 'shortest',
      fill_color: 0,
    }),
    'textual/model.onnx': encodeOnnxModel(patternTextGraph('immich', tokenEmbeddings)),
    'textual/tokenizer.json': json(fixtureTokenizerJson(vocabulary)),
    'textual/tokenizer_config.json': json(fixtureTokenizerConfig()),
    'config.json': json({
      embed_dim: EMBED_DIM,
      vision_cfg: { image_size: IMAGE_SIZE, patch_size: IMAGE_SIZE / GRID, width: EMBED_DIM, layers: 0 },
      text_cfg: { context_length: CONTEXT_LENGTH, vocab_size: vocabSize, width: EMBED_DIM, heads: 1, layers: 0 },
    }),
  };
}

/** Writes the pattern CLIP bundle into `dir` (created if needed) and returns its token table. */
export async function writePatternClip(dir: string, options: PatternClipOptions = {}): Promise<PatternClipResult> {
  const { layout = 'hf', seed = DEFAULT_SEED, variants = true } = options;
  if (layout !== 'hf' && layout !== 'immich') throw new RangeError(`layout "${String(layout)}" is not hf or immich`);
  const table = buildPatternTable(seed);
  const failures = wordsNotSingleTokens(table.vocabulary);
  if (failures.length > 0) throw new Error(`fixture tokenizer splits these words: ${failures.join(', ')}`);
  const files = layout === 'hf' ? huggingFaceFiles(table, seed, variants) : immichFiles(table);
  for (const [relativePath, content] of Object.entries(files)) {
    await writeFileAtomic(join(dir, relativePath), content);
  }
  return { tokenEmbeddings: table.tokenEmbeddings, vocabSize: table.vocabSize, dim: EMBED_DIM };
}
