import { join } from 'node:path';
import { cifar100Members, writeMembers } from './cifar-archive.js';
import { CIFAR100_COARSE_NAMES, CIFAR100_FINE_TO_COARSE, CIFAR100_RAW_NAMES } from './cifar-names.js';
import { drawPatternCifar } from './pattern-cifar.js';

const RECORD_BYTES = 2 + 3 * 32 * 32;

/**
 * An extracted synthetic CIFAR-100 (for --data-dir) that the pattern CLIP gets partly wrong, as a real
 * model would: every `every`-th image is blended half-and-half with an image of the next class of its
 * super-class, so that its top-1 falls on either side and its mistakes stay within the super-class.
 * Returns the folder to pass as --data-dir.
 */
export async function writeConfusableCifar100(dir: string, options: { perClass: number; every?: number }): Promise<string> {
  const every = options.every ?? 3;
  const { records, labels } = drawPatternCifar({ name: 'cifar100', perClass: options.perClass });
  const firstOf = new Map<number, number>();
  labels.forEach((label, index) => firstOf.has(label) || firstOf.set(label, index));
  const siblings = (label: number) => CIFAR100_FINE_TO_COARSE.flatMap((coarse, fine) => (coarse === CIFAR100_FINE_TO_COARSE[label] ? [fine] : []));
  const original = records.slice();
  labels.forEach((label, index) => {
    if (index % every !== 0) return;
    const group = siblings(label);
    const partner = group[(group.indexOf(label) + 1) % group.length]!;
    const from = firstOf.get(partner)! * RECORD_BYTES + 2;
    const to = index * RECORD_BYTES + 2;
    // Just under half of the partner: the two classes' scores land close, on either side.
    const weight = 0.44 + 0.1 * ((index * 7) % 10) / 10;
    for (let i = 0; i < RECORD_BYTES - 2; i += 1) records[to + i] = Math.round((1 - weight) * original[to + i]! + weight * original[from + i]!);
  });
  await writeMembers(dir, cifar100Members(records, CIFAR100_RAW_NAMES, CIFAR100_COARSE_NAMES));
  return join(dir, 'cifar-100-binary');
}
