import t from 'tap';
import { decideVote, isUpToDate, type Ballot, type VoteDecision, type VoterState } from '../../machines/vote.js';

t.test('isUpToDate (§5.4.1): last term first, then length', async (t) => {
  const table: Array<[name: string, ours: [number, number], theirs: [number, number], want: boolean]> = [
    // [lastIndex, lastTerm]
    ['identical logs', [5, 2], [5, 2], true],
    ['both empty', [0, 0], [0, 0], true],
    ['later last term wins over a longer log', [5, 2], [3, 3], true],
    ['earlier last term loses to a shorter log', [3, 3], [9, 2], false],
    ['same last term, longer wins', [4, 2], [5, 2], true],
    ['same last term, shorter loses', [5, 2], [4, 2], false],
    ['empty candidate loses to any entry', [1, 1], [0, 0], false],
    ['any entry beats an empty voter', [0, 0], [1, 1], true],
  ];
  for (const [name, [oi, ot], [ti, tt], want] of table) {
    t.equal(isUpToDate({ lastIndex: oi, lastTerm: ot }, { lastIndex: ti, lastTerm: tt }), want, name);
  }
});

t.test('decideVote', async (t) => {
  const voter: VoterState = { term: 5, votedFor: null, leaderId: null, lastIndex: 10, lastTerm: 4 };
  const vote: Ballot = { preVote: false, term: 5, candidate: 'b', lastIndex: 10, lastTerm: 4 };
  const pre: Ballot = { ...vote, preVote: true, term: 6 };
  const yes: VoteDecision = { granted: true };
  const no = (reason: 'term' | 'voted' | 'log' | 'leader'): VoteDecision => ({ granted: false, reason });
  const table: Array<[name: string, voter: VoterState, ballot: Ballot, want: VoteDecision]> = [
    ['vote: free voter, equal log', voter, vote, yes],
    ['vote: candidate log more up-to-date', voter, { ...vote, lastIndex: 3, lastTerm: 5 }, yes],
    ['vote: again for the same candidate (idempotent)', { ...voter, votedFor: 'b' }, vote, yes],
    ['vote: already voted for another (§5.2)', { ...voter, votedFor: 'c' }, vote, no('voted')],
    ['vote: a leader is known in this term', { ...voter, leaderId: 'c' }, vote, no('leader')],
    ['vote: voted and the leader is known', { ...voter, votedFor: 'c', leaderId: 'c' }, vote, no('voted')],
    ['vote: stale term', voter, { ...vote, term: 4 }, no('term')],
    ['vote: log behind by last term (§5.4.1)', voter, { ...vote, lastIndex: 20, lastTerm: 3 }, no('log')],
    ['vote: log behind by length (§5.4.1)', voter, { ...vote, lastIndex: 9 }, no('log')],
    ['pre-vote: future term, up-to-date', voter, pre, yes],
    ['pre-vote: ignores the vote we cast in our term', { ...voter, votedFor: 'c' }, pre, yes],
    ['pre-vote: future term is not blocked by a known leader (stickiness is the caller’s)', { ...voter, leaderId: 'c' }, pre, yes],
    ['pre-vote: our term while a leader is known', { ...voter, leaderId: 'c' }, { ...pre, term: 5 }, no('leader')],
    ['pre-vote: stale term', voter, { ...pre, term: 4 }, no('term')],
    ['pre-vote: log behind', voter, { ...pre, lastIndex: 9 }, no('log')],
  ];
  for (const [name, v, b, want] of table) t.same(decideVote(v, b), want, name);
});
