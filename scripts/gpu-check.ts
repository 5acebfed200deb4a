/**
 * The GPU check (issue #14): on a machine with a GPU and PyTorch but no Node and no network, run from
 * the pack that scripts/gpu-pack.sh builds (scripts/gpu-check.sh unpacks it and starts this script).
 * Exports the harness's seeded model with PyTorch, writes synthetic CIFAR-100 images, then runs
 * clip-eval on each device (a cold and a warm run), the PyTorch peer on CUDA (plain and float16
 * autocast), and a clip-eval CPU run on the first images as the reference every top-1 agreement is
 * measured against. Every step has a time limit; a step that fails keeps its error in the table and the
 * check goes on. Prints one table; writes it, a JSON copy and every step's log under --out.
 *
 *   node dist/scripts/gpu-check.js --harness DIR --tokenizer-dir DIR --out DIR [--python PATH]
 *        [--images N] [--cpu-images N] [--size b32|tiny] [--batch-size N] [--devices LIST]
 *        [--peer-devices LIST] [--budget-seconds S]
 */
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { ClipEvalError, describeError, EXIT, usageError } from '../src/core/errors.js';
import { silentLogger } from '../src/core/log.js';
import { wordError } from '../src/cli/wording.js';
import { loadCifarTestSet } from '../src/datasets/cifar/cifar.js';
import { CIFAR100_COARSE_NAMES, CIFAR100_RAW_NAMES } from '../src/datasets/cifar/class-names.js';
import { resolveModelBundle } from '../src/model/bundle.js';
import { parseDevice, type Device } from '../src/model/session.js';
import { OPENAI_CIFAR_TEMPLATES } from '../src/text/templates.js';
import type { EvaluationReport } from '../src/tasks/zero-shot/result.js';
import { promptTokenRows } from './bench.js';
import { compareTop5, readTop5Lines, type Agreement } from './lib/bench-agreement.js';
import { CIFAR100_RECORD_BYTES } from './lib/bench-data.js';
import { benchRepoRoot } from './lib/bench-options.js';
import { parsePeerSummary, peerTokenRows } from './lib/bench-peer.js';
import { formatColumns, runStep, sampleGpuMemory, type GpuMemoryReading, type StepRun } from './lib/gpu-check-steps.js';

/** The peer's runs: torch on CUDA, with float16 autocast (CLIP_benchmark's default), or on the CPU. */
export type PeerDevice = 'cuda' | 'cuda-amp' | 'cpu';
const PEER_DEVICES: readonly PeerDevice[] = ['cuda', 'cuda-amp', 'cpu'];

export interface GpuCheckOptions {
  /** The project (bin/, dist/, node_modules/): the checkout, or the unpacked pack. */
  root: string;
  harness: string;
  tokenizerDir: string;
  out: string;
  python: string;
  images: number;
  cpuImages: number;
  size: string;
  batchSize: number;
  devices: Device[];
  peerDevices: PeerDevice[];
  budgetSeconds: number;
}

export const GPU_CHECK_USAGE =
  'usage: node dist/scripts/gpu-check.js --harness DIR --tokenizer-dir DIR --out DIR [--python PATH] [--images N] [--cpu-images N] ' +
  '[--size b32|tiny] [--batch-size N] [--devices webgpu,cuda] [--peer-devices cuda,cuda-amp] [--budget-seconds S]';

/** Time limits of the steps, in seconds: each also ends where the whole check's budget does. */
const LIMITS = { probe: 20, export: 240, data: 90, cpuReference: 180, deviceRun: 150, peer: 150 };
/** A step with less than this left of the budget is skipped rather than started to be killed. */
const MIN_STEP_SECONDS = 10;
const DATA_SEED = 1;
const MODEL_SEED = 0;

function wholeNumber(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw usageError(`--${flag} ${text}: expected a whole number of at least ${min}`);
  return Number(text);
}

function list<T extends string>(text: string, parse: (item: string) => T): T[] {
  return text === '' ? [] : [...new Set(text.split(',').map((item) => item.trim()))].map(parse);
}

export function parseGpuCheckArguments(argv: string[]): GpuCheckOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        root: { type: 'string' },
        harness: { type: 'string' },
        'tokenizer-dir': { type: 'string' },
        out: { type: 'string' },
        python: { type: 'string' },
        images: { type: 'string' },
        'cpu-images': { type: 'string' },
        size: { type: 'string' },
        'batch-size': { type: 'string' },
        devices: { type: 'string' },
        'peer-devices': { type: 'string' },
        'budget-seconds': { type: 'string' },
      },
    }));
  } catch (error) {
    throw usageError(`${describeError(error)}; ${GPU_CHECK_USAGE}`);
  }
  for (const flag of ['harness', 'tokenizer-dir', 'out'] as const) {
    if (values[flag] === undefined) throw usageError(`--${flag} is required; ${GPU_CHECK_USAGE}`);
  }
  const images = wholeNumber('images', values.images, 10_000, 1);
  const cpuImages = Math.min(images, wholeNumber('cpu-images', values['cpu-images'], 1_000, 1));
  const size = values.size ?? 'b32';
  if (size !== 'b32' && size !== 'tiny') throw usageError(`--size ${size}: expected b32 or tiny (the harness's clip_ref sizes)`);
  return {
    root: resolve(values.root ?? benchRepoRoot),
    harness: resolve(values.harness!),
    tokenizerDir: resolve(values['tokenizer-dir']!),
    out: resolve(values.out!),
    python: values.python ?? 'python3',
    images,
    cpuImages,
    size,
    batchSize: wholeNumber('batch-size', values['batch-size'], 256, 1),
    devices: list(values.devices ?? 'webgpu,cuda', (item) => parseDevice(item)),
    peerDevices: list(values['peer-devices'] ?? 'cuda,cuda-amp', (item) => {
      const device = PEER_DEVICES.find((candidate) => candidate === item);
      if (!device) throw usageError(`--peer-devices: unknown "${item}"; use ${PEER_DEVICES.join(', ')}`);
      return device;
    }),
    budgetSeconds: wholeNumber('budget-seconds', values['budget-seconds'], 420, 30),
  };
}

/** One line of the table. */
export interface CheckRow {
  step: string;
  status: 'ok' | 'failed' | 'skipped';
  images?: number;
  wallSeconds?: number;
  /** Images over the process's whole wall time (start-up, model, text side, images, output). */
  endToEndImagesPerSecond?: number;
  /** Images over the image loop alone (clip-eval's timing.imagesPerSecond; the peer's run less its text side). */
  imageLoopImagesPerSecond?: number;
  gpuMemory?: GpuMemoryReading;
  agreement?: Agreement;
  note: string;
}

const HEADER = ['step', 'status', 'images', 'wall s', 'img/s e2e', 'img/s loop', 'GPU MiB', 'top-1 = cpu', 'note / exact error'];

export function tableLines(rows: readonly CheckRow[]): string {
  const figure = (value: number | undefined, digits: number) => (value === undefined ? '' : value.toFixed(digits));
  const memory = (reading: GpuMemoryReading | undefined) => (reading === undefined ? '' : reading.peakMiB !== undefined ? String(Math.round(reading.peakMiB)) : 'n/a');
  const agreement = (value: Agreement | undefined) => (value === undefined ? '' : `${(100 * value.top1).toFixed(2)} % of ${value.images}`);
  return formatColumns(
    HEADER,
    rows.map((row) => [
      row.step,
      row.status,
      row.images === undefined ? '' : String(row.images),
      figure(row.wallSeconds, 1),
      figure(row.endToEndImagesPerSecond, 1),
      figure(row.imageLoopImagesPerSecond, 1),
      memory(row.gpuMemory),
      agreement(row.agreement),
      row.note,
    ]),
  );
}

class Budget {
  private readonly end: number;
  constructor(seconds: number) {
    this.end = performance.now() + seconds * 1000;
  }
  /** Seconds a step may take: its own limit, or what is left of the budget; undefined when too little is. */
  limit(own: number): number | undefined {
    const left = Math.floor((this.end - performance.now()) / 1000);
    return left < MIN_STEP_SECONDS ? undefined : Math.min(own, left);
  }
}

const OUT_OF_TIME = 'skipped: the --budget-seconds time is spent';

interface Context {
  options: GpuCheckOptions;
  budget: Budget;
  work: string;
  logDir: string;
  baselineMiB?: number;
  gpuPresent: boolean;
}

/** Runs a step with the GPU's memory sampled meanwhile (where nvidia-smi exists). */
async function measuredStep(context: Context, name: string, command: string, args: string[], limit: number, env?: NodeJS.ProcessEnv): Promise<{ run: StepRun; memory?: GpuMemoryReading }> {
  const sampler = context.gpuPresent ? sampleGpuMemory(context.baselineMiB) : undefined;
  const run = await runStep({ name, command, args, timeoutSeconds: limit, logDir: context.logDir, ...(env ? { env } : {}) });
  const memory = sampler ? await sampler.stop() : undefined;
  return { run, ...(memory ? { memory } : {}) };
}

async function probe(context: Context, name: string, command: string, args: string[]): Promise<string> {
  const run = await runStep({ name, command, args, timeoutSeconds: LIMITS.probe, logDir: context.logDir });
  return run.error === undefined ? run.stdout.trim().split('\n').join('; ') : `unavailable (${run.error})`;
}

async function vulkanDrivers(): Promise<string> {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return `VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES}`;
  const found: string[] = [];
  for (const folder of ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) {
    const names = await readdir(folder).catch(() => []);
    found.push(...names.filter((name) => name.endsWith('.json')).map((name) => join(folder, name)));
  }
  return found.length > 0 ? found.join(', ') : 'no Vulkan driver manifest (icd.d/*.json) found';
}

interface ClipEvalRun {
  row: CheckRow;
  predictionsPath?: string;
}

async function clipEvalRun(context: Context, name: string, step: string, device: Device, dataDir: string, cacheDir: string, ownLimit: number, reference?: Map<number, number[]>): Promise<ClipEvalRun> {
  const limit = context.budget.limit(ownLimit);
  if (limit === undefined) return { row: { step, status: 'skipped', note: OUT_OF_TIME } };
  const jsonPath = join(context.work, `${name}.json`);
  const predictionsPath = join(context.work, `${name}.predictions.jsonl`);
  // Each run encodes every image: embeddings an earlier run cached would skip exactly what is measured.
  await rm(join(cacheDir, 'image-embeddings'), { recursive: true, force: true });
  const args = [
    join(context.options.root, 'bin', 'clip-eval.cjs'),
    'cifar100',
    '--data-dir', dataDir,
    '--model', join(context.work, 'model'),
    '--variant', 'fp32',
    '--cache-dir', cacheDir,
    '--templates', 'openai',
    '--batch-size', String(context.options.batchSize),
    '--device', device,
    '--json', jsonPath,
    '--predictions', predictionsPath,
    '--quiet',
  ];
  const { run, memory } = await measuredStep(context, name, process.execPath, args, limit, { ...process.env, CI: 'true' });
  const base = { step, wallSeconds: run.wallSeconds, ...(memory ? { gpuMemory: memory } : {}) };
  if (run.error !== undefined) return { row: { ...base, status: 'failed', note: run.error } };
  const report = JSON.parse(await readFile(jsonPath, 'utf8')) as EvaluationReport;
  const result = report.results[0]!;
  const images = report.dataset.images;
  const agreement = reference ? compareTop5(reference, await readTop5Lines(predictionsPath)) : undefined;
  const text = result.timing.textEmbeddings === 'cached' ? 'text embeddings cached' : `text ${result.timing.textSeconds.toFixed(1)} s`;
  return {
    row: {
      ...base,
      status: 'ok',
      images,
      endToEndImagesPerSecond: images / run.wallSeconds,
      imageLoopImagesPerSecond: result.timing.imagesPerSecond,
      ...(agreement ? { agreement } : {}),
      note: `top-1 ${(100 * result.metrics.top1).toFixed(2)} %; ${text}`,
    },
    predictionsPath,
  };
}

async function peerRun(context: Context, device: PeerDevice, testBin: string, tokensPath: string, reference: Map<number, number[]> | undefined): Promise<CheckRow> {
  const step = `PyTorch peer ${device === 'cuda-amp' ? 'cuda + fp16 autocast' : device}`;
  const limit = context.budget.limit(LIMITS.peer);
  if (limit === undefined) return { step, status: 'skipped', note: OUT_OF_TIME };
  const { options } = context;
  const out = join(context.work, `peer-${device}.jsonl`);
  const args = [
    join(options.harness, 'torch_eval.py'),
    '--bin', testBin,
    '--tokens', tokensPath,
    '--templates', String(OPENAI_CIFAR_TEMPLATES.length),
    '--size', options.size,
    '--seed', String(MODEL_SEED),
    '--batch', String(options.batchSize),
    '--threads', String(availableParallelism()),
    '--device', device === 'cpu' ? 'cpu' : 'cuda',
    ...(device === 'cuda-amp' ? ['--amp'] : []),
    '--out', out,
  ];
  const { run, memory } = await measuredStep(context, `peer-${device}`, options.python, args, limit);
  const base = { step, wallSeconds: run.wallSeconds, ...(memory ? { gpuMemory: memory } : {}) };
  if (run.error !== undefined) return { ...base, status: 'failed', note: run.error };
  const summary = parsePeerSummary(await readFile(out, 'utf8'), out);
  const agreement = reference ? compareTop5(reference, await readTop5Lines(out)) : undefined;
  const { seconds } = summary;
  return {
    ...base,
    status: 'ok',
    images: summary.images,
    endToEndImagesPerSecond: summary.images / run.wallSeconds,
    imageLoopImagesPerSecond: summary.images / (seconds.end_to_end - seconds.text_encode),
    ...(agreement ? { agreement } : {}),
    note: `torch ${summary.torch}; model build ${seconds.model_build.toFixed(1)} s, text ${seconds.text_encode.toFixed(1)} s, preprocessing ${summary.images_per_second.preprocess.toFixed(0)} images/s`,
  };
}

/** A CIFAR-100 release folder (cifar-100-binary/ with the label names) around `records` of test.bin. */
async function writeCifarFolder(dataDir: string, records?: Uint8Array): Promise<string> {
  const release = join(dataDir, 'cifar-100-binary');
  await mkdir(release, { recursive: true });
  if (records) await writeFile(join(release, 'test.bin'), records);
  await writeFile(join(release, 'fine_label_names.txt'), `${CIFAR100_RAW_NAMES.join('\n')}\n`);
  await writeFile(join(release, 'coarse_label_names.txt'), `${CIFAR100_COARSE_NAMES.join('\n')}\n`);
  return join(release, 'test.bin');
}

async function firstRecords(path: string, count: number): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(count * CIFAR100_RECORD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export async function runGpuCheck(options: GpuCheckOptions): Promise<{ rows: CheckRow[]; table: string }> {
  const started = performance.now();
  const logDir = join(options.out, 'logs');
  await mkdir(logDir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'clip-eval-gpu-check-'));
  try {
    const context: Context = { options, budget: new Budget(options.budgetSeconds), work, logDir, gpuPresent: false };
    const gpu = await probe(context, 'probe-gpu', 'nvidia-smi', ['--query-gpu=name,driver_version,memory.total,memory.used', '--format=csv,noheader']);
    context.gpuPresent = !gpu.startsWith('unavailable');
    if (context.gpuPresent) context.baselineMiB = Number(gpu.split(',').at(-1)?.trim().replace(/\s*MiB$/, '')) || undefined;
    const torch = await probe(context, 'probe-torch', options.python, ['-c', 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")']);
    const backends = ort.listSupportedBackends().map((backend) => `${backend.name}${backend.bundled ? '' : ' (separate download)'}`).join(', ');
    const modelName = options.size === 'b32' ? 'ViT-B/32' : 'tiny CLIP';
    const facts = [
      `clip-eval GPU check: harness ${modelName} (clip_ref ${options.size}, seed ${MODEL_SEED}), ${options.images} synthetic CIFAR-100 images (seed ${DATA_SEED}), ` +
        `100 classes × ${OPENAI_CIFAR_TEMPLATES.length} templates, batch ${options.batchSize}; top-1 compared with clip-eval cpu on the first ${options.cpuImages}`,
      `machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown'}); GPU: ${gpu}`,
      `node ${process.version}; onnxruntime-node ${ort.env.versions.common}, providers: ${backends}; ${torch}`,
      `Vulkan: ${await vulkanDrivers()}`,
    ];

    const rows: CheckRow[] = [];
    const needsModel = (step: string, why: string): CheckRow => ({ step, status: 'skipped', note: `skipped: ${why}` });
    const model = join(work, 'model');
    const exportLimit = context.budget.limit(LIMITS.export)!;
    const exported = await measuredStep(context, 'export', options.python, [join(options.harness, 'export_onnx.py'), '--size', options.size, '--seed', String(MODEL_SEED), '--out', model], exportLimit);
    rows.push({ step: `export ${modelName} (PyTorch → ONNX)`, status: exported.run.error ? 'failed' : 'ok', wallSeconds: exported.run.wallSeconds, note: exported.run.error ?? 'export_onnx.py' });
    let blocker = exported.run.error ? 'the export failed' : undefined;
    if (!blocker) {
      for (const file of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(options.tokenizerDir, file), join(model, file));
    }

    const fullTestBin = join(work, 'data', 'cifar-100-binary', 'test.bin');
    const dataLimit = context.budget.limit(LIMITS.data);
    let cpuDataDir = join(work, 'data');
    if (dataLimit === undefined) {
      rows.push({ step: 'synthetic CIFAR-100 images', status: 'skipped', note: OUT_OF_TIME });
      blocker ??= 'no images';
    } else {
      await writeCifarFolder(join(work, 'data'));
      const data = await runStep({
        name: 'data',
        command: options.python,
        args: [join(options.harness, 'make_cifar_synth.py'), '--out', fullTestBin, '--count', String(options.images), '--seed', String(DATA_SEED)],
        timeoutSeconds: dataLimit,
        logDir,
      });
      rows.push({ step: 'synthetic CIFAR-100 images', status: data.error ? 'failed' : 'ok', images: options.images, wallSeconds: data.wallSeconds, note: data.error ?? 'make_cifar_synth.py' });
      if (data.error) blocker ??= 'no images';
      else if (options.cpuImages < options.images) {
        cpuDataDir = join(work, 'data-cpu');
        await writeCifarFolder(cpuDataDir, await firstRecords(fullTestBin, options.cpuImages));
      }
    }

    let reference: Map<number, number[]> | undefined;
    const referenceStep = `clip-eval cpu, first ${options.cpuImages} (reference)`;
    if (blocker) rows.push(needsModel(referenceStep, blocker));
    else {
      const cpu = await clipEvalRun(context, 'clip-eval-cpu-reference', referenceStep, 'cpu', cpuDataDir, join(work, 'cache-cpu-reference'), LIMITS.cpuReference);
      rows.push(cpu.row);
      if (cpu.predictionsPath) reference = await readTop5Lines(cpu.predictionsPath);
    }

    for (const device of options.devices) {
      const cache = join(work, `cache-${device}`);
      for (const temperature of ['cold', 'warm'] as const) {
        const step = `clip-eval ${device}, ${temperature}`;
        if (blocker) {
          rows.push(needsModel(step, blocker));
          continue;
        }
        const run = await clipEvalRun(context, `clip-eval-${device}-${temperature}`, step, device, join(work, 'data'), cache, LIMITS.deviceRun, reference);
        rows.push(run.row);
        if (run.row.status !== 'ok') break;
      }
    }

    if (options.peerDevices.length > 0) {
      let tokensPath: string | undefined;
      let tokenError: string | undefined;
      if (!blocker) {
        try {
          const cacheRoot = join(work, 'cache-tokens');
          const bundle = await resolveModelBundle({ model, variant: 'fp32', cacheRoot, offline: true, quiet: true, logger: silentLogger });
          const testSet = await loadCifarTestSet('cifar100', { dataDir: cpuDataDir, cacheRoot, quiet: true, logger: silentLogger });
          tokensPath = join(work, 'peer-tokens.json');
          await writeFile(tokensPath, JSON.stringify(peerTokenRows(await promptTokenRows(bundle, testSet.classNames), 'longest', bundle.contextLength)));
        } catch (error) {
          tokenError = `the prompts' token ids: ${error instanceof ClipEvalError ? wordError(error) : describeError(error)}`;
        }
      }
      for (const device of options.peerDevices) {
        if (blocker || tokenError || !tokensPath) rows.push(needsModel(`PyTorch peer ${device}`, blocker ?? tokenError ?? 'no prompts'));
        else rows.push(await peerRun(context, device, fullTestBin, tokensPath, reference));
      }
    }

    const wall = (performance.now() - started) / 1000;
    const table = [...facts, '', tableLines(rows).trimEnd(), '', `whole check: ${wall.toFixed(1)} s; logs: ${logDir}`].join('\n') + '\n';
    await writeFile(join(options.out, 'gpu-check.txt'), table);
    await writeFile(join(options.out, 'gpu-check.json'), `${JSON.stringify({ schema: 'clip-eval/gpu-check@1', createdAt: new Date().toISOString(), options, facts, rows, wallSeconds: wall }, null, 2)}\n`);
    return { rows, table };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const runAsScript = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (runAsScript) {
  (async () => {
    const options = parseGpuCheckArguments(process.argv.slice(2));
    if (!existsSync(join(options.harness, 'export_onnx.py'))) throw usageError(`--harness ${options.harness}: no export_onnx.py there (the reference harness folder)`);
    const { rows, table } = await runGpuCheck(options);
    process.stdout.write(table);
    return rows.every((row) => row.status === 'ok') ? EXIT.ok : EXIT.checkFailed;
  })().then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      const known = error instanceof ClipEvalError;
      process.stderr.write(`gpu-check: ${known ? wordError(error) : describeError(error)}\n`);
      process.exitCode = known ? error.exitCode : EXIT.internal;
    },
  );
}
