/**
 * Vote granting, pure (§5.2, §5.4.1; PreVote and leader stickiness from the thesis §9.6).
 *
 * @module
 */
import type { ServerId, VoteRefusal } from './types.js';

/**
 * Whether a candidate's log is at least as up-to-date as ours (§5.4.1): a later
 * last term wins; with equal last terms, the longer log wins.
 *
 * @remarks This is the election restriction of the Raft paper §5.4.1 (thesis
 * §3.6.1) that gives Leader Completeness (§5.4.3): a candidate can only win
 * votes from a majority whose logs are no more up-to-date than its own, and
 * every committed entry is on some member of that majority, so a new leader
 * holds every committed entry. An equal log counts as up-to-date.
 *
 * @example
 * ```ts
 * isUpToDate({ lastIndex: 5, lastTerm: 2 }, { lastIndex: 3, lastTerm: 3 }) // true
 * ```
 */
export function isUpToDate(
  ours: { readonly lastIndex: number; readonly lastTerm: number },
  theirs: { readonly lastIndex: number; readonly lastTerm: number },
): boolean {
  return theirs.lastTerm > ours.lastTerm || (theirs.lastTerm === ours.lastTerm && theirs.lastIndex >= ours.lastIndex);
}

/** What the voter knows when a (pre-)vote request arrives, after the term gate ran. */
export interface VoterState {
  /** Our current term. */
  readonly term: number;
  /** Whom we voted for in `term`, or `null`. */
  readonly votedFor: ServerId | null;
  /** The leader we follow in `term`, or `null`. */
  readonly leaderId: ServerId | null;
  /** Our last log index. */
  readonly lastIndex: number;
  /** Our last log term. */
  readonly lastTerm: number;
}

/** A (pre-)vote request as the voter sees it. */
export interface Ballot {
  readonly preVote: boolean;
  readonly term: number;
  readonly candidate: ServerId;
  readonly lastIndex: number;
  readonly lastTerm: number;
}

/** Verdict on a ballot. */
export type VoteDecision = { readonly granted: true } | { readonly granted: false; readonly reason: VoteRefusal };

/**
 * Decides a vote or pre-vote.
 *
 * @remarks Runs after the term gate: a real vote request has `term === voter.term`
 * (higher terms were adopted first, lower ones answered by the gate), while a
 * pre-vote request may carry a future term and changes nothing. A real vote
 * is granted at most once per term (Election Safety, §5.2) and only to a
 * candidate whose log is at least as up-to-date (§5.4.1). A pre-vote is
 * granted to a future term with an up-to-date log. Leader stickiness (refusing
 * while a leader is live) is decided before this, by the caller.
 *
 * The voter's own suffrage is not consulted (thesis §4.1: servers process requests
 * without consulting their configurations): only the candidate's configuration says
 * whose vote counts. A server demoted or removed by an entry the candidate has not
 * seen may therefore still be needed, and must be able, to elect it.
 *
 * @example
 * ```ts
 * decideVote({ term: 2, votedFor: null, leaderId: null, lastIndex: 4, lastTerm: 2 },
 *            { preVote: false, term: 2, candidate: 'b', lastIndex: 4, lastTerm: 2 }) // { granted: true }
 * ```
 */
export function decideVote(voter: VoterState, ballot: Ballot): VoteDecision {
  if (ballot.term < voter.term) return { granted: false, reason: 'term' };
  if (ballot.preVote) {
    if (ballot.term === voter.term && voter.leaderId !== null) return { granted: false, reason: 'leader' };
  } else {
    const free = voter.votedFor === ballot.candidate || (voter.votedFor === null && voter.leaderId === null);
    if (!free) return { granted: false, reason: voter.votedFor !== null ? 'voted' : 'leader' };
  }
  if (!isUpToDate({ lastIndex: voter.lastIndex, lastTerm: voter.lastTerm }, ballot)) return { granted: false, reason: 'log' };
  return { granted: true };
}
