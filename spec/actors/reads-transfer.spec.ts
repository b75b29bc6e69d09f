/**
 * The node actor's read, barrier and transfer API at its edges: option and
 * argument validation, a single-voter cluster, shutdown. Simulated time,
 * nothing sleeps.
 */
import t from 'tap';
import { nodeInternals } from '../../actors/node.actor.js';
import { resolveOptions, type RaftNodeOptions } from '../../actors/options.js';
import { ConfigurationError } from '../../errors.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { MemoryNetwork } from '../../adapters/transport/memory.js';
import { SimCluster } from '../sim/harness/cluster.js';

const base = (): RaftNodeOptions => {
  const network = new MemoryNetwork();
  return { id: 'n1', stateMachine: { apply: () => undefined }, storage: new MemoryStorage(), transport: network.transport('n1') };
};

t.test('readMode is validated, naming the option', async (t) => {
  t.equal(resolveOptions(base()).readMode, 'readIndex', 'default');
  t.equal(resolveOptions({ ...base(), readMode: 'lease' }).readMode, 'lease', 'lease with checkQuorum (the default)');
  t.throws(() => resolveOptions({ ...base(), readMode: 'lease', checkQuorum: false }), { name: 'ConfigurationError', option: 'readMode', message: /requires checkQuorum: true/ });
  t.throws(() => resolveOptions({ ...base(), readMode: 'stale' as 'lease' }), { option: 'readMode', message: /must be 'readIndex' or 'lease'/ });
  const error = new ConfigurationError('readMode', 'x');
  t.equal(error.code, 'CONFIGURATION');
});

t.test('a single-voter cluster: reads, barrier, transfer refusal, graceful stop [seed 601]', async (t) => {
  const sim = new SimCluster({ seed: 601, size: 1 });
  t.teardown(() => sim.stop());
  await sim.start();
  const node = await sim.waitLeader();
  await sim.commit('one');
  let read: number | Error | undefined;
  void node.readIndex().then((i) => {
    read = i;
  });
  let barrier: number | Error | undefined;
  void sim.propose('two');
  void node.barrier().then((i) => {
    barrier = i;
  });
  await sim.runUntil(() => read !== undefined && barrier !== undefined, 100, 'read and barrier');
  t.equal(read, 3, 'the read index is the commit index (config, no-op, one)');
  t.equal(barrier, 4, 'the barrier covers the proposal made before it');
  t.same((sim.applied.get('n1') ?? []).map((a) => a.value), ['one', 'two']);

  await t.rejects(node.readIndex({ timeoutMs: 0 }), { code: 'CONFIGURATION', option: 'readIndex(options.timeoutMs)' });
  await t.rejects(node.barrier({ timeoutMs: 1.5 }), { code: 'CONFIGURATION', option: 'barrier(options.timeoutMs)' });
  await t.rejects(node.transferLeadership('n1', { timeoutMs: -1 }), { code: 'CONFIGURATION', option: 'transferLeadership(options.timeoutMs)' });
  let transfer: Error | undefined;
  void node.transferLeadership().catch((e: Error) => {
    transfer = e;
  });
  await sim.runUntil(() => transfer !== undefined, 10, 'the transfer settles');
  t.match(transfer, { code: 'CONFIGURATION', message: /no other voter/ }, 'no one to hand over to');

  await sim.stopGracefully('n1');
  t.notOk(sim.nodes.has('n1'), 'a graceful stop with no one to hand over to is a plain stop');
  await t.rejects(node.readIndex(), { code: 'SHUTDOWN' });
  await t.rejects(node.barrier(), { code: 'SHUTDOWN' });
  await t.rejects(node.transferLeadership(), { code: 'SHUTDOWN' });
});

t.test('a read times out with TimeoutError when the leader cannot reach a quorum; timed-out follower reads are forgotten [seed 602]', async (t) => {
  const sim = new SimCluster({ seed: 602, size: 3, node: { checkQuorum: false } });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.one('x', 3);
  for (const id of sim.ids) if (id !== leader.id) sim.network.disconnect(id);
  let out: number | Error | undefined;
  const started = sim.clock.now();
  void leader.readIndex({ timeoutMs: 250 }).then(
    (i) => {
      out = i;
    },
    (e: Error) => {
      out = e;
    },
  );

  // A follower cut off from its leader (which it still knows): its forwarded reads time out and are forgotten.
  const follower = sim.ids.find((id) => id !== leader.id) as string;
  const node = sim.nodes.get(follower) as NonNullable<ReturnType<typeof sim.nodes.get>>;
  t.equal(sim.stateOf(follower).leaderId, leader.id);
  const errors: Error[] = [];
  for (let i = 0; i < 3; i++) {
    void node.readIndex({ timeoutMs: 50 }).catch((e: Error) => {
      errors.push(e);
    });
    await sim.run(5);
  }
  t.equal(nodeInternals(node).pendingReadBatches(), 3, 'three batches forwarded, unanswered');
  await sim.runUntil(() => errors.length === 3, 500, 'the follower reads settle');
  t.ok(errors.every((e) => (e as Error & { code?: string }).code === 'TIMEOUT'), 'they time out');
  t.equal(nodeInternals(node).pendingReadBatches(), 0, 'no batch left behind');

  await sim.runUntil(() => out !== undefined, 1000, 'the leader read settles');
  t.match(out, { code: 'TIMEOUT' });
  t.equal(sim.clock.now() - started, 250, 'after exactly its timeout');
  t.equal(sim.stateOf(leader.id).role, 'leader', 'it still believes it leads');
});
