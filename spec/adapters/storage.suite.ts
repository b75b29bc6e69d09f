/**
 * The {@link RaftStorage} conformance suite: one set of tests every storage
 * adapter must pass. It asserts only the contract in
 * adapters/storage/storage.ts plus the behaviour the adapters document in
 * common (validation, lifecycle errors), never an adapter's internals.
 *
 * Contract notes the suite pins down:
 * - `entries()` sees every write issued before it (read-your-writes), whether
 *   or not that write is synced yet.
 * - On `close()` with writes in flight, every write promise settles: it either
 *   resolves (then it survives a reopen) or rejects with `ShutdownError`
 *   (then it may or may not survive). What a reopen finds is always the state
 *   after some prefix of the writes, in call order, that includes every
 *   resolved one.
 * - Lifecycle: use before `open()` rejects with `StorageError`, a second
 *   `open()` with `StorageError`, use after `close()` with `ShutdownError`.
 * - Snapshots (adapters with a {@link SnapshotStore}): chunks staged in
 *   order survive a restart and resume where the synced ones end; a snapshot
 *   becomes current only when `commit` resolves, so a restart before that
 *   keeps the previous one; the log is kept when it holds the snapshot's last
 *   entry with its term and discarded otherwise (§7); the newest N are kept;
 *   `open()` reports the current snapshot and the boundary term.
 */
import type { Test } from 'tap';
import { crc32Js } from '../../adapters/storage/crc32.js';
import {
  hasSnapshotStore,
  type RaftStorage,
  type SnapshotDescriptor,
  type SnapshotStore,
  type StoredState,
} from '../../adapters/storage/storage.js';
import { ShutdownError, StorageCorruptionError, StorageError } from '../../errors.js';
import type { Configuration, EntryType, HardState, LogEntry } from '../../machines/types.js';

/** How the suite gets storages for one test; each test calls the factory maker once. */
export interface StorageFactory {
  /** A new, unopened storage over fresh, empty data. Called once per test, first. */
  create(): RaftStorage | Promise<RaftStorage>;
  /**
   * An unopened storage over the same underlying data as the previous one,
   * which the suite has closed: a process restart. May return the same
   * instance if the adapter supports opening again after close.
   */
  reopen(): RaftStorage | Promise<RaftStorage>;
  /**
   * Optional: damages chunk `seq` of the newest staging or snapshot (the one
   * staged or installed last) as stored, so that reading it fails its check.
   * `appended` is the buffer the suite passed to `append` for that chunk
   * (an adapter that keeps chunks by reference may damage it). Returns the
   * key the adapter's {@link StorageCorruptionError} must name.
   */
  corruptChunk?(target: { readonly kind: 'staged' } | { readonly kind: 'installed'; readonly index: number }, seq: number, appended: Uint8Array): Promise<string>;
}

/** Makes a fresh factory for one test; register cleanup with `t.teardown`. */
export type StorageFactoryMaker = (t: Test) => StorageFactory | Promise<StorageFactory>;

const EMPTY = new Uint8Array(0);

export const entry = (index: number, term: number, type: EntryType = 'normal', data: Uint8Array = EMPTY): LogEntry => ({
  index,
  term,
  type,
  data,
});

export const range = (from: number, to: number, term: number): LogEntry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term, 'normal', Uint8Array.of((from + i) & 0xff)));

/** An entry as plain data for `t.same` (bytes as a number array). */
const plain = (e: LogEntry): [number, number, EntryType, number[]] => [e.index, e.term, e.type, Array.from(e.data)];
const plainAll = (log: readonly LogEntry[]): Array<[number, number, EntryType, number[]]> => log.map(plain);

const FRESH: StoredState = { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0, boundaryTerm: 0, snapshot: null };

const CONFIG: Configuration = {
  servers: [
    { id: 'a', address: 'ws://127.0.0.1:7001' },
    { id: 'b', address: 'ws://127.0.0.1:7002', suffrage: 'learner' },
  ],
};

const desc = (index: number, term: number, configurationIndex = 1): SnapshotDescriptor => ({
  index,
  term,
  configuration: CONFIG,
  configurationIndex,
});

/** `n` deterministic bytes starting from `seed`. */
const bytesOf = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + (i >> 8)) & 0xff);

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** The whole content of an iterable of chunks. */
async function drain(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  return concat(parts);
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** All entries the store holds after opening (empty array when none). */
async function readAll(s: RaftStorage, state: StoredState): Promise<LogEntry[]> {
  return state.lastIndex >= state.firstIndex ? s.entries(state.firstIndex, state.lastIndex) : [];
}

/** A tiny model of the log a sequence of writes must produce. */
class Model {
  log: LogEntry[] = [];
  hardState: HardState = { term: 0, votedFor: null };
  apply(w: { truncateFrom?: number; entries: readonly LogEntry[]; hardState?: HardState }): void {
    if (w.truncateFrom !== undefined && w.truncateFrom - 1 < this.log.length) this.log.length = w.truncateFrom - 1;
    this.log.push(...w.entries);
    if (w.hardState !== undefined) this.hardState = w.hardState;
  }
}

/**
 * Writes every storage must refuse (with `StorageError`, changing nothing) on a
 * store holding entries 1 (term 1), 2 and 3 (term 2) and hard state (2, 'a').
 */
export const BAD_WRITES: ReadonlyArray<readonly [string, Parameters<RaftStorage['write']>[0]]> = [
  ['gap after the last index', { entries: [entry(5, 2)] }],
  ['overlap without truncation', { entries: [entry(3, 2)] }],
  ['not contiguous inside the batch', { entries: [entry(4, 2), entry(6, 2)] }],
  ['truncateFrom 0', { truncateFrom: 0, entries: [] }],
  ['truncateFrom fractional', { truncateFrom: 1.5, entries: [] }],
  ['truncate then a gap', { truncateFrom: 2, entries: [entry(3, 2)] }],
  ['term 0', { entries: [entry(4, 0)] }],
  ['term fractional', { entries: [entry(4, 2.5)] }],
  ['term decreasing against the log', { entries: [entry(4, 1)] }],
  ['term decreasing inside the batch', { entries: [entry(4, 3), entry(5, 2)] }],
  ['term decreasing after truncation', { truncateFrom: 3, entries: [entry(3, 1)] }],
  ['hard state term decreasing', { hardState: { term: 1, votedFor: null }, entries: [] }],
  ['hard state term negative', { hardState: { term: -1, votedFor: null }, entries: [] }],
  ['vote changed within a term', { hardState: { term: 2, votedFor: 'b' }, entries: [] }],
  ['vote withdrawn within a term', { hardState: { term: 2, votedFor: null }, entries: [] }],
  ['entries not an array', { entries: null as unknown as LogEntry[] }],
  ['votedFor not a string', { hardState: { term: 3, votedFor: 7 as unknown as string }, entries: [] }],
  // A valid prefix does not get in when a later part is bad.
  ['good entries, bad hard state', { entries: [entry(4, 2)], hardState: { term: 1, votedFor: null } }],
  ['good truncation, bad entries', { truncateFrom: 2, entries: [entry(2, 2), entry(4, 2)] }],
];

/**
 * Registers the conformance tests for one adapter under `name`.
 *
 * @example
 * ```ts
 * storageConformance(t, 'MemoryStorage', () => { const s = new MemoryStorage(); return { create: () => s, reopen: () => s }; });
 * ```
 */
export function storageConformance(t: Test, name: string, make: StorageFactoryMaker): void {
  t.test(`${name}: storage conformance`, async (t) => {
    /** Runs one test with a fresh factory; returns the opened first storage. */
    const setup = async (t: Test): Promise<{ s: RaftStorage; f: StorageFactory; state: StoredState }> => {
      const f = await make(t);
      const s = await f.create();
      const state = await s.open();
      t.teardown(() => s.close());
      return { s, f, state };
    };
    /** Closes `s` and opens the same data again. */
    const restart = async (t: Test, s: RaftStorage, f: StorageFactory): Promise<{ s: RaftStorage; state: StoredState }> => {
      await s.close();
      const next = await f.reopen();
      const state = await next.open();
      t.teardown(() => next.close());
      return { s: next, state };
    };

    t.test('a fresh store opens empty', async (t) => {
      const { s, f, state } = await setup(t);
      t.same(state, FRESH);
      t.same(await s.entries(1, 0), []);
      const again = await restart(t, s, f);
      t.same(again.state, FRESH, 'and stays empty across a reopen');
    });

    t.test('append and read back', async (t) => {
      const { s } = await setup(t);
      const log = [entry(1, 1), entry(2, 1, 'noop'), entry(3, 2, 'normal', Uint8Array.of(1, 2, 3))];
      await s.write({ entries: log.slice(0, 2) });
      await s.write({ entries: log.slice(2) });
      t.same(plainAll(await s.entries(1, 3)), plainAll(log));
      t.same(plainAll(await s.entries(2, 2)), plainAll([log[1] as LogEntry]));
      t.same(plainAll(await s.entries(3, 3)), plainAll([log[2] as LogEntry]));
      t.same(await s.entries(4, 3), [], 'empty range right after the last index');
    });

    t.test('truncation, appends and hard state in one write', async (t) => {
      const { s, f } = await setup(t);
      await s.write({ hardState: { term: 1, votedFor: 'a' }, entries: range(1, 5, 1) });
      await s.write({ truncateFrom: 3, entries: [entry(3, 2), entry(4, 2)], hardState: { term: 2, votedFor: 'b' } });
      t.same(
        (await s.entries(1, 4)).map((e) => e.term),
        [1, 1, 2, 2],
      );
      await t.rejects(s.entries(5, 5), StorageError, 'the truncated entry 5 is gone');
      const again = await restart(t, s, f);
      t.same(again.state, { hardState: { term: 2, votedFor: 'b' }, firstIndex: 1, lastIndex: 4, boundaryTerm: 0, snapshot: null });
      t.same(
        (await again.s.entries(1, 4)).map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 1],
          [3, 2],
          [4, 2],
        ],
      );
      // Truncation alone, and truncation past the end (deletes nothing).
      await again.s.write({ truncateFrom: 10, entries: [] });
      await again.s.write({ truncateFrom: 2, entries: [] });
      await t.rejects(again.s.entries(2, 2), StorageError);
      const third = await restart(t, again.s, f);
      t.equal(third.state.lastIndex, 1);
    });

    t.test('writes issued without awaiting apply in call order', async (t) => {
      const { s, f } = await setup(t);
      const model = new Model();
      const writes = [
        { entries: range(1, 4, 1), hardState: { term: 1, votedFor: null } },
        { entries: range(5, 6, 1) },
        { truncateFrom: 3, entries: range(3, 5, 2), hardState: { term: 2, votedFor: 'x' } },
        { truncateFrom: 5, entries: [] },
        { entries: [entry(5, 3, 'noop')], hardState: { term: 3, votedFor: null } },
        { truncateFrom: 2, entries: range(2, 3, 4) },
        { entries: range(4, 8, 4), hardState: { term: 4, votedFor: 'y' } },
      ];
      const order: number[] = [];
      const promises = writes.map((w, i) => {
        model.apply(w);
        const p = s.write(w);
        void p.then(() => order.push(i));
        return p;
      });
      // A read issued now sees every write issued before it.
      const read = s.entries(1, 8);
      await Promise.all(promises);
      t.same(order, [0, 1, 2, 3, 4, 5, 6], 'promises resolve in call order');
      t.same(plainAll(await read), plainAll(model.log));
      const again = await restart(t, s, f);
      t.same(again.state, { hardState: model.hardState, firstIndex: 1, lastIndex: 8, boundaryTerm: 0, snapshot: null });
      t.same(plainAll(await again.s.entries(1, 8)), plainAll(model.log));
    });

    t.test('durable across reopen, and writing continues after it', async (t) => {
      const { s, f } = await setup(t);
      const model = new Model();
      for (let i = 1; i <= 50; i += 5) {
        const w = { entries: range(i, i + 4, Math.ceil(i / 10)), hardState: { term: Math.ceil(i / 10), votedFor: `n${Math.ceil(i / 10)}` } };
        model.apply(w);
        await s.write(w);
      }
      let cur = await restart(t, s, f);
      t.same(cur.state, { hardState: model.hardState, firstIndex: 1, lastIndex: 50, boundaryTerm: 0, snapshot: null });
      t.same(plainAll(await readAll(cur.s, cur.state)), plainAll(model.log));
      const w = { truncateFrom: 49, entries: range(49, 60, 6) };
      model.apply(w);
      await cur.s.write(w);
      cur = await restart(t, cur.s, f);
      t.same(cur.state, { hardState: model.hardState, firstIndex: 1, lastIndex: 60, boundaryTerm: 0, snapshot: null });
      t.same(plainAll(await readAll(cur.s, cur.state)), plainAll(model.log));
    });

    t.test('a bad write rejects with StorageError and changes nothing', async (t) => {
      const { s, f } = await setup(t);
      await s.write({ hardState: { term: 2, votedFor: 'a' }, entries: [entry(1, 1), entry(2, 2), entry(3, 2)] });
      const bad = BAD_WRITES;
      for (const [what, write] of bad) {
        await t.rejects(s.write(write), StorageError, what);
      }
      t.same(
        (await s.entries(1, 3)).map((e) => [e.index, e.term]),
        [
          [1, 1],
          [2, 2],
          [3, 2],
        ],
      );
      await t.rejects(s.entries(4, 4), StorageError, 'nothing was appended');
      const again = await restart(t, s, f);
      t.same(again.state, { hardState: { term: 2, votedFor: 'a' }, firstIndex: 1, lastIndex: 3, boundaryTerm: 0, snapshot: null }, 'nothing reached the disk');

      // The valid neighbours of those cases pass, in order.
      const good = [
        again.s.write({ truncateFrom: 10, entries: [entry(4, 2)] }),
        again.s.write({ truncateFrom: 3, entries: [entry(3, 3)] }),
        again.s.write({ hardState: { term: 2, votedFor: 'a' }, entries: [] }),
        again.s.write({ hardState: { term: 3, votedFor: null }, entries: [] }),
        again.s.write({ hardState: { term: 3, votedFor: 'c' }, entries: [] }),
        again.s.write({ entries: [entry(4, 3), entry(5, 3)] }),
        again.s.write({ truncateFrom: 1, entries: [] }),
      ];
      await Promise.all(good);
      const third = await restart(t, again.s, f);
      t.same(third.state, { hardState: { term: 3, votedFor: 'c' }, firstIndex: 1, lastIndex: 0, boundaryTerm: 0, snapshot: null });
    });

    t.test('entries() rejects ranges that are not held', async (t) => {
      const { s } = await setup(t);
      await s.write({ entries: range(1, 3, 1) });
      await t.rejects(s.entries(0, 1), StorageError, 'index 0');
      await t.rejects(s.entries(3, 4), StorageError, 'past the end');
      await t.rejects(s.entries(4, 4), StorageError, 'one past the end');
      await t.rejects(s.entries(3, 1), StorageError, 'from > to + 1');
      await t.rejects(s.entries(1.5, 2), StorageError, 'fractional');
      await t.rejects(s.entries(Number.NaN, 2), StorageError, 'NaN');
      t.same(await s.entries(2, 1), [], 'from === to + 1 is an empty range');
    });

    t.test('data bytes round-trip exactly', async (t) => {
      const { s, f } = await setup(t);
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      const big = new Uint8Array(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
      // A view into a larger buffer: only its own bytes must be stored.
      const backing = Uint8Array.of(0xaa, 1, 2, 3, 0xbb);
      const view = backing.subarray(1, 4);
      const log = [
        entry(1, 1, 'normal', new Uint8Array(0)),
        entry(2, 1, 'normal', all),
        entry(3, 1, 'normal', big),
        entry(4, 1, 'normal', view),
        entry(5, 1, 'normal', Uint8Array.of(0)),
      ];
      await s.write({ entries: log });
      const check = async (store: RaftStorage): Promise<void> => {
        const got = await store.entries(1, 5);
        t.equal(got.length, 5);
        t.equal(got[0]?.data.length, 0, 'empty');
        t.same(Array.from(got[1]?.data ?? []), Array.from(all), 'every byte value');
        t.equal(got[2]?.data.length, big.length, '1 MiB length');
        t.ok(Buffer.compare(Buffer.from(got[2]?.data ?? []), Buffer.from(big)) === 0, '1 MiB content');
        t.same(Array.from(got[3]?.data ?? []), [1, 2, 3], 'a subarray view');
        t.same(Array.from(got[4]?.data ?? []), [0], 'a single zero byte');
        for (const e of got) t.ok(e.data instanceof Uint8Array, 'data is a Uint8Array');
      };
      await check(s);
      const again = await restart(t, s, f);
      await check(again.s);
    });

    t.test('entry types and vote ids round-trip', async (t) => {
      const { s, f } = await setup(t);
      const config = new TextEncoder().encode(JSON.stringify({ voters: ['a', 'b'] }));
      const log = [entry(1, 1, 'noop'), entry(2, 1, 'config', config), entry(3, 1, 'normal', Uint8Array.of(7)), entry(4, 1, 'restore', Uint8Array.of(3, 0, 0, 0, 1))];
      const vote = 'nœud-1 ✓ 🛶';
      await s.write({ entries: log, hardState: { term: 1, votedFor: vote } });
      const again = await restart(t, s, f);
      t.same(again.state.hardState, { term: 1, votedFor: vote });
      t.same(plainAll(await again.s.entries(1, 4)), plainAll(log));
      await again.s.write({ hardState: { term: 2, votedFor: null }, entries: [] });
      const third = await restart(t, again.s, f);
      t.same(third.state.hardState, { term: 2, votedFor: null });
      t.same(plainAll(await third.s.entries(1, 4)), plainAll(log));
    });

    t.test('lifecycle: before open, open twice, after close', async (t) => {
      const f = await make(t);
      const s = await f.create();
      await t.rejects(s.entries(1, 0), StorageError, 'read before open');
      await t.rejects(s.write({ entries: [] }), StorageError, 'write before open');
      await s.open();
      await t.rejects(s.open(), StorageError, 'second open');
      await s.write({ entries: [entry(1, 1)] });
      await s.close();
      await s.close();
      await t.rejects(s.entries(1, 1), ShutdownError, 'read after close');
      // Not awaited on purpose: must not become an unhandled rejection.
      void s.write({ entries: [entry(2, 1)] });
      await t.rejects(s.write({ entries: [entry(2, 1)] }), ShutdownError, 'write after close');
      const again = await f.reopen();
      t.same(await again.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 1, boundaryTerm: 0, snapshot: null });
      await again.close();
    });

    // -- snapshots ---------------------------------------------------------------

    /** Like setup(), for snapshot tests: skips adapters without a snapshot store. */
    const snapSetup = async (t: Test): Promise<{ s: RaftStorage & SnapshotStore; f: StorageFactory; state: StoredState } | null> => {
      const { s, f, state } = await setup(t);
      if (!hasSnapshotStore(s)) {
        t.pass('no snapshot store: skipped');
        return null;
      }
      return { s, f, state };
    };
    const snapRestart = async (t: Test, s: RaftStorage, f: StorageFactory): Promise<{ s: RaftStorage & SnapshotStore; state: StoredState }> => {
      const next = await restart(t, s, f);
      if (!hasSnapshotStore(next.s)) throw new Error('the reopened storage lost its snapshot store');
      return { s: next.s, state: next.state };
    };
    /** Stages `parts` as snapshot `d` and commits it. */
    const install = async (s: SnapshotStore, d: SnapshotDescriptor, parts: readonly Uint8Array[]) => {
      const staging = await s.stageSnapshot(d);
      for (const p of parts) await staging.append(p);
      return staging.commit();
    };

    t.test('snapshot: staged chunks become the current snapshot on commit, and a reopen reports it', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      t.same(s.snapshots(), [], 'a fresh store holds no snapshot');
      await s.write({ entries: [...range(1, 4, 1), ...range(5, 10, 2)] });
      const parts = [bytesOf(1000, 1), new Uint8Array(0), bytesOf(3, 2), bytesOf(70_000, 3)];
      const content = concat(parts);
      const staging = await s.stageSnapshot(desc(6, 2, 3));
      t.same([staging.size, staging.chunks, staging.checksum], [0, 0, 0], 'a new staging is empty');
      t.same(staging.descriptor, desc(6, 2, 3));
      for (const p of parts) await staging.append(p);
      t.same([staging.size, staging.chunks], [content.length, 3], 'size counts bytes, chunks count non-empty appends');
      t.equal(staging.checksum, crc32Js(content), 'running checksum of the staged bytes');
      t.same(s.snapshots(), [], 'not current before commit');
      const meta = await staging.commit({ size: content.length, checksum: crc32Js(content) });
      t.same(meta, { ...desc(6, 2, 3), size: content.length, checksum: crc32Js(content), chunks: 3 });
      t.same(s.snapshots(), [meta]);
      t.ok(sameBytes(await drain(s.readSnapshot()), content), 'content reads back');
      t.ok(sameBytes(await drain(s.readSnapshot(6)), content), 'by index too');
      t.same((await s.entries(1, 10)).map((e) => e.index), range(1, 10, 1).map((e) => e.index), 'the log holds entry 6 with term 2: kept');
      await t.rejects(staging.append(bytesOf(1, 1)), StorageError, 'a committed staging is dead');
      await t.rejects(staging.commit(), StorageError);
      t.equal(await s.resumeSnapshot(), null, 'no staging left');

      const again = await snapRestart(t, s, f);
      t.same(again.state, { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 10, boundaryTerm: 0, snapshot: meta });
      t.same(again.s.snapshots(), [meta]);
      t.ok(sameBytes(await drain(again.s.readSnapshot()), content), 'content survives a reopen');

      // Compaction after the install keeps a tail: the boundary term is reported.
      await again.s.compact(4);
      await t.rejects(again.s.entries(4, 4), StorageError, 'entry 4 is compacted');
      const third = await snapRestart(t, again.s, f);
      t.same(third.state, { hardState: { term: 0, votedFor: null }, firstIndex: 5, lastIndex: 10, boundaryTerm: 1, snapshot: meta });
      await third.s.compact(6, 2);
      const fourth = await snapRestart(t, third.s, f);
      t.same([fourth.state.firstIndex, fourth.state.lastIndex, fourth.state.boundaryTerm], [7, 10, 2], 'compacted to the snapshot index');
      await fourth.s.write({ entries: [entry(11, 2)] });
    });

    t.test('snapshot: installing discards a log that does not hold its last entry with its term (§7)', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      await s.write({ entries: range(1, 5, 1) });
      const meta = await install(s, desc(8, 3), [bytesOf(10, 1)]);
      await t.rejects(s.entries(5, 5), StorageError, 'the short log is gone');
      t.same(await s.entries(9, 8), [], 'the log is empty after index 8');
      await t.rejects(s.write({ entries: [entry(9, 2)] }), StorageError, 'the boundary term 3 holds for validation');
      await s.write({ entries: [entry(9, 3), entry(10, 4)] });
      const again = await snapRestart(t, s, f);
      t.same(again.state, { hardState: { term: 0, votedFor: null }, firstIndex: 9, lastIndex: 10, boundaryTerm: 3, snapshot: meta });
      t.same((await again.s.entries(9, 10)).map((e) => [e.index, e.term]), [[9, 3], [10, 4]]);

      // A log holding the index with another term (a conflicting suffix) is discarded whole, suffix included.
      await again.s.write({ entries: range(11, 14, 4) });
      const meta2 = await install(again.s, desc(12, 5), [bytesOf(20, 2)]);
      await t.rejects(again.s.entries(13, 13), StorageError, 'the conflicting suffix is gone');
      const third = await snapRestart(t, again.s, f);
      t.same(third.state, { hardState: { term: 0, votedFor: null }, firstIndex: 13, lastIndex: 12, boundaryTerm: 5, snapshot: meta2 });
      await third.s.write({ entries: [entry(13, 5)] });
    });

    t.test('snapshot: a staging survives a restart and resumes after its last synced chunk', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      const parts = [bytesOf(500, 1), bytesOf(501, 2), bytesOf(502, 3), bytesOf(7, 4)];
      const staging = await s.stageSnapshot(desc(3, 1));
      for (const p of parts.slice(0, 3)) await staging.append(p);
      const again = await snapRestart(t, s, f);
      t.equal(again.state.snapshot, null, 'nothing installed');
      await t.rejects(staging.append(parts[3] as Uint8Array), { name: /StorageError|ShutdownError/ }, 'a handle from before the restart is dead');
      const resumed = await again.s.resumeSnapshot();
      if (resumed === null) throw new Error('staging lost');
      t.same(resumed.descriptor, desc(3, 1));
      t.same([resumed.size, resumed.chunks], [1503, 3], 'resumes after the third chunk');
      t.equal(resumed.checksum, crc32Js(concat(parts.slice(0, 3))));
      await resumed.append(parts[3] as Uint8Array);
      const meta = await resumed.commit({ size: 1510 });
      t.equal(meta.chunks, 4);
      t.ok(sameBytes(await drain(again.s.readSnapshot()), concat(parts)), 'resumed content is whole');
      t.same([again.s.snapshots().length, await again.s.resumeSnapshot()], [1, null]);
    });

    t.test('snapshot: a crash before commit keeps the previous snapshot; discard restarts cleanly', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      const a = [bytesOf(300, 1), bytesOf(300, 2)];
      const metaA = await install(s, desc(4, 1), a);
      const staging = await s.stageSnapshot(desc(9, 2));
      await staging.append(bytesOf(1000, 9));
      // Not awaited: may or may not be synced when the crash comes.
      void staging.append(bytesOf(1000, 10)).catch(() => {});
      const again = await snapRestart(t, s, f);
      t.same(again.state.snapshot, metaA, 'the previous snapshot is current');
      t.same([again.state.firstIndex, again.state.lastIndex, again.state.boundaryTerm], [5, 4, 1]);
      t.ok(sameBytes(await drain(again.s.readSnapshot()), concat(a)), 'and intact');
      const resumed = await again.s.resumeSnapshot();
      t.ok(resumed !== null && resumed.chunks >= 1 && resumed.chunks <= 2, 'the staging holds a prefix of the appends');
      await resumed?.discard();
      await resumed?.discard(); // idempotent
      t.equal(await again.s.resumeSnapshot(), null, 'discarded');
      const third = await snapRestart(t, again.s, f);
      t.equal(await third.s.resumeSnapshot(), null, 'discarded for good');
      t.same(third.state.snapshot, metaA);
      const metaB = await install(third.s, desc(9, 2), [bytesOf(5, 5)]);
      t.same(third.s.snapshots(), [metaB, metaA]);
    });

    t.test('snapshot: a new staging replaces the old one; stale handles refuse', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      const x = await s.stageSnapshot(desc(5, 1));
      await x.append(bytesOf(100, 1));
      const y = await s.stageSnapshot(desc(7, 2));
      await t.rejects(x.append(bytesOf(1, 1)), StorageError, 'replaced staging refuses appends');
      await t.rejects(x.commit(), StorageError, 'and commit');
      await x.discard(); // a no-op: it must not discard the live staging
      t.same([y.size, y.chunks], [0, 0]);
      await y.append(bytesOf(10, 2));
      const again = await snapRestart(t, s, f);
      const resumed = await again.s.resumeSnapshot();
      t.same([resumed?.descriptor.index, resumed?.size], [7, 10], 'the replacement is what survives');
      const meta = await resumed?.commit();
      t.ok(sameBytes(await drain(again.s.readSnapshot()), bytesOf(10, 2)));
      t.equal(meta?.index, 7);
    });

    t.test('snapshot: bad descriptors, chunks, mismatches and old snapshots are refused', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      const bad: Array<[string, SnapshotDescriptor]> = [
        ['index 0', desc(0, 1, 0)],
        ['term 0', desc(3, 0)],
        ['fractional index', desc(2.5, 1)],
        ['configuration index past the snapshot', desc(3, 1, 4)],
        ['negative configuration index', desc(3, 1, -1)],
        ['configuration without servers', { ...desc(3, 1), configuration: {} as Configuration }],
        ['not an object', null as unknown as SnapshotDescriptor],
      ];
      for (const [what, d] of bad) await t.rejects(s.stageSnapshot(d), StorageError, what);
      t.equal(await s.resumeSnapshot(), null, 'no staging was started');
      const staging = await s.stageSnapshot(desc(5, 2));
      await t.rejects(staging.append('abc' as unknown as Uint8Array), StorageError, 'a chunk must be bytes');
      await staging.append(bytesOf(10, 1));
      await t.rejects(staging.commit({ size: 11 }), { name: 'StorageError', message: /11/ }, 'size mismatch');
      await t.rejects(staging.commit({ checksum: 1 }), StorageError, 'checksum mismatch');
      t.equal(staging.size, 10, 'the staging is still there');
      await staging.commit();
      for (const [what, d] of [['same index', desc(5, 2)], ['older index', desc(4, 2)]] as const) {
        const old = await s.stageSnapshot(d);
        await t.rejects(old.commit(), { name: 'StorageError', message: /not newer/ }, what);
        await old.discard();
      }
      const again = await snapRestart(t, s, f);
      t.equal(again.s.snapshots().length, 1);
      t.equal(await again.s.resumeSnapshot(), null);
      await t.rejects(drain(again.s.readSnapshot(4)), StorageError, 'no snapshot at index 4');
    });

    t.test('snapshot: the newest N are kept (2 by default)', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      await t.rejects(drain(s.readSnapshot()), StorageError, 'nothing to read yet');
      const metas = [];
      for (let i = 1; i <= 4; i++) metas.push(await install(s, desc(2 * i, i), [bytesOf(100 * i, i), bytesOf(3, i)]));
      t.same(s.snapshots(), [metas[3], metas[2]]);
      t.ok(sameBytes(await drain(s.readSnapshot(6)), concat([bytesOf(300, 3), bytesOf(3, 3)])), 'the previous one is readable');
      await t.rejects(drain(s.readSnapshot(4)), StorageError, 'older ones are gone');
      const again = await snapRestart(t, s, f);
      t.same(again.s.snapshots(), [metas[3], metas[2]]);
      t.ok(sameBytes(await drain(again.s.readSnapshot()), concat([bytesOf(400, 4), bytesOf(3, 4)])));
    });

    t.test('snapshot: an empty snapshot', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      const staging = await s.stageSnapshot(desc(1, 1, 0));
      await staging.append(new Uint8Array(0));
      const meta = await staging.commit({ size: 0, checksum: 0 });
      t.same(meta, { ...desc(1, 1, 0), size: 0, checksum: 0, chunks: 0 });
      t.equal((await drain(s.readSnapshot())).length, 0);
      const again = await snapRestart(t, s, f);
      t.same(again.state.snapshot, meta);
      t.equal((await drain(again.s.readSnapshot())).length, 0);
    });

    t.test('snapshot: a damaged chunk fails with StorageCorruptionError naming its key', async (t) => {
      const setupResult = await snapSetup(t);
      if (setupResult === null) return;
      const { s, f } = setupResult;
      if (f.corruptChunk === undefined) {
        t.pass('the factory cannot damage chunks: skipped');
        return;
      }
      const first = [bytesOf(200, 1), bytesOf(200, 2)];
      const metaA = await install(s, desc(3, 1), first);
      const key = await f.corruptChunk({ kind: 'installed', index: 3 }, 1, first[1] as Uint8Array);
      const readErr = await drain(s.readSnapshot()).then(() => null, (e: unknown) => e);
      t.type(readErr, StorageCorruptionError, 'reading a damaged snapshot fails');
      t.match(readErr, { code: 'STORAGE_CORRUPTION', key });

      const parts = [bytesOf(100, 3), bytesOf(100, 4), bytesOf(100, 5)];
      const staging = await s.stageSnapshot(desc(6, 2));
      for (const p of parts) await staging.append(p);
      const stagedKey = await f.corruptChunk({ kind: 'staged' }, 2, parts[2] as Uint8Array);
      const err = await staging.commit().then(() => null, (e: unknown) => e);
      t.type(err, StorageCorruptionError, 'commit verifies every staged chunk');
      t.match(err, { key: stagedKey });
      const again = await snapRestart(t, s, f);
      t.same(again.state.snapshot, metaA, 'the previous snapshot is still current');
      const resumed = await again.s.resumeSnapshot();
      t.equal(resumed?.chunks, 3, 'the damaged staging is still there to discard');
      await resumed?.discard();
      t.equal(await again.s.resumeSnapshot(), null);
    });

    t.test('snapshot: lifecycle errors', async (t) => {
      const f = await make(t);
      const s = await f.create();
      if (!hasSnapshotStore(s)) {
        t.pass('no snapshot store: skipped');
        return;
      }
      await t.rejects(s.stageSnapshot(desc(1, 1)), StorageError, 'stage before open');
      await t.rejects(s.compact(1, 1), StorageError, 'compact before open');
      await s.open();
      const staging = await s.stageSnapshot(desc(1, 1));
      await s.close();
      await t.rejects(s.stageSnapshot(desc(1, 1)), ShutdownError, 'stage after close');
      await t.rejects(s.resumeSnapshot(), ShutdownError, 'resume after close');
      await t.rejects(staging.append(bytesOf(1, 1)), ShutdownError, 'append after close');
      await t.rejects(drain(s.readSnapshot()), ShutdownError, 'read after close');
      t.same(s.snapshots(), [], 'a closed store lists nothing');
    });

    // Writes go out in chunks with a pause between them (none, a microtask, a
    // macrotask) so that close() lands with writes queued, handed to the
    // engine, or already synced, depending on the adapter.
    const pauses: Array<[string, () => Promise<void> | null]> = [
      ['no pause', () => null],
      ['a microtask', () => Promise.resolve()],
      ['a macrotask', () => new Promise((resolve) => setImmediate(resolve))],
    ];
    for (const [pauseName, pause] of pauses) {
      t.test(`close with writes in flight (${pauseName} between chunks): the reopened state is a prefix of the writes`, async (t) => {
        const unhandled: unknown[] = [];
        const onUnhandled = (reason: unknown): void => {
          unhandled.push(reason);
        };
        process.on('unhandledRejection', onUnhandled);
        t.teardown(() => {
          process.off('unhandledRejection', onUnhandled);
        });

        const { s, f } = await setup(t);
        await s.write({ entries: [entry(1, 1)], hardState: { term: 1, votedFor: null } });
        const chunks = 4;
        const chunk = 10;
        const n = chunks * chunk;
        // Write k appends entry k+2 with term k+2 and sets the term to k+2: every prefix is a distinct state.
        const outcomes: Array<'resolved' | Error> = [];
        const settled: Array<Promise<void>> = [];
        let closed: Promise<void> = Promise.resolve();
        for (let c = 0; c < chunks; c++) {
          for (let k = c * chunk; k < (c + 1) * chunk; k++) {
            const p = s.write({ entries: [entry(k + 2, k + 2)], hardState: { term: k + 2, votedFor: null } });
            settled.push(
              p.then(
                () => {
                  outcomes[k] = 'resolved';
                },
                (err: unknown) => {
                  outcomes[k] = err as Error;
                },
              ),
            );
          }
          if (c === chunks - 2) closed = s.close(); // the last chunk is written after close()
          const wait = pause();
          if (wait !== null) await wait;
        }
        await closed;
        await Promise.all(settled);
        let resolved = 0;
        while (resolved < n && outcomes[resolved] === 'resolved') resolved++;
        t.ok(
          outcomes.slice(resolved).every((o) => o instanceof ShutdownError),
          'resolved writes form a prefix; the rest rejected with ShutdownError',
        );
        t.ok(resolved <= (chunks - 1) * chunk, 'no write issued after close() resolved');
        const again = await f.reopen();
        const state = await again.open();
        t.teardown(() => again.close());
        const kept = state.lastIndex - 1; // how many of the n writes survived
        t.ok(kept >= resolved && kept <= (chunks - 1) * chunk, `kept ${kept} writes, ${resolved} resolved`);
        t.same(state.hardState, { term: kept + 1, votedFor: null }, 'hard state from the same prefix');
        t.same(
          (await again.entries(1, state.lastIndex)).map((e) => [e.index, e.term]),
          Array.from({ length: kept + 1 }, (_, i) => [i + 1, i + 1]),
        );
        await again.write({ entries: [entry(state.lastIndex + 1, kept + 1)] });
        t.same(unhandled, [], 'no unhandled rejections');
      });
    }
  });
}
