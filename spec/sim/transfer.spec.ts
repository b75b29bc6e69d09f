/**
 * Leadership transfer (thesis §3.10) in simulated time on the seeded cluster:
 * catch-up before `timeoutNow`, proposals refused meanwhile, abort on timeout,
 * graceful stop of a leader. The five safety invariants are checked after
 * every step by the harness.
 */
import t from 'tap';
import { nodeInternals, type RaftEvent, type RaftNode } from '../../actors/node.actor.js';
import { SimCluster, type Ack } from './harness/cluster.js';

/** Starts a transfer and returns a getter for its outcome: 'done', the error, or undefined while pending. */
function startTransfer(node: RaftNode<string>, id?: string | null, timeoutMs?: number): () => 'done' | Error | undefined {
  let out: 'done' | Error | undefined;
  node.transferLeadership(id, timeoutMs === undefined ? undefined : { timeoutMs }).then(
    () => {
      out = 'done';
    },
    (e: unknown) => {
      out = e instanceof Error ? e : new Error(String(e));
    },
  );
  return () => out;
}

function startProposal(sim: SimCluster, value: string, id: string): () => Ack | Error | undefined {
  let out: Ack | Error | undefined;
  void sim.propose(value, id).then((r) => {
    out = r;
  });
  return () => out;
}

const lastIndex = (sim: SimCluster, id: string): number => nodeInternals(sim.nodes.get(id) as RaftNode<string>).log.lastIndex();
const types = (events: readonly RaftEvent[]): string[] =>
  events.filter((e) => e.type.startsWith('transfer')).map((e) => ('target' in e ? `${e.type}:${e.target}${'reason' in e ? `:${e.reason}` : ''}` : e.type));

t.test('§3.10 transfer to a lagging follower catches it up before timeoutNow, and it becomes leader [seed 501]', async (t) => {
  const sim = new SimCluster({ seed: 501, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leaderNode = await sim.waitLeader();
  const leader = leaderNode.id;
  const target = sim.ids.find((id) => id !== leader) as string;
  const events: RaftEvent[] = [];
  const sub = leaderNode.events$.subscribe((e) => events.push(e));
  await sim.one('t0', 3);
  sim.network.disconnect(target);
  for (let i = 1; i <= 30; i++) void sim.propose(`t${i}`, leader);
  await sim.run(200);
  t.ok(lastIndex(sim, target) < lastIndex(sim, leader), `${target} lags (${lastIndex(sim, target)} < ${lastIndex(sim, leader)})`);
  sim.network.connect(target);

  let targetLastAtTimeoutNow: number | null = null;
  let leaderLastAtTimeoutNow: number | null = null;
  const stop = sim.onSend((from, messages) => {
    if (from === leader && messages.some((m) => m.type === 'timeoutNow' && m.to === target)) {
      targetLastAtTimeoutNow = lastIndex(sim, target);
      leaderLastAtTimeoutNow = lastIndex(sim, leader);
    }
  });
  const outcome = startTransfer(leaderNode, target);
  const refused = startProposal(sim, 'during', leader);
  await sim.runUntil(() => outcome() !== undefined, 2000, 'the transfer settles');
  stop();
  t.equal(outcome(), 'done', 'the transfer resolved');
  t.equal(sim.leader()?.id, target, `${target} leads`);
  t.not(targetLastAtTimeoutNow, null, 'timeoutNow was sent');
  t.equal(targetLastAtTimeoutNow, leaderLastAtTimeoutNow, `the target held the whole log (${String(leaderLastAtTimeoutNow)}) when told to campaign`);
  await sim.runUntil(() => refused() !== undefined, 100, 'the proposal made during the transfer settles');
  t.match(refused(), { code: 'LEADERSHIP_TRANSFER', targetId: target }, 'a proposal during the transfer was refused with the typed error');
  t.same(types(events), [`transferStarted:${target}`, `transferCompleted:${target}`], 'observed on events$');
  sub.unsubscribe();
  const after = await sim.one('after', 3);
  t.ok(after > 0, 'the new leader commits');
  sim.assertAcksDurable();
});

t.test('§3.10 transfer to a cut-off target times out; the old leader then accepts proposals again [seed 502]', async (t) => {
  const sim = new SimCluster({ seed: 502, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leaderNode = await sim.waitLeader();
  const leader = leaderNode.id;
  const target = sim.ids.find((id) => id !== leader) as string;
  const events: RaftEvent[] = [];
  const sub = leaderNode.events$.subscribe((e) => events.push(e));
  await sim.one('c0', 3);
  sim.network.disconnect(target);
  const startedAt = sim.clock.now();
  const outcome = startTransfer(leaderNode, target);
  const refused: (() => Ack | Error | undefined)[] = [];
  while (outcome() === undefined && sim.clock.now() < startedAt + 1000) {
    refused.push(startProposal(sim, `refused${refused.length}`, leader));
    await sim.run(25);
  }
  const took = sim.clock.now() - startedAt;
  t.match(outcome(), { code: 'TIMEOUT' }, 'the transfer rejected with a TimeoutError');
  t.ok(took >= 300 && took <= 325, `after one maximum election timeout (300 ms; took ${took})`);
  await sim.runUntil(() => refused.every((r) => r() !== undefined), 200, 'the refused proposals settle');
  t.ok(refused.length >= 10, `${refused.length} proposals made during the transfer`);
  t.ok(
    refused.every((r) => (r() as Error & { code?: string }).code === 'LEADERSHIP_TRANSFER'),
    'every one refused with LeadershipTransferError',
  );
  t.equal(sim.leader()?.id, leader, 'the old leader still leads');
  const ack = await sim.commit('accepted-again', 2000, leader);
  t.notOk(ack instanceof Error, 'and accepts proposals again');
  t.same(types(events), [`transferStarted:${target}`, `transferAborted:${target}:timeout`], 'observed on events$');
  t.ok(sim.acks.every((a) => !a.value.startsWith('refused')), 'no refused proposal was ever acknowledged');
  sub.unsubscribe();
  sim.network.connect(target);
  await sim.one('healed', 3);
  sim.assertAcksDurable();
});

t.test('§3.10 transfer without a target picks the most up-to-date voter; bad requests are refused with typed errors [seed 503]', async (t) => {
  const sim = new SimCluster({ seed: 503, size: 5 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leaderNode = await sim.waitLeader();
  const leader = leaderNode.id;
  await sim.one('p0', 5);
  const followers = sim.ids.filter((id) => id !== leader);
  // Three followers fall behind; the fourth keeps up.
  const [ahead, ...behind] = followers as [string, ...string[]];
  for (const id of behind) sim.network.disconnect(id);
  for (let i = 0; i < 5; i++) void sim.propose(`p${i + 1}`, leader);
  await sim.run(100);
  for (const id of behind) sim.network.connect(id);

  const follower = sim.nodes.get(ahead) as RaftNode<string>;
  await t.rejects(follower.transferLeadership(), { code: 'NOT_LEADER' }, 'a follower refuses');
  const self = startTransfer(leaderNode, leader);
  const stranger = startTransfer(leaderNode, 'n99');
  await sim.run(1);
  t.match(self(), { code: 'CONFIGURATION', option: 'transferLeadership(id)' }, 'to itself: refused');
  t.match(stranger(), { code: 'CONFIGURATION', message: /not a voter/ }, 'to a non-member: refused');
  await t.rejects(leaderNode.transferLeadership(42 as unknown as string), { code: 'CONFIGURATION' }, 'a bad id: refused');

  const outcome = startTransfer(leaderNode, null);
  const second = startTransfer(leaderNode, ahead);
  await sim.run(1);
  t.match(second(), { code: 'LEADERSHIP_TRANSFER' }, 'a second transfer is refused while one runs');
  await sim.runUntil(() => outcome() !== undefined, 2000, 'the transfer settles');
  t.equal(outcome(), 'done', 'the transfer resolved');
  t.equal(sim.leader()?.id, ahead, `the most up-to-date voter (${ahead}) took over`);
  sim.assertAcksDurable();
});

t.test('stop({ transferLeadership: true }) hands leadership over before the node stops [seed 504]', async (t) => {
  const sim = new SimCluster({ seed: 504, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = (await sim.waitLeader()).id;
  await sim.one('s0', 3);
  for (let i = 1; i <= 10; i++) void sim.propose(`s${i}`, leader);
  const stoppedAt = sim.clock.now();
  let newLeaderAt: number | null = null;
  const others = sim.ids.filter((id) => id !== leader);
  const watching = sim.onSend(() => {
    if (newLeaderAt === null && sim.leaderAmong(others) !== null) newLeaderAt = sim.clock.now();
  });
  await sim.stopGracefully(leader);
  watching();
  t.notOk(sim.nodes.has(leader), 'the old leader stopped');
  const next = sim.leaderAmong(others);
  t.ok(next !== null, 'a new leader was elected by the time stop() returned');
  t.ok(newLeaderAt !== null && newLeaderAt - stoppedAt < 150, `within ${String(newLeaderAt === null ? null : newLeaderAt - stoppedAt)} ms: no election timeout waited`);
  await sim.one('s-after', 2);
  sim.assertAcksDurable();

  // A follower's graceful stop is an ordinary stop.
  const follower = others.find((id) => id !== next?.id) as string;
  await sim.stopGracefully(follower);
  t.notOk(sim.nodes.has(follower));
});
