/**
 * Durable {@link RaftStorage} on any [abstract-level](https://github.com/Level/abstract-level)
 * database: `classic-level` (LevelDB) on disk by path, or a database the caller
 * made (`memory-level` in tests, `browser-level` in browsers, a sublevel of a
 * shared database).
 *
 * ## Record layout (format version 2)
 *
 * Keys and values are binary (`'view'` encoding). Every value is
 * `crc32 (4 bytes, big-endian) ‖ body`, where the CRC-32 (IEEE, as zlib's) covers the
 * key bytes followed by the body, so a record that is truncated, bit-flipped
 * or stored under the wrong key fails its check. Integers called `u64` below
 * are 8-byte big-endian unsigned integers holding JS safe integers; `u32` are
 * 4-byte big-endian.
 *
 * | key (bytes)                        | body                                                     | written by |
 * | ---------------------------------- | -------------------------------------------------------- | ---------- |
 * | `"meta:format"`                    | `u32` format version, `1` or `2`                         | first open of an empty store; `2` with the first snapshot staged |
 * | `"meta:hardstate"`                 | `u64` term ‖ `u8` has-vote (0/1) ‖ UTF-8 `votedFor`      | `write()` with a `hardState` |
 * | `"meta:first"`                     | `u64` first index ‖ `u64` term of the entry before it    | {@link LevelStorage.compact}; a snapshot install that discards the log |
 * | `"meta:membership"`                | reserved for the membership record (not written yet)     | — |
 * | `"meta:snapshot"`                  | `u32` count ‖ count × *snapshot record*, newest first    | a snapshot commit |
 * | `"meta:staging"`                   | one *snapshot record*: the staging, as synced so far     | staging start, each chunk append |
 * | `"l"` (0x6c) ‖ `u64` index         | `u8` type (0 normal, 1 noop, 2 config, 3 restore) ‖ `u64` index ‖ `u64` term ‖ data | `write()` |
 * | `"s"` (0x73) ‖ `u64` slot ‖ `u32` seq | `u64` offset of the chunk in the snapshot ‖ chunk bytes | each chunk append |
 *
 * A *snapshot record* is `u64` slot ‖ `u64` index ‖ `u64` term ‖ `u64`
 * configuration index ‖ `u64` size ‖ `u32` CRC-32 of the content ‖ `u32`
 * chunk count ‖ `u32` length ‖ the configuration as UTF-8 JSON. A *slot*
 * numbers one staging (and the snapshot it becomes) for the life of the
 * store; its chunks are `seq` 0, 1, ... at increasing offsets. In
 * `meta:staging`, size, CRC and count cover the chunks synced so far (the
 * header is rewritten in the same batch as each chunk), so a restart resumes
 * exactly there.
 *
 * Log keys sort numerically because the index is fixed-width big-endian, and
 * all of them sort before the `meta:` keys. A missing `meta:first` means
 * first index 1. Reserved keys are checksum-verified at open when present.
 * Chunk records whose slot is neither kept nor staging (left by a crash
 * during a discard or a prune) are deleted at open. Pass a sublevel as `db`
 * to keep several stores (one per Raft group) in one database.
 *
 * **Format versions.** Version 1 stores have no snapshot records. This code
 * reads both versions; it writes `1` on a fresh store and upgrades the record
 * to `2` in the batch that stages the first snapshot, so code that reads only
 * version 1 refuses a store holding snapshots instead of ignoring them (and
 * replaying a log that no longer starts at 1). A version above 2 is refused.
 *
 * @module
 */
import type { AbstractLevel } from 'abstract-level';
import { ConfigurationError, ShutdownError, StorageCorruptionError, StorageError } from '../../errors.js';
import type { Configuration, HardState, LogEntry } from '../../machines/types.js';
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
import { crc32Js, loadCrc32, type Crc32 } from './crc32.js';
// An entry's type byte on disk is its code on the wire.
import { ENTRY_TYPE_CODES, ENTRY_TYPES } from '../codec.js';

/**
 * Options of {@link LevelStorage}: exactly one of `path` and `db`.
 *
 * @example
 * ```ts
 * import { MemoryLevel } from 'memory-level';
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
  /** How many snapshots to keep, newest first (at least 1). Defaults to 2. */
  readonly keepSnapshots?: number;
}

/** What the last {@link LevelStorage.open} repaired: the torn tail it deleted. */
export interface LevelRecovery {
  /** Log indexes of the deleted records, ascending. */
  readonly droppedIndexes: readonly number[];
  /** Their keys, printable (hex). */
  readonly droppedKeys: readonly string[];
}

/**
 * The newest format version this code reads and writes.
 *
 * @remarks Version 1 (no snapshot records) is read too and written on fresh
 * stores; a store moves to 2 when it stages its first snapshot.
 */
export const LEVEL_FORMAT_VERSION = 2;
/** The version a fresh store is written with, until it holds snapshot records. */
const BASE_FORMAT_VERSION = 1;

// -- encoding -----------------------------------------------------------------

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const U32 = 2 ** 32;

const FORMAT_KEY = utf8.encode('meta:format');
const HARD_STATE_KEY = utf8.encode('meta:hardstate');
const FIRST_KEY = utf8.encode('meta:first');
const MEMBERSHIP_KEY = utf8.encode('meta:membership');
const SNAPSHOT_KEY = utf8.encode('meta:snapshot');
const STAGING_KEY = utf8.encode('meta:staging');

const CHUNK_PREFIX = 0x73; // 's'
const CHUNK_KEY_LENGTH = 13;
/** Sorts after every chunk key. */
const CHUNK_END = Uint8Array.of(CHUNK_PREFIX + 1);
const U32_MAX = U32 - 1;

const LOG_PREFIX = 0x6c; // 'l'
const LOG_KEY_LENGTH = 9;
/** Sorts after every log key: the prefix byte + 1. */
const LOG_END = Uint8Array.of(LOG_PREFIX + 1);

const CRC_BYTES = 4;
const ENTRY_HEADER = 1 + 8 + 8;

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
  value[CRC_BYTES] = ENTRY_TYPE_CODES[e.type];
  setU64(view, CRC_BYTES + 1, e.index);
  setU64(view, CRC_BYTES + 9, e.term);
  value.set(e.data, CRC_BYTES + ENTRY_HEADER);
  return seal(crc32, key, value);
}

/** Decodes a checked entry body; the data is copied, so callers may keep or mutate it. */
function decodeEntry(body: Uint8Array): LogEntry | string {
  if (body.length < ENTRY_HEADER) return `entry body of ${body.length} bytes is shorter than its ${ENTRY_HEADER}-byte header`;
  const type = ENTRY_TYPES[body[0] as number];
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

/** The key of chunk `seq` of slot `slot`. */
function chunkKey(slot: number, seq: number): Uint8Array {
  const key = new Uint8Array(CHUNK_KEY_LENGTH);
  key[0] = CHUNK_PREFIX;
  const view = dataView(key);
  setU64(view, 1, slot);
  view.setUint32(9, seq);
  return key;
}

/** The slot and seq a chunk key names, or `null` if it is not a well-formed chunk key. */
function chunkKeyParts(key: Uint8Array): { slot: number; seq: number } | null {
  if (key.length !== CHUNK_KEY_LENGTH || key[0] !== CHUNK_PREFIX) return null;
  const view = dataView(key);
  const slot = getU64(view, 1);
  return Number.isSafeInteger(slot) ? { slot, seq: view.getUint32(9) } : null;
}

function encodeChunk(crc32: Crc32, key: Uint8Array, offset: number, data: Uint8Array): Uint8Array {
  const value = new Uint8Array(CRC_BYTES + 8 + data.length);
  setU64(dataView(value), CRC_BYTES, offset);
  value.set(data, CRC_BYTES + 8);
  return seal(crc32, key, value);
}

/** The descriptor part of `d`, as a fresh plain object. */
function descriptorOf(d: SnapshotDescriptor): SnapshotDescriptor {
  return { index: d.index, term: d.term, configuration: d.configuration, configurationIndex: d.configurationIndex };
}

/** The staging as accepted: every append issued is counted. */
interface LiveStaging {
  readonly slot: number;
  readonly descriptor: SnapshotDescriptor;
  size: number;
  checksum: number;
  chunks: number;
}

/** A snapshot (or a staging, counting what is synced so far) as stored, with its slot. */
interface SlotMeta {
  readonly slot: number;
  readonly meta: SnapshotMeta;
}

const SNAPSHOT_RECORD_HEADER = 8 * 5 + 4 * 3;

function snapshotRecordBytes(r: SlotMeta): Uint8Array {
  const config = utf8.encode(JSON.stringify(r.meta.configuration));
  const out = new Uint8Array(SNAPSHOT_RECORD_HEADER + config.length);
  const view = dataView(out);
  const m = r.meta;
  setU64(view, 0, r.slot);
  setU64(view, 8, m.index);
  setU64(view, 16, m.term);
  setU64(view, 24, m.configurationIndex);
  setU64(view, 32, m.size);
  view.setUint32(40, m.checksum >>> 0);
  view.setUint32(44, m.chunks);
  view.setUint32(48, config.length);
  out.set(config, SNAPSHOT_RECORD_HEADER);
  return out;
}

/** Decodes one snapshot record at `offset`; returns it and the offset after it, or why it is bad. */
function decodeSnapshotRecord(body: Uint8Array, offset: number): { record: SlotMeta; end: number } | string {
  if (body.length - offset < SNAPSHOT_RECORD_HEADER) return 'snapshot record is truncated';
  const view = dataView(body.subarray(offset));
  const slot = getU64(view, 0);
  const index = getU64(view, 8);
  const term = getU64(view, 16);
  const configurationIndex = getU64(view, 24);
  const size = getU64(view, 32);
  const checksum = view.getUint32(40);
  const chunks = view.getUint32(44);
  const length = view.getUint32(48);
  const end = offset + SNAPSHOT_RECORD_HEADER + length;
  if (end > body.length) return 'snapshot record configuration is truncated';
  let configuration: Configuration;
  try {
    configuration = JSON.parse(utf8Decoder.decode(body.subarray(offset + SNAPSHOT_RECORD_HEADER, end))) as Configuration;
  } catch {
    return 'snapshot record configuration is not UTF-8 JSON';
  }
  const meta: SnapshotMeta = { index, term, configuration, configurationIndex, size, checksum, chunks };
  const why = invalidDescriptor(meta);
  if (why !== null || !Number.isSafeInteger(slot) || slot < 1 || !Number.isSafeInteger(size)) {
    return `bad snapshot record: ${why ?? `slot ${slot}, size ${size}`}`;
  }
  return { record: { slot, meta }, end };
}

function encodeSnapshots(crc32: Crc32, list: readonly SlotMeta[]): Uint8Array {
  const parts = list.map(snapshotRecordBytes);
  const value = new Uint8Array(CRC_BYTES + 4 + parts.reduce((n, p) => n + p.length, 0));
  dataView(value).setUint32(CRC_BYTES, list.length);
  let at = CRC_BYTES + 4;
  for (const p of parts) {
    value.set(p, at);
    at += p.length;
  }
  return seal(crc32, SNAPSHOT_KEY, value);
}

function decodeSnapshots(body: Uint8Array): SlotMeta[] | string {
  if (body.length < 4) return 'snapshot list is truncated';
  const count = dataView(body).getUint32(0);
  const out: SlotMeta[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    const r = decodeSnapshotRecord(body, at);
    if (typeof r === 'string') return r;
    out.push(r.record);
    at = r.end;
  }
  return at === body.length ? out : 'snapshot list has trailing bytes';
}

function encodeStaging(crc32: Crc32, staging: SlotMeta): Uint8Array {
  const record = snapshotRecordBytes(staging);
  const value = new Uint8Array(CRC_BYTES + record.length);
  value.set(record, CRC_BYTES);
  return seal(crc32, STAGING_KEY, value);
}

function decodeStaging(body: Uint8Array): SlotMeta | string {
  const r = decodeSnapshotRecord(body, 0);
  if (typeof r === 'string') return r;
  return r.end === body.length ? r.record : 'staging record has trailing bytes';
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
  iterator(options: { gte?: Uint8Array; lte?: Uint8Array; lt?: Uint8Array; limit?: number; reverse?: boolean } & typeof VIEW): {
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

const OPTION_NAMES = new Set(['path', 'db', 'tornTail', 'crc32', 'keepSnapshots']);

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
export class LevelStorage implements RaftStorage, SnapshotStore {
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
  /** The format version of the store (accepted): 1 until a snapshot is staged, then 2. */
  #format = BASE_FORMAT_VERSION;
  readonly #keep: number;
  /** Snapshots held (accepted), newest first. */
  #snapshots: SlotMeta[] = [];
  /** The staging (accepted: every append issued counted), or `null`. */
  #staging: LiveStaging | null = null;
  /** The next staging slot to hand out. */
  #nextSlot = 1;
  /** Bumps on every open and close: staging handles of an earlier incarnation are dead. */
  #epoch = 0;

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
   * that is not an abstract-level database, an unknown `tornTail`, or a
   * `keepSnapshots` that is not an integer >= 1.
   */
  constructor(options: LevelStorageOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigurationError('options', 'must be an object with a path or a db');
    }
    for (const name of Object.keys(options)) {
      if (!OPTION_NAMES.has(name)) throw new ConfigurationError(name, 'unknown option of LevelStorage (known: path, db, tornTail, crc32, keepSnapshots)');
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
    const keepWhy = invalidKeepSnapshots(options.keepSnapshots);
    if (keepWhy !== null) throw new ConfigurationError('keepSnapshots', keepWhy);
    this.#tornTail = tornTail ?? 'repair';
    this.#crc32Option = crc32 ?? null;
    this.#keep = options.keepSnapshots ?? DEFAULT_KEEP_SNAPSHOTS;
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
    this.#epoch++;
    return {
      hardState: this.#hardState,
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex,
      boundaryTerm: this.#prevTerm,
      snapshot: this.#snapshots[0]?.meta ?? null,
    };
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
   * Starts staging a snapshot, replacing any staging (its chunks are
   * deleted). See {@link SnapshotStore.stageSnapshot}.
   *
   * @remarks One synced batch writes the new `meta:staging` header (and, on a
   * version 1 store, the format record `2`); the replaced staging's chunks are
   * then cleared with one range delete. Ordered with writes.
   *
   * @throws Rejects with a {@link StorageError} for a bad descriptor, before
   * `open()` or after a failed write; {@link ShutdownError} when closed.
   */
  stageSnapshot(descriptor: SnapshotDescriptor): Promise<SnapshotStaging> {
    if (this.#state === 'closed' || this.#state === 'closing') return quietReject(new ShutdownError('snapshot staging'));
    const unusable = this.#unusable('snapshot staging');
    if (unusable !== null) return Promise.reject(unusable);
    const invalid = invalidDescriptor(descriptor);
    if (invalid !== null) return Promise.reject(new StorageError(`invalid snapshot descriptor: ${invalid}`));
    const d = descriptorOf(descriptor);
    let configJson: string;
    try {
      configJson = JSON.stringify(d.configuration);
    } catch (err) {
      return Promise.reject(new StorageError('invalid snapshot descriptor: configuration is not JSON-serialisable', { cause: err }));
    }
    if (utf8.encode(configJson).length > U32_MAX) {
      return Promise.reject(new StorageError('invalid snapshot descriptor: configuration too large'));
    }
    const old = this.#staging;
    const slot = this.#nextSlot++;
    this.#staging = { slot, descriptor: d, size: 0, checksum: 0, chunks: 0 };
    const ops: Op[] = [{ type: 'put', key: STAGING_KEY, value: encodeStaging(this.#crc32, this.#stagingRecord()) }];
    if (this.#format < LEVEL_FORMAT_VERSION) {
      ops.push({ type: 'put', key: FORMAT_KEY, value: encodeFormat(this.#crc32, LEVEL_FORMAT_VERSION) });
      this.#format = LEVEL_FORMAT_VERSION;
    }
    const handle = this.#handle(slot);
    return this.#task(async (db) => {
      await db.batch(ops, SYNCED_BATCH);
      if (old !== null) await this.#clearSlot(db, old.slot);
    }).then(() => handle);
  }

  /**
   * The staging that survived the last restart (with its synced chunks), or the live one; `null` when none.
   *
   * @throws Rejects with a {@link ShutdownError} once closed, or a {@link StorageError} before
   * `open()` or after an earlier write failed.
   */
  resumeSnapshot(): Promise<SnapshotStaging | null> {
    if (this.#state === 'closed' || this.#state === 'closing') return quietReject(new ShutdownError('snapshot staging'));
    const unusable = this.#unusable('snapshot staging');
    if (unusable !== null) return Promise.reject(unusable);
    return Promise.resolve(this.#staging === null ? null : this.#handle(this.#staging.slot));
  }

  /** The snapshots held (accepted), newest first; empty when not open. */
  snapshots(): readonly SnapshotMeta[] {
    return this.#state === 'open' ? this.#snapshots.map((r) => r.meta) : [];
  }

  /**
   * The chunks of the current snapshot, or of the kept one at `index`, read
   * straight from the database (not queued behind writes: committed chunks
   * never change). See {@link SnapshotStore.readSnapshot}.
   *
   * @remarks Every record's checksum, key sequence and offset is checked as
   * it is read, and the whole content's size and CRC-32 against the metadata
   * at the end; a failure throws {@link StorageCorruptionError} naming the
   * chunk key (or `meta:snapshot` for a whole-content mismatch). Chunks are
   * copies.
   *
   * @throws The iteration throws a {@link StorageCorruptionError} as above; a
   * {@link StorageError} when no snapshot (at `index`) is held, before `open()`
   * or after an earlier write failed; a {@link ShutdownError} once closed.
   */
  readSnapshot(index?: number): AsyncIterable<Uint8Array> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the generator runs later
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const unusable = self.#unusable('snapshot read');
        if (unusable !== null) throw unusable;
        const held = index === undefined ? self.#snapshots[0] : self.#snapshots.find((r) => r.meta.index === index);
        if (held === undefined) {
          throw new StorageError(index === undefined ? 'no snapshot is held' : `no snapshot at index ${index} is held`);
        }
        yield* self.#readSlot(held.slot, held.meta, 'read');
      },
    };
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
    this.#epoch++;
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
    const [format, hard, first, membership, snapshot, staging] = await db.getMany(
      [FORMAT_KEY, HARD_STATE_KEY, FIRST_KEY, MEMBERSHIP_KEY, SNAPSHOT_KEY, STAGING_KEY],
      VIEW,
    );
    const check = (key: Uint8Array, value: Uint8Array | undefined): Uint8Array | null => {
      if (value === undefined) return null;
      const body = unseal(this.#crc32, key, value);
      if (body === null) throw new StorageCorruptionError(printableKey(key), null, 'checksum mismatch');
      return body;
    };
    check(MEMBERSHIP_KEY, membership);
    const snapshotBody = check(SNAPSHOT_KEY, snapshot);
    const stagingBody = check(STAGING_KEY, staging);

    const formatBody = check(FORMAT_KEY, format);
    if (formatBody === null) {
      const anyLog = await this.#firstKey(db, logKey(0), LOG_END);
      const anyChunk = await this.#firstKey(db, chunkKey(0, 0), CHUNK_END);
      if (hard !== undefined || first !== undefined || membership !== undefined || snapshot !== undefined ||
        staging !== undefined || anyLog !== null || anyChunk !== null) {
        throw new StorageCorruptionError(printableKey(FORMAT_KEY), null, 'missing, but the store holds other records');
      }
      await db.batch([{ type: 'put', key: FORMAT_KEY, value: encodeFormat(this.#crc32, BASE_FORMAT_VERSION) }], SYNCED_BATCH);
      this.#format = BASE_FORMAT_VERSION;
    } else {
      if (formatBody.length !== 4) throw new StorageCorruptionError(printableKey(FORMAT_KEY), null, 'bad length');
      const version = dataView(formatBody).getUint32(0);
      if (version < BASE_FORMAT_VERSION || version > LEVEL_FORMAT_VERSION) {
        throw new StorageError(
          `store format version ${version} is not supported (this code reads ${BASE_FORMAT_VERSION} to ${LEVEL_FORMAT_VERSION})`,
        );
      }
      this.#format = version;
    }

    let snapshots: SlotMeta[] = [];
    if (snapshotBody !== null) {
      const decoded = decodeSnapshots(snapshotBody);
      if (typeof decoded === 'string') throw new StorageCorruptionError(printableKey(SNAPSHOT_KEY), null, decoded);
      snapshots = decoded;
    }
    let stagingMeta: SlotMeta | null = null;
    if (stagingBody !== null) {
      const decoded = decodeStaging(stagingBody);
      if (typeof decoded === 'string') throw new StorageCorruptionError(printableKey(STAGING_KEY), null, decoded);
      stagingMeta = decoded;
    }
    await this.#dropDeadChunks(db, [...snapshots.map((r) => r.slot), ...(stagingMeta === null ? [] : [stagingMeta.slot])]);

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
    this.#snapshots = snapshots;
    this.#staging =
      stagingMeta === null
        ? null
        : {
            slot: stagingMeta.slot,
            descriptor: descriptorOf(stagingMeta.meta),
            size: stagingMeta.meta.size,
            checksum: stagingMeta.meta.checksum,
            chunks: stagingMeta.meta.chunks,
          };
  }

  /**
   * Deletes the chunk records of every slot not in `live` (left by a crash
   * during a discard or a prune) and sets the next slot past every slot seen.
   */
  async #dropDeadChunks(db: Db, live: number[]): Promise<void> {
    let maxSeen = 0;
    const it = db.iterator({ gte: chunkKey(0, 0), lt: CHUNK_END, reverse: true, limit: 1, ...VIEW });
    try {
      const [last] = await it.nextv(1);
      if (last !== undefined) {
        const parts = chunkKeyParts(last[0]);
        if (parts === null) throw new StorageCorruptionError(printableKey(last[0]), null, 'not a well-formed chunk key');
        maxSeen = parts.slot;
      }
    } finally {
      await it.close();
    }
    const slots = [...new Set(live)].sort((a, b) => a - b);
    this.#nextSlot = Math.max(maxSeen, slots[slots.length - 1] ?? 0) + 1;
    if (maxSeen === 0) return;
    let from = 0;
    for (const slot of slots) {
      if (slot > from) await db.clear({ gte: chunkKey(from, 0), lt: chunkKey(slot, 0), keyEncoding: 'view' });
      from = slot + 1;
    }
    if (from <= maxSeen) await db.clear({ gte: chunkKey(from, 0), lt: CHUNK_END, keyEncoding: 'view' });
  }

  /** The staging as a record, for `meta:staging`. */
  #stagingRecord(): SlotMeta {
    const st = this.#staging as LiveStaging;
    return { slot: st.slot, meta: { ...st.descriptor, size: st.size, checksum: st.checksum, chunks: st.chunks } };
  }

  /** Queues `run` as a task ordered with writes; the promise settles with it and is never an unhandled rejection. */
  #task(run: (db: Db) => Promise<void>): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => {
      this.#enqueue({
        kind: 'task',
        run: async () => {
          await run(this.#db as Db);
          resolve();
        },
        reject,
      });
    });
    promise.catch(noop);
    return promise;
  }

  async #clearSlot(db: Db, slot: number): Promise<void> {
    await db.clear({ gte: chunkKey(slot, 0), lt: chunkKey(slot + 1, 0), keyEncoding: 'view' });
  }

  /**
   * Reads and checks the chunks of `slot`, which must add up to `meta`
   * (`chunks`, `size`, `checksum`); yields copies of their bytes.
   */
  async *#readSlot(slot: number, meta: SnapshotMeta, what: 'read' | 'verify'): AsyncGenerator<Uint8Array> {
    const db = this.#db as Db;
    const crc32 = this.#crc32;
    let seq = 0;
    let size = 0;
    let checksum = 0;
    const it = db.iterator({ gte: chunkKey(slot, 0), lt: chunkKey(slot + 1, 0), ...VIEW });
    try {
      for (;;) {
        let batch: Array<[Uint8Array, Uint8Array]>;
        try {
          batch = await it.nextv(16);
        } catch (err) {
          throw this.#state === 'open'
            ? new StorageError(`snapshot ${what} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
            : new ShutdownError(`snapshot ${what}`);
        }
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          const parts = chunkKeyParts(key);
          if (parts === null || parts.slot !== slot || parts.seq !== seq) {
            throw new StorageCorruptionError(printableKey(chunkKey(slot, seq)), null, `snapshot chunk missing (found ${printableKey(key)})`);
          }
          if (seq >= meta.chunks) throw new StorageCorruptionError(printableKey(key), null, `snapshot has only ${meta.chunks} chunks`);
          const body = unseal(crc32, key, value);
          if (body === null || body.length < 8) throw new StorageCorruptionError(printableKey(key), null, 'checksum mismatch');
          const offset = getU64(dataView(body), 0);
          if (offset !== size) throw new StorageCorruptionError(printableKey(key), null, `chunk at offset ${offset}, expected ${size}`);
          const data = new Uint8Array(body.subarray(8));
          size += data.length;
          checksum = crc32(data, checksum);
          seq++;
          yield data;
        }
      }
    } finally {
      await it.close().catch(noop);
    }
    if (seq !== meta.chunks) {
      throw new StorageCorruptionError(printableKey(chunkKey(slot, seq)), null, `snapshot chunk missing (${seq} of ${meta.chunks} found)`);
    }
    if (size !== meta.size || checksum >>> 0 !== meta.checksum >>> 0) {
      const key = what === 'read' ? SNAPSHOT_KEY : STAGING_KEY;
      throw new StorageCorruptionError(
        printableKey(key),
        null,
        `snapshot ${meta.index} content is ${size} bytes with checksum ${checksum >>> 0}, recorded ${meta.size} bytes with ${meta.checksum}`,
      );
    }
  }

  /** A staging handle bound to `slot` in this incarnation of the store. */
  #handle(slot: number): SnapshotStaging {
    const epoch = this.#epoch;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the handle's methods run later
    const self = this;
    const view = (): LiveStaging | null => {
      const st = self.#staging;
      return st !== null && st.slot === slot && self.#epoch === epoch ? st : null;
    };
    const live = (what: string): LiveStaging | Promise<never> => {
      if (self.#state === 'closed' || self.#state === 'closing') return quietReject(new ShutdownError(what));
      const unusable = self.#unusable(what);
      if (unusable !== null) return Promise.reject(unusable);
      const st = view();
      if (st === null) {
        return Promise.reject(new StorageError('snapshot staging is no longer live (committed, discarded, replaced or reopened)'));
      }
      return st;
    };
    const descriptor = (view() as LiveStaging).descriptor;
    return {
      descriptor,
      get size() {
        return view()?.size ?? 0;
      },
      get chunks() {
        return view()?.chunks ?? 0;
      },
      get checksum() {
        return view()?.checksum ?? 0;
      },
      append(data: Uint8Array): Promise<void> {
        const st = live('snapshot chunk append');
        if (st instanceof Promise) return st;
        if (!(data instanceof Uint8Array)) return Promise.reject(new StorageError('snapshot chunk must be a Uint8Array'));
        if (data.length === 0) return self.#task(async () => {});
        const key = chunkKey(slot, st.chunks);
        const value = encodeChunk(self.#crc32, key, st.size, data);
        st.size += data.length;
        st.checksum = self.#crc32(data, st.checksum) >>> 0;
        st.chunks += 1;
        const header = encodeStaging(self.#crc32, self.#stagingRecord());
        const promise = new Promise<void>((resolve, reject) => {
          self.#enqueue({
            kind: 'write',
            ops: [
              { type: 'put', key, value },
              { type: 'put', key: STAGING_KEY, value: header },
            ],
            bytes: value.length + header.length + CHUNK_KEY_LENGTH + STAGING_KEY.length,
            resolve,
            reject,
          });
        });
        promise.catch(noop);
        return promise;
      },
      commit(expected?: { readonly size?: number; readonly checksum?: number }): Promise<SnapshotMeta> {
        const st = live('snapshot commit');
        if (st instanceof Promise) return st;
        const meta: SnapshotMeta = { ...st.descriptor, size: st.size, checksum: st.checksum, chunks: st.chunks };
        const refused = refuseInstall(meta, expected, self.#snapshots[0]?.meta ?? null, self.#firstIndex);
        if (refused !== null) return Promise.reject(new StorageError(refused));
        // Accept the install now (later writes validate against it); the task verifies, then writes it.
        const kept = [{ slot, meta }, ...self.#snapshots];
        const dropped = kept.splice(self.#keep);
        self.#snapshots = kept;
        self.#staging = null;
        const ops: Op[] = [
          { type: 'put', key: SNAPSHOT_KEY, value: encodeSnapshots(self.#crc32, kept) },
          { type: 'del', key: STAGING_KEY },
        ];
        const { index, term } = meta;
        const connects = index >= self.#firstIndex - 1 && index <= self.#lastIndex && self.#termAt(index) === term;
        let clearBelow = 0;
        if (!connects) {
          // §7: discard the whole log; it restarts empty after the snapshot.
          ops.push({ type: 'put', key: FIRST_KEY, value: encodeFirst(self.#crc32, index + 1, term) });
          for (let i = Math.max(self.#firstIndex, index + 1); i <= self.#lastIndex; i++) ops.push({ type: 'del', key: logKey(i) });
          clearBelow = index + 1;
          self.#firstIndex = index + 1;
          self.#prevTerm = term;
          self.#lastIndex = index;
          self.#runs = [];
        }
        return self
          .#task(async (db) => {
            try {
              for await (const _ of self.#readSlot(slot, meta, 'verify'));
            } catch (err) {
              // The accepted state is ahead of the disk and wrong: refuse everything until reopened.
              self.#failure = err;
              throw err;
            }
            await db.batch(ops, SYNCED_BATCH);
            if (clearBelow > 0) await db.clear({ gte: logKey(0), lt: logKey(clearBelow), keyEncoding: 'view' });
            for (const r of dropped) await self.#clearSlot(db, r.slot);
          })
          .then(() => meta);
      },
      discard(): Promise<void> {
        if (self.#state === 'closed' || self.#state === 'closing') return quietReject(new ShutdownError('snapshot discard'));
        const unusable = self.#unusable('snapshot discard');
        if (unusable !== null) return Promise.reject(unusable);
        if (view() === null) return self.#task(async () => {}); // already gone: nothing to do
        self.#staging = null;
        return self.#task(async (db) => {
          await db.batch([{ type: 'del', key: STAGING_KEY }], SYNCED_BATCH);
          await self.#clearSlot(db, slot);
        });
      },
    };
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
