import { parentPort } from 'node:worker_threads';
import { hashFile } from './file-hash.js';

/** The thread behind hashFileOffThread: { id, path } in, { id, sha256 } or { id, error } out, one file at a time. */
export interface HashJob {
  id: number;
  path: string;
}

export type HashAnswer = { id: number; sha256: string } | { id: number; error: { message: string; code?: string; syscall?: string; path?: string } };

let queue = Promise.resolve();
parentPort?.on('message', (job: HashJob) => {
  queue = queue.then(async () => {
    let answer: HashAnswer;
    try {
      answer = { id: job.id, sha256: await hashFile(job.path) };
    } catch (error) {
      const { message, code, syscall, path } = error as NodeJS.ErrnoException;
      answer = { id: job.id, error: { message: String(message), ...(code ? { code } : {}), ...(syscall ? { syscall } : {}), ...(path ? { path } : {}) } };
    }
    parentPort!.postMessage(answer);
  });
});
