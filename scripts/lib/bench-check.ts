import { spreadOf, type Spread } from './bench-folder.js';
import type { EndToEndRun } from './bench-end-to-end.js';

/**
 * The CI check case (issue #14): `clip-eval cifar100 --per-class N` with the text embeddings cached, as
 * a CI job runs it on every commit, and how much of its wall time is not image encoding. Each repeat
 * times pure image encoding and then the check, back to back, so that each share compares figures
 * taken under the same load.
 */

/** Where a check's wall time goes, in seconds; the parts add up to `wallSeconds`. */
export interface CheckBreakdown {
  wallSeconds: number;
  /** Process start, module load, model bundle, data set, reports and exit: the process's wall time outside the evaluation. */
  outsideEvaluationSeconds: number;
  /** Reading the class embeddings (cached) or computing them. */
  textSeconds: number;
  /** The image loop beyond pure encoding of its images: vision session creation, first-batch warm-up, decoding not hidden. */
  loopOverheadSeconds: number;
  /** The check's images at the pure image-encoding rate. */
  encodingSeconds: number;
  /** The rest of the evaluation: model digests, metrics. */
  restSeconds: number;
}

export interface CheckRepeat {
  imageEncodeImagesPerSecond: number;
  breakdown: CheckBreakdown;
  /** 1 − encoding ÷ wall: the share of the wall time spent outside image encoding. */
  outsideShare: number;
  textEmbeddings: 'cached' | 'computed';
}

export interface CheckCase {
  perClass: number;
  images: number;
  command: string;
  /** The first run, which also fills the text-embedding cache when it was empty and reads the data set afresh. */
  first: CheckRepeat;
  repeats: CheckRepeat[];
  outsideShare: Spread;
}

export function breakdownOf(run: EndToEndRun, imageEncodeImagesPerSecond: number): CheckBreakdown {
  const { timing } = run;
  const encodingSeconds = run.images / imageEncodeImagesPerSecond;
  return {
    wallSeconds: run.wallSeconds,
    outsideEvaluationSeconds: run.wallSeconds - timing.wallSeconds,
    textSeconds: timing.textSeconds,
    loopOverheadSeconds: timing.imageSeconds - encodingSeconds,
    encodingSeconds,
    restSeconds: timing.wallSeconds - timing.textSeconds - timing.imageSeconds,
  };
}

function repeatOf(run: EndToEndRun, imageEncodeImagesPerSecond: number): CheckRepeat {
  const breakdown = breakdownOf(run, imageEncodeImagesPerSecond);
  return { imageEncodeImagesPerSecond, breakdown, outsideShare: 1 - breakdown.encodingSeconds / breakdown.wallSeconds, textEmbeddings: run.timing.textEmbeddings };
}

export async function measureCheckCase(
  perClass: number,
  repeats: number,
  timeEncoding: () => Promise<number>,
  runCheck: (name: string) => Promise<EndToEndRun>,
): Promise<CheckCase> {
  const measure = async (name: string) => {
    const imageEncodeImagesPerSecond = await timeEncoding();
    const run = await runCheck(name);
    return { run, repeat: repeatOf(run, imageEncodeImagesPerSecond) };
  };
  const first = await measure('check-first');
  const measured: CheckRepeat[] = [];
  for (let r = 0; r < repeats; r += 1) measured.push((await measure(`check-${r + 1}`)).repeat);
  return {
    perClass,
    images: first.run.images,
    command: first.run.command,
    first: first.repeat,
    repeats: measured,
    outsideShare: spreadOf(measured.map((repeat) => repeat.outsideShare)),
  };
}
