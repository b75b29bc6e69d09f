/**
 * Snapshots and log compaction (§7) in simulated time on the seeded cluster:
 * a follower cut off while the log is compacted catches up by snapshot
 * (reliable and unreliable network), a follower crashes mid-install, the
 * whole cluster restarts from snapshot plus log tail, a restart restores the
 * state machine before the tail, and the log kept in storage stays bounded.
 * The five safety invariants are checked after every step by the harness
 * (its checker follows compaction and restores). Each test names its seed.
 */
import t, { type Test } from 'tap';
import { nodeInternals, type RaftEvent, type RaftNode } from '../../actors/node.actor.js';
import type { MemoryStorage } from '../../adapters/storage/memory.js';
import { runChaos } from './harness/chaos.js';
import { SimCluster } from './harness/cluster.js';

const THRESHOLD = 20;
const TRAILING = 5;

/** Snapshot bytes reported to the metrics sink, summed over every node. */
const bytes = { sent: 0, received: 0 };

function cluster(seed: number): SimCluster {
  const metrics = { snapshotBytes: (direction: 'sent' | 'received', n: number) => void (bytes[direction] += n) };
  return new SimCluster({ seed, size: 3, snapshots: true, node: { snapshotThreshold: THRESHOLD, trailingLogs: TRAILING, metrics } });
}

function logOf(sim: SimCluster, id: string): ReturnType<typeof nodeInternals>['log'] {
  const node = sim.nodes.get(id);
  if (node === undefined) sim.fail(`${id} is down`);
  return nodeInternals(node).log;
}

/** Events of a node, collected from now on. */
function collect(node: RaftNode<string>): RaftEvent[] {
  const out: RaftEvent[] = [];
  node.events$.subscribe((e) => out.push(e));
  return out;
}

/** Commits `n` values (prefix-k) through the leader, each on at least `expected` nodes. */
async function commitMany(sim: SimCluster, prefix: string, n: number, expected: number, size = 0): Promise<number> {
  let last = 0;
  for (let k = 0; k < n; k++) last = await sim.one(`${prefix}-${k}${size > 0 ? `-${'x'.repeat(size)}` : ''}`, expected);
  return last;
}

/** Runs until every live node applied as far as the highest commit index. */
async function converge(sim: SimCluster, maxMs = 20_000): Promise<number> {
  await sim.runUntil(
    () => {
      const ups = sim.up();
      const commit = Math.max(...ups.map((id) => sim.stateOf(id).commitIndex));
      return ups.every((id) => (sim.nodes.get(id) as RaftNode<string>).status().appliedIndex >= commit);
    },
    maxMs,
    'every live node applies up to the highest commit index',
  );
  return Math.max(...sim.up().map((id) => sim.stateOf(id).commitIndex));
}

async function catchUpBySnapshot(t: Test, seed: number, unreliable: boolean): Promise<void> {
  const sim = cluster(seed);
  await sim.start();
  const leader = await sim.waitLeader();
  const leaderEvents = collect(leader);
  const follower = sim.ids.find((id) => id !== leader.id) as string;
  await commitMany(sim, 'pre', 5, 3);
  sim.network.disconnect(follower);
  const cutAt = logOf(sim, follower).lastIndex();
  await commitMany(sim, 'a', 3 * THRESHOLD, 2);
  t.ok(logOf(sim, leader.id).firstIndex() > cutAt + 1, `the leader compacted past the follower's last index ${cutAt} (first ${logOf(sim, leader.id).firstIndex()})`);
  t.ok(leaderEvents.some((e) => e.type === 'snapshotCreated'), 'the leader took a snapshot');
  t.ok(leaderEvents.some((e) => e.type === 'logCompacted'), 'and compacted its log');
  const followerEvents = collect(sim.nodes.get(follower) as RaftNode<string>);
  if (unreliable) sim.network.setUnreliable(true);
  sim.network.connect(follower);
  let sawSnapshotState = false;
  await sim.runUntil(
    () => {
      const r = leader.status().replicas[follower];
      if (r?.state === 'snapshot') sawSnapshotState = true;
      return followerEvents.some((e) => e.type === 'snapshotInstalled');
    },
    30_000,
    `${follower} installs a snapshot`,
  );
  if (unreliable) sim.network.setUnreliable(false);
  await commitMany(sim, 'b', 3, 3);
  await converge(sim);
  t.ok(sawSnapshotState, 'the leader showed the replica in state snapshot');
  const sending = leaderEvents.filter((e): e is Extract<RaftEvent, { type: 'snapshotSending' }> => e.type === 'snapshotSending' && e.peer === follower);
  t.ok(sending.length > 0 && sending.every((e) => e.bytesSent > 0), 'snapshotSending reported the bytes sent');
  t.ok(leaderEvents.some((e) => e.type === 'snapshotSent' && e.peer === follower), 'snapshotSent for the follower');
  t.ok(followerEvents.some((e) => e.type === 'snapshotReceived'), 'the follower reported chunks received');
  t.ok(sim.restores.some((r) => r.id === follower && r.index > cutAt), 'the follower restored its state machine from the snapshot');
  t.equal(leader.status().replicas[follower]?.state, 'replicate', 'the replica is back to replicate');
  t.equal(leader.status().replicas[follower]?.snapshot, undefined, 'no transfer progress outside snapshot');
  sim.assertAcksApplied();
  t.pass(`seed ${seed}: ${sim.steps} steps`);
}

t.test('the metrics sink hears snapshot bytes sent and received', async (t) => {
  bytes.sent = 0;
  bytes.received = 0;
  await catchUpBySnapshot(t, 505, false);
  t.ok(bytes.received > 0, `${bytes.received} bytes received`);
  t.ok(bytes.sent >= bytes.received, `${bytes.sent} bytes sent (retransmissions included)`);
});

t.test('a follower cut off while the log is compacted catches up by snapshot (reliable network)', async (t) => {
  await catchUpBySnapshot(t, 501, false);
});

t.test('a follower cut off while the log is compacted catches up by snapshot (unreliable network)', async (t) => {
  for (const seed of [502, 503, 504]) await catchUpBySnapshot(t, seed, true);
});

t.test('a follower that crashes mid-install restarts and still installs the snapshot', async (t) => {
  const seed = 511;
  const sim = cluster(seed);
  await sim.start();
  const leader = await sim.waitLeader();
  const follower = sim.ids.find((id) => id !== leader.id) as string;
  sim.network.disconnect(follower);
  // Large values: the snapshot spans several 256 KiB chunks.
  await commitMany(sim, 'big', 3 * THRESHOLD, 2, 12_000);
  const events = collect(sim.nodes.get(follower) as RaftNode<string>);
  sim.network.connect(follower);
  await sim.runUntil(() => events.some((e) => e.type === 'snapshotReceived'), 10_000, `${follower} stages a first chunk`);
  t.notOk(events.some((e) => e.type === 'snapshotInstalled'), 'not installed yet');
  await sim.crash(follower);
  const before = sim.restores.filter((r) => r.id === follower).length;
  await sim.run(500);
  await sim.restart(follower);
  const again = collect(sim.nodes.get(follower) as RaftNode<string>);
  await sim.runUntil(() => again.some((e) => e.type === 'snapshotInstalled'), 30_000, `${follower} installs after its restart`);
  await commitMany(sim, 'after', 2, 3);
  await converge(sim);
  t.ok(sim.restores.filter((r) => r.id === follower).length > before, 'its state machine was restored from the snapshot');
  sim.assertAcksApplied();
  t.pass(`seed ${seed}: ${sim.steps} steps`);
});

t.test('every node crashes and restarts from snapshot plus log tail with nothing lost', async (t) => {
  for (const seed of [521, 522]) {
    const sim = cluster(seed);
    await sim.start();
    await sim.waitLeader();
    const lastBefore = await commitMany(sim, 'v', 2 * THRESHOLD + 7, 3);
    await converge(sim);
    const snapshotAt = new Map(sim.ids.map((id) => [id, (sim.storages.get(id) as MemoryStorage).snapshots()[0]?.index ?? 0]));
    t.ok([...snapshotAt.values()].every((i) => i > 0), `every node holds a snapshot (${[...snapshotAt.values()].join(', ')})`);
    for (const id of sim.ids) await sim.crash(id);
    await sim.run(100);
    for (const id of sim.ids) await sim.restart(id);
    for (const id of sim.ids) {
      const r = sim.restores.find((x) => x.id === id && x.incarnation === 2);
      t.ok(r !== undefined && r.index === snapshotAt.get(id), `${id} restored its snapshot at ${String(r?.index)} on restart`);
    }
    await sim.waitLeader();
    const next = await sim.one('after-restart', 3);
    t.ok(next > lastBefore, `the next index ${next} is above the last one before the crash (${lastBefore})`);
    await converge(sim);
    sim.assertAcksApplied();
    for (const id of sim.ids) {
      const values = (sim.applied.get(id) ?? []).map((a) => a.value);
      t.ok(values.includes(`v-${2 * THRESHOLD + 6}`) && values.includes('after-restart'), `${id} holds the last value before and the one after`);
    }
  }
});

t.test('a restart restores the snapshot into the state machine before applying the log tail', async (t) => {
  const seed = 531;
  const sim = cluster(seed);
  await sim.start();
  await sim.waitLeader();
  await commitMany(sim, 'w', THRESHOLD + 8, 3);
  await converge(sim);
  const id = sim.ids.find((x) => sim.leader()?.id !== x) as string;
  const storage = sim.storages.get(id) as MemoryStorage;
  const snap = storage.snapshots()[0];
  if (snap === undefined) return t.fail('no snapshot taken');
  const tailStart = logOf(sim, id).firstIndex();
  t.ok(tailStart <= snap.index, `the log tail (from ${tailStart}) overlaps the snapshot at ${snap.index}`);
  await sim.crash(id);
  await sim.restart(id);
  const restore = sim.restores.find((r) => r.id === id && r.incarnation === 2);
  t.equal(restore?.index, snap.index, 'restored at the snapshot index');
  const applied = sim.applied.get(id) ?? [];
  // Restored values come first (indexes <= snapshot), then the tail, each once, in order.
  const indexes = applied.map((a) => a.index);
  t.ok(indexes.every((x, k) => k === 0 || x > (indexes[k - 1] as number)), 'applied indexes strictly increase');
  await converge(sim);
  const after = (sim.applied.get(id) ?? []).filter((a) => a.index > snap.index);
  t.ok(after.length > 0, 'entries past the snapshot were applied on top');
  t.equal(restore?.values, applied.filter((a) => a.index <= snap.index).length, 'the values up to the snapshot came from the restore');
  sim.assertAcksApplied();
});

t.test('the raft state kept in storage stays bounded under a long run', async (t) => {
  const seed = 541;
  const sim = cluster(seed);
  await sim.start();
  await sim.waitLeader();
  let maxLog = 0;
  let maxSnapshots = 0;
  for (let round = 0; round < 12; round++) {
    await commitMany(sim, `r${round}`, 25, 2);
    for (const id of sim.up()) {
      const storage = sim.storages.get(id) as MemoryStorage;
      maxLog = Math.max(maxLog, storage.durableLog().length);
      maxSnapshots = Math.max(maxSnapshots, storage.snapshots().length);
    }
  }
  await converge(sim);
  const total = sim.acks.length;
  t.ok(total >= 300, `${total} entries committed`);
  // Between two snapshots the log grows by the threshold; it keeps TRAILING entries below the last one.
  t.ok(maxLog <= THRESHOLD + TRAILING + 10, `the stored log never held more than ${maxLog} entries`);
  t.ok(maxSnapshots <= 2, `at most ${maxSnapshots} snapshots kept`);
  for (const id of sim.ids) t.ok(logOf(sim, id).lastIndex() - logOf(sim, id).firstIndex() + 1 <= THRESHOLD + TRAILING + 10, `${id}'s log in memory is bounded`);
  sim.assertAcksApplied();
});

t.test('maxConcurrentSnapshots bounds the transfers a leader streams at once', async (t) => {
  const seed = 551;
  const sim = new SimCluster({ seed, size: 5, snapshots: true, node: { snapshotThreshold: THRESHOLD, trailingLogs: TRAILING, maxConcurrentSnapshots: 1 } });
  await sim.start();
  const leader = await sim.waitLeader();
  const behind = sim.ids.filter((id) => id !== leader.id).slice(0, 2);
  for (const id of behind) sim.network.disconnect(id);
  await commitMany(sim, 'c', 3 * THRESHOLD, 3, 20_000);
  const events = collect(leader);
  for (const id of behind) sim.network.connect(id);
  let most = 0;
  await sim.runUntil(
    () => {
      const sending = Object.values(leader.status().replicas).filter((r) => r.snapshot !== undefined).length;
      most = Math.max(most, sending);
      return behind.every((id) => events.some((e) => e.type === 'snapshotSent' && e.peer === id));
    },
    30_000,
    'both followers receive the snapshot',
  );
  t.equal(most, 1, 'one transfer streamed at a time');
  await converge(sim);
  sim.assertAcksApplied();
});

t.test('snapshotTransfer limits shape the transfer: chunk size and window of unacknowledged chunks', async (t) => {
  const seed = 557;
  const chunkBytes = 2048;
  const window = 2;
  const sim = new SimCluster({ seed, size: 3, snapshots: true, node: { snapshotThreshold: THRESHOLD, trailingLogs: TRAILING, snapshotTransfer: { chunkBytes, window } } });
  await sim.start();
  const leader = await sim.waitLeader();
  const behind = sim.ids.find((id) => id !== leader.id) as string;
  sim.network.disconnect(behind);
  await commitMany(sim, 'l', 2 * THRESHOLD, 2, 1000);
  const events = collect(leader);
  sim.network.connect(behind);
  let widest = 0;
  await sim.runUntil(
    () => {
      const transfer = leader.status().replicas[behind]?.snapshot;
      if (transfer !== undefined) widest = Math.max(widest, transfer.sent - transfer.acked);
      return events.some((e) => e.type === 'snapshotSent' && e.peer === behind);
    },
    30_000,
    'the follower receives the snapshot',
  );
  const sending = events.filter((e): e is Extract<RaftEvent, { type: 'snapshotSending' }> => e.type === 'snapshotSending' && e.peer === behind);
  const total = sending.at(-1)?.total ?? 0;
  t.ok(total > 10 * chunkBytes, `the snapshot spans many chunks (${total} bytes)`);
  const steps = sending.slice(1).map((e, k) => e.bytesSent - (sending[k] as typeof e).bytesSent).filter((d) => d > 0);
  t.ok(steps.length > 0 && steps.every((d) => d <= window * chunkBytes), 'progress moves by at most a window of chunks');
  t.ok(widest > 0 && widest <= window * chunkBytes, `at most window × chunkBytes unacknowledged (${widest})`);
  await converge(sim);
  sim.assertAcksApplied();

  // Reloaded limits apply to the next transfer.
  leader.reloadConfig({ snapshotTransfer: { chunkBytes: 64 * 1024 } });
  t.throws(() => leader.reloadConfig({ snapshotTransfer: { window: 0 } }), { name: 'ConfigurationError', option: 'snapshotTransfer' });
  sim.network.disconnect(behind);
  await commitMany(sim, 'm', 2 * THRESHOLD, 2, 1000);
  const later = collect(leader);
  sim.network.connect(behind);
  await sim.runUntil(() => later.some((e) => e.type === 'snapshotSent' && e.peer === behind), 30_000, 'the second transfer ends');
  const first = later.find((e): e is Extract<RaftEvent, { type: 'snapshotSending' }> => e.type === 'snapshotSending' && e.peer === behind && e.bytesSent > 0);
  t.ok(first !== undefined && first.bytesSent > window * chunkBytes, `the reloaded chunk size is used (${first?.bytesSent ?? 0} bytes at the first report)`);
});

t.test('snapshotIntervalMs takes a snapshot each period when anything was applied, however few entries', async (t) => {
  const seed = 559;
  const sim = new SimCluster({ seed, size: 3, snapshots: true, node: { snapshotThreshold: 100_000, trailingLogs: 2, snapshotIntervalMs: 1000 } });
  await sim.start();
  const leader = await sim.waitLeader();
  const events = new Map(sim.ids.map((id) => [id, collect(sim.nodes.get(id) as RaftNode<string>)]));
  const created = (id: string): number => (events.get(id) ?? []).filter((e) => e.type === 'snapshotCreated').length;
  await commitMany(sim, 'i', 3, 3);
  await converge(sim);
  await sim.run(1200);
  for (const id of sim.ids) t.equal(created(id), 1, `${id} snapshotted within one period (+10 % jitter)`);
  await sim.run(3000);
  for (const id of sim.ids) t.equal(created(id), 1, `${id}: nothing applied since, no new snapshot`);
  await commitMany(sim, 'j', 1, 3);
  await converge(sim);
  await sim.run(1200);
  for (const id of sim.ids) t.equal(created(id), 2, `${id}: one new entry is enough`);
  for (const id of sim.ids) (sim.nodes.get(id) as RaftNode<string>).reloadConfig({ snapshotIntervalMs: 0 });
  await commitMany(sim, 'k', 2, 3);
  await converge(sim);
  await sim.run(5000);
  for (const id of sim.ids) t.equal(created(id), 2, `${id}: interval 0 stops it`);
  t.ok(leader.status().appliedIndex > 0);
});

t.test('node.snapshot() on demand: resolves with the snapshot, joins one in progress, refuses without support', async (t) => {
  const seed = 561;
  const sim = new SimCluster({ seed, size: 3, snapshots: true, node: { snapshotThreshold: 100_000, trailingLogs: 2 } });
  await sim.start();
  const leader = await sim.waitLeader();
  await commitMany(sim, 'd', 12, 3);
  await converge(sim);
  const events = collect(leader);
  const applied = leader.status().appliedIndex;
  let first: Awaited<ReturnType<typeof leader.snapshot>> | Error | undefined;
  let second: typeof first;
  void leader.snapshot().then((m) => (first = m), (e: Error) => (first = e));
  void leader.snapshot().then((m) => (second = m), (e: Error) => (second = e));
  await sim.runUntil(() => first !== undefined && second !== undefined, 5000, 'the snapshots settle');
  if (first === undefined || first instanceof Error) return t.fail(`snapshot() failed: ${String(first)}`);
  t.equal(first.index, applied, 'taken at the applied index');
  t.same(second, first, 'a call during the snapshot resolves with the same one');
  t.ok(events.some((e) => e.type === 'snapshotCreated' && e.index === applied), 'snapshotCreated');
  t.ok(events.some((e) => e.type === 'logCompacted' && e.upTo === applied - 2), 'logCompacted keeps trailingLogs entries');
  t.equal(logOf(sim, leader.id).firstIndex(), applied - 1, 'the log starts trailingLogs entries below the snapshot');
  let again: unknown;
  void leader.snapshot().then((m) => (again = m));
  await sim.runUntil(() => again !== undefined, 1000, 'a snapshot with nothing new');
  t.same(again, first, 'nothing applied since: the current snapshot');

  // Tunables at run time: a lower threshold snapshots again after that many entries.
  t.throws(() => leader.reloadConfig({ snapshotThreshold: 0 }), { name: 'ConfigurationError', option: 'snapshotThreshold' });
  t.throws(() => leader.reloadConfig({ heartbeatIntervalMs: 10 } as never), { name: 'ConfigurationError', option: 'heartbeatIntervalMs', message: /cannot be changed at run time/ });
  leader.reloadConfig({ snapshotThreshold: 5 });
  const created = events.filter((e) => e.type === 'snapshotCreated').length;
  await commitMany(sim, 'e', 6, 3);
  await sim.run(100);
  t.ok(events.filter((e) => e.type === 'snapshotCreated').length > created, 'the reloaded threshold took effect');

  const plain = new SimCluster({ seed, size: 1 });
  await plain.start();
  const solo = await plain.waitLeader();
  await t.rejects(solo.snapshot(), { name: 'ConfigurationError', message: /snapshot\(\) method/ }, 'a state machine without snapshot()');
});

t.test('random fault schedules with snapshots on keep every safety property and lose no acknowledged write', async (t) => {
  const n = Number(process.env.SNAPSHOT_SIM_SEEDS ?? 30);
  let restores = 0;
  let acks = 0;
  for (let seed = 1; seed <= n; seed++) {
    try {
      const report = await runChaos({ seed, snapshots: { threshold: 16, trailing: 4 } });
      restores += report.restores;
      acks += report.acks;
    } catch (error) {
      t.fail(error instanceof Error ? error.message : String(error));
    }
  }
  t.ok(restores > 0, `${restores} state machine restores from snapshots over ${n} seeds (${acks} acknowledged writes)`);
});

t.test('a follower whose state machine cannot restore the snapshot stops with a fatal event; the others go on', async (t) => {
  const seed = 571;
  let failing: string | null = null;
  const sim = new SimCluster({ seed, size: 3, snapshots: true, node: { snapshotThreshold: THRESHOLD, trailingLogs: TRAILING }, failRestore: (id) => id === failing });
  await sim.start();
  const leader = await sim.waitLeader();
  const follower = sim.ids.find((id) => id !== leader.id) as string;
  sim.network.disconnect(follower);
  await commitMany(sim, 'f', 3 * THRESHOLD, 2);
  const node = sim.nodes.get(follower) as RaftNode<string>;
  const events = collect(node);
  failing = follower;
  sim.network.connect(follower);
  await sim.runUntil(() => events.some((e) => e.type === 'fatal'), 20_000, `${follower} fails`);
  const fatal = events.find((e): e is Extract<RaftEvent, { type: 'fatal' }> => e.type === 'fatal');
  t.match(String((fatal?.error as Error | undefined)?.message), /injected restore failure/, 'the fatal event carries the restore error');
  t.notOk(events.some((e) => e.type === 'snapshotInstalled'), 'not reported installed');
  await sim.crash(follower);
  await commitMany(sim, 'g', 5, 2);
  failing = null;
  await sim.restart(follower);
  await commitMany(sim, 'h', 2, 3);
  await converge(sim);
  t.ok(sim.restores.some((r) => r.id === follower && r.incarnation === 2), 'after a restart with a working restore it catches up');
  sim.assertAcksApplied();
});

t.test('a follower asked for a snapshot while one streams in from its leader takes its own only after the install', async (t) => {
  const seed = 581;
  const sim = cluster(seed);
  await sim.start();
  const leader = await sim.waitLeader();
  const follower = sim.ids.find((id) => id !== leader.id) as string;
  await commitMany(sim, 'pre', 5, 3);
  sim.network.disconnect(follower);
  await commitMany(sim, 'big', 3 * THRESHOLD, 2, 12_000);
  const node = sim.nodes.get(follower) as RaftNode<string>;
  const events = collect(node);
  sim.network.connect(follower);
  await sim.runUntil(() => events.some((e) => e.type === 'snapshotReceived'), 10_000, `${follower} stages a first chunk`);
  let own: Awaited<ReturnType<typeof node.snapshot>> | Error | undefined;
  void node.snapshot().then((m) => (own = m), (e: Error) => (own = e));
  await sim.runUntil(() => own !== undefined, 20_000, 'the follower snapshot settles');
  const installed = events.find((e): e is Extract<RaftEvent, { type: 'snapshotInstalled' }> => e.type === 'snapshotInstalled');
  t.ok(installed !== undefined, 'the leader snapshot was installed (its staging was not discarded)');
  t.notOk(events.some((e) => e.type === 'fatal'), 'no fatal event');
  if (own === undefined || own instanceof Error) return t.fail(`snapshot() failed: ${String(own)}`);
  t.ok(own.index >= (installed?.index ?? Infinity), `the follower's own snapshot (${own.index}) came after the install (${String(installed?.index)})`);
  await converge(sim);
  sim.assertAcksApplied();
});
