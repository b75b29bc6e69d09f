/**
 * Log matching and fast conflict backtracking, pure (§5.3).
 *
 * @module
 */
import type { LogView } from './types.js';

/** A follower's answer when `prevLogIndex` does not match. */
export interface ConflictHint {
  /** Term of the follower's entry at the probed index, 0 when it has none. */
  readonly hintTerm: number;
  /** First index of `hintTerm` in the follower's log; its last index + 1 when `hintTerm` is 0. */
  readonly hintIndex: number;
}

/**
 * Whether the follower's log holds `prevIndex` with `prevTerm` (the AppendEntries consistency check, §5.3).
 *
 * @remarks The consistency check is what keeps the Log Matching Property
 * (Raft paper §5.3, Figure 3): if two logs hold an entry with the same index
 * and term, they are identical up to it. A follower accepts new entries only
 * after the entry before them matches, so by induction the whole prefix does.
 * An index the log does not hold (beyond its end, or compacted below the
 * snapshot boundary `firstIndex - 1`, which keeps its term) does not match.
 *
 * @example
 * ```ts
 * matches(log, 0, 0) // always true: the empty prefix matches
 * ```
 */
export function matches(log: LogView, prevIndex: number, prevTerm: number): boolean {
  return log.term(prevIndex) === prevTerm;
}

/**
 * The follower side of fast backtracking: describe the conflict at `prevIndex`.
 *
 * @remarks With the term of the conflicting entry and the first index of that
 * term, the leader skips a whole term per round trip instead of one entry
 * (§5.3, "the protocol can be optimized"). A follower whose log is shorter
 * than `prevIndex` answers `hintTerm = 0` and its next free index. An index
 * below the follower's first held entry (compacted) is reported as term 0 at
 * the first index, so the leader probes from there.
 *
 * @example
 * ```ts
 * const hint = conflictHint(log, 7)
 * // beyond the end of `log`: { hintTerm: 0, hintIndex: log.lastIndex() + 1 }
 * // otherwise: the term at 7 and the first index of that term
 * console.log(hint.hintTerm, hint.hintIndex)
 * ```
 */
export function conflictHint(log: LogView, prevIndex: number): ConflictHint {
  const last = log.lastIndex();
  if (prevIndex > last) return { hintTerm: 0, hintIndex: last + 1 };
  const term = log.term(prevIndex);
  if (term === undefined) return { hintTerm: 0, hintIndex: log.firstIndex() };
  let first = prevIndex;
  const floor = Math.max(1, log.firstIndex());
  while (first > floor && log.term(first - 1) === term) first--;
  return { hintTerm: term, hintIndex: first };
}

/**
 * The leader side of fast backtracking: the next index to probe after a refusal.
 *
 * @remarks If the leader holds entries of `hintTerm`, it resumes just after
 * its last entry of that term; otherwise at `hintIndex`. The result is clamped
 * to `[1, rejectedIndex]` so a probe always moves backwards: `rejectedIndex`
 * is the `prevLogIndex` that failed, so the next probe's `prevLogIndex` is below it.
 * Together with {@link conflictHint} this is the optimisation the Raft paper
 * sketches at the end of §5.3; correctness does not depend on it, only the
 * number of round trips to find the matching prefix.
 *
 * @example
 * ```ts
 * // the follower refused prevLogIndex 7: its entry at 7 is of term 2, first at 5
 * const next = nextAfterConflict(log, 7, { hintTerm: 2, hintIndex: 5 })
 * // the leader's next AppendEntries starts at `next`, with prevLogIndex next - 1 < 7
 * console.log(next)
 * ```
 */
export function nextAfterConflict(log: LogView, rejectedIndex: number, hint: ConflictHint): number {
  let next = hint.hintIndex;
  if (hint.hintTerm > 0) {
    let i = Math.min(rejectedIndex, log.lastIndex());
    const floor = log.firstIndex() - 1;
    while (i > floor && (log.term(i) ?? 0) > hint.hintTerm) i--;
    if (i > floor && log.term(i) === hint.hintTerm) next = i + 1;
  }
  return Math.max(1, Math.min(next, rejectedIndex));
}
