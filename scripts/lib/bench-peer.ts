import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, inputError } from '../../src/core/errors.js';
import type { PeerTextLength } from './bench-options.js';
import { lastErrorLine, runPythonMeasured, spawnCollected } from './bench-process.js';

/**
 * The PyTorch peer: the reference harness's torch_eval.py (called by path, never copied) running the
 * same seeded model, images and prompts as clip-eval.
 */

/** Which clip_ref model an export_onnx.py folder holds: its config.json's "harness" section. */
export interface HarnessModel {
  size: string;
  seed: number;
}

export async function readHarnessModel(modelDir: string): Promise<HarnessModel | undefined> {
  const path = join(modelDir, 'config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
  const harness = typeof config === 'object' && config !== null ? (config as { harness?: unknown }).harness : undefined;
  if (typeof harness !== 'object' || harness === null) return undefined;
  const { size, seed } = harness as { size?: unknown; seed?: unknown };
  return typeof size === 'string' && Number.isInteger(seed) ? { size, seed: seed as number } : undefined;
}

/** Why the peer cannot run here, or undefined when it can. */
export async function peerUnavailable(python: string, harnessDir: string): Promise<string | undefined> {
  const script = join(harnessDir, 'torch_eval.py');
  if (!existsSync(script)) return `${script} not found (the shared reference folder beside the checkout; point --shared or CLIP_EVAL_SHARED at it)`;
  try {
    const run = await spawnCollected(python, ['-c', 'import torch, torchvision, PIL, numpy']);
    if (run.code === 0) return undefined;
    return `${python} cannot import the peer's packages (${lastErrorLine(run)}); install them as ${join(harnessDir, 'README.md')} describes`;
  } catch (error) {
    return `${python} cannot be started (${describeError(error)}); install Debian's python3-torch as ${join(harnessDir, 'README.md')} describes, or pass --python PATH`;
  }
}

/**
 * The peer's token rows. 'context' pads every row with 0 to the context length, as OpenAI's clip.tokenize
 * does (the reference way); 'longest' leaves them ragged, and torch_eval.py pads them to the longest row.
 */
export function peerTokenRows(rows: readonly number[][], length: PeerTextLength, contextLength: number): number[][] {
  if (length === 'longest') return rows.map((row) => [...row]);
  return rows.map((row) => {
    if (row.length > contextLength) throw new RangeError(`a prompt has ${row.length} tokens, more than the context length ${contextLength}`);
    return [...row, ...new Array<number>(contextLength - row.length).fill(0)];
  });
}

/** torch_eval.py's closing {"summary": …} line. */
export interface PeerSummary {
  images: number;
  classes: number;
  templates: number;
  batch: number;
  threads: number;
  torch: string;
  blas: string;
  seconds: { model_build: number; text_encode: number; preprocess: number; image_encode: number; end_to_end: number };
  images_per_second: { preprocess: number; image_encode: number; end_to_end: number };
}

/**
 * Which OpenBLAS kernels the peer runs. Debian's OpenBLAS picks them by CPU model and falls back to generic
 * SSE3 "Prescott" kernels on models it does not know (measured: 47 instead of 160 GFLOP/s on a 2048³
 * product on an AVX-512 Xeon), which would make every ratio to the peer look 2–4× better than it is.
 */
export interface PeerBlasCore {
  /** What OpenBLAS chose by itself (OPENBLAS_VERBOSE=2's "Core:" line), when it said. */
  detected?: string;
  /** OPENBLAS_CORETYPE given to the peer, if any. */
  pinned?: string;
  /** Why it was pinned, or left alone. */
  reason: string;
}

/** 'auto': pin a vector-width-appropriate core only where OpenBLAS fell back to a generic one; 'installed': never pin. */
export type PeerBlasChoice = 'auto' | 'installed' | string;

/** OpenBLAS cores that use the CPU's widest vectors: AVX-512, or AVX2 where that is the widest. */
const AVX512_CORES = ['SkylakeX', 'Cooperlake', 'SapphireRapids'];
const AVX2_CORES = ['Haswell', 'Zen', ...AVX512_CORES];

export function cpuVectorLevel(cpuinfo: string): 'avx512' | 'avx2' | undefined {
  const flags = new Set(/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? []);
  if (flags.has('avx512f')) return 'avx512';
  return flags.has('avx2') ? 'avx2' : undefined;
}

export function openBlasCoreFromVerbose(stderr: string): string | undefined {
  return /^Core:\s*(\S+)/m.exec(stderr)?.[1];
}

/** Decides OPENBLAS_CORETYPE for the peer from what OpenBLAS detected and what the CPU can do. */
export function choosePeerBlasCore(choice: PeerBlasChoice, detected: string | undefined, level: 'avx512' | 'avx2' | undefined, preset?: string): PeerBlasCore {
  const base = detected ? { detected } : {};
  if (preset) return { ...base, pinned: preset, reason: 'OPENBLAS_CORETYPE set in the environment' };
  if (choice === 'installed') return { ...base, reason: 'as installed (--peer-blas installed)' };
  if (choice !== 'auto') return { ...base, pinned: choice, reason: '--peer-blas' };
  if (!detected || !level || (level === 'avx512' ? AVX512_CORES : AVX2_CORES).includes(detected)) {
    return { ...base, reason: 'OpenBLAS chose a core that fits this CPU' };
  }
  const pinned = level === 'avx512' ? 'SkylakeX' : 'Haswell';
  return { ...base, pinned, reason: `OpenBLAS fell back to ${detected} kernels on this ${level.toUpperCase()} CPU; pinned ${pinned} so the peer runs at its potential` };
}

/** Asks the peer's Python which OpenBLAS core it loads (torch's first matrix product triggers the report). */
export async function detectPeerBlasCore(python: string): Promise<string | undefined> {
  const run = await spawnCollected(python, ['-c', 'import torch; torch.ones(2, 2) @ torch.ones(2, 2)'], {
    env: { ...process.env, OPENBLAS_VERBOSE: '2' },
  });
  return openBlasCoreFromVerbose(run.stderr);
}

export interface PeerRun {
  command: string;
  blas: PeerBlasCore;
  /** The core the peer reported using. */
  blasCoreUsed?: string;
  wallSeconds: number;
  maxRssBytes?: number;
  predictionsPath: string;
  /** Tokens per prompt the peer's text encoder ran at. */
  textLength: number;
  summary: PeerSummary;
  /** Prompts per second of its text encoder. */
  promptsPerSecond: number;
  /** Its image loop without the text side (read, preprocess, encode, score): the counterpart of a warm run. */
  warmImagesPerSecond: number;
}

export interface PeerSpec {
  python: string;
  harnessDir: string;
  model: HarnessModel;
  testBin: string;
  tokenRows: number[][];
  templates: number;
  batchSize: number;
  threads: number;
  outputDir: string;
  blas: PeerBlasCore;
}

export function parsePeerSummary(stdout: string, origin: string): PeerSummary {
  for (const line of stdout.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const parsed = JSON.parse(line) as { summary?: PeerSummary };
    if (parsed.summary) return parsed.summary;
  }
  throw inputError(`${origin}: no {"summary": …} line in its output`);
}

export async function runPeer(spec: PeerSpec): Promise<PeerRun> {
  const tokensPath = join(spec.outputDir, 'peer-tokens.json');
  const predictionsPath = join(spec.outputDir, 'peer.predictions.jsonl');
  await writeFile(tokensPath, JSON.stringify(spec.tokenRows));
  const script = join(spec.harnessDir, 'torch_eval.py');
  const args = [
    script,
    '--bin', spec.testBin,
    '--tokens', tokensPath,
    '--templates', String(spec.templates),
    '--size', spec.model.size,
    '--seed', String(spec.model.seed),
    '--batch', String(spec.batchSize),
    '--threads', String(spec.threads),
    '--out', predictionsPath,
  ];
  const env = { ...process.env, OPENBLAS_VERBOSE: '2', ...(spec.blas.pinned ? { OPENBLAS_CORETYPE: spec.blas.pinned } : {}) };
  const run = await runPythonMeasured(spec.python, args, spec.outputDir, { env });
  if (run.code !== 0) throw inputError(`the PyTorch peer failed: ${lastErrorLine(run)} (command: ${run.command})`);
  const summary = parsePeerSummary(await readFile(predictionsPath, 'utf8'), predictionsPath);
  const prompts = spec.tokenRows.length;
  const { seconds } = summary;
  const blasCoreUsed = openBlasCoreFromVerbose(run.stderr);
  return {
    command: spec.blas.pinned ? `OPENBLAS_CORETYPE=${spec.blas.pinned} ${run.command}` : run.command,
    blas: spec.blas,
    ...(blasCoreUsed ? { blasCoreUsed } : {}),
    wallSeconds: run.wallSeconds,
    ...(run.maxRssBytes !== undefined ? { maxRssBytes: run.maxRssBytes } : {}),
    predictionsPath,
    textLength: Math.max(...spec.tokenRows.map((row) => row.length)),
    summary,
    promptsPerSecond: prompts / seconds.text_encode,
    warmImagesPerSecond: summary.images / (seconds.end_to_end - seconds.text_encode),
  };
}
