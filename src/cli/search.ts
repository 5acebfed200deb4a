import { lstat } from 'node:fs/promises';
import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { EXIT, usageError } from '../core/errors.js';
import { showUnprintable } from '../core/unprintable.js';
import { expandInputs, isImageFileName, STDIN_ARGUMENT } from '../datasets/image-files.js';
import { parseDevice } from '../model/session.js';
import { searchImages, type SearchOptions, type SearchRun } from '../tasks/search/search.js';
import { addCommonOptions, addImageFileOptions, addInferenceOptions, addModelOptions, loggerFor, modelChoices, type CommonOptions, type ModelOptions } from './flags.js';
import { readStdinBytes } from './io.js';
import { positiveInteger } from './options.js';
import { FLAG_WORDING } from './wording.js';

interface SearchCliOptions extends CommonOptions, ModelOptions {
  image?: string;
  top: number;
  json?: boolean;
  recursive?: boolean;
  autoOrient: boolean;
  maxPixels: number;
  device: string;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  cache: boolean;
}

function formatTable(run: SearchRun): string {
  const rankWidth = Math.max(4, String(run.hits.length).length);
  const lines = [`${'rank'.padStart(rankWidth)}  score     path`];
  for (const hit of run.hits) lines.push(`${String(hit.rank).padStart(rankWidth)}  ${hit.score.toFixed(4).padStart(7)}  ${showUnprintable(hit.file)}`);
  lines.push('', `${run.images} ${run.images === 1 ? 'image' : 'images'} ranked (${run.encoded} encoded, ${run.cached} from the cache)`);
  return `${lines.join('\n')}\n`;
}

function formatJsonLines(run: SearchRun): string {
  const rows = run.hits.map((hit) => JSON.stringify({ rank: hit.rank, file: hit.file, score: hit.score }));
  rows.push(JSON.stringify({ summary: { images: run.images, encoded: run.encoded, cached: run.cached } }));
  return `${rows.join('\n')}\n`;
}

/**
 * What the positional arguments mean: a text query then the images, or, with --image, only images. A
 * text given beside --image is an argument that names no file or folder and no image either.
 */
async function searchQuery(positionals: string[], options: SearchCliOptions): Promise<{ query: SearchOptions['query']; files: string[] }> {
  if (options.image === undefined) {
    const [text, ...files] = positionals;
    if (text === undefined) throw usageError('give the text to search for (or --image FILE) and the images or folders to search');
    if (text.trim() === '') throw usageError('the search query is empty; give the text to search for, e.g. "a red car"');
    if (files.length === 0) throw usageError('give the images or folders to search after the query');
    return { query: { text }, files };
  }
  if (positionals.length === 0) throw usageError('--image: give the images or folders to search');
  for (const argument of positionals) {
    if (argument === STDIN_ARGUMENT || isImageFileName(argument)) continue;
    const exists = await lstat(argument).then(() => true, () => false);
    if (!exists) {
      throw usageError(`${JSON.stringify(argument)} is no file or folder: search by a text query or by --image FILE, not both (with --image every argument names images to search)`);
    }
  }
  return { query: { image: { file: options.image, path: options.image } }, files: positionals };
}

async function runSearch(positionals: string[], options: SearchCliOptions): Promise<number> {
  const { query, files } = await searchQuery(positionals, options);
  const logger = loggerFor(options);
  const models = modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] });
  if (models.length !== 1) throw usageError('search uses one model: give at most one --model and one --variant');
  const images = await expandInputs(files, { recursive: options.recursive, readStdin: readStdinBytes, wording: FLAG_WORDING });
  const run = await searchImages({
    query,
    k: options.top,
    images,
    model: models[0]!,
    cacheRoot: resolveCacheRoot(options.cacheDir),
    device: parseDevice(options.device),
    deviceId: options.deviceId,
    threads: options.threads,
    batchSize: options.batchSize,
    family: options.family,
    textCache: options.cache,
    imageCache: options.cache,
    decode: { autoOrient: options.autoOrient, maxPixels: options.maxPixels },
    offline: options.offline,
    logger,
    quiet: options.quiet ?? false,
    imageProgress: images.length > options.batchSize,
    onFailure: (error) => process.stderr.write(`clip-eval: ${showUnprintable(error)}\n`),
  });
  process.stdout.write(options.json ? formatJsonLines(run) : formatTable(run));
  if (run.failed === 0) return EXIT.ok;
  process.stderr.write(`clip-eval: ${run.failed} of ${images.length} ${images.length === 1 ? 'image' : 'images'} could not be read\n`);
  return EXIT.input;
}

export function searchCommand(setExit: (code: number) => void): Command {
  const command = new Command('search')
    .description('rank images by similarity to a text query or, with --image, to an image (cosine of the CLIP embeddings); image embeddings are cached, so a second search over the same files encodes nothing')
    .usage('[options] <query> <file...>\n       clip-eval search [options] --image <file> <file...>')
    .argument('[query]', 'the text to search for, e.g. "a red car on a beach" (none with --image)')
    .argument('[file...]', 'image files, folders of images, or - for standard input')
    .option('--image <file>', 'rank by similarity to this image instead of a text query (find similar photos); it is ranked too when it is among the files')
    .option('-k, --top <n>', 'how many of the best images to show', positiveInteger('--top'), 10)
    .option('--json', 'print JSON Lines {"rank","file","score"}, then {"summary":{"images","encoded","cached"}}');
  addImageFileOptions(command, 'search');
  addModelOptions(command, false);
  addInferenceOptions(command);
  addCommonOptions(command);
  command.action(async (query: string | undefined, files: string[], options: SearchCliOptions) => setExit(await runSearch(query === undefined ? files : [query, ...files], options)));
  return command;
}
