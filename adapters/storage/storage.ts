/**
 * The storage adapter contract. A node keeps its hard state and its log here;
 * `MemoryStorage` implements it for tests and simulation, `LevelStorage` on disk.
 *
 * @module
 */
import type { HardState, LogEntry } from '../../machines/types.js';

/** What a storage holds when opened. */
export interface StoredState {
  /** Last synced hard state; `{ term: 0, votedFor: null }` on a fresh store. */
  readonly hardState: HardState;
  /** Index of the first entry held (1 on a fresh store). */
  readonly firstIndex: number;
  /** Index of the last entry held (0 on a fresh store). */
  readonly lastIndex: number;
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
export interface RaftStorage {
  /** Opens (or creates) the store and reports what it holds. */
  open(): Promise<StoredState>;
  /** Entries `from..to` inclusive, in order. Rejects if any is missing. */
  entries(from: number, to: number): Promise<LogEntry[]>;
  /** Atomically applies and syncs one write. */
  write(write: StorageWrite): Promise<void>;
  /** Releases the store. In-flight writes may be lost. */
  close(): Promise<void>;
}
