/** A worker thread of computeRetrieval: ranks one range of captions over shared memory (see metrics.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { rankCaptions, type RankInput, type RankOutput } from './similarity.js';

const { input, output } = workerData as { input: RankInput; output: RankOutput };
rankCaptions(input, output);
parentPort!.postMessage('done');
