/**
 * The storage adapter contract. A node keeps its hard state, its log and its
 * snapshots here; `MemoryStorage` implements it for tests and simulation,
 * `LevelStorage` on disk.
 *
 * @module
 */
import type { Configuration, HardState, LogEntry } from '../../machines/types.js';
// For the TSDoc links only.
import type { ShutdownError, StorageCorruptionError, StorageError } from '../../errors.js';

/** What a storage holds when opened. */
export interface StoredState {
  /** Last synced hard state; `{ term: 0, votedFor: null }` on a fresh store. */
  readonly hardState: HardState;
  /** Index of the first entry held (1 on a fresh store). */
  readonly firstIndex: number;
  /** Index of the last entry held (0 on a fresh store). */
  readonly lastIndex: number;
  /**
   * Term of entry `firstIndex - 1`, the boundary the log starts after: the
   * term of the last snapshot or compaction, 0 on a fresh store. A storage
   * without snapshot support may leave it out (then 0).
   *
   * @remarks With it a restarted node can answer the log-matching check for
   * `prevLogIndex = firstIndex - 1` (§5.3) although that entry is gone.
   */
  readonly boundaryTerm?: number;
  /**
   * The current (newest installed) snapshot, or `null`. The log then starts
   * at or below `snapshot.index + 1` and connects to it. A storage without
   * snapshot support may leave it out (then `null`).
   */
  readonly snapshot?: SnapshotMeta | null;
}

/**
 * What a snapshot is of: the state after applying the log up to `index`.
 *
 * @remarks Invariant: `index >= 1`, `term >= 1`, `0 <= configurationIndex <= index`.
 * The configuration is stored and returned as plain data (it is the latest
 * one at or below `index`, §7 "last included configuration"); the storage
 * does not interpret it beyond checking that it is an object with a
 * `servers` array.
 */
export interface SnapshotDescriptor {
  /** Index of the last entry the snapshot covers (the "last included index", §7). */
  readonly index: number;
  /** Term of that entry (the "last included term"). */
  readonly term: number;
  /** The membership in force at `index`. */
  readonly configuration: Configuration;
  /** Index of the log entry that carried `configuration`; 0 when it came from a bootstrap. */
  readonly configurationIndex: number;
}

/** A snapshot held by a storage: its descriptor plus what its bytes are. */
export interface SnapshotMeta extends SnapshotDescriptor {
  /** Length of the content in bytes. */
  readonly size: number;
  /** CRC-32 (IEEE, as zlib's) of the whole content. */
  readonly checksum: number;
  /** Number of stored chunks (0 for an empty snapshot). */
  readonly chunks: number;
}

/**
 * A snapshot being written (staged): chunks go in order, durably, and the
 * snapshot becomes current only on {@link SnapshotStaging.commit}.
 *
 * @remarks A store holds at most one staging. It survives a restart
 * ({@link SnapshotStore.resumeSnapshot} returns it with the chunks that were
 * synced), so an interrupted transfer resumes at `size`; or it is thrown away
 * with {@link SnapshotStaging.discard} to start over. Until `commit` resolves
 * the previous snapshot stays current, whatever crashes in between.
 * Operations are ordered with the storage's other writes. A staging object
 * that was committed, discarded or replaced by a newer staging (or whose
 * storage was closed) rejects every call with {@link StorageError} (or
 * {@link ShutdownError} after close), except
 * {@link SnapshotStaging.discard}, which then does nothing.
 *
 * @example
 * ```ts
 * const staging = await storage.stageSnapshot({ index: 120, term: 3, configuration, configurationIndex: 1 });
 * for await (const chunk of source) await staging.append(chunk);
 * const meta = await staging.commit({ size: expectedSize });
 * ```
 */
export interface SnapshotStaging {
  /** The snapshot being staged. */
  readonly descriptor: SnapshotDescriptor;
  /** Bytes accepted so far: the offset the next chunk starts at. */
  readonly size: number;
  /** Non-empty chunks accepted so far. */
  readonly chunks: number;
  /** CRC-32 of the bytes accepted so far. */
  readonly checksum: number;
  /**
   * Appends the next chunk (its bytes are copied, or must not be changed
   * afterwards, as the adapter documents); resolves once it is durable. An
   * empty chunk changes nothing.
   *
   * @throws Rejects with {@link StorageError} when `data` is not a `Uint8Array`
   * or the staging is no longer live.
   */
  append(data: Uint8Array): Promise<void>;
  /**
   * Re-reads and verifies every staged chunk, then atomically makes this
   * snapshot current, forgets the staging, keeps only the newest snapshots
   * (as configured) and adjusts the log (§7): when the log holds entry
   * `index` with `term`, the log is kept as it is (compact it separately with
   * {@link SnapshotStore.compact}); otherwise the whole log is discarded and
   * it restarts empty after `index` (`firstIndex = index + 1`,
   * `lastIndex = index`, `boundaryTerm = term`).
   *
   * @param expected - Optional size and checksum the content must have.
   * @returns The metadata of the installed snapshot.
   * @throws Rejects with {@link StorageError} when the content does not match
   * `expected` (the staging stays, to be discarded), when the snapshot is not
   * newer than the current one, or when the staging is no longer live; with
   * {@link StorageCorruptionError} naming the key when a staged chunk fails
   * its check.
   */
  commit(expected?: { readonly size?: number; readonly checksum?: number }): Promise<SnapshotMeta>;
  /**
   * Deletes the staged chunks; the current snapshot is untouched. On a
   * staging that is no longer live (committed, discarded, replaced) it does
   * nothing, so it is idempotent while the storage is open.
   */
  discard(): Promise<void>;
}

/**
 * Snapshot storage: staging, install, reading and log compaction.
 *
 * @remarks Both built-in storages implement it. {@link RaftStorage} declares
 * these methods optional so a storage without snapshots still fits; use
 * {@link hasSnapshotStore} to check for them.
 */
export interface SnapshotStore {
  /**
   * Starts staging a new snapshot, discarding any staging already there.
   *
   * @throws Rejects with {@link StorageError} for a bad descriptor or when the
   * storage is not open.
   */
  stageSnapshot(descriptor: SnapshotDescriptor): Promise<SnapshotStaging>;
  /** The staging left by an earlier run (or the live one), with the chunks that were synced; `null` when none. */
  resumeSnapshot(): Promise<SnapshotStaging | null>;
  /**
   * The content of a held snapshot, as chunks in order: the current one, or
   * the kept one at `index`. Every chunk is checked, and the whole content
   * against its size and checksum at the end.
   *
   * @throws The iteration rejects with {@link StorageError} when no such
   * snapshot is held, with {@link StorageCorruptionError} naming the key when
   * a record or the whole content fails its check.
   */
  readSnapshot(index?: number): AsyncIterable<Uint8Array>;
  /** The snapshots held, newest first (the first is current). */
  snapshots(): readonly SnapshotMeta[];
  /**
   * Discards the log entries up to `upTo` inclusive (they are covered by a
   * snapshot) and durably records `upTo + 1` as the first index. Ordered
   * with writes. See the adapters for the exact rules.
   */
  compact(upTo: number, term?: number): Promise<void>;
}

/**
 * Whether `storage` implements the {@link SnapshotStore} methods.
 *
 * @example
 * ```ts
 * if (!hasSnapshotStore(storage)) throw new ConfigurationError('storage', 'snapshots need a SnapshotStore');
 * ```
 */
export function hasSnapshotStore(storage: RaftStorage): storage is RaftStorage & SnapshotStore {
  return (
    typeof storage.stageSnapshot === 'function' &&
    typeof storage.resumeSnapshot === 'function' &&
    typeof storage.readSnapshot === 'function' &&
    typeof storage.snapshots === 'function' &&
    typeof storage.compact === 'function'
  );
}

/**
 * One atomic, synced write.
 *
 * @remarks Applied in this order: `truncateFrom` deletes every entry with
 * `index >= truncateFrom`; then `entries` (contiguous, starting at the new last
 * index + 1) are appended; `hardState`, when present, replaces the stored one.
 * Either all of it is durable when the promise resolves, or none of it is.
 */
export interface StorageWrite {
  /** New hard state, if it changed. */
  readonly hardState?: HardState;
  /** Delete entries from this index on before appending. */
  readonly truncateFrom?: number;
  /** Entries to append. */
  readonly entries: readonly LogEntry[];
}

/**
 * Durable home of one node's Raft state.
 *
 * @remarks Implementations must make every {@link RaftStorage.write} atomic
 * and durable before resolving (the node sends vote grants and append
 * acknowledgements only afterwards, §5.1 "persistent state"), and must apply
 * writes in call order. A write still in flight when {@link RaftStorage.close}
 * is called may be lost, as on a crash; a resolved one never is.
 */
export interface RaftStorage extends Partial<SnapshotStore> {
  /** Opens (or creates) the store and reports what it holds. */
  open(): Promise<StoredState>;
  /** Entries `from..to` inclusive, in order. Rejects if any is missing. */
  entries(from: number, to: number): Promise<LogEntry[]>;
  /** Atomically applies and syncs one write. */
  write(write: StorageWrite): Promise<void>;
  /** Releases the store. In-flight writes may be lost. */
  close(): Promise<void>;
}
