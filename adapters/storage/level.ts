/**
 * Durable {@link RaftStorage} on any [abstract-level](https://github.com/Level/abstract-level)
 * database: `classic-level` (LevelDB) on disk by path, or a database the caller
 * made (`memory-level` in tests, `browser-level` in browsers, a sublevel of a
 * shared database).
 *
 * ## Record layout (format version 1)
 *
 * Keys and values are binary (`'view'` encoding). Every value is
 * `crc32 (4 bytes, big-endian) ‖ body`, where the CRC-32 (IEEE, as zlib's) covers the
 * key bytes followed by the body, so a record that is truncated, bit-flipped
 * or stored under the wrong key fails its check. Integers called `u64` below
 * are 8-byte big-endian unsigned integers holding JS safe integers.
 *
 * | key (bytes)                        | body                                                     | written by |
 * | ---------------------------------- | -------------------------------------------------------- | ---------- |
 * | `"meta:format"`                    | `u32` format version, `1`                                | first open of an empty store |
 * | `"meta:hardstate"`                 | `u64` term ‖ `u8` has-vote (0/1) ‖ UTF-8 `votedFor`      | `write()` with a `hardState` |
 * | `"meta:first"`                     | `u64` first index ‖ `u64` term of the entry before it    | {@link LevelStorage.compact} |
 * | `"meta:membership"`                | reserved for the membership record (not written yet)     | — |
 * | `"meta:snapshot"`                  | reserved for snapshot metadata (not written yet)         | — |
 * | `"l"` (0x6c) ‖ `u64` index         | `u8` type (0 normal, 1 noop, 2 config) ‖ `u64` index ‖ `u64` term ‖ data | `write()` |
 *
 * Log keys sort numerically because the index is fixed-width big-endian, and
 * all of them sort before the `meta:` keys. A missing `meta:first` means
 * first index 1. Reserved keys are checksum-verified at open when present.
 * Pass a sublevel as `db` to keep several stores (one per Raft group) in one
 * database.
 *
 * @module
 */
import type { AbstractLevel } from 'abstract-level';
import { ConfigurationError, ShutdownError, StorageCorruptionError, StorageError } from '../../errors.js';
import type { EntryType, HardState, LogEntry } from '../../machines/types.js';
import type { RaftStorage, StorageWrite, StoredState } from './storage.js';
import { invalidWrite } from './validate.js';
import { crc32Js, loadCrc32, type Crc32 } from './crc32.js';

/**
 * Options of {@link LevelStorage}: exactly one of `path` and `db`.
 *
 * @example
 * ```ts
 * new LevelStorage({ path: 'data/n1' });                       // classic-level on disk
 * new LevelStorage({ db: new MemoryLevel() });                 // any abstract-level database
 * new LevelStorage({ db: shared.sublevel('group-7') });        // one store per Raft group
 * ```
 */
export interface LevelStorageOptions {
  /**
   * Directory of a `classic-level` (LevelDB) database, created if missing.
   * The storage opens it in {@link LevelStorage.open} and closes it in
   * {@link LevelStorage.close}.
   */
  readonly path?: string;
  /**
   * An abstract-level database (or sublevel) that the caller created and owns.
   * The storage opens it if it is not open yet and never closes it; every
   * operation passes its own `'view'` encodings, so the database's default
   * encodings do not matter.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any abstract-level database, whatever its default encodings
  readonly db?: AbstractLevel<any, any, any>;
  /**
   * What {@link LevelStorage.open} does with a torn tail (unreadable records
   * at the end of the log and nothing valid after them): `'repair'` (the
   * default) deletes them and opens; `'reject'` refuses to open with a
   * {@link StorageCorruptionError}, for operators who prefer to look first.
   */
  readonly tornTail?: 'repair' | 'reject';
  /**
   * The CRC-32 implementation. By default Node's native `zlib.crc32` when the
   * runtime has it, otherwise the portable {@link crc32Js} (browsers, Node
   * before 20.15) — both compute the same CRC-32 (IEEE 802.3), so stores move
   * between runtimes. Give one only to force the portable code or to supply a
   * faster equivalent; any other function makes existing stores unreadable.
   */
  readonly crc32?: Crc32;
}

/** What the last {@link LevelStorage.open} repaired: the torn tail it deleted. */
export interface LevelRecovery {
  /** Log indexes of the deleted records, ascending. */
  readonly droppedIndexes: readonly number[];
  /** Their keys, printable (hex). */
  readonly droppedKeys: readonly string[];
}

/** The format version this code reads and writes. */
export const LEVEL_FORMAT_VERSION = 1;

// -- encoding -----------------------------------------------------------------

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const U32 = 2 ** 32;

const FORMAT_KEY = utf8.encode('meta:format');
const HARD_STATE_KEY = utf8.encode('meta:hardstate');
const FIRST_KEY = utf8.encode('meta:first');
const MEMBERSHIP_KEY = utf8.encode('meta:membership');
const SNAPSHOT_KEY = utf8.encode('meta:snapshot');

const LOG_PREFIX = 0x6c; // 'l'
const LOG_KEY_LENGTH = 9;
/** Sorts after every log key: the prefix byte + 1. */
const LOG_END = Uint8Array.of(LOG_PREFIX + 1);

const CRC_BYTES = 4;
const ENTRY_HEADER = 1 + 8 + 8;
const TYPE_CODES: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, config: 2 };
const TYPES: readonly EntryType[] = ['normal', 'noop', 'config'];

const VIEW = { keyEncoding: 'view', valueEncoding: 'view' } as const;
/** `sync` is typed on ClassicLevel only; other engines ignore it. */
const SYNCED_BATCH = { keyEncoding: 'view', valueEncoding: 'view', sync: true } as const;

const FRESH_HARD_STATE: HardState = Object.freeze({ term: 0, votedFor: null });

function setU64(view: DataView, offset: number, n: number): void {
  view.setUint32(offset, Math.floor(n / U32));
  view.setUint32(offset + 4, n >>> 0);
}

function getU64(view: DataView, offset: number): number {
  return view.getUint32(offset) * U32 + view.getUint32(offset + 4);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The key of log entry `index`. */
function logKey(index: number): Uint8Array {
  const key = new Uint8Array(LOG_KEY_LENGTH);
  key[0] = LOG_PREFIX;
  setU64(dataView(key), 1, index);
  return key;
}

/** The index a log key names, or `null` if it is not a well-formed log key. */
function logKeyIndex(key: Uint8Array): number | null {
  if (key.length !== LOG_KEY_LENGTH || key[0] !== LOG_PREFIX) return null;
  const index = getU64(dataView(key), 1);
  return Number.isSafeInteger(index) ? index : null;
}

/** A key as text: ASCII when printable, otherwise hex. */
function printableKey(key: Uint8Array): string {
  let printable = true;
  for (const b of key) if (b < 0x20 || b > 0x7e) printable = false;
  return printable ? String.fromCharCode(...key) : Array.from(key, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Stamps the checksum of `key ‖ value[4..]` into `value[0..4]`; returns `value`. */
function seal(crc32: Crc32, key: Uint8Array, value: Uint8Array): Uint8Array {
  dataView(value).setUint32(0, crc32(value.subarray(CRC_BYTES), crc32(key)));
  return value;
}

/** The body of a record whose checksum holds, or `null`. */
function unseal(crc32: Crc32, key: Uint8Array, value: Uint8Array): Uint8Array | null {
  if (value.length < CRC_BYTES) return null;
  const body = value.subarray(CRC_BYTES);
  return dataView(value).getUint32(0) === crc32(body, crc32(key)) ? body : null;
}

function encodeEntry(crc32: Crc32, key: Uint8Array, e: LogEntry): Uint8Array {
  const value = new Uint8Array(CRC_BYTES + ENTRY_HEADER + e.data.length);
  const view = dataView(value);
  value[CRC_BYTES] = TYPE_CODES[e.type];
  setU64(view, CRC_BYTES + 1, e.index);
  setU64(view, CRC_BYTES + 9, e.term);
  value.set(e.data, CRC_BYTES + ENTRY_HEADER);
  return seal(crc32, key, value);
}

/** Decodes a checked entry body; the data is copied, so callers may keep or mutate it. */
function decodeEntry(body: Uint8Array): LogEntry | string {
  if (body.length < ENTRY_HEADER) return `entry body of ${body.length} bytes is shorter than its ${ENTRY_HEADER}-byte header`;
  const type = TYPES[body[0] as number];
  if (type === undefined) return `unknown entry type code ${body[0]}`;
  const view = dataView(body);
  const index = getU64(view, 1);
  const term = getU64(view, 9);
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term) || term < 1) return `bad index ${index} or term ${term}`;
  // A copy, as a plain Uint8Array: engines may hand out their stored buffer, and Buffer#slice does not copy.
  return { index, term, type, data: new Uint8Array(body.subarray(ENTRY_HEADER)) };
}

function encodeHardState(crc32: Crc32, hs: HardState): Uint8Array {
  const vote = hs.votedFor === null ? new Uint8Array(0) : utf8.encode(hs.votedFor);
  const value = new Uint8Array(CRC_BYTES + 9 + vote.length);
  setU64(dataView(value), CRC_BYTES, hs.term);
  value[CRC_BYTES + 8] = hs.votedFor === null ? 0 : 1;
  value.set(vote, CRC_BYTES + 9);
  return seal(crc32, HARD_STATE_KEY, value);
}

function decodeHardState(body: Uint8Array): HardState | string {
  if (body.length < 9) return `hard state body of ${body.length} bytes is too short`;
  const term = getU64(dataView(body), 0);
  if (!Number.isSafeInteger(term)) return `bad term ${term}`;
  const hasVote = body[8];
  if (hasVote === 0 && body.length === 9) return { term, votedFor: null };
  if (hasVote !== 1) return `bad vote flag ${hasVote}`;
  try {
    return { term, votedFor: utf8Decoder.decode(body.subarray(9)) };
  } catch {
    return 'votedFor is not UTF-8';
  }
}

function encodeFirst(crc32: Crc32, firstIndex: number, prevTerm: number): Uint8Array {
  const value = new Uint8Array(CRC_BYTES + 16);
  setU64(dataView(value), CRC_BYTES, firstIndex);
  setU64(dataView(value), CRC_BYTES + 8, prevTerm);
  return seal(crc32, FIRST_KEY, value);
}

function encodeFormat(crc32: Crc32, version: number): Uint8Array {
  const value = new Uint8Array(CRC_BYTES + 4);
  dataView(value).setUint32(CRC_BYTES, version);
  return seal(crc32, FORMAT_KEY, value);
}

// -- the database surface we use -----------------------------------------------

type Op = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** The part of abstract-level this adapter calls, with the `'view'` encodings it always passes. */
interface Db {
  readonly status: string;
  open(): Promise<void>;
  close(): Promise<void>;
  getMany(keys: Uint8Array[], options: typeof VIEW): Promise<Array<Uint8Array | undefined>>;
  batch(ops: Op[], options: typeof SYNCED_BATCH): Promise<void>;
  iterator(options: { gte?: Uint8Array; lte?: Uint8Array; lt?: Uint8Array; limit?: number } & typeof VIEW): {
    nextv(size: number): Promise<Array<[Uint8Array, Uint8Array]>>;
    close(): Promise<void>;
  };
  clear(options: { gte?: Uint8Array; lte?: Uint8Array; lt?: Uint8Array; keyEncoding: 'view' }): Promise<void>;
}

// -- the write queue ------------------------------------------------------------

/** A queued unit of work: a write's batch operations, or a task (read, compaction). */
type Job =
  | { readonly kind: 'write'; readonly ops: Op[]; readonly bytes: number; resolve(): void; reject(err: unknown): void }
  | { readonly kind: 'task'; run(): Promise<void>; reject(err: unknown): void };

/** Writes merged into one group-commit batch at most; bounds a batch's memory. */
const GROUP_MAX_WRITES = 1024;
const GROUP_MAX_BYTES = 64 * 1024 * 1024;

function noop(): void {}

/** A rejected promise that never counts as an unhandled rejection (an awaiting caller still sees it). */
function quietReject<T>(err: unknown): Promise<T> {
  const p = Promise.reject<T>(err);
  p.catch(noop);
  return p;
}

/** A run of consecutive log entries with one term, starting at `start`. */
interface TermRun {
  readonly start: number;
  readonly term: number;
}

const OPTION_NAMES = new Set(['path', 'db', 'tornTail', 'crc32']);

/**
 * A durable {@link RaftStorage} on LevelDB (`classic-level`) or any
 * abstract-level database, with a checksum on every record.
 *
 * @remarks
 * **Writes.** Each {@link LevelStorage.write} becomes one atomic database
 * batch written with `sync: true` (an fsync on classic-level): the deletes of a
 * truncated suffix, the appended entries and the hard state together. Writes
 * apply in call order even when issued without awaiting; writes that queue up
 * behind a batch being synced are merged into the next batch (group commit,
 * still atomic and in order), and each promise resolves once its batch is
 * durable. Writes are validated when called, against every accepted write,
 * exactly as {@link MemoryStorage} validates (truncation `>= firstIndex`;
 * contiguous entries; terms `>= 1` that never decrease; hard-state term never
 * decreasing and one vote per term), plus: entry `data` must be a
 * `Uint8Array` and `type` one of `normal|noop|config`. An invalid write
 * rejects with {@link StorageError} and changes nothing. A truncated suffix is
 * deleted key by key inside the batch (so deleting a long suffix costs one
 * delete per entry).
 *
 * If the database fails a batch, that write and every later queued one reject
 * with {@link StorageError} and the storage refuses further reads and writes:
 * its memory of the log may be ahead of the disk. Close it and open again.
 *
 * **Reads.** {@link LevelStorage.entries} reads a key range and checks every
 * record; it is ordered after the writes issued before it (read-your-writes).
 *
 * **Open.** {@link LevelStorage.open} scans the whole log once, checking each
 * record's checksum, decoding it and checking that indexes are contiguous and
 * terms never decrease. A bad record with any valid record after it, a bad
 * hard-state, first-index, format or reserved record, or a gap rejects with a
 * {@link StorageCorruptionError} naming the key and log index: committed data
 * is never silently dropped. Bad records at the very end of the log with
 * nothing valid after them (a *torn tail*) are deleted and the store opens
 * with the last index before them (see {@link LevelStorageOptions.tornTail};
 * {@link LevelStorage.recovery} says what was dropped).
 *
 * Why repairing a torn tail is acceptable, and where it is not: a write's
 * promise resolves, and the node acknowledges the entries or the vote, only
 * after its batch is synced. A record that is incomplete because the process
 * or machine died mid-write was therefore never acknowledged, and forgetting
 * it is what a crash one moment earlier would have done. LevelDB itself
 * applies a batch atomically and discards a torn batch from its own
 * write-ahead log, so on classic-level a torn tail at this level mostly models
 * engines without atomic batches, or a value damaged in place. A bit flip in
 * the last, *acknowledged* record looks exactly like a torn tail and would be
 * repaired too — this replica then forgets an entry it acknowledged, which
 * Raft does not tolerate in general. Use `tornTail: 'reject'` where that risk
 * matters more than availability.
 *
 * **Close.** {@link LevelStorage.close} lets the batch already handed to the
 * database finish (its writes resolve or reject normally), rejects the writes
 * and reads still queued with {@link ShutdownError} (handled rejections, as in
 * {@link MemoryStorage}), then closes the database if this storage opened it by
 * `path`; a database passed as `db` stays open (its creator owns it). A closed
 * storage can be opened again.
 *
 * Indexes and terms must be JS safe integers. Returned entries carry copies
 * of the stored data.
 *
 * @example
 * ```ts
 * const storage = new LevelStorage({ path: 'data/n1' });
 * const { hardState, firstIndex, lastIndex } = await storage.open();
 * await storage.write({
 *   hardState: { term: 1, votedFor: 'n1' },
 *   entries: [{ index: lastIndex + 1, term: 1, type: 'noop', data: new Uint8Array() }],
 * });
 * await storage.close();
 * ```
 */
export class LevelStorage implements RaftStorage {
  readonly #path: string | null;
  readonly #tornTail: 'repair' | 'reject';
  readonly #crc32Option: Crc32 | null;
  /** The checksum in use: the option, or the runtime's best, resolved in `open()`. */
  #crc32: Crc32 = crc32Js;
  #db: Db | null;
  #state: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new';
  #failure: unknown = null;
  #recovery: LevelRecovery | null = null;

  // The accepted state: every accepted write applied (the disk catches up in order).
  #firstIndex = 1;
  #lastIndex = 0;
  /** Term of entry `firstIndex - 1` (0 when unknown or none). */
  #prevTerm = 0;
  /** Terms of entries `firstIndex..lastIndex`, run-length encoded, ascending. */
  #runs: TermRun[] = [];
  #hardState: HardState = FRESH_HARD_STATE;

  #queue: Job[] = [];
  #head = 0;
  /** The job (or group) handed to the database, settled when it finishes. */
  #running: Promise<void> | null = null;
  /** Settles when the last `open()` finished, either way. */
  #opening: Promise<void> = Promise.resolve();

  /**
   * @throws A {@link ConfigurationError} naming the option when options are
   * not an object, name an unknown option, give both or neither of
   * `path`/`db`, or give a `path` that is not a non-empty string, a `db`
   * that is not an abstract-level database, or an unknown `tornTail`.
   */
  constructor(options: LevelStorageOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigurationError('options', 'must be an object with a path or a db');
    }
    for (const name of Object.keys(options)) {
      if (!OPTION_NAMES.has(name)) throw new ConfigurationError(name, 'unknown option of LevelStorage (known: path, db, tornTail, crc32)');
    }
    const { path, db, tornTail, crc32 } = options;
    if (path !== undefined && db !== undefined) throw new ConfigurationError('path', 'give either path or db, not both');
    if (path === undefined && db === undefined) throw new ConfigurationError('path', 'give either path or db');
    if (path !== undefined && (typeof path !== 'string' || path.length === 0)) {
      throw new ConfigurationError('path', 'must be a non-empty string');
    }
    if (db !== undefined) {
      const d = db as unknown as Record<string, unknown> | null;
      const methods = ['open', 'close', 'getMany', 'batch', 'iterator', 'clear'];
      if (typeof d !== 'object' || d === null || !methods.every((m) => typeof d[m] === 'function')) {
        throw new ConfigurationError('db', 'must be an abstract-level database (open, close, getMany, batch, iterator, clear)');
      }
    }
    if (tornTail !== undefined && tornTail !== 'repair' && tornTail !== 'reject') {
      throw new ConfigurationError('tornTail', `must be 'repair' or 'reject', got ${String(tornTail)}`);
    }
    this.#path = path ?? null;
    this.#db = (db as unknown as Db | undefined) ?? null;
    if (crc32 !== undefined && typeof crc32 !== 'function') {
      throw new ConfigurationError('crc32', 'must be a CRC-32 function (data, previous) => number');
    }
    this.#tornTail = tornTail ?? 'repair';
    this.#crc32Option = crc32 ?? null;
  }

  /**
   * Opens the database (creating it if missing), checks every record and
   * reports what the store holds. Works again after {@link LevelStorage.close}.
   *
   * @throws Rejects with a {@link StorageCorruptionError} naming the key and
   * index of a corrupted record or a gap; with a {@link StorageError} when
   * already open, when the database cannot be opened, or when the store was
   * written by an unknown format version.
   */
  open(): Promise<StoredState> {
    if (this.#state === 'open' || this.#state === 'opening' || this.#state === 'closing') {
      return Promise.reject(new StorageError(`LevelStorage is already ${this.#state}`));
    }
    this.#state = 'opening';
    const opening = this.#open();
    this.#opening = opening.then(noop, noop);
    return opening;
  }

  async #open(): Promise<StoredState> {
    try {
      this.#crc32 = this.#crc32Option ?? (await loadCrc32());
      const db = await this.#openDb();
      try {
        await this.#load(db);
      } catch (err) {
        if (this.#path !== null) await db.close().catch(noop);
        throw err;
      }
    } catch (err) {
      this.#state = 'closed';
      throw err instanceof StorageError || err instanceof StorageCorruptionError
        ? err
        : new StorageError(`cannot open ${this.#path === null ? 'the database' : this.#path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    this.#failure = null;
    this.#queue = [];
    this.#head = 0;
    this.#state = 'open';
    return { hardState: this.#hardState, firstIndex: this.#firstIndex, lastIndex: this.#lastIndex };
  }

  /**
   * Entries `from..to` inclusive, read from the database after every write
   * issued before this call. `entries(lastIndex + 1, lastIndex)` and other
   * empty ranges with `from === to + 1` resolve to `[]`.
   *
   * @throws Rejects with a {@link StorageError} when the range is not
   * integral, `from > to + 1`, any entry is not held, before `open()` or after
   * a failed write; with a {@link StorageCorruptionError} when a record fails
   * its check; with a {@link ShutdownError} after (or during) `close()`.
   */
  entries(from: number, to: number): Promise<LogEntry[]> {
    const unusable = this.#unusable('read');
    if (unusable !== null) return Promise.reject(unusable);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from > to + 1) {
      return Promise.reject(new StorageError(`entries(${from}, ${to}): not a valid range`));
    }
    if (from > to) return Promise.resolve([]);
    if (from < this.#firstIndex || to > this.#lastIndex) {
      return Promise.reject(
        new StorageError(`entries(${from}, ${to}): not held (log holds ${this.#firstIndex}..${this.#lastIndex})`),
      );
    }
    return new Promise<LogEntry[]>((resolve, reject) => {
      this.#enqueue({
        kind: 'task',
        run: async () => {
          resolve(await this.#read(this.#db as Db, from, to));
        },
        reject,
      });
    });
  }

  /**
   * Validates one write and queues it; resolves once it is durable (synced).
   *
   * @throws Rejects with a {@link StorageError} for an invalid write (nothing
   * changes), before `open()`, or when the database failed this or an earlier
   * write; with a {@link ShutdownError} (a handled rejection) when closed, or
   * closed before the write reached the database.
   */
  write(write: StorageWrite): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return quietReject(new ShutdownError('storage write'));
    const unusable = this.#unusable('write');
    if (unusable !== null) return Promise.reject(unusable);
    const invalid = invalidWrite(write, {
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex,
      termAt: (i) => this.#termAt(i),
      hardState: this.#hardState,
    });
    if (invalid !== null) return Promise.reject(new StorageError(`invalid write: ${invalid}`));

    const ops: Op[] = [];
    let bytes = 0;
    const { truncateFrom, entries, hardState } = write;
    const oldLast = this.#lastIndex;
    if (truncateFrom !== undefined && truncateFrom <= this.#lastIndex) {
      this.#lastIndex = truncateFrom - 1;
      while (this.#runs.length > 0 && (this.#runs[this.#runs.length - 1] as TermRun).start >= truncateFrom) this.#runs.pop();
    }
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as LogEntry;
      const key = logKey(e.index);
      const value = encodeEntry(this.#crc32, key, e);
      ops.push({ type: 'put', key, value });
      bytes += value.length + LOG_KEY_LENGTH;
      const lastRun = this.#runs[this.#runs.length - 1];
      if (lastRun === undefined || lastRun.term !== e.term) this.#runs.push({ start: e.index, term: e.term });
      this.#lastIndex = e.index;
    }
    // Delete what the truncation removed and the appends did not overwrite.
    for (let i = this.#lastIndex + 1; i <= oldLast; i++) ops.push({ type: 'del', key: logKey(i) });
    if (hardState !== undefined) {
      ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardState(this.#crc32, hardState) });
      this.#hardState = { term: hardState.term, votedFor: hardState.votedFor };
    }
    const promise = new Promise<void>((resolve, reject) => {
      // With nothing to store, still resolve in order after the writes before it.
      this.#enqueue(ops.length === 0 ? { kind: 'task', run: async () => resolve(), reject } : { kind: 'write', ops, bytes, resolve, reject });
    });
    promise.catch(noop); // a ShutdownError from close() must never be an unhandled rejection
    return promise;
  }

  /**
   * Discards the entries up to `upTo` inclusive, after a snapshot covers them,
   * and durably records `upTo + 1` as the first index. Ordered with writes.
   *
   * @remarks The new first index (with the term of entry `upTo`) is written
   * and synced first; then the entries are removed with one range
   * `db.clear()`. A crash between the two leaves entries below the first
   * index, which {@link LevelStorage.open} ignores and deletes. `upTo` may be
   * past the last index (a snapshot newer than the whole log): the log is then
   * empty, with `lastIndex === upTo`, and `term` — the term of entry `upTo` —
   * must be given. A `upTo` below `firstIndex` is a no-op. Later writes must
   * truncate at or append after the new first index.
   *
   * @param upTo - Last index to discard.
   * @param term - Term of entry `upTo`; checked against the stored entry when
   * held, required when `upTo > lastIndex`.
   * @throws Rejects with a {@link StorageError} for a bad `upTo` or `term`
   * (nothing changes) or a failed storage; {@link ShutdownError} when closed.
   */
  compact(upTo: number, term?: number): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return quietReject(new ShutdownError('storage compaction'));
    const unusable = this.#unusable('compact');
    if (unusable !== null) return Promise.reject(unusable);
    if (!Number.isSafeInteger(upTo) || upTo < 0) {
      return Promise.reject(new StorageError(`compact(${upTo}): upTo must be an integer >= 0`));
    }
    if (upTo < this.#firstIndex) {
      const done = new Promise<void>((resolve, reject) => {
        this.#enqueue({ kind: 'task', run: async () => resolve(), reject });
      });
      done.catch(noop);
      return done;
    }
    let prevTerm: number;
    if (upTo <= this.#lastIndex) {
      prevTerm = this.#termAt(upTo);
      if (term !== undefined && term !== prevTerm) {
        return Promise.reject(new StorageError(`compact(${upTo}, ${term}): entry ${upTo} has term ${prevTerm}`));
      }
    } else {
      if (term === undefined || !Number.isSafeInteger(term) || term < this.#termAt(this.#lastIndex) || term < 1) {
        return Promise.reject(
          new StorageError(`compact(${upTo}): past the last index ${this.#lastIndex}, a term >= the last entry's is required`),
        );
      }
      prevTerm = term;
    }
    const firstIndex = upTo + 1;
    this.#firstIndex = firstIndex;
    this.#prevTerm = prevTerm;
    if (this.#lastIndex < upTo) this.#lastIndex = upTo;
    // Keep only the runs covering firstIndex.. ; the run holding firstIndex starts there.
    let keep = 0;
    while (keep + 1 < this.#runs.length && (this.#runs[keep + 1] as TermRun).start <= firstIndex) keep++;
    this.#runs = this.#runs.slice(keep);
    const head = this.#runs[0];
    if (head !== undefined) {
      if (this.#lastIndex < firstIndex) this.#runs = [];
      else if (head.start < firstIndex) this.#runs[0] = { start: firstIndex, term: head.term };
    }
    const promise = new Promise<void>((resolve, reject) => {
      this.#enqueue({
        kind: 'task',
        run: async () => {
          const db = this.#db as Db;
          await db.batch([{ type: 'put', key: FIRST_KEY, value: encodeFirst(this.#crc32, firstIndex, prevTerm) }], SYNCED_BATCH);
          await db.clear({ gte: logKey(0), lt: logKey(firstIndex), keyEncoding: 'view' });
          resolve();
        },
        reject,
      });
    });
    promise.catch(noop);
    return promise;
  }

  /**
   * Closes the storage: the batch already handed to the database finishes,
   * queued writes and reads reject with {@link ShutdownError}, and the
   * database is closed if it was opened by `path`. Called while `open()` is
   * under way, it waits for it and then closes. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#state === 'opening') await this.#opening;
    if (this.#state === 'new') {
      this.#state = 'closed';
      return;
    }
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    const queue = this.#queue;
    const head = this.#head;
    this.#queue = [];
    this.#head = 0;
    for (let i = head; i < queue.length; i++) (queue[i] as Job).reject(new ShutdownError('storage write'));
    while (this.#running !== null) await this.#running;
    try {
      if (this.#path !== null && this.#db !== null) await this.#db.close();
    } finally {
      this.#state = 'closed';
    }
  }

  /** What the last {@link LevelStorage.open} repaired, or `null` if nothing. */
  recovery(): LevelRecovery | null {
    return this.#recovery;
  }

  /** Whether the store is open. */
  isOpen(): boolean {
    return this.#state === 'open';
  }

  // -- internals ----------------------------------------------------------------

  async #openDb(): Promise<Db> {
    if (this.#path !== null) {
      if (this.#db === null) {
        const { ClassicLevel } = await import('classic-level');
        this.#db = new ClassicLevel<Uint8Array, Uint8Array>(this.#path, VIEW) as unknown as Db;
      }
    }
    const db = this.#db as Db;
    await db.open();
    return db;
  }

  /** Reads and checks everything; sets the accepted state. */
  async #load(db: Db): Promise<void> {
    this.#recovery = null;
    const [format, hard, first, membership, snapshot] = await db.getMany(
      [FORMAT_KEY, HARD_STATE_KEY, FIRST_KEY, MEMBERSHIP_KEY, SNAPSHOT_KEY],
      VIEW,
    );
    const check = (key: Uint8Array, value: Uint8Array | undefined): Uint8Array | null => {
      if (value === undefined) return null;
      const body = unseal(this.#crc32, key, value);
      if (body === null) throw new StorageCorruptionError(printableKey(key), null, 'checksum mismatch');
      return body;
    };
    check(MEMBERSHIP_KEY, membership);
    check(SNAPSHOT_KEY, snapshot);

    const formatBody = check(FORMAT_KEY, format);
    if (formatBody === null) {
      const anyLog = await this.#firstKey(db, logKey(0), LOG_END);
      if (hard !== undefined || first !== undefined || membership !== undefined || snapshot !== undefined || anyLog !== null) {
        throw new StorageCorruptionError(printableKey(FORMAT_KEY), null, 'missing, but the store holds other records');
      }
      await db.batch([{ type: 'put', key: FORMAT_KEY, value: encodeFormat(this.#crc32, LEVEL_FORMAT_VERSION) }], SYNCED_BATCH);
    } else {
      if (formatBody.length !== 4) throw new StorageCorruptionError(printableKey(FORMAT_KEY), null, 'bad length');
      const version = dataView(formatBody).getUint32(0);
      if (version !== LEVEL_FORMAT_VERSION) {
        throw new StorageError(`store format version ${version} is not supported (this code reads ${LEVEL_FORMAT_VERSION})`);
      }
    }

    let hardState = FRESH_HARD_STATE;
    const hardBody = check(HARD_STATE_KEY, hard);
    if (hardBody !== null) {
      const decoded = decodeHardState(hardBody);
      if (typeof decoded === 'string') throw new StorageCorruptionError(printableKey(HARD_STATE_KEY), null, decoded);
      hardState = decoded;
    }

    let firstIndex = 1;
    let prevTerm = 0;
    const firstBody = check(FIRST_KEY, first);
    if (firstBody !== null) {
      const view = dataView(firstBody);
      firstIndex = firstBody.length === 16 ? getU64(view, 0) : -1;
      prevTerm = firstBody.length === 16 ? getU64(view, 8) : -1;
      if (!Number.isSafeInteger(firstIndex) || firstIndex < 1 || !Number.isSafeInteger(prevTerm) || prevTerm < 0) {
        throw new StorageCorruptionError(printableKey(FIRST_KEY), null, 'bad first index record');
      }
    }
    // Entries below the first index are leftovers of an interrupted compaction.
    if (firstIndex > 1 && (await this.#firstKey(db, logKey(0), logKey(firstIndex))) !== null) {
      await db.clear({ gte: logKey(0), lt: logKey(firstIndex), keyEncoding: 'view' });
    }

    // Scan the log once.
    const runs: TermRun[] = [];
    let expected = firstIndex;
    let lastTerm = prevTerm;
    const torn: Array<{ key: Uint8Array; index: number; why: string }> = [];
    const it = db.iterator({ gte: logKey(firstIndex), lt: LOG_END, ...VIEW });
    try {
      for (;;) {
        const batch = await it.nextv(256);
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          const index = logKeyIndex(key);
          if (index === null) throw new StorageCorruptionError(printableKey(key), null, 'not a well-formed log key');
          if (index !== expected) {
            throw new StorageCorruptionError(printableKey(key), index, `gap in the log: expected index ${expected}`);
          }
          expected++;
          const body = unseal(this.#crc32, key, value);
          const decoded = body === null ? 'checksum mismatch' : decodeEntry(body);
          if (typeof decoded === 'string') {
            torn.push({ key, index, why: decoded });
            continue;
          }
          if (torn.length > 0) {
            const bad = torn[0] as (typeof torn)[number];
            throw new StorageCorruptionError(printableKey(bad.key), bad.index, `${bad.why}, and valid entry ${index} follows it`);
          }
          if (decoded.index !== index) {
            throw new StorageCorruptionError(printableKey(key), index, `record holds index ${decoded.index}`);
          }
          if (decoded.term < lastTerm) {
            throw new StorageCorruptionError(printableKey(key), index, `term ${decoded.term} is below the previous term ${lastTerm}`);
          }
          if (decoded.term !== lastTerm || runs.length === 0) runs.push({ start: index, term: decoded.term });
          lastTerm = decoded.term;
        }
      }
    } finally {
      await it.close();
    }
    let lastIndex = expected - 1;
    if (torn.length > 0) {
      const bad = torn[0] as (typeof torn)[number];
      if (this.#tornTail === 'reject') {
        throw new StorageCorruptionError(printableKey(bad.key), bad.index, `${bad.why} (torn tail; tornTail is 'reject')`);
      }
      await db.batch(
        torn.map(({ key }): Op => ({ type: 'del', key })),
        SYNCED_BATCH,
      );
      lastIndex = bad.index - 1;
      this.#recovery = { droppedIndexes: torn.map((r) => r.index), droppedKeys: torn.map((r) => printableKey(r.key)) };
    }

    this.#hardState = hardState;
    this.#firstIndex = firstIndex;
    this.#prevTerm = prevTerm;
    this.#lastIndex = lastIndex;
    this.#runs = runs;
  }

  /** The first key in `[gte, lt)`, or `null`. */
  async #firstKey(db: Db, gte: Uint8Array, lt: Uint8Array): Promise<Uint8Array | null> {
    const it = db.iterator({ gte, lt, limit: 1, ...VIEW });
    try {
      const [first] = await it.nextv(1);
      return first === undefined ? null : first[0];
    } finally {
      await it.close();
    }
  }

  /** Reads and checks entries `from..to`; every one must be there. */
  async #read(db: Db, from: number, to: number): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    const it = db.iterator({ gte: logKey(from), lte: logKey(to), ...VIEW });
    try {
      for (;;) {
        const batch = await it.nextv(Math.min(1024, to - from + 1));
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          const expected = from + out.length;
          const index = logKeyIndex(key);
          if (index !== expected) {
            throw new StorageError(`entries(${from}, ${to}): entry ${expected} is missing`);
          }
          const body = unseal(this.#crc32, key, value);
          const decoded = body === null ? 'checksum mismatch' : decodeEntry(body);
          if (typeof decoded === 'string') throw new StorageCorruptionError(printableKey(key), index, decoded);
          if (decoded.index !== index) throw new StorageCorruptionError(printableKey(key), index, `record holds index ${decoded.index}`);
          out.push(decoded);
        }
      }
    } finally {
      await it.close();
    }
    if (out.length !== to - from + 1) throw new StorageError(`entries(${from}, ${to}): entry ${from + out.length} is missing`);
    return out;
  }

  /** Why the store cannot serve `what` now, or `null`. */
  #unusable(what: string): Error | null {
    if (this.#state === 'closed' || this.#state === 'closing') return new ShutdownError(`storage ${what}`);
    if (this.#state !== 'open') return new StorageError(`LevelStorage ${what} before open()`);
    if (this.#failure !== null) {
      return new StorageError(`LevelStorage ${what} refused: an earlier write failed`, { cause: this.#failure });
    }
    return null;
  }

  /** Term of entry `index`, for `firstIndex - 1 <= index <= lastIndex`. */
  #termAt(index: number): number {
    if (index < this.#firstIndex) return this.#prevTerm;
    const runs = this.#runs;
    let lo = 0;
    let hi = runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((runs[mid] as TermRun).start <= index) lo = mid;
      else hi = mid - 1;
    }
    return (runs[lo] as TermRun).term;
  }


  #enqueue(job: Job): void {
    this.#queue.push(job);
    if (this.#running === null) this.#running = this.#pump();
  }

  /** Runs queued jobs one at a time (consecutive writes as one batch) until the queue is empty. */
  async #pump(): Promise<void> {
    // Let the rest of this turn's writes join the first batch.
    await Promise.resolve();
    while (this.#head < this.#queue.length && this.#failure === null) {
      const queue = this.#queue;
      const job = queue[this.#head] as Job;
      if (job.kind === 'task') {
        this.#head++;
        try {
          await job.run();
        } catch (err) {
          job.reject(err);
        }
        this.#compactQueue();
        continue;
      }
      const group: Array<Job & { kind: 'write' }> = [];
      let ops: Op[] = [];
      let bytes = 0;
      while (this.#head < queue.length && group.length < GROUP_MAX_WRITES) {
        const next = queue[this.#head] as Job;
        if (next.kind !== 'write' || (group.length > 0 && bytes + next.bytes > GROUP_MAX_BYTES)) break;
        this.#head++;
        group.push(next);
        ops = group.length === 1 ? next.ops : ops.concat(next.ops);
        bytes += next.bytes;
      }
      try {
        await (this.#db as Db).batch(ops, SYNCED_BATCH);
        for (const w of group) w.resolve();
      } catch (err) {
        this.#failure = err;
        const error = new StorageError(`write failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
        for (const w of group) w.reject(error);
      }
      this.#compactQueue();
    }
    if (this.#failure !== null) {
      const queue = this.#queue;
      for (let i = this.#head; i < queue.length; i++) {
        (queue[i] as Job).reject(new StorageError('LevelStorage: an earlier write failed', { cause: this.#failure }));
      }
      this.#queue = [];
      this.#head = 0;
    }
    this.#running = null;
  }

  #compactQueue(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
