import { describeError, type Hint, type InputName, type Wording } from '../core/errors.js';

/**
 * The one table from the library's facts to the CLI's words: each user input as the flag that sets it,
 * each suggested fix with the flags that do it. Library errors carry only the facts (src/core/errors.ts).
 */
const FLAGS: Record<InputName, string> = {
  model: '--model',
  visionModel: '--vision-model',
  textModel: '--text-model',
  tokenizer: '--tokenizer',
  variant: '--variant',
  device: '--device',
  deviceId: '--device-id',
  threads: '--threads',
  batchSize: '--batch-size',
  top: '--top',
  subset: '--limit/--per-class',
  templates: '--templates',
  labels: '--labels',
  dataDir: '--data-dir',
  datasetUrl: '--dataset-url',
  datasetMd5: '--dataset-md5',
  offline: '--offline',
  classnames: '--classnames',
  split: '--split',
  family: '--family',
};

const HINTS: { [K in Hint['kind']]: (hint: Extract<Hint, { kind: K }>) => string } = {
  useCpu: () => 'use --device cpu',
  runOnline: (hint) => `run once without --offline to download ${hint.download}`,
  useOffline: (hint) =>
    hint.cached === 'model'
      ? 'or use --offline with a cached model, or --model DIR with a model folder on disk (a first run has nothing cached; `npm run fixture -- --out DIR` in a checkout writes a small one)'
      : `or use --offline with a cached ${hint.cached}`,
  modelOrFiles: () => 'give either --model or --vision-model, --text-model and --tokenizer',
  giveModelFiles: (hint) => (hint.tokenizerOnly ? 'or give the file with --tokenizer' : 'or give the files with --vision-model, --text-model and --tokenizer'),
  recursive: (hint) => `add --recursive to look in its ${hint.subfolders} subfolder${hint.subfolders === 1 ? '' : 's'}`,
  fetchDataset: (hint) => `run \`clip-eval fetch ${hint.dataset}\` where ${hint.url} is reachable, or pass --data-dir`,
  giveClassNames: () => 'give them with --classnames',
  chooseFamily: () => 'choose one with --family NAME',
  skipUnreadable: () => 'add --skip-unreadable to skip and count such images instead',
  workWithoutNetwork: () => 'to work without the network pass --data-dir DIR (an extracted copy) or --offline with a filled cache, or download from a mirror with --dataset-url URL',
};

/** The CLI's words: flags for inputs and fixes. */
export const FLAG_WORDING: Wording = {
  input: (fact) => (fact.value === undefined ? FLAGS[fact.name] : `${FLAGS[fact.name]} ${fact.value}`),
  hint: (hint) => (HINTS[hint.kind] as (hint: Hint) => string)(hint),
};

/** An error as the CLI shows it: one line, inputs named by their flags. */
export function wordError(error: unknown): string {
  return describeError(error, FLAG_WORDING);
}
