import t from 'tap';
import { createActor } from 'xstate';
import { SimulatedClock } from '../../adapters/clock.js';
import { seededRandom } from '../../adapters/random.js';
import { nodeMachine, type AppendEntriesIntent, type AppendProposalsIntent, type NodeContext } from '../../machines/node.machine.js';
import { replicaMachine, type ReplicaLimits } from '../../machines/replica.machine.js';
import type { EntryType, LogEntry, LogView, RaftMessage, ServerId } from '../../machines/types.js';

const T = 100; // election timeout lower bound
const H = 30; // heartbeat interval

// ---------------------------------------------------------------------------
// A log that really changes when the machine's intents run.

const entry = (index: number, term: number, type: EntryType = 'normal'): LogEntry => ({
  index,
  term,
  type,
  data: new Uint8Array(type === 'noop' ? 0 : 1),
});

class MemLog implements LogView {
  entries: LogEntry[];
  constructor(terms: readonly number[] = []) {
    this.entries = terms.map((term, k) => entry(k + 1, term));
  }
  firstIndex(): number {
    return 1;
  }
  lastIndex(): number {
    return this.entries.length;
  }
  lastTerm(): number {
    return this.entries[this.entries.length - 1]?.term ?? 0;
  }
  term(index: number): number | undefined {
    return index === 0 ? 0 : this.entries[index - 1]?.term;
  }
  limit(from: number, maxEntries: number, maxBytes: number): number {
    const last = Math.min(this.lastIndex(), from + maxEntries - 1);
    let bytes = 0;
    for (let i = from; i <= last; i++) {
      bytes += this.entries[i - 1]?.data.byteLength ?? 0;
      if (bytes > maxBytes && i > from) return i - 1;
    }
    return Math.max(from - 1, last);
  }
  bytes(from: number, to: number): number {
    let n = 0;
    for (let i = from; i <= to; i++) n += this.entries[i - 1]?.data.byteLength ?? 0;
    return n;
  }
  slice(from: number, to: number): LogEntry[] {
    return this.entries.slice(from - 1, Math.max(from - 1, to));
  }
  /** The appendEntries contract (§5.3): keep matching entries, delete from the first conflict, append the rest. */
  appendAfter(entries: readonly LogEntry[]): void {
    for (const e of entries) {
      const held = this.term(e.index);
      if (held === e.term) continue;
      if (held !== undefined) this.entries.length = e.index - 1;
      if (e.index !== this.entries.length + 1) return;
      this.entries.push(e);
    }
  }
  appendNew(term: number, type: EntryType, count: number): void {
    for (let k = 0; k < count; k++) this.entries.push(entry(this.entries.length + 1, term, type));
  }
  terms(): number[] {
    return this.entries.map((e) => e.term);
  }
}

// ---------------------------------------------------------------------------
// Messages, built and printed on one line each.

const ents = (prevIndex: number, ...terms: number[]): LogEntry[] => terms.map((term, k) => entry(prevIndex + 1 + k, term));

const msg = {
  vote: (from: ServerId, to: ServerId, term: number, lastLogIndex: number, lastLogTerm: number, transfer = false): RaftMessage => ({
    type: 'vote',
    term,
    from,
    to,
    lastLogIndex,
    lastLogTerm,
    ...(transfer ? { transfer } : {}),
  }),
  preVote: (from: ServerId, to: ServerId, term: number, lastLogIndex: number, lastLogTerm: number): RaftMessage => ({
    type: 'preVote',
    term,
    from,
    to,
    lastLogIndex,
    lastLogTerm,
  }),
  voteResponse: (from: ServerId, to: ServerId, term: number, granted: boolean, pre = false): RaftMessage => ({
    type: pre ? 'preVoteResponse' : 'voteResponse',
    term,
    from,
    to,
    granted,
    ...(granted ? {} : { reason: 'log' as const }),
  }),
  append: (from: ServerId, to: ServerId, term: number, prev: [number, number], entries: LogEntry[], leaderCommit: number): RaftMessage => ({
    type: 'append',
    term,
    from,
    to,
    prevLogIndex: prev[0],
    prevLogTerm: prev[1],
    entries,
    leaderCommit,
  }),
  ack: (from: ServerId, to: ServerId, term: number, index: number): RaftMessage => ({
    type: 'appendResponse',
    term,
    from,
    to,
    success: true,
    index,
    hintTerm: 0,
    hintIndex: 0,
  }),
  refuse: (from: ServerId, to: ServerId, term: number, index: number, hintTerm: number, hintIndex: number): RaftMessage => ({
    type: 'appendResponse',
    term,
    from,
    to,
    success: false,
    index,
    hintTerm,
    hintIndex,
  }),
  heartbeat: (from: ServerId, to: ServerId, term: number, commit: number): RaftMessage => ({ type: 'heartbeat', term, from, to, commit }),
  heartbeatResponse: (from: ServerId, to: ServerId, term: number): RaftMessage => ({ type: 'heartbeatResponse', term, from, to }),
};

function fmt(m: RaftMessage): string {
  const head = `${m.from}→${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'vote':
    case 'preVote':
      return `${head} last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer === true ? ' transfer' : ''}`;
    case 'voteResponse':
    case 'preVoteResponse':
      return `${head} ${m.granted ? 'granted' : `refused(${m.reason ?? '?'})`}`;
    case 'append':
      return `${head} prev=${m.prevLogIndex}/${m.prevLogTerm} entries=[${m.entries.map((e) => `${e.index}/${e.term}`).join(' ')}] commit=${m.leaderCommit}`;
    case 'appendResponse':
      return m.success ? `${head} ok index=${m.index}` : `${head} refused index=${m.index} hint=${m.hintTerm}@${m.hintIndex}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.round === undefined ? '' : ` round=${m.round}`}`;
    case 'heartbeatResponse':
      return `${head}${m.round === undefined ? '' : ` round=${m.round}`}`;
    case 'readIndex':
      return `${head} id=${m.requestId}`;
    case 'readIndexResponse':
      return `${head} id=${m.requestId} ${m.success ? `index=${m.index}` : 'refused'}`;
    case 'timeoutNow':
      return head;
    case 'installSnapshot':
      return `${head} snapshot=${m.snapshotIndex}/${m.snapshotTerm} seq=${m.seq} offset=${m.offset}${m.done ? ' done' : ''}`;
    case 'installSnapshotResponse':
      return `${head} snapshot=${m.snapshotIndex}/${m.snapshotTerm} seq=${m.seq} ${m.ok ? 'ok' : `refused(${m.reason ?? '?'})`} next=${m.next}${m.installed ? ' installed' : ''}`;
  }
}

const fmtAppend = (i: AppendEntriesIntent): string => `after ${i.prevIndex}: [${i.entries.map((e) => `${e.index}/${e.term}`).join(' ')}]`;
const fmtProposal = (i: AppendProposalsIntent): string => `${i.type}×${i.payloads.length} t${i.term}`;

// ---------------------------------------------------------------------------
// One node machine on a simulated clock, its intents recorded.

interface NodeOptions {
  id?: ServerId;
  voters?: ServerId[];
  learners?: ServerId[];
  terms?: number[];
  term?: number;
  votedFor?: ServerId | null;
  preVote?: boolean;
  checkQuorum?: boolean;
  limits?: Partial<ReplicaLimits>;
  /** Overrides the election timeout draw, as the node actor does. */
  electionTimeout?: () => number;
  readMode?: 'readIndex' | 'lease';
}

function node(opts: NodeOptions = {}) {
  const id = opts.id ?? 'a';
  const clock = new SimulatedClock();
  const log = new MemLog(opts.terms ?? []);
  const out: RaftMessage[] = [];
  const appended: AppendEntriesIntent[] = [];
  const proposed: AppendProposalsIntent[] = [];
  const commits: number[] = [];
  const rejected: Array<ServerId | null> = [];
  /** Read, transfer and lease intents, one line each. */
  const notes: string[] = [];
  const machine = nodeMachine.provide({
    actions: {
      confirmReads: (_, reads) => {
        notes.push(`confirm ${reads.map((r) => `#${r.id}@${r.index}`).join(' ')}`);
      },
      rejectReads: (_, i) => {
        notes.push(`rejectReads ${i.ids.map((x) => `#${x}`).join(' ')} leader=${i.leaderId ?? 'none'}`);
      },
      refuseProposals: (_, target) => {
        notes.push(`refuseProposals target=${target}`);
      },
      transferStarted: (_, target) => {
        notes.push(`transferStarted ${target}`);
      },
      transferFailed: (_, refusal) => {
        notes.push(`transferFailed ${refusal}`);
      },
      transferSteppedDown: (_, target) => {
        notes.push(`transferSteppedDown ${target}`);
      },
      leaseExpired: () => {
        notes.push('leaseExpired');
      },
      appendConfig: (_, intent) => {
        const roles = intent.config.servers.map((s) => `${s.id}:${s.suffrage === 'learner' ? 'L' : 'V'}`).join(' ');
        notes.push(`appendConfig ${intent.origin} [${roles}]${intent.config.old === undefined ? '' : ' joint'}`);
        log.appendNew(intent.term, 'config', 1);
      },
      refuseChange: (_, intent) => {
        notes.push(`refuseChange ${intent.refusal}`);
      },
      send: (_, messages) => {
        out.push(...messages);
      },
      appendEntries: (_, intent) => {
        appended.push(intent);
        log.appendAfter(intent.entries);
      },
      appendProposals: (_, intent) => {
        proposed.push(intent);
        log.appendNew(intent.term, intent.type, intent.payloads.length);
      },
      commitTo: (_, index) => {
        commits.push(index);
      },
      rejectProposals: (_, leaderId) => {
        rejected.push(leaderId);
      },
    },
    actors: {
      replica: replicaMachine.provide({
        actions: {
          sendAppend: (_, i) => {
            out.push(msg.append(id, i.to, i.term, [i.prevIndex, i.prevTerm], log.slice(i.prevIndex + 1, i.lastIndex), i.commit));
          },
          sendHeartbeat: (_, i) => {
            out.push({ type: 'heartbeat', term: i.term, from: id, to: i.to, commit: i.commit, round: i.round });
          },
        },
      }),
    },
    ...(opts.electionTimeout === undefined ? {} : { delays: { electionTimeout: opts.electionTimeout } }),
  });
  const actor = createActor(machine, {
    clock,
    input: {
      id,
      log,
      term: opts.term ?? 1,
      votedFor: opts.votedFor ?? null,
      voters: opts.voters ?? ['a', 'b', 'c'],
      learners: opts.learners ?? [],
      preVote: opts.preVote ?? false,
      checkQuorum: opts.checkQuorum ?? false,
      electionTimeoutMs: T,
      heartbeatIntervalMs: H,
      limits: { maxInflight: 8, maxInflightBytes: 1 << 20, maxEntriesPerMessage: 64, maxBytesPerMessage: 1 << 20, ...opts.limits },
      ...(opts.readMode === undefined ? {} : { readMode: opts.readMode }),
    },
  });
  const errors: unknown[] = [];
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  return {
    id,
    actor,
    clock,
    log,
    appended,
    proposed,
    commits,
    rejected,
    errors,
    receive(m: RaftMessage): void {
      actor.send({ type: 'msg.receive', message: m });
    },
    /** Read, transfer and lease intents since the last call. */
    notes(): string[] {
      return notes.splice(0);
    },
    /** Messages sent since the last call, one line each. */
    take(): string[] {
      return out.splice(0).map(fmt);
    },
    ctx(): NodeContext {
      return actor.getSnapshot().context;
    },
    /** `follower.led`, `follower.leaderless`, `preCandidate`, `candidate` or `leader`. */
    state(): string {
      const s = actor.getSnapshot();
      if (s.status !== 'active') return `${s.status}: ${String(s.error)}`;
      const v = s.value;
      if (typeof v === 'string') return v;
      if ('follower' in v) return `follower.${String(v.follower)}`;
      return Object.keys(v)[0] ?? '?';
    },
    /** term, vote and leader on one line. */
    hard(): string {
      const c = actor.getSnapshot().context;
      return `term=${c.term} votedFor=${c.votedFor ?? 'none'} leader=${c.leaderId ?? 'none'} commit=${c.commitIndex}`;
    },
    replicas(): string[] {
      return Object.keys(actor.getSnapshot().children).sort();
    },
  };
}

type Node = ReturnType<typeof node>;

/** Times out as a follower (no pre-vote), wins with one grant from `grantor`, and drains the output. */
function elect(n: Node, grantor: ServerId): void {
  n.clock.advanceBy(T);
  n.receive(msg.voteResponse(grantor, n.id, n.ctx().term, true));
  if (n.state() !== 'leader') throw new Error(`expected ${n.id} to lead, it is ${n.state()}`);
  n.take();
}

// ---------------------------------------------------------------------------

t.test('§5.1 a server that sees a higher term adopts it and becomes follower', async (t) => {
  const f = node({ term: 2, votedFor: 'c', terms: [1, 2] });
  f.receive(msg.heartbeat('b', 'a', 5, 0));
  t.equal(f.hard(), 'term=5 votedFor=none leader=b commit=0', 'a follower adopts the term and clears its vote');
  t.equal(f.state(), 'follower.led');
  t.same(f.take(), ['a→b heartbeatResponse t5']);

  const c = node({ terms: [1] });
  c.clock.advanceBy(T);
  t.equal(c.state(), 'candidate');
  c.receive(msg.voteResponse('b', 'a', 7, false));
  t.equal(c.state(), 'follower.leaderless', 'a candidate steps down on a refusal from a later term');
  t.equal(c.hard(), 'term=7 votedFor=none leader=none commit=0');

  const l = node({ terms: [1] });
  elect(l, 'b');
  t.same(l.replicas(), ['replica:b', 'replica:c']);
  l.receive(msg.refuse('c', 'a', 4, 1, 0, 0));
  t.equal(l.state(), 'follower.leaderless', 'a leader steps down on an answer from a later term');
  t.equal(l.hard(), 'term=4 votedFor=none leader=none commit=0');
  t.same(l.replicas(), [], 'its replicas die with the leadership');
  t.same([...c.errors, ...f.errors, ...l.errors], []);
});

t.test('§5.1 a message with a stale term is answered with the current term and otherwise ignored', async (t) => {
  const f = node({ term: 5, terms: [1, 1, 3] });
  f.receive(msg.append('b', 'a', 3, [3, 3], ents(3, 3), 3));
  f.receive(msg.vote('c', 'a', 4, 9, 4));
  f.receive(msg.preVote('c', 'a', 4, 9, 4));
  f.receive(msg.voteResponse('b', 'a', 4, true));
  f.receive(msg.ack('b', 'a', 4, 3));
  f.clock.advanceTo(T - 10);
  f.receive(msg.heartbeat('b', 'a', 4, 3));
  f.receive(msg.heartbeatResponse('b', 'a', 4));
  t.same(f.take(), [
    'a→b appendResponse t5 refused index=3 hint=0@0',
    'a→c voteResponse t5 refused(term)',
    'a→c preVoteResponse t5 refused(term)',
    'a→b heartbeatResponse t5',
  ]);
  t.equal(f.hard(), 'term=5 votedFor=none leader=none commit=0');
  t.equal(f.state(), 'follower.leaderless', 'a stale leader is not followed');
  t.same(f.appended, [], 'no entry taken from a stale leader');
  t.same(f.log.terms(), [1, 1, 3]);
  t.same(f.commits, []);
  f.clock.advanceTo(T);
  t.equal(f.state(), 'candidate', 'the stale heartbeat did not reset the election timer');
  t.equal(f.ctx().term, 6);
});

t.test('§5.2 follower starts an election (pre-vote first) after the election timeout', async (t) => {
  const f = node({ preVote: true, terms: [1] });
  for (let at = 0; at <= 3 * T; at += T / 2) {
    f.clock.advanceTo(at);
    f.receive(msg.heartbeat('b', 'a', 1, 0));
  }
  t.equal(f.state(), 'follower.led', 'heartbeats every T/2 keep it a follower');
  t.equal(f.take().filter((m) => !m.includes('heartbeatResponse')).length, 0);

  f.clock.advanceTo(4 * T - 1);
  t.match(f.state(), /^follower\./, 'silent for just under T');
  t.same(f.take(), []);
  f.clock.advanceTo(4 * T);
  t.equal(f.state(), 'preCandidate');
  t.same(f.take(), ['a→b preVote t2 last=1/1', 'a→c preVote t2 last=1/1']);
  t.equal(f.hard(), 'term=1 votedFor=none leader=none commit=0', 'pre-vote changes nothing durable');

  f.receive(msg.voteResponse('b', 'a', 2, true, true));
  t.equal(f.state(), 'candidate', 'a majority of pre-votes starts the real election');
  t.same(f.take(), ['a→b vote t2 last=1/1', 'a→c vote t2 last=1/1']);
  t.equal(f.hard(), 'term=2 votedFor=a leader=none commit=0');
});

t.test('§5.2 candidate votes for itself and increments the term', async (t) => {
  const c = node({ term: 3, terms: [1, 2, 3] });
  c.clock.advanceTo(T - 1);
  t.equal(c.state(), 'follower.leaderless');
  c.clock.advanceTo(T);
  t.equal(c.state(), 'candidate');
  t.equal(c.hard(), 'term=4 votedFor=a leader=none commit=0');
  t.same(c.ctx().votes, { a: true });
  t.same(c.take(), ['a→b vote t4 last=3/3', 'a→c vote t4 last=3/3']);
  c.receive(msg.voteResponse('b', 'a', 4, false));
  t.equal(c.state(), 'candidate', 'its own vote and one refusal decide nothing in a cluster of three');
});

t.test('§5.2 candidate with a majority of votes becomes leader and sends appends/heartbeats', async (t) => {
  const c = node({ voters: ['a', 'b', 'c', 'd', 'e'], terms: [1] });
  c.clock.advanceBy(T);
  c.take();
  c.receive(msg.voteResponse('b', 'a', 2, true));
  c.receive(msg.voteResponse('c', 'a', 2, false));
  t.equal(c.state(), 'candidate', 'two of five is not a majority');
  c.receive(msg.voteResponse('d', 'a', 2, true));
  t.equal(c.state(), 'leader', 'three of five is');
  t.equal(c.hard(), 'term=2 votedFor=a leader=a commit=0');
  t.same(c.proposed.map(fmtProposal), ['noop×1 t2'], 'a new leader appends a no-op of its term');
  t.same(c.log.terms(), [1, 2]);
  t.same(c.replicas(), ['replica:b', 'replica:c', 'replica:d', 'replica:e']);
  t.same(c.take(), [
    'a→b append t2 prev=1/1 entries=[2/2] commit=0',
    'a→c append t2 prev=1/1 entries=[2/2] commit=0',
    'a→d append t2 prev=1/1 entries=[2/2] commit=0',
    'a→e append t2 prev=1/1 entries=[2/2] commit=0',
  ]);
  c.clock.advanceBy(H - 1);
  t.same(c.take(), []);
  c.clock.advanceBy(1);
  t.same(c.take(), ['a→b heartbeat t2 commit=0 round=1', 'a→c heartbeat t2 commit=0 round=1', 'a→d heartbeat t2 commit=0 round=1', 'a→e heartbeat t2 commit=0 round=1']);
  c.clock.advanceBy(H);
  t.equal(c.take().length, 4, 'and keeps beating every heartbeat interval');
});

t.test('§5.2 at most one vote per term, first come first served', async (t) => {
  const f = node({ terms: [1] });
  f.receive(msg.vote('b', 'a', 2, 1, 1));
  f.receive(msg.vote('c', 'a', 2, 1, 1));
  f.receive(msg.vote('b', 'a', 2, 1, 1));
  t.same(f.take(), ['a→b voteResponse t2 granted', 'a→c voteResponse t2 refused(voted)', 'a→b voteResponse t2 granted']);
  t.equal(f.hard(), 'term=2 votedFor=b leader=none commit=0');
  f.receive(msg.vote('c', 'a', 3, 1, 1));
  t.same(f.take(), ['a→c voteResponse t3 granted'], 'a new term, a new vote');
  t.equal(f.hard(), 'term=3 votedFor=c leader=none commit=0');
});

t.test('§5.2 candidate that hears from a leader of the same term becomes follower', async (t) => {
  const c = node({ terms: [1] });
  c.clock.advanceBy(T);
  c.take();
  c.receive(msg.append('b', 'a', 2, [1, 1], ents(1, 2), 0));
  t.equal(c.state(), 'follower.led');
  t.equal(c.hard(), 'term=2 votedFor=a leader=b commit=0', 'same term, its own vote stays');
  t.same(c.take(), ['a→b appendResponse t2 ok index=2']);
  t.same(c.log.terms(), [1, 2]);

  const p = node({ preVote: true, terms: [1] });
  p.clock.advanceBy(T);
  t.equal(p.state(), 'preCandidate');
  p.receive(msg.heartbeat('b', 'a', 1, 0));
  t.equal(p.state(), 'follower.led', 'a pre-candidate too');
  t.equal(p.hard(), 'term=1 votedFor=none leader=b commit=0');
});

t.test('§5.2 split vote: a candidate times out and starts a new election (randomized timeout in [T,2T))', async (t) => {
  const seed = 4242;
  const random = seededRandom(seed);
  const c = node({ voters: ['a', 'b', 'c', 'd'], terms: [1], electionTimeout: () => random.int(T, 2 * T) });
  /** Runs timers until the next round of vote requests; returns its time. */
  const nextElection = (): number => {
    while (c.clock.runNext()) {
      const sent = c.take();
      if (sent.some((m) => m.includes(' vote '))) return c.clock.now();
    }
    throw new Error('no election');
  };
  let at = nextElection();
  t.ok(at >= T && at < 2 * T, `seed ${seed}: first election at ${at}`);
  t.equal(c.ctx().term, 2);
  c.receive(msg.voteResponse('b', 'a', 2, true));
  c.receive(msg.voteResponse('c', 'a', 2, false));
  c.receive(msg.vote('d', 'a', 2, 1, 1));
  t.same(c.take(), ['a→d voteResponse t2 refused(voted)']);
  t.equal(c.state(), 'candidate', 'two of four: split');

  const gaps: number[] = [];
  for (let round = 0; round < 10; round++) {
    const next = nextElection();
    gaps.push(next - at);
    at = next;
    t.equal(c.ctx().term, 3 + round, 'each election has a new term');
    t.same(c.ctx().votes, { a: true }, 'and counts votes afresh');
  }
  t.ok(
    gaps.every((g) => g >= T && g < 2 * T),
    `seed ${seed}: every timeout in [T, 2T): ${gaps.join(' ')}`,
  );
  t.ok(new Set(gaps).size > 1, `seed ${seed}: timeouts are randomized: ${gaps.join(' ')}`);
  t.equal(c.state(), 'candidate');
});

t.test('§5.3 follower refuses an append whose prev entry does not match and gives a conflict hint', async (t) => {
  const f = node({ term: 3, terms: [1, 1, 2, 2, 2] });
  f.receive(msg.append('b', 'a', 3, [5, 3], ents(5, 3), 0));
  f.receive(msg.append('b', 'a', 3, [8, 3], ents(8, 3), 0));
  t.same(f.take(), ['a→b appendResponse t3 refused index=5 hint=2@3', 'a→b appendResponse t3 refused index=8 hint=0@6']);
  t.same(f.appended, []);
  t.same(f.log.terms(), [1, 1, 2, 2, 2]);
  t.equal(f.state(), 'follower.led', 'it still heard from its leader');
  f.receive(msg.append('b', 'a', 3, [2, 1], ents(2, 3), 0));
  t.same(f.take(), ['a→b appendResponse t3 ok index=3'], 'the probe at the hint matches');
});

t.test('§5.3 a conflicting entry and all that follow it are deleted; matching entries are never deleted by a stale append', async (t) => {
  const f = node({ term: 3, terms: [1, 1, 2, 2, 2] });
  f.receive(msg.append('b', 'a', 3, [2, 1], ents(2, 3, 3), 0));
  t.same(f.appended.map(fmtAppend), ['after 2: [3/3 4/3]']);
  t.same(f.log.terms(), [1, 1, 3, 3], 'entries 3..5 of term 2 are gone');
  t.same(f.take(), ['a→b appendResponse t3 ok index=4']);

  f.receive(msg.append('b', 'a', 3, [2, 1], ents(2, 3), 0));
  t.same(f.log.terms(), [1, 1, 3, 3], 'a delayed, shorter append keeps entry 4');
  t.same(f.take(), ['a→b appendResponse t3 ok index=3'], 'and acknowledges only what it carried');
});

t.test('§5.3 follower commit index = min(leaderCommit, index of last new entry)', async (t) => {
  const f = node({ term: 3, terms: [1, 1, 2] });
  f.receive(msg.append('b', 'a', 3, [2, 1], [], 5));
  t.equal(f.ctx().commitIndex, 2, 'entry 3 is not known to match the leader: not committed');
  f.receive(msg.append('b', 'a', 3, [2, 1], ents(2, 3, 3), 5));
  t.equal(f.ctx().commitIndex, 4);
  f.receive(msg.append('b', 'a', 3, [4, 3], ents(4, 3), 4));
  t.equal(f.ctx().commitIndex, 4, 'leaderCommit bounds it');
  f.receive(msg.heartbeat('b', 'a', 3, 5));
  t.equal(f.ctx().commitIndex, 5);
  f.receive(msg.append('b', 'a', 3, [2, 1], ents(2, 3), 5));
  f.receive(msg.heartbeat('b', 'a', 3, 9));
  t.equal(f.ctx().commitIndex, 5, 'never decreases, never passes the log');
  t.same(f.commits, [2, 4, 5]);
  t.same(f.take(), [
    'a→b appendResponse t3 ok index=2',
    'a→b appendResponse t3 ok index=4',
    'a→b appendResponse t3 ok index=5',
    'a→b heartbeatResponse t3',
    'a→b appendResponse t3 ok index=5',
    'a→b heartbeatResponse t3',
  ]);
});

t.test('§5.3 leader commits when a majority has replicated', async (t) => {
  const l = node({ terms: [1] });
  elect(l, 'b');
  l.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  t.same(l.commits, [], 'the leader alone is not a majority');
  l.receive(msg.ack('b', 'a', 2, 2));
  t.same(l.commits, [2]);
  t.equal(l.ctx().commitIndex, 2);

  l.actor.send({ type: 'client.propose', payloads: [new Uint8Array([1]), new Uint8Array([2])] });
  t.same(l.proposed.map(fmtProposal), ['noop×1 t2', 'normal×2 t2']);
  t.same(l.take(), ['a→b append t2 prev=2/2 entries=[3/2 4/2] commit=2'], 'c has not answered its probe: nothing more for it');
  l.actor.send({ type: 'storage.synced', index: 4, term: 2 });
  l.receive(msg.ack('c', 'a', 2, 2));
  t.same(l.commits, [2], 'c holding 2 does not move the quorum index');
  t.same(l.take(), ['a→c append t2 prev=2/2 entries=[3/2 4/2] commit=2']);
  l.receive(msg.ack('b', 'a', 2, 4));
  t.same(l.commits, [2, 4]);
  l.clock.advanceBy(H);
  t.same(l.take(), ['a→b heartbeat t2 commit=4 round=1', 'a→c heartbeat t2 commit=2 round=1'], 'followers learn it, each no further than it matches');
});

t.test('§5.4.1 vote refused to a candidate with a less up-to-date log (by last term, then by length)', async (t) => {
  const f = node({ voters: ['a', 'b', 'c', 'd', 'e'], term: 2, terms: [1, 1, 2] });
  f.receive(msg.vote('b', 'a', 3, 10, 1));
  f.receive(msg.vote('c', 'a', 3, 2, 2));
  t.same(f.take(), ['a→b voteResponse t3 refused(log)', 'a→c voteResponse t3 refused(log)']);
  t.equal(f.hard(), 'term=3 votedFor=none leader=none commit=0');
  f.receive(msg.vote('d', 'a', 3, 3, 2));
  t.same(f.take(), ['a→d voteResponse t3 granted'], 'an equal log is up-to-date');
  f.receive(msg.vote('e', 'a', 4, 1, 3));
  t.same(f.take(), ['a→e voteResponse t4 granted'], 'a later last term wins over length');
  t.equal(f.hard(), 'term=4 votedFor=e leader=none commit=0');
});

t.test('§5.4.2 a leader does not commit an entry of a previous term by counting replicas; it commits it indirectly once an entry of its own term commits', async (t) => {
  // Entry 3 (term 2) is on the leader only; b and c hold [1, 1]. One entry per append.
  const l = node({ term: 2, terms: [1, 1, 2], limits: { maxEntriesPerMessage: 1 } });
  l.clock.advanceBy(T);
  l.take();
  l.receive(msg.voteResponse('b', 'a', 3, true));
  t.equal(l.state(), 'leader');
  t.same(l.take(), ['a→b append t3 prev=3/2 entries=[4/3] commit=0', 'a→c append t3 prev=3/2 entries=[4/3] commit=0']);
  l.actor.send({ type: 'storage.synced', index: 4, term: 3 });
  l.receive(msg.refuse('b', 'a', 3, 3, 0, 3));
  l.receive(msg.refuse('c', 'a', 3, 3, 0, 3));
  t.same(l.take(), ['a→b append t3 prev=2/1 entries=[3/2] commit=0', 'a→c append t3 prev=2/1 entries=[3/2] commit=0']);
  l.receive(msg.ack('b', 'a', 3, 3));
  l.receive(msg.ack('c', 'a', 3, 3));
  t.same(l.commits, [], 'entry 3 is on every server, but it is of term 2');
  t.equal(l.ctx().commitIndex, 0);
  t.same(l.take(), ['a→b append t3 prev=3/2 entries=[4/3] commit=0', 'a→c append t3 prev=3/2 entries=[4/3] commit=0']);
  l.receive(msg.ack('b', 'a', 3, 4));
  t.same(l.commits, [4], 'the no-op of term 3 commits, and entry 3 with it');
});

t.test('§9.6 pre-vote does not increment the term and a partitioned node does not disrupt', async (t) => {
  // z leads x, y, z in term 3 and appended its no-op at 3; x was cut off before receiving it.
  const z = node({ id: 'z', voters: ['x', 'y', 'z'], term: 2, terms: [1, 2] });
  elect(z, 'y');
  const y = node({ id: 'y', voters: ['x', 'y', 'z'], term: 3, terms: [1, 2, 3] });
  y.receive(msg.heartbeat('z', 'y', 3, 0));
  y.take();
  const x = node({ id: 'x', voters: ['x', 'y', 'z'], term: 3, terms: [1, 2], preVote: true });

  x.clock.advanceBy(5 * T);
  const sent = x.take();
  t.equal(sent.length, 10, 'five rounds of pre-votes, unanswered');
  t.same(new Set(sent), new Set(['x→y preVote t4 last=2/2', 'x→z preVote t4 last=2/2']));
  t.equal(x.state(), 'preCandidate');
  t.equal(x.hard(), 'term=3 votedFor=none leader=none commit=0', 'its term did not move');

  y.receive(msg.preVote('x', 'y', 4, 2, 2));
  t.same(y.take(), [], 'a follower with a live leader ignores it');
  t.equal(y.hard(), 'term=3 votedFor=none leader=z commit=0');
  z.receive(msg.preVote('x', 'z', 4, 2, 2));
  t.same(z.take(), ['z→x preVoteResponse t3 refused(log)']);
  t.equal(z.state(), 'leader', 'the leader is not disturbed');
  t.equal(z.ctx().term, 3);

  x.receive(msg.voteResponse('z', 'x', 3, false, true));
  t.equal(x.state(), 'preCandidate');
  x.receive(msg.heartbeat('z', 'x', 3, 0));
  t.equal(x.state(), 'follower.led', 'back in touch, it simply follows');
  t.equal(x.hard(), 'term=3 votedFor=none leader=z commit=0');
});

t.test('§4.2.3/§9.6 leader stickiness: a follower that heard from the leader within the minimum election timeout ignores higher-term vote requests', async (t) => {
  // The election timeout is drawn in [T, 2T); here 1.5 T, so the lease (T) ends first.
  const f = node({ term: 2, terms: [1, 2], electionTimeout: () => 1.5 * T });
  f.receive(msg.heartbeat('b', 'a', 2, 0));
  f.take();
  f.clock.advanceTo(T / 2);
  f.receive(msg.vote('c', 'a', 3, 2, 2));
  f.receive(msg.preVote('c', 'a', 3, 2, 2));
  t.same(f.take(), [], 'no answer while the leader is live');
  t.equal(f.hard(), 'term=2 votedFor=none leader=b commit=0');
  t.equal(f.state(), 'follower.led');

  f.clock.advanceTo(T + 20);
  t.equal(f.state(), 'follower.leaderless', 'no word from the leader for T');
  f.receive(msg.vote('c', 'a', 3, 2, 2));
  t.same(f.take(), ['a→c voteResponse t3 granted']);
  t.equal(f.hard(), 'term=3 votedFor=c leader=none commit=0');

  const g = node({ term: 2, terms: [1, 2] });
  g.receive(msg.heartbeat('b', 'a', 2, 0));
  g.take();
  g.receive(msg.vote('c', 'a', 3, 2, 2, true));
  t.same(g.take(), ['a→c voteResponse t3 granted'], 'a leadership transfer bypasses stickiness');
});

t.test('check quorum: a leader without contact from a majority for an election timeout steps down', async (t) => {
  const l = node({ terms: [1], checkQuorum: true });
  elect(l, 'b');
  /** Runs the clock to `until`, b answering every heartbeat while `answer` holds; stops early when `a` steps down. */
  let lastContact = 0;
  const runTo = (until: number, answer: boolean): void => {
    for (let next = l.clock.nextTime(); next !== undefined && next <= until; next = l.clock.nextTime()) {
      l.clock.runNext();
      for (const m of l.take()) {
        if (!answer || !m.startsWith('a→b heartbeat')) continue;
        l.receive(msg.heartbeatResponse('b', 'a', 2));
        lastContact = l.clock.now();
      }
      if (l.state() !== 'leader') return;
    }
    l.clock.advanceTo(until);
  };
  const start = l.clock.now();
  runTo(start + 4 * T, true);
  t.equal(l.state(), 'leader', 'b (with itself, two of three) keeps it leader for 4 T');
  runTo(lastContact + T - 1, false);
  t.equal(l.state(), 'leader', 'not before an election timeout of silence');
  runTo(lastContact + 2 * T, false);
  t.equal(l.state(), 'follower.leaderless', 'stepped down by the end of the next check window');
  t.ok(l.clock.now() >= lastContact + T && l.clock.now() <= lastContact + 2 * T, `stepped down at ${l.clock.now() - lastContact} after the last contact`);
  t.equal(l.hard(), 'term=2 votedFor=a leader=none commit=0');
  t.same(l.replicas(), []);

  const off = node({ terms: [1], checkQuorum: false });
  elect(off, 'b');
  off.clock.advanceBy(10 * T);
  t.equal(off.state(), 'leader', 'without check quorum, silence does not depose a leader');
});

t.test('a learner never campaigns, but answers vote requests', async (t) => {
  for (const preVote of [false, true]) {
    const l = node({ id: 'l', voters: ['a', 'b', 'c'], learners: ['l'], terms: [1], preVote });
    l.clock.advanceBy(10 * T);
    l.actor.send({ type: 'client.campaign' });
    t.equal(l.state(), 'follower.leaderless', `preVote=${preVote}`);
    t.same(l.take(), [], 'no (pre-)vote request ever');
    t.equal(l.ctx().term, 1);
    l.receive(msg.vote('a', 'l', 2, 1, 1));
    // Thesis §4.1: votes are granted without consulting one's own configuration; the candidate's says whose vote counts.
    t.same(l.take(), ['l→a voteResponse t2 granted'], 'but it answers a vote request like anyone (its vote counts only where the candidate lists it as voter)');
  }
});

// ---------------------------------------------------------------------------
// Reads (thesis §6.4) and leadership transfer (thesis §3.10)

const beatAnswer = (from: ServerId, to: ServerId, term: number, round: number): RaftMessage => ({ type: 'heartbeatResponse', term, from, to, round });
const readIndex = (from: ServerId, to: ServerId, term: number, requestId: number): RaftMessage => ({ type: 'readIndex', term, from, to, requestId });
const readAnswer = (from: ServerId, to: ServerId, term: number, requestId: number, index: number | null): RaftMessage => ({
  type: 'readIndexResponse',
  term,
  from,
  to,
  requestId,
  success: index !== null,
  index: index ?? 0,
});
const read = (n: Node, id: number): void => {
  n.actor.send({ type: 'client.read', id });
};

/** Elected leader `a` of a, b, c in term 2 whose no-op (index 2) is committed and acknowledged by both peers. */
function committedLeader(opts: NodeOptions = {}): Node {
  const l = node({ terms: [1], ...opts });
  elect(l, 'b');
  l.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  l.receive(msg.ack('b', 'a', 2, 2));
  l.receive(msg.ack('c', 'a', 2, 2));
  if (l.ctx().commitIndex !== 2) throw new Error('no-op not committed');
  l.take();
  return l;
}

t.test('§6.4 read index: a new leader defers reads until its no-op commits, then confirms a batch with one heartbeat round', async (t) => {
  const l = node({ terms: [1] });
  elect(l, 'b');
  read(l, 1);
  t.same(l.take(), [], 'no round before an entry of its term is committed');
  t.same(l.notes(), []);
  l.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  l.receive(msg.ack('b', 'a', 2, 2));
  t.equal(l.ctx().commitIndex, 2);
  t.same(l.take(), ['a→b heartbeat t2 commit=2 round=1', 'a→c heartbeat t2 commit=0 round=1'], 'the commit of the no-op starts the round');
  t.same(l.ctx().reads, [{ id: 1, from: null, index: 2, round: 1 }], 'the read index is the commit index');

  read(l, 2);
  read(l, 3);
  t.same(l.take(), [], 'reads arriving during a round wait for the next one');
  l.receive(beatAnswer('b', 'a', 2, 0));
  t.same(l.notes(), [], 'an answer to an older round confirms nothing');
  l.receive(beatAnswer('b', 'a', 2, 1));
  t.same(l.notes(), ['confirm #1@2'], 'itself and b: a quorum for round 1');
  t.same(
    l.take().filter((m) => m.includes('heartbeat')),
    ['a→b heartbeat t2 commit=2 round=2', 'a→c heartbeat t2 commit=0 round=2'],
    'the waiting reads share the next round, started at once',
  );
  l.receive(beatAnswer('c', 'a', 2, 1));
  t.same(l.notes(), [], 'a late answer for round 1 does not confirm round 2');
  l.receive(beatAnswer('c', 'a', 2, 9));
  t.same(l.notes(), [], 'an answer for a round never sent is ignored');
  l.receive(beatAnswer('c', 'a', 2, 2));
  t.same(l.notes(), ['confirm #2@2 #3@2']);
  t.same(l.ctx().reads, []);
  t.same(l.errors, []);
});

t.test('§6.4 the periodic heartbeat covers waiting reads; a single-voter leader confirms at once', async (t) => {
  const l = committedLeader();
  read(l, 1);
  t.equal(l.take().length, 2, 'round 1 for read #1');
  read(l, 2);
  l.clock.advanceBy(H);
  t.same(l.take(), ['a→b heartbeat t2 commit=2 round=2', 'a→c heartbeat t2 commit=2 round=2']);
  l.receive(beatAnswer('b', 'a', 2, 2));
  t.same(l.notes(), ['confirm #1@2 #2@2'], 'round 2 was sent after both reads arrived');

  const solo = node({ voters: ['a'], terms: [1] });
  solo.clock.advanceBy(T);
  t.equal(solo.state(), 'leader');
  read(solo, 7);
  t.same(solo.notes(), []);
  solo.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  t.same(solo.notes(), ['confirm #7@2'], 'its own round is a quorum');
  read(solo, 8);
  t.same(solo.notes(), ['confirm #8@2']);
});

t.test('§6.4 follower reads: asked of the leader, answered after a round; refused without a leader or by a non-leader', async (t) => {
  const l = committedLeader();
  l.receive(readIndex('b', 'a', 2, 77));
  t.equal(l.take().filter((m) => m.includes('heartbeat')).length, 2);
  l.receive(beatAnswer('c', 'a', 2, 1));
  t.same(l.take(), ['a→b readIndexResponse t2 id=77 index=2']);
  t.same(l.notes(), [], 'a remote read is answered, not confirmed locally');

  const f = node({ term: 2, terms: [1, 2] });
  read(f, 5);
  t.same(f.notes(), ['rejectReads #5 leader=none'], 'no leader known');
  t.same(f.take(), []);
  f.receive(msg.heartbeat('b', 'a', 2, 1));
  f.take();
  read(f, 6);
  t.same(f.take(), ['a→b readIndex t2 id=6'], 'the read is asked of the leader');
  f.receive(readAnswer('b', 'a', 2, 6, 2));
  t.same(f.notes(), ['confirm #6@2']);
  f.receive(readAnswer('b', 'a', 2, 8, null));
  t.same(f.notes(), ['rejectReads #8 leader=none']);
  f.receive(readIndex('c', 'a', 2, 9));
  t.same(f.take(), ['a→c readIndexResponse t2 id=9 refused'], 'a follower does not serve read indexes');
  f.receive(readIndex('c', 'a', 1, 10));
  t.same(f.take(), ['a→c readIndexResponse t2 id=10 refused'], 'nor answers a stale request with anything but its term');
  t.same(f.errors, []);
});

t.test('§6.4 a deposed leader never confirms its pending reads: they fail, remote ones with an answer', async (t) => {
  const l = committedLeader({ checkQuorum: true });
  read(l, 1);
  l.receive(readIndex('c', 'a', 2, 44));
  l.take();
  l.clock.advanceBy(2 * T);
  t.equal(l.state(), 'follower.leaderless', 'no quorum contact: stepped down');
  t.same(l.notes(), ['rejectReads #1 leader=none']);
  t.same(l.take().filter((m) => !m.includes('heartbeat')), ['a→c readIndexResponse t2 id=44 refused']);
  l.receive(beatAnswer('b', 'a', 2, 1));
  l.receive(beatAnswer('c', 'a', 2, 1));
  t.same(l.notes(), [], 'late answers confirm nothing');

  const m = committedLeader();
  read(m, 2);
  m.take();
  m.receive(msg.heartbeat('b', 'a', 3, 2));
  t.equal(m.state(), 'follower.led', 'a newer leader deposes it');
  t.same(m.notes(), ['rejectReads #2 leader=none']);
});

t.test('§6.4.1 lease reads: within the lease no round; after it expires, a round again', async (t) => {
  const l = committedLeader({ readMode: 'lease' });
  read(l, 1);
  t.equal(l.take().length, 2, 'no lease yet: a round');
  l.receive(beatAnswer('b', 'a', 2, 1));
  t.same(l.notes(), ['confirm #1@2']);
  t.equal(l.ctx().leaseHeld, true, 'the quorum round started the lease');
  read(l, 2);
  t.same(l.notes(), ['confirm #2@2'], 'confirmed at once');
  t.same(l.take(), [], 'without a heartbeat');
  l.clock.advanceBy(Math.floor(0.9 * T) - 1);
  l.take();
  read(l, 3);
  t.same(l.notes(), ['confirm #3@2'], 'still within the lease');
  l.clock.advanceBy(1);
  t.same(l.notes(), ['leaseExpired'], 'no quorum answer renewed it');
  read(l, 4);
  t.same(l.notes(), [], 'an expired lease does not confirm');
  const round = l.ctx().round;
  t.same(
    l.take().filter((m) => m.endsWith(`round=${round}`)),
    [`a→b heartbeat t2 commit=2 round=${round}`, `a→c heartbeat t2 commit=2 round=${round}`],
    'the read started a round',
  );
  l.receive(beatAnswer('c', 'a', 2, round));
  t.same(l.notes(), ['confirm #4@2']);
  t.equal(l.ctx().leaseHeld, true, 'and renewed the lease');

  const plain = committedLeader();
  read(plain, 1);
  plain.receive(beatAnswer('b', 'a', 2, 1));
  plain.notes();
  plain.take();
  read(plain, 2);
  t.same(plain.notes(), [], 'readIndex mode never uses a lease');
  t.equal(plain.take().length, 2);
});

t.test('§3.10 leadership transfer: catch the target up, refuse proposals, then timeoutNow', async (t) => {
  const l = node({ terms: [1] });
  elect(l, 'b');
  l.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  l.receive(msg.ack('b', 'a', 2, 2));
  l.actor.send({ type: 'client.propose', payloads: [new Uint8Array([1]), new Uint8Array([2])] });
  l.take();
  t.equal(l.log.lastIndex(), 4);
  l.actor.send({ type: 'client.transfer', target: 'c' });
  t.same(l.notes(), ['transferStarted c']);
  t.equal(l.ctx().transferTarget, 'c');
  t.notOk(l.take().some((m) => m.includes('timeoutNow')), 'c lags: no timeoutNow yet');
  l.actor.send({ type: 'client.propose', payloads: [new Uint8Array([3])] });
  t.same(l.notes(), ['refuseProposals target=c'], 'proposals are refused during the transfer');
  t.equal(l.log.lastIndex(), 4, 'and not appended');
  l.actor.send({ type: 'client.transfer', target: 'b' });
  t.same(l.notes(), ['transferFailed busy']);
  l.receive(msg.ack('c', 'a', 2, 2));
  t.same(l.take().filter((m) => m.includes('timeoutNow')), [], 'c holds 2 of 4');
  l.receive(msg.ack('c', 'a', 2, 4));
  t.same(l.take(), ['a→c timeoutNow t2'], 'caught up: campaign now');
  l.receive(msg.ack('c', 'a', 2, 4));
  t.same(l.take(), [], 'timeoutNow goes once');
  l.receive(msg.vote('c', 'a', 3, 4, 2, true));
  t.equal(l.state(), 'follower.leaderless', 'the target campaigns and the leader steps down');
  t.same(l.notes(), ['transferSteppedDown c']);
  t.same(l.take(), ['a→c voteResponse t3 granted']);
  t.same(l.errors, []);
});

t.test('§3.10 a transfer aborts after its timeout and the leader accepts proposals again; bad targets are refused', async (t) => {
  const l = committedLeader();
  l.actor.send({ type: 'client.transfer', target: 'c', timeoutMs: 2 * T });
  t.same(l.take(), ['a→c timeoutNow t2'], 'c already holds the whole log');
  l.clock.advanceBy(2 * T - 1);
  l.actor.send({ type: 'client.propose', payloads: [new Uint8Array([1])] });
  t.same(l.notes(), ['transferStarted c', 'refuseProposals target=c']);
  l.clock.advanceBy(1);
  t.same(l.notes(), ['transferFailed timeout']);
  t.equal(l.state(), 'leader');
  l.actor.send({ type: 'client.propose', payloads: [new Uint8Array([1])] });
  t.equal(l.log.lastIndex(), 3, 'a proposal is appended again');
  t.same(l.notes(), []);
  t.equal(l.ctx().transferSent, true, 'lease reads stay off for the rest of the term');

  for (const [target, why] of [['a', 'self'], ['z', 'notVoter']] as const) {
    l.actor.send({ type: 'client.transfer', target });
    t.same(l.notes(), [`transferFailed ${why}`], `target ${target}`);
  }
  l.actor.send({ type: 'client.transfer', target: null });
  t.same(l.notes(), ['transferStarted b'], 'no target: the voter with the highest match (b: 3, c: 2)');

  const f = node({ term: 2, terms: [1, 2] });
  f.actor.send({ type: 'client.transfer', target: 'b' });
  t.same(f.notes(), ['transferFailed notLeader']);
  const solo = node({ voters: ['a'], terms: [1] });
  solo.clock.advanceBy(T);
  solo.actor.send({ type: 'client.transfer', target: null });
  t.same(solo.notes(), ['transferFailed noTarget']);
});

t.test('§3.10 timeoutNow: the target campaigns at once, skipping pre-vote, and its votes bypass stickiness', async (t) => {
  const f = node({ preVote: true, term: 2, terms: [1, 2] });
  f.receive(msg.heartbeat('b', 'a', 2, 2));
  f.take();
  f.receive({ type: 'timeoutNow', term: 2, from: 'c', to: 'a' });
  t.equal(f.state(), 'follower.led', 'only the leader it follows may tell it');
  f.receive({ type: 'timeoutNow', term: 2, from: 'b', to: 'a' });
  t.equal(f.state(), 'candidate', 'no pre-vote');
  t.equal(f.hard(), 'term=3 votedFor=a leader=none commit=2');
  t.same(f.take(), ['a→b vote t3 last=2/2 transfer', 'a→c vote t3 last=2/2 transfer']);
  f.clock.advanceBy(2 * T);
  t.ok(f.take().every((m) => !m.includes('transfer')), 'a later campaign is an ordinary one');

  const voter = node({ id: 'c', term: 2, terms: [1, 2], checkQuorum: true });
  voter.receive(msg.heartbeat('b', 'c', 2, 2));
  voter.take();
  voter.receive(msg.vote('a', 'c', 3, 2, 2));
  t.same(voter.take(), [], 'an ordinary vote request is ignored while the leader is live');
  voter.receive(msg.vote('a', 'c', 3, 2, 2, true));
  t.same(voter.take(), ['c→a voteResponse t3 granted'], 'a transfer vote is not');

  const learner = node({ id: 'l', voters: ['a', 'b', 'c'], learners: ['l'], term: 2, terms: [1, 2] });
  learner.receive(msg.heartbeat('b', 'l', 2, 2));
  learner.receive({ type: 'timeoutNow', term: 2, from: 'b', to: 'l' });
  t.equal(learner.state(), 'follower.led', 'a learner never campaigns');
});

t.test('§6.4.1 lease mode: a node ignores (pre-)vote requests for the first election timeout after start', async (t) => {
  const quiet = node({ term: 2, terms: [1, 2], readMode: 'lease', electionTimeout: () => 2 * T });
  quiet.receive(msg.preVote('c', 'a', 3, 2, 2));
  quiet.receive(msg.vote('c', 'a', 3, 2, 2));
  t.same(quiet.take(), [], 'just restarted: it may have acknowledged a leader whose lease still runs');
  t.equal(quiet.hard(), 'term=2 votedFor=none leader=none commit=0', 'and its term did not move');
  quiet.receive(msg.vote('c', 'a', 3, 2, 2, true));
  t.same(quiet.take(), ['a→c voteResponse t3 granted'], 'a transfer vote still goes through');

  const later = node({ term: 2, terms: [1, 2], readMode: 'lease', electionTimeout: () => 2 * T });
  later.clock.advanceBy(T);
  later.receive(msg.vote('c', 'a', 3, 2, 2));
  t.same(later.take(), ['a→c voteResponse t3 granted'], 'after one election timeout it votes');

  const plain = node({ term: 2, terms: [1, 2] });
  plain.receive(msg.vote('c', 'a', 3, 2, 2));
  t.same(plain.take(), ['a→c voteResponse t3 granted'], 'without lease mode there is no quiet period');
});

// ---------------------------------------------------------------------------
// Membership (thesis §4): configurations take effect on append and never disturb the role.

t.test('§4.1 a configuration change does not disturb a follower: it stays led by its leader', async (t) => {
  const f = node({ terms: [1] });
  f.receive(msg.heartbeat('b', 'a', 1, 1));
  t.equal(f.state(), 'follower.led');
  f.actor.send({ type: 'config.changed', config: { servers: ['a', 'b', 'c', 'd'].map((id) => ({ id, address: id })) }, index: 2 });
  t.equal(f.state(), 'follower.led', 'still led: leader stickiness is kept');
  t.equal(f.ctx().leaderId, 'b');
  t.same(f.ctx().voters, ['a', 'b', 'c', 'd']);
  t.equal(f.ctx().configIndex, 2);
  // Demoted to learner by the latest configuration: it never campaigns.
  f.actor.send({ type: 'config.changed', config: { servers: [{ id: 'a', address: 'a', suffrage: 'learner' }, { id: 'b', address: 'b' }] }, index: 3 });
  f.clock.advanceBy(10 * T);
  t.equal(f.state(), 'follower.leaderless', 'a learner does not campaign');
  t.same(f.take().filter((m) => m.includes('vote')), []);
});

t.test('a (pre-)vote request from a server outside the configuration is dropped before the term gate', async (t) => {
  const f = node({ terms: [1] });
  f.receive(msg.vote('z', 'a', 9, 5, 1));
  f.receive(msg.preVote('z', 'a', 9, 5, 1));
  t.same(f.take(), [], 'no answer');
  t.equal(f.ctx().term, 1, 'the stranger did not raise our term');
  f.receive(msg.vote('b', 'a', 2, 5, 1));
  t.same(f.take(), ['a→b voteResponse t2 granted'], 'members are answered');
});

t.test('leader: a membership change is appended at once, replicas follow it, the next waits for its commit', async (t) => {
  const n = node({ terms: [1] });
  elect(n, 'b');
  n.actor.send({ type: 'client.membership', change: { type: 'addLearner', server: { id: 'l', address: 'l' } }, force: false });
  t.same(n.notes(), ['refuseChange leaderNotReady'], 'refused until the no-op of the term commits');
  n.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  n.receive(msg.ack('b', 'a', 2, 2));
  t.equal(n.ctx().commitIndex, 2);
  n.actor.send({ type: 'client.membership', change: { type: 'addLearner', server: { id: 'l', address: 'l' } }, force: false });
  t.same(n.notes(), ['appendConfig client [a:V b:V c:V l:L]']);
  t.equal(n.ctx().configIndex, 3, 'in effect from its index');
  t.same(n.replicas(), ['replica:b', 'replica:c', 'replica:l'], 'the learner gets a replica');
  t.equal(n.state(), 'leader', 'the leader leads on');
  n.actor.send({ type: 'client.membership', change: { type: 'removeServer', id: 'c' }, force: false });
  t.same(n.notes(), ['refuseChange changeInProgress'], 'one change at a time');
  n.actor.send({ type: 'storage.synced', index: 3, term: 2 });
  n.receive(msg.ack('b', 'a', 2, 3));
  t.equal(n.ctx().commitIndex, 3, 'the learner does not count; a and b commit');
  n.actor.send({ type: 'client.membership', change: { type: 'removeServer', id: 'c' }, force: false });
  t.same(n.notes(), ['appendConfig client [a:V b:V l:L]']);
  t.same(n.replicas(), ['replica:b', 'replica:l'], 'the removed voter loses its replica');
  n.actor.send({ type: 'client.membership', change: { type: 'addLearner', server: { id: 'x', address: 'x' } }, force: false });
  t.same(n.notes(), ['refuseChange changeInProgress']);
  const f = node({ id: 'b', terms: [1] });
  f.actor.send({ type: 'client.membership', change: { type: 'removeServer', id: 'c' }, force: false });
  t.same(f.notes(), ['refuseChange notLeader'], 'a follower refuses');
});

t.test('§6 leader: a committed joint configuration is left automatically; a leader outside C_new hands over and steps down', async (t) => {
  const n = node({ terms: [1] });
  elect(n, 'b');
  n.actor.send({ type: 'storage.synced', index: 2, term: 2 });
  n.receive(msg.ack('b', 'a', 2, 2));
  const target = ['b', 'd', 'e'].map((id) => ({ id, address: id }));
  n.actor.send({ type: 'client.membership', change: { type: 'replace', servers: target }, force: false });
  t.same(n.notes(), ['appendConfig client [b:V d:V e:V] joint']);
  t.same(n.ctx().oldVoters, ['a', 'b', 'c']);
  t.same(n.replicas(), ['replica:b', 'replica:c', 'replica:d', 'replica:e']);
  n.actor.send({ type: 'storage.synced', index: 3, term: 2 });
  n.receive(msg.ack('b', 'a', 2, 3));
  t.equal(n.ctx().commitIndex, 2, 'C_old has a majority (a, b) but C_new does not');
  n.receive(msg.ack('d', 'a', 2, 3));
  t.equal(n.ctx().commitIndex, 3, 'majorities in both halves');
  t.same(n.notes(), ['appendConfig leaveJoint [b:V d:V e:V]'], 'C_new appended as soon as the joint entry committed');
  t.equal(n.ctx().oldVoters, null);
  t.same(n.replicas(), ['replica:b', 'replica:c', 'replica:d', 'replica:e'].filter((r) => r !== 'replica:c'), 'c is gone');
  n.take();
  n.receive(msg.ack('b', 'a', 2, 4));
  n.receive(msg.ack('d', 'a', 2, 4));
  t.equal(n.ctx().commitIndex, 4, 'C_new commits without the leader, which is not in it');
  t.same(n.notes(), ['transferStarted b', 'transferSteppedDown b'], 'the leader hands over to the most up-to-date voter, then steps down');
  t.same(n.take().filter((m) => m.includes('timeoutNow')), ['a→b timeoutNow t2']);
  t.equal(n.state(), 'follower.leaderless', 'and steps down');
  n.clock.advanceBy(10 * T);
  t.same(n.take().filter((m) => m.includes('vote')), [], 'it never campaigns again');
});
