/**
 * Loaded into a measured node process with `node --import`: on exit, writes the process's peak resident
 * set size in bytes to the file named by CLIP_EVAL_BENCH_RSS_FILE (Node reports no child's rusage).
 */
import { writeFileSync } from 'node:fs';

const target = process.env.CLIP_EVAL_BENCH_RSS_FILE;
if (target) {
  process.on('exit', () => writeFileSync(target, String(process.resourceUsage().maxRSS * 1024)));
}
