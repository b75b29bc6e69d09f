/**
 * A deterministic simulated cluster: real node actors over a shared
 * SimulatedClock, a seeded MemoryNetwork and MemoryStorage with sync delays.
 * One step = one clock timer plus the microtasks it causes; the Raft
 * invariants are checked after every step. Same seed, same run.
 */
import { createRaftNode, nodeInternals, type RaftNode } from '../../../actors/node.actor.js';
import type { RaftNodeOptions } from '../../../actors/options.js';
import { SimulatedClock } from '../../../adapters/clock.js';
import { seededRandom, type SeededRandom } from '../../../adapters/random.js';
import { MemoryStorage } from '../../../adapters/storage/memory.js';
import { MemoryNetwork } from '../../../adapters/transport/memory.js';
import type { Transport } from '../../../adapters/transport/transport.js';
import type { LogEntry, RaftMessage, Role } from '../../../machines/types.js';
import { InvariantChecker, type CheckedNode } from './invariants.js';

/** Options of a simulated cluster. */
export interface SimOptions {
  /** Seed of every random choice: timeouts, latencies, faults. */
  readonly seed: number;
  /** Number of nodes (ids n1..nN). */
  readonly size: number;
  /** Network latency range in ms. Default [1, 5]. */
  readonly latencyMs?: readonly [number, number];
  /** Storage sync delay range in ms; a crash loses writes not yet synced. Default [0, 2]. */
  readonly syncDelayMs?: readonly [number, number];
  /** Extra node options (timeouts, preVote, ...). */
  readonly node?: Partial<Omit<RaftNodeOptions, 'id' | 'stateMachine' | 'storage' | 'transport' | 'clock' | 'random'>>;
  /** Check the invariants after every step. Default true. */
  readonly check?: boolean;
  /**
   * How many of the nodes (n1..nK) the cluster is bootstrapped with, as voters. The others start
   * with empty storage and join only when added (addVoter, addLearner, changeMembership). Default: all.
   */
  readonly bootstrapped?: number;
  /**
   * Give the state machine `snapshot()` and `restore()` (its state, the values applied so far, as
   * JSON), so nodes snapshot at `node.snapshotThreshold` and compact. Default false: the log is
   * never compacted.
   */
  readonly snapshots?: boolean;
  /** With `snapshots`: make the state machine's `restore()` of node `id` throw while this returns true (fault injection). */
  readonly failRestore?: (id: string) => boolean;
}

/** A state machine restore: which node incarnation, to which index, when. */
export interface RestoreRecord {
  readonly id: string;
  readonly incarnation: number;
  readonly index: number;
  /** Values the state machine held after it. */
  readonly values: number;
  readonly at: number;
}

/** A proposal's outcome as a client saw it. */
export interface Ack {
  readonly value: string;
  readonly index: number;
  readonly term: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A linearizable read as a client saw it. */
export interface ReadResult {
  /** The read index the node resolved with. */
  readonly index: number;
  /** The node's applied index when the read resolved. */
  readonly applied: number;
  /** The highest index acknowledged to any client before the read began. */
  readonly ackedBefore: number;
}

/** Sees every batch a node hands to its transport (before the network's faults apply). */
export type SendListener = (from: string, messages: readonly RaftMessage[]) => void;

/** Thrown when a simulated run fails; the message starts with the seed for replay. */
export class SimFailure extends Error {}

/** A cluster in simulated time. */
export class SimCluster {
  readonly clock = new SimulatedClock();
  readonly random: SeededRandom;
  readonly network: MemoryNetwork;
  readonly ids: string[];
  readonly checker = new InvariantChecker();
  readonly storages = new Map<string, MemoryStorage>();
  /** Live nodes by id (a crashed node is absent until restarted). */
  readonly nodes = new Map<string, RaftNode<string>>();
  /** Values applied by each live incarnation, in order. */
  readonly applied = new Map<string, { index: number; value: string }[]>();
  /** Proposals acknowledged to clients. */
  readonly acks: Ack[] = [];
  /** Reads that resolved with a state older than a write acknowledged before they began. Must stay empty. */
  readonly staleReads: string[] = [];
  /** Reads that resolved. */
  readonly reads: ReadResult[] = [];
  readonly incarnation = new Map<string, number>();
  /** Every state machine restore from a snapshot (at start or installed from a leader), in order. */
  readonly restores: RestoreRecord[] = [];
  steps = 0;
  readonly #views = new Map<string, CheckedNode>();
  readonly #opts: SimOptions;
  readonly #sendListeners = new Set<SendListener>();

  constructor(opts: SimOptions) {
    this.#opts = opts;
    this.random = seededRandom(opts.seed);
    this.ids = Array.from({ length: opts.size }, (_, i) => `n${i + 1}`);
    const [lo, hi] = opts.latencyMs ?? [1, 5];
    this.network = new MemoryNetwork({ clock: this.clock, random: this.random.fork(), latencyMs: [lo, hi] });
    const [slo, shi] = opts.syncDelayMs ?? [0, 2];
    const storageRandom = this.random.fork();
    for (const id of this.ids) {
      this.storages.set(id, new MemoryStorage({ clock: this.clock, syncDelayMs: () => slo + storageRandom.next() * (shi - slo) }));
    }
  }

  /** Fails with the seed in the message. */
  fail(message: string): never {
    throw new SimFailure(`seed ${this.#opts.seed}: ${message} (replay: RAFTCHART_SEED=${this.#opts.seed})`);
  }

  /** Starts every node and bootstraps them with the full membership. */
  async start(): Promise<void> {
    for (const id of this.ids) await this.#launch(id);
    const founders = this.ids.slice(0, this.#opts.bootstrapped ?? this.ids.length);
    const servers = founders.map((id) => ({ id, address: id }));
    const boots = founders.map((id) => (this.nodes.get(id) as RaftNode<string>).bootstrap(servers));
    let settled = false;
    const all = Promise.all(boots).then(() => {
      settled = true;
    });
    await this.runUntil(() => settled, 1000, 'bootstrap');
    await all;
  }

  async #launch(id: string): Promise<void> {
    const inc = (this.incarnation.get(id) ?? 0) + 1;
    this.incarnation.set(id, inc);
    const applied: { index: number; value: string }[] = [];
    this.applied.set(id, applied);
    let lastNoted = 0;
    const snapshots = this.#opts.snapshots === true;
    // The user state machine sees normal entries only; the checker also hears the no-op and config entries between them.
    const note = (entry: LogEntry): void => {
      const log = nodeInternals(node).log;
      for (let i = lastNoted + 1; i < entry.index; i++) {
        const skipped = log.entry(i);
        if (skipped !== undefined) this.checker.noteApply(id, inc, skipped);
      }
      lastNoted = entry.index;
      this.checker.noteApply(id, inc, entry);
    };
    const node = createRaftNode<string>({
      electionTimeoutMs: [150, 300],
      heartbeatIntervalMs: 50,
      ...this.#opts.node,
      id,
      clock: this.clock,
      random: this.random.fork(),
      storage: this.storages.get(id) as MemoryStorage,
      transport: this.#observed(id, this.network.transport(id)),
      stateMachine: {
        apply: (entry) => {
          const value = decoder.decode(entry.data);
          applied.push({ index: entry.index, value });
          note({ index: entry.index, term: entry.term, type: 'normal', data: entry.data });
          return value;
        },
        ...(snapshots
          ? {
              // The copy is taken synchronously, as the contract asks; the bytes come later, in two pieces.
              snapshot: () => {
                const bytes = encoder.encode(JSON.stringify(applied.map((a) => [a.index, a.value])));
                const half = bytes.length >> 1;
                return Promise.resolve(
                  (async function* () {
                    yield bytes.subarray(0, half);
                    await Promise.resolve();
                    yield bytes.subarray(half);
                  })(),
                );
              },
              restore: async (chunks: AsyncIterable<Uint8Array>, meta: { readonly index: number }) => {
                if (this.#opts.failRestore?.(id) === true) throw new Error(`injected restore failure on ${id}`);
                const parts: Uint8Array[] = [];
                for await (const c of chunks) parts.push(c);
                const rows = JSON.parse(decoder.decode(Buffer.concat(parts))) as [number, string][];
                applied.length = 0;
                for (const [index, value] of rows) applied.push({ index, value });
                lastNoted = meta.index;
                this.checker.noteRestore(id, inc, meta.index);
                this.restores.push({ id, incarnation: inc, index: meta.index, values: applied.length, at: this.clock.now() });
              },
            }
          : {}),
      },
    });
    await node.start();
    const internals = nodeInternals(node);
    internals.log.onTruncate = (from) => this.checker.noteTruncate(id, inc, from);
    this.nodes.set(id, node);
    this.#views.set(id, {
      id,
      incarnation: inc,
      get role(): Role {
        return internals.state().role;
      },
      get term(): number {
        return internals.state().term;
      },
      get commitIndex(): number {
        return internals.state().commitIndex;
      },
      log: internals.log,
    });
  }

  /** The node's transport, passing every outbound batch to the send listeners first. */
  #observed(id: string, inner: Transport): Transport {
    const listeners = this.#sendListeners;
    return {
      start: (nodeId, handler) => inner.start(nodeId, handler),
      send: (messages) => {
        for (const listener of listeners) listener(id, messages);
        inner.send(messages);
      },
      setPeers: (servers) => inner.setPeers(servers),
      stop: () => inner.stop(),
    };
  }

  /** Calls `listener` with every batch any node sends from now on; returns the unsubscribe function. */
  onSend(listener: SendListener): () => void {
    this.#sendListeners.add(listener);
    return () => this.#sendListeners.delete(listener);
  }

  /** Ids of the live (not crashed) nodes. */
  up(): string[] {
    return this.ids.filter((id) => this.nodes.has(id));
  }

  /** The live leader of the highest term among `ids`, if any. */
  leaderAmong(ids: readonly string[]): RaftNode<string> | null {
    let best: RaftNode<string> | null = null;
    let bestTerm = -1;
    for (const id of ids) {
      const node = this.nodes.get(id);
      if (node === undefined) continue;
      const s = nodeInternals(node).state();
      if (s.role === 'leader' && s.term > bestTerm) {
        best = node;
        bestTerm = s.term;
      }
    }
    return best;
  }

  /** Waits until one of `ids` is leader; fails after `maxMs`. */
  async waitLeaderAmong(ids: readonly string[], maxMs = 5000): Promise<RaftNode<string>> {
    await this.runUntil(() => this.leaderAmong(ids) !== null, maxMs, `leader election among ${ids.join(',')}`);
    return this.leaderAmong(ids) as RaftNode<string>;
  }

  /** Role, term, commit index and leader of a live node (throws for a crashed one). */
  stateOf(id: string): ReturnType<ReturnType<typeof nodeInternals>['state']> {
    const node = this.nodes.get(id);
    if (node === undefined) this.fail(`${id} is not running`);
    return nodeInternals(node).state();
  }

  /** Runs one timer and everything it causes, then checks the invariants. Returns false when idle. */
  async step(): Promise<boolean> {
    const ran = this.clock.runNext();
    await drain();
    this.steps++;
    if (this.#opts.check !== false) {
      try {
        this.checker.check([...this.#views.values()]);
      } catch (error) {
        this.fail(`after step ${this.steps} at t=${this.clock.now()}: ${(error as Error).message}`);
      }
    }
    return ran;
  }

  /** Runs for `ms` of simulated time. */
  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    while ((this.clock.nextTime() ?? Infinity) <= end) await this.step();
    this.clock.advanceTo(end);
  }

  /** Runs until `predicate` holds; fails after `maxMs` of simulated time. */
  async runUntil(predicate: () => boolean, maxMs: number, what: string): Promise<void> {
    const end = this.clock.now() + maxMs;
    while (!predicate()) {
      if ((this.clock.nextTime() ?? Infinity) > end) this.fail(`${what} did not happen within ${maxMs} ms`);
      await this.step();
    }
  }

  /** The live leader of the highest term, if any. */
  leader(): RaftNode<string> | null {
    let best: RaftNode<string> | null = null;
    let bestTerm = -1;
    for (const node of this.nodes.values()) {
      const s = nodeInternals(node).state();
      if (s.role === 'leader' && s.term > bestTerm) {
        best = node;
        bestTerm = s.term;
      }
    }
    return best;
  }

  /** Waits for a leader that a majority of live, connected nodes agree on. */
  async waitLeader(maxMs = 5000): Promise<RaftNode<string>> {
    await this.runUntil(() => this.leader() !== null, maxMs, 'leader election');
    return this.leader() as RaftNode<string>;
  }

  /** Stops a node abruptly: its unsynced writes are lost. */
  async crash(id: string): Promise<void> {
    const node = this.nodes.get(id);
    if (node === undefined) return;
    this.nodes.delete(id);
    this.#views.delete(id);
    await node.stop();
    await drain();
  }

  /** Starts a new incarnation of a crashed node over its storage. */
  async restart(id: string): Promise<void> {
    if (this.nodes.has(id)) return;
    await this.#launch(id);
  }

  /**
   * Proposes `value` at node `id` (default: the current leader); records the ack.
   * Never rejects: returns the ack or the error.
   */
  propose(value: string, id?: string, timeoutMs?: number): Promise<Ack | Error> {
    const node = id === undefined ? this.leader() : this.nodes.get(id);
    if (node === undefined || node === null) return Promise.resolve(new Error('no node'));
    return node.propose(encoder.encode(value), timeoutMs === undefined ? undefined : { timeoutMs }).then(
      (r) => {
        const ack = { value, index: r.index, term: r.term };
        this.acks.push(ack);
        return ack;
      },
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
  }

  /**
   * A linearizable read at node `id`. Never rejects: returns the result or the error. A read that
   * resolves is checked: its node must have applied the latest write acknowledged before the read
   * began (same value at the same index); a violation is recorded in {@link staleReads}.
   */
  read(id: string, timeoutMs?: number): Promise<ReadResult | Error> {
    const node = this.nodes.get(id);
    if (node === undefined) return Promise.resolve(new Error('no node'));
    let latest: Ack | null = null;
    for (const a of this.acks) if (latest === null || a.index > latest.index) latest = a;
    const applied = this.applied.get(id) ?? [];
    const started = this.clock.now();
    return node.readIndex(timeoutMs === undefined ? undefined : { timeoutMs }).then(
      (index) => {
        const result: ReadResult = { index, applied: node.status().appliedIndex, ackedBefore: latest?.index ?? 0 };
        if (latest !== null) {
          let found: string | undefined;
          for (let k = applied.length - 1; k >= 0; k--) {
            const a = applied[k] as { index: number; value: string };
            if (a.index === latest.index) found = a.value;
            if (a.index <= latest.index) break;
          }
          if (index < latest.index || found !== latest.value) {
            this.staleReads.push(
              `read at ${id} (began t=${started}, resolved t=${this.clock.now()}) returned index ${index}, state without ${latest.value}@${latest.index} acknowledged before it began (found ${String(found)})`,
            );
          }
        }
        this.reads.push(result);
        return result;
      },
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
  }

  /** Fails if any read returned stale state. */
  assertNoStaleReads(): void {
    if (this.staleReads.length > 0) this.fail(`${this.staleReads.length} stale read(s): ${this.staleReads.slice(0, 3).join('; ')}`);
  }

  /** Stops node `id` with `stop({ transferLeadership: true })`, running the clock until it returns. */
  async stopGracefully(id: string, maxMs = 5000): Promise<void> {
    const node = this.nodes.get(id);
    if (node === undefined) return;
    let done = false;
    void node.stop({ transferLeadership: true }).then(() => {
      done = true;
    });
    await this.runUntil(() => done, maxMs, `graceful stop of ${id}`);
    this.nodes.delete(id);
    this.#views.delete(id);
  }

  /** Proposes and runs the clock until the proposal settles. */
  async commit(value: string, maxMs = 5000, id?: string): Promise<Ack | Error> {
    let out: Ack | Error | undefined;
    void this.propose(value, id).then((r) => {
      out = r;
    });
    await this.runUntil(() => out !== undefined, maxMs, `proposal ${value}`);
    return out as Ack | Error;
  }

  /**
   * The Raft lab's `one()`: proposes `value` at the current leader until it is
   * committed on at least `expected` live nodes, retrying at whoever leads
   * after a failed or slow attempt (so a value may land twice). Returns its
   * index; fails after `maxMs`.
   */
  async one(value: string, expected: number, maxMs = 10_000): Promise<number> {
    const end = this.clock.now() + maxMs;
    while (this.clock.now() < end) {
      const leader = this.leader();
      if (leader === null) {
        await this.run(20);
        continue;
      }
      let out: Ack | Error | undefined;
      void this.propose(value, leader.id, 2000).then((r) => {
        out = r;
      });
      const until = Math.min(end, this.clock.now() + 2000);
      while (out === undefined && this.clock.now() < until && this.clock.nextTime() !== undefined) await this.step();
      if (out === undefined || out instanceof Error) continue;
      const ack: Ack = out;
      while (this.committedOn(ack.index, value) < expected && this.clock.now() < until && this.clock.nextTime() !== undefined) await this.step();
      if (this.committedOn(ack.index, value) >= expected) return ack.index;
    }
    this.fail(`one(${value}) was not committed on ${expected} nodes within ${maxMs} ms`);
  }

  /** Runs for `ms`, failing as soon as `predicate` is false after a step. */
  async always(ms: number, predicate: () => boolean, what: string): Promise<void> {
    const end = this.clock.now() + ms;
    if (!predicate()) this.fail(`${what} was false at t=${this.clock.now()}`);
    while ((this.clock.nextTime() ?? Infinity) <= end) {
      await this.step();
      if (!predicate()) this.fail(`${what} was false at t=${this.clock.now()}`);
    }
    this.clock.advanceTo(end);
  }

  /** Value at `index` in a node's log, if it is a normal entry. */
  valueAt(id: string, index: number): string | undefined {
    const node = this.nodes.get(id);
    const entry: LogEntry | undefined = node === undefined ? undefined : nodeInternals(node).log.entry(index);
    return entry?.type === 'normal' ? decoder.decode(entry.data) : undefined;
  }

  /** How many live nodes hold `value` at `index` and have committed it. */
  committedOn(index: number, value: string): number {
    let n = 0;
    for (const [id, node] of this.nodes) {
      if (nodeInternals(node).state().commitIndex >= index && this.valueAt(id, index) === value) n++;
    }
    return n;
  }

  /** The lowest commit index among live nodes. */
  minCommitIndex(): number {
    let min = Infinity;
    for (const node of this.nodes.values()) min = Math.min(min, nodeInternals(node).state().commitIndex);
    return min === Infinity ? 0 : min;
  }

  /**
   * Asserts that every live node's state machine holds every acknowledged proposal at or below its
   * applied index, at its index (works after compaction, unlike {@link assertAcksDurable}).
   */
  assertAcksApplied(): void {
    for (const [id, node] of this.nodes) {
      const upTo = node.status().appliedIndex;
      const values = new Map((this.applied.get(id) ?? []).map((a) => [a.index, a.value]));
      for (const ack of this.acks) {
        if (ack.index > upTo) continue;
        const v = values.get(ack.index);
        if (v !== ack.value) this.fail(`acknowledged ${ack.value}@${ack.index} not in ${id}'s state (applied ${upTo}; found ${String(v)})`);
      }
    }
  }

  /** Asserts that every acknowledged proposal is in every live node's log, at its index. */
  assertAcksDurable(): void {
    for (const ack of this.acks) {
      for (const id of this.nodes.keys()) {
        const v = this.valueAt(id, ack.index);
        if (v !== ack.value) this.fail(`acknowledged ${ack.value}@${ack.index} missing on ${id} (found ${String(v)})`);
      }
    }
  }

  /**
   * The configuration the live node with the latest configuration entry holds (ties: the leader's view):
   * its voters (both halves while joint) and learners.
   */
  membership(): { voters: string[]; learners: string[]; oldVoters: string[] | null; index: number } {
    let best: ReturnType<RaftNode<string>['status']> | null = null;
    for (const node of this.nodes.values()) {
      const s = node.status();
      if (best === null || s.configIndex > best.configIndex || (s.configIndex === best.configIndex && s.role === 'leader')) best = s;
    }
    return {
      voters: [...(best?.voters ?? [])].sort(),
      learners: [...(best?.learners ?? [])].sort(),
      oldVoters: best?.oldVoters === null || best === null ? null : [...best.oldVoters].sort(),
      index: best?.configIndex ?? 0,
    };
  }

  /** Live nodes that are members (voters or learners) of {@link membership}. */
  members(): string[] {
    const m = this.membership();
    const all = new Set([...m.voters, ...m.learners, ...(m.oldVoters ?? [])]);
    return [...this.nodes.keys()].filter((id) => all.has(id)).sort();
  }

  /**
   * Runs a membership change at the current leader (`op` gets it) and the clock until it settles.
   * Never rejects: returns the result or the error.
   */
  async change<T>(op: (leader: RaftNode<string>) => Promise<T>, maxMs = 5000, what = 'membership change'): Promise<T | Error> {
    const leader = this.leader();
    if (leader === null) return new Error('no leader');
    let out: T | Error | undefined;
    let settled = false;
    op(leader).then(
      (r) => {
        out = r;
        settled = true;
      },
      (e: unknown) => {
        out = e instanceof Error ? e : new Error(String(e));
        settled = true;
      },
    );
    await this.runUntil(() => settled, maxMs, what);
    return out as T | Error;
  }

  /** Asserts that every acknowledged proposal is in the log of each of `ids`, at its index. */
  assertAcksDurableOn(ids: readonly string[]): void {
    for (const ack of this.acks) {
      for (const id of ids) {
        const v = this.valueAt(id, ack.index);
        if (v !== ack.value) this.fail(`acknowledged ${ack.value}@${ack.index} missing on ${id} (found ${String(v)})`);
      }
    }
  }

  /** The lowest commit index among the live nodes `ids`. */
  minCommitIndexOf(ids: readonly string[]): number {
    let min = Infinity;
    for (const id of ids) {
      const node = this.nodes.get(id);
      if (node !== undefined) min = Math.min(min, nodeInternals(node).state().commitIndex);
    }
    return min === Infinity ? 0 : min;
  }

  /** Stops every node. */
  async stop(): Promise<void> {
    for (const id of [...this.nodes.keys()]) await this.crash(id);
  }
}

/** Lets every queued microtask run (the simulation's "rest of the turn"). */
export function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
