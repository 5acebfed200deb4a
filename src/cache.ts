import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/**
 * The cache root: --cache-dir, else CLIP_EVAL_CACHE, else $XDG_CACHE_HOME/clip-eval, else ~/.cache/clip-eval.
 */
export function resolveCacheRoot(cacheDir?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (cacheDir) return resolve(cacheDir);
  if (env.CLIP_EVAL_CACHE) return resolve(env.CLIP_EVAL_CACHE);
  if (env.XDG_CACHE_HOME) return resolve(env.XDG_CACHE_HOME, 'clip-eval');
  return join(homedir(), '.cache', 'clip-eval');
}

/** A name next to `target` that no concurrent writer will pick. */
export function temporarySibling(target: string, suffix = 'tmp'): string {
  return `${target}.${process.pid}-${randomBytes(4).toString('hex')}.${suffix}`;
}

/**
 * Writes a file so that readers only ever see nothing or the whole content: a private temporary file,
 * flushed to disk, then renamed over the target (rename is atomic within one file system).
 */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const temporary = temporarySibling(target);
  try {
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

export async function hashFile(path: string, algorithm: 'sha256' | 'md5' = 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
