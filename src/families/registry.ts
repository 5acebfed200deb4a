import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inputError, usageError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ModelBundle } from '../model/bundle.js';
import { readLogitHead } from '../model/logit-head.js';
import { readTokenizerConfig, type TokenizerConfig } from '../text/tokenizer.js';
import { clipFamily } from './clip.js';
import type { FamilyEvidence, ModelFamily, ProbabilityHead } from './family.js';
import { siglipFamily } from './siglip.js';
import { siglip2Family } from './siglip2.js';

/** Every family clip-eval evaluates; the first whose evidence matches a bundle is its family. */
export const FAMILIES: readonly ModelFamily[] = [clipFamily, siglipFamily, siglip2Family];

export function familyNamed(name: string): ModelFamily {
  const family = FAMILIES.find((candidate) => candidate.name === name);
  if (!family) {
    throw usageError(`unknown model family "${name}"; use ${FAMILIES.map((candidate) => candidate.name).join(', ')}`, { input: { name: 'family', value: name } });
  }
  return family;
}

/** A bundle's family and its tokenizer config, detected from its own files unless `name` chooses one. */
export interface BundleFamily {
  family: ModelFamily;
  tokenizerConfig: TokenizerConfig;
}

export async function bundleFamily(bundle: ModelBundle, name?: string): Promise<BundleFamily> {
  const tokenizerConfig = bundle.tokenizerConfigPath ? await readTokenizerConfig(bundle.tokenizerConfigPath) : {};
  if (name !== undefined) return { family: familyNamed(name), tokenizerConfig };
  const evidence: FamilyEvidence = {
    ...(bundle.modelType !== undefined ? { modelType: bundle.modelType } : {}),
    ...(tokenizerConfig.tokenizerClass !== undefined ? { tokenizerClass: tokenizerConfig.tokenizerClass } : {}),
    ...(bundle.openClipText?.clean !== undefined ? { openClipClean: bundle.openClipText.clean } : {}),
    ...(bundle.openClipText?.hfTokenizerName !== undefined ? { openClipTokenizer: bundle.openClipText.hfTokenizerName } : {}),
  };
  const family = FAMILIES.find((candidate) => candidate.matches(evidence));
  if (!family) {
    const said = [
      evidence.modelType !== undefined ? `model_type "${evidence.modelType}"` : undefined,
      evidence.tokenizerClass !== undefined ? `tokenizer_class "${evidence.tokenizerClass}"` : undefined,
    ].filter((part) => part !== undefined);
    throw inputError(`${bundle.id}: no known model family has ${said.join(' and ')} (known: ${FAMILIES.map((candidate) => candidate.title).join('; ')})`, undefined, {
      input: { name: 'model', value: bundle.id },
      hint: { kind: 'chooseFamily' },
    });
  }
  return { family, tokenizerConfig };
}

/**
 * The family's probability head for classify. A sigmoid family's learned scale and bias are read from
 * the full graph beside the vision model (Hugging Face's onnx/model.onnx); without it the probabilities
 * fall back to a softmax, with a warning that says so (the ranking is by similarity either way).
 */
export async function probabilityHead(bundle: ModelBundle, familyName: string, logger: Logger): Promise<ProbabilityHead> {
  const family = familyNamed(familyName);
  if (family.probability === 'softmax') return { kind: 'softmax' };
  const graph = join(dirname(bundle.visionModelPath), 'model.onnx');
  const present = existsSync(graph);
  const head = present ? await readLogitHead(graph) : undefined;
  if (head) return { kind: 'sigmoid', ...head };
  logger.warn(
    `${bundle.id}: ${present ? `${graph} holds no logit_scale and logit_bias` : `no ${graph}`}, where ${family.title}'s learned logit scale and bias are kept: ` +
      'probabilities are a softmax over 100 · cosine, not the model\'s own sigmoid; the ranking is by similarity either way',
  );
  return { kind: 'softmax' };
}
