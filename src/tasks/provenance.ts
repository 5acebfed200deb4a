import * as ort from 'onnxruntime-node';
import type { Logger } from '../core/log.js';
import { VERSION } from '../core/version.js';
import type { ModelBundle } from '../model/bundle.js';
import { fileDigest } from '../text/embedding-cache.js';

/**
 * What traces a result file to the run that wrote it, shared by every task's JSON: the tool and its
 * runtimes, when it ran, and the exact model files (by sha256, since a hub revision can move).
 */
export interface ToolInfo {
  name: 'clip-eval';
  version: string;
  node: string;
  onnxruntime: string;
}

export function toolInfo(): ToolInfo {
  return { name: 'clip-eval', version: VERSION, node: process.version, onnxruntime: ort.env.versions.common };
}

export interface ModelFile {
  role: 'vision' | 'text' | 'tokenizer';
  path: string;
  sha256: string;
}

/**
 * The bundle's files with their digests, remembered in the cache so that a model is hashed once;
 * `cacheRoot` undefined (the caches off) remembers nothing beyond the process.
 */
export async function modelFiles(bundle: ModelBundle, cacheRoot: string | undefined, logger: Logger): Promise<ModelFile[]> {
  const roles = [['vision', bundle.visionModelPath], ['text', bundle.textModelPath], ['tokenizer', bundle.tokenizerPath]] as const;
  return Promise.all(roles.map(async ([role, path]) => ({ role, path, sha256: await fileDigest(path, cacheRoot, logger) })));
}
