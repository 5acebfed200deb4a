import type { Logger } from '../core/log.js';
import type { ClassNameList } from './class-names.js';

/**
 * The one seam between data sets and the tasks that use them. CIFAR, image folders, CSV manifests
 * and webdataset shards are implementations; a registry (registry.ts) turns a spec the user typed
 * into one. Tasks see only this interface: class names, templates, a digest and a stream of samples.
 */

/** A sample's image: decoded planes (CIFAR's records, no codec) or bytes a codec must decode. */
export type SampleImage =
  /** Channel-major RGB, 3 × height × width bytes (a view: valid until the next sample is read). */
  | { kind: 'planar'; pixels: Uint8Array; width: number; height: number }
  /**
   * An encoded image (a shard member), with the format its name says when known (png, jpg, webp), and
   * where it came from for messages ("3.tar: s0000042.webp"; default the data set and sample id).
   */
  | { kind: 'encoded'; bytes: Uint8Array; format?: string; origin?: string }
  /** An image file, read (bounded) and decoded by the preprocessing stage. */
  | { kind: 'file'; path: string };

export interface Sample {
  /** Stable and unique within the data set: the path below the root (folder, CSV) or the sample key (webdataset). */
  id: string;
  /** 0-based index into classNames. */
  label: number;
  image: SampleImage;
  /** Its captions, for retrieval (a caption manifest's rows, a webdataset sample's .txt lines). */
  captions?: readonly string[];
}

export interface Superclasses {
  names: readonly string[];
  /** Class index → super-class index. */
  of: Int32Array;
}

export interface Dataset {
  /** The spec as given ("cifar100", "wds/imagenet1k", "csv:val.csv", a folder path). */
  readonly name: string;
  readonly split: string;
  /** Names used in prompts, in label order. */
  readonly classNames: readonly string[];
  readonly superclasses?: Superclasses;
  /** The template set to use when none is asked for: 'openai', 'imagenet', 'single' or 'dataset'. */
  readonly defaultTemplates: string;
  /** The data set's own templates (webdatasets' zeroshot_classification_templates.txt), placeholder `{}`. */
  readonly templates?: readonly string[];
  /** The number of samples, when known before streaming. */
  readonly size?: number;
  /**
   * A content digest known before streaming (CIFAR: its files'); when absent the evaluation digests
   * what it streams (ids, labels, image bytes and class names).
   */
  readonly sha256?: string;
  /** sha256 of each file read that the report should cite, by name. */
  readonly files?: Readonly<Record<string, string>>;
  /** The samples in data set order; each call starts again from the first. */
  samples(): AsyncIterable<Sample>;
}

/** What every data set source needs to find, fetch and cache its files. */
export interface DatasetOpenOptions {
  cacheRoot: string;
  offline?: boolean;
  quiet?: boolean;
  logger?: Logger;
  /** The user's class names, resolved; when absent a source uses its own. */
  classNames?: ClassNameList;
  /** Read samples' captions instead of labels (webdatasets: .txt members; no class names). */
  captions?: boolean;
  /** Webdataset split (default "test"). */
  split?: string;
  /** CIFAR's sources: an extracted copy, a mirror URL and its md5. */
  dataDir?: string;
  url?: string;
  md5?: string;
}

/** One kind of data set: whether a spec names it, and how to open it. */
export interface DatasetSource {
  /** For messages: "CIFAR", "image folder", "CSV manifest", "webdataset". */
  readonly title: string;
  /** True when this source takes the spec; the first source that does wins. */
  matches(spec: string): boolean;
  open(spec: string, options: DatasetOpenOptions): Promise<Dataset>;
}
