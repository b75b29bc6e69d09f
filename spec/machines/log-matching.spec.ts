import t from 'tap';
import { seededRandom, type SeededRandom } from '../../adapters/random.js';
import { conflictHint, matches, nextAfterConflict, type ConflictHint } from '../../machines/log-matching.js';
import type { LogView } from '../../machines/types.js';

/** A log of `terms` starting at `first`; index `first - 1` is the boundary entry with `boundaryTerm`. */
function view(terms: readonly number[], first = 1, boundaryTerm = 0): LogView {
  const last = first + terms.length - 1;
  const term = (i: number): number | undefined => {
    if (i === 0) return 0;
    if (i === first - 1) return boundaryTerm;
    return i >= first && i <= last ? terms[i - first] : undefined;
  };
  return {
    firstIndex: () => first,
    lastIndex: () => last,
    lastTerm: () => (terms.length > 0 ? (terms[terms.length - 1] ?? 0) : first > 1 ? boundaryTerm : 0),
    term,
    limit: (from, maxEntries) => Math.max(from - 1, Math.min(last, from + maxEntries - 1)),
    bytes: () => 0,
  };
}

t.test('matches: the AppendEntries consistency check (§5.3)', async (t) => {
  const log = view([1, 1, 2, 2, 3]);
  const table: Array<[name: string, log: LogView, index: number, term: number, want: boolean]> = [
    ['empty prefix always matches', log, 0, 0, true],
    ['empty prefix of an empty log', view([]), 0, 0, true],
    ['same term at index', log, 4, 2, true],
    ['last entry', log, 5, 3, true],
    ['different term at index', log, 4, 3, false],
    ['beyond the end', log, 6, 3, false],
    ['index 0 with a non-zero term', log, 0, 1, false],
    ['compacted boundary entry still has its term', view([3, 3], 5, 2), 4, 2, true],
    ['below the boundary: no term, no match', view([3, 3], 5, 2), 3, 2, false],
  ];
  for (const [name, l, index, term, want] of table) t.equal(matches(l, index, term), want, name);
});

t.test('conflictHint: the follower side of fast backtracking', async (t) => {
  const table: Array<[name: string, log: LogView, prevIndex: number, want: ConflictHint]> = [
    ['shorter log: term 0 and its next free index', view([1, 1, 2]), 7, { hintTerm: 0, hintIndex: 4 }],
    ['empty log', view([]), 3, { hintTerm: 0, hintIndex: 1 }],
    ['first index of the conflicting term', view([1, 1, 2, 2, 2, 2]), 5, { hintTerm: 2, hintIndex: 3 }],
    ['conflict on the first entry of its term', view([1, 1, 2, 2]), 3, { hintTerm: 2, hintIndex: 3 }],
    ['term run reaching index 1', view([4, 4, 4]), 3, { hintTerm: 4, hintIndex: 1 }],
    ['last entry of a later term', view([1, 2, 3]), 3, { hintTerm: 3, hintIndex: 3 }],
    ['compacted prevIndex: term 0 at the first held index', view([5, 5, 6], 10, 5), 4, { hintTerm: 0, hintIndex: 10 }],
    ['term run is cut at the first held index', view([5, 5, 6], 10, 5), 11, { hintTerm: 5, hintIndex: 10 }],
  ];
  for (const [name, log, prevIndex, want] of table) t.same(conflictHint(log, prevIndex), want, name);
});

t.test('nextAfterConflict: the leader side of fast backtracking', async (t) => {
  const leader = view([1, 1, 2, 2, 4, 4, 4]);
  const table: Array<[name: string, log: LogView, rejected: number, hint: ConflictHint, want: number]> = [
    ['follower shorter: resume at its next free index', leader, 7, { hintTerm: 0, hintIndex: 3 }, 3],
    ['leader holds hintTerm: resume after its last entry of that term', leader, 7, { hintTerm: 2, hintIndex: 3 }, 5],
    ['leader lacks hintTerm: resume at the follower’s first index of it', leader, 7, { hintTerm: 3, hintIndex: 5 }, 5],
    ['hintTerm below every leader term past it: walk back to it', leader, 6, { hintTerm: 1, hintIndex: 1 }, 3],
    ['never forwards: clamped to rejectedIndex', leader, 2, { hintTerm: 0, hintIndex: 9 }, 2],
    ['never below 1', leader, 1, { hintTerm: 0, hintIndex: 0 }, 1],
    ['rejected beyond the leader’s log is capped by its last index', view([1, 1, 2]), 9, { hintTerm: 2, hintIndex: 3 }, 4],
  ];
  for (const [name, log, rejected, hint, want] of table) t.equal(nextAfterConflict(log, rejected, hint), want, name);
});

/**
 * A leader log and a follower log that share a prefix of `match` entries and then
 * diverge the way Raft logs can: each term's entries come from that term's single
 * leader, so past the prefix the two logs hold disjoint terms (only one of them may
 * continue the prefix's last term). Terms never decrease along either log.
 */
function divergentLogs(r: SeededRandom): { leader: number[]; follower: number[]; match: number } {
  const prefix: number[] = [];
  let term = 1;
  for (let n = r.int(0, 10); prefix.length < n; ) {
    if (r.chance(0.3)) term += r.int(1, 3);
    prefix.push(term);
  }
  const lastPrefixTerm = prefix[prefix.length - 1] ?? 0;
  const leaderTerms: number[] = [];
  const followerTerms: number[] = [];
  for (let k = 1; k <= 8; k++) (r.chance(0.5) ? leaderTerms : followerTerms).push(lastPrefixTerm + k);
  if (lastPrefixTerm > 0) (r.chance(0.5) ? leaderTerms : followerTerms).push(lastPrefixTerm);
  const suffix = (pool: number[]): number[] => {
    if (pool.length === 0) return [];
    const picks = Array.from({ length: r.int(0, 12) }, () => r.pick(pool));
    return picks.sort((x, y) => x - y);
  };
  return { leader: [...prefix, ...suffix(leaderTerms)], follower: [...prefix, ...suffix(followerTerms)], match: prefix.length };
}

t.test('fast backtracking lands exactly on the match point in at most distinct terms + 2 round trips (2,000 random logs, seed 77)', async (t) => {
  const seed = 77;
  const r = seededRandom(seed);
  let failures = 0;
  for (let c = 0; c < 2000 && failures < 5; c++) {
    const { leader, follower, match } = divergentLogs(r);
    const L = view(leader);
    const F = view(follower);
    // The true match point: the last index where both logs agree.
    let truth = 0;
    for (let i = 1; i <= Math.min(leader.length, follower.length); i++) if (leader[i - 1] === follower[i - 1]) truth = i;
    const where = `seed ${seed} case ${c}: leader=[${leader.join(',')}] follower=[${follower.join(',')}]`;
    if (truth !== match) {
      failures++;
      t.fail(`generator broke Log Matching: ${where}`);
      continue;
    }
    const bound = new Set([...leader, ...follower]).size + 2;
    let next = L.lastIndex() + 1; // a new leader probes from its last index
    let trips = 0;
    let landed: number | null = null;
    const path: number[] = [];
    while (trips <= bound) {
      trips++;
      const prevIndex = next - 1;
      path.push(prevIndex);
      if (prevIndex < match) break; // went past the match point
      if (matches(F, prevIndex, L.term(prevIndex) ?? -1)) {
        landed = prevIndex;
        break;
      }
      const after = nextAfterConflict(L, prevIndex, conflictHint(F, prevIndex));
      if (after >= next) break; // no progress: would loop forever
      next = after;
    }
    if (landed !== match || trips > bound) {
      failures++;
      t.fail(`probe path ${path.join(' → ')} (${trips} trips, bound ${bound}) should land at ${match}: ${where}`);
    }
  }
  t.equal(failures, 0, `seed ${seed}: every probe loop landed on the match point`);
});
