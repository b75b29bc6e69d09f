/**
 * The follower side of a snapshot transfer (§7): takes InstallSnapshot
 * chunks, stages them durably through the storage's {@link SnapshotStore},
 * answers each one, installs the snapshot atomically on the last chunk and
 * then hands it to the user's state machine.
 *
 * @module
 */
import { CodecError, StorageCorruptionError, StorageError } from '../errors.js';
import { crc32Js, loadCrc32, type Crc32 } from '../adapters/storage/crc32.js';
import type { RaftStorage, SnapshotMeta, SnapshotStaging, SnapshotStore } from '../adapters/storage/storage.js';
import type { InstallSnapshotRequest, InstallSnapshotResponse, SnapshotRefusal } from '../machines/snapshot.js';
import type { ServerId } from '../machines/types.js';

/** What a {@link SnapshotReceiver} reports as it works (for `events$`). */
export type SnapshotReceiverObservation =
  /** A new staging started (offset 0 of a snapshot not being staged). */
  | { readonly type: 'snapshot.staging'; readonly index: number; readonly term: number; readonly from: ServerId }
  /** A staging left by an earlier run is being continued. */
  | { readonly type: 'snapshot.resumed'; readonly index: number; readonly term: number; readonly bytes: number }
  /** A chunk was staged: `bytes` are durably held. */
  | { readonly type: 'snapshot.received'; readonly index: number; readonly bytes: number; readonly total: number | null }
  /** The snapshot is installed and restored into the state machine. */
  | { readonly type: 'snapshot.installed'; readonly meta: SnapshotMeta };

/** Options of {@link SnapshotReceiver}. */
export interface SnapshotReceiverOptions {
  /** This node's id: the `from` of every answer. */
  readonly id: ServerId;
  /** Where chunks are staged and the snapshot installed. */
  readonly storage: RaftStorage & SnapshotStore;
  /**
   * This node's current term. The node's term gate runs first (a request
   * with a higher term has already raised it), so a request below it is
   * from a deposed leader.
   */
  readonly currentTerm: () => number;
  /**
   * Replaces the user state machine's state with the installed snapshot
   * (the `StateMachine.restore` contract). Called once per install, after the
   * storage made the snapshot current and before the last chunk is answered.
   */
  readonly restore: (chunks: AsyncIterable<Uint8Array>, meta: SnapshotMeta) => Promise<void>;
  /** Receives observations; must not throw. */
  readonly observe?: (observation: SnapshotReceiverObservation) => void;
  /** CRC-32 used to check each chunk; defaults to the runtime's fastest ({@link loadCrc32}). */
  readonly crc32?: Crc32;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Why `m` is not a well-formed request, or `null`. */
function malformed(m: InstallSnapshotRequest): string | null {
  if (typeof m !== 'object' || m === null) return 'not an object';
  const int = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
  if (!int(m.term, 0)) return `term must be an integer >= 0, got ${String(m.term)}`;
  if (!int(m.snapshotIndex, 1)) return `snapshotIndex must be an integer >= 1, got ${String(m.snapshotIndex)}`;
  if (!int(m.snapshotTerm, 1)) return `snapshotTerm must be an integer >= 1, got ${String(m.snapshotTerm)}`;
  if (!int(m.seq, 0)) return `seq must be an integer >= 0, got ${String(m.seq)}`;
  if (!int(m.offset, 0)) return `offset must be an integer >= 0, got ${String(m.offset)}`;
  if (!(m.data instanceof Uint8Array)) return 'data must be a Uint8Array';
  if (m.offset + m.data.length > MAX_SAFE) return 'offset + data length is not a safe integer';
  if (!int(m.checksum, 0) || m.checksum > 0xffffffff) return `checksum must be a 32-bit unsigned integer, got ${String(m.checksum)}`;
  if (typeof m.done !== 'boolean') return 'done must be a boolean';
  if (m.done && m.size !== m.offset + m.data.length) return `size must equal offset + data length on the last chunk, got ${String(m.size)}`;
  if (!m.done && m.size !== null) return 'size must be null before the last chunk';
  if (!int(m.configurationIndex, 0) || m.configurationIndex > m.snapshotIndex) {
    return `configurationIndex must be an integer in 0..${m.snapshotIndex}, got ${String(m.configurationIndex)}`;
  }
  if (m.offset === 0) {
    const c = m.configuration as unknown;
    if (typeof c !== 'object' || c === null || !Array.isArray((c as { servers?: unknown }).servers)) {
      return 'configuration must be given, with a servers array, on the chunk at offset 0';
    }
  }
  return null;
}

/**
 * Receives one follower's snapshot transfers.
 *
 * @remarks
 * Requests are handled one at a time, in call order. For each chunk:
 * 1. a term below {@link SnapshotReceiverOptions.currentTerm} is refused (`term`);
 * 2. a snapshot at or below the current one is answered `installed` when it
 *    is the current one (so a lost final answer is repaired), else refused
 *    (`stale`);
 * 3. a chunk of the snapshot being staged (same index and term) is checked
 *    against its CRC-32 (`checksum` refusal), then: past the staged bytes →
 *    `gap` (with `next`, where to resume); already held → acknowledged again
 *    (idempotent); otherwise its new bytes are appended and acknowledged once
 *    durable. A chunk of another snapshot at offset 0 starts a new staging
 *    (discarding the old one) when it supersedes it — a newer snapshot, or a
 *    newer leader term; at another offset it is refused with `gap`,
 *    `next = 0`;
 * 4. on the last chunk, once every byte is staged, the storage installs the
 *    snapshot atomically ({@link SnapshotStaging.commit}: every staged chunk
 *    re-verified, the log adjusted per §7), `restore` replaces the state
 *    machine's state, and the answer says `installed`.
 *
 * Answers carry `next`, the bytes durably staged, so the sender can resume.
 * A restarted node makes a new receiver over the same storage: it continues
 * the staging the storage kept ({@link SnapshotStore.resumeSnapshot}), so the
 * transfer resumes after the last acknowledged chunk; or a new snapshot
 * restarts staging cleanly.
 *
 * @throws `handle()` rejects with a {@link CodecError} for a malformed
 * request (nothing changes), and with the storage's error
 * ({@link StorageError}, {@link StorageCorruptionError}) or `restore`'s when
 * they fail — the node must then stop, as on any storage failure. A commit
 * the storage refuses as such (a {@link StorageError} that is not
 * corruption) discards the staging and answers `storage`.
 *
 * @example
 * ```text
 * const receiver = new SnapshotReceiver({ id: 'n2', storage, currentTerm: () => term,
 *   restore: (chunks) => stateMachine.restore(chunks) });
 * transport.send(await receiver.handle(request));
 * ```
 */
export class SnapshotReceiver {
  readonly #opts: SnapshotReceiverOptions;
  #crc32: Crc32 | null;
  /** The staging being filled, once looked up; `undefined` before the first request. */
  #staging: SnapshotStaging | null | undefined = undefined;
  /** Leader term of the staging's first chunk (0 when it was resumed from storage). */
  #stagingTerm = 0;
  /** The tail of the request queue. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: SnapshotReceiverOptions) {
    this.#opts = options;
    this.#crc32 = options.crc32 ?? null;
  }

  /**
   * Handles one chunk; resolves with the answer to send back.
   *
   * @throws See {@link SnapshotReceiver}.
   */
  handle(request: InstallSnapshotRequest): Promise<InstallSnapshotResponse> {
    const run = this.#tail.then(() => this.#handle(request));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #handle(m: InstallSnapshotRequest): Promise<InstallSnapshotResponse> {
    const why = malformed(m);
    if (why !== null) throw new CodecError(`installSnapshot: ${why}`);
    const storage = this.#opts.storage;
    const term = this.#opts.currentTerm();
    const answer = (ok: boolean, reason: SnapshotRefusal | null, next: number, installed = false): InstallSnapshotResponse => ({
      type: 'installSnapshotResponse',
      term: Math.max(term, m.term),
      from: this.#opts.id,
      to: m.from,
      snapshotIndex: m.snapshotIndex,
      snapshotTerm: m.snapshotTerm,
      seq: m.seq,
      ok,
      reason,
      next,
      installed,
    });

    if (this.#staging === undefined) {
      this.#staging = await storage.resumeSnapshot();
      const st = this.#staging;
      if (st !== null) this.#observe({ type: 'snapshot.resumed', index: st.descriptor.index, term: st.descriptor.term, bytes: st.size });
    }
    const matching = (s: SnapshotStaging | null): SnapshotStaging | null =>
      s !== null && s.descriptor.index === m.snapshotIndex && s.descriptor.term === m.snapshotTerm ? s : null;

    if (m.term < term) return answer(false, 'term', matching(this.#staging)?.size ?? 0);

    const current = storage.snapshots()[0] ?? null;
    if (current !== null && m.snapshotIndex <= current.index) {
      return current.index === m.snapshotIndex && current.term === m.snapshotTerm
        ? answer(true, null, current.size, true)
        : answer(false, 'stale', 0);
    }

    let st = matching(this.#staging);
    if (st === null) {
      const old = this.#staging;
      if (m.offset !== 0) return answer(false, 'gap', 0);
      if (old !== null && !(m.snapshotIndex > old.descriptor.index || m.term > this.#stagingTerm)) {
        return answer(false, 'stale', 0); // an older snapshot from the same leader: the newer staging wins
      }
      if (old !== null) await old.discard();
      this.#staging = null;
      st = await storage.stageSnapshot({
        index: m.snapshotIndex,
        term: m.snapshotTerm,
        configuration: m.configuration as NonNullable<InstallSnapshotRequest['configuration']>,
        configurationIndex: m.configurationIndex,
      });
      this.#staging = st;
      this.#stagingTerm = m.term;
      this.#observe({ type: 'snapshot.staging', index: m.snapshotIndex, term: m.snapshotTerm, from: m.from });
    } else if (m.term > this.#stagingTerm) {
      this.#stagingTerm = m.term;
    }

    this.#crc32 ??= await loadCrc32().catch(() => crc32Js);
    if (this.#crc32(m.data) >>> 0 !== m.checksum) return answer(false, 'checksum', st.size);

    const end = m.offset + m.data.length;
    if (m.offset > st.size) return answer(false, 'gap', st.size);
    if (end > st.size) {
      await st.append(m.data.subarray(st.size - m.offset));
      this.#observe({ type: 'snapshot.received', index: m.snapshotIndex, bytes: st.size, total: m.size });
    }
    if (!m.done) return answer(true, null, st.size);

    // The last chunk: every byte up to `size` is staged (end <= st.size, and size === end).
    let meta: SnapshotMeta;
    try {
      meta = await st.commit({ size: m.size as number });
    } catch (err) {
      if (!(err instanceof StorageError) || err instanceof StorageCorruptionError) throw err;
      await st.discard();
      this.#staging = null;
      return answer(false, 'storage', 0);
    }
    this.#staging = null;
    await this.#opts.restore(storage.readSnapshot(meta.index), meta);
    this.#observe({ type: 'snapshot.installed', meta });
    return answer(true, null, meta.size, true);
  }

  #observe(o: SnapshotReceiverObservation): void {
    this.#opts.observe?.(o);
  }
}
