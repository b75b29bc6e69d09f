/**
 * The transport conformance suite: one set of behaviours every
 * {@link Transport} must show, run against each implementation by
 * `transport-conformance.spec.ts`.
 *
 * Waits are event-driven with a deadline (a {@link Inbox} resolves when a
 * matching message arrives); where a transport may still be connecting, the
 * sender retries a probe message until it arrives or the deadline passes.
 *
 * @module
 */
import type { Test } from 'tap';
import type { MessageHandler, Transport } from '../../adapters/transport/transport.js';
import type { LogEntry, RaftMessage, Server } from '../../machines/types.js';

/** A started node of a harness. */
export interface StartedTransport {
  readonly transport: Transport;
  /** What peers put in `Server.address`. */
  readonly address: string;
}

/** How the suite makes nodes of one transport implementation. */
export interface TransportHarness {
  /**
   * Creates and starts node `id`. With `restartOf`, the node comes back at
   * the address of that (stopped) incarnation.
   */
  start(id: string, handler: MessageHandler, restartOf?: StartedTransport): Promise<StartedTransport>;
  /** Releases whatever the harness holds; nodes are stopped by the suite. */
  close(): Promise<void>;
}

/** Probe messages carry this term so assertions can ignore them. */
export const PROBE_TERM = 987_654;

/** A list that resolves waiters as items arrive. */
export class Waitable<T> {
  readonly items: T[] = [];
  #waiters: Array<() => void> = [];

  push(item: T): void {
    this.items.push(item);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once `pred(items)` holds (checked now and on every push);
   * rejects after `timeoutMs` with `what` in the message.
   */
  waitFor(pred: (items: readonly T[]) => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (pred(this.items)) {
        resolve();
        return;
      }
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        this.#waiters = this.#waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (have ${this.items.length} items)`));
      }, timeoutMs);
      const check = (): void => {
        if (done) return;
        if (pred(this.items)) {
          done = true;
          clearTimeout(timer);
          resolve();
        } else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  /** Like {@link Waitable.waitFor} but resolves `false` instead of rejecting. */
  async within(pred: (items: readonly T[]) => boolean, timeoutMs: number): Promise<boolean> {
    try {
      await this.waitFor(pred, timeoutMs, '');
      return true;
    } catch {
      return false;
    }
  }
}

/** Messages received by one node. */
export class Inbox extends Waitable<RaftMessage> {
  readonly handler: MessageHandler = (m) => this.push(m);

  /** Non-probe messages, optionally only those from `from`. */
  real(from?: string): RaftMessage[] {
    return this.items.filter((m) => m.term !== PROBE_TERM && (from === undefined || m.from === from));
  }
}

/**
 * Sends a probe from `from` to `to` until `inbox` (of `to`) receives one, each
 * attempt waiting up to 50 ms for it; rejects after `deadlineMs`.
 */
export async function probe(sender: Transport, from: string, to: string, inbox: Inbox, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (let n = 0; ; n++) {
    const token = n;
    sender.send([{ type: 'heartbeat', term: PROBE_TERM, from, to, commit: token }]);
    const ok = await inbox.within((ms) => ms.some((m) => m.term === PROBE_TERM && m.from === from && m.to === to), 50);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no probe from ${from} reached ${to} within ${deadlineMs} ms`);
  }
}

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);

/** One message of every type (optional fields present and absent) from `from` to `to`. */
export function everyType(from: string, to: string): RaftMessage[] {
  const entries: LogEntry[] = [
    { index: 4, term: 2, type: 'noop', data: new Uint8Array(0) },
    { index: 5, term: 2, type: 'normal', data: bytes(0, 1, 254, 255) },
    { index: 6, term: 2, type: 'config', data: new TextEncoder().encode('{"servers":[]}') },
  ];
  return [
    { type: 'vote', term: 2, from, to, lastLogIndex: 3, lastLogTerm: 1 },
    { type: 'vote', term: 2, from, to, lastLogIndex: 3, lastLogTerm: 1, transfer: true },
    { type: 'preVote', term: 3, from, to, lastLogIndex: 3, lastLogTerm: 1, transfer: false },
    { type: 'voteResponse', term: 2, from, to, granted: true },
    { type: 'voteResponse', term: 2, from, to, granted: false, reason: 'log' },
    { type: 'preVoteResponse', term: 3, from, to, granted: false, reason: 'leader' },
    { type: 'append', term: 2, from, to, prevLogIndex: 3, prevLogTerm: 1, entries, leaderCommit: 3 },
    { type: 'append', term: 2, from, to, prevLogIndex: 6, prevLogTerm: 2, entries: [], leaderCommit: 6 },
    { type: 'appendResponse', term: 2, from, to, success: true, index: 6, hintTerm: 0, hintIndex: 0 },
    { type: 'appendResponse', term: 2, from, to, success: false, index: 3, hintTerm: 1, hintIndex: 2 },
    { type: 'heartbeat', term: 2, from, to, commit: 6 },
    { type: 'heartbeatResponse', term: 2, from, to },
  ];
}

interface Node {
  id: string;
  inbox: Inbox;
  started: StartedTransport;
}

/**
 * Runs the conformance cases against the transports `makeHarness` creates.
 *
 * @param t - The parent test; one subtest per case.
 * @param makeHarness - A fresh harness per case.
 */
export function transportConformance(t: Test, makeHarness: () => TransportHarness): void {
  /** Starts `ids`, tells every node about every other, and checks each link carries a probe. */
  async function cluster(t: Test, ids: readonly string[]): Promise<{ nodes: Map<string, Node>; harness: TransportHarness; join(n: Node): void }> {
    const harness = makeHarness();
    const nodes = new Map<string, Node>();
    t.teardown(async () => {
      for (const n of nodes.values()) await n.started.transport.stop();
      await harness.close();
    });
    for (const id of ids) {
      const inbox = new Inbox();
      nodes.set(id, { id, inbox, started: await harness.start(id, inbox.handler) });
    }
    const servers = (): Server[] => [...nodes.values()].map((n) => ({ id: n.id, address: n.started.address }));
    for (const n of nodes.values()) n.started.transport.setPeers(servers());
    for (const a of nodes.values()) {
      for (const b of nodes.values()) if (a !== b) await probe(a.started.transport, a.id, b.id, b.inbox);
    }
    const join = (n: Node): void => {
      nodes.set(n.id, n);
      for (const m of nodes.values()) m.started.transport.setPeers(servers());
    };
    return { nodes, harness, join };
  }
  const node = (nodes: Map<string, Node>, id: string): Node => {
    const n = nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  };

  t.test('delivers every message type, intact, between two and three nodes', async (t) => {
    for (const ids of [['a', 'b'], ['a', 'b', 'c']]) {
      const { nodes } = await cluster(t, ids);
      for (const from of ids) {
        for (const to of ids) {
          if (from === to) continue;
          // One send call per message.
          for (const m of everyType(from, to)) node(nodes, from).started.transport.send([m]);
        }
      }
      const expected = everyType('x', 'y').length * (ids.length - 1);
      for (const id of ids) {
        const inbox = node(nodes, id).inbox;
        await inbox.waitFor(() => inbox.real().length >= expected, 10_000, `${expected} messages at ${id}`);
        for (const from of ids) {
          if (from !== id) t.same(inbox.real(from), everyType(from, id), `${ids.length} nodes: ${from}→${id} carries every type, in order`);
        }
        t.equal(inbox.real().length, expected, `${ids.length} nodes: nothing extra at ${id}`);
      }
    }
  });

  t.test('one send of many messages to several peers arrives complete and in order', async (t) => {
    const { nodes } = await cluster(t, ['a', 'b', 'c']);
    const batch: RaftMessage[] = [];
    for (let i = 0; i < 3000; i++) {
      const to = i % 3 === 0 ? 'c' : 'b';
      batch.push(
        i % 5 === 0
          ? { type: 'append', term: 1, from: 'a', to, prevLogIndex: i, prevLogTerm: 1, leaderCommit: i, entries: [{ index: i + 1, term: 1, type: 'normal', data: bytes(i & 0xff, i >> 8) }] }
          : { type: 'heartbeat', term: 1, from: 'a', to, commit: i },
      );
    }
    node(nodes, 'a').started.transport.send(batch);
    batch.push({ type: 'heartbeat', term: 1, from: 'a', to: 'b', commit: -1 }); // the sender's array may change after send
    batch.length = 0;
    const b = node(nodes, 'b').inbox;
    const c = node(nodes, 'c').inbox;
    await b.waitFor(() => b.real().length >= 2000, 10_000, '2000 messages at b');
    await c.waitFor(() => c.real().length >= 1000, 10_000, '1000 messages at c');
    const order = (ms: RaftMessage[]): number[] => ms.map((m) => (m.type === 'heartbeat' ? m.commit : m.type === 'append' ? m.prevLogIndex : -1));
    const wantB = [...Array(3000).keys()].filter((i) => i % 3 !== 0);
    const wantC = [...Array(3000).keys()].filter((i) => i % 3 === 0);
    t.same(order(b.real()), wantB, 'b gets its 2000 messages in order');
    t.same(order(c.real()), wantC, 'c gets its 1000 messages in order');
    const append = c.real().find((m) => m.type === 'append' && m.prevLogIndex === 15);
    t.same(append?.type === 'append' ? [...(append.entries[0]?.data ?? [])] : null, [15, 0], 'entry payloads intact');
  });

  t.test('stop is idempotent and stops delivery both ways', async (t) => {
    const { nodes } = await cluster(t, ['a', 'b', 'c']);
    const a = node(nodes, 'a');
    const b = node(nodes, 'b');
    const c = node(nodes, 'c');
    await Promise.all([b.started.transport.stop(), b.started.transport.stop()]);
    await b.started.transport.stop();
    t.pass('stop resolves when called twice at once and again later');
    t.doesNotThrow(() => b.started.transport.send([{ type: 'heartbeat', term: 1, from: 'b', to: 'a', commit: 1 }]), 'send after stop does not throw');
    a.started.transport.send([{ type: 'heartbeat', term: 1, from: 'a', to: 'b', commit: 2 }]);
    a.started.transport.send([{ type: 'heartbeat', term: 1, from: 'a', to: 'c', commit: 3 }]);
    c.started.transport.send([{ type: 'heartbeat', term: 1, from: 'c', to: 'a', commit: 4 }]);
    await c.inbox.waitFor(() => c.inbox.real('a').length === 1, 10_000, 'a→c after b stopped');
    await a.inbox.waitFor(() => a.inbox.real('c').length === 1, 10_000, 'c→a after b stopped');
    t.same(b.inbox.real(), [], 'b received nothing after stop');
    t.same(a.inbox.real('b'), [], 'a received nothing from the stopped b');
    t.same(c.inbox.real('a'), [{ type: 'heartbeat', term: 1, from: 'a', to: 'c', commit: 3 }], 'the others still talk');
  });

  t.test('a restarted peer is reached again at the same address', async (t) => {
    const { nodes, harness, join } = await cluster(t, ['a', 'b']);
    const a = node(nodes, 'a');
    const old = node(nodes, 'b');
    await old.started.transport.stop();
    const inbox = new Inbox();
    const fresh: Node = { id: 'b', inbox, started: await harness.start('b', inbox.handler, old.started) };
    t.equal(fresh.started.address, old.started.address, 'same address');
    join(fresh);
    await probe(a.started.transport, 'a', 'b', inbox);
    await probe(fresh.started.transport, 'b', 'a', a.inbox);
    a.started.transport.send(everyType('a', 'b'));
    await inbox.waitFor(() => inbox.real().length >= everyType('a', 'b').length, 10_000, 'a batch at the new b');
    t.same(inbox.real(), everyType('a', 'b'), 'messages flow to the new incarnation');
    t.same(old.inbox.real(), [], 'the stopped incarnation got nothing');
  });
}
