/**
 * The leader's half of a restore through the log: cuts the user's snapshot
 * into chunk records, proposes them with a window, then proposes the commit
 * (or an abort when the source fails).
 *
 * @module
 */
import type { Clock } from '../adapters/clock.js';
import { ConfigurationError, TimeoutError } from '../errors.js';
import { encodeRestoreRecord, RESTORE_CHUNK_OVERHEAD } from '../machines/restore.js';
import { chunksOf } from '../machines/snapshot.js';

/** A user-supplied snapshot: the bytes, in one piece or as a (possibly asynchronous) sequence of pieces. */
export type RestoreSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Where a restore ended up: the commit entry's index and term, and the bytes restored. */
export interface RestoreResult {
  /** Index of the restore's commit entry: the state machine holds the restored state as of this index. */
  readonly index: number;
  /** Term of the commit entry. */
  readonly term: number;
  /** Bytes restored. */
  readonly size: number;
}

/** What {@link writeRestore} needs from the node. */
export interface RestoreWriterOptions {
  /** The restore's id in its records. */
  readonly id: number;
  /** Largest entry payload (chunk data plus its header). */
  readonly entryBytes: number;
  /** Chunk records proposed and not yet applied, at most. */
  readonly window: number;
  /** Incremental CRC-32. */
  readonly crc32: (data: Uint8Array, previous?: number) => number;
  /** Proposes one `restore` entry; resolves once it is applied (the commit: once the state machine restored). */
  readonly propose: (payload: Uint8Array) => Promise<{ readonly index: number; readonly term: number }>;
  /** The source must yield its next piece within this many milliseconds, or the restore aborts: an open run blocks every server's snapshots. */
  readonly stallMs: number;
  /** Times the source. */
  readonly clock: Clock;
}

function isIterable(value: unknown): value is Iterable<unknown> | AsyncIterable<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<symbol, unknown>;
  return typeof v[Symbol.iterator] === 'function' || typeof v[Symbol.asyncIterator] === 'function';
}

/** Checks each piece of the source as it comes, and that it comes within `stallMs`. */
async function* pieces(source: Iterable<unknown> | AsyncIterable<unknown>, stallMs: number, clock: Clock): AsyncGenerator<Uint8Array> {
  const it =
    Symbol.asyncIterator in source ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (source as Iterable<unknown>)[Symbol.iterator]();
  let done = false;
  try {
    for (;;) {
      let timer: ReturnType<Clock['setTimeout']> | null = null;
      const stalled = new Promise<never>((_, reject) => {
        timer = clock.setTimeout(() => reject(new TimeoutError('restore source (next piece)', stallMs)), stallMs);
      });
      let r: IteratorResult<unknown>;
      try {
        r = await Promise.race([Promise.resolve(it.next()), stalled]);
      } finally {
        if (timer !== null) clock.clearTimeout(timer);
      }
      if (r.done === true) {
        done = true;
        return;
      }
      const piece = r.value;
      if (!(piece instanceof Uint8Array)) throw new ConfigurationError('restore(source)', `must yield Uint8Array pieces, got ${piece === null ? 'null' : typeof piece}`);
      yield piece;
    }
  } finally {
    // Stopped early (an error, a stall, leadership lost): let the source release what it holds.
    if (!done) void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/**
 * Validates `source`: a `Uint8Array`, or an iterable or async iterable (of `Uint8Array`s, checked as they come).
 *
 * @throws {@link ConfigurationError} otherwise.
 */
export function checkRestoreSource(source: unknown): asserts source is RestoreSource {
  if (source instanceof Uint8Array || isIterable(source)) return;
  throw new ConfigurationError('restore(source)', 'must be a Uint8Array, an Iterable<Uint8Array> or an AsyncIterable<Uint8Array>');
}

/**
 * Streams `source` into the log as chunk records, at most `window` unapplied at once, then the
 * commit record; resolves when the commit is applied, with where it landed.
 *
 * @remarks The first failed proposal (leadership lost, a timeout, shutdown) stops the stream and
 * rejects with that error: the records already appended stay an open run that the next leader's
 * entries close, and no restore happens. A source that throws (or yields something other than a
 * `Uint8Array`, or stalls for `stallMs`) gets an abort record, best effort, then its error is rethrown.
 *
 * @throws the source's error, or the first proposal's rejection.
 */
export async function writeRestore(source: RestoreSource, options: RestoreWriterOptions): Promise<RestoreResult> {
  const { id, window, crc32, propose, stallMs, clock } = options;
  const chunkBytes = Math.max(1, options.entryBytes - RESTORE_CHUNK_OVERHEAD);
  const inflight: Promise<unknown>[] = [];
  let failed: { error: unknown } | null = null;
  const watch = (p: Promise<unknown>): Promise<unknown> =>
    p.catch((error: unknown) => {
      failed ??= { error };
    });
  let seq = 0;
  let size = 0;
  let checksum = 0;
  try {
    for await (const { data } of chunksOf(source instanceof Uint8Array ? [source] : pieces(source, stallMs, clock), chunkBytes)) {
      if (failed !== null) break;
      if (data.length === 0) continue;
      checksum = crc32(data, checksum) >>> 0;
      size += data.length;
      inflight.push(watch(propose(encodeRestoreRecord({ kind: 'chunk', id, seq: seq++, data }))));
      if (inflight.length >= window) await inflight.shift();
    }
  } catch (error) {
    // The source failed: close the run so followers need not wait for a higher term to snapshot again.
    await Promise.all(inflight);
    if (failed === null) await propose(encodeRestoreRecord({ kind: 'abort', id })).catch(() => undefined);
    throw error;
  }
  await Promise.all(inflight);
  if (failed !== null) throw (failed as { error: unknown }).error;
  const at = await propose(encodeRestoreRecord({ kind: 'commit', id, count: seq, size, checksum }));
  return { index: at.index, term: at.term, size };
}
