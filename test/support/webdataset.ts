import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import * as tar from 'tar';
import { classImage } from '../../scripts/lib/pattern-images.js';
import { makeTempDir } from './paths.js';
import type { TestServer } from './http-server.js';

/**
 * Webdataset fixtures in CLIP_benchmark's layout: shards built with the tar package from pattern-CLIP
 * class images (PNG, JPEG and lossless WebP in turn), which the pattern CLIP classifies.
 */

export interface ShardMember {
  name: string;
  bytes: Buffer;
}

export interface FixtureSample {
  key: string;
  label: number;
  format: 'png' | 'jpg' | 'webp';
  bytes: Buffer;
}

const FORMATS = ['png', 'jpg', 'webp'] as const;

/** The class image of `className` in `format`. */
export async function encodeClassImage(className: string, format: FixtureSample['format']): Promise<Buffer> {
  const image = classImage(className);
  if (format === 'png') return image.png().toBuffer();
  if (format === 'jpg') return image.jpeg({ quality: 95 }).toBuffer();
  return image.webp({ lossless: true }).toBuffer();
}

/** `perClass` samples of each class, keys s0000000…, formats cycling png, jpg, webp, classes interleaved. */
export async function makeSamples(classNames: readonly string[], perClass: number): Promise<FixtureSample[]> {
  const samples: FixtureSample[] = [];
  for (let index = 0; index < classNames.length * perClass; index++) {
    const label = index % classNames.length;
    const format = FORMATS[index % FORMATS.length]!;
    samples.push({ key: `s${String(index).padStart(7, '0')}`, label, format, bytes: await encodeClassImage(classNames[label]!, format) });
  }
  return samples;
}

/** A sample's members as webdataset writes them: image, label, and a .json one readers ignore. */
export function sampleMembers(sample: FixtureSample): ShardMember[] {
  return [
    { name: `${sample.key}.${sample.format}`, bytes: sample.bytes },
    { name: `${sample.key}.cls`, bytes: Buffer.from(`${sample.label}\n`) },
    { name: `${sample.key}.json`, bytes: Buffer.from(JSON.stringify({ key: sample.key })) },
  ];
}

/** A tar file holding `members` in this order (folders in names become folders in the archive). */
export async function writeShard(path: string, members: readonly ShardMember[]): Promise<void> {
  const staging = await makeTempDir('clip-eval-shard-');
  try {
    for (const member of members) {
      await mkdir(dirname(join(staging, member.name)), { recursive: true });
      await writeFile(join(staging, member.name), member.bytes);
    }
    await mkdir(dirname(path), { recursive: true });
    await tar.create({ file: path, cwd: staging, portable: true, noDirRecurse: true }, members.map((member) => member.name));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface LayoutOptions {
  classNames: readonly string[];
  templates: readonly string[];
  /** Each shard's members. */
  shards: readonly (readonly ShardMember[])[];
  split?: string;
  /** What nshards.txt says; default the number of shards; null: no nshards.txt. */
  nshards?: number | null;
}

/** Writes the layout into `root`: classnames.txt, the templates file, <split>/nshards.txt and the shards. */
export async function writeLayout(root: string, options: LayoutOptions): Promise<void> {
  const split = options.split ?? 'test';
  await mkdir(join(root, split), { recursive: true });
  await writeFile(join(root, 'classnames.txt'), `${options.classNames.join('\n')}\n`);
  await writeFile(join(root, 'zeroshot_classification_templates.txt'), `${options.templates.join('\n')}\n`);
  if (options.nshards !== null) await writeFile(join(root, split, 'nshards.txt'), `${options.nshards ?? options.shards.length}\n`);
  for (const [index, members] of options.shards.entries()) await writeShard(join(root, split, `${index}.tar`), members);
}

/**
 * Serves every file under `root` as the hub serves the dataset repo `repo` at `revision`: text files
 * directly, .tar files (LFS on the real hub) as a redirect to a blob URL with X-Linked-Etag and X-Linked-Size.
 */
export async function publishDatasetRepo(hub: TestServer, repo: string, root: string, revision = 'main'): Promise<void> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries.filter((item) => item.isFile())) {
    const path = relative(root, join(entry.parentPath, entry.name)).split('\\').join('/');
    const content = await readFile(join(root, path));
    const resolvePath = `/datasets/${repo}/resolve/${revision}/${path}`;
    if (!path.endsWith('.tar')) {
      await hub.route(resolvePath, { body: content });
      continue;
    }
    const sha256 = createHash('sha256').update(content).digest('hex');
    await hub.route(`/blobs/${sha256}`, { body: content });
    await hub.route(resolvePath, { redirectTo: `/blobs/${sha256}`, headers: { 'X-Linked-Etag': `"${sha256}"`, 'X-Linked-Size': String(content.length) } });
  }
}
