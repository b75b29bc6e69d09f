/**
 * Linearizable reads (thesis §6.4) in simulated time on the seeded cluster:
 * read index on the leader and on followers, batching of concurrent reads into
 * one heartbeat round, deposed leaders, lease reads, barriers. The five safety
 * invariants are checked after every step by the harness, and every read that
 * resolves is checked against the writes acknowledged before it began.
 */
import t from 'tap';
import type { RaftEvent } from '../../actors/node.actor.js';
import type { RaftMessage } from '../../machines/types.js';
import { SimCluster, type ReadResult } from './harness/cluster.js';

/** Starts a read and returns a getter for its outcome (undefined while pending). */
function startRead(sim: SimCluster, id: string, timeoutMs?: number): () => ReadResult | Error | undefined {
  let out: ReadResult | Error | undefined;
  void sim.read(id, timeoutMs).then((r) => {
    out = r;
  });
  return () => out;
}

/** Heartbeats sent by `from` (with their rounds) and readIndex requests, from now on. */
function watch(sim: SimCluster, from?: string): { heartbeats: RaftMessage[]; readIndex: RaftMessage[]; stop: () => void } {
  const heartbeats: RaftMessage[] = [];
  const readIndex: RaftMessage[] = [];
  const stop = sim.onSend((sender, messages) => {
    for (const m of messages) {
      if (m.type === 'heartbeat' && (from === undefined || sender === from)) heartbeats.push(m);
      if (m.type === 'readIndex') readIndex.push(m);
    }
  });
  return { heartbeats, readIndex, stop };
}

const rounds = (heartbeats: readonly RaftMessage[]): number[] => [
  ...new Set(heartbeats.map((m) => (m.type === 'heartbeat' ? (m.round ?? -1) : -1))),
];

/** Runs until `from` sends a periodic heartbeat, so the next one is a heartbeat interval away. */
async function afterHeartbeat(sim: SimCluster, from: string): Promise<void> {
  let seen = false;
  const stop = sim.onSend((sender, messages) => {
    if (sender === from && messages.some((m) => m.type === 'heartbeat')) seen = true;
  });
  await sim.runUntil(() => seen, 1000, `a heartbeat from ${from}`);
  stop();
}

t.test('§6.4 fifty concurrent reads on the leader share one heartbeat round [seed 401]', async (t) => {
  const sim = new SimCluster({ seed: 401, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = (await sim.waitLeader()).id;
  await sim.one('r1', 3);
  await afterHeartbeat(sim, leader);
  const w = watch(sim, leader);
  const outcomes = Array.from({ length: 50 }, () => startRead(sim, leader));
  await sim.runUntil(() => outcomes.every((o) => o() !== undefined), 1000, 'all 50 reads settle');
  w.stop();
  const results = outcomes.map((o) => o());
  t.ok(results.every((r) => r !== undefined && !(r instanceof Error)), 'all 50 resolved');
  t.same(rounds(w.heartbeats).length, 1, `one heartbeat round for all of them (rounds ${rounds(w.heartbeats).join(',')})`);
  t.equal(w.heartbeats.length, 2, 'two heartbeats: one per follower');
  t.ok(sim.clock.now() > 0 && results.every((r) => !(r instanceof Error) && r !== undefined && r.index >= 3), 'each resolved at or past r1');

  // Reads issued one by one while a round is in flight wait for the next round, together.
  await afterHeartbeat(sim, leader);
  const w2 = watch(sim, leader);
  const first = startRead(sim, leader);
  const later: (() => ReadResult | Error | undefined)[] = [];
  for (let i = 0; i < 5; i++) {
    await sim.step();
    later.push(startRead(sim, leader));
  }
  await sim.runUntil(() => first() !== undefined && later.every((o) => o() !== undefined), 1000, 'the reads settle');
  w2.stop();
  t.ok(rounds(w2.heartbeats).length <= 2, `six reads in six turns took ${rounds(w2.heartbeats).length} rounds, not six`);
  sim.assertNoStaleReads();
});

t.test('§6.4 a read never returns state older than a write acknowledged before it began, on any node [seed 402]', async (t) => {
  const sim = new SimCluster({ seed: 402, size: 5 });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  const w = watch(sim);
  let laggingFollowerReads = 0;
  let followerReads = 0;
  for (let i = 0; i < 20; i++) {
    const ack = await sim.commit(`w${i}`);
    if (ack instanceof Error) {
      await sim.waitLeader();
      continue;
    }
    const id = sim.ids[i % sim.ids.length] as string;
    const leader = sim.leader()?.id;
    const node = sim.nodes.get(id);
    if (node === undefined) continue;
    if (id !== leader) {
      followerReads++;
      if (node.status().appliedIndex < ack.index) laggingFollowerReads++;
    }
    const out = startRead(sim, id);
    await sim.runUntil(() => out() !== undefined, 2000, `read ${i} at ${id}`);
    const r = out();
    t.ok(r !== undefined && !(r instanceof Error), `read ${i} at ${id} resolved`);
    if (r !== undefined && !(r instanceof Error)) {
      t.ok(r.index >= ack.index && r.applied >= ack.index, `read ${i} at ${id}: index ${r.index}, applied ${r.applied} >= w${i}@${ack.index}`);
    }
  }
  w.stop();
  sim.assertNoStaleReads();
  t.equal(sim.staleReads.length, 0, 'no stale read');
  t.ok(followerReads >= 10, `${followerReads} reads on followers`);
  t.ok(laggingFollowerReads >= 5, `${laggingFollowerReads} of them began before the follower had applied the write (a local read would be stale)`);
  t.ok(w.readIndex.length >= followerReads, `followers asked the leader (${w.readIndex.length} readIndex requests)`);
});

t.test('§6.4 a read on a follower with no leader fails with NotLeaderError; on a stopped node with ShutdownError [seed 403]', async (t) => {
  const sim = new SimCluster({ seed: 403, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = (await sim.waitLeader()).id;
  const follower = sim.ids.find((id) => id !== leader) as string;
  await sim.one('x', 3);
  await sim.crash(leader);
  await sim.runUntil(() => sim.stateOf(follower).leaderId === null, 2000, `${follower} forgets the leader`);
  if (sim.stateOf(follower).role === 'leader') t.fail('expected no leader yet');
  const out = startRead(sim, follower);
  await sim.runUntil(() => out() !== undefined, 100, 'the read settles');
  t.match(out(), { code: 'NOT_LEADER', leaderId: null }, 'no leader known');
  const node = sim.nodes.get(follower);
  const pending = t.rejects(node?.readIndex({ timeoutMs: 10_000 }) as Promise<number>, { code: 'SHUTDOWN' }, 'a pending read rejects on stop');
  await sim.crash(follower);
  await pending;
  await t.rejects(node?.readIndex() as Promise<number>, { code: 'SHUTDOWN' }, 'and a new one at once');
});

for (const checkQuorum of [true, false]) {
  t.test(`§6.4 a partitioned old leader (checkQuorum ${checkQuorum}) never answers a read while the majority commits new writes [seed 404]`, async (t) => {
    const sim = new SimCluster({ seed: 404, size: 5, node: { checkQuorum } });
    t.teardown(() => sim.stop());
    await sim.start();
    const old = (await sim.waitLeader()).id;
    await sim.one('before', 5);
    sim.network.partition([old], sim.ids.filter((id) => id !== old));
    const reads = [startRead(sim, old, 3000)];
    const others = sim.ids.filter((id) => id !== old);
    const fresh = (await sim.waitLeaderAmong(others, 3000)).id;
    for (let i = 0; i < 5; i++) {
      await sim.one(`after${i}`, 4);
      reads.push(startRead(sim, old, 3000));
    }
    t.not(fresh, old);
    await sim.runUntil(() => reads.every((r) => r() !== undefined), 5000, 'the old leader settles its reads');
    const outcomes = reads.map((r) => r());
    t.ok(outcomes.every((o) => o instanceof Error), `every read at the old leader failed: ${outcomes.map((o) => (o instanceof Error ? (o as Error & { code?: string }).code : 'RESOLVED')).join(',')}`);
    t.ok(
      outcomes.every((o) => o instanceof Error && ['TIMEOUT', 'NOT_LEADER'].includes((o as Error & { code?: string }).code ?? '')),
      checkQuorum ? 'it stepped down or timed out' : 'it still thinks it leads, and times out',
    );
    sim.assertNoStaleReads();

    sim.network.heal();
    await sim.runUntil(() => sim.stateOf(old).leaderId === sim.leader()?.id && sim.stateOf(old).role === 'follower', 3000, 'the old leader follows');
    const r = await (async () => {
      const o = startRead(sim, old);
      await sim.runUntil(() => o() !== undefined, 2000, 'read after heal');
      return o();
    })();
    t.ok(r !== undefined && !(r instanceof Error), 'after the heal it serves reads again, as a follower');
    sim.assertNoStaleReads();
  });
}

t.test('§6.4.1 lease reads: served without a heartbeat round; after the lease expires, refused or timed out [seed 405]', async (t) => {
  const sim = new SimCluster({ seed: 405, size: 3, node: { readMode: 'lease' } });
  t.teardown(() => sim.stop());
  await sim.start();
  const leaderNode = await sim.waitLeader();
  const leader = leaderNode.id;
  const events: RaftEvent[] = [];
  const sub = leaderNode.events$.subscribe((e) => events.push(e));
  await sim.one('l1', 3);
  await sim.run(60); // a heartbeat round answered: the lease is held
  const w = watch(sim, leader);
  const lease = startRead(sim, leader);
  await sim.runUntil(() => lease() !== undefined, 100, 'lease read');
  t.ok(!(lease() instanceof Error), 'the read resolved');
  t.same(w.heartbeats, [], 'without any heartbeat');
  w.stop();

  // Cut the leader off: the lease runs out, then reads fail; the majority moves on.
  sim.network.partition([leader], sim.ids.filter((id) => id !== leader));
  const cutAt = sim.clock.now();
  const during: (() => ReadResult | Error | undefined)[] = [];
  const others = sim.ids.filter((id) => id !== leader);
  let writes = 0;
  // Reads at the old leader every 10 ms while the majority elects a leader and commits writes as soon as it can.
  while (sim.clock.now() < cutAt + 600) {
    during.push(startRead(sim, leader, 500));
    const fresh = sim.leaderAmong(others);
    if (fresh !== null) {
      void sim.propose(`l2-${writes++}`, fresh.id);
    }
    await sim.run(10);
  }
  t.ok(sim.acks.some((a) => a.value.startsWith('l2-')), 'the majority acknowledged writes while the old leader was asked to read');
  await sim.runUntil(() => during.every((o) => o() !== undefined), 2000, 'the reads settle');
  const served = during.filter((o) => !(o() instanceof Error)).length;
  t.ok(served >= 1 && served < during.length, `${served} of ${during.length} reads served within the lease, the rest refused`);
  t.ok(
    events.some((e) => e.type === 'readLeaseExpired'),
    'the lease expiry was observed on events$',
  );
  sub.unsubscribe();
  sim.assertNoStaleReads();
});

t.test('lease mode requires checkQuorum: a ConfigurationError naming readMode [seed 406]', async (t) => {
  const sim = new SimCluster({ seed: 406, size: 1, node: { readMode: 'lease', checkQuorum: false } });
  await t.rejects(sim.start(), { code: 'CONFIGURATION', option: 'readMode', message: /checkQuorum/ });
});

t.test('barrier: resolves once everything appended before it is applied on the leader; refused on a follower [seed 407]', async (t) => {
  const sim = new SimCluster({ seed: 407, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leaderNode = await sim.waitLeader();
  const leader = leaderNode.id;
  for (let i = 0; i < 5; i++) void sim.propose(`b${i}`);
  let barrier: number | Error | undefined;
  void leaderNode.barrier().then(
    (i) => {
      barrier = i;
      t.equal(
        (sim.applied.get(leader) ?? []).map((a) => a.value).join(','),
        'b0,b1,b2,b3,b4',
        'at resolution, the five proposals made before it are applied',
      );
    },
    (e: Error) => {
      barrier = e;
    },
  );
  await sim.runUntil(() => barrier !== undefined, 2000, 'the barrier');
  t.type(barrier, 'number');
  t.equal(barrier, 7, 'its index is the last of them (config 1, no-op 2, b0..b4 at 3..7)');
  const follower = sim.ids.find((id) => id !== leader) as string;
  await t.rejects(sim.nodes.get(follower)?.barrier() as Promise<number>, { code: 'NOT_LEADER' });
  await t.rejects(leaderNode.barrier({ timeoutMs: 0 }), { code: 'CONFIGURATION' });
});
