/**
 * Real processes: three nodes on Level storage (sync on) and the WebSocket
 * transport on 127.0.0.1, under continuous proposals; the leader is killed
 * with SIGKILL and restarted, then all three are. Afterwards every
 * acknowledged proposal is applied exactly once, in order, on every node.
 * Then a node restarted on a corrupted data directory refuses to start with
 * a clear message while the other two keep committing.
 *
 * Bounds are generous (this runs on a loaded 2-core CI machine); the test is
 * decided by what was acknowledged and applied, never by how fast.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { ProcessCluster, freePorts, type Dump } from '../../bench/cluster/harness.js';
import type { FixtureConfig } from '../../bench/cluster/node-process.js';

const ids = ['n1', 'n2', 'n3'];

async function setup(t: Test): Promise<ProcessCluster> {
  const root = await mkdtemp(join(tmpdir(), 'raftchart-proc-'));
  const ports = await freePorts(3);
  const peers = ids.map((id, i) => ({ id, port: ports[i] as number }));
  const configs: FixtureConfig[] = peers.map((p) => ({ ...p, dir: join(root, p.id), peers, secret: 'process-test-secret' }));
  const cluster = new ProcessCluster(configs);
  t.teardown(async () => {
    await cluster.stopAll();
    await rm(root, { recursive: true, force: true });
  });
  return cluster;
}

/** Every acknowledged value applied exactly once and in index order, and all nodes applied the same sequence. */
function checkApplied(t: Test, cluster: ProcessCluster, dumps: Map<string, Dump>): void {
  const acks = [...cluster.acks].sort((a, b) => a.index - b.index);
  t.same(new Set(acks.map((a) => a.index)).size, acks.length, 'no two acknowledgements share an index');
  let reference: readonly string[] | undefined;
  for (const [id, dump] of dumps) {
    const position = new Map<string, number>();
    const dupes: string[] = [];
    dump.applied.forEach((v, i) => {
      if (position.has(v)) dupes.push(v);
      position.set(v, i);
    });
    t.same(dupes, [], `${id} applied no value twice`);
    const missing = acks.filter((a) => !position.has(a.value)).map((a) => a.value);
    t.same(missing, [], `${id} applied all ${acks.length} acknowledged values`);
    const order = acks.map((a) => position.get(a.value) ?? -1);
    t.ok(order.every((p, i) => i === 0 || p > (order[i - 1] as number)), `${id} applied them in index order`);
    if (reference === undefined) reference = dump.applied;
    else t.same(dump.applied, reference, `${id} applied the same sequence as ${[...dumps.keys()][0]}`);
  }
}

async function settle(cluster: ProcessCluster): Promise<Map<string, Dump>> {
  await cluster.stopLoad();
  const leader = await cluster.waitLeader(20_000);
  const commit = (await leader.dump()).commitIndex;
  return cluster.converged(Math.max(commit, ...cluster.acks.map((a) => a.index)), 20_000);
}

t.test('kill -9 of the leader, then of all three: every acknowledged proposal is applied exactly once, in order, everywhere', async (t) => {
  const cluster = await setup(t);
  for (const id of ids) cluster.start(id);
  await Promise.all([...cluster.nodes.values()].map((p) => p.up));
  const first = await cluster.waitLeader(20_000);
  cluster.load(8);
  await cluster.acked(300, 30_000);

  t.equal(await cluster.nodes.get(first.config.id)?.kill9(), null, `leader ${first.config.id} killed with SIGKILL`);
  const before = cluster.acks.length;
  await cluster.start(first.config.id).up;
  await cluster.acked(300, 30_000);
  t.ok(cluster.acks.length >= before + 300, 'the cluster kept committing across the leader crash and restart');

  await Promise.all(ids.map((id) => cluster.nodes.get(id)?.kill9()));
  t.pass('all three killed with SIGKILL');
  for (const id of ids) cluster.start(id);
  await Promise.all([...cluster.nodes.values()].map((p) => p.up));
  await cluster.acked(300, 30_000);

  const dumps = await settle(cluster);
  t.equal(dumps.size, 3, 'three nodes report');
  t.comment(`${cluster.acks.length} acknowledged proposals`);
  checkApplied(t, cluster, dumps);
});

t.test('a node restarted on a corrupted data directory refuses to start with a clear message; the others keep committing', async (t) => {
  const cluster = await setup(t);
  for (const id of ids) cluster.start(id);
  await Promise.all([...cluster.nodes.values()].map((p) => p.up));
  await cluster.waitLeader(20_000);
  cluster.load(4);
  await cluster.acked(100, 30_000);
  await cluster.stopLoad();

  const leader = await cluster.waitLeader(20_000);
  const victim = ids.find((id) => id !== leader.config.id) as string;
  await cluster.converged(Math.max(...cluster.acks.map((a) => a.index)), 20_000);
  await cluster.nodes.get(victim)?.stop();

  // Flip one byte in the value of a log record in the middle of the victim's log.
  const config = cluster.configs.find((c) => c.id === victim) as FixtureConfig;
  const db = new ClassicLevel<Uint8Array, Uint8Array>(config.dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const records: [Uint8Array, Uint8Array][] = [];
  for await (const [k, v] of db.iterator()) records.push([k, v]);
  const logRecords = records.filter(([k]) => k.byteLength >= 8);
  t.ok(logRecords.length >= 50, `the victim holds ${logRecords.length} records`);
  const [key, value] = logRecords[Math.floor(logRecords.length / 2)] as [Uint8Array, Uint8Array];
  const bad = Uint8Array.from(value);
  bad[bad.byteLength - 1] = (bad[bad.byteLength - 1] as number) ^ 0xff;
  await db.put(key, bad, { sync: true });
  await db.close();

  const restarted = cluster.start(victim);
  t.equal(await restarted.exited, 3, 'the restarted node exits with the corruption status');
  t.match(restarted.stderr, /StorageCorruptionError/, `it says why: ${restarted.stderr.trim()}`);
  t.match(restarted.stderr, /index \d+/, 'and names the log index');

  cluster.load(4);
  await cluster.acked(100, 30_000);
  const dumps = await settle(cluster);
  t.equal(dumps.size, 2, 'the two healthy nodes report');
  checkApplied(t, cluster, dumps);
});
