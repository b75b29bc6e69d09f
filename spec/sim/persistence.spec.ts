/**
 * Persistence scenarios (Raft lab 2C): crashes that lose unsynced writes,
 * restarts over what was durable, and churn under concurrent clients, in
 * simulated time on the seeded cluster; the five safety invariants are
 * checked after every step by the harness. Each test names its seed.
 */
import t from 'tap';
import { nodeInternals } from '../../actors/node.actor.js';
import type { MemoryStorage } from '../../adapters/storage/memory.js';
import { SimCluster } from './harness/cluster.js';

/** Applied user values of a node's current incarnation, in order. */
function appliedValues(sim: SimCluster, id: string): string[] {
  return (sim.applied.get(id) ?? []).map((a) => a.value);
}

function logOf(sim: SimCluster, id: string): ReturnType<typeof nodeInternals>['log'] {
  const node = sim.nodes.get(id);
  if (node === undefined) sim.fail(`${id} is down`);
  return nodeInternals(node).log;
}

/** Runs until every live node has committed and applied the same prefix, as far as the leader committed. */
async function converge(sim: SimCluster, maxMs = 5000): Promise<string[]> {
  await sim.runUntil(
    () => {
      const ups = sim.up();
      const commits = ups.map((id) => sim.stateOf(id).commitIndex);
      const lens = ups.map((id) => appliedValues(sim, id).length);
      return Math.min(...commits) === Math.max(...commits) && Math.min(...lens) === Math.max(...lens);
    },
    maxMs,
    'every live node commits and applies the same prefix',
  );
  return appliedValues(sim, sim.up()[0] as string);
}

/** The assertions assertLogsAgree needs. */
interface Asserts {
  fail(message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
}

/** Every live node holds the same entries (term and content) up to the lowest commit index; returns that index. */
function assertLogsAgree(t: Asserts, sim: SimCluster): number {
  const upTo = sim.minCommitIndex();
  const [first, ...rest] = sim.up();
  const ref = logOf(sim, first as string);
  let mismatches = 0;
  for (const id of rest) {
    const log = logOf(sim, id);
    for (let i = 1; i <= upTo; i++) {
      const a = ref.entry(i);
      const b = log.entry(i);
      if (a?.term !== b?.term || a?.type !== b?.type || sim.valueAt(first as string, i) !== sim.valueAt(id, i)) {
        mismatches++;
        t.fail(`${id} and ${first} differ at index ${i}`);
        break;
      }
    }
  }
  t.equal(mismatches, 0, `all ${sim.up().length} logs agree up to index ${upTo}`);
  return upTo;
}

t.test('committed values survive crashing and restarting a follower, the leader, a minority and every node; the cluster commits new values after each [seed 301]', async (t) => {
  const sim = new SimCluster({ seed: 301, size: 5 });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  const committed: string[] = [];
  const one = async (value: string, expected: number): Promise<void> => {
    await sim.one(value, expected);
    committed.push(value);
  };
  const survives = (what: string): void => {
    for (const id of sim.up()) t.same(appliedValues(sim, id), committed, `${what}: ${id} applied every committed value, in order`);
  };
  await one('p1', 5);

  // One follower.
  const follower = sim.ids.find((id) => id !== sim.leader()?.id) as string;
  await sim.crash(follower);
  await one('p2', 4);
  await sim.restart(follower);
  await one('p3', 5);
  await converge(sim);
  survives(`follower ${follower} restarted`);

  // The leader.
  const leader1 = (sim.leader() as NonNullable<ReturnType<typeof sim.leader>>).id;
  await sim.crash(leader1);
  await one('p4', 4);
  t.not(sim.leader()?.id, leader1, 'a new leader took over');
  await sim.restart(leader1);
  await one('p5', 5);
  await converge(sim);
  survives(`leader ${leader1} restarted`);

  // A minority: the leader and one follower.
  const leader2 = (sim.leader() as NonNullable<ReturnType<typeof sim.leader>>).id;
  const minority = [leader2, sim.ids.find((id) => id !== leader2) as string];
  for (const id of minority) await sim.crash(id);
  await one('p6', 3);
  for (const id of minority) await sim.restart(id);
  await one('p7', 5);
  await converge(sim);
  survives(`minority ${minority.join(',')} restarted`);

  // Everyone at once.
  const indexOf = new Map(committed.map((v) => [v, -1]));
  for (const a of sim.applied.get(sim.ids[0] as string) ?? []) indexOf.set(a.value, a.index);
  for (const id of sim.ids) await sim.crash(id);
  t.equal(sim.up().length, 0, 'all five down');
  for (const id of sim.ids) await sim.restart(id);
  for (const [value, index] of indexOf) {
    const holders = sim.ids.filter((id) => sim.valueAt(id, index) === value).length;
    t.ok(holders >= 3, `${value}@${index} is on the disks of a majority after the full restart (${holders} of 5)`);
  }
  await sim.waitLeader();
  await one('p8', 5);
  const all = await converge(sim);
  t.same(all, committed, 'after the full restart every node applied p1..p8 in order');
  survives('all restarted');
  assertLogsAgree(t, sim);
  sim.assertAcksDurable();
});

t.test('a node that crashes mid-write loses exactly its unsynced tail, and converges after restart: a follower, then the leader [seed 302]', async (t) => {
  // A slow disk: syncs take 5-30 ms, so writes are often in flight.
  const sim = new SimCluster({ seed: 302, size: 3, syncDelayMs: [5, 30] });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  await sim.one('m0', 3);
  let k = 1;

  for (const victimRole of ['follower', 'leader'] as const) {
    const leaderId = (sim.leader() as NonNullable<ReturnType<typeof sim.leader>>).id;
    const victim = victimRole === 'leader' ? leaderId : (sim.ids.find((id) => id !== leaderId) as string);
    const storage = sim.storages.get(victim) as MemoryStorage;
    // Proposals in small bursts until the victim holds entries its disk does not have yet.
    const unsynced = (): boolean => storage.inFlight() > 0 && storage.durableLog().length < logOf(sim, victim).lastIndex();
    for (let burst = 0; burst < 50 && !unsynced(); burst++) {
      for (let i = 0; i < 5; i++) void sim.propose(`m${k++}`, leaderId);
      for (let s = 0; s < 20 && !unsynced(); s++) await sim.step();
    }
    t.ok(unsynced(), `${victimRole} ${victim} has unsynced entries`);
    const durable = storage.durableLog().map((e) => `${e.index}/${e.term}/${e.type}`);
    const inMemory = logOf(sim, victim).lastIndex();
    await sim.crash(victim);
    await sim.restart(victim);
    const restored = logOf(sim, victim);
    t.equal(restored.lastIndex(), durable.length, `${victim} restarted with its ${durable.length} durable entries; lost ${inMemory - durable.length} unsynced`);
    const restoredIds: string[] = [];
    for (let i = 1; i <= restored.lastIndex(); i++) {
      const e = restored.entry(i);
      restoredIds.push(`${e?.index}/${e?.term}/${e?.type}`);
    }
    t.same(restoredIds, durable, `${victim} restored exactly what was durable`);
    await sim.waitLeader();
    await sim.one(`m-after-${victimRole}`, 3);
    const all = await converge(sim);
    for (const id of sim.ids) t.same(appliedValues(sim, id), all, `after the ${victimRole} crash: ${id} applied the same sequence`);
    t.ok(all.includes(`m-after-${victimRole}`), 'and the cluster committed a new value');
    assertLogsAgree(t, sim);
    sim.assertAcksDurable();
  }
});

/** Clients that propose continuously at whoever leads; failures are retried with a fresh value. */
function startClients(sim: SimCluster, count: number, prefix: string): { stop(): void; proposed(): number } {
  const r = sim.random.fork();
  let running = true;
  let proposed = 0;
  const next = (client: number, seq: number): void => {
    if (!running) return;
    proposed++;
    void sim.propose(`${prefix}${client}-${seq}`, undefined, 1000).then(() => {
      if (running) sim.clock.setTimeout(() => next(client, seq + 1), 1 + r.int(0, 10));
    });
  };
  for (let c = 0; c < count; c++) sim.clock.setTimeout(() => next(c, 0), r.int(0, 10));
  return {
    stop: () => {
      running = false;
    },
    proposed: () => proposed,
  };
}

for (const [seed, unreliable] of [
  [303, false],
  [304, true],
] as const) {
  t.test(`churn${unreliable ? ' on an unreliable network' : ''} (lab 2C ${unreliable ? 'UnreliableChurn' : 'ReliableChurn'}): 3 clients propose while nodes crash, restart and disconnect at random; every acknowledged value ends up in every log and the logs agree [seed ${seed}]`, async (t) => {
    const sim = new SimCluster({ seed, size: 5 });
    t.teardown(() => sim.stop());
    await sim.start();
    await sim.waitLeader();
    const r = sim.random.fork();
    if (unreliable) sim.network.setUnreliable(true);
    const clients = startClients(sim, 3, `u${seed}-`);
    let crashes = 0;
    for (let iter = 0; iter < 40; iter++) {
      if (r.chance(0.2)) sim.network.disconnect(r.pick(sim.ids));
      if (r.chance(0.5)) {
        const id = r.pick(sim.ids);
        await sim.restart(id);
        sim.network.connect(id);
      }
      if (r.chance(0.2)) {
        const id = r.pick(sim.ids);
        if (sim.nodes.has(id)) crashes++;
        await sim.crash(id);
      }
      await sim.run(210);
    }
    await sim.run(300);
    sim.network.setUnreliable(false);
    sim.network.heal();
    for (const id of sim.ids) await sim.restart(id);
    await sim.run(300);
    clients.stop();
    await sim.run(1200); // every client proposal settles (1 s timeout)
    await sim.one(`final-${seed}`, 5);
    await converge(sim, 10_000);
    t.ok(crashes > 0, `${crashes} crashes happened`);
    t.ok(sim.acks.length >= 20, `clients saw ${sim.acks.length} of ${clients.proposed()} proposals acknowledged`);
    t.ok(sim.checker.stats().leaders >= 2, `leadership changed (${sim.checker.stats().leaders} leader terms)`);
    sim.assertAcksDurable();
    t.pass(`all ${sim.acks.length} acknowledged values are in every log at their index`);
    const upTo = assertLogsAgree(t, sim);
    t.ok(upTo >= Math.max(...sim.acks.map((a) => a.index)), 'the agreed prefix covers every acknowledged index');
    const values = sim.ids.map((id) => appliedValues(sim, id));
    for (const [i, id] of sim.ids.entries()) t.same(values[i], values[0], `${id} applied the same sequence as ${sim.ids[0]}`);
  });
}
