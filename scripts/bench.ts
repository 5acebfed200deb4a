/**
 * Throughput benchmark (issue #7): the real pipeline on a model folder and a synthetic CIFAR-100-format
 * file, stage by stage and end to end, optionally against the PyTorch reference peer; then a folder of
 * 500×375 JPEGs end to end (`clip-eval eval FOLDER`) against pure image encoding (issue #11); then
 * a CI check (`clip-eval cifar100 --per-class 10`, text embeddings cached) and where its wall time goes outside
 * image encoding; then `clip-eval classify` on JPEG photos of 1000×750, with its decode / resize / inference
 * split (issue #14).
 *
 *   npm run bench -- --model DIR [--images N] [--batch-size N] [--threads N] [--device cpu|cuda|webgpu]
 *                    [--vs-torch [--peer-text-length context|longest]] [--out FILE] [--work-dir DIR]
 *
 * Prints a table on stdout and writes the full result as JSON (default bench-results/bench-<time>.json).
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadCifarTestSet } from '../src/datasets/cifar/cifar.js';
import { ClipEvalError, EXIT, usageError } from '../src/core/errors.js';
import { createLogger, type Logger } from '../src/core/log.js';
import { wordError } from '../src/cli/wording.js';
import { resolveModelBundle, type ModelBundle, type Variant } from '../src/model/bundle.js';
import type { SessionOptions } from '../src/model/session.js';
import { assertWritableOutput } from '../src/cli/options.js';
import { fillTemplate, OPENAI_CIFAR_TEMPLATES } from '../src/text/templates.js';
import { loadClipTokenizer, readPadTokenFromConfig } from '../src/text/tokenizer.js';
import { VERSION } from '../src/core/version.js';
import { compareTop5, readTop5Lines, type Agreement } from './lib/bench-agreement.js';
import { measureCheckCase, type CheckCase } from './lib/bench-check.js';
import { writeBenchCifar } from './lib/bench-data.js';
import { runEndToEnd, type EndToEndRun, type EndToEndSpec } from './lib/bench-end-to-end.js';
import { FOLDER_IMAGE_HEIGHT, FOLDER_IMAGE_WIDTH, measureFolderCase, writeBenchFolder, type FolderCase } from './lib/bench-folder.js';
import { benchRepoRoot, parseBenchArguments, type BenchOptions } from './lib/bench-options.js';
import {
  choosePeerBlasCore,
  cpuVectorLevel,
  detectPeerBlasCore,
  peerTokenRows,
  peerUnavailable,
  readHarnessModel,
  runPeer,
  type HarnessModel,
  type PeerRun,
} from './lib/bench-peer.js';
import {
  evaluateTargets,
  formatMegabytes,
  formatRate,
  formatTable,
  MIN_PEER_TOP1_AGREEMENT,
  targetCells,
  type StageFigures,
  type TableRow,
  type Target,
} from './lib/bench-report.js';
import { runClassifyCase, timeClassifyStages, type ClassifyCase, type ClassifyStages } from './lib/bench-classify.js';
import { PHOTO_HEIGHT, PHOTO_WIDTH, writeBenchPhotos } from './lib/bench-photos.js';
import {
  timeImageEncoding,
  timePreprocessing,
  timePreprocessingAllCores,
  type ImageEncodeTiming,
  type ParallelPreprocessTiming,
  type PreprocessTiming,
} from './lib/bench-stages.js';

const CLI_PATH = join(benchRepoRoot, 'bin', 'clip-eval.cjs');
const EXTRA_VARIANTS: Variant[] = ['fp16', 'int8'];

interface VariantResult {
  variant: Variant;
  run?: EndToEndRun;
  agreementWithFp32?: Agreement;
  skipped?: string;
}

interface PeerResult {
  run?: PeerRun;
  agreement?: Agreement;
  skipped?: string;
}

/** What --vs-torch will do: run the peer on this harness model, or skip for the reason given. */
async function planPeer(options: BenchOptions, harnessDir: string, logger: Logger): Promise<{ model?: HarnessModel; skipped?: string }> {
  if (!options.vsTorch) return {};
  const model = await readHarnessModel(options.model);
  if (!model) {
    throw usageError(
      `--vs-torch: ${join(options.model, 'config.json')} has no "harness" section, so the model was not written by export_onnx.py and the PyTorch peer cannot build the same weights; drop --vs-torch or bench an export_onnx.py folder`,
    );
  }
  const reason = await peerUnavailable(options.python, harnessDir);
  if (reason) {
    logger.warn(`--vs-torch skipped: ${reason}`);
    return { skipped: reason };
  }
  return { model };
}

/** The evaluation's prompts as token ids, class-major (class c, template t at row c·18 + t), as the peer takes them. */
export async function promptTokenRows(bundle: ModelBundle, classNames: readonly string[]): Promise<number[][]> {
  const padToken = bundle.tokenizerConfigPath ? await readPadTokenFromConfig(bundle.tokenizerConfigPath) : undefined;
  const tokenizer = await loadClipTokenizer(bundle.tokenizerPath, { padToken });
  return classNames.flatMap((name) => OPENAI_CIFAR_TEMPLATES.map((template) => tokenizer.encodeForModel(fillTemplate(template, name), bundle.contextLength)));
}

function busyWarning(): string | undefined {
  const [oneMinute] = loadavg();
  const cores = availableParallelism();
  return oneMinute !== undefined && oneMinute > 0.5 ? `load average ${oneMinute.toFixed(2)} on ${cores} cores before the run: other work may slow every figure` : undefined;
}

async function benchVariants(options: BenchOptions, spec: Omit<EndToEndSpec, 'variant' | 'name' | 'cacheDir'>, work: string, fp32: EndToEndRun, logger: Logger): Promise<VariantResult[]> {
  const results: VariantResult[] = [];
  const reference = await readTop5Lines(fp32.predictionsPath);
  for (const variant of EXTRA_VARIANTS) {
    try {
      await resolveModelBundle({ model: options.model, variant, cacheRoot: join(work, 'cache-stages'), offline: true, quiet: true });
    } catch (error) {
      if (!(error instanceof ClipEvalError)) throw error;
      results.push({ variant, skipped: wordError(error) });
      continue;
    }
    logger.info(`variant ${variant}: end to end, cold …`);
    const run = await runEndToEnd({ ...spec, variant, name: variant, cacheDir: join(work, `cache-${variant}`) });
    results.push({ variant, run, agreementWithFp32: compareTop5(reference, await readTop5Lines(run.predictionsPath)) });
  }
  return results;
}

function peerFigures(run: PeerRun | undefined): StageFigures | undefined {
  if (!run) return undefined;
  const { images_per_second: ips, seconds, images } = run.summary;
  return {
    preprocessImagesPerSecond: ips.preprocess,
    imageEncodeImagesPerSecond: ips.image_encode,
    coldImagesPerSecond: images / seconds.end_to_end,
    warmImagesPerSecond: run.warmImagesPerSecond,
    ...(run.maxRssBytes !== undefined ? { peakRssBytes: run.maxRssBytes } : {}),
  };
}

function tableRows(
  preprocess: PreprocessTiming,
  preprocessAllCores: ParallelPreprocessTiming,
  imageEncode: ImageEncodeTiming,
  cold: EndToEndRun,
  warm: EndToEndRun,
  targets: Target[],
  peer: PeerResult,
  variants: VariantResult[],
): TableRow[] {
  const byName = new Map(targets.map((target) => [target.name, target]));
  const row = (stage: string, ours: string, peerValue: string | undefined, target?: string): TableRow => {
    const found = target ? byName.get(target) : undefined;
    return { stage, ours, ...(peerValue !== undefined ? { peer: peerValue } : {}), ...(found ? targetCells(found) : {}) };
  };
  const peerRun = peer.run;
  const peerRates = peerFigures(peerRun);
  const rate = (value: number | undefined, unit = 'images/s') => (value === undefined ? undefined : formatRate(value, unit));
  const rows: TableRow[] = [
    row('preprocessing, 1 core', formatRate(preprocess.imagesPerSecond, 'images/s'), rate(peerRates?.preprocessImagesPerSecond), 'preprocessing, 1 core'),
    row(`preprocessing, all cores (${preprocessAllCores.workers})`, formatRate(preprocessAllCores.imagesPerSecond, 'images/s'), undefined),
    row('image encoding', formatRate(imageEncode.imagesPerSecond, 'images/s'), rate(peerRates?.imageEncodeImagesPerSecond), 'image encoding'),
    row(
      'text encoding, cold',
      cold.timing.promptsPerSecond !== undefined ? formatRate(cold.timing.promptsPerSecond, 'prompts/s') : 'n/a',
      peerRun ? `${formatRate(peerRun.promptsPerSecond, 'prompts/s')} @${peerRun.textLength} tokens` : undefined,
    ),
    row('text from cache, warm', `${warm.timing.textSeconds.toFixed(2)} s`, undefined),
    row('end to end, cold', formatRate(cold.imagesPerSecond, 'images/s'), rate(peerRates?.coldImagesPerSecond), 'end to end, cold'),
    row('end to end, warm', formatRate(warm.imagesPerSecond, 'images/s'), rate(peerRates?.warmImagesPerSecond), 'end to end, warm'),
    row('warm ÷ image encoding', '', undefined, 'warm / image encoding'),
    row(
      'peak RSS (cold, warm)',
      cold.maxRssBytes !== undefined && warm.maxRssBytes !== undefined ? `${formatMegabytes(Math.max(cold.maxRssBytes, warm.maxRssBytes))}` : 'n/a',
      peerRates?.peakRssBytes !== undefined ? formatMegabytes(peerRates.peakRssBytes) : undefined,
      'peak RSS',
    ),
  ];
  if (peer.agreement) {
    rows.push({
      stage: 'top-1 agreement with peer',
      ours: `${(100 * peer.agreement.top1).toFixed(1)} %`,
      target: `≥ ${100 * MIN_PEER_TOP1_AGREEMENT} %`,
      met: peer.agreement.top1 >= MIN_PEER_TOP1_AGREEMENT,
    });
  }
  for (const variant of variants) {
    if (!variant.run || !variant.agreementWithFp32) continue;
    rows.push({
      stage: `${variant.variant}: image loop, top-1 = fp32`,
      ours: `${formatRate(variant.run.timing.imagesPerSecond, 'images/s')}, ${(100 * variant.agreementWithFp32.top1).toFixed(1)} %`,
    });
  }
  return rows;
}

/** Within 10 % of pure image encoding: decoding must hide behind inference. */
const MIN_FOLDER_RATIO = 0.9;

function folderRows(folderCase: FolderCase): TableRow[] {
  const { ratio, loopImagesPerSecond, repeats } = folderCase;
  const range = (spread: { min: number; max: number }, digits: number) => `${spread.min.toFixed(digits)}–${spread.max.toFixed(digits)}`;
  return [
    {
      stage: `folder of ${folderCase.images} JPEGs, image loop`,
      ours: `${formatRate(loopImagesPerSecond.median, 'images/s')} (${range(loopImagesPerSecond, 1)}, ${repeats.length} runs)`,
    },
    {
      stage: 'folder ÷ image encoding',
      ours: `${ratio.median.toFixed(2)}× (${range(ratio, 2)})`,
      target: `≥ ${MIN_FOLDER_RATIO.toFixed(2)}×`,
      met: ratio.median >= MIN_FOLDER_RATIO,
    },
  ];
}

/** A CI check spends under 10 % of its wall time outside image encoding. */
const MAX_CHECK_OUTSIDE_SHARE = 0.1;

function checkRows(check: CheckCase): TableRow[] {
  const seconds = (value: number) => `${value.toFixed(2)} s`;
  const median = [...check.repeats].sort((a, b) => a.outsideShare - b.outsideShare)[check.repeats.length >> 1]!;
  const parts = median.breakdown;
  const percent = (value: number) => `${(100 * value).toFixed(1)} %`;
  const { min, max } = check.outsideShare;
  return [
    {
      stage: `check: cifar100 --per-class ${check.perClass} (${check.images} images), outside encoding`,
      ours: `${percent(median.outsideShare)} (${percent(min)}–${percent(max)}, ${check.repeats.length} runs)`,
      target: `< ${percent(MAX_CHECK_OUTSIDE_SHARE)}`,
      met: median.outsideShare < MAX_CHECK_OUTSIDE_SHARE,
    },
    { stage: '  first run (data set read afresh), outside encoding', ours: percent(check.first.outsideShare) },
    { stage: '  median run: wall', ours: seconds(parts.wallSeconds) },
    { stage: '    process start, modules, bundle, data set, reports', ours: seconds(parts.outsideEvaluationSeconds) },
    { stage: `    class embeddings (${median.textEmbeddings})`, ours: seconds(parts.textSeconds) },
    { stage: '    image loop beyond encoding (session, warm-up)', ours: seconds(parts.loopOverheadSeconds) },
    { stage: '    image encoding', ours: seconds(parts.encodingSeconds) },
    { stage: '    model digests, metrics', ours: seconds(parts.restSeconds) },
  ];
}

function classifyRows(stages: ClassifyStages, classify: ClassifyCase): TableRow[] {
  const perImage = (seconds: number) => `${formatRate(stages.images / seconds, 'images/s')} (${((1000 * seconds) / stages.images).toFixed(2)} ms each)`;
  const { median, min, max } = classify.spread;
  return [
    { stage: `classify ${classify.images} photos ${PHOTO_WIDTH}×${PHOTO_HEIGHT}: decode, 1 core`, ours: perImage(stages.decodeSeconds) },
    { stage: '  resize + normalise, 1 core', ours: perImage(stages.resizeSeconds) },
    { stage: '  inference', ours: perImage(stages.inferenceSeconds) },
    { stage: '  classify, image loop', ours: `${formatRate(median, 'images/s')} (${min.toFixed(1)}–${max.toFixed(1)}, ${classify.loopImagesPerSecond.length} runs)` },
  ];
}

async function main(argv: string[]): Promise<number> {
  const options = parseBenchArguments(argv);
  const logger = createLogger({ quiet: options.quiet });
  const harnessDir = join(options.sharedDir, 'reference', 'harness');
  if (!existsSync(options.model) || !statSync(options.model).isDirectory()) {
    throw usageError(`--model ${options.model}: not a folder; the bench takes a model folder (Hugging Face or immich layout)`);
  }
  await mkdir(dirname(options.out), { recursive: true });
  await assertWritableOutput('--out', options.out);
  const peerPlan = await planPeer(options, harnessDir, logger);
  const busy = busyWarning();
  if (busy) logger.warn(busy);
  const loadBefore = loadavg();

  const work = options.workDir ?? (await mkdtemp(join(tmpdir(), 'clip-eval-bench-')));
  await mkdir(work, { recursive: true });
  try {
    const stagesCache = join(work, 'cache-stages');
    const bundle = await resolveModelBundle({ model: options.model, variant: 'fp32', cacheRoot: stagesCache, offline: true, quiet: true, logger });
    logger.info(`data: ${options.images} synthetic CIFAR-100 images …`);
    const data = await writeBenchCifar(work, {
      count: options.images,
      seed: options.seed,
      python: options.python,
      harnessDir,
      onFallback: (reason) => logger.info(`data: the project's pattern images instead of make_cifar_synth.py (${reason})`),
    });
    const testSet = await loadCifarTestSet('cifar100', { dataDir: data.dataDir, cacheRoot: stagesCache, quiet: true, logger });
    const sessionOptions: SessionOptions = { device: options.device, deviceId: options.deviceId, threads: options.threads, logger };

    logger.info('preprocessing, one core …');
    const preprocess = timePreprocessing(testSet, bundle.preprocess, options.batchSize);
    logger.info(`preprocessing, all cores (${availableParallelism()} worker threads) …`);
    const preprocessAllCores = await timePreprocessingAllCores(testSet, bundle.preprocess, availableParallelism());
    logger.info(`image encoding, ${options.images} images in batches of ${options.batchSize} …`);
    const imageEncode = await timeImageEncoding(bundle, testSet, sessionOptions, options.batchSize);

    const endToEnd = {
      cliPath: CLI_PATH,
      model: options.model,
      dataDir: data.dataDir,
      batchSize: options.batchSize,
      threads: options.threads,
      device: options.device,
      ...(options.deviceId !== undefined ? { deviceId: options.deviceId } : {}),
      outputDir: work,
    };
    const e2eCache = join(work, 'cache-e2e');
    logger.info('end to end, cold (text encoder runs: 100 classes × 18 templates) …');
    const cold = await runEndToEnd({ ...endToEnd, variant: 'fp32', name: 'cold', cacheDir: e2eCache });
    logger.info('end to end, warm (cached text embeddings) …');
    const warm = await runEndToEnd({ ...endToEnd, variant: 'fp32', name: 'warm', cacheDir: e2eCache });
    const coldPredictions = await readTop5Lines(cold.predictionsPath);
    const warmAgreement = compareTop5(coldPredictions, await readTop5Lines(warm.predictionsPath));
    const variants = await benchVariants(options, endToEnd, work, cold, logger);

    logger.info(`folder case: ${options.folderImages} JPEGs of ${FOLDER_IMAGE_WIDTH}×${FOLDER_IMAGE_HEIGHT}, clip-eval eval FOLDER against image encoding, ${options.folderRepeats}× …`);
    const folder = await writeBenchFolder(work, testSet, options.folderImages);
    const folderCase = await measureFolderCase(
      folder,
      options.folderRepeats,
      async () => (await timeImageEncoding(bundle, testSet, sessionOptions, options.batchSize)).imagesPerSecond,
      (name) => runEndToEnd({ ...endToEnd, folder: folder.root, variant: 'fp32', name, cacheDir: e2eCache }),
    );

    logger.info(`check case: cifar100 --per-class ${options.checkPerClass} on ${options.checkImages} synthetic images, against image encoding, ${options.folderRepeats}× after a first run …`);
    const checkData = await writeBenchCifar(join(work, 'check'), { count: options.checkImages, seed: options.seed + 1, python: options.python, harnessDir });
    const check = await measureCheckCase(
      options.checkPerClass,
      options.folderRepeats,
      async () => (await timeImageEncoding(bundle, testSet, sessionOptions, options.batchSize)).imagesPerSecond,
      (name) => runEndToEnd({ ...endToEnd, dataDir: checkData.dataDir, extraArgs: ['--per-class', String(options.checkPerClass)], variant: 'fp32', name, cacheDir: e2eCache }),
    );

    logger.info(`classify case: ${options.classifyImages} JPEG photos of ${PHOTO_WIDTH}×${PHOTO_HEIGHT}, stage by stage, then clip-eval classify ${options.folderRepeats}× …`);
    const photos = await writeBenchPhotos(work, options.classifyImages, options.seed);
    const classifyStages = await timeClassifyStages(photos, bundle, sessionOptions, options.batchSize);
    const classify = await runClassifyCase({ ...endToEnd, cliPath: CLI_PATH }, photos, options.folderRepeats);

    const peer: PeerResult = {};
    if (peerPlan.model) {
      logger.info(`PyTorch peer (${join(harnessDir, 'torch_eval.py')}, prompts padded to ${options.peerTextLength === 'context' ? bundle.contextLength : 'the longest'}) …`);
      const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
      const blas = choosePeerBlasCore(options.peerBlas, await detectPeerBlasCore(options.python), cpuVectorLevel(cpuinfo), process.env.OPENBLAS_CORETYPE || undefined);
      logger.info(`peer BLAS: ${blas.pinned ? `OPENBLAS_CORETYPE=${blas.pinned}` : 'as detected'} (${blas.reason})`);
      const tokenRows = peerTokenRows(await promptTokenRows(bundle, testSet.classNames), options.peerTextLength, bundle.contextLength);
      peer.run = await runPeer({
        python: options.python,
        harnessDir,
        model: peerPlan.model,
        testBin: data.testBin,
        tokenRows,
        templates: OPENAI_CIFAR_TEMPLATES.length,
        batchSize: options.batchSize,
        threads: options.threads,
        outputDir: work,
        blas,
      });
      peer.agreement = compareTop5(await readTop5Lines(peer.run.predictionsPath), coldPredictions);
    } else if (peerPlan.skipped) {
      peer.skipped = peerPlan.skipped;
    }

    const peakRssBytes = cold.maxRssBytes !== undefined && warm.maxRssBytes !== undefined ? Math.max(cold.maxRssBytes, warm.maxRssBytes) : undefined;
    const targets = evaluateTargets(
      {
        preprocessImagesPerSecond: preprocess.imagesPerSecond,
        imageEncodeImagesPerSecond: imageEncode.imagesPerSecond,
        coldImagesPerSecond: cold.imagesPerSecond,
        warmImagesPerSecond: warm.imagesPerSecond,
        ...(peakRssBytes !== undefined ? { peakRssBytes } : {}),
      },
      peerFigures(peer.run),
    );
    const agreementPassed = peer.agreement === undefined || peer.agreement.top1 >= MIN_PEER_TOP1_AGREEMENT;
    const result = {
      schema: 'clip-eval/bench@1',
      createdAt: new Date().toISOString(),
      tool: { version: VERSION, node: process.version, onnxruntime: ort.env.versions.common },
      machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), loadAverageBefore: loadBefore, loadAverageAfter: loadavg() },
      options: {
        model: options.model,
        variant: bundle.variant,
        images: options.images,
        batchSize: options.batchSize,
        threads: options.threads,
        device: options.device,
        ...(options.deviceId !== undefined ? { deviceId: options.deviceId } : {}),
        classes: testSet.classNames.length,
        templates: OPENAI_CIFAR_TEMPLATES.length,
      },
      command: `node ${join('dist', 'scripts', 'bench.js')} ${argv.join(' ')}`,
      data: { testBin: data.testBin, source: data.source },
      ours: { preprocess, preprocessAllCores, imageEncode, cold, warm, warmAgreesWithCold: warmAgreement, peakRssBytes, folder: folderCase, check, classifyStages, classify },
      variants,
      peer: { ...peer, ...(peer.run ? { textLength: options.peerTextLength } : {}) },
      targets,
      agreementPassed,
    };
    await writeFile(options.out, `${JSON.stringify(result, null, 2)}\n`);

    const title =
      `clip-eval bench: ${bundle.id} (${bundle.variant}), ${options.images} images, batch ${options.batchSize}, ` +
      `${options.threads} threads, ${options.device}; ratio = clip-eval ÷ peer`;
    process.stdout.write(
      formatTable(title, [...tableRows(preprocess, preprocessAllCores, imageEncode, cold, warm, targets, peer, variants), ...folderRows(folderCase), ...checkRows(check), ...classifyRows(classifyStages, classify)]),
    );
    if (peer.skipped) process.stdout.write(`peer: skipped (${peer.skipped})\n`);
    if (peer.run) {
      const { blas, blasCoreUsed } = peer.run;
      process.stdout.write(`peer: torch ${peer.run.summary.torch}, OpenBLAS ${blasCoreUsed ?? 'core unknown'} kernels${blas.pinned ? ` (OPENBLAS_CORETYPE=${blas.pinned}; detected ${blas.detected ?? 'unknown'})` : ''}\n`);
    }
    for (const variant of variants) if (variant.skipped) process.stdout.write(`${variant.variant}: not in the bundle\n`);
    if (busy) process.stdout.write(`warning: ${busy}\n`);
    process.stdout.write(`results: ${options.out}\n`);
    if (!agreementPassed) {
      logger.warn(`clip-eval and the peer agree on the top-1 class for ${(100 * peer.agreement!.top1).toFixed(1)} % of images, below ${100 * MIN_PEER_TOP1_AGREEMENT} %`);
      return EXIT.checkFailed;
    }
    return EXIT.ok;
  } finally {
    if (!options.workDir) await rm(work, { recursive: true, force: true });
  }
}

const runAsScript = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (runAsScript) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      const known = error instanceof ClipEvalError;
      process.stderr.write(`bench: ${wordError(error)}\n`);
      process.exitCode = known ? error.exitCode : EXIT.internal;
    },
  );
}
