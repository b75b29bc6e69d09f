/**
 * The write validation every {@link RaftStorage} adapter applies before it
 * accepts a write, so they refuse the same writes with the same words.
 *
 * @module
 */
import type { HardState, LogEntry } from '../../machines/types.js';
import { ENTRY_TYPE_CODES } from '../codec.js';
import type { SnapshotDescriptor, SnapshotMeta, StorageWrite } from './storage.js';

/** What a write is checked against: the log and hard state as accepted so far. */
export interface AcceptedState {
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Term of the entry at `index` (`firstIndex - 1 <= index <= lastIndex`); 0 before the first entry. */
  termAt(index: number): number;
  readonly hardState: HardState;
}


/**
 * Why `write` is invalid against `state`, or `null`: `truncateFrom` an integer
 * `>= firstIndex`; entries contiguous after the last index (after truncation),
 * terms integers `>= 1` that never decrease, a known type and `Uint8Array`
 * data; the hard state's term never decreasing, and its vote never changing
 * once cast within a term (Figure 2, §5.2).
 */
export function invalidWrite(write: StorageWrite, state: AcceptedState): string | null {
  if (typeof write !== 'object' || write === null) return 'not an object';
  const first = state.firstIndex;
  let last = state.lastIndex;
  const { truncateFrom, entries, hardState } = write;
  if (truncateFrom !== undefined) {
    if (!Number.isSafeInteger(truncateFrom) || truncateFrom < first) {
      return `truncateFrom must be an integer >= ${first}, got ${truncateFrom}`;
    }
    if (truncateFrom <= last) last = truncateFrom - 1;
  }
  if (!Array.isArray(entries)) return 'entries must be an array';
  if (entries.length > 0) {
    let prevTerm = state.termAt(last);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as LogEntry;
      if (typeof e !== 'object' || e === null) return `entries[${i}] is not an entry`;
      if (e.index !== last + 1 + i) {
        return `entries[${i}].index must be ${last + 1 + i} (contiguous after index ${last}), got ${e.index}`;
      }
      if (!Number.isSafeInteger(e.term) || e.term < 1) return `entries[${i}].term must be an integer >= 1, got ${e.term}`;
      if (e.term < prevTerm) return `entries[${i}].term ${e.term} is below the previous entry's term ${prevTerm}`;
      if (!Object.hasOwn(ENTRY_TYPE_CODES, e.type)) return `entries[${i}].type must be one of ${Object.keys(ENTRY_TYPE_CODES).join(', ')}, got ${String(e.type)}`;
      if (!(e.data instanceof Uint8Array)) return `entries[${i}].data must be a Uint8Array`;
      prevTerm = e.term;
    }
  }
  if (hardState !== undefined) {
    const cur = state.hardState;
    if (typeof hardState !== 'object' || hardState === null) return 'hardState must be an object';
    const { term, votedFor } = hardState;
    if (!Number.isSafeInteger(term) || term < 0) return `hardState.term must be an integer >= 0, got ${term}`;
    if (term < cur.term) return `hardState.term must not decrease (${cur.term} -> ${term})`;
    if (votedFor !== null && typeof votedFor !== 'string') return 'hardState.votedFor must be a string or null';
    if (term === cur.term && cur.votedFor !== null && votedFor !== cur.votedFor) {
      return `hardState.votedFor must not change within term ${term} (${cur.votedFor} -> ${String(votedFor)})`;
    }
  }
  return null;
}

/** How many snapshots a storage keeps by default: the current one and the one before. */
export const DEFAULT_KEEP_SNAPSHOTS = 2;

/** Why `keep` is not a valid `keepSnapshots` option, or `null` (`undefined` means the default). */
export function invalidKeepSnapshots(keep: unknown): string | null {
  if (keep === undefined) return null;
  return typeof keep === 'number' && Number.isSafeInteger(keep) && keep >= 1 ? null : `must be an integer >= 1, got ${String(keep)}`;
}

/**
 * Why `d` is not a valid snapshot descriptor, or `null`: `index` and `term`
 * integers `>= 1`, `configurationIndex` an integer in `0..index`, and
 * `configuration` an object with a `servers` array.
 */
export function invalidDescriptor(d: SnapshotDescriptor): string | null {
  if (typeof d !== 'object' || d === null) return 'not an object';
  if (!Number.isSafeInteger(d.index) || d.index < 1) return `index must be an integer >= 1, got ${d.index}`;
  if (!Number.isSafeInteger(d.term) || d.term < 1) return `term must be an integer >= 1, got ${d.term}`;
  if (!Number.isSafeInteger(d.configurationIndex) || d.configurationIndex < 0 || d.configurationIndex > d.index) {
    return `configurationIndex must be an integer in 0..${d.index}, got ${d.configurationIndex}`;
  }
  const c = d.configuration as unknown;
  if (typeof c !== 'object' || c === null || !Array.isArray((c as { servers?: unknown }).servers)) {
    return 'configuration must be an object with a servers array';
  }
  return null;
}

/**
 * Why installing `meta` must be refused, or `null`: it does not match
 * `expected`, it is not newer than `current`, or the log was compacted past it.
 */
export function refuseInstall(
  meta: SnapshotMeta,
  expected: { readonly size?: number; readonly checksum?: number } | undefined,
  current: SnapshotMeta | null,
  firstIndex: number,
): string | null {
  if (expected?.size !== undefined && expected.size !== meta.size) {
    return `snapshot ${meta.index}: staged ${meta.size} bytes, expected ${expected.size}`;
  }
  if (expected?.checksum !== undefined && expected.checksum !== meta.checksum) {
    return `snapshot ${meta.index}: staged content has checksum ${meta.checksum}, expected ${expected.checksum}`;
  }
  if (current !== null && meta.index <= current.index) {
    return `snapshot ${meta.index} is not newer than the current snapshot ${current.index}`;
  }
  if (meta.index < firstIndex - 1) {
    return `snapshot ${meta.index} is below the log's boundary ${firstIndex - 1} (compacted past it)`;
  }
  return null;
}

