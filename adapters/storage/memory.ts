/**
 * In-memory {@link RaftStorage} for tests and simulation, with crash semantics:
 * only synced writes survive a {@link MemoryStorage.close}.
 *
 * @module
 */
import { ConfigurationError, ShutdownError, StorageCorruptionError, StorageError } from '../../errors.js';
import type { HardState, LogEntry } from '../../machines/types.js';
import { systemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { crc32Js } from './crc32.js';
import type {
  RaftStorage,
  SnapshotDescriptor,
  SnapshotMeta,
  SnapshotStaging,
  SnapshotStore,
  StorageWrite,
  StoredState,
} from './storage.js';
import { DEFAULT_KEEP_SNAPSHOTS, invalidDescriptor, invalidKeepSnapshots, invalidWrite, refuseInstall } from './validate.js';
// For the TSDoc links only.
import type { LevelStorage } from './level.js';

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Clock that times simulated syncs. Defaults to {@link systemClock}; only used when a sync delay is set. */
  readonly clock?: Clock;
  /**
   * How long each write's sync takes, in clock milliseconds: a number, or a
   * function called once per write (for jittered syncs). Defaults to 0: every
   * write is durable, and its promise resolved, when `write` returns.
   * A function result that is negative or `NaN` counts as 0. Snapshot
   * operations (chunk appends, commit, discard, compaction) sync the same way.
   */
  readonly syncDelayMs?: number | (() => number);
  /** How many snapshots to keep, newest first (at least 1). Defaults to 2. */
  readonly keepSnapshots?: number;
}

/** A snapshot held: its metadata, its chunks and each chunk's CRC-32 as appended. */
interface Held {
  readonly meta: SnapshotMeta;
  readonly chunks: readonly Uint8Array[];
  readonly crcs: readonly number[];
}

/** The staging area of one state. */
interface Staged {
  readonly slot: number;
  readonly descriptor: SnapshotDescriptor;
  readonly chunks: Uint8Array[];
  readonly crcs: number[];
  size: number;
  checksum: number;
}

/** Everything a store holds: once as accepted (page cache), once as durable (disk). */
interface State {
  log: LogEntry[];
  firstIndex: number;
  boundaryTerm: number;
  hardState: HardState;
  /** Newest first. */
  snapshots: Held[];
  staging: Staged | null;
}

/** A change to a {@link State}: a log write, or a snapshot/compaction step. Applied to the accepted state at once, to the durable one when synced. */
type Op = { readonly kind: 'write'; readonly write: StorageWrite } | { readonly kind: 'fn'; readonly fn: (s: State) => void };

/** A change accepted but not yet synced. */
interface InFlight {
  readonly op: Op;
  /** Its sync finished; it becomes durable once every earlier change has. */
  synced: boolean;
  timer: TimerHandle | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const FRESH_HARD_STATE: HardState = Object.freeze({ term: 0, votedFor: null });

function freshState(): State {
  return { log: [], firstIndex: 1, boundaryTerm: 0, hardState: FRESH_HARD_STATE, snapshots: [], staging: null };
}

/** A copy that shares entries and chunk bytes (never mutated) but no arrays that ops mutate. */
function cloneState(s: State): State {
  const st = s.staging;
  return {
    log: s.log.slice(),
    firstIndex: s.firstIndex,
    boundaryTerm: s.boundaryTerm,
    hardState: s.hardState,
    snapshots: s.snapshots.slice(),
    staging: st === null ? null : { ...st, chunks: st.chunks.slice(), crcs: st.crcs.slice() },
  };
}

function lastIndexOf(s: State): number {
  return s.firstIndex + s.log.length - 1;
}

/** Term of entry `index` for `firstIndex - 1 <= index <= lastIndex`; `undefined` outside. */
function termOf(s: State, index: number): number | undefined {
  if (index === s.firstIndex - 1) return s.boundaryTerm;
  return s.log[index - s.firstIndex]?.term;
}

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
 * **Snapshots** ({@link SnapshotStore}): chunk appends, commits, discards and
 * compactions are changes like writes — ordered with them, synced with the
 * same delay, and lost by a crash unless synced. Snapshot chunks are kept by
 * reference too, each with the CRC-32 it had when appended: a chunk changed
 * afterwards fails its check with a {@link StorageCorruptionError} whose key
 * is `staging/<n>` or `snapshot/<index>/<n>`. The newest `keepSnapshots`
 * snapshots are kept. {@link MemoryStorage.compact} follows the same rules as
 * {@link LevelStorage.compact}.
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
export class MemoryStorage implements RaftStorage, SnapshotStore {
  readonly #clock: Clock;
  readonly #delay: number | (() => number);
  readonly #keep: number;
  #state: 'new' | 'open' | 'closed' = 'new';
  /** Bumps on every open and close: staging objects of an earlier incarnation are dead. */
  #epoch = 0;
  /** Last staging slot handed out; slots identify stagings across restarts. */
  #slot = 0;

  /** Every accepted change applied. */
  #cur: State = freshState();
  /** Every synced change applied: what survives {@link MemoryStorage.close}. */
  #durable: State = freshState();

  /** Changes accepted and not yet durable, oldest first from `#head`. */
  #queue: InFlight[] = [];
  #head = 0;

  /**
   * @throws A {@link ConfigurationError} when `syncDelayMs` is a negative or
   * non-finite number, or `keepSnapshots` is not an integer >= 1.
   */
  constructor(options: MemoryStorageOptions = {}) {
    const delay = options.syncDelayMs ?? 0;
    if (typeof delay === 'number' && !(Number.isFinite(delay) && delay >= 0)) {
      throw new ConfigurationError('syncDelayMs', `must be a finite number >= 0, got ${delay}`);
    }
    const keepWhy = invalidKeepSnapshots(options.keepSnapshots);
    if (keepWhy !== null) throw new ConfigurationError('keepSnapshots', keepWhy);
    this.#delay = delay;
    this.#clock = options.clock ?? systemClock;
    this.#keep = options.keepSnapshots ?? DEFAULT_KEEP_SNAPSHOTS;
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
    this.#epoch++;
    this.#cur = cloneState(this.#durable);
    const cur = this.#cur;
    return Promise.resolve({
      hardState: cur.hardState,
      firstIndex: cur.firstIndex,
      lastIndex: lastIndexOf(cur),
      boundaryTerm: cur.boundaryTerm,
      snapshot: cur.snapshots[0]?.meta ?? null,
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
    const cur = this.#cur;
    const last = lastIndexOf(cur);
    if (from < cur.firstIndex || to > last) {
      return Promise.reject(
        new StorageError(`entries(${from}, ${to}): not held (log holds ${cur.firstIndex}..${last})`),
      );
    }
    return Promise.resolve(cur.log.slice(from - cur.firstIndex, to - cur.firstIndex + 1));
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
    const cur = this.#cur;
    const invalid = invalidWrite(write, {
      firstIndex: cur.firstIndex,
      lastIndex: lastIndexOf(cur),
      termAt: (i) => termOf(cur, i) ?? 0,
      hardState: cur.hardState,
    });
    if (invalid !== null) return Promise.reject(new StorageError(`invalid write: ${invalid}`));
    return this.#submit({ kind: 'write', write });
  }

  /**
   * Discards the entries up to `upTo` inclusive and records `upTo + 1` as the
   * first index, ordered with writes, with the rules of
   * {@link LevelStorage.compact}: a `upTo` below the first index is a no-op;
   * `term` (of entry `upTo`) is checked when the entry is held and required
   * when `upTo` is past the last index (the log is then empty with
   * `lastIndex === upTo`).
   *
   * @throws Rejects with a {@link StorageError} for a bad `upTo` or `term`
   * (nothing changes) or before `open()`; {@link ShutdownError} when closed.
   */
  compact(upTo: number, term?: number): Promise<void> {
    const unusable = this.#unusable('compaction');
    if (unusable !== null) return unusable;
    const cur = this.#cur;
    if (!Number.isSafeInteger(upTo) || upTo < 0) {
      return Promise.reject(new StorageError(`compact(${upTo}): upTo must be an integer >= 0`));
    }
    if (upTo < cur.firstIndex) return this.#submit({ kind: 'fn', fn: noop });
    const last = lastIndexOf(cur);
    let boundary: number;
    if (upTo <= last) {
      boundary = termOf(cur, upTo) as number;
      if (term !== undefined && term !== boundary) {
        return Promise.reject(new StorageError(`compact(${upTo}, ${term}): entry ${upTo} has term ${boundary}`));
      }
    } else {
      if (term === undefined || !Number.isSafeInteger(term) || term < 1 || term < (termOf(cur, last) as number)) {
        return Promise.reject(
          new StorageError(`compact(${upTo}): past the last index ${last}, a term >= the last entry's is required`),
        );
      }
      boundary = term;
    }
    return this.#submit({
      kind: 'fn',
      fn: (s) => {
        if (upTo < s.firstIndex) return;
        s.log = upTo <= lastIndexOf(s) ? s.log.slice(upTo + 1 - s.firstIndex) : [];
        s.firstIndex = upTo + 1;
        s.boundaryTerm = boundary;
      },
    });
  }

  /**
   * Starts staging a snapshot, replacing any staging. See {@link SnapshotStore.stageSnapshot}.
   *
   * @throws Rejects with a {@link StorageError} for a bad descriptor or before `open()`; {@link ShutdownError} when closed.
   */
  stageSnapshot(descriptor: SnapshotDescriptor): Promise<SnapshotStaging> {
    const unusable = this.#unusable('snapshot staging');
    if (unusable !== null) return unusable;
    const invalid = invalidDescriptor(descriptor);
    if (invalid !== null) return Promise.reject(new StorageError(`invalid snapshot descriptor: ${invalid}`));
    const slot = ++this.#slot;
    const d: SnapshotDescriptor = {
      index: descriptor.index,
      term: descriptor.term,
      configuration: descriptor.configuration,
      configurationIndex: descriptor.configurationIndex,
    };
    const staged = this.#submit({
      kind: 'fn',
      fn: (s) => {
        s.staging = { slot, descriptor: d, chunks: [], crcs: [], size: 0, checksum: 0 };
      },
    });
    const handle = this.#handle(slot);
    return staged.then(() => handle);
  }

  /** The staging that survived the last restart (its synced chunks), or the live one; `null` when none. */
  resumeSnapshot(): Promise<SnapshotStaging | null> {
    const unusable = this.#unusable('snapshot staging');
    if (unusable !== null) return unusable;
    const st = this.#cur.staging;
    return Promise.resolve(st === null ? null : this.#handle(st.slot));
  }

  /** The snapshots held (accepted), newest first. */
  snapshots(): readonly SnapshotMeta[] {
    return this.#state === 'open' ? this.#cur.snapshots.map((h) => h.meta) : [];
  }

  /**
   * The chunks of the current snapshot, or of the kept one at `index`, each
   * checked against the CRC-32 it had when appended. See {@link SnapshotStore.readSnapshot}.
   *
   * @throws The iteration throws a {@link StorageCorruptionError} when a chunk
   * changed after it was stored; a {@link StorageError} when no snapshot (at
   * `index`) is held or before `open()`; a {@link ShutdownError} once closed.
   */
  readSnapshot(index?: number): AsyncIterable<Uint8Array> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the generator runs later
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (self.#state !== 'open') throw self.#notOpen('snapshot read');
        const snaps = self.#cur.snapshots;
        const held = index === undefined ? snaps[0] : snaps.find((h) => h.meta.index === index);
        if (held === undefined) {
          throw new StorageError(index === undefined ? 'no snapshot is held' : `no snapshot at index ${index} is held`);
        }
        for (let i = 0; i < held.chunks.length; i++) {
          const chunk = held.chunks[i] as Uint8Array;
          if (crc32Js(chunk) !== held.crcs[i]) {
            throw new StorageCorruptionError(`snapshot/${held.meta.index}/${i}`, null, 'chunk changed after it was stored');
          }
          yield chunk;
        }
      },
    };
  }

  /**
   * Simulates a crash or a clean stop: changes still in flight are discarded
   * (their promises reject with {@link ShutdownError}), the unsynced part of
   * the log and of any staging is forgotten, and the instance is closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#state !== 'open') {
      if (this.#state === 'new') this.#state = 'closed';
      return Promise.resolve();
    }
    this.#state = 'closed';
    this.#epoch++;
    const queue = this.#queue;
    const head = this.#head;
    this.#queue = [];
    this.#head = 0;
    this.#cur = freshState();
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

  /** Number of accepted changes not yet durable. */
  inFlight(): number {
    return this.#queue.length - this.#head;
  }

  /** For tests: a copy of the durable log, the entries a crash now would keep. */
  durableLog(): readonly LogEntry[] {
    return this.#durable.log.slice();
  }

  /** For tests: the durable hard state, the one a crash now would keep. */
  durableHardState(): HardState {
    return this.#durable.hardState;
  }

  // -- internals ------------------------------------------------------------

  #notOpen(what: string): Error {
    return this.#state === 'closed'
      ? new ShutdownError(`storage ${what}`)
      : new StorageError(`MemoryStorage ${what} before open()`);
  }

  /** A rejected promise when the store cannot take a change now, else `null`. */
  #unusable(what: string): Promise<never> | null {
    if (this.#state === 'open') return null;
    return this.#state === 'closed' ? quietReject(new ShutdownError(`storage ${what}`)) : Promise.reject(this.#notOpen(what));
  }

  /** Applies `op` to the accepted state now and to the durable state once synced (and every earlier change is). */
  #submit(op: Op): Promise<void> {
    let raw: number;
    try {
      raw = typeof this.#delay === 'number' ? this.#delay : this.#delay();
    } catch (err) {
      return Promise.reject(new StorageError('syncDelayMs() threw', { cause: err }));
    }
    const delay = raw > 0 ? raw : 0;

    applyOp(this.#cur, op);
    if (delay === 0 && this.#head === this.#queue.length) {
      applyOp(this.#durable, op);
      return Promise.resolve();
    }

    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(noop); // a ShutdownError from close() must never be an unhandled rejection
    const pending: InFlight = { op, synced: delay === 0, timer: undefined, resolve, reject };
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

  /** Moves every change whose sync ended, and whose predecessors are durable, to the durable state, in order. */
  #drain(): void {
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const pending = queue[this.#head] as InFlight;
      if (!pending.synced) break;
      this.#head++;
      applyOp(this.#durable, pending.op);
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

  /** A staging handle bound to `slot` in this incarnation of the store. */
  #handle(slot: number): SnapshotStaging {
    const epoch = this.#epoch;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the handle's methods run later
    const self = this;
    const live = (): Staged | Promise<never> => {
      const unusable = self.#unusable('snapshot staging');
      if (unusable !== null) return unusable;
      const st = self.#cur.staging;
      if (self.#epoch !== epoch || st === null || st.slot !== slot) {
        return Promise.reject(new StorageError('snapshot staging is no longer live (committed, discarded, replaced or reopened)'));
      }
      return st;
    };
    const view = (): Staged | null => {
      const st = self.#cur.staging;
      return st !== null && st.slot === slot && self.#epoch === epoch ? st : null;
    };
    const descriptor = (view() as Staged).descriptor;
    return {
      descriptor,
      get size() {
        return view()?.size ?? 0;
      },
      get chunks() {
        return view()?.chunks.length ?? 0;
      },
      get checksum() {
        return view()?.checksum ?? 0;
      },
      append(data: Uint8Array): Promise<void> {
        const st = live();
        if (st instanceof Promise) return st;
        if (!(data instanceof Uint8Array)) return Promise.reject(new StorageError('snapshot chunk must be a Uint8Array'));
        if (data.length === 0) return self.#submit({ kind: 'fn', fn: noop });
        const crc = crc32Js(data);
        return self.#submit({
          kind: 'fn',
          fn: (s) => {
            const staged = s.staging;
            if (staged === null || staged.slot !== slot) return;
            staged.chunks.push(data);
            staged.crcs.push(crc);
            staged.size += data.length;
            staged.checksum = crc32Js(data, staged.checksum);
          },
        });
      },
      commit(expected?: { readonly size?: number; readonly checksum?: number }): Promise<SnapshotMeta> {
        const st = live();
        if (st instanceof Promise) return st;
        const cur = self.#cur;
        let checksum = 0;
        for (let i = 0; i < st.chunks.length; i++) {
          const chunk = st.chunks[i] as Uint8Array;
          if (crc32Js(chunk) !== st.crcs[i]) {
            return Promise.reject(new StorageCorruptionError(`staging/${i}`, null, 'chunk changed after it was staged'));
          }
          checksum = crc32Js(chunk, checksum);
        }
        const meta: SnapshotMeta = { ...st.descriptor, size: st.size, checksum, chunks: st.chunks.length };
        const refused = refuseInstall(meta, expected, cur.snapshots[0]?.meta ?? null, cur.firstIndex);
        if (refused !== null) return Promise.reject(new StorageError(refused));
        const keep = self.#keep;
        const chunks = st.chunks.slice();
        const crcs = st.crcs.slice();
        return self
          .#submit({ kind: 'fn', fn: (s) => install(s, { meta, chunks, crcs }, keep) })
          .then(() => meta);
      },
      discard(): Promise<void> {
        const unusable = self.#unusable('snapshot discard');
        if (unusable !== null) return unusable;
        if (view() === null) return self.#submit({ kind: 'fn', fn: noop }); // already gone: nothing to do
        return self.#submit({
          kind: 'fn',
          fn: (s) => {
            if (s.staging?.slot === slot) s.staging = null;
          },
        });
      },
    };
  }
}

/** Makes `held` current in `s`, keeps the newest `keep`, drops the staging and adjusts the log (§7). */
function install(s: State, held: Held, keep: number): void {
  const { index, term } = held.meta;
  s.snapshots = [held, ...s.snapshots].slice(0, keep);
  s.staging = null;
  if (termOf(s, index) === term) return; // the log connects to the snapshot: keep it
  s.log = [];
  s.firstIndex = index + 1;
  s.boundaryTerm = term;
}

function applyOp(s: State, op: Op): void {
  if (op.kind === 'fn') {
    op.fn(s);
    return;
  }
  const { truncateFrom, entries, hardState } = op.write;
  const log = s.log;
  if (truncateFrom !== undefined && truncateFrom - s.firstIndex < log.length) log.length = truncateFrom - s.firstIndex;
  for (let i = 0; i < entries.length; i++) log.push(entries[i] as LogEntry);
  if (hardState !== undefined) s.hardState = hardState;
}
