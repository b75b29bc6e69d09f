/**
 * Membership math (machines/membership.ts): roles of a configuration, joint
 * quorums (Raft paper §6) checked against a naive count, and the change
 * planner's table (thesis §4: one voter at a time, joint for more, the
 * two-voter trap).
 */
import t from 'tap';
import { seededRandom } from '../../adapters/random.js';
import {
  allVoters,
  isCaughtUp,
  isMemberOf,
  isVoterIn,
  jointHasQuorum,
  jointQuorumIndex,
  jointTally,
  leaveJoint,
  membershipOf,
  NO_MEMBERSHIP,
  peersOf,
  planChange,
  type ChangePlan,
  type Membership,
  type MembershipChange,
} from '../../machines/membership.js';
import type { Configuration, Server } from '../../machines/types.js';

const v = (id: string): Server => ({ id, address: id, suffrage: 'voter' });
const l = (id: string, autoPromote = false): Server => (autoPromote ? { id, address: id, suffrage: 'learner', autoPromote } : { id, address: id, suffrage: 'learner' });
const cfg = (...servers: Server[]): Configuration => ({ servers });
const joint = (m: Membership['voters'], old: Membership['voters']): Membership => ({ voters: m, oldVoters: old, learners: [], staging: [] });

/** One line per plan: the resulting roles, or the refusal. */
function show(plan: ChangePlan): string {
  if ('refusal' in plan) return `refused ${plan.refusal}`;
  const roles = (servers: readonly Server[]): string =>
    servers.map((s) => `${s.id}:${s.suffrage === 'learner' ? (s.autoPromote === true ? 'L+' : 'L') : 'V'}`).join(' ');
  return plan.config.old === undefined ? roles(plan.config.servers) : `joint new[${roles(plan.config.servers)}] old[${roles(plan.config.old)}]`;
}

t.test('membershipOf sorts servers by role; joint keeps C_old voters', async (t) => {
  t.same(membershipOf(null), NO_MEMBERSHIP);
  t.same(membershipOf(cfg(v('a'), l('b'), l('c', true), { id: 'd', address: 'd' })), { voters: ['a', 'd'], oldVoters: null, learners: ['b', 'c'], staging: ['c'] });
  const j = membershipOf({ servers: [v('a'), v('d')], old: [v('a'), v('b'), l('x')] });
  t.same(j, { voters: ['a', 'd'], oldVoters: ['a', 'b'], learners: [], staging: [] });
  t.ok(isVoterIn(j, 'b'), 'a C_old voter votes while joint');
  t.ok(isVoterIn(j, 'd'));
  t.notOk(isVoterIn(j, 'x'), 'a C_old learner does not');
  t.notOk(isMemberOf(j, 'x'));
  t.same(peersOf(j, 'a'), ['d', 'b'], 'the leader replicates to both halves');
  t.same(allVoters(j), ['a', 'd', 'b']);
  t.same(allVoters(membershipOf(cfg(v('a'), l('b')))), ['a']);
  t.same(peersOf(membershipOf(cfg(v('a'), l('b'))), 'a'), ['b'], 'learners are peers');
  t.same(leaveJoint({ servers: [v('a')], old: [v('b')] }), { servers: [v('a')] });
  const plain = cfg(v('a'));
  t.equal(leaveJoint(plain), plain);
});

t.test('joint quorums need majorities of both halves', async (t) => {
  const single: Membership = { voters: ['a', 'b', 'c'], oldVoters: null, learners: [], staging: [] };
  const j = joint(['c', 'd', 'e'], ['a', 'b', 'c']);
  t.equal(jointQuorumIndex(single, { a: 5, b: 4, c: 1 }), 4);
  t.equal(jointQuorumIndex(j, { a: 9, b: 9, c: 9, d: 1, e: 0 }), 1, 'C_new holds only 1 by a majority');
  t.equal(jointQuorumIndex(j, { a: 9, b: 9, c: 2, d: 7, e: 7 }), 7, 'both halves hold 7');
  t.equal(jointTally(j, { a: true, b: true }), 'pending', 'C_old won, C_new not yet');
  t.equal(jointTally(j, { a: true, b: true, d: true, e: true }), 'won');
  t.equal(jointTally(j, { c: false, d: false }), 'lost', 'C_new lost');
  t.equal(jointTally(j, { a: false, b: false, d: true, e: true }), 'lost', 'C_old lost');
  t.equal(jointTally(single, { a: true, b: true }), 'won');
  t.ok(jointHasQuorum(j, new Set(['a', 'c', 'd'])));
  t.notOk(jointHasQuorum(j, new Set(['a', 'b', 'd'])), 'C_new has only d');
  t.ok(isCaughtUp(90, 100, 10));
  t.notOk(isCaughtUp(89, 100, 10));
});

t.test('jointQuorumIndex agrees with a naive two-majority count on 2,000 random cases (seed 4242)', async (t) => {
  const r = seededRandom(4242);
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const pickSet = (): string[] => ids.filter(() => r.chance(0.5));
  const holds = (voters: readonly string[], match: Record<string, number>, k: number): boolean =>
    voters.filter((id) => (match[id] ?? 0) >= k).length >= Math.floor(voters.length / 2) + 1;
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const voters = pickSet();
    const old = r.chance(0.5) ? pickSet() : null;
    // Configurations always hold a voter (validated on every path).
    if (voters.length === 0 || old?.length === 0) continue;
    const match: Record<string, number> = {};
    for (const id of ids) if (r.chance(0.8)) match[id] = r.int(0, 20);
    let naive = 0;
    for (let k = 1; k <= 20; k++) if (holds(voters, match, k) && (old === null || holds(old, match, k))) naive = k;
    const m: Membership = { voters, oldVoters: old, learners: [], staging: [] };
    if (jointQuorumIndex(m, match) !== naive) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('planChange: the table', async (t) => {
  const abc = cfg(v('a'), v('b'), v('c'));
  const ab = cfg(v('a'), v('b'));
  const withL = cfg(v('a'), v('b'), v('c'), l('l'));
  const withStaged = cfg(v('a'), v('b'), v('c'), l('s', true));
  const table: Array<[name: string, config: Configuration | null, change: MembershipChange, force: boolean, want: string]> = [
    ['addLearner', abc, { type: 'addLearner', server: v('d') }, false, 'a:V b:V c:V d:L'],
    ['addLearner of a voter', abc, { type: 'addLearner', server: v('a') }, false, 'refused alreadyVoter'],
    ['addLearner of a learner', withL, { type: 'addLearner', server: v('l') }, false, 'refused alreadyLearner'],
    ['addVoter joins as a staged learner', abc, { type: 'addVoter', server: v('d') }, false, 'a:V b:V c:V d:L+'],
    ['addVoter of a learner marks it for promotion', withL, { type: 'addVoter', server: v('l') }, false, 'a:V b:V c:V l:L+'],
    ['addVoter twice', withStaged, { type: 'addVoter', server: v('s') }, false, 'refused noChange'],
    ['addVoter of a voter', abc, { type: 'addVoter', server: v('b') }, false, 'refused alreadyVoter'],
    ['promote', withStaged, { type: 'promote', id: 's' }, false, 'a:V b:V c:V s:V'],
    ['promote a voter', abc, { type: 'promote', id: 'a' }, false, 'refused alreadyVoter'],
    ['promote a stranger', abc, { type: 'promote', id: 'z' }, false, 'refused notMember'],
    ['demoteVoter', abc, { type: 'demoteVoter', id: 'c' }, false, 'a:V b:V c:L'],
    ['demoteVoter of a learner', withL, { type: 'demoteVoter', id: 'l' }, false, 'refused notVoter'],
    ['removeServer of a voter', abc, { type: 'removeServer', id: 'b' }, false, 'a:V c:V'],
    ['removeServer of a learner', withL, { type: 'removeServer', id: 'l' }, false, 'a:V b:V c:V'],
    ['removeServer of a stranger', abc, { type: 'removeServer', id: 'z' }, false, 'refused notMember'],
    ['two-voter trap: remove', ab, { type: 'removeServer', id: 'b' }, false, 'refused twoVoters'],
    ['two-voter trap: demote', ab, { type: 'demoteVoter', id: 'a' }, false, 'refused twoVoters'],
    ['two-voter trap, forced', ab, { type: 'removeServer', id: 'b' }, true, 'a:V'],
    ['the last voter', cfg(v('a'), l('l')), { type: 'removeServer', id: 'a' }, true, 'refused lastVoter'],
    ['replace: one voter added is a plain change', abc, { type: 'replace', servers: [v('a'), v('b'), v('c'), v('d')] }, false, 'a:V b:V c:V d:V'],
    ['replace: learners only change', abc, { type: 'replace', servers: [v('a'), v('b'), v('c'), l('x'), l('y')] }, false, 'a:V b:V c:V x:L y:L'],
    [
      'replace: two voters swapped goes joint',
      abc,
      { type: 'replace', servers: [v('a'), v('d'), v('e')] },
      false,
      'joint new[a:V d:V e:V] old[a:V b:V c:V]',
    ],
    ['replace: no change', abc, { type: 'replace', servers: [v('a'), v('b'), v('c')] }, false, 'refused noChange'],
    ['replace: no voter', abc, { type: 'replace', servers: [l('a')] }, false, 'refused lastVoter'],
    ['replace: two to one', ab, { type: 'replace', servers: [v('a')] }, false, 'refused twoVoters'],
    ['anything while joint', { servers: [v('a')], old: [v('b')] }, { type: 'addLearner', server: v('x') }, false, 'refused changeInProgress'],
    ['addLearner on no configuration', null, { type: 'addLearner', server: v('x') }, false, 'x:L'],
  ];
  for (const [name, config, change, force, want] of table) t.equal(show(planChange(config, change, force)), want, name);
});

t.test('planChange never yields two voter sets more than one voter apart without a joint configuration (seed 77)', async (t) => {
  const r = seededRandom(77);
  const ids = ['a', 'b', 'c', 'd', 'e'];
  let checked = 0;
  for (let i = 0; i < 1000; i++) {
    const servers = ids.filter(() => r.chance(0.6)).map((id) => (r.chance(0.7) ? v(id) : l(id, r.chance(0.5))));
    const config = cfg(...servers);
    if (!servers.some((s) => s.suffrage === 'voter')) continue; // configurations always hold a voter
    const id = r.pick(ids);
    const kinds: MembershipChange[] = [
      { type: 'addLearner', server: v(id) },
      { type: 'addVoter', server: v(id) },
      { type: 'promote', id },
      { type: 'demoteVoter', id },
      { type: 'removeServer', id },
      { type: 'replace', servers: ids.filter(() => r.chance(0.6)).map((x) => (r.chance(0.7) ? v(x) : l(x))) },
    ];
    const plan = planChange(config, r.pick(kinds), r.chance(0.2));
    if ('refusal' in plan) continue;
    checked++;
    const before = membershipOf(config).voters;
    const after = membershipOf(plan.config);
    const diff = before.filter((x) => !after.voters.includes(x)).length + after.voters.filter((x) => !before.includes(x)).length;
    if (after.oldVoters === null && diff > 1) t.fail(`plain change moved ${diff} voters: ${show(plan)}`);
    if (after.oldVoters !== null) t.same(after.oldVoters, before, 'C_old is the previous configuration');
    t.ok(after.voters.length > 0, 'never without a voter');
  }
  t.ok(checked > 100, `${checked} accepted plans checked`);
});
