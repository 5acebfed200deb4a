import { createHash } from 'node:crypto';
import { inputError } from '../../core/errors.js';
import type { ClassNameList } from '../class-names.js';
import type { Dataset, DatasetOpenOptions, DatasetSource, Sample, Superclasses } from '../dataset.js';
import { CIFAR_NAMES, loadCifarTestSet, type CifarName, type CifarTestSet } from './cifar.js';
import { cleanClassName } from './class-names.js';

/**
 * CIFAR-100 and CIFAR-10 as data sets: the parsed test file's records as planar 32×32 samples, ids
 * the record index, digests known from the files read, super-classes from CIFAR-100's coarse labels.
 */
const SIDE = 32;
const PIXEL_BYTES = 3 * SIDE * SIDE;

/** Fine class → super-class, read off the records (CIFAR-100 gives both labels on every image). */
function superclassesOf(testSet: CifarTestSet): Superclasses | undefined {
  if (!testSet.coarseLabels || !testSet.coarseClassNames) return undefined;
  const of = new Int32Array(testSet.classNames.length).fill(-1);
  for (let i = 0; i < testSet.count; i += 1) of[testSet.labels[i]!] = testSet.coarseLabels[i]!;
  return { names: testSet.coarseClassNames.map(cleanClassName), of };
}

/**
 * The test set as a Dataset. `classNames` replaces the names used in prompts (same count); the digest
 * then covers them too, so that a baseline measured with other names is not taken for this run's.
 */
export function cifarDataset(testSet: CifarTestSet, classNames?: ClassNameList): Dataset {
  if (classNames && classNames.names.length !== testSet.classNames.length) {
    throw inputError(`${classNames.names.length} names, but ${testSet.name} has ${testSet.classNames.length} classes`, undefined, {
      input: { name: 'classnames', value: classNames.spec },
    });
  }
  const superclasses = superclassesOf(testSet);
  return {
    name: testSet.name,
    split: 'test',
    classNames: classNames?.names ?? testSet.classNames,
    ...(superclasses ? { superclasses } : {}),
    defaultTemplates: 'openai',
    size: testSet.count,
    sha256: classNames
      ? createHash('sha256').update(`${testSet.source.sha256}\n${JSON.stringify(classNames.names)}\n`).digest('hex')
      : testSet.source.sha256,
    files: testSet.source.files,
    async *samples(): AsyncIterable<Sample> {
      for (let i = 0; i < testSet.count; i += 1) {
        const pixels = testSet.images.subarray(i * PIXEL_BYTES, (i + 1) * PIXEL_BYTES);
        yield { id: String(i), label: testSet.labels[i]!, image: { kind: 'planar', pixels, width: SIDE, height: SIDE } };
      }
    },
  };
}

export const cifarSource: DatasetSource = {
  title: 'CIFAR (cifar100, cifar10)',
  matches: (spec) => (CIFAR_NAMES as readonly string[]).includes(spec),
  async open(spec: string, options: DatasetOpenOptions): Promise<Dataset> {
    const name = spec as CifarName;
    if (options.split !== undefined && options.split !== 'test') {
      throw inputError(`data set ${name}: has only the test split, not "${options.split}"`);
    }
    const testSet = await loadCifarTestSet(name, {
      cacheRoot: options.cacheRoot,
      dataDir: options.dataDir,
      url: options.url,
      md5: options.md5,
      offline: options.offline,
      quiet: options.quiet,
      logger: options.logger,
    });
    return cifarDataset(testSet, options.classNames);
  },
};
