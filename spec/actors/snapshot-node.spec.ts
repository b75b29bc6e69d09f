/**
 * The node's snapshot options and a node over LevelStorage taking snapshots,
 * compacting, and restarting from its snapshot plus the log tail (real disk,
 * real time on a single voter: waits are on events, bounded).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filter, firstValueFrom, timeout } from 'rxjs';
import { createRaftNode, type RaftEvent, type RaftNode } from '../../actors/node.actor.js';
import { resolveOptions, type RaftNodeOptions, type StateMachine } from '../../actors/options.js';
import { LevelStorage } from '../../adapters/storage/level.js';
import type { SnapshotMeta } from '../../adapters/storage/storage.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { MemoryNetwork } from '../../adapters/transport/memory.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const base = (): RaftNodeOptions => ({ id: 'n1', stateMachine: { apply: () => undefined }, storage: new MemoryStorage(), transport: new MemoryNetwork().transport('n1') });

t.test('snapshot options are validated, naming the option', async (t) => {
  const o = resolveOptions(base());
  t.same([o.snapshotThreshold, o.trailingLogs, o.maxConcurrentSnapshots], [8192, 10240, 2], 'defaults');
  t.throws(() => resolveOptions({ ...base(), maxConcurrentSnapshots: 0 }), { name: 'ConfigurationError', option: 'maxConcurrentSnapshots', message: /\[1, 1024\]/ });
  t.throws(() => resolveOptions({ ...base(), snapshotThreshold: 0 }), { name: 'ConfigurationError', option: 'snapshotThreshold' });
  t.throws(() => resolveOptions({ ...base(), trailingLogs: -1 }), { name: 'ConfigurationError', option: 'trailingLogs' });
  t.equal(o.snapshotIntervalMs, 0, 'the interval is off by default');
  t.same(o.snapshotTransfer, { chunkBytes: 256 * 1024, window: 4, retryBaseMs: 200, retryMaxMs: 5000, maxRetries: 10 }, 'default transfer limits');
  t.throws(() => resolveOptions({ ...base(), snapshotIntervalMs: -1 }), { name: 'ConfigurationError', option: 'snapshotIntervalMs' });
  t.throws(() => resolveOptions({ ...base(), snapshotIntervalMs: 1.5 }), { name: 'ConfigurationError', option: 'snapshotIntervalMs' });
  const limits = resolveOptions({ ...base(), snapshotTransfer: { chunkBytes: 4096, window: 2 } }).snapshotTransfer;
  t.same(limits, { chunkBytes: 4096, window: 2, retryBaseMs: 200, retryMaxMs: 5000, maxRetries: 10 }, 'given limits merge over the defaults');
  const bad = (snapshotTransfer: unknown): RaftNodeOptions => ({ ...base(), snapshotTransfer } as RaftNodeOptions);
  t.throws(() => resolveOptions(bad({ chunk: 1 })), { name: 'ConfigurationError', option: 'snapshotTransfer.chunk', message: /unknown limit; known: chunkBytes, window/ });
  t.throws(() => resolveOptions(bad({ window: 0 })), { name: 'ConfigurationError', option: 'snapshotTransfer', message: /window/ });
  t.throws(() => resolveOptions(bad({ retryBaseMs: 6000 })), { name: 'ConfigurationError', option: 'snapshotTransfer', message: /retryMaxMs/ });
  t.throws(() => resolveOptions(bad({ chunkBytes: 17 * 1024 * 1024 })), { name: 'ConfigurationError', option: 'snapshotTransfer.chunkBytes', message: /16 MiB/ });
  t.throws(() => resolveOptions(bad('big')), { name: 'ConfigurationError', option: 'snapshotTransfer', message: /object/ });
});

/** A map of values by index: snapshot() copies synchronously; restore() records what it got. */
function store(): StateMachine<string> & { values: Map<number, string>; restoredAt: SnapshotMeta[]; appliedAfterRestore: number[] } {
  const values = new Map<number, string>();
  const restoredAt: SnapshotMeta[] = [];
  const appliedAfterRestore: number[] = [];
  return {
    values,
    restoredAt,
    appliedAfterRestore,
    apply(entry) {
      const v = decoder.decode(entry.data);
      values.set(entry.index, v);
      if (restoredAt.length > 0) appliedAfterRestore.push(entry.index);
      return v;
    },
    snapshot() {
      return Promise.resolve(encoder.encode(JSON.stringify([...values])));
    },
    async restore(chunks, meta) {
      const parts: Uint8Array[] = [];
      for await (const c of chunks) parts.push(c);
      values.clear();
      for (const [k, v] of JSON.parse(decoder.decode(Buffer.concat(parts))) as [number, string][]) values.set(k, v);
      restoredAt.push(meta);
    },
  };
}

async function leading(node: RaftNode<string>): Promise<void> {
  await firstValueFrom(node.role$.pipe(filter((r) => r === 'leader'), timeout(10_000)));
}

t.test('over LevelStorage: snapshots and compaction as entries apply, then a restart from snapshot plus tail', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftchart-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const network = new MemoryNetwork();
  const options = { id: 'n1', electionTimeoutMs: [20, 40] as const, heartbeatIntervalMs: 5, snapshotThreshold: 10, trailingLogs: 3 };

  const fsm = store();
  const storage = new LevelStorage({ path: dir });
  const node = createRaftNode<string>({ ...options, stateMachine: fsm, storage, transport: network.transport('n1') });
  const events: RaftEvent[] = [];
  node.events$.subscribe((e) => events.push(e));
  await node.start();
  await node.bootstrap([{ id: 'n1', address: 'n1' }]);
  await leading(node);
  for (let k = 0; k < 35; k++) await node.propose(encoder.encode(`v${k}`));
  const meta = await node.snapshot();
  t.equal(meta.index, node.status().appliedIndex, 'snapshot() at the applied index');
  const created = events.filter((e) => e.type === 'snapshotCreated');
  t.ok(created.length >= 3, `${created.length} snapshots created (threshold 10, plus the one asked for)`);
  t.ok(events.some((e) => e.type === 'logCompacted'), 'the log was compacted');
  t.ok(storage.snapshots().length <= 2, 'at most keepSnapshots (2) snapshots kept');
  const lastIndex = node.status().lastLogIndex;
  // A few entries after the snapshot: the tail a restart must apply on top of it.
  for (let k = 35; k < 38; k++) await node.propose(encoder.encode(`v${k}`));
  await node.stop();

  const again = store();
  const restarted = createRaftNode<string>({ ...options, stateMachine: again, storage: new LevelStorage({ path: dir }), transport: network.transport('n1') });
  await restarted.start();
  t.equal(again.restoredAt[0]?.index, meta.index, 'start() restored the snapshot before anything else');
  t.equal(again.restoredAt.length, 1, 'once');
  t.ok(again.values.size >= 35, `the state came back from the snapshot (${again.values.size} values)`);
  await leading(restarted);
  const r = await restarted.propose(encoder.encode('after'));
  t.ok(r.index > lastIndex + 3, `the next index ${r.index} is above the last one before the stop`);
  t.same(again.appliedAfterRestore.slice(0, 3), [meta.index + 1, meta.index + 2, meta.index + 3], 'the tail applied on top of the restored state, in order');
  t.ok(again.appliedAfterRestore.every((i) => i > meta.index), 'nothing at or below the snapshot was applied again');
  const all = [...again.values.values()];
  for (let k = 0; k < 38; k++) if (!all.includes(`v${k}`)) t.fail(`v${k} lost`);
  t.ok(all.includes('after'));
  await restarted.stop();
});

t.test('over LevelStorage: restore(backup) through the log, compacted away, and the restored state after a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftchart-restore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const network = new MemoryNetwork();
  const options = { id: 'n1', electionTimeoutMs: [20, 40] as const, heartbeatIntervalMs: 5, snapshotThreshold: 1000, trailingLogs: 1000 };
  const fsm = store();
  const node = createRaftNode<string>({ ...options, stateMachine: fsm, storage: new LevelStorage({ path: dir }), transport: network.transport('n1') });
  const events: RaftEvent[] = [];
  node.events$.subscribe((e) => events.push(e));
  await node.start();
  await node.bootstrap([{ id: 'n1', address: 'n1' }]);
  await leading(node);
  for (let k = 0; k < 5; k++) await node.propose(encoder.encode(`old${k}`));
  // About 700 KiB: three restore entries of at most 256 KiB.
  const rows = Array.from({ length: 20_000 }, (_, k) => [1_000_000 + k, `backup-${k}-${'x'.repeat(20)}`]);
  const backup = encoder.encode(JSON.stringify(rows));
  const pieces = async function* (): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < backup.length; at += 100_000) yield backup.subarray(at, at + 100_000);
  };
  const compacted = firstValueFrom(node.events$.pipe(filter((e) => e.type === 'logCompacted'), timeout(10_000)));
  const result = await node.restore(pieces());
  t.equal(result.size, backup.length, 'every byte restored');
  t.same(fsm.restoredAt.map((m) => m.index), [result.index], "the state machine's restore() ran once, at the commit");
  t.equal(fsm.values.size, rows.length, 'the state is the backup');
  t.notOk([...fsm.values.values()].some((v) => v.startsWith('old')), 'the old state is gone');
  t.match(await compacted, { upTo: result.index }, 'the run was compacted away up to the commit, despite trailingLogs');
  await node.propose(encoder.encode('new'));
  t.ok(events.some((e) => e.type === 'restored' && e.index === result.index), 'restored event');
  await node.stop();

  const again = store();
  const restarted = createRaftNode<string>({ ...options, stateMachine: again, storage: new LevelStorage({ path: dir }), transport: network.transport('n1') });
  await restarted.start();
  t.ok((again.restoredAt[0]?.index ?? 0) >= result.index, 'start() restored the snapshot taken at the commit');
  await leading(restarted);
  await restarted.barrier();
  t.equal(again.values.size, rows.length + 1, 'the backup plus the entry after it');
  t.ok([...again.values.values()].includes('new'));
  await restarted.stop();
});

t.test('a server whose state machine has no restore() stops with a fatal event at a restore commit, instead of diverging', async (t) => {
  const network = new MemoryNetwork();
  const timing = { electionTimeoutMs: [50, 100] as const, heartbeatIntervalMs: 10 };
  const full = createRaftNode<string>({ ...timing, id: 'n1', stateMachine: store(), storage: new MemoryStorage(), transport: network.transport('n1') });
  const bare = createRaftNode<string>({ ...timing, id: 'n2', stateMachine: { apply: (e) => decoder.decode(e.data) }, storage: new MemoryStorage(), transport: network.transport('n2') });
  t.teardown(() => Promise.all([full.stop(), bare.stop()]).then(() => undefined));
  const bareEvents: RaftEvent[] = [];
  bare.events$.subscribe((e) => bareEvents.push(e));
  const servers = [{ id: 'n1', address: 'n1' }, { id: 'n2', address: 'n2' }];
  await Promise.all([full.start(), bare.start()]);
  await Promise.all([full.bootstrap(servers), bare.bootstrap(servers)]);
  const { leaderId } = await firstValueFrom(full.leader$.pipe(filter((l) => l.leaderId !== null), timeout(10_000)));
  if (leaderId === 'n2') await bare.transferLeadership('n1');
  await leading(full);
  await full.propose(encoder.encode('x'));
  const fatal = firstValueFrom(bare.events$.pipe(filter((e) => e.type === 'fatal'), timeout(10_000)));
  const outcome = full.restore(encoder.encode(JSON.stringify([[1, 'restored']]))).catch((e: unknown) => e);
  t.match(await fatal, { error: { name: 'ConfigurationError', message: /cannot apply the restore committed at/ } }, 'n2 stops, naming why');
  t.notOk(bareEvents.some((e) => e.type === 'restored'), 'n2 never reported a restore it did not do');
  await outcome;
});

t.test('a node without snapshot support never snapshots; a snapshot in storage needs restore()', async (t) => {
  const network = new MemoryNetwork();
  const storage = new MemoryStorage();
  const fsm = store();
  const node = createRaftNode<string>({ id: 'n1', electionTimeoutMs: [20, 40], heartbeatIntervalMs: 5, snapshotThreshold: 2, stateMachine: fsm, storage, transport: network.transport('n1') });
  await node.start();
  await node.bootstrap([{ id: 'n1', address: 'n1' }]);
  await leading(node);
  for (let k = 0; k < 5; k++) await node.propose(encoder.encode(`v${k}`));
  await node.snapshot();
  t.ok(storage.snapshots().length > 0, 'a snapshot is stored');
  await node.stop();
  const bare = createRaftNode<string>({ id: 'n1', stateMachine: { apply: (e) => decoder.decode(e.data) }, storage, transport: network.transport('n1') });
  await t.rejects(bare.start(), { name: 'ConfigurationError', option: 'stateMachine', message: /needs a restore\(\) method/ });

  const plain = createRaftNode<string>({ id: 'n2', electionTimeoutMs: [20, 40], heartbeatIntervalMs: 5, snapshotThreshold: 1, stateMachine: { apply: (e) => decoder.decode(e.data) }, storage: new MemoryStorage(), transport: network.transport('n2') });
  const events: RaftEvent[] = [];
  plain.events$.subscribe((e) => events.push(e));
  await plain.start();
  await plain.bootstrap([{ id: 'n2', address: 'n2' }]);
  await leading(plain);
  for (let k = 0; k < 5; k++) await plain.propose(encoder.encode(`p${k}`));
  t.notOk(events.some((e) => e.type === 'snapshotCreated' || e.type === 'logCompacted'), 'no snapshot without StateMachine.snapshot');
  await t.rejects(plain.snapshot(), { name: 'ConfigurationError', message: /no snapshot\(\) method/ });
  await plain.stop();
  await t.rejects(node.snapshot(), { name: 'ShutdownError' }, 'a stopped node');
});
