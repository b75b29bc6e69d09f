/**
 * Snapshot transfer: the InstallSnapshot messages (§7, chunked as in the
 * thesis §5.2 / etcd), the sender's limits and defaults, and the pure
 * bookkeeping of the chunk window that {@link snapshotSenderMachine} runs on.
 *
 * Plain data and pure functions only; nothing here does I/O.
 *
 * @module
 */
import type { Configuration, ServerId } from './types.js';
// For the TSDoc links only.
import type { snapshotSenderMachine } from './snapshot-sender.machine.js';

/**
 * One chunk of a snapshot, leader to follower (InstallSnapshot, §7).
 *
 * @remarks A transfer is identified by `snapshotIndex`/`snapshotTerm`. Chunks
 * carry contiguous byte ranges: `offset` is where `data` starts in the
 * snapshot. The chunk at offset 0 carries the configuration; the last one
 * (`done`) carries the total `size`. `checksum` is the CRC-32 (IEEE) of
 * `data`, so a chunk damaged on the way is refused rather than staged.
 */
export interface InstallSnapshotRequest {
  readonly type: 'installSnapshot';
  /** The leader's term. */
  readonly term: number;
  /** The leader (the paper's `leaderId`). */
  readonly from: ServerId;
  /** The follower. */
  readonly to: ServerId;
  /** Last index the snapshot covers. */
  readonly snapshotIndex: number;
  /** Term of that entry. */
  readonly snapshotTerm: number;
  /** The membership at `snapshotIndex`: on the chunk at offset 0, `null` on the others. */
  readonly configuration: Configuration | null;
  /** Index of the entry that carried `configuration` (0 for a bootstrap); meaningful at offset 0. */
  readonly configurationIndex: number;
  /** Number of this chunk in the sender's stream: 0, 1, 2, ... Echoed in the answer. */
  readonly seq: number;
  /** Byte offset of `data` in the snapshot. */
  readonly offset: number;
  /** The chunk's bytes (empty only for an empty snapshot's single chunk). */
  readonly data: Uint8Array;
  /** CRC-32 of `data`. */
  readonly checksum: number;
  /** The last chunk: the follower installs the snapshot once it holds every byte up to here. */
  readonly done: boolean;
  /** On the last chunk, the snapshot's total size in bytes; `null` before. */
  readonly size: number | null;
}

/**
 * Why a follower refused a chunk.
 *
 * - `term`: the sender's term is stale (the answer carries the newer one);
 * - `gap`: the chunk starts past the bytes staged (`next` says where to resume);
 *   also sent for a chunk of a snapshot the follower is not staging;
 * - `checksum`: `data` does not match `checksum`;
 * - `stale`: the follower already holds a snapshot at or past this one;
 * - `storage`: the follower could not stage or install it.
 */
export type SnapshotRefusal = 'term' | 'gap' | 'checksum' | 'stale' | 'storage';

/** Answer to an {@link InstallSnapshotRequest}. */
export interface InstallSnapshotResponse {
  readonly type: 'installSnapshotResponse';
  /** The follower's term. */
  readonly term: number;
  /** The follower. */
  readonly from: ServerId;
  /** The leader. */
  readonly to: ServerId;
  /** Echo of the request's snapshot identity. */
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  /** Echo of the request's `seq`. */
  readonly seq: number;
  /** The chunk is durably staged (or was already). */
  readonly ok: boolean;
  /** Why not, when `ok` is false; `null` otherwise. */
  readonly reason: SnapshotRefusal | null;
  /**
   * The offset the follower expects next: every byte below it is durably
   * staged. Cumulative, so a lost answer is covered by a later one.
   */
  readonly next: number;
  /** The snapshot is installed (the answer to the last chunk, or to any chunk of an installed snapshot). */
  readonly installed: boolean;
}

/**
 * Flow control and retry limits of one snapshot transfer.
 *
 * @remarks Defaults in {@link DEFAULT_SNAPSHOT_SENDER_LIMITS}. A chunk is
 * retransmitted when no answer moved the transfer forward for
 * `min(retryBaseMs × 2^k, retryMaxMs)` after k retransmissions in a row,
 * and the transfer aborts when one chunk was retransmitted more than
 * `maxRetries` times.
 */
export interface SnapshotSenderLimits {
  /** Bytes per chunk at most. */
  readonly chunkBytes: number;
  /** Chunks sent and not acknowledged, at most. */
  readonly window: number;
  /** First retransmission delay, in milliseconds. */
  readonly retryBaseMs: number;
  /** Longest retransmission delay, in milliseconds. */
  readonly retryMaxMs: number;
  /** Retransmissions of one chunk before the transfer aborts. */
  readonly maxRetries: number;
}

/**
 * Default chunk size: 256 KiB.
 *
 * @remarks Why this size:
 * - **Frames.** Far below every limit on the way: the codec's 64 MiB frame
 *   cap, ws' 100 MiB `maxPayload`, and the 4 MiB the WebSocket transport
 *   buffers per peer before it applies backpressure.
 * - **Heartbeats behind a chunk.** Chunks share the leader's connection with
 *   heartbeats. A heartbeat queued behind a whole window (4 × 256 KiB = 1 MiB)
 *   waits ~10 ms on loopback (~110 MiB/s), ~85 ms on 100 Mbit/s: under the
 *   150 ms lower bound of the default election timeout. 1 MiB chunks would
 *   make that 4 MiB, ~340 ms on 100 Mbit/s — an election.
 * - **Per-chunk cost.** Each chunk costs one machine event, one synced
 *   storage batch on the follower (~3–4k synced batches/s here) and one
 *   answer. At 256 KiB a 200 MB snapshot is 800 chunks, so that overhead
 *   stays a small fraction of the transfer; 16 KiB chunks would need 12,800
 *   fsyncs and cap the rate near 50 MB/s on the follower's disk.
 */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/**
 * Default limits: 256 KiB chunks ({@link DEFAULT_SNAPSHOT_CHUNK_BYTES}), a
 * window of 4 chunks (1 MiB in flight: enough to keep a loopback or LAN link
 * busy while the follower syncs one chunk), retransmission after 200 ms
 * doubling up to 5 s, and at most 10 retransmissions of one chunk (about
 * 35 s of silence) before giving up.
 */
export const DEFAULT_SNAPSHOT_SENDER_LIMITS = Object.freeze({
  chunkBytes: DEFAULT_SNAPSHOT_CHUNK_BYTES,
  window: 4,
  retryBaseMs: 200,
  retryMaxMs: 5000,
  maxRetries: 10,
} satisfies SnapshotSenderLimits);

/**
 * Why `limits` are invalid, or `null`: every field a safe integer, `chunkBytes`
 * and `window` at least 1, `retryBaseMs` at least 1 and at most `retryMaxMs`,
 * `maxRetries` at least 0. Names the field.
 *
 * @example
 * ```ts
 * invalidSenderLimits(DEFAULT_SNAPSHOT_SENDER_LIMITS)                // null
 * invalidSenderLimits({ ...DEFAULT_SNAPSHOT_SENDER_LIMITS, window: 0 }) // 'window must be an integer >= 1, got 0'
 * ```
 */
export function invalidSenderLimits(limits: SnapshotSenderLimits): string | null {
  const { chunkBytes, window, retryBaseMs, retryMaxMs, maxRetries } = limits;
  const bad = (name: string, v: number, min: number): string | null =>
    Number.isSafeInteger(v) && v >= min ? null : `${name} must be an integer >= ${min}, got ${v}`;
  return (
    bad('chunkBytes', chunkBytes, 1) ??
    bad('window', window, 1) ??
    bad('retryBaseMs', retryBaseMs, 1) ??
    bad('retryMaxMs', retryMaxMs, retryBaseMs) ??
    bad('maxRetries', maxRetries, 0)
  );
}

/**
 * The retransmission delay after `backoff` retransmissions in a row: `min(base × 2^backoff, max)`.
 *
 * @example
 * ```ts
 * retransmitDelay({ retryBaseMs: 200, retryMaxMs: 5000 }, 0) // 200
 * retransmitDelay({ retryBaseMs: 200, retryMaxMs: 5000 }, 3) // 1600
 * retransmitDelay({ retryBaseMs: 200, retryMaxMs: 5000 }, 9) // 5000
 * ```
 */
export function retransmitDelay(limits: Pick<SnapshotSenderLimits, 'retryBaseMs' | 'retryMaxMs'>, backoff: number): number {
  return Math.min(limits.retryBaseMs * 2 ** Math.min(backoff, 52), limits.retryMaxMs);
}

/**
 * A chunk sent and not yet acknowledged.
 *
 * @remarks `tx` numbers transmissions across the whole transfer (1, 2, ...):
 * a chunk's `tx` is that of its latest (re)transmission, so answers can be
 * told apart from older ones.
 */
export interface ChunkInFlight {
  readonly seq: number;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly checksum: number;
  /** The last chunk of the snapshot. */
  readonly last: boolean;
  /** Transmission number of the latest send. */
  readonly tx: number;
  /** Retransmissions so far (0 after the first send). */
  readonly attempts: number;
}

/**
 * End offset of a chunk: `offset + data.length`.
 *
 * @example
 * ```ts
 * chunkEnd({ offset: 4096, data: new Uint8Array(1024) }) // 5120
 * ```
 */
export function chunkEnd(c: Pick<ChunkInFlight, 'offset' | 'data'>): number {
  return c.offset + c.data.length;
}

/**
 * The window after the follower said it holds every byte below `next`:
 * chunks that end at or below `next` are dropped, except the last chunk,
 * which only an `installed` answer completes.
 *
 * @remarks Invariant kept: the window stays sorted by `seq` and by `offset`.
 *
 * @example
 * ```text
 * ackThrough([c(0, 0..10), c(1, 10..20)], 10) // → [c(1, 10..20)]
 * ```
 */
export function ackThrough(window: readonly ChunkInFlight[], next: number): readonly ChunkInFlight[] {
  let drop = 0;
  while (drop < window.length) {
    const c = window[drop] as ChunkInFlight;
    if (c.last || chunkEnd(c) > next) break;
    drop++;
  }
  return drop === 0 ? window : window.slice(drop);
}

/**
 * The chunks to retransmit after a `gap` answer to chunk `seq`: those the
 * follower lacks (ending past `next`) that were last sent no later than
 * chunk `seq` was (the last chunk counts as lacking until installed) — they
 * went out before the follower noticed the gap, so
 * they are lost or refused too. Chunks already retransmitted since are left
 * alone, so several `gap` answers for one hole cause one retransmission.
 *
 * @returns Sequence numbers, ascending; empty when `seq` is not in the window.
 *
 * @example
 * ```ts
 * const chunk = (seq: number, tx: number): ChunkInFlight =>
 *   ({ seq, offset: seq * 10, data: new Uint8Array(10), checksum: 0, last: false, tx, attempts: 0 })
 * // the follower holds 10 bytes and refused chunk 2: chunks 1 and 2 went out before it noticed
 * gapResends([chunk(1, 1), chunk(2, 2), chunk(3, 3)], 10, 2) // → [1, 2]
 * ```
 */
export function gapResends(window: readonly ChunkInFlight[], next: number, seq: number): number[] {
  const rejected = window.find((c) => c.seq === seq);
  if (rejected === undefined) return [];
  const out: number[] = [];
  for (const c of window) if ((chunkEnd(c) > next || c.last) && c.tx <= rejected.tx) out.push(c.seq);
  return out;
}

/**
 * Cuts a stream of byte arrays of any sizes into chunks of at most
 * `chunkBytes`, each flagged `last` when nothing follows it (one empty last
 * chunk for an empty stream). Reads one piece ahead to know which is last;
 * never copies more than one chunk.
 *
 * @throws A `RangeError` (from the iteration) when `chunkBytes` is not an integer >= 1.
 *
 * @example
 * ```ts
 * for await (const chunk of chunksOf(storage.readSnapshot(), 256 * 1024)) console.log(chunk.data.byteLength);
 * ```
 */
export async function* chunksOf(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  chunkBytes: number,
): AsyncGenerator<{ readonly data: Uint8Array; readonly last: boolean }> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be an integer >= 1, got ${chunkBytes}`);
  let pending: Uint8Array | null = null; // a full chunk waiting to learn whether it is the last
  let buffer = new Uint8Array(chunkBytes);
  let filled = 0;
  for await (const piece of source as AsyncIterable<Uint8Array>) {
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(chunkBytes - filled, piece.length - at);
      buffer.set(piece.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === chunkBytes) {
        if (pending !== null) yield { data: pending, last: false };
        pending = buffer;
        buffer = new Uint8Array(chunkBytes);
        filled = 0;
      }
    }
  }
  if (filled > 0) {
    if (pending !== null) yield { data: pending, last: false };
    yield { data: buffer.slice(0, filled), last: true };
  } else {
    yield { data: pending ?? new Uint8Array(0), last: true };
  }
}
