import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { assertRegularFile } from '../core/bounded-read.js';
import { describeError, inputError, usageError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';

// onnxruntime reads these when its environment starts, at the first session: telemetry off unless the
// user chose otherwise, and its own log lines off stderr (every failure reaches the user as one error).
process.env.ORT_DISABLE_TELEMETRY ??= '1';
ort.env.logLevel = 'fatal';

export type Device = 'cpu' | 'cuda' | 'webgpu';

export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

export interface SessionOptions {
  device: Device;
  /** GPU ordinal for the cuda device. */
  deviceId?: number;
  /** Intra-op threads; onnxruntime's default (one per core) when absent. */
  threads?: number;
  logger?: Logger;
}

export function parseDevice(value: string): Device {
  const device = DEVICES.find((candidate) => candidate === value);
  if (!device) throw usageError(`unknown device "${value}"; use cpu, cuda or webgpu`, { input: { name: 'device' } });
  return device;
}

/**
 * An onnxruntime session on exactly the device asked for. A GPU provider that cannot start is an error
 * naming what is missing: running on the CPU instead would silently change every timing.
 */
export async function createSession(modelPath: string, options: SessionOptions): Promise<ort.InferenceSession> {
  const logger = options.logger ?? silentLogger;
  const info = statSync(modelPath, { throwIfNoEntry: false });
  if (!info) throw inputError(`${modelPath}: ONNX model file not found`);
  assertRegularFile(info, modelPath);
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // A memory pattern pre-plans one block for all of a run's intermediates; without it the arena reuses
    // freed tensors, which measured as fast on ViT-B/32 and 70-120 MB lower in peak RSS at batch 64.
    enableMemPattern: false,
    executionProviders: [executionProvider(options)],
    logSeverityLevel: 4,
  };
  if (options.threads !== undefined) {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw usageError(`expected a whole number of at least 1, got ${options.threads}`, { input: { name: 'threads' } });
    }
    sessionOptions.intraOpNumThreads = options.threads;
  }
  if (options.device === 'cuda') assertCudaProviderInstalled();
  if (options.device === 'webgpu') await assertWebGpuAdapter(modelPath, options);

  logger.debug(`loading ${modelPath} on ${describeDevice(options)}`);
  try {
    return await ort.InferenceSession.create(modelPath, sessionOptions);
  } catch (error) {
    throw sessionError(modelPath, options, ortMessage(error), error);
  }
}

/**
 * Intra-op threads for a run: at most one per core, since more only make onnxruntime's threads wait for
 * each other (1000 threads on 16 cores ran 50× slower). More is a warning, not an error, so that one CI
 * setting works on runners of any size.
 */
export function boundedThreads(threads: number | undefined, logger: Logger): number | undefined {
  const cores = availableParallelism();
  if (threads === undefined || threads <= cores) return threads;
  logger.warn({
    input: { name: 'threads', value: String(threads) },
    detail: `this machine has ${cores} cores; using ${cores}, since more threads than cores only slow inference down`,
  });
  return cores;
}

/** One inference; onnxruntime's failure (an id past the vocabulary, a bad shape) as an error naming the model. */
export async function runSession(
  session: ort.InferenceSession,
  feeds: ort.InferenceSession.FeedsType,
  modelPath: string,
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds, { logSeverityLevel: 4 });
  } catch (error) {
    throw inputError(`${modelPath}: onnxruntime failed to run this model (${ortMessage(error)})`, error);
  }
}

/** The device as reports name it: "cpu", else the provider and its device index ("cuda:0"). */
export function deviceLabel(options: { device: string; deviceId?: number }): string {
  return options.device === 'cpu' ? 'cpu' : `${options.device}:${options.deviceId ?? 0}`;
}

function describeDevice(options: SessionOptions): string {
  return options.device === 'cuda' ? `cuda:${options.deviceId ?? 0}` : options.device;
}

function executionProvider(options: SessionOptions): ort.InferenceSession.ExecutionProviderConfig {
  const deviceId = options.deviceId;
  if (deviceId !== undefined && (!Number.isInteger(deviceId) || deviceId < 0)) {
    throw usageError(`expected a whole number of at least 0, got ${deviceId}`, { input: { name: 'deviceId' } });
  }
  switch (options.device) {
    case 'cpu':
      if (deviceId !== undefined && deviceId !== 0) throw usageError('applies to the cuda device only', { input: { name: 'deviceId' } });
      return 'cpu';
    case 'webgpu':
      // onnxruntime-node's WebGPU provider picks the adapter itself and rejects a deviceId option.
      if (deviceId !== undefined && deviceId !== 0) {
        throw usageError('applies to the cuda device only (the WebGPU provider chooses its own adapter)', { input: { name: 'deviceId' } });
      }
      return { name: 'webgpu' };
    case 'cuda':
      return { name: 'cuda', deviceId: deviceId ?? 0 };
  }
}

/** Where onnxruntime-node keeps its native libraries for this platform. */
export function ortBinaryFolder(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('onnxruntime-node');
  return join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/** A CUDA provider that cannot start: about the cuda device, and the CPU still works. */
const CUDA_FAILURE = { input: { name: 'device', value: 'cuda' }, hint: { kind: 'useCpu' } } as const;

/** What `npm run setup:cuda` (onnxruntime-node's install script, cuda12 manifest) puts there. */
export const CUDA_PROVIDER_LIBRARIES = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];

/**
 * onnxruntime-node ships only the CPU and WebGPU providers; on linux/x64 its install script can fetch the
 * CUDA provider (`npm run setup:cuda`) into the package's binary folder. Checked before loading, because
 * onnxruntime's own message for this case ("Failed to load shared library") does not say which.
 */
function assertCudaProviderInstalled(): void {
  const platform = `${process.platform}/${process.arch}`;
  const backend = ort.listSupportedBackends().find((candidate) => candidate.name === 'cuda');
  if (!backend || platform !== 'linux/x64') {
    throw inputError(`onnxruntime-node has no CUDA provider for ${platform} (only linux/x64)`, undefined, { input: { name: 'device', value: 'cuda' }, hint: { kind: 'useCpu' } });
  }
  if (backend.bundled) return;
  const missing = CUDA_PROVIDER_LIBRARIES.map((name) => join(ortBinaryFolder(), name)).find((path) => !existsSync(path));
  if (missing) {
    throw inputError(`the CUDA provider is not installed (${missing} is missing); run "npm run setup:cuda" (needs CUDA 12 and cuDNN 9)`, undefined, CUDA_FAILURE);
  }
}

/** An ONNX model of one Identity node (float [1] to float [1]), written with scripts/lib/onnx-writer.ts. */
const PROBE_MODEL_BASE64 = 'CAgSCWNsaXAtZXZhbDo7ChAKAXgSAXkiCElkZW50aXR5EgVwcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEBE=';
const PROBE_TIMEOUT_MS = 60_000;
/** Starts the WebGPU provider on the probe model and prints what happened as JSON on stdout. */
const PROBE_SCRIPT = `
const ort = require(process.argv[1]);
ort.env.logLevel = 'fatal';
ort.InferenceSession.create(Buffer.from(process.argv[2], 'base64'), { executionProviders: [{ name: 'webgpu' }], logSeverityLevel: 4 })
  .then((session) => session.release())
  .then(() => process.stdout.write(JSON.stringify({ ok: true })), (error) => process.stdout.write(JSON.stringify({ ok: false, message: String(error && error.message || error) })));
`;
let webGpuProbe: Promise<string | undefined> | undefined;

/**
 * Dawn (the WebGPU implementation) prints its driver warnings straight to stderr, past onnxruntime's log
 * settings, before onnxruntime gives up on a machine without an adapter. So the provider is first started
 * once in a child process whose stderr is dropped: a failure there is our one-line error, and the noise
 * never reaches the user. The probe runs once per process; its answer is onnxruntime's message, or
 * undefined when an adapter was found.
 */
async function assertWebGpuAdapter(modelPath: string, options: SessionOptions): Promise<void> {
  webGpuProbe ??= new Promise((resolve) => {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    execFile(process.execPath, ['-e', PROBE_SCRIPT, entry, PROBE_MODEL_BASE64], { timeout: PROBE_TIMEOUT_MS, maxBuffer: 1 << 20 }, (error, stdout) => {
      try {
        const outcome = JSON.parse(stdout) as { ok: boolean; message?: string };
        resolve(outcome.ok ? undefined : ortMessage(outcome.message ?? 'unknown error'));
      } catch {
        const why = error?.killed ? `did not answer within ${PROBE_TIMEOUT_MS / 1000} s` : `ended without an answer (${describeError(error ?? 'no output')})`;
        resolve(`starting the WebGPU provider in a child process ${why}`);
      }
    });
  });
  const failure = await webGpuProbe;
  if (failure !== undefined) throw sessionError(modelPath, options, failure, undefined);
}

/** onnxruntime's message on one line, without the source location and the "Load model from FILE failed:" preamble. */
function ortMessage(error: unknown): string {
  return describeError(error)
    .replace(/^\/onnxruntime_src\/\S+\s+/, '')
    .replace(/^Load model from .*? failed:\s*/, '')
    .replace(/^.*? was false\. /, '');
}

/** Shared libraries a failed CUDA provider load names, e.g. "libcublasLt.so.12: cannot open shared object file". */
const CUDA_LIBRARY_PATTERN = /\b(lib(?:cublas\w*|cudnn\w*|cudart|cufft|curand|nvrtc|nvinfer\w*)\.so(?:\.[\d.]+)?)/;

function sessionError(modelPath: string, options: SessionOptions, message: string, cause: unknown): Error {
  if (options.device === 'cuda') {
    const library = CUDA_LIBRARY_PATTERN.exec(message)?.[1];
    if (library) {
      return inputError(`CUDA/cuDNN library ${library} not found; install CUDA 12 and cuDNN 9 and put their lib folders on LD_LIBRARY_PATH`, cause, CUDA_FAILURE);
    }
    if (/no CUDA-capable device|CUDA driver version is insufficient|cudaErrorNoDevice|invalid device ordinal/i.test(message)) {
      return inputError(`no usable CUDA GPU${options.deviceId ? ` with id ${options.deviceId}` : ''} (${message})`, cause, CUDA_FAILURE);
    }
    if (/providers_cuda|providers_shared|Failed to load shared library|AppendExecutionProvider_Cuda/i.test(message)) {
      return inputError(`the CUDA provider failed to load (${message}); check CUDA 12 and cuDNN 9 are installed`, cause, CUDA_FAILURE);
    }
  }
  if (options.device === 'webgpu' && /webgpu|adapter|dawn/i.test(message)) {
    const reason = /No supported adapters/i.test(message) ? 'no WebGPU adapter found (needs a GPU with Vulkan drivers on Linux)' : message;
    return inputError(reason, cause, { input: { name: 'device', value: 'webgpu' }, hint: { kind: 'useCpu' } });
  }
  return inputError(`${modelPath}: cannot load this ONNX model (${message})`, cause);
}
