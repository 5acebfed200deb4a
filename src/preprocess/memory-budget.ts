/** 512 MiB: a few dozen megapixels of photos at a time, however large the batch. */
export const DEFAULT_IMAGE_MEMORY_BYTES = 512 * 2 ** 20;

/**
 * Bytes that images being prepared (read, decoded, preprocessed) may hold at once, across a batch and
 * the next one prepared beside it. Each image takes a lease, reserves what it is about to hold (its
 * file, then its decoded pixels) and releases it all when its pixels are in the batch.
 *
 * A reservation waits while it would pass the limit, except for the oldest open lease, which never
 * waits: so one image larger than the whole budget still goes through, and the images waiting on
 * each other can never all wait at once. The bytes held are at most the limit plus one image's.
 */
export class MemoryBudget {
  private held = 0;
  private highest = 0;
  private readonly open: MemoryLease[] = [];
  private readonly waiting: { lease: MemoryLease; bytes: number; grant: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`MemoryBudget: limit must be a positive integer, got ${limit}`);
  }

  /** The most bytes held at once so far. */
  get peak(): number {
    return this.highest;
  }

  lease(): MemoryLease {
    const lease = new MemoryLease(this);
    this.open.push(lease);
    return lease;
  }

  /** @internal */
  reserve(lease: MemoryLease, bytes: number): Promise<void> {
    if (this.grantable(lease, bytes)) {
      this.take(lease, bytes);
      return Promise.resolve();
    }
    return new Promise((grant) => this.waiting.push({ lease, bytes, grant }));
  }

  /** @internal */
  release(lease: MemoryLease): void {
    this.held -= lease.bytes;
    lease.bytes = 0;
    this.open.splice(this.open.indexOf(lease), 1);
    // Grant in arrival order whatever now fits (and the new oldest lease's request, whatever its size).
    for (let i = 0; i < this.waiting.length; ) {
      const request = this.waiting[i]!;
      if (this.grantable(request.lease, request.bytes)) {
        this.waiting.splice(i, 1);
        this.take(request.lease, request.bytes);
        request.grant();
      } else {
        i += 1;
      }
    }
  }

  private grantable(lease: MemoryLease, bytes: number): boolean {
    return this.held + bytes <= this.limit || this.open[0] === lease;
  }

  private take(lease: MemoryLease, bytes: number): void {
    lease.bytes += bytes;
    this.held += bytes;
    this.highest = Math.max(this.highest, this.held);
  }
}

/** One image's share of a MemoryBudget; release it once, when the image's memory is free. */
export class MemoryLease {
  /** @internal */
  bytes = 0;
  private released = false;

  constructor(private readonly budget: MemoryBudget) {}

  /** Waits until `bytes` more may be held by this image. */
  reserve(bytes: number): Promise<void> {
    if (this.released) throw new Error('MemoryLease: reserve after release');
    return this.budget.reserve(this, bytes);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.release(this);
  }
}
