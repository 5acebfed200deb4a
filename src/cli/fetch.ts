import { Command } from 'commander';
import { resolveCacheRoot } from '../core/cache.js';
import { fetchCifar } from '../datasets/cifar/cifar.js';
import { EXIT, usageError } from '../core/errors.js';
import { fetchWebdataset, isWebdatasetSpec } from '../datasets/wds/source.js';
import { resolveModelBundle } from '../model/bundle.js';
import { addCommonOptions, addDataOptions, addModelOptions, dataOptions, loggerFor, modelChoices, type CommonOptions, type DataOptions, type ModelOptions } from './flags.js';

export function fetchCommand(setExit: (code: number) => void): Command {
  const command = new Command('fetch')
    .description('download data sets and models into the cache ahead of time (cifar100, cifar10, wds/NAME, wds:URL, model)')
    .argument('<what...>', 'cifar100, cifar10, model and/or webdatasets: wds/NAME[@REVISION] (the hub\'s clip-benchmark mirror) or wds:URL')
    .option('--split <name>', 'the webdataset split to fetch', 'test');
  addModelOptions(command, true);
  addDataOptions(command);
  addCommonOptions(command);
  command.action(async (what: string[], options: CommonOptions & ModelOptions & DataOptions & { split: string }) => {
    const logger = loggerFor(options);
    const cacheRoot = resolveCacheRoot(options.cacheDir);
    const items = what.map((item) => {
      if (item !== 'cifar100' && item !== 'cifar10' && item !== 'model' && !isWebdatasetSpec(item)) {
        throw usageError(`fetch ${item}: unknown; choose cifar100, cifar10, model, wds/NAME[@REVISION] or wds:URL`);
      }
      return item;
    });
    for (const item of items) {
      if (item === 'model') {
        for (const choice of modelChoices({ ...options, model: options.model ?? [], variant: options.variant ?? [] })) {
          const bundle = await resolveModelBundle({ ...choice, cacheRoot, offline: options.offline, quiet: options.quiet, logger });
          process.stdout.write(`${bundle.id} (${bundle.layout}, ${bundle.variant}): ${bundle.visionModelPath}, ${bundle.textModelPath}\n`);
        }
      } else if (item === 'cifar100' || item === 'cifar10') {
        const directory = await fetchCifar(item, { ...dataOptions(options), cacheRoot, offline: options.offline, quiet: options.quiet, logger });
        process.stdout.write(`${item}: ${directory}\n`);
      } else {
        const fetched = await fetchWebdataset(item, { cacheRoot, split: options.split, offline: options.offline, quiet: options.quiet, logger });
        const content = fetched.kind === 'captions' ? 'captions' : `${fetched.classes} ${fetched.classes === 1 ? 'class' : 'classes'}`;
        process.stdout.write(`${item} (${options.split}, ${fetched.shards} shard${fetched.shards === 1 ? '' : 's'}, ${content}): ${fetched.folder}\n`);
      }
    }
    setExit(EXIT.ok);
  });
  return command;
}

