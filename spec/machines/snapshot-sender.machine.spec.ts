/**
 * The snapshot sender machine (§7 InstallSnapshot, chunked) and the pure
 * helpers of machines/snapshot.ts. Live actors on a SimulatedClock: every
 * delay is the injected clock's, nothing sleeps.
 */
import t from 'tap';
import { createActor, fromCallback, initialTransition, transition, type AnyActorRef } from 'xstate';
import { SimulatedClock } from '../../adapters/clock.js';
import {
  snapshotSenderMachine,
  type ReadChunkIntent,
  type SnapshotFinishedEvent,
  type SnapshotProgressEvent,
  type SnapshotSendSource,
} from '../../machines/snapshot-sender.machine.js';
import {
  ackThrough,
  chunksOf,
  DEFAULT_SNAPSHOT_SENDER_LIMITS,
  gapResends,
  invalidSenderLimits,
  retransmitDelay,
  type ChunkInFlight,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type SnapshotRefusal,
  type SnapshotSenderLimits,
} from '../../machines/snapshot.js';

const CONFIG = { servers: [{ id: 'n1', address: 'a1' }, { id: 'n2', address: 'a2' }] };
const SNAP: SnapshotSendSource = { index: 40, term: 3, configuration: CONFIG, configurationIndex: 2, size: null };

/** `n` bytes whose values say which chunk they are. */
const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

type ParentEvent = SnapshotProgressEvent | SnapshotFinishedEvent;

/** A sender on a simulated clock, with a fake parent, reader and transport that record everything. */
function harness(opts: { limits?: Partial<SnapshotSenderLimits>; snapshot?: Partial<SnapshotSendSource> } = {}) {
  const clock = new SimulatedClock();
  const parentEvents: ParentEvent[] = [];
  const parent = createActor(
    fromCallback<ParentEvent>(({ receive }) => {
      receive((e) => parentEvents.push(e));
    }),
  );
  parent.start();
  const sent: Array<InstallSnapshotRequest & { at: number }> = [];
  const reads: ReadChunkIntent[] = [];
  const errors: unknown[] = [];
  const actor = createActor(
    snapshotSenderMachine.provide({
      actions: {
        sendChunk: (_, m) => {
          sent.push({ ...m, at: clock.now() });
        },
        readChunk: (_, intent) => {
          reads.push(intent);
        },
      },
    }),
    {
      input: { peerId: 'n2', leaderId: 'n1', term: 5, parent, snapshot: { ...SNAP, ...opts.snapshot }, ...(opts.limits === undefined ? {} : { limits: opts.limits }) },
      clock,
    },
  );
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  const h = {
    clock,
    actor,
    sent,
    reads,
    errors,
    parentEvents,
    /** Answers the outstanding read. */
    chunk(data: Uint8Array, last = false): void {
      actor.send({ type: 'snapshot.chunk', data, checksum: data.length * 7, last });
    },
    respond(seq: number, next: number, fields: Partial<InstallSnapshotResponse> = {}): void {
      const message: InstallSnapshotResponse = {
        type: 'installSnapshotResponse',
        term: 5,
        from: 'n2',
        to: 'n1',
        snapshotIndex: 40,
        snapshotTerm: 3,
        seq,
        ok: true,
        reason: null,
        next,
        installed: false,
        ...fields,
      };
      actor.send({ type: 'snapshot.response', message });
    },
    refuse(seq: number, next: number, reason: SnapshotRefusal, fields: Partial<InstallSnapshotResponse> = {}): void {
      h.respond(seq, next, { ok: false, reason, ...fields });
    },
    seqs: (): number[] => sent.map((m) => m.seq),
    state: (): string => String(actor.getSnapshot().value),
    progress: (): Array<[number, number, number | null]> =>
      parentEvents.filter((e): e is SnapshotProgressEvent => e.type === 'snapshot.progress').map((e) => [e.sent, e.acked, e.total]),
    finished: (): SnapshotFinishedEvent[] => parentEvents.filter((e): e is SnapshotFinishedEvent => e.type === 'snapshot.finished'),
  };
  return h;
}

t.test('streams chunks within the window and finishes when the follower installs', async (t) => {
  const h = harness({ limits: { window: 2, chunkBytes: 4 } });
  t.same(h.reads, [{ peerId: 'n2', seq: 0, maxBytes: 4 }], 'one read at a time');
  h.chunk(bytes(4, 0));
  t.same(h.seqs(), [0]);
  t.equal(h.reads.length, 2, 'room in the window: the next read');
  h.chunk(bytes(4, 1));
  t.same(h.seqs(), [0, 1]);
  t.equal(h.reads.length, 2, 'window full: no read');
  h.chunk(bytes(4, 9));
  t.same(h.seqs(), [0, 1], 'a chunk nobody asked for is dropped');
  h.respond(0, 4);
  t.equal(h.reads.length, 3, 'an acknowledgement frees a slot');
  h.chunk(bytes(4, 2));
  h.respond(1, 8);
  h.chunk(bytes(2, 3), true);
  t.same(h.seqs(), [0, 1, 2, 3]);
  t.equal(h.reads.length, 4, 'no read after the last chunk');
  const [first, , , last] = h.sent;
  t.match(first, { type: 'installSnapshot', term: 5, from: 'n1', to: 'n2', snapshotIndex: 40, snapshotTerm: 3, configuration: CONFIG, configurationIndex: 2, offset: 0, done: false, size: null, checksum: 28 });
  t.match(h.sent[1], { configuration: null, offset: 4 }, 'the configuration rides on the first chunk only');
  t.match(last, { seq: 3, offset: 12, done: true, size: 14 });
  t.same(Array.from(last?.data ?? []), [3, 3]);
  h.respond(2, 12);
  h.respond(3, 14, { installed: true });
  t.equal(h.state(), 'sent');
  t.same(h.finished(), [{ type: 'snapshot.finished', peerId: 'n2', index: 40, term: 3, outcome: 'sent', reason: null, bytes: 14 }]);
  t.same(h.actor.getSnapshot().output, { peerId: 'n2', index: 40, term: 3, outcome: 'sent', reason: null, bytes: 14 });
  t.same(h.errors, []);
});

t.test('retransmits with capped exponential backoff on the injected clock, then aborts', async (t) => {
  const h = harness({ limits: { retryBaseMs: 100, retryMaxMs: 400, maxRetries: 5, window: 1 } });
  h.chunk(bytes(10, 0));
  h.clock.advanceTo(99);
  t.same(h.seqs(), [0], 'nothing before the first delay');
  h.clock.advanceTo(3000);
  t.same(h.sent.map((m) => m.at), [0, 100, 300, 700, 1100, 1500], 'delays 100, 200, 400, then capped at 400');
  t.same(h.seqs(), [0, 0, 0, 0, 0, 0]);
  t.equal(h.state(), 'aborted');
  t.match(h.finished(), [{ outcome: 'aborted', reason: 'retries', bytes: 0 }]);
  t.equal(h.clock.pending(), 0, 'no timer left behind');
});

t.test('progress resets the backoff, and the first progress after a timeout resends what was sent before it', async (t) => {
  const h = harness({ limits: { retryBaseMs: 100, retryMaxMs: 1000, window: 3 } });
  h.chunk(bytes(10, 0));
  h.chunk(bytes(10, 1));
  h.chunk(bytes(10, 2));
  t.same(h.seqs(), [0, 1, 2]);
  h.clock.advanceTo(300); // two timeouts: at 100 and 300
  t.same(h.seqs(), [0, 1, 2, 0, 0], 'a timeout resends the oldest only');
  h.respond(0, 10);
  t.same(h.seqs(), [0, 1, 2, 0, 0, 1, 2], 'the outage took chunks 1 and 2 too: resent at once');
  t.equal(h.reads.length, 4, 'and the freed slot is refilled');
  h.clock.advanceTo(399);
  t.equal(h.sent.length, 7, 'backoff is back to the base delay, counted from the progress');
  h.clock.advanceTo(400);
  t.same(h.seqs().slice(7), [1], 'retransmission after the base delay');
});

t.test('answers out of order, duplicated or stale move nothing backwards', async (t) => {
  const h = harness({ limits: { window: 3 } });
  h.chunk(bytes(4, 0));
  h.chunk(bytes(4, 1));
  h.chunk(bytes(4, 2));
  h.respond(2, 12); // the answer to chunk 2 overtakes the others: cumulative
  t.same(h.progress().at(-1), [12, 12, null]);
  t.equal(h.actor.getSnapshot().context.window.length, 0, 'every chunk is acknowledged');
  const before = h.parentEvents.length;
  h.respond(0, 4);
  h.respond(1, 8);
  h.respond(2, 12);
  t.equal(h.parentEvents.length, before, 'late and duplicate answers report nothing');
  t.equal(h.actor.getSnapshot().context.acked, 12);
  t.same(h.seqs(), [0, 1, 2], 'and resend nothing');
  // Answers that are not for this transfer.
  h.chunk(bytes(4, 3));
  h.respond(3, 16, { from: 'n3' });
  h.respond(3, 16, { snapshotIndex: 39 });
  h.respond(3, 16, { snapshotTerm: 2 });
  h.respond(3, 16, { term: 4 });
  t.equal(h.actor.getSnapshot().context.acked, 12, 'foreign answers are dropped');
  t.equal(h.state(), 'streaming');
});

t.test('a gap answer resends the hole once, a checksum refusal the refused chunk', async (t) => {
  const h = harness({ limits: { window: 3 } });
  h.chunk(bytes(4, 0)); // lost
  h.chunk(bytes(4, 1));
  h.chunk(bytes(4, 2));
  h.refuse(1, 0, 'gap');
  t.same(h.seqs(), [0, 1, 2, 0, 1], 'chunk 0 and the refused chunk 1');
  h.refuse(2, 0, 'gap');
  t.same(h.seqs(), [0, 1, 2, 0, 1, 2], 'the second gap answer resends only chunk 2');
  h.respond(0, 4);
  h.refuse(1, 4, 'checksum');
  t.same(h.seqs().slice(6), [1], 'a damaged chunk is resent');
  const again = h.sent.at(-1);
  t.match(again, { seq: 1, offset: 4, configuration: null });
  t.equal(h.actor.getSnapshot().context.window.find((c) => c.seq === 1)?.attempts, 2);
  h.refuse(7, 4, 'checksum');
  t.equal(h.sent.length, 7, 'a refusal for a chunk not in the window resends nothing');
  h.refuse(1, 0, 'gap'); // an old answer (from before chunk 0 was acknowledged) arriving late
  t.equal(h.sent.length, 7, 'a gap below the acknowledged bytes is stale: nothing resent');
  t.equal(h.state(), 'streaming');
});

t.test('abort paths', async (t) => {
  const cases: Array<[string, (h: ReturnType<typeof harness>) => void, string]> = [
    ['a higher term in an answer', (h) => h.respond(0, 0, { term: 6 }), 'higherTerm'],
    ['a higher term in a refusal', (h) => h.refuse(0, 0, 'term', { term: 9 }), 'higherTerm'],
    ['step-down', (h) => h.actor.send({ type: 'snapshot.abort', reason: 'stepDown' }), 'stepDown'],
    ['an abort request', (h) => h.actor.send({ type: 'snapshot.abort' }), 'aborted'],
    ['a failed read', (h) => h.actor.send({ type: 'snapshot.readFailed', error: new Error('disk') }), 'source'],
    ['the follower holds a newer snapshot', (h) => h.refuse(0, 0, 'stale'), 'stale'],
    ['the follower cannot store it', (h) => h.refuse(0, 0, 'storage'), 'refused'],
    ['a term refusal without a higher term', (h) => h.refuse(0, 0, 'term'), 'refused'],
  ];
  for (const [what, act, reason] of cases) {
    const h = harness({ limits: { window: 2 } });
    h.chunk(bytes(4, 0));
    h.chunk(bytes(4, 1));
    act(h);
    t.equal(h.state(), 'aborted', what);
    t.match(h.finished(), [{ outcome: 'aborted', reason }], `${what}: ${reason}`);
    t.equal(h.clock.pending(), 0, `${what}: no timer left`);
    const sent = h.sent.length;
    h.respond(1, 8);
    h.clock.advanceBy(60_000);
    t.equal(h.sent.length, sent, `${what}: nothing is sent after the end`);
    t.same(h.errors, []);
  }
});

t.test('progress: bytes sent and acknowledged, total once known', async (t) => {
  const unknown = harness({ limits: { window: 2 } });
  unknown.chunk(bytes(5, 0));
  unknown.chunk(bytes(5, 1));
  unknown.respond(0, 5);
  unknown.chunk(bytes(3, 2), true);
  unknown.respond(1, 10);
  unknown.respond(2, 13, { installed: true });
  t.same(unknown.progress(), [
    [5, 0, null],
    [10, 0, null],
    [10, 5, null],
    [13, 5, 13],
    [13, 10, 13],
  ], 'an unknown size is learnt from the last chunk');
  t.match(unknown.finished(), [{ outcome: 'sent', bytes: 13 }]);

  const known = harness({ snapshot: { size: 8 } });
  known.chunk(bytes(8, 0), true);
  t.same(known.progress(), [[8, 0, 8]], 'a size known in advance is reported from the start');
});

t.test('an empty snapshot is one empty last chunk', async (t) => {
  const h = harness();
  h.chunk(new Uint8Array(0), true);
  t.match(h.sent, [{ seq: 0, offset: 0, done: true, size: 0, configuration: CONFIG }]);
  t.equal(h.sent[0]?.data.length, 0);
  h.refuse(0, 0, 'gap'); // an answer lost its way: the last chunk counts as unacknowledged until installed
  t.same(h.seqs(), [0, 0]);
  h.respond(0, 0);
  t.equal(h.state(), 'streaming', 'holding every byte is not installing');
  h.respond(0, 0, { installed: true });
  t.match(h.finished(), [{ outcome: 'sent', bytes: 0 }]);
});

t.test('a follower that kept a staging makes the sender skip what it holds', async (t) => {
  const h = harness({ limits: { window: 1 } });
  h.chunk(bytes(4, 0));
  h.respond(0, 12); // it holds 12 bytes from an earlier transfer
  h.chunk(bytes(4, 1));
  h.chunk(bytes(4, 2));
  t.same(h.seqs(), [0], 'chunks below the resume point are not sent');
  h.chunk(bytes(4, 3));
  t.match(h.sent.at(-1), { seq: 3, offset: 12 });
  h.respond(3, 16);
  h.chunk(bytes(0, 0), true);
  t.match(h.sent.at(-1), { seq: 4, offset: 16, done: true, size: 16 });
  h.respond(4, 16, { installed: true });
  t.equal(h.state(), 'sent');
});

t.test('the machine is pure: transition() returns intents without running them', async (t) => {
  const parent: AnyActorRef = createActor(fromCallback(() => {}));
  const [s0, a0] = initialTransition(snapshotSenderMachine, { peerId: 'n2', leaderId: 'n1', term: 5, parent, snapshot: SNAP });
  t.same(a0.filter((a) => a.type === 'readChunk').map((a) => a.params), [{ peerId: 'n2', seq: 0, maxBytes: DEFAULT_SNAPSHOT_SENDER_LIMITS.chunkBytes }]);
  const [s1, a1] = transition(snapshotSenderMachine, s0, { type: 'snapshot.chunk', data: bytes(3, 1), checksum: 1, last: true });
  t.match(a1.filter((a) => a.type === 'sendChunk').map((a) => a.params), [{ seq: 0, offset: 0, done: true, size: 3 }]);
  t.ok(a1.some((a) => a.type === 'xstate.sendTo'), 'progress goes to the parent');
  t.equal(s1.context.window.length, 1);
  t.equal(s0.context.window.length, 0, 'the earlier snapshot is untouched');
});

// -- pure helpers ---------------------------------------------------------------

const inflight = (seq: number, offset: number, length: number, tx: number, last = false): ChunkInFlight => ({
  seq,
  offset,
  data: new Uint8Array(length),
  checksum: 0,
  last,
  tx,
  attempts: 0,
});

t.test('ackThrough frees chunks the follower holds, never the last before it is installed', async (t) => {
  const w = [inflight(0, 0, 10, 1), inflight(1, 10, 10, 2), inflight(2, 20, 5, 3, true)];
  t.same(ackThrough(w, 0).map((c) => c.seq), [0, 1, 2]);
  t.same(ackThrough(w, 9).map((c) => c.seq), [0, 1, 2], 'a partly held chunk stays');
  t.same(ackThrough(w, 10).map((c) => c.seq), [1, 2]);
  t.same(ackThrough(w, 25).map((c) => c.seq), [2], 'the last chunk waits for installed');
  t.equal(ackThrough(w, 0), w, 'unchanged window is returned as is');
});

t.test('gapResends: what went out no later than the refused chunk and is lacking', async (t) => {
  const w = [inflight(0, 0, 10, 4), inflight(1, 10, 10, 2), inflight(2, 20, 10, 3), inflight(3, 30, 0, 5, true)];
  t.same(gapResends(w, 10, 2), [1, 2], 'chunk 0 is held; chunk 1 (tx 2) and 2 (tx 3)');
  t.same(gapResends(w, 0, 1), [1], 'chunk 0 was resent after chunk 1 went out');
  t.same(gapResends(w, 30, 3), [3], 'an empty last chunk counts as lacking');
  t.same(gapResends(w, 0, 9), [], 'unknown chunk');
});

t.test('retransmitDelay and invalidSenderLimits', async (t) => {
  const l = { retryBaseMs: 50, retryMaxMs: 1000 };
  t.same([0, 1, 2, 3, 4, 5, 100, 5000].map((k) => retransmitDelay(l, k)), [50, 100, 200, 400, 800, 1000, 1000, 1000]);
  t.equal(invalidSenderLimits(DEFAULT_SNAPSHOT_SENDER_LIMITS), null);
  const bad: Array<[Partial<SnapshotSenderLimits>, RegExp]> = [
    [{ chunkBytes: 0 }, /chunkBytes/],
    [{ window: 1.5 }, /window/],
    [{ retryBaseMs: 0 }, /retryBaseMs/],
    [{ retryBaseMs: 500, retryMaxMs: 100 }, /retryMaxMs must be an integer >= 500/],
    [{ maxRetries: -1 }, /maxRetries/],
  ];
  for (const [limits, why] of bad) t.match(invalidSenderLimits({ ...DEFAULT_SNAPSHOT_SENDER_LIMITS, ...limits }), why);
});

t.test('chunksOf cuts any stream into bounded chunks and flags the last', async (t) => {
  const cut = async (pieces: number[], size: number): Promise<Array<[number[], boolean]>> => {
    let v = 0;
    const source = pieces.map((n) => Uint8Array.from({ length: n }, () => v++));
    const out: Array<[number[], boolean]> = [];
    for await (const c of chunksOf(source, size)) out.push([Array.from(c.data), c.last]);
    return out;
  };
  t.same(await cut([], 4), [[[], true]], 'empty stream: one empty last chunk');
  t.same(await cut([0, 0], 4), [[[], true]], 'empty pieces only');
  t.same(await cut([3], 4), [[[0, 1, 2], true]]);
  t.same(await cut([4], 4), [[[0, 1, 2, 3], true]], 'an exact fit is last without an empty tail');
  t.same(await cut([8], 4), [[[0, 1, 2, 3], false], [[4, 5, 6, 7], true]]);
  t.same(await cut([1, 1, 5, 0, 2], 3), [[[0, 1, 2], false], [[3, 4, 5], false], [[6, 7, 8], true]], 'pieces of any size');
  t.same(await cut([2, 3], 10), [[[0, 1, 2, 3, 4], true]]);
  async function* slowly(): AsyncGenerator<Uint8Array> {
    yield Uint8Array.of(1, 2);
    yield Uint8Array.of(3);
  }
  const chunks = [];
  for await (const c of chunksOf(slowly(), 2)) chunks.push([Array.from(c.data), c.last]);
  t.same(chunks, [[[1, 2], false], [[3], true]], 'an async source');
  await t.rejects(async () => {
    for await (const _ of chunksOf([], 0));
  }, RangeError);
});
