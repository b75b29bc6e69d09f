/**
 * The node's log: an in-memory array of entries over the storage adapter.
 * Machines read it through {@link LogView}; the node actor mutates it and
 * records each mutation into the turn's Ready for the storage write.
 *
 * @module
 */
import type { EntryType, LogEntry, LogView } from '../machines/types.js';

/** The storage work a run of log mutations adds up to: delete from `truncateFrom`, then append `entries`. */
export interface LogDelta {
  truncateFrom: number | null;
  entries: LogEntry[];
}

/** Adds one truncation to a pending delta, dropping pending entries it removes. */
export function addTruncation(delta: LogDelta, from: number): void {
  const first = delta.entries[0];
  if (first !== undefined && first.index >= from) delta.entries = [];
  else if (first !== undefined) delta.entries.length = Math.max(0, from - first.index);
  if (delta.entries.length > 0) return; // the truncation only cut pending entries
  delta.truncateFrom = delta.truncateFrom === null ? from : Math.min(delta.truncateFrom, from);
}

/**
 * The replicated log, held in memory from `firstIndex` to `lastIndex`.
 *
 * @remarks Invariant: entries are contiguous, `entries[k].index === first + k`,
 * and terms never decrease along the log.
 */
export class RaftLog implements LogView {
  #entries: LogEntry[];
  #first: number;
  /** Term of entry `#first - 1` (the last one a snapshot covers), 0 before any compaction. */
  #boundaryTerm: number;
  /** Called with the first removed index whenever entries are truncated (simulation checks use it). */
  onTruncate: ((from: number) => void) | null = null;

  /**
   * @param boundaryTerm - Term of entry `firstIndex - 1` (the snapshot's last entry) when the log
   * starts after a compaction; answers `term(firstIndex - 1)` and, while the log is empty, `lastTerm()`.
   */
  constructor(entries: LogEntry[] = [], firstIndex = 1, boundaryTerm = 0) {
    this.#entries = entries;
    this.#first = firstIndex;
    this.#boundaryTerm = firstIndex > 1 ? boundaryTerm : 0;
  }

  firstIndex(): number {
    return this.#first;
  }

  lastIndex(): number {
    return this.#first + this.#entries.length - 1;
  }

  lastTerm(): number {
    return this.#entries[this.#entries.length - 1]?.term ?? this.#boundaryTerm;
  }

  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (index === this.#first - 1) return this.#boundaryTerm;
    return this.#entries[index - this.#first]?.term;
  }

  /**
   * Forgets entries up to `upTo` inclusive (a snapshot covers them); `term(upTo)` stays known as
   * the boundary. Does nothing when `upTo` is below the first index or not held.
   */
  compactTo(upTo: number): void {
    const term = this.term(upTo);
    if (upTo < this.#first || upTo > this.lastIndex() || term === undefined) return;
    this.#entries = this.#entries.slice(upTo - this.#first + 1);
    this.#first = upTo + 1;
    this.#boundaryTerm = term;
  }

  /**
   * After a snapshot at `index`/`term` was installed: keeps the log as it is when it holds
   * `index` with `term` (§7, as the storage does), else empties it so it restarts after `index`.
   */
  installSnapshot(index: number, term: number): void {
    if (this.term(index) === term) return; // the log connects to the snapshot: kept as it is, as in storage
    if (index >= this.#first && index <= this.lastIndex()) this.onTruncate?.(index);
    this.#entries = [];
    this.#first = index + 1;
    this.#boundaryTerm = term;
  }

  /** The entry at `index`, if held. */
  entry(index: number): LogEntry | undefined {
    return this.#entries[index - this.#first];
  }

  /** Entries `from..to` inclusive (clamped to what is held). */
  slice(from: number, to: number): LogEntry[] {
    return this.#entries.slice(Math.max(0, from - this.#first), Math.max(0, to - this.#first + 1));
  }

  limit(from: number, maxEntries: number, maxBytes: number): number {
    const last = Math.min(this.lastIndex(), from + maxEntries - 1);
    let bytes = 0;
    for (let i = from; i <= last; i++) {
      bytes += this.#entries[i - this.#first]?.data.byteLength ?? 0;
      if (bytes > maxBytes && i > from) return i - 1;
    }
    return Math.max(from - 1, last);
  }

  bytes(from: number, to: number): number {
    let n = 0;
    for (let i = from; i <= to; i++) n += this.#entries[i - this.#first]?.data.byteLength ?? 0;
    return n;
  }

  /**
   * Leader append: new entries of `term`, one per payload. Returns the index of the first.
   */
  appendNew(term: number, type: EntryType, payloads: readonly Uint8Array[], delta: LogDelta): number {
    const first = this.lastIndex() + 1;
    for (let k = 0; k < payloads.length; k++) {
      const entry: LogEntry = { index: first + k, term, type, data: payloads[k] as Uint8Array };
      this.#entries.push(entry);
      delta.entries.push(entry);
    }
    return first;
  }

  /**
   * Follower append (§5.3): entries already held with the same term are kept,
   * the first conflicting entry and everything after it are deleted, the rest
   * appended. Never deletes a matching entry, so stale or duplicate appends are harmless.
   *
   * @returns the index the log was truncated from, or `null`.
   */
  appendAfter(prevIndex: number, entries: readonly LogEntry[], delta: LogDelta): number | null {
    let k = 0;
    let truncated: number | null = null;
    for (; k < entries.length; k++) {
      const e = entries[k] as LogEntry;
      const held = this.term(e.index);
      if (held === undefined) break;
      if (held !== e.term) {
        truncated = e.index;
        this.truncateFrom(e.index, delta);
        break;
      }
    }
    for (; k < entries.length; k++) {
      const e = entries[k] as LogEntry;
      if (e.index !== this.#first + this.#entries.length || e.index <= prevIndex) break; // never leave a gap
      this.#entries.push(e);
      delta.entries.push(e);
    }
    return truncated;
  }

  /** Deletes entries from `index` on. */
  truncateFrom(index: number, delta: LogDelta): void {
    if (index > this.lastIndex()) return;
    this.#entries.length = Math.max(0, index - this.#first);
    addTruncation(delta, index);
    this.onTruncate?.(index);
  }
}
