import t from 'tap';
import { seededRandom } from '../../adapters/random.js';
import { hasQuorum, majority, quorumIndex, tally, type ElectionResult } from '../../machines/quorum.js';

t.test('majority', async (t) => {
  const table: Array<[voters: number, need: number]> = [
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [6, 4],
    [7, 4],
  ];
  for (const [voters, need] of table) t.equal(majority(voters), need, `${voters} voters need ${need}`);
});

t.test('quorumIndex', async (t) => {
  const table: Array<[name: string, voters: string[], match: Record<string, number>, want: number]> = [
    ['no voters', [], { a: 9 }, 0],
    ['single voter', ['a'], { a: 7 }, 7],
    ['single voter, unknown', ['a'], {}, 0],
    ['three voters', ['a', 'b', 'c'], { a: 5, b: 3, c: 1 }, 3],
    ['order of voters does not matter', ['c', 'a', 'b'], { a: 5, b: 3, c: 1 }, 3],
    ['missing voter counts as 0', ['a', 'b', 'c'], { a: 5, b: 3 }, 3],
    ['two missing voters', ['a', 'b', 'c'], { a: 5 }, 0],
    ['ties', ['a', 'b', 'c'], { a: 4, b: 4, c: 4 }, 4],
    ['even voter count needs the upper half', ['a', 'b', 'c', 'd'], { a: 9, b: 8, c: 2, d: 1 }, 2],
    ['five voters', ['a', 'b', 'c', 'd', 'e'], { a: 10, b: 9, c: 8, d: 1, e: 0 }, 8],
    ['non-voters are not counted', ['a', 'b', 'c'], { a: 5, x: 9, y: 9, c: 0 }, 0],
  ];
  for (const [name, voters, match, want] of table) t.equal(quorumIndex(voters, match), want, name);
});

t.test('quorumIndex agrees with a naive count on 2,000 random cases (seed 20240601)', async (t) => {
  const seed = 20240601;
  const r = seededRandom(seed);
  // The highest k such that at least a majority of voters hold an index >= k.
  const naive = (voters: readonly string[], match: Record<string, number>): number => {
    if (voters.length === 0) return 0;
    const need = Math.floor(voters.length / 2) + 1;
    let best = 0;
    for (const k of [0, ...Object.values(match)]) {
      const holders = voters.filter((v) => (match[v] ?? 0) >= k).length;
      if (holders >= need && k > best) best = k;
    }
    return best;
  };
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const n = r.int(0, 8);
    const voters = Array.from({ length: n }, (_, k) => `v${k}`);
    const match: Record<string, number> = {};
    for (const v of voters) if (!r.chance(0.2)) match[v] = r.int(0, 20);
    if (r.chance(0.3)) match['learner'] = r.int(0, 40);
    const got = quorumIndex(voters, match);
    const want = naive(voters, match);
    if (got !== want) {
      mismatches++;
      t.equal(got, want, `seed ${seed} case ${i}: ${JSON.stringify({ voters, match })}`);
    }
  }
  t.equal(mismatches, 0, `seed ${seed}: quorumIndex === naive`);
});

t.test('tally', async (t) => {
  const abc = ['a', 'b', 'c'];
  const abcd = ['a', 'b', 'c', 'd'];
  const table: Array<[name: string, voters: string[], votes: Record<string, boolean>, want: ElectionResult]> = [
    ['no answers yet', abc, {}, 'pending'],
    ['own vote only', abc, { a: true }, 'pending'],
    ['one grant, one refusal', abc, { a: true, b: false }, 'pending'],
    ['majority granted', abc, { a: true, c: true }, 'won'],
    ['all granted', abc, { a: true, b: true, c: true }, 'won'],
    ['majority refused', abc, { a: true, b: false, c: false }, 'lost'],
    ['two of four is not a majority', abcd, { a: true, b: true }, 'pending'],
    ['three of four', abcd, { a: true, b: true, d: true }, 'won'],
    ['split 2/2 cannot win any more', abcd, { a: true, b: true, c: false, d: false }, 'lost'],
    ['votes from non-voters do not count', abc, { a: true, x: true, y: true }, 'pending'],
    ['refusals from non-voters do not count', abc, { a: true, b: true, x: false }, 'won'],
    ['single voter wins alone', ['a'], { a: true }, 'won'],
  ];
  for (const [name, voters, votes, want] of table) t.equal(tally(voters, votes), want, name);
});

t.test('hasQuorum', async (t) => {
  const abc = ['a', 'b', 'c'];
  const table: Array<[name: string, voters: string[], active: string[], want: boolean]> = [
    ['two of three', abc, ['a', 'c'], true],
    ['one of three', abc, ['a'], false],
    ['none', abc, [], false],
    ['all', abc, ['a', 'b', 'c'], true],
    ['learners do not count', abc, ['a', 'x', 'y'], false],
    ['two of four is not enough', ['a', 'b', 'c', 'd'], ['a', 'b'], false],
    ['three of five', ['a', 'b', 'c', 'd', 'e'], ['b', 'd', 'e'], true],
  ];
  for (const [name, voters, active, want] of table) t.equal(hasQuorum(voters, new Set(active)), want, name);
});
