/**
 * Restoring a user-supplied snapshot through the log ({@link RaftNode.restore}):
 * the payloads of `restore` log entries and the rule that turns a run of them
 * into one state machine restore, the same on every server.
 *
 * A leader cuts the user's bytes into **chunk** entries of one restore `id`,
 * numbered from 0, then appends one **commit** entry naming how many chunks,
 * how many bytes and their CRC-32; or an **abort** entry when the source
 * failed. All go through the log like any entry, so a restore happens at the
 * commit's index on every server, or nowhere.
 *
 * ```
 * payload = kind:u8 id:u32 body
 * chunk   = kind 1, seq:u32 data{rest}
 * commit  = kind 2, count:u32 size:u64 checksum:u32
 * abort   = kind 3 (empty body)
 * ```
 *
 * @module
 */
import type { LogEntry } from './types.js';

/** One decoded `restore` entry payload. */
export type RestoreRecord =
  | { readonly kind: 'chunk'; readonly id: number; readonly seq: number; readonly data: Uint8Array }
  | { readonly kind: 'commit'; readonly id: number; readonly count: number; readonly size: number; readonly checksum: number }
  | { readonly kind: 'abort'; readonly id: number };

const KIND_CODES = { chunk: 1, commit: 2, abort: 3 } as const;
const CHUNK_HEADER = 1 + 4 + 4;
const COMMIT_BYTES = 1 + 4 + 4 + 8 + 4;
const ABORT_BYTES = 1 + 4;
const TWO_POW_32 = 4294967296;

/** Bytes a chunk entry adds to its data. */
export const RESTORE_CHUNK_OVERHEAD = CHUNK_HEADER;

/**
 * Encodes one restore record as a `restore` entry payload.
 *
 * @throws `RangeError` when `id`, `seq`, `count` or `checksum` is not a 32-bit
 * unsigned integer, or `size` not a safe non-negative integer.
 *
 * @example
 * ```ts
 * const payload = encodeRestoreRecord({ kind: 'chunk', id: 1, seq: 0, data: new Uint8Array([1, 2]) })
 * decodeRestoreRecord(payload) // { kind: 'chunk', id: 1, seq: 0, data: Uint8Array [1, 2] }
 * ```
 */
export function encodeRestoreRecord(record: RestoreRecord): Uint8Array {
  u32('id', record.id);
  let out: Uint8Array;
  if (record.kind === 'chunk') {
    u32('seq', record.seq);
    out = new Uint8Array(CHUNK_HEADER + record.data.length);
    const view = new DataView(out.buffer);
    view.setUint32(5, record.seq);
    out.set(record.data, CHUNK_HEADER);
  } else if (record.kind === 'commit') {
    u32('count', record.count);
    u32('checksum', record.checksum);
    if (!Number.isSafeInteger(record.size) || record.size < 0) throw new RangeError(`size must be a safe integer >= 0, got ${record.size}`);
    out = new Uint8Array(COMMIT_BYTES);
    const view = new DataView(out.buffer);
    view.setUint32(5, record.count);
    view.setUint32(9, Math.floor(record.size / TWO_POW_32));
    view.setUint32(13, record.size % TWO_POW_32);
    view.setUint32(17, record.checksum);
  } else {
    out = new Uint8Array(ABORT_BYTES);
  }
  out[0] = KIND_CODES[record.kind];
  new DataView(out.buffer).setUint32(1, record.id);
  return out;
}

/**
 * Decodes a `restore` entry payload; `null` when it is not one this version
 * writes (a wrong length or an unknown kind). A chunk's `data` is a view into
 * `payload`.
 *
 * @example
 * ```ts
 * decodeRestoreRecord(encodeRestoreRecord({ kind: 'abort', id: 7 })) // { kind: 'abort', id: 7 }
 * decodeRestoreRecord(new Uint8Array([9])) // null
 * ```
 */
export function decodeRestoreRecord(payload: Uint8Array): RestoreRecord | null {
  if (payload.length < ABORT_BYTES) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const id = view.getUint32(1);
  switch (payload[0]) {
    case KIND_CODES.chunk:
      if (payload.length < CHUNK_HEADER) return null;
      return { kind: 'chunk', id, seq: view.getUint32(5), data: payload.subarray(CHUNK_HEADER) };
    case KIND_CODES.commit: {
      if (payload.length !== COMMIT_BYTES) return null;
      const size = view.getUint32(9) * TWO_POW_32 + view.getUint32(13);
      if (!Number.isSafeInteger(size)) return null;
      return { kind: 'commit', id, count: view.getUint32(5), size, checksum: view.getUint32(17) };
    }
    case KIND_CODES.abort:
      return payload.length === ABORT_BYTES ? { kind: 'abort', id } : null;
    default:
      return null;
  }
}

function u32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= TWO_POW_32) throw new RangeError(`${name} must be a 32-bit unsigned integer, got ${v}`);
}

/** A restore whose commit entry was applied, ready for the state machine. */
export interface CompletedRestore {
  /** Index and term of the commit entry: the state after the restore is that of this index. */
  readonly index: number;
  readonly term: number;
  /** Indexes of the chunk entries, in order. */
  readonly chunks: readonly number[];
  /** Total bytes, as the commit states and the chunks add up to. */
  readonly size: number;
  /** CRC-32 of the whole content. */
  readonly checksum: number;
}

/** Outcome of applying one entry for {@link RestoreTracker.apply}. */
export type RestoreStep =
  | { readonly type: 'none' }
  | { readonly type: 'complete'; readonly restore: CompletedRestore }
  /** A commit whose chunks do not add up (never written by this library): no restore happens, anywhere. */
  | { readonly type: 'invalid'; readonly index: number; readonly why: string };

interface OpenRestore {
  readonly term: number;
  readonly chunks: number[];
  size: number;
  checksum: number;
  /** Why the run can no longer complete (a chunk out of order), or `null`. */
  broken: string | null;
}

/**
 * Follows the restore runs in the applied log, one entry at a time in index
 * order, and says when a commit completes one.
 *
 * @remarks Why this is the same on every server: it is a function of the
 * applied log prefix alone, and Log Matching makes those prefixes equal. A
 * run belongs to one leader's term; entries of other kinds (and of other
 * restores) may sit between its chunks. A run still **open** (chunks, no
 * commit or abort yet) blocks local snapshots ({@link RestoreTracker.open}):
 * a snapshot inside it would drop chunks the commit needs, on this server and
 * on any follower that installs the snapshot. A run is forgotten as soon as
 * an entry of a higher term is applied: terms never decrease along a log, so
 * its commit can no longer come (its leader was deposed mid-restore).
 * `crc32` must be incremental (`crc32(b, crc32(a)) === crc32(a ‖ b)`).
 *
 * @example
 * ```ts
 * const tracker = new RestoreTracker(crc32Js)
 * for (const entry of committed) { // applied entries, in index order
 *   const step = tracker.apply(entry)
 *   if (step.type === 'complete') await restoreFrom(step.restore)
 * }
 * ```
 */
export class RestoreTracker {
  readonly #open = new Map<number, OpenRestore>();
  readonly #crc32: (data: Uint8Array, previous?: number) => number;
  #term = 0;

  constructor(crc32: (data: Uint8Array, previous?: number) => number) {
    this.#crc32 = crc32;
  }

  /** Whether a restore run is open: no snapshot may be taken at this point of the log. */
  open(): boolean {
    return this.#open.size > 0;
  }

  /** Forgets every run: a snapshot installed from the leader covers the applied prefix (it is never taken inside an open run). */
  reset(): void {
    this.#open.clear();
  }

  /**
   * Takes the next applied entry, in index order: every `restore` entry, and every other entry
   * while {@link RestoreTracker.open} (a higher term closes open runs). Entries of other types
   * may be skipped while no run is open: they change nothing then.
   */
  apply(entry: LogEntry): RestoreStep {
    if (entry.term > this.#term) {
      this.#term = entry.term;
      this.#open.clear();
    }
    if (entry.type !== 'restore') return NONE;
    const record = decodeRestoreRecord(entry.data);
    if (record === null) return { type: 'invalid', index: entry.index, why: 'undecodable restore entry' };
    const run = this.#open.get(record.id);
    if (record.kind === 'chunk') {
      const r = run ?? { term: entry.term, chunks: [], size: 0, checksum: 0, broken: null };
      if (run === undefined) this.#open.set(record.id, r);
      if (r.broken === null && record.seq !== r.chunks.length) r.broken = `chunk ${record.seq} where ${r.chunks.length} was due`;
      r.chunks.push(entry.index);
      r.size += record.data.length;
      r.checksum = this.#crc32(record.data, r.checksum) >>> 0;
      return NONE;
    }
    this.#open.delete(record.id);
    if (record.kind === 'abort') return NONE;
    const why =
      run?.broken ??
      (run === undefined && record.count > 0
        ? `no chunk of restore ${record.id} before its commit`
        : (run?.chunks.length ?? 0) !== record.count
          ? `${run?.chunks.length ?? 0} chunks where the commit names ${record.count}`
          : (run?.size ?? 0) !== record.size
            ? `${run?.size ?? 0} bytes where the commit names ${record.size}`
            : (run?.checksum ?? 0) !== record.checksum
              ? `checksum ${run?.checksum ?? 0} where the commit names ${record.checksum}`
              : null);
    if (why !== null) return { type: 'invalid', index: entry.index, why };
    return { type: 'complete', restore: { index: entry.index, term: entry.term, chunks: run?.chunks ?? [], size: record.size, checksum: record.checksum } };
  }
}

const NONE: RestoreStep = Object.freeze({ type: 'none' });
