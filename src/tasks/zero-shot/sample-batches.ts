import { createHash, type Hash } from 'node:crypto';
import { describeError, inputError } from '../../core/errors.js';
import type { Dataset, Sample } from '../../datasets/dataset.js';
import type { PreprocessConfig } from '../../preprocess/config.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { ImageJobError, type ImagePool } from '../../preprocess/image-pool.js';
import type { MemoryBudget } from '../../preprocess/memory-budget.js';
import { createPlanarPreprocessor, type PlanarPreprocessor } from '../../preprocess/transform.js';
import type { ImageContentKey, ImageEmbeddingCache } from '../../model/image-embedding-cache.js';
import { bytesContentKey, fileContentKey } from './image-content.js';
import type { BatchSource, StartedBatch } from './loop.js';
import { createSubsetSelector, type SubsetOptions, type SubsetSelector } from './subset.js';

/**
 * A data set's samples as batches of preprocessed pixels for runZeroShotStream: read in order,
 * chosen by the subset as they stream by, planar samples through the planar fast path at once,
 * encoded and file samples read, decoded and preprocessed on an ImagePool's worker threads (bounded
 * by a memory budget) while the previous batch runs. What it keeps per evaluated image is its label (and, when asked, its id).
 */
export interface SampleBatchOptions {
  dataset: Dataset;
  preprocess: PreprocessConfig;
  subset: SubsetOptions;
  memory: MemoryBudget;
  /** Where encoded and file samples are read, decoded and preprocessed (off the inference thread). */
  pool: ImagePool;
  decode?: Omit<DecodeOptions, 'reserve'>;
  /** Skip (and count) an image that cannot be read or decoded, instead of failing. */
  skipUnreadable: boolean;
  /** Keep each evaluated image's id (for per-image outputs). */
  keepIds: boolean;
  /** Digest what streams by (class names, then each sample's id, label and image bytes). */
  digest: boolean;
  /** Told about each skipped image. */
  onSkipped?: (message: string) => void;
  /** Where cached image embeddings are read and new ones written (absent: every image is encoded). */
  imageCache?: ImageCacheUse;
}

export interface ImageCacheUse {
  cache: ImageEmbeddingCache;
  /** The embedding size the model gives: an entry of another size is not used. */
  dim: number;
  /** Where file digests are remembered. */
  cacheRoot: string;
}

/** A growing list of labels: one Int32 per evaluated image. */
class LabelList {
  values = new Int32Array(1024);
  length = 0;

  push(label: number): void {
    if (this.length === this.values.length) {
      const grown = new Int32Array(2 * this.values.length);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = label;
  }

  toArray(): Int32Array {
    return this.values.slice(0, this.length);
  }
}

interface Slot {
  id: string;
  label: number;
  /** sha256 of the image bytes, when digesting; '-' for bytes that could not be read. */
  hash?: string;
  readable: boolean;
  /** The embedding read from the cache: no pixels were filled. */
  cached?: Float32Array;
  /** The cache key to store the encoded embedding under (absent: not to be cached). */
  content?: ImageContentKey;
}

const DIGEST_VERSION = 'clip-eval data set digest 1\n';

export class SampleBatches implements BatchSource {
  /** Labels of the evaluated images, in evaluation order. */
  readonly labels = new LabelList();
  /** Ids of the evaluated images (when keepIds). */
  readonly ids: string[] = [];
  /** Images chosen by the subset but skipped as unreadable. */
  skipped = 0;
  /** Samples read from the stream. */
  streamed = 0;
  /** True once the stream ended by itself (every sample was read), not at the subset's limit. */
  exhausted = false;
  private readonly iterator: AsyncIterator<Sample>;
  private readonly select: SubsetSelector;
  private readonly planar: PlanarPreprocessor;
  private readonly hash?: Hash;
  private finished = false;

  constructor(private readonly options: SampleBatchOptions) {
    this.iterator = options.dataset.samples()[Symbol.asyncIterator]();
    this.select = createSubsetSelector(options.subset);
    this.planar = createPlanarPreprocessor(options.preprocess);
    if (options.digest) {
      this.hash = createHash('sha256').update(DIGEST_VERSION).update(`${JSON.stringify(options.dataset.classNames)}\n`);
    }
  }

  /** The digest of everything streamed; call once the stream is done. */
  digest(): string | undefined {
    return this.hash?.digest('hex');
  }

  /** Ends the stream early (the subset is full, or the run failed), so that a source closes its files. */
  async close(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.iterator.return?.();
  }

  async next(capacity: number, target: Float32Array, imageFloats: number): Promise<StartedBatch | undefined> {
    const slots: Slot[] = [];
    const pending: Promise<void>[] = [];
    while (slots.length < capacity && !this.finished) {
      if (this.select.full()) {
        await this.close();
        break;
      }
      const result = await this.iterator.next();
      if (result.done) {
        this.finished = true;
        this.exhausted = true;
        break;
      }
      this.streamed += 1;
      const sample = result.value;
      this.checkLabel(sample);
      if (!this.select.take(sample.label)) continue;
      const slot: Slot = { id: sample.id, label: sample.label, readable: true };
      const offset = slots.length * imageFloats;
      slots.push(slot);
      const filled = this.fill(sample, slot, target, offset);
      if (filled) {
        // Settled through `ready`; should a later sample end this batch with an error, not unhandled.
        filled.catch(() => undefined);
        pending.push(filled);
      }
    }
    if (slots.length === 0) return undefined;
    const batch: StartedBatch = { started: slots.length };
    const record = () => this.record(slots, target, imageFloats, batch);
    if (pending.length === 0) batch.started = record();
    else batch.ready = Promise.all(pending).then(record);
    return batch;
  }

  private checkLabel(sample: Sample): void {
    const classes = this.options.dataset.classNames.length;
    if (!Number.isInteger(sample.label) || sample.label < 0 || sample.label >= classes) {
      throw inputError(`${this.options.dataset.name}: sample ${sample.id} has label ${sample.label}, outside 0-${classes - 1} (${classes} classes)`);
    }
  }

  /** Preprocesses one sample into its slot: at once for planar pixels, else a promise of the decode. */
  private fill(sample: Sample, slot: Slot, target: Float32Array, offset: number): Promise<void> | undefined {
    const { image } = sample;
    if (image.kind === 'planar') {
      if (this.hash) slot.hash = createHash('sha256').update(image.pixels).digest('hex');
      if (!this.options.imageCache) {
        this.planar(image, target, offset);
        return undefined;
      }
      const content: ImageContentKey = this.options.dataset.sha256 !== undefined
        ? { datasetSha256: this.options.dataset.sha256, sampleId: sample.id }
        : { bytesSha256: slot.hash ?? createHash('sha256').update(image.pixels).digest('hex') };
      // The view is valid only until the next sample is read: fill now, use the pixels only on a miss.
      this.planar(image, target, offset);
      return this.lookUp(content, slot);
    }
    const { memory } = this.options;
    // Leases are taken in sample order (before any await), so the earliest image never waits.
    const lease = memory.lease();
    if (!this.options.imageCache) return this.prepare(sample, slot, target, offset, lease);
    return this.contentOf(sample).then(async (content) => {
      if (content) await this.lookUp(content, slot);
      if (slot.cached) {
        if (this.hash && 'bytesSha256' in content!) slot.hash = content.bytesSha256;
        lease.release();
        return;
      }
      await this.prepare(sample, slot, target, offset, lease);
    });
  }

  /** The cache key of an encoded or file sample; undefined when the file cannot be hashed. */
  private async contentOf(sample: Sample): Promise<ImageContentKey | undefined> {
    const { image } = sample;
    const { dataset, imageCache, decode } = this.options;
    if (dataset.sha256 !== undefined) return { datasetSha256: dataset.sha256, sampleId: sample.id };
    if (image.kind === 'encoded') return bytesContentKey(image.bytes);
    if (image.kind !== 'file') return undefined;
    return fileContentKey(image.path, imageCache!.cacheRoot, decode?.maxFileBytes);
  }

  private async lookUp(content: ImageContentKey, slot: Slot): Promise<void> {
    const { cache, dim } = this.options.imageCache!;
    const embedding = await cache.read(content);
    if (embedding?.length === dim) slot.cached = embedding;
    else slot.content = content;
  }

  private prepare(sample: Sample, slot: Slot, target: Float32Array, offset: number, lease: ReturnType<MemoryBudget['lease']>): Promise<void> {
    const { image } = sample;
    if (image.kind === 'planar') throw new RangeError('planar samples are preprocessed in place');
    const { memory, decode, preprocess, pool } = this.options;
    const label = image.kind === 'file' ? image.path : (image.origin ?? `${this.options.dataset.name} sample ${sample.id}`);
    // A file is re-hashed as it is decoded: an embedding is cached only under the bytes it came from.
    const verify = slot.content !== undefined && 'bytesSha256' in slot.content;
    const prepared = pool.prepare({
      source: image.kind === 'file' ? { path: image.path } : { bytes: image.bytes },
      label,
      config: preprocess,
      decode,
      digest: this.hash !== undefined || verify,
      memory: { budget: memory.shared, lease },
    });
    return prepared.then(
      ({ pixels, sha256 }) => {
        lease.release();
        slot.hash = sha256;
        if (verify && slot.content && 'bytesSha256' in slot.content && slot.content.bytesSha256 !== sha256) slot.content = undefined;
        target.set(pixels, offset);
        pool.recycle(pixels);
      },
      (error: unknown) => {
        lease.release();
        if (!(error instanceof ImageJobError) || !this.options.skipUnreadable) throw error;
        slot.readable = false;
        // '-' for bytes that could not be read.
        slot.hash = error.sha256 ?? '-';
        this.options.onSkipped?.(describeError(error));
      },
    );
  }

  /** Closes the gaps of skipped images, records the batch's images in order and returns how many remain. */
  private record(slots: readonly Slot[], target: Float32Array, imageFloats: number, batch: StartedBatch): number {
    let kept = 0;
    let encoded = 0;
    const cached: (Float32Array | undefined)[] = [];
    const toStore: (ImageContentKey | undefined)[] = [];
    slots.forEach((slot, index) => {
      this.hash?.update(`${JSON.stringify(slot.id)} ${slot.label} ${slot.hash}\n`);
      if (!slot.readable) {
        this.skipped += 1;
        return;
      }
      cached.push(slot.cached);
      if (!slot.cached) {
        if (encoded !== index) target.copyWithin(encoded * imageFloats, index * imageFloats, (index + 1) * imageFloats);
        toStore.push(slot.content);
        encoded += 1;
      }
      this.labels.push(slot.label);
      if (this.options.keepIds) this.ids.push(slot.id);
      kept += 1;
    });
    const use = this.options.imageCache;
    if (use) {
      batch.cached = cached;
      // A batch's entries are written concurrently: each write waits mostly on its own fsync.
      batch.store = async (embeddings) => {
        await Promise.all(toStore.map((content, row) => content && use.cache.write(content, embeddings.slice(row * use.dim, (row + 1) * use.dim))));
      };
    }
    return kept;
  }
}
