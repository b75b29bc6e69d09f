/**
 * In-memory {@link RaftStorage} for tests and simulation, with crash semantics:
 * only synced writes survive a {@link MemoryStorage.close}.
 *
 * @module
 */
import { ConfigurationError, ShutdownError, StorageError } from '../../errors.js';
import type { HardState, LogEntry } from '../../machines/types.js';
import { systemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { RaftStorage, StorageWrite, StoredState } from './storage.js';
import { invalidWrite } from './validate.js';

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Clock that times simulated syncs. Defaults to {@link systemClock}; only used when a sync delay is set. */
  readonly clock?: Clock;
  /**
   * How long each write's sync takes, in clock milliseconds: a number, or a
   * function called once per write (for jittered syncs). Defaults to 0: every
   * write is durable, and its promise resolved, when `write` returns.
   * A function result that is negative or `NaN` counts as 0.
   */
  readonly syncDelayMs?: number | (() => number);
}

/** A write accepted but not yet synced. */
interface InFlight {
  readonly write: StorageWrite;
  /** Its sync finished; it becomes durable once every earlier write has. */
  synced: boolean;
  timer: TimerHandle | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const FRESH_HARD_STATE: HardState = Object.freeze({ term: 0, votedFor: null });

function noop(): void {}

/** A rejected promise that never counts as an unhandled rejection (the caller still sees the error when it awaits). */
function quietReject<T>(err: unknown): Promise<T> {
  const p = Promise.reject<T>(err);
  p.catch(noop);
  return p;
}

/**
 * A {@link RaftStorage} in memory that models the gap between writing and
 * syncing, so a simulated crash loses exactly the unsynced writes.
 *
 * @remarks
 * Two states are kept:
 * - the **log** — every accepted write applied, like an OS page cache. Writes
 *   are validated against it and {@link MemoryStorage.entries} reads it
 *   (read-your-writes);
 * - the **durable** state — the writes whose sync completed. Only this
 *   survives {@link MemoryStorage.close}; {@link MemoryStorage.open} starts
 *   again from it.
 *
 * Invariants: writes become durable in call order (a write whose sync ends
 * early waits for every earlier one), atomically, and a write's promise
 * resolves exactly when it became durable. With no sync delay, a write is
 * durable before `write` returns.
 *
 * Validation (a failing write rejects with {@link StorageError} and changes
 * nothing): `truncateFrom` is an integer `>= firstIndex`; entries have
 * contiguous integer indexes starting at the last index after truncation
 * + 1, terms `>= 1` that never decrease (also against the entry before
 * them); the hard state's term never decreases, and within one term
 * `votedFor` never changes once set (Figure 2, §5.2).
 *
 * `close()` rejects the writes still in flight with {@link ShutdownError}.
 * Those rejections, and those of writes issued while closed, are marked
 * handled, so they cannot crash the process as unhandled rejections even if
 * nobody awaits them; a caller that awaits still sees them. Validation
 * failures are ordinary rejections.
 *
 * Entries are stored by reference in an array (no copies): callers must not
 * mutate an entry (or its `data`) after writing it, nor a write object or its
 * `entries` array while the write is in flight.
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock();
 * const storage = new MemoryStorage({ clock, syncDelayMs: 2 });
 * await storage.open();
 * const synced = storage.write({ entries: [{ index: 1, term: 1, type: 'noop', data: new Uint8Array() }] });
 * await storage.close();           // crash before the sync: `synced` rejects with ShutdownError
 * await storage.open();            // restart on the same instance → { lastIndex: 0, ... }
 * ```
 */
export class MemoryStorage implements RaftStorage {
  readonly #clock: Clock;
  readonly #delay: number | (() => number);
  #state: 'new' | 'open' | 'closed' = 'new';

  /** Index of the first entry held; 1 (this storage does not compact). */
  readonly #firstIndex = 1;

  #log: LogEntry[] = [];
  #hardState: HardState = FRESH_HARD_STATE;

  #durableLog: LogEntry[] = [];
  #durableHardState: HardState = FRESH_HARD_STATE;

  /** Writes accepted and not yet durable, oldest first from `#head`. */
  #queue: InFlight[] = [];
  #head = 0;

  /**
   * @throws A {@link ConfigurationError} when `syncDelayMs` is a negative or non-finite number.
   */
  constructor(options: MemoryStorageOptions = {}) {
    const delay = options.syncDelayMs ?? 0;
    if (typeof delay === 'number' && !(Number.isFinite(delay) && delay >= 0)) {
      throw new ConfigurationError('syncDelayMs', `must be a finite number >= 0, got ${delay}`);
    }
    this.#delay = delay;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Opens the store and reports its durable state. Works again after
   * {@link MemoryStorage.close}: that is how a restarted node sees its disk.
   *
   * @throws Rejects with a {@link StorageError} when already open.
   */
  open(): Promise<StoredState> {
    if (this.#state === 'open') return Promise.reject(new StorageError('MemoryStorage is already open'));
    this.#state = 'open';
    this.#log = this.#durableLog.slice();
    this.#hardState = this.#durableHardState;
    return Promise.resolve({
      hardState: this.#hardState,
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex(),
    });
  }

  /**
   * Entries `from..to` inclusive of every accepted write (synced or not).
   * `entries(lastIndex + 1, lastIndex)` and other empty ranges with
   * `from === to + 1` resolve to `[]`.
   *
   * @throws Rejects with a {@link StorageError} when the range is not integral,
   * `from > to + 1`, any entry is not held, or before `open()`; with a {@link ShutdownError} after `close()`.
   */
  entries(from: number, to: number): Promise<LogEntry[]> {
    if (this.#state !== 'open') return Promise.reject(this.#notOpen('read'));
    if (!Number.isInteger(from) || !Number.isInteger(to) || from > to + 1) {
      return Promise.reject(new StorageError(`entries(${from}, ${to}): not a valid range`));
    }
    if (from > to) return Promise.resolve([]);
    const last = this.#lastIndex();
    if (from < this.#firstIndex || to > last) {
      return Promise.reject(
        new StorageError(`entries(${from}, ${to}): not held (log holds ${this.#firstIndex}..${last})`),
      );
    }
    return Promise.resolve(this.#log.slice(from - this.#firstIndex, to - this.#firstIndex + 1));
  }

  /**
   * Validates and applies one write; resolves once it is durable.
   *
   * @throws Rejects with a {@link StorageError} for an invalid write — nothing
   * changes; {@link ShutdownError} (handled rejection) when closed or closed
   * before the sync completed.
   */
  write(write: StorageWrite): Promise<void> {
    if (this.#state !== 'open') {
      return this.#state === 'closed'
        ? quietReject(new ShutdownError('storage write'))
        : Promise.reject(this.#notOpen('write'));
    }
    const invalid = invalidWrite(write, {
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex(),
      termAt: (i) => (i >= this.#firstIndex ? (this.#log[i - this.#firstIndex] as LogEntry).term : 0),
      hardState: this.#hardState,
    });
    if (invalid !== null) return Promise.reject(new StorageError(`invalid write: ${invalid}`));

    let raw: number;
    try {
      raw = typeof this.#delay === 'number' ? this.#delay : this.#delay();
    } catch (err) {
      return Promise.reject(new StorageError('syncDelayMs() threw', { cause: err }));
    }
    const delay = raw > 0 ? raw : 0;

    this.#hardState = apply(this.#log, this.#firstIndex, write) ?? this.#hardState;
    if (delay === 0 && this.#head === this.#queue.length) {
      this.#makeDurable(write);
      return Promise.resolve();
    }

    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(noop); // a ShutdownError from close() must never be an unhandled rejection
    const pending: InFlight = { write, synced: delay === 0, timer: undefined, resolve, reject };
    this.#queue.push(pending);
    if (delay > 0) {
      pending.timer = this.#clock.setTimeout(() => {
        pending.timer = undefined;
        pending.synced = true;
        this.#drain();
      }, delay);
    }
    return promise;
  }

  /**
   * Simulates a crash or a clean stop: writes still in flight are discarded
   * (their promises reject with {@link ShutdownError}), the unsynced part of
   * the log is forgotten, and the instance is closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#state !== 'open') {
      if (this.#state === 'new') this.#state = 'closed';
      return Promise.resolve();
    }
    this.#state = 'closed';
    const queue = this.#queue;
    const head = this.#head;
    this.#queue = [];
    this.#head = 0;
    this.#log = [];
    this.#hardState = this.#durableHardState;
    for (let i = head; i < queue.length; i++) {
      const pending = queue[i] as InFlight;
      if (pending.timer !== undefined) this.#clock.clearTimeout(pending.timer);
      pending.reject(new ShutdownError('storage write'));
    }
    return Promise.resolve();
  }

  /** Whether the store is open. */
  isOpen(): boolean {
    return this.#state === 'open';
  }

  /** Number of accepted writes not yet durable. */
  inFlight(): number {
    return this.#queue.length - this.#head;
  }

  /** For tests: a copy of the durable log, the entries a crash now would keep. */
  durableLog(): readonly LogEntry[] {
    return this.#durableLog.slice();
  }

  /** For tests: the durable hard state, the one a crash now would keep. */
  durableHardState(): HardState {
    return this.#durableHardState;
  }

  // -- internals ------------------------------------------------------------

  #lastIndex(): number {
    return this.#firstIndex + this.#log.length - 1;
  }

  #notOpen(what: string): Error {
    return this.#state === 'closed'
      ? new ShutdownError(`storage ${what}`)
      : new StorageError(`MemoryStorage ${what} before open()`);
  }

  /** Moves every write whose sync ended, and whose predecessors are durable, to the durable state, in order. */
  #drain(): void {
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const pending = queue[this.#head] as InFlight;
      if (!pending.synced) break;
      this.#head++;
      this.#makeDurable(pending.write);
      pending.resolve();
    }
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= queue.length) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #makeDurable(write: StorageWrite): void {
    this.#durableHardState = apply(this.#durableLog, this.#firstIndex, write) ?? this.#durableHardState;
  }

}

/** Applies a validated write to `log` in place; returns the new hard state, if any. */
function apply(log: LogEntry[], firstIndex: number, write: StorageWrite): HardState | undefined {
  const { truncateFrom, entries } = write;
  if (truncateFrom !== undefined && truncateFrom - firstIndex < log.length) log.length = truncateFrom - firstIndex;
  for (let i = 0; i < entries.length; i++) log.push(entries[i] as LogEntry);
  return write.hardState;
}
