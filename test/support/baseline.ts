import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';

export type Json = Record<string, any>;

/** Writes the JSON result at `from`, changed by `spoil`, to `to` (a baseline a test makes wrong on purpose); returns `to`. */
export async function writeSpoiledResult(from: string, to: string, spoil: (result: Json) => void): Promise<string> {
  const result = JSON.parse(await readFile(from, 'utf8')) as Json;
  spoil(result);
  await writeFile(to, JSON.stringify(result));
  return to;
}

/** The one line a refused run writes on stderr, checked to be one line starting "clip-eval: ". */
export function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^clip-eval: /);
  return lines[0]!;
}
