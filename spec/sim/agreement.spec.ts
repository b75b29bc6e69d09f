/**
 * Log agreement scenarios (Raft lab 2B, plus 2C's unreliable agreement), in
 * simulated time on the seeded cluster; the five safety invariants are
 * checked after every step by the harness. Each test names its seed.
 *
 * Indexes: index 1 is the bootstrap configuration entry and every new leader
 * appends a no-op (§8), so user entries start at 3 after the first election.
 */
import t from 'tap';
import { nodeInternals } from '../../actors/node.actor.js';
import type { AppendResponse, RaftMessage } from '../../machines/types.js';
import { SimCluster, type Ack } from './harness/cluster.js';

/** Applied user values of a node's current incarnation, in order. */
function appliedValues(sim: SimCluster, id: string): string[] {
  return (sim.applied.get(id) ?? []).map((a) => a.value);
}

/** Runs until every live node has applied what `id` has, then returns the common sequence. */
async function converge(sim: SimCluster, maxMs = 5000): Promise<string[]> {
  await sim.runUntil(
    () => {
      const lens = sim.up().map((id) => appliedValues(sim, id).length);
      return Math.min(...lens) === Math.max(...lens) && sim.minCommitIndex() === Math.max(...sim.up().map((id) => sim.stateOf(id).commitIndex));
    },
    maxMs,
    'every node applies the same number of entries',
  );
  return appliedValues(sim, sim.up()[0] as string);
}

/** Last log index of a live node. */
function lastIndex(sim: SimCluster, id: string): number {
  return nodeInternals(sim.nodes.get(id) as NonNullable<ReturnType<typeof sim.nodes.get>>).log.lastIndex();
}

/** Starts a proposal and returns a getter for its outcome (undefined while pending). */
function startProposal(sim: SimCluster, value: string, id: string): () => Ack | Error | undefined {
  let out: Ack | Error | undefined;
  void sim.propose(value, id).then((r) => {
    out = r;
  });
  return () => out;
}

const REQUESTS = new Set<RaftMessage['type']>(['vote', 'preVote', 'append', 'heartbeat']);

t.test('basic agreement (§5.3): sequential proposals commit at consecutive indexes, and every node applies the same values in order [seed 201]', async (t) => {
  const sim = new SimCluster({ seed: 201, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  const values = Array.from({ length: 10 }, (_, i) => `a${i}`);
  const indexes: number[] = [];
  for (const v of values) {
    t.equal(sim.committedOn((indexes.at(-1) ?? 2) + 1, v), 0, `${v} is not committed anywhere before it is proposed`);
    indexes.push(await sim.one(v, 3));
  }
  t.equal(indexes[0], 3, 'the first user entry follows the bootstrap config (1) and the leader no-op (2)');
  t.same(
    indexes,
    indexes.map((_, i) => (indexes[0] as number) + i),
    'indexes are consecutive, in proposal order',
  );
  await converge(sim);
  for (const id of sim.ids) {
    t.same(appliedValues(sim, id), values, `${id} applied exactly the proposals, in order`);
    t.same(
      (sim.applied.get(id) ?? []).map((a) => a.index),
      indexes,
      `${id} applied them at the indexes the leader returned`,
    );
  }
});

t.test('agreement despite one disconnected follower, which catches up on reconnect [seed 202]', async (t) => {
  const sim = new SimCluster({ seed: 202, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = (await sim.waitLeader()).id;
  await sim.one('b101', 3);
  const follower = sim.ids.find((id) => id !== leader) as string;
  sim.network.disconnect(follower);
  const missed: number[] = [];
  for (const v of ['b102', 'b103']) missed.push(await sim.one(v, 2));
  await sim.run(300);
  for (const v of ['b104', 'b105']) missed.push(await sim.one(v, 2));
  t.equal(sim.leader()?.id, leader, 'the leader kept its majority');
  for (const index of missed) t.equal(sim.valueAt(follower, index), undefined, `the disconnected ${follower} lacks index ${index}`);

  sim.network.connect(follower);
  await sim.one('b106', 3);
  await sim.one('b107', 3);
  const all = await converge(sim);
  t.same(all, ['b101', 'b102', 'b103', 'b104', 'b105', 'b106', 'b107'], 'the agreed values');
  t.same(appliedValues(sim, follower), all, `${follower} caught up and applied every value in order`);
});

t.test('no commit without a majority: with 3 of 5 followers cut off a proposal does not commit in 2 s; after the heal the logs agree on it either way [seed 203]', async (t) => {
  const sim = new SimCluster({ seed: 203, size: 5 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = (await sim.waitLeader()).id;
  await sim.one('c10', 5);
  const followers = sim.ids.filter((id) => id !== leader);
  const cut = followers.slice(0, 3);
  for (const id of cut) sim.network.disconnect(id);
  const index = lastIndex(sim, leader) + 1;
  const outcome = startProposal(sim, 'c20', leader);
  await sim.runUntil(() => lastIndex(sim, leader) === index, 100, 'the leader appends c20');
  t.equal(sim.valueAt(leader, index), 'c20', `the leader holds c20 at ${index}`);
  await sim.always(2000, () => sim.committedOn(index, 'c20') === 0, 'c20 is committed nowhere');
  t.pass('c20 was committed nowhere for 2 s');
  t.ok(!(outcome() !== undefined && !(outcome() instanceof Error)), 'and c20 was never acknowledged');

  for (const id of cut) sim.network.connect(id);
  const at = await sim.one('c30', 5);
  t.ok(at > index, `c30 commits on all five after the heal (at ${at})`);
  await converge(sim);
  const there = sim.ids.map((id) => sim.valueAt(id, index));
  t.ok(
    there.every((v) => v === there[0]),
    `every node holds the same entry at ${index} (c20 committed or replaced consistently: ${String(there[0])})`,
  );
  const outcomeNow = outcome();
  if (outcomeNow !== undefined && !(outcomeNow instanceof Error)) t.equal(there[0], 'c20', 'an acknowledged c20 is the one kept');
  sim.assertAcksDurable();
});

t.test('50 concurrent proposals commit at 50 distinct consecutive indexes, applied identically everywhere [seed 204]', async (t) => {
  const sim = new SimCluster({ seed: 204, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = (await sim.waitLeader()).id;
  const values = Array.from({ length: 50 }, (_, i) => `d${i}`);
  const outcomes = values.map((v) => startProposal(sim, v, leader));
  await sim.runUntil(() => outcomes.every((o) => o() !== undefined), 5000, 'all 50 proposals settle');
  const acks = outcomes.map((o) => o()).filter((a): a is Ack => a !== undefined && !(a instanceof Error));
  t.equal(acks.length, 50, 'all 50 acknowledged');
  const indexes = acks.map((a) => a.index).sort((a, b) => a - b);
  t.equal(new Set(indexes).size, 50, 'at distinct indexes');
  t.equal((indexes.at(-1) as number) - (indexes[0] as number), 49, 'consecutive');
  const all = await converge(sim);
  t.same([...all].sort(), [...values].sort(), 'every value applied exactly once');
  for (const id of sim.ids) t.same(appliedValues(sim, id), all, `${id} applied the same sequence`);
  for (const a of acks) t.equal(all[a.index - (indexes[0] as number)], a.value, `${a.value} applied at its acknowledged index ${a.index}`);
});

t.test("a partitioned old leader's uncommitted entries never commit and are overwritten everywhere after the heal (lab 2B Rejoin) [seed 205]", async (t) => {
  const sim = new SimCluster({ seed: 205, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader1 = (await sim.waitLeader()).id;
  await sim.one('e101', 3);
  sim.network.disconnect(leader1);
  const old = ['e102-old', 'e103-old', 'e104-old'];
  const oldOutcomes = old.map((v) => startProposal(sim, v, leader1));
  const firstOld = lastIndex(sim, leader1) + 1;
  await sim.runUntil(() => lastIndex(sim, leader1) === firstOld + 2, 100, 'the old leader appends its three proposals');
  old.forEach((v, i) => t.equal(sim.valueAt(leader1, firstOld + i), v, `the cut-off leader accepted ${v} at ${firstOld + i}`));

  const others = sim.ids.filter((id) => id !== leader1);
  const leader2 = (await sim.waitLeaderAmong(others, 3000)).id;
  const fresh = ['e103', 'e104', 'e105'];
  for (const v of fresh) await sim.one(v, 2);
  t.ok(oldOutcomes.every((o) => o() instanceof Error), 'the old proposals failed (the old leader stepped down)');

  // Lab Rejoin: the new leader goes away, the old one comes back and must take the majority's log.
  sim.network.disconnect(leader2);
  sim.network.connect(leader1);
  await sim.one('e106', 2);
  sim.network.connect(leader2);
  await sim.one('e107', 3);
  const all = await converge(sim);
  t.same(all, ['e101', ...fresh, 'e106', 'e107'], 'the agreed values');
  for (const id of sim.ids) {
    const log = nodeInternals(sim.nodes.get(id) as NonNullable<ReturnType<typeof sim.nodes.get>>).log;
    const held: string[] = [];
    for (let i = 1; i <= log.lastIndex(); i++) {
      const v = sim.valueAt(id, i);
      if (v !== undefined) held.push(v);
    }
    for (const v of old) t.notOk(held.includes(v), `${id}: ${v} is gone`);
    t.same(held, all, `${id}: its log holds exactly the agreed values`);
  }
  t.notOk(sim.acks.some((a) => old.includes(a.value)), 'no old proposal was ever acknowledged');
  sim.assertAcksDurable();
});

t.test('backup (lab 2B Backup): divergent logs of 50 entries are repaired, with at most 10 refused appends per follower and catch-up phase (fast backtracking, §5.3) [seed 206]', async (t) => {
  const sim = new SimCluster({ seed: 206, size: 5 });
  t.teardown(() => sim.stop());
  const refusals = new Map<string, number>();
  sim.onSend((_, messages) => {
    for (const m of messages) {
      if (m.type === 'appendResponse' && !(m as AppendResponse).success) refusals.set(m.from, (refusals.get(m.from) ?? 0) + 1);
    }
  });
  const countRefusals = (): Map<string, number> => {
    const copy = new Map(refusals);
    refusals.clear();
    return copy;
  };
  await sim.start();
  await sim.waitLeader();
  let n = 0;
  const value = (): string => `f${n++}`;
  await sim.one(value(), 5);
  const ids = sim.ids;
  const at = (i: number): string => ids[((i % 5) + 5) % 5] as string;

  // Leader and one follower apart from the three others; 50 proposals that cannot commit.
  const leader1 = ids.indexOf((sim.leader() as NonNullable<ReturnType<typeof sim.leader>>).id);
  for (const k of [2, 3, 4]) sim.network.disconnect(at(leader1 + k));
  const stranded1 = Array.from({ length: 50 }, () => startProposal(sim, value(), at(leader1)));
  await sim.run(150);
  for (const k of [0, 1]) sim.network.disconnect(at(leader1 + k));
  for (const k of [2, 3, 4]) sim.network.connect(at(leader1 + k));
  // The other three commit 50.
  for (let i = 0; i < 50; i++) await sim.one(value(), 3);
  t.ok(stranded1.every((o) => !(o() !== undefined && !(o() instanceof Error))), 'none of the first stranded 50 was acknowledged');

  // Now that group's leader and one follower are stranded with 50 more.
  const leader2 = ids.indexOf((sim.leader() as NonNullable<ReturnType<typeof sim.leader>>).id);
  let other = (leader1 + 2) % 5;
  if (leader2 === other) other = (leader2 + 1) % 5;
  sim.network.disconnect(at(other));
  const stranded2 = Array.from({ length: 50 }, () => startProposal(sim, value(), at(leader2)));
  await sim.run(150);

  // The original leader's pair and `other` form a majority; the pair's 50 stale entries must go.
  for (let i = 0; i < 5; i++) sim.network.disconnect(at(i));
  for (const i of [leader1, leader1 + 1, other]) sim.network.connect(at(i));
  countRefusals();
  for (let i = 0; i < 50; i++) await sim.one(value(), 3);
  const phase1 = countRefusals();

  // Everyone: leader2's pair has 50 stale entries of its own.
  for (let i = 0; i < 5; i++) sim.network.connect(at(i));
  await sim.one(value(), 5);
  const final = await converge(sim);
  const phase2 = countRefusals();
  t.ok(stranded2.every((o) => !(o() !== undefined && !(o() instanceof Error))), 'none of the second stranded 50 was acknowledged');
  t.comment(`refused appends, first catch-up: ${JSON.stringify(Object.fromEntries(phase1))}; final catch-up: ${JSON.stringify(Object.fromEntries(phase2))}`);
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  // The first catch-up probes inside the stale suffix, so it must backtrack; the final one starts probing in the shared prefix (0 refusals at this seed).
  t.ok(sum(phase1) > 0, `the first catch-up had to backtrack over the stale entries (${sum(phase1)} refusals)`);
  for (const [phase, counts] of [['first', phase1], ['final', phase2]] as const) {
    for (const [id, count] of counts) t.ok(count <= 10, `${phase} catch-up: ${id} refused ${count} appends (≤ 10)`);
  }
  t.equal(final.length, 1 + 50 + 50 + 1, 'every node applied the 102 committed values');
  for (const id of ids) t.same(appliedValues(sim, id), final, `${id} applied the same sequence`);
  sim.assertAcksDurable();
});

t.test('message counts (lab 2B Count), an RPC being a request (vote, preVote, append, heartbeat) whose response is not counted, as the lab counts them: election ≤ 30 messages in all; 11 proposals committed everywhere ≤ 42 RPCs, issued back to back or one after another; ≤ 60 RPCs per idle second; all messages ≤ 2× the RPC bounds [seed 207]', async (t) => {
  const sim = new SimCluster({ seed: 207, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  sim.network.resetStats();
  const requests = (): number => {
    const byType = sim.network.stats().byType;
    let n = 0;
    for (const [type, count] of Object.entries(byType)) if (REQUESTS.has(type as RaftMessage['type'])) n += count;
    return n;
  };
  const leader = (await sim.waitLeader()).id;
  await sim.runUntil(
    () => sim.ids.every((id) => sim.stateOf(id).leaderId === leader && sim.stateOf(id).term === sim.stateOf(leader).term),
    1000,
    'every node follows the leader',
  );
  const election = sim.network.stats().sent;
  t.ok(election <= 30, `the election took ${election} messages, requests and responses (≤ 30)`);
  const everywhere = (index: number): Promise<void> =>
    sim.runUntil(() => sim.ids.every((id) => sim.stateOf(id).commitIndex >= index), 1000, `index ${index} committed on all three`);

  // As the lab does it: 11 proposals started back to back, then wait until all three have committed them.
  sim.network.resetStats();
  const outcomes = Array.from({ length: 11 }, (_, i) => startProposal(sim, `g${i}`, leader));
  await sim.runUntil(() => outcomes.every((o) => o() !== undefined), 1000, 'the 11 proposals settle');
  const acks = outcomes.map((o) => o()).filter((a): a is Ack => a !== undefined && !(a instanceof Error));
  t.equal(acks.length, 11, 'all 11 acknowledged');
  await everywhere(Math.max(...acks.map((a) => a.index)));
  let rpcs = requests();
  let total = sim.network.stats().sent;
  t.ok(rpcs <= 42, `11 back-to-back proposals took ${rpcs} RPCs (≤ 42) ${JSON.stringify(sim.network.stats().byType)}`);
  t.ok(total <= 84, `and ${total} messages in all (≤ 84)`);

  // One after another: each proposal waits for its acknowledgement (commit at the leader) before the next.
  sim.network.resetStats();
  let last = 0;
  for (let i = 0; i < 11; i++) {
    const ack = await sim.commit(`s${i}`);
    if (ack instanceof Error) t.fail(`s${i}: ${ack.message}`);
    else last = ack.index;
  }
  await everywhere(last);
  rpcs = requests();
  total = sim.network.stats().sent;
  t.ok(rpcs <= 42, `11 proposals one after another took ${rpcs} RPCs (≤ 42) ${JSON.stringify(sim.network.stats().byType)}`);
  t.ok(total <= 84, `and ${total} messages in all (≤ 84)`);

  sim.network.resetStats();
  await sim.run(1000);
  const idle = requests();
  const idleTotal = sim.network.stats().sent;
  t.ok(idle <= 60, `an idle second took ${idle} RPCs (≤ 60)`);
  t.ok(idleTotal <= 120, `and ${idleTotal} messages in all (≤ 120)`);
  t.equal(sim.leader()?.id, leader, 'no leader change while counting');
});

t.test('agreement on an unreliable network (drops, delays, reordering, duplicates): 50 proposals all commit and every node applies the same sequence (lab 2C UnreliableAgree) [seed 208]', async (t) => {
  const sim = new SimCluster({ seed: 208, size: 5 });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  sim.network.setUnreliable(true, { dropRate: 0.1, duplicateRate: 0.05, maxDelayMs: 30, longDelayRate: 0.02, longDelayMs: 300 });
  const values = Array.from({ length: 50 }, (_, i) => `h${i}`);
  const acked = new Map<string, Ack>();
  // Five clients, ten values each; a failed or timed-out proposal is retried at whoever leads.
  const pending = new Set(values);
  let inflight = 0;
  const launch = (v: string): void => {
    inflight++;
    void sim.propose(v, undefined, 1000).then((r) => {
      inflight--;
      if (r instanceof Error) sim.clock.setTimeout(() => launch(v), 20);
      else {
        acked.set(v, r);
        pending.delete(v);
      }
    });
  };
  for (const v of values.slice(0, 5)) launch(v);
  let next = 5;
  await sim.runUntil(
    () => {
      while (inflight < 5 && next < values.length) launch(values[next++] as string);
      return pending.size === 0;
    },
    60_000,
    'all 50 proposals acknowledged',
  );
  t.equal(acked.size, 50, 'all 50 values acknowledged');
  const stats = sim.network.stats();
  t.ok(stats.dropped > 0 && stats.duplicated > 0, `the network dropped ${stats.dropped} and duplicated ${stats.duplicated} messages`);
  sim.network.setUnreliable(false);
  await sim.one('h-final', 5);
  const all = await converge(sim);
  for (const v of values) t.ok(all.includes(v), `${v} applied`);
  for (const id of sim.ids) t.same(appliedValues(sim, id), all, `${id} applied the same sequence`);
  sim.assertAcksDurable();
});
