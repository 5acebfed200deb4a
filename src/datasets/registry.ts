import { inputError } from '../core/errors.js';
import { cifarSource } from './cifar/source.js';
import { csvSource } from './csv.js';
import type { Dataset, DatasetOpenOptions, DatasetSource } from './dataset.js';
import { folderSource } from './folder.js';
import { isLocalWebdatasetSpec, webdatasetSource } from './wds/source.js';

/**
 * Every kind of data set, in the order specs are tried: named data sets first, then prefixed forms
 * (wds/, wds:, csv:, folder:), then plain paths. A new kind of data set is one file and one line here.
 */
const SOURCES: readonly DatasetSource[] = [
  cifarSource,
  webdatasetSource,
  csvSource,
  // Last: it takes any path to a folder.
  folderSource,
];

/** The source that takes a spec, or undefined. */
export function datasetSourceFor(spec: string): DatasetSource | undefined {
  return SOURCES.find((source) => source.matches(spec));
}

/** Opens the data set a spec names: cifar100, cifar10, wds/NAME[@REV], wds:DIR-OR-URL, csv:FILE, a folder. */
export async function openDataset(spec: string, options: DatasetOpenOptions): Promise<Dataset> {
  const source = datasetSourceFor(spec);
  if (!source) throw inputError(`data set ${spec}: not a known data set, a folder or a manifest (known forms: ${SOURCES.map((s) => s.title).join(', ')})`);
  return source.open(spec, options);
}

/**
 * Whether a spec names files on this machine (an image folder, a CSV manifest, a webdataset folder),
 * as a path that depends on the working directory: fold/good, ./fold/good/ and folder:/abs/fold/good
 * may be one data set, which only its digest can tell. The files need not exist here.
 */
export function namesLocalFiles(spec: string): boolean {
  if (cifarSource.matches(spec)) return false;
  return webdatasetSource.matches(spec) ? isLocalWebdatasetSpec(spec) : true;
}
