/**
 * The follower side of a snapshot transfer, over MemoryStorage and over
 * LevelStorage on memory-level, plus the sender machine and the receiver
 * together over a lossy link on a simulated clock (seeded; a failure prints
 * its seed).
 */
import { MemoryLevel } from 'memory-level';
import t from 'tap';
import type { Test } from 'tap';
import { createActor, fromCallback } from 'xstate';
import { SnapshotReceiver, type SnapshotReceiverObservation } from '../../actors/snapshot-receiver.js';
import { SimulatedClock } from '../../adapters/clock.js';
import { seededRandom } from '../../adapters/random.js';
import { crc32Js } from '../../adapters/storage/crc32.js';
import { LevelStorage } from '../../adapters/storage/level.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import type { RaftStorage, SnapshotMeta, SnapshotStore } from '../../adapters/storage/storage.js';
import { CodecError } from '../../errors.js';
import { snapshotSenderMachine, type SnapshotFinishedEvent } from '../../machines/snapshot-sender.machine.js';
import { chunksOf, type InstallSnapshotRequest, type InstallSnapshotResponse } from '../../machines/snapshot.js';
import type { LogEntry } from '../../machines/types.js';

type Store = RaftStorage & SnapshotStore;

const CONFIG = { servers: [{ id: 'n1', address: 'a1' }, { id: 'n2', address: 'a2' }] };

/** Storages that survive a "crash": `restart()` closes the current one and opens the same data again. */
interface Disk {
  readonly name: string;
  open(t: Test): Promise<Store>;
}

const disks: Disk[] = [
  {
    name: 'MemoryStorage',
    open: (() => {
      const stores = new WeakMap<Test, MemoryStorage>();
      return async (t: Test) => {
        let s = stores.get(t);
        if (s === undefined) {
          s = new MemoryStorage();
          stores.set(t, s);
        }
        await s.open();
        return s;
      };
    })(),
  },
  {
    name: 'LevelStorage on memory-level',
    open: (() => {
      const dbs = new WeakMap<Test, MemoryLevel<Uint8Array, Uint8Array>>();
      return async (t: Test) => {
        let db = dbs.get(t);
        if (db === undefined) {
          const created = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' });
          t.teardown(() => created.close());
          dbs.set(t, created);
          db = created;
        }
        const s = new LevelStorage({ db });
        await s.open();
        return s;
      };
    })(),
  },
];

/** A snapshot's content: `n` deterministic bytes. */
const content = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 9)) & 0xff);

/** The chunk of `data` at `[offset, offset + size)` as a request from leader n1 at `term`. */
function chunk(
  data: Uint8Array,
  seq: number,
  size: number,
  fields: Partial<InstallSnapshotRequest> = {},
): InstallSnapshotRequest {
  const offset = fields.offset ?? seq * size;
  const bytes = data.subarray(offset, Math.min(offset + size, data.length));
  const done = offset + bytes.length === data.length;
  return {
    type: 'installSnapshot',
    term: 5,
    from: 'n1',
    to: 'n2',
    snapshotIndex: 30,
    snapshotTerm: 4,
    configuration: offset === 0 ? CONFIG : null,
    configurationIndex: 3,
    seq,
    offset,
    data: bytes,
    checksum: crc32Js(bytes),
    done,
    size: done ? data.length : null,
    ...fields,
  };
}

/** A receiver over `storage` recording what it restores and observes. */
function receiverOver(storage: Store, term = 5) {
  const restored: Array<{ bytes: number[]; meta: SnapshotMeta }> = [];
  const observed: SnapshotReceiverObservation[] = [];
  let currentTerm = term;
  const receiver = new SnapshotReceiver({
    id: 'n2',
    storage,
    currentTerm: () => currentTerm,
    restore: async (chunks, meta) => {
      const parts: number[] = [];
      for await (const c of chunks) parts.push(...c);
      restored.push({ bytes: parts, meta });
    },
    observe: (o) => observed.push(o),
  });
  return {
    receiver,
    restored,
    observed,
    setTerm: (n: number) => {
      currentTerm = n;
    },
  };
}

const brief = (r: InstallSnapshotResponse): string =>
  `${r.ok ? 'ok' : `refused:${String(r.reason)}`} seq=${r.seq} next=${r.next}${r.installed ? ' installed' : ''} term=${r.term}`;

for (const disk of disks) {
  t.test(`${disk.name}: chunks in order are staged, the last installs and restores`, async (t) => {
    const s = await disk.open(t);
    t.teardown(() => s.close());
    await s.write({ entries: Array.from({ length: 10 }, (_, i): LogEntry => ({ index: i + 1, term: 1, type: 'normal', data: new Uint8Array() })) });
    const { receiver, restored, observed } = receiverOver(s);
    const data = content(1000);
    const answers: string[] = [];
    for (let seq = 0; seq < 4; seq++) answers.push(brief(await receiver.handle(chunk(data, seq, 300))));
    t.same(answers, ['ok seq=0 next=300 term=5', 'ok seq=1 next=600 term=5', 'ok seq=2 next=900 term=5', 'ok seq=3 next=1000 installed term=5']);
    t.equal(restored.length, 1, 'restore ran once');
    t.same(restored[0]?.bytes, Array.from(data), 'with the whole content');
    t.match(restored[0]?.meta, { index: 30, term: 4, configuration: CONFIG, configurationIndex: 3, size: 1000, checksum: crc32Js(data) });
    t.same(observed.map((o) => o.type), ['snapshot.staging', 'snapshot.received', 'snapshot.received', 'snapshot.received', 'snapshot.received', 'snapshot.installed']);
    t.equal(s.snapshots()[0]?.index, 30, 'the storage made it current');
    await t.rejects(s.entries(10, 10), 'the log that did not hold index 30 was discarded (§7)');
    // A repeated last chunk (its answer was lost) is answered installed again, without a second restore.
    t.equal(brief(await receiver.handle(chunk(data, 3, 300))), 'ok seq=3 next=1000 installed term=5');
    t.equal(brief(await receiver.handle(chunk(data, 1, 300))), 'ok seq=1 next=1000 installed term=5', 'any chunk of the installed snapshot');
    t.equal(restored.length, 1);
    t.equal(brief(await receiver.handle(chunk(data, 0, 300, { snapshotIndex: 20 }))), 'refused:stale seq=0 next=0 term=5', 'an older snapshot is stale');
  });

  t.test(`${disk.name}: duplicates, gaps, damaged chunks, old terms and other snapshots`, async (t) => {
    const s = await disk.open(t);
    t.teardown(() => s.close());
    const { receiver, restored } = receiverOver(s);
    const data = content(500);
    const a = async (req: InstallSnapshotRequest): Promise<string> => brief(await receiver.handle(req));
    t.equal(await a(chunk(data, 1, 100)), 'refused:gap seq=1 next=0 term=5', 'a chunk past offset 0 of an unknown snapshot');
    t.equal(await a(chunk(data, 0, 100)), 'ok seq=0 next=100 term=5');
    t.equal(await a(chunk(data, 0, 100)), 'ok seq=0 next=100 term=5', 'a duplicate is acknowledged again');
    t.equal(await a(chunk(data, 2, 100)), 'refused:gap seq=2 next=100 term=5', 'a chunk past the staged bytes');
    const damaged = chunk(data, 1, 100);
    t.equal(await a({ ...damaged, checksum: (damaged.checksum + 1) >>> 0 }), 'refused:checksum seq=1 next=100 term=5');
    t.equal(await a(chunk(data, 1, 100, { term: 4 })), 'refused:term seq=1 next=100 term=5', 'a deposed leader');
    t.equal(await a(chunk(data, 1, 150, { offset: 50, seq: 1 })), 'ok seq=1 next=200 term=5', 'an overlapping chunk adds its new bytes');
    t.equal(await a(chunk(data, 2, 100)), 'ok seq=2 next=300 term=5');
    t.equal(await a(chunk(data, 1, 100, { snapshotIndex: 29 })), 'refused:gap seq=1 next=0 term=5', 'a chunk of another snapshot');
    t.equal(await a(chunk(data, 0, 100, { snapshotIndex: 29 })), 'refused:stale seq=0 next=0 term=5', 'an older snapshot from the same leader');
    t.equal(await a(chunk(data, 3, 100)), 'ok seq=3 next=400 term=5', 'the staging survived both');
    t.equal(restored.length, 0);
    // Malformed requests change nothing.
    const bad: Array<Partial<InstallSnapshotRequest>> = [
      { offset: -1 },
      { data: 'x' as unknown as Uint8Array },
      { snapshotIndex: 0 },
      { checksum: -1 },
      { done: true, size: 7 },
      { size: 400 },
      { configurationIndex: 31 },
    ];
    for (const fields of bad) await t.rejects(receiver.handle({ ...chunk(data, 4, 100), ...fields }), CodecError, JSON.stringify(Object.keys(fields)));
    await t.rejects(receiver.handle({ ...chunk(data, 0, 100), configuration: null }), CodecError, 'offset 0 without a configuration');
    t.equal(await a(chunk(data, 4, 100)), 'ok seq=4 next=500 installed term=5', 'and the transfer goes on');
    t.same(restored[0]?.bytes, Array.from(data));
  });

  t.test(`${disk.name}: a newer snapshot supersedes the staging and restarts it`, async (t) => {
    const s = await disk.open(t);
    t.teardown(() => s.close());
    const { receiver, restored, observed } = receiverOver(s);
    const old = content(300, 1);
    const fresh = content(250, 2);
    await receiver.handle(chunk(old, 0, 100));
    await receiver.handle(chunk(old, 1, 100));
    t.equal(brief(await receiver.handle(chunk(fresh, 0, 100, { snapshotIndex: 35 }))), 'ok seq=0 next=100 term=5', 'a newer snapshot at offset 0');
    t.equal(brief(await receiver.handle(chunk(old, 2, 100))), 'refused:gap seq=2 next=0 term=5', 'the superseded transfer is refused');
    // A new leader (higher term) with an older snapshot also supersedes.
    t.equal(brief(await receiver.handle(chunk(old, 0, 100, { term: 6 }))), 'ok seq=0 next=100 term=6');
    for (let seq = 1; seq < 3; seq++) await receiver.handle(chunk(old, seq, 100, { term: 6 }));
    t.same(restored.map((r) => r.meta.index), [30]);
    t.same(restored[0]?.bytes, Array.from(old));
    t.same(observed.filter((o) => o.type === 'snapshot.staging').map((o) => (o.type === 'snapshot.staging' ? o.index : 0)), [30, 35, 30]);
    t.equal(await s.resumeSnapshot(), null, 'no staging left behind');
  });

  t.test(`${disk.name}: a crash mid-transfer resumes after the last acknowledged chunk`, async (t) => {
    let s = await disk.open(t);
    const data = content(2000, 3);
    const first = receiverOver(s);
    const acked: number[] = [];
    for (let seq = 0; seq < 3; seq++) acked.push((await first.receiver.handle(chunk(data, seq, 400))).next);
    t.same(acked, [400, 800, 1200]);
    await s.close(); // crash
    s = await disk.open(t);
    t.teardown(() => s.close());
    const again = receiverOver(s);
    // A new sender starts from offset 0: the answer says where to resume.
    t.equal(brief(await again.receiver.handle(chunk(data, 0, 400))), 'ok seq=0 next=1200 term=5', 'resume point = last acknowledged chunk');
    t.same(again.observed[0], { type: 'snapshot.resumed', index: 30, term: 4, bytes: 1200 });
    t.equal(brief(await again.receiver.handle(chunk(data, 3, 400))), 'ok seq=3 next=1600 term=5');
    t.equal(brief(await again.receiver.handle(chunk(data, 4, 400))), 'ok seq=4 next=2000 installed term=5');
    t.same(again.restored[0]?.bytes, Array.from(data), 'the resumed content is whole');
    t.equal(first.restored.length, 0);
  });

  t.test(`${disk.name}: a crash before the last chunk keeps the previous snapshot`, async (t) => {
    let s = await disk.open(t);
    const a = content(300, 4);
    const one = receiverOver(s);
    for (let seq = 0; seq < 3; seq++) await one.receiver.handle(chunk(a, seq, 100));
    const b = content(600, 5);
    for (let seq = 0; seq < 5; seq++) await one.receiver.handle(chunk(b, seq, 100, { snapshotIndex: 50, snapshotTerm: 5 }));
    await s.close(); // crash before the last chunk of b
    s = await disk.open(t);
    t.teardown(() => s.close());
    t.same(s.snapshots().map((m) => m.index), [30], 'a is still current');
    const parts: number[] = [];
    for await (const c of s.readSnapshot()) parts.push(...c);
    t.same(parts, Array.from(a), 'and intact');
    const two = receiverOver(s);
    // The leader moved on to a newer snapshot: staging restarts cleanly.
    const c = content(150, 6);
    t.equal(brief(await two.receiver.handle(chunk(c, 0, 100, { snapshotIndex: 60, snapshotTerm: 5 }))), 'ok seq=0 next=100 term=5');
    t.equal(brief(await two.receiver.handle(chunk(c, 1, 100, { snapshotIndex: 60, snapshotTerm: 5 }))), 'ok seq=1 next=150 installed term=5');
    t.same(s.snapshots().map((m) => m.index), [60, 30]);
    t.same(two.restored[0]?.bytes, Array.from(c));
  });
}

t.test('a commit the storage refuses discards the staging and answers storage', async (t) => {
  const s = new MemoryStorage();
  await s.open();
  const { receiver } = receiverOver(s);
  const data = content(10);
  // The done chunk claims a total shorter than what is staged: the commit's size check refuses it.
  await receiver.handle(chunk(data, 0, 6, { done: false, size: null }));
  const last = { ...chunk(data, 0, 6), offset: 0, seq: 1, done: true, size: 6 };
  t.equal(brief(await receiver.handle({ ...last, data: data.subarray(0, 6), checksum: crc32Js(data.subarray(0, 6)) })), 'ok seq=1 next=6 installed term=5', 'sizes agree: installed');
  const other = content(10, 9);
  await receiver.handle(chunk(other, 0, 6, { snapshotIndex: 40, done: false, size: null }));
  await receiver.handle(chunk(other, 1, 6, { snapshotIndex: 40, offset: 6, done: false, size: null }));
  const short = other.subarray(0, 6);
  const answer = await receiver.handle({ ...chunk(other, 0, 6, { snapshotIndex: 40 }), seq: 2, data: short, checksum: crc32Js(short), done: true, size: 6 });
  t.equal(brief(answer), 'refused:storage seq=2 next=0 term=5');
  t.equal(await s.resumeSnapshot(), null, 'the staging is discarded');
  t.same(s.snapshots().map((m) => m.index), [30]);
});

t.test('a restore that fails rejects handle(); the receiver keeps serving', async (t) => {
  const s = new MemoryStorage();
  await s.open();
  let fail = true;
  const receiver = new SnapshotReceiver({
    id: 'n2',
    storage: s,
    currentTerm: () => 5,
    restore: async () => {
      if (fail) throw new Error('state machine refused');
    },
    crc32: crc32Js,
  });
  const data = content(10);
  await t.rejects(receiver.handle(chunk(data, 0, 10)), { message: 'state machine refused' });
  fail = false;
  t.equal(brief(await receiver.handle(chunk(data, 0, 10))), 'ok seq=0 next=10 installed term=5', 'the storage installed it; later chunks say so');
});

// -- sender and receiver together ------------------------------------------------

t.test('the sender machine and the receiver converge over a lossy, reordering link', async (t) => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const random = seededRandom(seed);
    const clock = new SimulatedClock();
    const storage = new MemoryStorage();
    await storage.open();
    const data = content(5000 + random.int(0, 3000), seed);
    const { receiver, restored } = receiverOver(storage);
    const finished: SnapshotFinishedEvent[] = [];
    const parent = createActor(
      fromCallback<SnapshotFinishedEvent>(({ receive }) => {
        receive((e) => {
          if (e.type === 'snapshot.finished') finished.push(e);
        });
      }),
    );
    parent.start();
    const source = chunksOf([data.subarray(0, 1234), data.subarray(1234)], 512)[Symbol.asyncIterator]();
    // The link: each message is dropped (20 %), duplicated (10 %), and delayed 1-30 ms (so reordered).
    const deliver = (fn: () => void): void => {
      if (random.next() < 0.2) return;
      const copies = random.next() < 0.1 ? 2 : 1;
      for (let i = 0; i < copies; i++) clock.setTimeout(fn, random.int(1, 30));
    };
    const sender = createActor(
      snapshotSenderMachine.provide({
        actions: {
          readChunk: () => {
            void source.next().then(
              (r) => {
                if (r.done === true) return;
                sender.send({ type: 'snapshot.chunk', data: r.value.data, checksum: crc32Js(r.value.data), last: r.value.last });
              },
              (error: unknown) => sender.send({ type: 'snapshot.readFailed', error }),
            );
          },
          sendChunk: (_, request) => {
            deliver(() => {
              void receiver.handle(request).then((message) => deliver(() => sender.send({ type: 'snapshot.response', message })));
            });
          },
        },
      }),
      {
        input: { peerId: 'n2', leaderId: 'n1', term: 5, parent, snapshot: { index: 30, term: 4, configuration: CONFIG, configurationIndex: 3, size: null }, limits: { window: 4, retryBaseMs: 50, retryMaxMs: 400, maxRetries: 30 } },
        clock,
      },
    );
    const errors: unknown[] = [];
    sender.subscribe({ error: (e) => errors.push(e) });
    sender.start();
    // Drive: let promises settle, then run the next timer; bounded in steps and simulated time.
    for (let step = 0; step < 20_000 && finished.length === 0; step++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (finished.length > 0) break;
      if (!clock.runNext()) await new Promise((resolve) => setImmediate(resolve));
      if (clock.now() > 600_000) break;
    }
    t.same(errors, [], `seed ${seed}: no actor error`);
    t.match(finished, [{ outcome: 'sent', reason: null, bytes: data.length }], `seed ${seed}: the transfer completes`);
    t.equal(restored.length, 1, `seed ${seed}: restored once`);
    t.ok(Buffer.compare(Buffer.from(restored[0]?.bytes ?? []), Buffer.from(data)) === 0, `seed ${seed}: content intact`);
    sender.stop();
    parent.stop();
    await storage.close();
  }
});
