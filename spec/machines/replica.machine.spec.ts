import t from 'tap';
import { createActor, fromCallback, initialTransition, transition, type AnyActorRef } from 'xstate';
import {
  replicaMachine,
  type ReplicaEvent,
  type ReplicaLimits,
  type SendAppendIntent,
  type SendHeartbeatIntent,
} from '../../machines/replica.machine.js';
import type { AppendResponse, LogView } from '../../machines/types.js';

/** A leader log over an array of terms; every entry carries `size` payload bytes. Index `first - 1` is the boundary. */
class TermLog implements LogView {
  constructor(
    readonly terms: number[],
    readonly size = 10,
    readonly first = 1,
    readonly boundaryTerm = 0,
  ) {}
  firstIndex(): number {
    return this.first;
  }
  lastIndex(): number {
    return this.first + this.terms.length - 1;
  }
  lastTerm(): number {
    return this.terms[this.terms.length - 1] ?? this.boundaryTerm;
  }
  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (index === this.first - 1) return this.boundaryTerm;
    return this.terms[index - this.first];
  }
  limit(from: number, maxEntries: number, maxBytes: number): number {
    const last = Math.min(this.lastIndex(), from + maxEntries - 1);
    let bytes = 0;
    for (let i = from; i <= last; i++) {
      bytes += this.size;
      if (bytes > maxBytes && i > from) return i - 1;
    }
    return Math.max(from - 1, last);
  }
  bytes(from: number, to: number): number {
    return Math.max(0, to - from + 1) * this.size;
  }
}

const LIMITS: ReplicaLimits = { maxInflight: 3, maxInflightBytes: 1000, maxEntriesPerMessage: 2, maxBytesPerMessage: 1000 };

/** Drives one replica machine with transition(); intents print one per line. */
function replica(log: TermLog, opts: { next: number; commit?: number; limits?: Partial<ReplicaLimits> }) {
  const parent: AnyActorRef = createActor(fromCallback(() => {}));
  const describe = (actions: ReadonlyArray<{ type: string; params?: unknown }>): string[] => {
    const out: string[] = [];
    for (const a of actions) {
      if (a.type === 'sendAppend') {
        const p = a.params as SendAppendIntent;
        out.push(`append to=${p.to} term=${p.term} prev=${p.prevIndex}/${p.prevTerm} last=${p.lastIndex} commit=${p.commit}`);
      } else if (a.type === 'sendHeartbeat') {
        const p = a.params as SendHeartbeatIntent;
        out.push(`heartbeat to=${p.to} term=${p.term} commit=${p.commit}`);
      } else if (a.type === 'xstate.sendTo') {
        const p = a.params as { to: unknown; event: { type: string; peerId: string; match: number } };
        out.push(`${p.to === parent ? 'parent' : 'elsewhere'} ← ${p.event.type} ${p.event.peerId} match=${p.event.match}`);
      }
    }
    return out;
  };
  let [snapshot, actions] = initialTransition(replicaMachine, {
    peerId: 'b',
    parent,
    log,
    next: opts.next,
    commit: opts.commit ?? 0,
    term: 3,
    ...LIMITS,
    ...opts.limits,
  });
  const first = describe(actions);
  return {
    first,
    send(event: ReplicaEvent): string[] {
      [snapshot, actions] = transition(replicaMachine, snapshot, event);
      return describe(actions);
    },
    /** One stable line: `replicate match=4 next=11 inflight=3/3 bytes=60 commit=0`. */
    line(): string {
      const c = snapshot.context;
      const paused = snapshot.value === 'probe' && c.paused ? ' paused' : '';
      const v = snapshot.value;
      const state = typeof v === 'string' ? v : Object.entries(v).map(([k, sub]) => `${k}.${String(sub)}`).join(',');
      return `${state} match=${c.match} next=${c.next}${paused} inflight=${c.inflights.count}/${c.maxInflight} bytes=${c.inflights.bytes} commit=${c.commit}`;
    },
  };
}

const ack = (index: number): ReplicaEvent => ({
  type: 'replica.appendResponse',
  message: { type: 'appendResponse', term: 3, from: 'b', to: 'a', success: true, index, hintTerm: 0, hintIndex: 0 },
});
const refuse = (index: number, hintTerm: number, hintIndex: number): ReplicaEvent => ({
  type: 'replica.appendResponse',
  message: { type: 'appendResponse', term: 3, from: 'b', to: 'a', success: false, index, hintTerm, hintIndex } satisfies AppendResponse,
});
const beat = (commit: number, round = 1): ReplicaEvent => ({ type: 'replica.heartbeat', commit, round });
const beatAnswer: ReplicaEvent = { type: 'replica.heartbeatResponse' };
const entries = (commit: number): ReplicaEvent => ({ type: 'replica.entries', commit });

/** 12 entries: terms 1×3, 2×4, 3×5. */
const twelve = (): TermLog => new TermLog([1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3]);

/** A replica that probed from 3 and was acknowledged at 4: replicate with three appends in flight. */
function replicating() {
  const r = replica(twelve(), { next: 3 });
  r.send(ack(4));
  return r;
}

t.test('the initial probe sends one append and pauses; entries while paused send nothing', async (t) => {
  const log = new TermLog([1, 1, 2, 2, 3]);
  const r = replica(log, { next: 5, commit: 2 });
  t.same(r.first, ['append to=b term=3 prev=4/2 last=5 commit=2']);
  t.equal(r.line(), 'probe match=0 next=5 paused inflight=0/3 bytes=0 commit=2');

  log.terms.push(3, 3);
  t.same(r.send(entries(3)), [], 'paused: no second probe');
  t.equal(r.line(), 'probe match=0 next=5 paused inflight=0/3 bytes=0 commit=3', 'the new commit is remembered');

  t.same(r.send(beatAnswer), ['append to=b term=3 prev=4/2 last=6 commit=3'], 'a heartbeat answer allows one more probe');
  t.same(r.send(entries(3)), [], 'and pauses again');
});

t.test('success in probe → replicate, reporting progress to the parent', async (t) => {
  const r = replica(new TermLog([1, 1, 2, 2, 3]), { next: 5 });
  t.same(r.send(ack(5)), ['parent ← replica.progress b match=5']);
  t.equal(r.line(), 'replicate match=5 next=6 inflight=0/3 bytes=0 commit=0');
});

t.test('replicate streams until the inflight window is full by count', async (t) => {
  const r = replica(twelve(), { next: 3 });
  t.same(r.first, ['append to=b term=3 prev=2/1 last=4 commit=0']);
  t.same(r.send(ack(4)), [
    'parent ← replica.progress b match=4',
    'append to=b term=3 prev=4/2 last=6 commit=0',
    'append to=b term=3 prev=6/2 last=8 commit=0',
    'append to=b term=3 prev=8/3 last=10 commit=0',
  ]);
  t.equal(r.line(), 'replicate match=4 next=11 inflight=3/3 bytes=60 commit=0');
  t.same(r.send(entries(1)), [], 'window full: new entries wait');
});

t.test('replicate streams until the inflight window is full by bytes', async (t) => {
  const r = replica(twelve(), { next: 3, limits: { maxInflight: 10, maxInflightBytes: 35 } });
  t.same(r.send(ack(4)), [
    'parent ← replica.progress b match=4',
    'append to=b term=3 prev=4/2 last=6 commit=0',
    'append to=b term=3 prev=6/2 last=8 commit=0',
  ]);
  t.equal(r.line(), 'replicate match=4 next=9 inflight=2/10 bytes=40 commit=0');
});

t.test('an acknowledgement frees the window and streams more', async (t) => {
  const r = replicating();
  t.same(r.send(ack(6)), ['parent ← replica.progress b match=6', 'append to=b term=3 prev=10/3 last=12 commit=0']);
  t.equal(r.line(), 'replicate match=6 next=13 inflight=3/3 bytes=60 commit=0');
  t.same(r.send(ack(10)), ['parent ← replica.progress b match=10'], 'nothing left to send');
  t.equal(r.line(), 'replicate match=10 next=13 inflight=1/3 bytes=20 commit=0');
});

t.test('stale and duplicate acknowledgements are ignored', async (t) => {
  const r = replicating();
  r.send(ack(8));
  const before = r.line();
  t.equal(before, 'replicate match=8 next=13 inflight=2/3 bytes=40 commit=0');
  t.same(r.send(ack(8)), [], 'duplicate');
  t.same(r.send(ack(6)), [], 'stale');
  t.same(r.send(refuse(6, 2, 4)), [], 'a refusal at or below match is stale too');
  t.equal(r.line(), before);
});

t.test('a refusal in probe uses the conflict hint and reprobes; a stale refusal is ignored', async (t) => {
  // Leader [1,1,2,2,3,3]; the follower holds [1,1,2,2,2,2,2].
  const r = replica(new TermLog([1, 1, 2, 2, 3, 3]), { next: 7 });
  t.same(r.first, ['append to=b term=3 prev=6/3 last=6 commit=0']);
  t.same(r.send(refuse(6, 2, 3)), ['append to=b term=3 prev=4/2 last=6 commit=0'], 'skips to after the leader’s last term-2 entry');
  t.equal(r.line(), 'probe match=0 next=5 paused inflight=0/3 bytes=0 commit=0');

  t.same(r.send(refuse(6, 2, 3)), [], 'the same refusal again (duplicate) is stale');
  t.same(r.send(refuse(2, 1, 1)), [], 'a refusal for a probe never outstanding is stale');
  t.equal(r.line(), 'probe match=0 next=5 paused inflight=0/3 bytes=0 commit=0');

  t.same(r.send(ack(6)), ['parent ← replica.progress b match=6']);
  t.equal(r.line(), 'replicate match=6 next=7 inflight=0/3 bytes=0 commit=0');
});

t.test('a refusal in replicate → probe from match + 1', async (t) => {
  const r = replicating();
  // The append 5..6 was lost; the follower (last index 4) refuses the one after it.
  t.same(r.send(refuse(6, 0, 5)), ['append to=b term=3 prev=4/2 last=6 commit=0']);
  t.equal(r.line(), 'probe match=4 next=5 paused inflight=0/3 bytes=0 commit=0');
});

t.test('a heartbeat carries min(match, commit)', async (t) => {
  const r = replica(twelve(), { next: 3 });
  t.same(r.send(beat(5)), ['heartbeat to=b term=3 commit=0'], 'nothing known to match yet');
  r.send(ack(4));
  t.same(r.send(beat(3)), ['heartbeat to=b term=3 commit=3']);
  t.same(r.send(beat(9)), ['heartbeat to=b term=3 commit=4'], 'never past what the follower is known to hold');
  t.equal(r.line(), 'replicate match=4 next=11 inflight=3/3 bytes=60 commit=9');
});

t.test('two heartbeat answers without progress while appends are in flight → probe (lost appends are resent)', async (t) => {
  const r = replicating();
  t.same(r.send(beatAnswer), [], 'first answer: appends may still be on their way');
  t.equal(r.line(), 'replicate match=4 next=11 inflight=3/3 bytes=60 commit=0');
  t.same(r.send(beatAnswer), ['append to=b term=3 prev=4/2 last=6 commit=0'], 'second answer: re-probe from match + 1');
  t.equal(r.line(), 'probe match=4 next=5 paused inflight=0/3 bytes=0 commit=0');
});

t.test('heartbeat answers with progress between them, or with nothing in flight, keep replicating', async (t) => {
  const r = replicating();
  r.send(beatAnswer);
  r.send(ack(6));
  t.same(r.send(beatAnswer), [], 'match moved since the last answer');
  r.send(beatAnswer);
  t.match(r.line(), /^probe /, 'but then nothing moved across two answers');

  const idle = replica(new TermLog([1, 1, 2]), { next: 3 });
  idle.send(ack(3));
  for (let i = 0; i < 3; i++) t.same(idle.send(beatAnswer), [], `idle answer ${i + 1}`);
  t.equal(idle.line(), 'replicate match=3 next=4 inflight=0/3 bytes=0 commit=0');
});

t.test('an answer arriving before appends sent just now does not count them lost', async (t) => {
  const log = new TermLog([1, 1, 2]);
  const r = replica(log, { next: 3 });
  r.send(ack(3));
  t.same(r.send(beatAnswer), [], 'idle replica');
  log.terms.push(3);
  t.same(r.send(entries(0)), ['append to=b term=3 prev=3/2 last=4 commit=0']);
  t.same(r.send(beatAnswer), [], 'this answer was sent before the new append could arrive');
  t.equal(r.line(), 'replicate match=3 next=5 inflight=1/3 bytes=10 commit=0');
});

t.test('a compacted prev entry → snapshot', async (t) => {
  // Entries 1..4 compacted (boundary 4 has term 2); the leader holds 5..8.
  const r = replica(new TermLog([2, 3, 3, 3], 10, 5, 2), { next: 8 });
  t.same(r.first, ['append to=b term=3 prev=7/3 last=8 commit=0']);
  t.same(r.send(refuse(7, 0, 3)), [], 'the follower needs index 3, which is gone');
  t.equal(r.line(), 'snapshot.waiting match=0 next=3 inflight=0/3 bytes=0 commit=0', 'no snapshot to send: it waits');

  const atSpawn = replica(new TermLog([2, 3], 10, 5, 2), { next: 2 });
  t.same(atSpawn.first, []);
  t.match(atSpawn.line(), /^snapshot\.waiting /, 'spawned already behind the compaction point');
  t.same(replica(new TermLog([2, 3], 10, 5, 2), { next: 5 }).first, ['append to=b term=3 prev=4/2 last=6 commit=0'], 'the boundary entry itself still probes');
});

t.test('a replica in replicate whose next entries were compacted meanwhile moves to snapshot', async (t) => {
  const log = new TermLog([3, 3, 3, 3], 10);
  const r = replica(log, { next: 2 });
  r.send(ack(2));
  t.match(r.line(), /^replicate match=2 next=5 /, 'streaming');
  // A snapshot at 5 and compaction: the log now holds only index 6; the follower still needs 3 and 4.
  log.terms.push(3, 3);
  Object.assign(log, { first: 6, boundaryTerm: 3 });
  log.terms.splice(0, 5);
  t.same(r.send(entries(0)), [], 'nothing it needs can be sent as entries');
  t.match(r.line(), /^snapshot\.waiting /, 'no snapshot source in this test: it waits');
});
