/** 512 MiB: a few dozen megapixels of photos at a time, however large the batch. */
export const DEFAULT_IMAGE_MEMORY_BYTES = 512 * 2 ** 20;

/**
 * A MemoryBudget's state, in shared memory so that worker threads reserve from it without waiting for
 * a turn of the thread that owns the budget (which may be running inference for seconds).
 * counters: [held bytes, most bytes held so far]; signals: [generation (bumped on every release),
 * sequence number of the oldest open lease, or -1].
 */
export interface SharedBudget {
  limit: number;
  counters: SharedArrayBuffer;
  signals: SharedArrayBuffer;
}

const HELD = 0;
const PEAK = 1;
const GENERATION = 0;
const OLDEST = 1;

/** Atomics.waitAsync (Node 16+), which TypeScript's ES2022 library does not declare. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** Takes `bytes` for the lease numbered `sequence` if they fit, or if it is the oldest open lease. */
function tryTake(counters: BigInt64Array, signals: Int32Array, limit: bigint, sequence: number, bytes: bigint): boolean {
  for (;;) {
    const held = Atomics.load(counters, HELD);
    if (held + bytes > limit && Atomics.load(signals, OLDEST) !== sequence) return false;
    if (Atomics.compareExchange(counters, HELD, held, held + bytes) !== held) continue;
    for (let peak = Atomics.load(counters, PEAK); held + bytes > peak; peak = Atomics.load(counters, PEAK)) {
      if (Atomics.compareExchange(counters, PEAK, peak, held + bytes) === peak) break;
    }
    return true;
  }
}

/**
 * Waits until the lease numbered `sequence` may hold `bytes` more, from any thread that has the
 * budget's SharedBudget. The bytes are the lease's: its owner adds them to the lease (MemoryLease.add)
 * before releasing it.
 */
export async function reserveShared(budget: SharedBudget, sequence: number, bytes: number): Promise<void> {
  const counters = new BigInt64Array(budget.counters);
  const signals = new Int32Array(budget.signals);
  const limit = BigInt(budget.limit);
  const wanted = BigInt(bytes);
  for (;;) {
    const generation = Atomics.load(signals, GENERATION);
    if (tryTake(counters, signals, limit, sequence, wanted)) return;
    // Ends at the next release (any lease's), when whatever is held is worth another look.
    const wait = waitAsync(signals, GENERATION, generation);
    if (wait.async) await wait.value;
  }
}

/**
 * Bytes that images being prepared (read, decoded, preprocessed) may hold at once, across a batch and
 * the next one prepared beside it. Each image takes a lease, reserves what it is about to hold (its
 * file, then its decoded pixels) and releases it all when its pixels are in the batch. Reservations may
 * come from worker threads (see shared and reserveShared).
 *
 * A reservation waits while it would pass the limit, except for the oldest open lease, which never
 * waits: so one image larger than the whole budget still goes through, and the images waiting on
 * each other can never all wait at once. The bytes held are at most the limit plus one image's.
 */
export class MemoryBudget {
  readonly shared: SharedBudget;
  private readonly counters: BigInt64Array;
  private readonly signals: Int32Array;
  private readonly open: MemoryLease[] = [];
  private nextSequence = 0;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`MemoryBudget: limit must be a positive integer, got ${limit}`);
    this.shared = { limit, counters: new SharedArrayBuffer(2 * 8), signals: new SharedArrayBuffer(2 * 4) };
    this.counters = new BigInt64Array(this.shared.counters);
    this.signals = new Int32Array(this.shared.signals);
    Atomics.store(this.signals, OLDEST, -1);
  }

  /** The most bytes held at once so far. */
  get peak(): number {
    return Number(Atomics.load(this.counters, PEAK));
  }

  lease(): MemoryLease {
    const lease = new MemoryLease(this, this.nextSequence);
    this.nextSequence = (this.nextSequence + 1) | 0;
    if (this.open.length === 0) Atomics.store(this.signals, OLDEST, lease.sequence);
    this.open.push(lease);
    return lease;
  }

  /** @internal */
  release(lease: MemoryLease): void {
    // Bytes still waiting to be taken (a reservation pending at release) were never added: none are
    // pending here, since an image releases its lease only once its reservations are answered.
    Atomics.sub(this.counters, HELD, BigInt(lease.bytes));
    lease.bytes = 0;
    this.open.splice(this.open.indexOf(lease), 1);
    Atomics.store(this.signals, OLDEST, this.open[0]?.sequence ?? -1);
    Atomics.add(this.signals, GENERATION, 1);
    Atomics.notify(this.signals, GENERATION);
  }
}

/** One image's share of a MemoryBudget; release it once, when the image's memory is free. */
export class MemoryLease {
  /** @internal */
  bytes = 0;
  private released = false;

  constructor(
    private readonly budget: MemoryBudget,
    /** Its place in the order leases were taken (reserveShared names a lease by it). */
    readonly sequence: number,
  ) {}

  /** Waits until `bytes` more may be held by this image. */
  reserve(bytes: number): Promise<void> {
    if (this.released) throw new Error('MemoryLease: reserve after release');
    this.bytes += bytes;
    return reserveShared(this.budget.shared, this.sequence, bytes);
  }

  /** Counts bytes another thread reserved for this lease with reserveShared, so that release frees them. */
  add(bytes: number): void {
    if (this.released) throw new Error('MemoryLease: add after release');
    this.bytes += bytes;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.release(this);
  }
}
