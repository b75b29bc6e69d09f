import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MemoryLevel } from 'memory-level';
import t from 'tap';
import type { Test } from 'tap';
import { LevelStorage } from '../../adapters/storage/level.js';
import { crc32Js, loadCrc32 } from '../../adapters/storage/crc32.js';
import { seededRandom } from '../../adapters/random.js';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigurationError, ShutdownError, StorageCorruptionError, StorageError } from '../../errors.js';
import type { LogEntry } from '../../machines/types.js';
import { entry, range } from './storage.suite.js';

type Db = MemoryLevel<Uint8Array, Uint8Array>;
const VIEW = { keyEncoding: 'view', valueEncoding: 'view' } as const;

const newDb = (t: Test): Db => {
  const db = new MemoryLevel<Uint8Array, Uint8Array>(VIEW);
  t.teardown(() => db.close());
  return db;
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The documented key of log entry `index`: 'l' ‖ u64 big-endian. */
const logKey = (index: number): Uint8Array => {
  const key = new Uint8Array(9);
  key[0] = 0x6c;
  const view = new DataView(key.buffer);
  view.setUint32(1, Math.floor(index / 2 ** 32));
  view.setUint32(5, index >>> 0);
  return key;
};

/** A record per the documented layout: crc32(key ‖ body) big-endian ‖ body. */
const seal = (key: Uint8Array, body: Uint8Array): Uint8Array => {
  const value = new Uint8Array(4 + body.length);
  value.set(body, 4);
  new DataView(value.buffer).setUint32(0, crc32(body, crc32(key)));
  return value;
};

/** Every raw record, as hex pairs. */
const dump = async (db: Db): Promise<Array<[string, string]>> => {
  const out: Array<[string, string]> = [];
  for await (const [k, v] of db.iterator(VIEW)) out.push([hex(k), hex(v)]);
  return out;
};

/** XORs byte `i` of `bytes` with `mask`. */
const flip = (bytes: Uint8Array, i: number, mask: number): void => {
  bytes[i] = (bytes[i] ?? 0) ^ mask;
};

const raw = async (db: Db, key: Uint8Array): Promise<Uint8Array> => {
  const v = await db.get(key, VIEW);
  if (v === undefined) throw new Error(`no record ${hex(key)}`);
  return Uint8Array.from(v);
};

/** A store over `db` holding entries 1..n (terms 1), closed. */
const filled = async (db: Db, n: number, options: { tornTail?: 'repair' | 'reject' } = {}): Promise<void> => {
  const s = new LevelStorage({ db, ...options });
  await s.open();
  await s.write({ hardState: { term: 1, votedFor: 'a' }, entries: range(1, n, 1) });
  await s.close();
};

t.test('record layout is the documented one', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ hardState: { term: 3, votedFor: 'n2' }, entries: [entry(1, 3, 'config', Uint8Array.of(9, 8))] });
  await s.close();
  const u64 = (n: number): number[] => [0, 0, 0, 0, 0, 0, 0, n];
  t.same(
    await dump(db),
    [
      [hex(logKey(1)), hex(seal(logKey(1), Uint8Array.of(2, ...u64(1), ...u64(3), 9, 8)))],
      [hex(ascii('meta:format')), hex(seal(ascii('meta:format'), Uint8Array.of(0, 0, 0, 1)))],
      [hex(ascii('meta:hardstate')), hex(seal(ascii('meta:hardstate'), Uint8Array.of(...u64(3), 1, ...ascii('n2'))))],
    ],
  );
  t.equal(hex(logKey(256)) > hex(logKey(255)), true, 'keys sort numerically');
});

t.test('a corrupted record inside the log refuses to open and changes nothing', async (t) => {
  const db = newDb(t);
  await filled(db, 5);
  const bad = await raw(db, logKey(3));
  flip(bad, bad.length - 1, 0x01); // flip a data bit
  await db.put(logKey(3), bad, VIEW);
  const before = await dump(db);

  const s = new LevelStorage({ db });
  const err = await s.open().then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, StorageCorruptionError);
  t.match(err, { code: 'STORAGE_CORRUPTION', key: hex(logKey(3)), index: 3 });
  t.match((err as Error).message, /6c0000000000000003.*log index 3/);
  t.same(await dump(db), before, 'no record was touched');
  t.notOk(s.isOpen());
  await t.rejects(s.write({ entries: [entry(6, 1)] }), ShutdownError, 'a store that failed to open is closed');

  // The same with tornTail 'reject', and a bad record in the first position.
  await db.put(logKey(3), seal(logKey(3), (await raw(db, logKey(2))).subarray(4)), VIEW); // index 2's body under key 3
  await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', key: hex(logKey(3)), index: 3 }, 'a record under the wrong key');
  const first = await raw(db, logKey(1));
  await db.put(logKey(1), first.subarray(0, 6), VIEW);
  await t.rejects(new LevelStorage({ db, tornTail: 'reject' }).open(), { name: 'StorageCorruptionError', key: hex(logKey(1)), index: 1 });
});

t.test('a corrupted hard state, format or reserved record refuses to open', async (t) => {
  for (const name of ['meta:hardstate', 'meta:format']) {
    const db = newDb(t);
    await filled(db, 2);
    const key = ascii(name);
    const v = await raw(db, key);
    flip(v, 5, 0x80);
    await db.put(key, v, VIEW);
    await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', key: name, index: null }, name);
  }
  for (const name of ['meta:membership', 'meta:snapshot', 'meta:first']) {
    const db = newDb(t);
    await filled(db, 2);
    await db.put(ascii(name), Uint8Array.of(1, 2, 3, 4, 5), VIEW);
    await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', key: name, index: null }, name);
  }
  // A well-sealed hard state that does not decode.
  const db = newDb(t);
  await filled(db, 1);
  await db.put(ascii('meta:hardstate'), seal(ascii('meta:hardstate'), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1, 7)), VIEW);
  await t.rejects(new LevelStorage({ db }).open(), { key: 'meta:hardstate', message: /vote flag/ });
});

t.test('a torn tail is repaired: the last index steps back and writing continues', async (t) => {
  const db = newDb(t);
  await filled(db, 5);
  const last = await raw(db, logKey(5));
  await db.put(logKey(5), last.subarray(0, last.length - 3), VIEW); // a value cut short

  const s = new LevelStorage({ db });
  t.same(await s.open(), { hardState: { term: 1, votedFor: 'a' }, firstIndex: 1, lastIndex: 4, boundaryTerm: 0, snapshot: null });
  t.same(s.recovery(), { droppedIndexes: [5], droppedKeys: [hex(logKey(5))] });
  t.equal(await db.get(logKey(5), VIEW), undefined, 'the torn record was deleted');
  t.same(
    (await s.entries(1, 4)).map((e) => e.index),
    [1, 2, 3, 4],
  );
  await s.write({ entries: [entry(5, 2, 'normal', Uint8Array.of(55))] });
  await s.close();
  const again = new LevelStorage({ db });
  t.same((await again.open()).lastIndex, 5);
  t.equal(again.recovery(), null);
  t.same(Array.from((await again.entries(5, 5))[0]?.data ?? []), [55]);
  await again.close();
});

t.test('a torn tail of several records, an empty value, and tornTail "reject"', async (t) => {
  const db = newDb(t);
  await filled(db, 6);
  await db.put(logKey(5), new Uint8Array(0), VIEW);
  await db.put(logKey(6), (await raw(db, logKey(6))).subarray(0, 2), VIEW);
  const before = await dump(db);
  await t.rejects(new LevelStorage({ db, tornTail: 'reject' }).open(), { name: 'StorageCorruptionError', index: 5 });
  t.same(await dump(db), before, "'reject' changes nothing");
  const s = new LevelStorage({ db });
  t.equal((await s.open()).lastIndex, 4);
  t.same(s.recovery()?.droppedIndexes, [5, 6]);
  await s.close();
});

t.test('a gap in the log refuses to open', async (t) => {
  const db = newDb(t);
  await filled(db, 5);
  await db.del(logKey(3), VIEW);
  const err = await new LevelStorage({ db }).open().then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, StorageCorruptionError);
  t.match(err, { key: hex(logKey(4)), index: 4, message: /gap.*expected index 3/ });

  const first = newDb(t);
  await filled(first, 3);
  await first.del(logKey(1), VIEW);
  await t.rejects(new LevelStorage({ db: first }).open(), { index: 2, message: /expected index 1/ }, 'missing first entry');

  const junk = newDb(t);
  await filled(junk, 2);
  await junk.put(Uint8Array.of(0x6c, 1), Uint8Array.of(0), VIEW);
  await t.rejects(new LevelStorage({ db: junk }).open(), { key: '6c01', index: null, message: /well-formed/ });
});

t.test('a well-sealed record with a decreasing term refuses to open', async (t) => {
  const a = newDb(t);
  const sa = new LevelStorage({ db: a });
  await sa.open();
  await sa.write({ entries: [entry(1, 1), entry(2, 2), entry(3, 2)] });
  await sa.close();
  const b = newDb(t);
  await filled(b, 3); // terms 1, 1, 1
  await a.put(logKey(3), await raw(b, logKey(3)), VIEW); // a valid record, from another log
  await t.rejects(new LevelStorage({ db: a }).open(), { key: hex(logKey(3)), index: 3, message: /term 1 is below/ });
});

t.test('format record: written on a fresh store, required once data exists, version checked', async (t) => {
  const db = newDb(t);
  await filled(db, 1);
  const format = ascii('meta:format');
  await db.put(format, seal(format, Uint8Array.of(0, 0, 0, 3)), VIEW);
  await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageError', message: /version 3 is not supported \(this code reads 1 to 2\)/ });
  await db.put(format, seal(format, Uint8Array.of(0, 0, 0, 0)), VIEW);
  await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageError', message: /version 0/ });
  await db.del(format, VIEW);
  await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', key: 'meta:format' });
  await db.put(format, seal(format, Uint8Array.of(1)), VIEW);
  await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', message: /bad length/ });
});

t.test('entries() checks records it reads', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ entries: range(1, 3, 1) });
  const bad = await raw(db, logKey(2));
  flip(bad, 6, 0xff);
  await db.put(logKey(2), bad, VIEW);
  await t.rejects(s.entries(1, 3), { name: 'StorageCorruptionError', index: 2 });
  await db.del(logKey(2), VIEW);
  await t.rejects(s.entries(1, 3), { name: 'StorageError', message: /entry 2 is missing/ });
  await db.del(logKey(3), VIEW);
  await t.rejects(s.entries(3, 3), { name: 'StorageError', message: /entry 3 is missing/ });
  await s.close();
});

t.test('returned data is a copy: mutating it changes nothing stored', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ entries: [entry(1, 1, 'normal', Uint8Array.of(1, 2))] });
  const [e] = await s.entries(1, 1);
  (e?.data as Uint8Array).fill(0);
  t.same(Array.from((await s.entries(1, 1))[0]?.data ?? []), [1, 2]);
  await s.close();
});

t.test('close() during open() waits for it, then closes', async (t) => {
  const db = newDb(t);
  await filled(db, 3);
  const s = new LevelStorage({ db });
  const opened = s.open();
  await t.rejects(s.open(), StorageError, 'a second open while opening');
  await s.close();
  t.equal((await opened).lastIndex, 3);
  t.notOk(s.isOpen());
  await t.rejects(s.entries(1, 1), ShutdownError);
  const never = new LevelStorage({ db });
  await never.close();
  t.equal((await never.open()).lastIndex, 3, 'closing a never-opened store does not prevent opening it');
  await never.close();
});

t.test('options are validated', async (t) => {
  const db = newDb(t);
  const bad: Array<[string, unknown]> = [
    ['dbs', { db, dbs: 1 }],
    ['sync', { path: '/tmp/x', sync: true }],
    ['path', { path: '/tmp/x', db }],
    ['path', {}],
    ['path', { path: '' }],
    ['path', { path: 7 }],
    ['db', { db: {} }],
    ['db', { db: null }],
    ['tornTail', { db, tornTail: 'ignore' }],
    ['crc32', { db, crc32: 'zlib' }],
    ['options', null],
    ['options', 'data/n1'],
  ];
  for (const [option, options] of bad) {
    t.throws(
      () => new LevelStorage(options as ConstructorParameters<typeof LevelStorage>[0]),
      { name: 'ConfigurationError', option },
      `${JSON.stringify(options === null ? null : typeof options === 'string' ? options : Object.keys(options as object))} → ${option}`,
    );
  }
  t.type(new LevelStorage({ db, tornTail: 'reject' }), LevelStorage);
  t.ok(new ConfigurationError('x', 'y') instanceof Error);
});

t.test('compact() drops a prefix durably, and writing goes on after it', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ entries: [...range(1, 5, 1), ...range(6, 10, 2)] });
  await t.rejects(s.compact(1.5), StorageError);
  await t.rejects(s.compact(-1), StorageError);
  await t.rejects(s.compact(4, 2), { message: /entry 4 has term 1/ });
  await s.compact(6, 2);
  await s.compact(3); // below the first index: nothing to do
  await t.rejects(s.entries(6, 7), StorageError, 'entry 6 is gone');
  t.same(
    (await s.entries(7, 10)).map((e) => e.index),
    [7, 8, 9, 10],
  );
  await t.rejects(s.write({ truncateFrom: 6, entries: [] }), StorageError, 'truncation below the first index');
  await t.rejects(s.write({ entries: [entry(11, 1)] }), StorageError, 'term check still sees the log');
  t.same(
    (await dump(db)).filter(([k]) => k.startsWith('6c')).map(([k]) => k),
    [7, 8, 9, 10].map((i) => hex(logKey(i))),
    'compacted keys are deleted',
  );
  await s.close();

  let again = new LevelStorage({ db });
  t.same(await again.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 7, lastIndex: 10, boundaryTerm: 2, snapshot: null });
  // Truncate everything held, then append right after the compacted prefix: its term is remembered.
  await t.rejects(again.write({ truncateFrom: 7, entries: [entry(7, 1)] }), { message: /below the previous entry's term 2/ });
  await again.write({ truncateFrom: 7, entries: [entry(7, 3)] });
  await again.compact(7);
  t.same(await again.entries(8, 7), []);
  // Past the end: a snapshot newer than the log. The term is then required.
  await t.rejects(again.compact(20), { message: /term/ });
  await t.rejects(again.compact(20, 2), { message: /term/ }, 'below the last term');
  const c = again.compact(20, 4);
  const w = again.write({ entries: [entry(21, 4)] }); // validated against the compaction issued before it
  await Promise.all([c, w]);
  await again.close();

  again = new LevelStorage({ db });
  t.same(await again.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 21, lastIndex: 21, boundaryTerm: 4, snapshot: null });
  t.same(
    (await again.entries(21, 21)).map((e) => [e.index, e.term]),
    [[21, 4]],
  );
  await t.rejects(again.write({ truncateFrom: 21, entries: [entry(21, 3)] }), { message: /term 4/ });
  await again.close();
  await t.rejects(again.compact(21), ShutdownError);
});

t.test('an interrupted compaction leaves entries below the first index; open deletes them', async (t) => {
  const src = newDb(t);
  const a = new LevelStorage({ db: src });
  await a.open();
  await a.write({ entries: range(1, 6, 1) });
  await a.compact(3);
  await a.close();
  const db = newDb(t);
  await filled(db, 6);
  await db.put(ascii('meta:first'), await raw(src, ascii('meta:first')), VIEW); // the first record synced, clear() lost
  const s = new LevelStorage({ db });
  t.same(await s.open(), { hardState: { term: 1, votedFor: 'a' }, firstIndex: 4, lastIndex: 6, boundaryTerm: 1, snapshot: null });
  t.same(
    (await dump(db)).filter(([k]) => k.startsWith('6c')).map(([k]) => k),
    [4, 5, 6].map((i) => hex(logKey(i))),
  );
  await s.close();
});

t.test('writes issued in one turn share one synced batch', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  const batch = db.batch.bind(db) as (...args: unknown[]) => Promise<void>;
  const calls: unknown[][] = [];
  (db as unknown as { batch: unknown }).batch = (...args: unknown[]): Promise<void> => {
    calls.push(args);
    return batch(...args);
  };
  const writes: Array<Promise<void>> = [];
  for (let i = 1; i <= 100; i++) writes.push(s.write({ entries: [entry(i, 1)], hardState: { term: 1, votedFor: null } }));
  await Promise.all(writes);
  t.equal(calls.length, 1, 'one batch for the turn');
  t.match(calls[0]?.[1], { sync: true });
  t.equal((calls[0]?.[0] as unknown[]).length, 200);
  t.same(
    (await s.entries(1, 100)).map((e) => e.index),
    range(1, 100, 1).map((e) => e.index),
  );
  await s.close();
});

t.test('a failed batch fails the write and every later one until reopened', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ entries: [entry(1, 1)] });
  const batch = db.batch.bind(db) as (...args: unknown[]) => Promise<void>;
  (db as unknown as { batch: unknown }).batch = (): Promise<void> => Promise.reject(new Error('disk full'));
  const w1 = s.write({ entries: [entry(2, 1)] });
  const read = s.entries(1, 2);
  const w2 = s.write({ entries: [entry(3, 1)] });
  await t.rejects(w1, { name: 'StorageError', message: /disk full/ });
  await t.rejects(read, { name: 'StorageError', message: /earlier write failed/ });
  await t.rejects(w2, { name: 'StorageError', message: /earlier write failed/ });
  await t.rejects(s.write({ entries: [] }), { name: 'StorageError', message: /refused/ });
  await t.rejects(s.entries(1, 1), StorageError);
  await s.close();
  (db as unknown as { batch: unknown }).batch = batch;
  const again = new LevelStorage({ db });
  t.equal((await again.open()).lastIndex, 1, 'the disk kept what was synced');
  await again.write({ entries: [entry(2, 1)] });
  await again.close();
});

t.test('classic-level: creates the directory, reopens on the same instance, reports open errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-level-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const s = new LevelStorage({ path: join(dir, 'nested', 'n1') });
  t.same(await s.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 0, boundaryTerm: 0, snapshot: null });
  const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
  await s.write({ hardState: { term: 2, votedFor: 'n1' }, entries: [entry(1, 2, 'normal', data)] });
  await s.close();
  t.same(await s.open(), { hardState: { term: 2, votedFor: 'n1' }, firstIndex: 1, lastIndex: 1, boundaryTerm: 0, snapshot: null }, 'opened again');
  const second = new LevelStorage({ path: join(dir, 'nested', 'n1') });
  await t.rejects(second.open(), StorageError, 'LevelDB lock held by the first instance');
  const got = (await s.entries(1, 1))[0] as LogEntry;
  t.same(Array.from(got.data), Array.from(data));
  await s.close();

  const file = join(dir, 'a-file');
  await writeFile(file, 'not a directory');
  await t.rejects(new LevelStorage({ path: join(file, 'db') }).open(), { name: 'StorageError', message: /cannot open/ });
});

t.test('the portable CRC-32 equals zlib\'s, so stores move between runtimes', async (t) => {
  t.equal(crc32Js(ascii('123456789')), 0xcbf43926, 'the CRC-32/IEEE check value');
  t.equal(crc32Js(new Uint8Array(0)), 0);
  t.equal(crc32Js(new Uint8Array(0), 0x1234), 0x1234, 'empty data continues unchanged');
  const random = seededRandom(0xc3c3);
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const data = new Uint8Array(random.int(0, i < 200 ? 24 : 600));
    for (let j = 0; j < data.length; j++) data[j] = random.int(0, 256);
    const previous = random.int(0, 2 ** 32);
    if (crc32Js(data) !== crc32(data) || crc32Js(data, previous) !== crc32(data, previous)) mismatches++;
  }
  t.equal(mismatches, 0, '2000 random buffers, with and without a previous value');
  t.equal(await loadCrc32(), crc32, 'on this Node the native zlib.crc32 is chosen');
});

t.test('a store written with native CRC-32 opens with the portable one, and back', async (t) => {
  const db = newDb(t);
  await filled(db, 5);
  const portable = new LevelStorage({ db, crc32: crc32Js });
  const state = await portable.open();
  t.equal(state.lastIndex, 5);
  await portable.write({ entries: [entry(6, 2)] });
  await portable.close();
  const native = new LevelStorage({ db });
  t.equal((await native.open()).lastIndex, 6);
  t.same((await native.entries(6, 6)).map((e) => e.term), [2]);
  await native.close();
  const wrong = new LevelStorage({ db, crc32: (d, p = 0) => (crc32(d, p) ^ 1) >>> 0 });
  await t.rejects(wrong.open(), { name: 'StorageCorruptionError' }, 'a different checksum fails loudly');
});

t.test('LevelStorage statically imports no Node module (it runs on browser-level)', async (t) => {
  const STATIC = /^\s*(?:import|export)\s+(?!type\b)[^'";]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm;
  const seen = new Set<string>();
  const offenders: string[] = [];
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC)) {
      const spec = (m[1] ?? m[2]) as string;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (spec.startsWith('node:') || !['abstract-level'].includes(spec)) offenders.push(`${file}: ${spec}`);
    }
  };
  visit(fileURLToPath(new URL('../../adapters/storage/level.ts', import.meta.url)));
  t.ok(seen.size >= 4, `followed ${seen.size} modules`);
  t.same(offenders, [], 'only relative modules and abstract-level, loaded statically');
});

// -- snapshots: the documented layout ------------------------------------------

const u64b = (n: number): number[] => {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, Math.floor(n / 2 ** 32));
  v.setUint32(4, n >>> 0);
  return Array.from(b);
};
const u32b = (n: number): number[] => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return Array.from(b);
};
/** The documented chunk key: 's' ‖ u64 slot ‖ u32 seq. */
const chunkKey = (slot: number, seq: number): Uint8Array => Uint8Array.of(0x73, ...u64b(slot), ...u32b(seq));
const SNAP_CONFIG = { servers: [{ id: 'a', address: 'x' }] };
/** The documented snapshot record. */
const snapRecord = (slot: number, index: number, term: number, configIndex: number, size: number, checksum: number, chunks: number): number[] => {
  const config = ascii(JSON.stringify(SNAP_CONFIG));
  return [...u64b(slot), ...u64b(index), ...u64b(term), ...u64b(configIndex), ...u64b(size), ...u32b(checksum), ...u32b(chunks), ...u32b(config.length), ...config];
};

t.test('snapshot records: the documented layout, and format 2 from the first staging on', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ entries: range(1, 3, 1) });
  const format = ascii('meta:format');
  t.same(Array.from((await raw(db, format)).subarray(4)), [0, 0, 0, 1], 'a store without snapshots stays at format 1');
  const staging = await s.stageSnapshot({ index: 2, term: 1, configuration: SNAP_CONFIG, configurationIndex: 1 });
  t.same(Array.from((await raw(db, format)).subarray(4)), [0, 0, 0, 2], 'staging upgrades the store to format 2');
  const a = Uint8Array.of(1, 2, 3);
  const b = Uint8Array.of(4, 5);
  await staging.append(a);
  await staging.append(b);
  const stagingKey = ascii('meta:staging');
  const crcA = crc32(a);
  const crcAB = crc32(b, crcA);
  t.equal(hex(await raw(db, stagingKey)), hex(seal(stagingKey, Uint8Array.from(snapRecord(1, 2, 1, 1, 5, crcAB, 2)))), 'staging header counts the synced chunks');
  t.equal(hex(await raw(db, chunkKey(1, 0))), hex(seal(chunkKey(1, 0), Uint8Array.of(...u64b(0), 1, 2, 3))), 'chunk 0: offset ‖ bytes');
  t.equal(hex(await raw(db, chunkKey(1, 1))), hex(seal(chunkKey(1, 1), Uint8Array.of(...u64b(3), 4, 5))), 'chunk 1 at offset 3');
  await staging.commit();
  await s.close();
  const snapshotKey = ascii('meta:snapshot');
  t.equal(hex(await raw(db, snapshotKey)), hex(seal(snapshotKey, Uint8Array.of(...u32b(1), ...snapRecord(1, 2, 1, 1, 5, crcAB, 2)))));
  t.equal(await db.get(stagingKey, VIEW), undefined, 'the staging header is gone');
  const keys = (await dump(db)).map(([k]) => k);
  t.same(keys.filter((k) => k.startsWith('73')), [hex(chunkKey(1, 0)), hex(chunkKey(1, 1))]);
});

t.test('snapshot records: damaged metadata refuses to open; dead chunks are deleted at open', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db, keepSnapshots: 1 });
  await s.open();
  for (let i = 1; i <= 2; i++) {
    const st = await s.stageSnapshot({ index: i, term: 1, configuration: SNAP_CONFIG, configurationIndex: 0 });
    await st.append(Uint8Array.of(i));
    await st.commit();
  }
  const st = await s.stageSnapshot({ index: 3, term: 1, configuration: SNAP_CONFIG, configurationIndex: 0 });
  await st.append(Uint8Array.of(3));
  t.same(s.snapshots().map((m) => m.index), [2], 'keepSnapshots: 1');
  await s.close();
  const chunkKeys = async (): Promise<string[]> => (await dump(db)).map(([k]) => k).filter((k) => k.startsWith('73'));
  t.same(await chunkKeys(), [hex(chunkKey(2, 0)), hex(chunkKey(3, 0))], 'slot 1 was pruned on commit');
  // Leftovers of a crash between a batch and its range delete: chunks of slots 1, 5 and 9 (dead).
  for (const slot of [1, 5, 9]) await db.put(chunkKey(slot, 0), seal(chunkKey(slot, 0), Uint8Array.of(...u64b(0), 7)), VIEW);
  const again = new LevelStorage({ db });
  const state = await again.open();
  t.equal(state.snapshot?.index, 2);
  t.same(await chunkKeys(), [hex(chunkKey(2, 0)), hex(chunkKey(3, 0))], 'dead slots are deleted at open');
  const next = await again.stageSnapshot({ index: 4, term: 1, configuration: SNAP_CONFIG, configurationIndex: 0 });
  await next.append(Uint8Array.of(4));
  t.ok((await chunkKeys()).includes(hex(chunkKey(10, 0))), 'a new slot is past every slot ever seen');
  await again.close();

  for (const name of ['meta:snapshot', 'meta:staging']) {
    const key = ascii(name);
    const good = await raw(db, key);
    await db.put(key, seal(key, good.subarray(4, 20)), VIEW); // well sealed, truncated body
    await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', key: name, index: null }, `${name} truncated`);
    flip(good, good.length - 1, 0x01);
    await db.put(key, good, VIEW);
    await t.rejects(new LevelStorage({ db }).open(), { name: 'StorageCorruptionError', key: name, message: /checksum/ }, `${name} bit flip`);
    flip(good, good.length - 1, 0x01);
    await db.put(key, good, VIEW);
  }
  const ok = new LevelStorage({ db });
  t.equal((await ok.open()).snapshot?.index, 2, 'restored records open again');
  await ok.close();
  t.throws(() => new LevelStorage({ db, keepSnapshots: 0 }), { name: 'ConfigurationError', option: 'keepSnapshots' });
  t.throws(() => new LevelStorage({ db, keepSnapshots: 1.5 }), ConfigurationError);
});

t.test('snapshot commit that finds a damaged staged chunk fails the store until it is reopened', async (t) => {
  const db = newDb(t);
  const s = new LevelStorage({ db });
  await s.open();
  await s.write({ entries: range(1, 3, 1) });
  const st = await s.stageSnapshot({ index: 5, term: 2, configuration: SNAP_CONFIG, configurationIndex: 0 });
  await st.append(Uint8Array.of(1, 2, 3));
  await db.del(chunkKey(1, 0), VIEW);
  await t.rejects(st.commit(), { name: 'StorageCorruptionError', key: hex(chunkKey(1, 0)), message: /missing/ });
  await t.rejects(s.write({ entries: [entry(4, 1)] }), { name: 'StorageError', message: /earlier write failed/ }, 'the store refuses work');
  await s.close();
  const again = new LevelStorage({ db });
  t.same(await again.open(), { hardState: { term: 0, votedFor: null }, firstIndex: 1, lastIndex: 3, boundaryTerm: 0, snapshot: null }, 'nothing was installed');
  await (await again.resumeSnapshot())?.discard();
  t.equal(await again.resumeSnapshot(), null);
  await again.close();
});

t.test('a version 1 store (written before snapshots) opens, and reads back its log', async (t) => {
  const db = newDb(t);
  await filled(db, 3);
  const format = ascii('meta:format');
  t.same(Array.from((await raw(db, format)).subarray(4)), [0, 0, 0, 1]);
  const s = new LevelStorage({ db });
  t.same(await s.open(), { hardState: { term: 1, votedFor: 'a' }, firstIndex: 1, lastIndex: 3, boundaryTerm: 0, snapshot: null });
  t.same((await s.entries(1, 3)).map((e) => e.index), [1, 2, 3]);
  await s.close();
});
