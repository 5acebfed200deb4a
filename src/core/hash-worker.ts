import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { parentPort } from 'node:worker_threads';

/** The thread behind hashFileOffThread: { id, path } in, { id, sha256 } or { id, error } out, one file at a time. */
export interface HashJob {
  id: number;
  path: string;
}

export type HashAnswer = { id: number; sha256: string } | { id: number; error: { message: string; code?: string; syscall?: string; path?: string } };

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

let queue = Promise.resolve();
parentPort?.on('message', (job: HashJob) => {
  queue = queue.then(async () => {
    let answer: HashAnswer;
    try {
      answer = { id: job.id, sha256: await sha256Of(job.path) };
    } catch (error) {
      const { message, code, syscall, path } = error as NodeJS.ErrnoException;
      answer = { id: job.id, error: { message: String(message), ...(code ? { code } : {}), ...(syscall ? { syscall } : {}), ...(path ? { path } : {}) } };
    }
    parentPort!.postMessage(answer);
  });
});
