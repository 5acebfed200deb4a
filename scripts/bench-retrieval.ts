/**
 * Retrieval similarity benchmark: computeRetrieval (recall@1,5,10 both ways and each caption's top 10)
 * on random unit vectors at MSCOCO-5k scale, each run in a fresh process so that its peak memory is
 * its own; prints seconds and peak RSS per run and their spread.
 *
 *   npm run bench:retrieval -- [--images 5000] [--captions 25000] [--dim 512] [--runs 3] [--workers N]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { availableParallelism, loadavg } from 'node:os';
import { SeededRandom } from './lib/seeded-random.js';
import { computeRetrieval } from '../src/tasks/retrieval/metrics.js';

interface Options {
  images: number;
  captions: number;
  dim: number;
  runs: number;
  workers?: number;
}

interface RunFigures {
  seconds: number;
  /** Peak resident memory of the whole process (all threads), and what it held before the similarity. */
  peakRssBytes: number;
  rssBeforeBytes: number;
  blockFloats: number;
  recallAt1: number;
}

function parseOptions(argv: readonly string[]): Options & { child: boolean } {
  const options: Options & { child: boolean } = { images: 5000, captions: 25000, dim: 512, runs: 3, child: false };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i]!;
    if (flag === '--child') {
      options.child = true;
      continue;
    }
    const key = ({ '--images': 'images', '--captions': 'captions', '--dim': 'dim', '--runs': 'runs', '--workers': 'workers' } as const)[flag];
    const value = Number(argv[i + 1]);
    if (!key || !Number.isInteger(value) || value < 1) throw new Error(`bench-retrieval: ${flag} ${argv[i + 1] ?? ''}: expected --images/--captions/--dim/--runs/--workers N (a positive whole number)`);
    options[key] = value;
    i += 1;
  }
  return options;
}

/** Rows of Gaussian noise scaled to unit length. */
function unitVectors(random: SeededRandom, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r += 1) {
    let norm = 0;
    for (let d = 0; d < dim; d += 1) {
      const v = random.normal();
      out[r * dim + d] = v;
      norm += v * v;
    }
    const scale = 1 / Math.sqrt(norm);
    for (let d = 0; d < dim; d += 1) out[r * dim + d]! *= scale;
  }
  return out;
}

async function childRun(options: Options): Promise<RunFigures> {
  const random = new SeededRandom(7);
  const images = unitVectors(random, options.images, options.dim);
  const captions = unitVectors(random, options.captions, options.dim);
  const captionImage = Int32Array.from({ length: options.captions }, (_, c) => c % options.images);
  const rssBeforeBytes = process.memoryUsage.rss();
  const start = performance.now();
  const scores = await computeRetrieval({ images, captions, dim: options.dim, captionImage, ks: [1, 5, 10], top: 10, ...(options.workers !== undefined ? { workers: options.workers } : {}) });
  const seconds = (performance.now() - start) / 1000;
  return { seconds, peakRssBytes: process.resourceUsage().maxRSS * 1024, rssBeforeBytes, blockFloats: scores.blockFloats, recallAt1: scores.metrics.imageRetrievalRecall['1']! };
}

function spread(values: readonly number[]): string {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return `mean ${mean.toFixed(2)}, min ${min.toFixed(2)}, max ${max.toFixed(2)}`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.child) {
    process.stdout.write(`${JSON.stringify(await childRun(options))}\n`);
    return;
  }
  const script = fileURLToPath(import.meta.url);
  const [load] = loadavg();
  process.stdout.write(`retrieval similarity: ${options.images} images × ${options.captions} captions, dim ${options.dim}, workers ${options.workers ?? 'default'}; ${availableParallelism()} cores, load ${load!.toFixed(2)}\n`);
  const runs: RunFigures[] = [];
  for (let run = 1; run <= options.runs; run += 1) {
    const child = spawnSync(process.execPath, [script, '--child', ...process.argv.slice(2)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`bench-retrieval: run ${run} exited ${child.status ?? child.signal}`);
    const figures = JSON.parse(child.stdout) as RunFigures;
    runs.push(figures);
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
    process.stdout.write(`  run ${run}: ${figures.seconds.toFixed(2)} s, peak RSS ${mb(figures.peakRssBytes)} MiB (${mb(figures.rssBeforeBytes)} MiB before the similarity), block ${figures.blockFloats} floats, recall@1 ${figures.recallAt1}\n`);
  }
  process.stdout.write(`seconds: ${spread(runs.map((r) => r.seconds))}\n`);
  process.stdout.write(`peak RSS MiB: ${spread(runs.map((r) => r.peakRssBytes / 2 ** 20))}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
