/**
 * Majority math, pure and table-tested (§5.2, §5.3).
 *
 * @module
 */
import type { ServerId } from './types.js';

/**
 * Votes needed for a majority of `voters` voters.
 *
 * @remarks `floor(voters / 2) + 1`: any two majorities of the same voter set
 * intersect, which is what Election Safety (Raft paper §5.2) and commitment
 * (§5.3) rest on. An even-sized set needs more than half, so 4 voters need 3.
 * `majority(0)` is 1, so an empty voter set never reaches a quorum.
 *
 * @example
 * ```ts
 * majority(3) // 2
 * majority(4) // 3
 * ```
 */
export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The highest index held by a majority of `voters`, given each voter's match index.
 *
 * @remarks This is the quorum-commit candidate of §5.3; the leader may commit
 * it only if the entry there is from its current term (§5.4.2). An empty voter
 * set yields 0. Voters missing from `match` count as 0.
 *
 * @example
 * ```ts
 * quorumIndex(['a', 'b', 'c'], { a: 5, b: 3, c: 1 }) // 3
 * ```
 */
export function quorumIndex(voters: readonly ServerId[], match: Readonly<Record<ServerId, number>>): number {
  if (voters.length === 0) return 0;
  const indexes = voters.map((v) => match[v] ?? 0).sort((x, y) => y - x);
  return indexes[majority(voters.length) - 1] ?? 0;
}

/** Outcome of an election so far. */
export type ElectionResult = 'won' | 'lost' | 'pending';

/**
 * Tallies an election: `won` once a majority granted, `lost` once a majority can no longer be reached.
 *
 * @remarks Responses from servers that are not voters are ignored (§5.2; a
 * learner's vote never counts).
 *
 * @example
 * ```ts
 * tally(['a', 'b', 'c'], { a: true, b: false }) // 'pending'
 * tally(['a', 'b', 'c'], { a: true, c: true })  // 'won'
 * ```
 */
export function tally(voters: readonly ServerId[], votes: Readonly<Record<ServerId, boolean>>): ElectionResult {
  let granted = 0;
  let refused = 0;
  for (const v of voters) {
    const vote = votes[v];
    if (vote === true) granted++;
    else if (vote === false) refused++;
  }
  const need = majority(voters.length);
  if (granted >= need) return 'won';
  if (voters.length - refused < need) return 'lost';
  return 'pending';
}

/**
 * Whether `active` (servers heard from recently) contains a majority of `voters`; the check-quorum rule.
 *
 * @remarks A leader that has not heard from a majority within an election
 * timeout steps down (thesis §6.2), so a partitioned leader stops serving. The node machine asks it through
 * {@link jointHasQuorum}, with itself counted as active, so during a joint
 * configuration both majorities are required (thesis §4.3). Servers in
 * `active` that are not voters are ignored.
 *
 * @example
 * ```ts
 * hasQuorum(['a', 'b', 'c'], new Set(['a', 'c'])) // true
 * ```
 */
export function hasQuorum(voters: readonly ServerId[], active: ReadonlySet<ServerId>): boolean {
  let n = 0;
  for (const v of voters) if (active.has(v)) n++;
  return n >= majority(voters.length);
}
