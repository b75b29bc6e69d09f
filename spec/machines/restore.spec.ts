/**
 * Restore records and the RestoreTracker rule: encoding round trips, refusal
 * of malformed payloads, and which runs complete, stay open, or are dropped.
 */
import t from 'tap';
import { crc32Js } from '../../adapters/storage/crc32.js';
import { decodeRestoreRecord, encodeRestoreRecord, RestoreTracker, type RestoreRecord } from '../../machines/restore.js';
import type { LogEntry } from '../../machines/types.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

t.test('records round-trip and malformed payloads decode to null', async (t) => {
  const records: RestoreRecord[] = [
    { kind: 'chunk', id: 0xffffffff, seq: 7, data: bytes(1, 2, 3) },
    { kind: 'chunk', id: 1, seq: 0, data: bytes() },
    { kind: 'commit', id: 2, count: 3, size: 2 ** 40 + 5, checksum: 0xdeadbeef },
    { kind: 'abort', id: 3 },
  ];
  for (const r of records) t.same(decodeRestoreRecord(encodeRestoreRecord(r)), r, `${r.kind} round-trips`);
  t.equal(decodeRestoreRecord(bytes()), null, 'empty');
  t.equal(decodeRestoreRecord(bytes(9, 0, 0, 0, 1)), null, 'unknown kind');
  t.equal(decodeRestoreRecord(bytes(1, 0, 0, 0, 1, 0, 0)), null, 'a short chunk header');
  t.equal(decodeRestoreRecord(encodeRestoreRecord({ kind: 'commit', id: 1, count: 1, size: 1, checksum: 1 }).subarray(0, 20)), null, 'a short commit');
  t.equal(decodeRestoreRecord(bytes(3, 0, 0, 0, 1, 0)), null, 'an abort with a body');
  const unsafe = encodeRestoreRecord({ kind: 'commit', id: 1, count: 1, size: 1, checksum: 1 });
  unsafe.fill(0xff, 9, 17);
  t.equal(decodeRestoreRecord(unsafe), null, 'a size beyond 2^53');
  t.throws(() => encodeRestoreRecord({ kind: 'chunk', id: -1, seq: 0, data: bytes() }), RangeError);
  t.throws(() => encodeRestoreRecord({ kind: 'chunk', id: 1, seq: 2 ** 32, data: bytes() }), RangeError);
  t.throws(() => encodeRestoreRecord({ kind: 'commit', id: 1, count: 1, size: -1, checksum: 0 }), RangeError);
});

/** A log builder: `restore` entries from records, `normal` entries from anything else. */
function logOf(items: readonly (readonly [number, RestoreRecord | 'normal'])[]): LogEntry[] {
  return items.map(([term, r], k) =>
    r === 'normal' ? { index: k + 1, term, type: 'normal', data: bytes(k) } : { index: k + 1, term, type: 'restore', data: encodeRestoreRecord(r) },
  );
}

const chunk = (id: number, seq: number, ...data: number[]): RestoreRecord => ({ kind: 'chunk', id, seq, data: bytes(...data) });
const commit = (id: number, count: number, data: number[]): RestoreRecord => ({ kind: 'commit', id, count, size: data.length, checksum: crc32Js(bytes(...data)) >>> 0 });

/** Applies every entry; returns each step type and whether a run was open after it. */
function run(log: readonly LogEntry[]): { steps: string[]; open: boolean[]; tracker: RestoreTracker; last: ReturnType<RestoreTracker['apply']> | null } {
  const tracker = new RestoreTracker(crc32Js);
  const steps: string[] = [];
  const open: boolean[] = [];
  let last: ReturnType<RestoreTracker['apply']> | null = null;
  for (const e of log) {
    last = tracker.apply(e);
    steps.push(last.type);
    open.push(tracker.open());
  }
  return { steps, open, tracker, last };
}

t.test('a run with entries between its chunks completes at its commit; it is open until then', async (t) => {
  const log = logOf([[1, 'normal'], [2, chunk(5, 0, 1, 2)], [2, 'normal'], [2, chunk(5, 1, 3)], [2, commit(5, 2, [1, 2, 3])], [2, 'normal']]);
  const { steps, open, last } = run(log.slice(0, 5));
  t.same(steps, ['none', 'none', 'none', 'none', 'complete']);
  t.same(open, [false, true, true, true, false], 'open from the first chunk to the commit');
  t.same(last, { type: 'complete', restore: { index: 5, term: 2, chunks: [2, 4], size: 3, checksum: crc32Js(bytes(1, 2, 3)) >>> 0 } });
  t.same(run(log).steps.at(-1), 'none');
});

t.test('an empty restore (no chunks) completes; an abort closes a run', async (t) => {
  t.same(run(logOf([[1, commit(1, 0, [])]])).last, { type: 'complete', restore: { index: 1, term: 1, chunks: [], size: 0, checksum: 0 } });
  const aborted = run(logOf([[1, chunk(1, 0, 1)], [1, { kind: 'abort', id: 1 }], [1, commit(1, 1, [1])]]));
  t.same(aborted.open, [true, false, false], 'the abort closed it');
  t.match(aborted.last, { type: 'invalid', why: /no chunk of restore 1/ }, 'a commit after an abort has nothing to restore');
});

t.test('a higher term drops open runs: their commit can no longer come', async (t) => {
  const { open, last } = run(logOf([[1, chunk(1, 0, 1)], [1, chunk(2, 0, 2)], [2, 'normal'], [2, commit(1, 1, [1])]]));
  t.same(open, [true, true, false, false]);
  t.match(last, { type: 'invalid', index: 4 });
  t.same(run(logOf([[1, chunk(1, 0, 1)], [1, 'normal']])).open, [true, true], 'an entry of the same term leaves it open');
});

t.test('commits that do not add up are invalid, naming why', async (t) => {
  const cases: [string, RestoreRecord[], RegExp][] = [
    ['out of order', [chunk(1, 1, 1), commit(1, 1, [1])], /chunk 1 where 0 was due/],
    ['a chunk short', [chunk(1, 0, 1), commit(1, 2, [1])], /1 chunks where the commit names 2/],
    ['wrong size', [chunk(1, 0, 1), { kind: 'commit', id: 1, count: 1, size: 2, checksum: 0 }], /1 bytes where the commit names 2/],
    ['wrong checksum', [chunk(1, 0, 1), { kind: 'commit', id: 1, count: 1, size: 1, checksum: 7 }], /checksum \d+ where the commit names 7/],
  ];
  for (const [what, records, why] of cases) t.match(run(logOf(records.map((r) => [1, r] as const))).last, { type: 'invalid', why }, what);
  const undecodable: LogEntry = { index: 1, term: 1, type: 'restore', data: bytes(9) };
  t.match(new RestoreTracker(crc32Js).apply(undecodable), { type: 'invalid', why: /undecodable/ });
});

t.test('reset forgets open runs (a snapshot from the leader covers them)', async (t) => {
  const tracker = new RestoreTracker(crc32Js);
  tracker.apply(logOf([[1, chunk(1, 0, 1)]])[0] as LogEntry);
  t.ok(tracker.open());
  tracker.reset();
  t.notOk(tracker.open());
});
