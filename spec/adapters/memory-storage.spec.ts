import t from 'tap';
import { SimulatedClock } from '../../adapters/clock.js';
import { seededRandom } from '../../adapters/random.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { ConfigurationError, ShutdownError, StorageError } from '../../errors.js';
import type { LogEntry } from '../../machines/types.js';
import { BAD_WRITES } from './storage.suite.js';

const bytes = new Uint8Array(0);
const entry = (index: number, term: number): LogEntry => ({ index, term, type: 'normal', data: bytes });
const range = (from: number, to: number, term: number): LogEntry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const indexes = (log: readonly LogEntry[]): number[] => log.map((e) => e.index);

/** Lets promise continuations run (the clock's callbacks are synchronous). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('a fresh store opens empty', async (t) => {
  const s = new MemoryStorage();
  t.same(await s.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0, boundaryTerm: 0, snapshot: null });
  t.same(await s.entries(1, 0), []);
  t.same(s.durableLog(), []);
  t.same(s.durableHardState(), { term: 0, votedFor: null });
  t.ok(s.isOpen());
});

t.test('without a sync delay, writes are durable when write() returns', async (t) => {
  const s = new MemoryStorage();
  await s.open();
  const p = s.write({ hardState: { term: 1, votedFor: 'a' }, entries: range(1, 3, 1) });
  t.same(indexes(s.durableLog()), [1, 2, 3]);
  t.same(s.durableHardState(), { term: 1, votedFor: 'a' });
  t.equal(s.inFlight(), 0);
  await p;
  t.same(await s.entries(2, 3), [entry(2, 1), entry(3, 1)]);
  await s.write({ truncateFrom: 2, entries: [entry(2, 2)] });
  t.same(indexes(await s.entries(1, 2)), [1, 2]);
  t.equal((await s.entries(2, 2))[0]?.term, 2);
  await s.close();
  t.same(await s.open(), { hardState: { term: 1, votedFor: 'a' }, firstIndex: 1, lastIndex: 2, boundaryTerm: 0, snapshot: null });
});

t.test('entries() reads by reference and rejects what is not held', async (t) => {
  const s = new MemoryStorage();
  await s.open();
  const e1 = entry(1, 1);
  await s.write({ entries: [e1, entry(2, 1)] });
  t.equal((await s.entries(1, 1))[0], e1, 'same object, no copy');
  await t.rejects(s.entries(0, 1), StorageError);
  await t.rejects(s.entries(2, 3), StorageError);
  await t.rejects(s.entries(3, 1), StorageError);
  await t.rejects(s.entries(1.5, 2), StorageError);
  t.same(await s.entries(3, 2), []);
});

t.test('crash: only synced writes survive, writes become durable in call order', async (t) => {
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: 10 });
  await s.open();
  const settled: string[] = [];
  const w1 = s.write({ hardState: { term: 1, votedFor: null }, entries: range(1, 2, 1) });
  void w1.then(() => settled.push('w1'));
  clock.advanceTo(5);
  const w2 = s.write({ entries: range(3, 4, 1) });
  void w2.then(
    () => settled.push('w2'),
    (e: unknown) => settled.push(`w2 ${(e as Error).name}`),
  );
  t.equal(s.inFlight(), 2);
  t.same(s.durableLog(), [], 'nothing durable before the sync');
  t.same(indexes(await s.entries(1, 4)), [1, 2, 3, 4], 'reads see accepted writes');

  clock.advanceTo(10);
  t.same(indexes(s.durableLog()), [1, 2], 'first write synced');
  t.same(s.durableHardState(), { term: 1, votedFor: null });
  await w1;

  await s.close(); // crash at t=10, before w2's sync at t=15
  await flush();
  t.same(settled, ['w1', 'w2 ShutdownError']);
  await t.rejects(w2, ShutdownError);
  t.equal(clock.pending(), 0, 'the in-flight sync timer was cleared');
  t.notOk(s.isOpen());

  t.same(await s.open(), { hardState: { term: 1, votedFor: null }, firstIndex: 1, lastIndex: 2, boundaryTerm: 0, snapshot: null });
  t.same(indexes(await s.entries(1, 2)), [1, 2]);
  await t.rejects(s.entries(3, 3), StorageError, 'the unsynced entries are gone');
  // The restarted node writes where the durable log ends.
  const w3 = s.write({ entries: range(3, 3, 2) });
  clock.advanceBy(10);
  await w3;
  t.same(indexes(s.durableLog()), [1, 2, 3]);
});

t.test('a later write never becomes durable before an earlier one', async (t) => {
  const clock = new SimulatedClock();
  const delays = [30, 5, 0, 10];
  const s = new MemoryStorage({ clock, syncDelayMs: () => delays.shift() ?? 0 });
  await s.open();
  const order: number[] = [];
  const writes = [1, 2, 3, 4].map((i) => {
    const p = s.write({ entries: [entry(i, 1)] });
    void p.then(() => order.push(i));
    return p;
  });
  clock.advanceTo(10);
  t.same(s.durableLog(), [], 'w2..w4 synced but wait behind w1');
  t.equal(s.inFlight(), 4);
  clock.advanceTo(30);
  t.same(indexes(s.durableLog()), [1, 2, 3, 4]);
  await Promise.all(writes);
  t.same(order, [1, 2, 3, 4], 'promises resolve in call order');
  t.equal(s.inFlight(), 0);
});

t.test('random sync delays: durable log is always a prefix of the accepted log', async (t) => {
  const clock = new SimulatedClock();
  const random = seededRandom(2024);
  const s = new MemoryStorage({ clock, syncDelayMs: () => random.int(0, 20) });
  await s.open();
  let last = 0;
  let ok = true;
  const pending: Array<Promise<void>> = [];
  for (let step = 0; step < 3000; step++) {
    if (random.chance(0.5)) {
      const n = random.int(1, 5);
      pending.push(s.write({ entries: range(last + 1, last + n, 1) }));
      last += n;
    } else {
      clock.runNext();
    }
    const durable = s.durableLog();
    for (let i = 0; i < durable.length; i++) if (durable[i]?.index !== i + 1) ok = false;
    if (durable.length > last) ok = false;
  }
  t.ok(ok, 'durable log is a contiguous prefix');
  while (clock.runNext());
  await Promise.all(pending);
  t.equal(s.durableLog().length, last);
});

t.test('a sync delay function returning garbage counts as 0; one that throws rejects the write', async (t) => {
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: () => Number.NaN });
  await s.open();
  const p = s.write({ entries: [entry(1, 1)] });
  t.equal(s.durableLog().length, 1);
  await p;

  const boom = new MemoryStorage({
    clock,
    syncDelayMs: () => {
      throw new Error('bad delay');
    },
  });
  await boom.open();
  await t.rejects(boom.write({ entries: [entry(1, 1)] }), StorageError);
  t.same(await boom.entries(1, 0), [], 'nothing changed');
});

t.test('validation: a bad write rejects with StorageError and changes nothing', async (t) => {
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: 1 });
  await s.open();
  const ok = s.write({ hardState: { term: 2, votedFor: 'a' }, entries: [entry(1, 1), entry(2, 2), entry(3, 2)] });
  clock.runNext();
  await ok;

  const bad = BAD_WRITES; // the conformance suite's table, here with a sync delay in flight
  for (const [what, write] of bad) {
    await t.rejects(s.write(write), StorageError, what);
  }
  t.equal(s.inFlight(), 0);
  t.equal(clock.pending(), 0);
  t.same(indexes(await s.entries(1, 3)), [1, 2, 3]);
  t.same(s.durableHardState(), { term: 2, votedFor: 'a' });

  // The valid neighbours of those cases pass.
  const good = [
    s.write({ truncateFrom: 10, entries: [entry(4, 2)] }), // truncating past the end deletes nothing
    s.write({ truncateFrom: 3, entries: [entry(3, 3)] }),
    s.write({ hardState: { term: 2, votedFor: 'a' }, entries: [] }), // same vote again
    s.write({ hardState: { term: 3, votedFor: null }, entries: [] }),
    s.write({ hardState: { term: 3, votedFor: 'c' }, entries: [] }),
    s.write({ truncateFrom: 1, entries: [] }),
  ];
  while (clock.runNext());
  await Promise.all(good);
  t.same(s.durableLog(), []);
  t.same(s.durableHardState(), { term: 3, votedFor: 'c' });
});

t.test('writes validate against accepted (unsynced) writes, not just durable ones', async (t) => {
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: 5 });
  await s.open();
  const a = s.write({ entries: range(1, 3, 1) });
  const b = s.write({ truncateFrom: 3, entries: [entry(3, 2), entry(4, 2)] });
  await t.rejects(s.write({ entries: [entry(4, 2)] }), StorageError);
  clock.advanceBy(5);
  await Promise.all([a, b]);
  t.same(
    s.durableLog().map((e) => [e.index, e.term]),
    [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
    ],
  );
});

t.test('lifecycle: open twice, use before open, use after close', async (t) => {
  const s = new MemoryStorage();
  await t.rejects(s.entries(1, 0), StorageError);
  await t.rejects(s.write({ entries: [] }), StorageError);
  await s.open();
  await t.rejects(s.open(), StorageError);
  await s.close();
  await s.close();
  await t.rejects(s.entries(1, 0), ShutdownError);
  // Not awaited on purpose: must not become an unhandled rejection.
  void s.write({ entries: [entry(1, 1)] });
  await t.rejects(s.write({ entries: [entry(1, 1)] }), ShutdownError);
  await s.open();
  t.same(s.durableLog(), []);

  const never = new MemoryStorage();
  await never.close();
  t.notOk(never.isOpen());
});

t.test('discarded in-flight writes never cause unhandled rejections', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled);
  });
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: 100 });
  await s.open();
  for (let i = 1; i <= 5; i++) void s.write({ entries: [entry(i, 1)] });
  await s.close();
  await flush();
  await flush();
  t.same(unhandled, []);
  t.same(s.durableLog(), []);
});

t.test('constructor validates syncDelayMs', async (t) => {
  t.throws(() => new MemoryStorage({ syncDelayMs: -1 }), ConfigurationError);
  t.throws(() => new MemoryStorage({ syncDelayMs: Number.POSITIVE_INFINITY }), ConfigurationError);
  t.throws(() => new MemoryStorage({ syncDelayMs: Number.NaN }), ConfigurationError);
});

t.test('a long queue of in-flight writes compacts and stays ordered', async (t) => {
  const clock = new SimulatedClock();
  let k = 0;
  // Every other write has a long sync, so the queue drains in steps.
  const s = new MemoryStorage({ clock, syncDelayMs: () => (k++ % 2500 === 0 ? 1000 : 1) });
  await s.open();
  const ps: Array<Promise<void>> = [];
  for (let i = 1; i <= 5000; i++) ps.push(s.write({ entries: [entry(i, 1)] }));
  clock.advanceBy(1);
  t.same(s.durableLog(), []);
  clock.advanceBy(1000);
  await Promise.all(ps);
  const log = s.durableLog();
  t.equal(log.length, 5000);
  t.ok(log.every((e, i) => e.index === i + 1));
});

t.test('appends are fast: 200k entries in batches of 64', async (t) => {
  const s = new MemoryStorage();
  await s.open();
  const n = 200_000;
  const batches: LogEntry[][] = [];
  for (let i = 1; i <= n; i += 64) batches.push(range(i, Math.min(n, i + 63), 1));
  const start = performance.now();
  for (const b of batches) await s.write({ entries: b });
  const ms = performance.now() - start;
  t.equal(s.durableLog().length, n);
  t.ok(ms < 1000, `200k entries in ${ms.toFixed(1)} ms`);
});

// -- snapshots: only synced changes survive a crash ---------------------------------

const SNAP_CONFIG = { servers: [{ id: 'a', address: 'a' }] };
const snapDesc = (index: number, term: number) => ({ index, term, configuration: SNAP_CONFIG, configurationIndex: 0 });
const readAll = async (chunks: AsyncIterable<Uint8Array>): Promise<number[]> => {
  const out: number[] = [];
  for await (const c of chunks) out.push(...c);
  return out;
};

t.test('snapshot chunks, commits and compactions are durable only once synced', async (t) => {
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: 10 });
  await s.open();
  const staging = s.stageSnapshot(snapDesc(5, 1));
  clock.advanceBy(10);
  const st = await staging;
  const a1 = st.append(Uint8Array.of(1, 2));
  clock.advanceBy(10);
  await a1;
  void st.append(Uint8Array.of(3)).catch(() => {}); // not synced when the crash comes
  t.same([st.size, st.chunks], [3, 2], 'accepted at once');
  await s.close();
  await s.open();
  const resumed = await s.resumeSnapshot();
  t.same([resumed?.size, resumed?.chunks], [2, 1], 'only the synced chunk survived');
  const a2 = resumed?.append(Uint8Array.of(3));
  clock.advanceBy(10);
  await a2;
  const committed = resumed?.commit();
  t.same(s.snapshots().map((m) => m.index), [5], 'current for readers at once (accepted)');
  await s.close(); // the commit's sync is still pending
  await t.rejects(committed as Promise<unknown>, ShutdownError);
  t.same(await s.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0, boundaryTerm: 0, snapshot: null }, 'not installed');
  const again = await s.resumeSnapshot();
  t.same([again?.size, again?.chunks], [3, 2], 'the staging is whole');
  const done = again?.commit();
  clock.advanceBy(10);
  const meta = await done;
  await s.close();
  const state = await s.open();
  t.same(state.snapshot, meta, 'installed once synced');
  t.same(await readAll(s.readSnapshot()), [1, 2, 3]);
  t.same([state.firstIndex, state.lastIndex, state.boundaryTerm], [6, 5, 1], 'the empty log restarts after the snapshot');
});

t.test('compact(): the rules of LevelStorage.compact, and durable only once synced', async (t) => {
  const clock = new SimulatedClock();
  const s = new MemoryStorage({ clock, syncDelayMs: 5 });
  await s.open();
  const w = s.write({ entries: [...range(1, 5, 1), ...range(6, 10, 2)] });
  clock.advanceBy(5);
  await w;
  await t.rejects(s.compact(1.5), StorageError);
  await t.rejects(s.compact(-1), StorageError);
  await t.rejects(s.compact(4, 2), { message: /entry 4 has term 1/ });
  await t.rejects(s.compact(20), { message: /term/ }, 'past the end without a term');
  await t.rejects(s.compact(20, 1), { message: /term/ }, 'past the end below the last term');
  const c = s.compact(6, 2);
  await t.rejects(s.entries(6, 6), StorageError, 'compacted at once for readers');
  t.same(indexes(await s.entries(7, 10)), [7, 8, 9, 10]);
  await t.rejects(s.write({ truncateFrom: 6, entries: [] }), StorageError, 'truncation below the first index');
  clock.advanceBy(5);
  await c;
  const below = s.compact(3); // a no-op, still ordered
  clock.advanceBy(5);
  await below;
  t.same(indexes(s.durableLog()), [7, 8, 9, 10]);
  const past = s.compact(20, 3);
  const after = s.write({ entries: [entry(21, 3)] }); // validated against the compaction issued before it
  await s.close(); // neither synced
  await t.rejects(past, ShutdownError);
  await t.rejects(after, ShutdownError);
  t.same(await s.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 7, lastIndex: 10, boundaryTerm: 2, snapshot: null });
  await s.close();
  await t.rejects(s.compact(8), ShutdownError);
  t.throws(() => new MemoryStorage({ keepSnapshots: 0 }), { name: 'ConfigurationError', option: 'keepSnapshots' });
});
