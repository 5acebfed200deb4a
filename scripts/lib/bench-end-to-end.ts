import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { inputError } from '../../src/core/errors.js';
import type { Variant } from '../../src/model/bundle.js';
import type { Device } from '../../src/model/session.js';
import type { EvaluationReport } from '../../src/tasks/zero-shot/result.js';
import { lastErrorLine, runNodeMeasured } from './bench-process.js';

export interface EndToEndSpec {
  /** bin/clip-eval.cjs */
  cliPath: string;
  model: string;
  variant: Variant;
  dataDir: string;
  /** Evaluate this image folder (`clip-eval eval FOLDER`) instead of CIFAR-100 from dataDir. */
  folder?: string;
  /** A fresh folder gives a cold run (text encoder runs, model digests computed); a used one a warm run. */
  cacheDir: string;
  batchSize: number;
  threads: number;
  device: Device;
  deviceId?: number;
  /** More flags for the command (e.g. a subset). */
  extraArgs?: readonly string[];
  /** Where this run's --json and --predictions files go, named after `name`. */
  outputDir: string;
  name: string;
}

/** One real `clip-eval cifar100` (or `clip-eval eval FOLDER`) process, timed from spawn to exit. */
export interface EndToEndRun {
  command: string;
  images: number;
  wallSeconds: number;
  /** Images over the whole process's wall time: start-up, model loading, text side, evaluation, report. */
  imagesPerSecond: number;
  maxRssBytes?: number;
  predictionsPath: string;
  top1: number;
  /** From the run's own --json report. */
  timing: EvaluationReport['results'][number]['timing'];
}

export function endToEndArguments(spec: EndToEndSpec): { args: string[]; jsonPath: string; predictionsPath: string } {
  const jsonPath = join(spec.outputDir, `${spec.name}.json`);
  const predictionsPath = join(spec.outputDir, `${spec.name}.predictions.jsonl`);
  const args = [
    ...(spec.folder !== undefined ? ['eval', spec.folder] : ['cifar100', '--data-dir', spec.dataDir]),
    '--model', spec.model,
    '--variant', spec.variant,
    '--cache-dir', spec.cacheDir,
    '--templates', 'openai',
    '--batch-size', String(spec.batchSize),
    '--threads', String(spec.threads),
    '--device', spec.device,
    ...(spec.deviceId !== undefined ? ['--device-id', String(spec.deviceId)] : []),
    '--json', jsonPath,
    '--predictions', predictionsPath,
    ...(spec.extraArgs ?? []),
    '--quiet',
  ];
  return { args, jsonPath, predictionsPath };
}

export async function runEndToEnd(spec: EndToEndSpec): Promise<EndToEndRun> {
  const { args, jsonPath, predictionsPath } = endToEndArguments(spec);
  // Every run measures image encoding: cached image embeddings (from an earlier run) would skip it; text embeddings stay cached.
  await rm(join(spec.cacheDir, 'image-embeddings'), { recursive: true, force: true });
  const run = await runNodeMeasured(spec.cliPath, args, spec.outputDir, { env: { ...process.env, CI: 'true' } });
  if (run.code !== 0) throw inputError(`end-to-end run "${spec.name}" failed: ${lastErrorLine(run)} (command: ${run.command})`);
  const report = JSON.parse(await readFile(jsonPath, 'utf8')) as EvaluationReport;
  const result = report.results[0];
  if (!result) throw inputError(`${jsonPath}: the report has no result`);
  const images = report.dataset.images;
  return {
    command: run.command,
    images,
    wallSeconds: run.wallSeconds,
    imagesPerSecond: images / run.wallSeconds,
    ...(run.maxRssBytes !== undefined ? { maxRssBytes: run.maxRssBytes } : {}),
    predictionsPath,
    top1: result.metrics.top1,
    timing: result.timing,
  };
}
