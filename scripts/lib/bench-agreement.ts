import { readFile } from 'node:fs/promises';
import { inputError } from '../../src/core/errors.js';

/**
 * Per-image top-5 class lists from a JSON Lines file as clip-eval's --predictions and the reference
 * torch_eval.py write them ({"index", "top5", ...} per image; other lines, such as a summary, skipped).
 */
export async function readTop5Lines(path: string): Promise<Map<number, number[]>> {
  const rows = new Map<number, number[]>();
  const lines = (await readFile(path, 'utf8')).split('\n');
  lines.forEach((line, lineIndex) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw inputError(`${path}:${lineIndex + 1}: not JSON; expected one {"index", "top5"} object per line`);
    }
    if (typeof row !== 'object' || row === null || !('index' in row)) return;
    const { index, top5 } = row as { index: unknown; top5: unknown };
    if (!Number.isInteger(index) || !Array.isArray(top5) || top5.length === 0 || !top5.every((c) => Number.isInteger(c))) {
      throw inputError(`${path}:${lineIndex + 1}: expected an integer "index" and a non-empty integer array "top5"`);
    }
    rows.set(index as number, top5 as number[]);
  });
  return rows;
}

export interface Agreement {
  /** Images present in both. */
  images: number;
  /** Share of those whose best class is the same, 0..1. */
  top1: number;
  /** Share with the same five classes in the same order. */
  top5Order: number;
}

export function compareTop5(reference: Map<number, number[]>, candidate: Map<number, number[]>): Agreement {
  let images = 0;
  let top1 = 0;
  let top5Order = 0;
  for (const [index, expected] of reference) {
    const actual = candidate.get(index);
    if (!actual) continue;
    images += 1;
    if (actual[0] === expected[0]) top1 += 1;
    if (actual.length === expected.length && actual.every((c, i) => c === expected[i])) top5Order += 1;
  }
  if (images === 0) throw inputError('no image is in both prediction files, so their agreement cannot be measured');
  return { images, top1: top1 / images, top5Order: top5Order / images };
}
