/**
 * Membership changes (thesis §4, Raft paper §6) in simulated time on the
 * seeded cluster: learners caught up and promoted (never while they lag),
 * removals under partitions and crashes, removing the leader, joint consensus
 * with crashes mid-change, one change at a time, the two-voter trap, a removed
 * node that cannot disrupt, bootstrap on existing state and the offline
 * recoverCluster. The five safety invariants are checked after every step by
 * the harness (Election Safety per term holds across configurations).
 */
import t from 'tap';
import { nodeInternals, type MembershipResult, type RaftEvent, type RaftNode } from '../../actors/node.actor.js';
import { recoverCluster } from '../../actors/recover.js';
import { resolveOptions, type RaftNodeOptions } from '../../actors/options.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { MemoryNetwork } from '../../adapters/transport/memory.js';
import { MembershipError } from '../../errors.js';
import { checkKv, type KvOp, type PutOp } from '../support/linearizability.js';
import { SimCluster } from './harness/cluster.js';

const baseOptions = (): RaftNodeOptions => ({
  id: 'n1',
  stateMachine: { apply: () => undefined },
  storage: new MemoryStorage(),
  transport: new MemoryNetwork().transport('n1'),
});
const lastIndex = (sim: SimCluster, id: string): number => nodeInternals(sim.nodes.get(id) as RaftNode<string>).log.lastIndex();
const isResult = (r: MembershipResult | Error): r is MembershipResult => !(r instanceof Error);

/** Waits until `id` is a voter in the configuration of every live member. */
async function waitVoter(sim: SimCluster, id: string, maxMs = 5000): Promise<void> {
  await sim.runUntil(() => sim.membership().voters.includes(id), maxMs, `${id} becomes a voter`);
}

t.test('§4.2.1 addVoter: a new server joins as a learner, catches up, and the leader promotes it [seed 701]', async (t) => {
  const sim = new SimCluster({ seed: 701, size: 4, bootstrapped: 3, node: { promotionThreshold: 8 } });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  for (let i = 0; i < 40; i++) void sim.propose(`a${i}`, leader.id);
  await sim.run(300);
  const events: RaftEvent[] = [];
  const sub = leader.events$.subscribe((e) => events.push(e));
  let lagAtPromotion: number | null = null;
  const sub2 = leader.events$.subscribe((e) => {
    if (e.type === 'learnerPromoted' && e.id === 'n4') lagAtPromotion = lastIndex(sim, leader.id) - lastIndex(sim, 'n4');
  });
  t.same(sim.nodes.get('n4')?.status().voters, [], 'n4 starts with no configuration');
  const added = await sim.change((l) => l.addVoter('n4', 'n4'));
  t.ok(isResult(added), 'addVoter resolves once the learner entry commits');
  t.same(leader.status().learners, ['n4'], 'n4 is a learner first');
  t.ok('n4' in leader.status().replicas, 'the leader tracks the learner as a replica');
  await waitVoter(sim, 'n4');
  t.same(leader.status().voters.slice().sort(), ['n1', 'n2', 'n3', 'n4'], 'n4 was promoted');
  t.not(lagAtPromotion, null, 'the promotion was observed');
  t.ok((lagAtPromotion ?? 99) <= 8, `n4 was within the threshold when promoted (lag ${String(lagAtPromotion)})`);
  const kinds = events.map((e) => (('id' in e) ? `${e.type}:${e.id}` : e.type)).filter((k) => !k.startsWith('roleChanged') && !k.startsWith('leaderChanged'));
  t.same(kinds, ['membershipChanged', 'peerAdded:n4', 'membershipChanged', 'learnerPromoted:n4'], 'observed on events$');
  sub.unsubscribe();
  sub2.unsubscribe();
  await sim.one('after', 4);
  sim.assertAcksDurable();
});

t.test('promotion never happens while the learner lags [seed 702]', async (t) => {
  const sim = new SimCluster({ seed: 702, size: 4, bootstrapped: 3, node: { promotionThreshold: 4 } });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('x', 3);
  sim.network.disconnect('n4');
  const added = await sim.change((l) => l.addVoter('n4', 'n4'));
  t.ok(isResult(added), 'the learner is added while unreachable (it does not count towards commitment)');
  // A steady stream of writes that the cut-off learner cannot follow.
  for (let i = 0; i < 20; i++) {
    for (let k = 0; k < 3; k++) void sim.propose(`w${i}-${k}`, leader.id);
    await sim.always(100, () => !leader.status().voters.includes('n4'), 'n4 is not promoted while it lags');
  }
  t.same(leader.status().learners, ['n4'], 'still a learner after 2 s of lagging');
  sim.network.connect('n4');
  await waitVoter(sim, 'n4');
  const lag = lastIndex(sim, leader.id) - lastIndex(sim, 'n4');
  t.ok(lag <= 4, `promoted once caught up (lag ${lag})`);
  await sim.one('after', 4);
});

t.test('addLearner never votes in quorums; removeServer of a learner; one change at a time [seed 703]', async (t) => {
  const sim = new SimCluster({ seed: 703, size: 4, bootstrapped: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('x', 3);
  // Two changes in one turn: the second is refused while the first is uncommitted.
  let first: MembershipResult | Error | undefined;
  let second: MembershipResult | Error | undefined;
  leader.addLearner('n4', 'n4').then((r) => (first = r), (e: Error) => (first = e));
  leader.removeServer('n3').then((r) => (second = r), (e: Error) => (second = e));
  await sim.runUntil(() => first !== undefined && second !== undefined, 2000, 'both requests settle');
  t.ok(first !== undefined && isResult(first), 'the first change is accepted');
  t.type(second, MembershipError);
  t.match(second, { code: 'MEMBERSHIP', reason: 'changeInProgress' }, 'the second is refused: one change at a time');
  t.match(await sim.change((l) => l.addLearner('n4', 'n4')), { reason: 'alreadyLearner' });
  t.match(await sim.change((l) => l.addLearner('n1', 'n1')), { reason: 'alreadyVoter' });
  t.match(await sim.change((l) => l.demoteVoter('n4')), { reason: 'notVoter' });
  t.match(await sim.change((l) => l.removeServer('n9')), { reason: 'notMember' });
  t.match(await sim.change((l) => l.addVoter('', 'x')), { code: 'CONFIGURATION', option: 'addVoter(id)' });
  t.match(await sim.change((l) => l.addLearner('n5', 5 as unknown as string)), { code: 'CONFIGURATION', option: 'addLearner(address)' });
  t.match(await sim.change((l) => l.removeServer('n2', { timeoutMs: 0 })), { code: 'CONFIGURATION' });
  const follower = sim.nodes.get(sim.ids.find((id) => id !== leader.id && id !== 'n4') as string) as RaftNode<string>;
  await t.rejects(follower.addVoter('n5', 'n5'), { code: 'NOT_LEADER', leaderId: leader.id }, 'a follower refuses and names the leader');

  // With a learner and two voters cut off, nothing commits: the learner does not count.
  const others = sim.ids.filter((id) => id !== leader.id && id !== 'n4');
  for (const id of others) sim.network.disconnect(id);
  const stuck = await sim.commit('stuck', 600);
  t.type(stuck, Error, 'a learner is no substitute for a voter');
  for (const id of others) sim.network.connect(id);
  await sim.waitLeader();
  await sim.one('z', 3);
  const removed = await sim.change((l) => l.removeServer('n4'));
  t.ok(isResult(removed), 'the learner is removed');
  t.same(sim.membership().learners, [], 'no learner left');
  await sim.one('y', 3);
});

t.test('removing a follower under a partition: the removed node cannot disrupt the cluster [seed 704]', async (t) => {
  for (const preVote of [true, false]) {
    const sim = new SimCluster({ seed: 704, size: 4, node: { preVote } });
    await sim.start();
    const leader = await sim.waitLeader();
    await sim.one('before', 4);
    const victim = sim.ids.find((id) => id !== leader.id) as string;
    // The victim is cut off before the removal, so it never learns it and keeps campaigning.
    sim.network.disconnect(victim);
    const removed = await sim.change((l) => l.removeServer(victim));
    t.ok(isResult(removed), `preVote=${preVote}: removal commits without the victim`);
    await sim.run(2000);
    sim.network.connect(victim);
    const rest = sim.ids.filter((id) => id !== victim);
    const terms = rest.map((id) => sim.stateOf(id).term);
    await sim.always(3000, () => sim.leader()?.id === leader.id && rest.every((id, k) => sim.stateOf(id).term === terms[k]), 'the leader and the terms of the remaining cluster stay put');
    t.pass(`preVote=${preVote}: the cluster was not disrupted by the removed node (its term ${sim.stateOf(victim).term})`);
    t.notOk(sim.nodes.get(victim)?.status().role === 'leader', 'the removed node never leads');
    await sim.one('after', 3);
    await sim.stop();
  }
});

t.test('removing the leader: it commits the change, hands over with timeoutNow and steps down for good [seed 705]', async (t) => {
  const sim = new SimCluster({ seed: 705, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('before', 3);
  const events: RaftEvent[] = [];
  const sub = leader.events$.subscribe((e) => events.push(e));
  let timeoutNowTo: string | null = null;
  const off = sim.onSend((from, messages) => {
    for (const m of messages) if (from === leader.id && m.type === 'timeoutNow') timeoutNowTo = m.to;
  });
  const removed = await sim.change((l) => l.removeServer(l.id));
  off();
  t.ok(isResult(removed), 'the removal resolves');
  const rest = sim.ids.filter((id) => id !== leader.id);
  const next = await sim.waitLeaderAmong(rest, 2000);
  t.ok(rest.includes(next.id), `a remaining voter leads (${next.id})`);
  t.not(timeoutNowTo, null, 'the old leader handed over with timeoutNow');
  t.equal(leader.status().role, 'follower', 'the old leader stepped down');
  t.ok(events.some((e) => e.type === 'transferStarted'), 'the hand-over is observed as a transfer');
  sub.unsubscribe();
  const term = next.status().term;
  await sim.always(2000, () => leader.status().role === 'follower' && sim.leader()?.id === next.id, 'the removed leader never campaigns again');
  t.equal(next.status().term, term, 'no election since');
  await sim.one('after', 2);
  sim.assertAcksDurableOn(rest);
});

t.test('the two-voter trap is refused unless forced; the last voter cannot go [seed 706]', async (t) => {
  const sim = new SimCluster({ seed: 706, size: 2 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('x', 2);
  const other = sim.ids.find((id) => id !== leader.id) as string;
  const refused = await sim.change((l) => l.removeServer(other));
  t.match(refused, { code: 'MEMBERSHIP', reason: 'twoVoters', message: /add a third voter first/ });
  t.match(await sim.change((l) => l.demoteVoter(l.id)), { reason: 'twoVoters' });
  const forced = await sim.change((l) => l.removeServer(other, { force: true }));
  t.ok(isResult(forced), 'forced, the removal goes through');
  t.same(leader.status().voters, [leader.id]);
  t.match(await sim.change((l) => l.removeServer(l.id)), { reason: 'lastVoter' });
  t.match(await sim.change((l) => l.demoteVoter(l.id)), { reason: 'lastVoter' });
  t.match(await sim.change((l) => l.changeMembership([{ id: l.id, address: l.id, suffrage: 'learner' }, { id: 'z', address: 'z', suffrage: 'learner' }])), {
    code: 'CONFIGURATION',
  });
  await sim.one('alone', 1);
});

t.test('a new leader refuses changes until it has committed an entry of its own term [seed 707]', async (t) => {
  const sim = new SimCluster({ seed: 707, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  // Catch the moment a node becomes leader, before its no-op commits.
  let asked = false;
  let early: MembershipResult | Error | undefined;
  for (const node of sim.nodes.values()) {
    node.role$.subscribe((role) => {
      if (role !== 'leader' || asked) return;
      asked = true;
      // Called from inside the node's own observer: the request is answered once the actor is free.
      node.addLearner('n9', 'n9').then((r) => (early = r), (e: Error) => (early = e));
    });
  }
  await sim.waitLeader();
  await sim.runUntil(() => early !== undefined, 100, 'the early request settles');
  t.ok(asked, 'a change was requested at the moment of election');
  t.match(early, { code: 'MEMBERSHIP', reason: 'leaderNotReady', message: /has not committed an entry of term/ });
  await sim.one('x', 3);
  t.ok(isResult(await sim.change((l) => l.addLearner('n9', 'n9'))), 'accepted once the no-op committed');
});

t.test('§6 joint consensus: three voters replaced by three others through C_old,new, left automatically [seed 708]', async (t) => {
  const sim = new SimCluster({ seed: 708, size: 6, bootstrapped: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('old', 3);
  const keep = leader.id;
  const target = [keep, 'n4', 'n5'].map((id) => ({ id, address: id }));
  // Let the new servers catch up as learners first (the recommended way), then swap voters at once.
  for (const id of ['n4', 'n5']) t.ok(isResult(await sim.change((l) => l.addLearner(id, id))), `${id} added as learner`);
  let sawJoint = false;
  const sub = leader.events$.subscribe((e) => {
    if (e.type === 'membershipChanged' && e.oldVoters !== null) sawJoint = true;
  });
  const done = await sim.change((l) => l.changeMembership(target));
  sub.unsubscribe();
  t.ok(isResult(done), 'changeMembership resolves once C_new commits');
  t.ok(sawJoint, 'the leader went through a joint configuration');
  t.same(sim.membership(), { voters: [keep, 'n4', 'n5'].sort(), learners: [], oldVoters: null, index: sim.membership().index }, 'C_new is in effect');
  if (isResult(done)) t.equal(done.configuration.old, undefined, 'the result is C_new');
  // The old voters are gone: with them cut off the new configuration still commits.
  for (const id of ['n1', 'n2', 'n3'].filter((id) => id !== keep)) sim.network.disconnect(id);
  await sim.one('new', 3);
  sim.assertAcksDurableOn([keep, 'n4', 'n5']);
});

t.test('§6 joint consensus with crashes mid-change: the cluster ends in C_old or C_new, never stuck in between [seeds 709-716]', async (t) => {
  let endedNew = 0;
  let endedOld = 0;
  for (let seed = 709; seed <= 716; seed++) {
    const sim = new SimCluster({ seed, size: 5, bootstrapped: 3 });
    await sim.start();
    const leader = await sim.waitLeader();
    await sim.one('old', 3);
    for (const id of ['n4', 'n5']) await sim.change((l) => l.addLearner(id, id));
    const others = ['n1', 'n2', 'n3'].filter((id) => id !== leader.id);
    const target = [others[0] as string, 'n4', 'n5'].map((id) => ({ id, address: id }));
    // Crash the leader at a seed-chosen moment after the joint entry was appended.
    void leader.changeMembership(target).catch(() => undefined);
    await sim.run(sim.random.int(0, 40));
    await sim.crash(leader.id);
    if (sim.random.chance(0.5)) {
      await sim.run(sim.random.int(0, 200));
      await sim.crash(others[1] as string);
      await sim.run(300);
      await sim.restart(others[1] as string);
    }
    await sim.run(1000);
    await sim.restart(leader.id);
    await sim.waitLeader(10_000);
    await sim.runUntil(() => sim.membership().oldVoters === null, 5000, `seed ${seed}: the joint configuration is left`);
    const m = sim.membership();
    const isNew = m.voters.join() === [others[0] as string, 'n4', 'n5'].sort().join();
    const isOld = m.voters.join() === ['n1', 'n2', 'n3'].join();
    t.ok(isNew || isOld, `seed ${seed}: ended in ${isNew ? 'C_new' : isOld ? 'C_old' : `something else: ${m.voters.join()}`}`);
    if (isNew) endedNew++;
    if (isOld) endedOld++;
    const voters = m.voters;
    await sim.one(`after-${seed}`, voters.length);
    sim.assertAcksDurableOn(voters.filter((id) => sim.nodes.has(id)));
    await sim.stop();
  }
  t.ok(endedNew + endedOld === 8, `outcomes: ${endedNew} C_new, ${endedOld} C_old`);
});

t.test('add and remove under partitions and crashes keep every acknowledged write [seeds 720-727]', async (t) => {
  for (let seed = 720; seed <= 727; seed++) {
    const sim = new SimCluster({ seed, size: 5, bootstrapped: 3, node: { promotionThreshold: 16 } });
    await sim.start();
    const r = sim.random.fork();
    await sim.waitLeader();
    let writes = 0;
    let changes = 0;
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 3; i++) void sim.propose(`s${seed}-${writes++}`);
      const leader = sim.leader();
      if (leader !== null) {
        const m = sim.membership();
        const outsider = sim.ids.find((id) => !m.voters.includes(id) && !m.learners.includes(id));
        let op: Promise<MembershipResult> | null = null;
        if (m.voters.length > 3 && r.chance(0.5)) op = leader.removeServer(r.pick(m.voters));
        else if (m.learners.length > 0 && r.chance(0.3)) op = leader.removeServer(r.pick(m.learners));
        else if (outsider !== undefined) op = leader.addVoter(outsider, outsider);
        if (op !== null) {
          changes++;
          void op.catch(() => undefined);
        }
      }
      const fault = r.int(0, 3);
      if (fault === 0) {
        const shuffled = [...sim.ids].sort(() => r.next() - 0.5);
        sim.network.partition(shuffled.slice(0, 2), shuffled.slice(2));
      } else if (fault === 1) {
        await sim.crash(r.pick(sim.ids));
      } else {
        sim.network.heal();
        for (const id of sim.ids) await sim.restart(id);
      }
      await sim.run(r.int(100, 400));
    }
    sim.network.heal();
    for (const id of sim.ids) await sim.restart(id);
    await sim.waitLeader(10_000);
    await sim.runUntil(() => sim.membership().oldVoters === null, 5000, 'no joint configuration left');
    const voters = sim.membership().voters;
    await sim.one(`final-${seed}`, voters.length, 15_000);
    const target = Math.max(0, ...sim.acks.map((a) => a.index));
    await sim.runUntil(() => sim.minCommitIndexOf(voters) >= target, 10_000, 'voters converge');
    sim.assertAcksDurableOn(voters);
    t.ok(changes > 0, `seed ${seed}: ${changes} membership changes, ${sim.acks.length} acks, voters ${voters.join(',')}`);
    await sim.stop();
  }
});

t.test('bootstrap refuses a node that already has state (ErrCantBootstrap) [seed 730]', async (t) => {
  const sim = new SimCluster({ seed: 730, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  const node = sim.nodes.get('n1') as RaftNode<string>;
  await t.rejects(node.bootstrap([{ id: 'n1', address: 'n1' }]), { code: 'CONFIGURATION', option: 'bootstrap', message: /already has state/ });
  await sim.crash('n2');
  await sim.restart('n2');
  await t.rejects((sim.nodes.get('n2') as RaftNode<string>).bootstrap([{ id: 'n2', address: 'n2' }]), { code: 'CONFIGURATION' }, 'also after a restart');
});

t.test('recoverCluster rewrites the configuration of a stopped survivor after quorum loss (unsafe, offline) [seed 731]', async (t) => {
  const sim = new SimCluster({ seed: 731, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('before', 3);
  const survivor = leader.id;
  const lost = sim.ids.filter((id) => id !== survivor);
  for (const id of lost) await sim.crash(id);
  t.type(await sim.commit('no quorum', 600), Error, 'without a quorum nothing commits');
  await sim.crash(survivor);
  const storage = sim.storages.get(survivor);
  if (storage === undefined) throw new Error('no storage');
  await t.rejects(recoverCluster(storage, []), { code: 'CONFIGURATION', option: 'recoverCluster(servers)' });
  // The simulated storage syncs on the simulated clock: run it while the recovery writes.
  let result: Awaited<ReturnType<typeof recoverCluster>> | undefined;
  void recoverCluster(storage, [{ id: survivor, address: survivor }]).then((r) => (result = r));
  for (let i = 0; i < 1000 && result === undefined; i++) await sim.step();
  if (result === undefined) throw new Error('unreachable');
  t.ok(result.index > 0 && result.term > 0, `a configuration entry was written at ${result.index} (term ${result.term})`);
  await sim.restart(survivor);
  const node = await sim.waitLeaderAmong([survivor], 3000);
  t.equal(node.id, survivor, 'the survivor leads the recovered one-voter cluster');
  t.same(node.status().voters, [survivor]);
  await sim.one('after', 1);
  sim.assertAcksDurableOn([survivor]);
});

t.test('client histories of reads and writes under membership changes and faults are linearizable (per-key checker) [seeds 740-743]', async (t) => {
  const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
  for (let seed = 740; seed <= 743; seed++) {
    const sim = new SimCluster({ seed, size: 5, bootstrapped: 3, latencyMs: [1, 8], node: { promotionThreshold: 32 } });
    await sim.start();
    const r = sim.random.fork();
    await sim.waitLeader();
    type Mutable<T> = { -readonly [K in keyof T]: T[K] };
    const history: Mutable<KvOp>[] = [];
    let n = 0;
    let reads = 0;
    let changes = 0;
    /** The register values a node's state machine holds: its applied `put|key|value` entries folded. */
    const stateOf = (id: string): Map<string, string> => {
      const m = new Map<string, string>();
      for (const a of sim.applied.get(id) ?? []) {
        const [op, key, value] = a.value.split('|');
        if (op === 'put' && key !== undefined && value !== undefined) m.set(key, value);
      }
      return m;
    };
    const end = sim.clock.now() + 3000;
    while (sim.clock.now() < end) {
      const leader = sim.leader();
      // Writes at the leader; an error that proves the entry was never appended drops the op, any other leaves its outcome unknown.
      for (let i = r.int(0, 3); i > 0 && leader !== null; i--) {
        const op: Mutable<KvOp> = { f: 'put', key: r.pick(keys), value: `${seed}-${n++}`, call: sim.clock.now(), return: Infinity, client: `w${n}` };
        history.push(op);
        void sim.propose(`put|${op.key}|${(op as PutOp).value}`, leader.id, 1500).then((res) => {
          if (!(res instanceof Error)) op.return = sim.clock.now();
          else if ((res as { code?: string }).code === 'NOT_LEADER' || (res as { code?: string }).code === 'LEADERSHIP_TRANSFER') history.splice(history.indexOf(op), 1);
        });
      }
      // Linearizable reads at any live node: readIndex, then the local state machine.
      if (r.chance(0.5)) {
        const id = r.pick(sim.up());
        const node = sim.nodes.get(id) as RaftNode<string>;
        const key = r.pick(keys);
        const call = sim.clock.now();
        node.readIndex({ timeoutMs: 1000 }).then(
          () => {
            reads++;
            history.push({ f: 'get', key, call, return: sim.clock.now(), result: stateOf(id).get(key) ?? null, client: `r${reads}` });
          },
          () => undefined,
        );
      }
      if (leader !== null && r.chance(0.08)) {
        changes++;
        const m = leader.status();
        const outsider = sim.ids.find((id) => !m.voters.includes(id) && !m.learners.includes(id));
        const op = m.voters.length > 3 && r.chance(0.5) ? leader.removeServer(r.pick(m.voters)) : outsider !== undefined ? leader.addVoter(outsider, outsider) : leader.removeServer(r.pick(m.voters));
        void op.catch(() => undefined);
      }
      if (r.chance(0.15)) {
        const pick = r.int(0, 4);
        if (pick === 0) sim.network.partition(...((): [string[], string[]] => {
          const shuffled = [...sim.ids].sort(() => r.next() - 0.5);
          return [shuffled.slice(0, 2), shuffled.slice(2)];
        })());
        else if (pick === 1) sim.network.heal();
        else if (pick === 2) await sim.crash(r.pick(sim.ids));
        else for (const id of sim.ids) await sim.restart(id);
      }
      await sim.run(r.int(20, 80));
    }
    sim.network.heal();
    for (const id of sim.ids) await sim.restart(id);
    await sim.run(2000);
    const result = checkKv(history, { timeoutMs: 20_000 });
    t.ok(result.ok, `seed ${seed}: ${history.length} operations (${reads} reads, ${changes} membership changes) are linearizable${result.ok ? '' : `: ${result.explanation}`}`);
    t.ok(reads > 10, `seed ${seed}: reads resolved (${reads})`);
    await sim.stop();
  }
});

t.test('membership API edges: options, a stopped node, recoverCluster on an empty store [seed 750]', async (t) => {
  t.throws(() => resolveOptions({ ...baseOptions(), promotionThreshold: -1 }), { code: 'CONFIGURATION', option: 'promotionThreshold' });
  t.equal(resolveOptions(baseOptions()).promotionThreshold, 1024, 'default threshold');
  await t.rejects(recoverCluster(new MemoryStorage(), [{ id: 'n1', address: 'n1' }]), { code: 'CONFIGURATION', option: 'recoverCluster(storage)', message: /bootstrap/ });
  const sim = new SimCluster({ seed: 750, size: 3 });
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('x', 3);
  t.match(await sim.change((l) => l.removeServer('n2', { force: 'yes' as unknown as boolean })), { code: 'CONFIGURATION', option: 'removeServer(options.force)' });
  t.match(await sim.change((l) => l.changeMembership([])), { code: 'CONFIGURATION', option: 'changeMembership(servers)' });
  t.match(await sim.change((l) => l.changeMembership(sim.ids.map((id) => ({ id, address: id })))), { reason: 'noChange' });
  // A transfer under way blocks membership changes.
  const other = sim.ids.find((id) => id !== leader.id) as string;
  sim.network.disconnect(other);
  void leader.transferLeadership(other).catch(() => undefined);
  t.match(await sim.change((l) => l.addLearner('n9', 'n9')), { reason: 'transferInProgress' });
  sim.network.connect(other);
  await sim.stop();
  await t.rejects(leader.addVoter('n5', 'n5'), { code: 'SHUTDOWN' });
  t.equal(new MembershipError('noChange', 'x').code, 'MEMBERSHIP');
});

t.test('a server added with addVoter is promoted by the next leader when the one that added it crashes [seed 760]', async (t) => {
  const sim = new SimCluster({ seed: 760, size: 4, bootstrapped: 3, node: { promotionThreshold: 8 } });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('x', 3);
  // The new server is cut off, so it cannot be promoted before the leader dies.
  sim.network.disconnect('n4');
  t.ok(isResult(await sim.change((l) => l.addVoter('n4', 'n4'))), 'n4 added as a staged learner');
  await sim.crash(leader.id);
  sim.network.connect('n4');
  const next = await sim.waitLeaderAmong(sim.ids.filter((id) => id !== leader.id && id !== 'n4'), 3000);
  t.ok(next.status().learners.includes('n4'), `the new leader ${next.id} knows n4 as a learner`);
  await waitVoter(sim, 'n4');
  t.ok(next.status().voters.includes('n4'), 'and promotes it: the autoPromote mark lives in the configuration entry');
  await sim.restart(leader.id);
  await sim.one('after', 4);
});
