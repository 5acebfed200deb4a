import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tar from 'tar';

/** What goes into a CIFAR-style .tar.gz: member path (inside the archive) to content. */
export type ArchiveMembers = Record<string, Uint8Array | string>;

/** The member layout of the official CIFAR-100 binary release. */
export function cifar100Members(testRecords: Uint8Array, fineNames: string[], coarseNames: string[]): ArchiveMembers {
  return {
    'cifar-100-binary/test.bin': testRecords,
    'cifar-100-binary/fine_label_names.txt': `${fineNames.join('\n')}\n`,
    'cifar-100-binary/coarse_label_names.txt': `${coarseNames.join('\n')}\n`,
  };
}

/** The member layout of the official CIFAR-10 binary release. */
export function cifar10Members(testRecords: Uint8Array, names: string[]): ArchiveMembers {
  return {
    'cifar-10-batches-bin/test_batch.bin': testRecords,
    'cifar-10-batches-bin/batches.meta.txt': `${names.join('\n')}\n\n`,
  };
}

/** Writes the members as files under `dir`, as extracting the archive there would. */
export async function writeMembers(dir: string, members: ArchiveMembers): Promise<void> {
  for (const [name, content] of Object.entries(members)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
}

/** Writes the members as a gzipped tarball at `archivePath`. */
export async function writeTarGz(archivePath: string, members: ArchiveMembers): Promise<void> {
  const staging = await mkdtemp(join(tmpdir(), 'clip-eval-archive-'));
  try {
    await writeMembers(staging, members);
    await mkdir(dirname(archivePath), { recursive: true });
    // A fixed mtime makes archives byte-identical between runs (portable alone keeps file times).
    await tar.c({ gzip: true, file: archivePath, cwd: staging, portable: true, mtime: new Date(0) }, Object.keys(members));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
