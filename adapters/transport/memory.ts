/**
 * In-process {@link Transport}s joined by a {@link MemoryNetwork} with fault
 * injection (disconnections, partitions, loss, delay, reordering,
 * duplication), driven entirely by an injected {@link Clock} and
 * {@link Random} so every run can be replayed.
 *
 * @module
 */
import { ConfigurationError } from '../../errors.js';
import type { RaftMessage, Server } from '../../machines/types.js';
import { systemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import { systemRandom } from '../random.js';
import type { Random } from '../random.js';
import type { MessageHandler, Transport } from './transport.js';

/** Options of {@link MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Schedules every delivery. Defaults to {@link systemClock}; use a `SimulatedClock` in tests. */
  readonly clock?: Clock;
  /** Draws latencies and faults. Defaults to {@link systemRandom}; use `seededRandom(seed)` in tests. */
  readonly random?: Random;
  /**
   * One-way latency `[min, max]` in clock ms, drawn uniformly per send call
   * and destination. Without it (or with `max` 0) messages arrive at the end
   * of the sender's turn, through `clock.setImmediate`.
   */
  readonly latencyMs?: readonly [min: number, max: number];
  /**
   * Called when a receiver's handler throws. The network itself carries on
   * (the error is also counted in {@link NetworkStats.handlerErrors}); an
   * exception thrown by `onError` is swallowed.
   */
  readonly onError?: (error: unknown, message: RaftMessage) => void;
}

/** Fault rates of the unreliable mode; see {@link MemoryNetwork.setUnreliable}. */
export interface UnreliableOptions {
  /** Probability that a message is lost. Default 0.05. */
  readonly dropRate?: number;
  /** Probability that a delivered message is delivered a second time (with its own delay). Default 0.02. */
  readonly duplicateRate?: number;
  /** Extra delay of each copy, uniform in `[0, maxDelayMs]`; independent delays reorder messages. Default 10. */
  readonly maxDelayMs?: number;
  /** Probability that a copy is held much longer instead. Default 0.01. */
  readonly longDelayRate?: number;
  /** Upper bound of a long delay, drawn uniformly in `[maxDelayMs, longDelayMs]`. Default 200. */
  readonly longDelayMs?: number;
}

/**
 * Message counters since the network was made or {@link MemoryNetwork.resetStats} was called.
 *
 * @remarks With nothing in flight at the last reset:
 * `sent + duplicated === delivered + dropped + network.inFlight()`.
 */
export interface NetworkStats {
  /** Messages handed to `send`, on any endpoint. */
  readonly sent: number;
  /** Handler invocations (a duplicated message counts twice; a handler that throws still counts). */
  readonly delivered: number;
  /** Messages lost: by a fault, unreachable, sent from a stopped endpoint, or addressed to a stopped or unknown one. */
  readonly dropped: number;
  /** Extra copies made by the unreliable mode. */
  readonly duplicated: number;
  /** Handlers that threw. */
  readonly handlerErrors: number;
  /** `sent`, broken down by message `type`. */
  readonly byType: Record<string, number>;
}

type UnreliableSettings = { readonly [K in keyof UnreliableOptions]-?: number };

const UNRELIABLE_DEFAULTS: UnreliableSettings = {
  dropRate: 0.05,
  duplicateRate: 0.02,
  maxDelayMs: 10,
  longDelayRate: 0.01,
  longDelayMs: 200,
};

/** The network-side callbacks of one endpoint. */
interface Wiring {
  send(from: MemoryEndpoint, messages: readonly RaftMessage[]): void;
  stopped(endpoint: MemoryEndpoint): void;
}

/** One node's attachment to a {@link MemoryNetwork}. */
class MemoryEndpoint implements Transport {
  state: 'new' | 'started' | 'stopped' = 'new';
  handler: MessageHandler | null = null;
  /** Latest due time per destination, to keep reliable links FIFO under latency. */
  readonly lastDue = new Map<string, number>();

  constructor(
    readonly id: string,
    readonly wiring: Wiring,
  ) {}

  start(id: string, handler: MessageHandler): Promise<void> {
    if (id !== this.id) {
      return Promise.reject(new ConfigurationError('id', `this endpoint belongs to ${this.id}, not ${id}`));
    }
    if (this.state !== 'new') {
      return Promise.reject(
        new ConfigurationError(
          'start',
          this.state === 'started'
            ? `endpoint ${id} is already started`
            : `endpoint ${id} was stopped; get a fresh one from network.transport('${id}')`,
        ),
      );
    }
    this.state = 'started';
    this.handler = handler;
    return Promise.resolve();
  }

  send(messages: readonly RaftMessage[]): void {
    this.wiring.send(this, messages);
  }

  setPeers(_servers: readonly Server[]): void {
    // Every endpoint of the network is reachable by id.
  }

  stop(): Promise<void> {
    if (this.state !== 'stopped') {
      this.state = 'stopped';
      this.handler = null;
      this.wiring.stopped(this);
    }
    return Promise.resolve();
  }
}

function checkRate(option: string, value: number): void {
  if (!(value >= 0 && value <= 1)) throw new ConfigurationError(option, `must be in [0, 1], got ${value}`);
}

function checkMs(option: string, value: number): void {
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new ConfigurationError(option, `must be a finite number >= 0, got ${value}`);
  }
}

/**
 * An in-process network of {@link Transport} endpoints with fault injection.
 *
 * @remarks
 * - **Reliable mode** (the default): every message arrives, in order per
 *   sender→receiver link. Without latency, the messages of one `send` call to
 *   one destination are delivered together, in order, in one
 *   `clock.setImmediate` callback at the end of the turn. With `latencyMs`,
 *   one delay is drawn per send call and destination, and a batch never
 *   overtakes an earlier batch on the same link (exactly so under a
 *   `SimulatedClock`).
 * - **Unreliable mode** ({@link MemoryNetwork.setUnreliable}): each message
 *   independently may be dropped, delayed (which reorders), held for a long
 *   delay, or duplicated. Draws happen in a fixed order, so a seeded
 *   {@link Random} and a `SimulatedClock` replay a run exactly.
 * - **Connectivity** ({@link MemoryNetwork.disconnect},
 *   {@link MemoryNetwork.partition}) is checked when a message is sent and
 *   again when it arrives: a message in flight when a partition starts is
 *   lost. The sender is the endpoint that called `send`, whatever the
 *   message's `from` says.
 * - The receiver is looked up on arrival: a message to an id with no started
 *   endpoint is dropped; one in flight across a restart reaches the new
 *   endpoint (a real network may deliver a stale message too).
 * - Messages are delivered **by reference**, never cloned: receivers must not
 *   mutate them (nor the entries they carry).
 * - A handler that throws is counted and reported to `onError`; delivery goes on.
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock();
 * const net = new MemoryNetwork({ clock, random: seededRandom(7) });
 * const a = net.transport('a');
 * const b = net.transport('b');
 * await a.start('a', (m) => console.log('a got', m.type));
 * await b.start('b', (m) => console.log('b got', m.type));
 * b.send([{ type: 'heartbeatResponse', term: 1, from: 'b', to: 'a' }]);
 * clock.runNext();                 // a got heartbeatResponse
 * net.partition(['a'], ['b']);     // a and b can no longer talk
 * net.heal();
 * ```
 */
export class MemoryNetwork {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #latencyMin: number;
  readonly #latencyMax: number;
  readonly #onError: ((error: unknown, message: RaftMessage) => void) | undefined;

  readonly #endpoints = new Map<string, MemoryEndpoint>();
  readonly #disconnected = new Set<string>();
  #partitions: Array<readonly [ReadonlySet<string>, ReadonlySet<string>]> = [];
  #unreliable: UnreliableSettings | null = null;

  #sent = 0;
  #delivered = 0;
  #dropped = 0;
  #duplicated = 0;
  #handlerErrors = 0;
  #byType: Record<string, number> = Object.create(null) as Record<string, number>;
  #inFlight = 0;

  readonly #wiring: Wiring = {
    send: (from, messages) => {
      this.#send(from, messages);
    },
    stopped: (endpoint) => {
      if (this.#endpoints.get(endpoint.id) === endpoint) this.#endpoints.delete(endpoint.id);
    },
  };

  /**
   * @throws A {@link ConfigurationError} when `latencyMs` is not `[min, max]` with `0 <= min <= max`, both finite.
   */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#onError = options.onError;
    const [min, max] = options.latencyMs ?? [0, 0];
    checkMs('latencyMs[0]', min);
    checkMs('latencyMs[1]', max);
    if (max < min) throw new ConfigurationError('latencyMs', `max (${max}) must be >= min (${min})`);
    this.#latencyMin = min;
    this.#latencyMax = max;
  }

  /**
   * The endpoint of node `id`. Returns the current endpoint while it is not
   * stopped; after it stopped, a fresh one (a restarted node).
   *
   * @remarks An endpoint receives only between `start` and `stop`; it may
   * send from creation until `stop`.
   *
   * @throws A {@link ConfigurationError} when `id` is empty.
   */
  transport(id: string): Transport {
    if (typeof id !== 'string' || id === '') throw new ConfigurationError('id', 'must be a non-empty string');
    let endpoint = this.#endpoints.get(id);
    if (endpoint === undefined) {
      endpoint = new MemoryEndpoint(id, this.#wiring);
      this.#endpoints.set(id, endpoint);
    }
    return endpoint;
  }

  /** Cuts `id` off: messages from or to it are dropped, including those already in flight. */
  disconnect(id: string): void {
    this.#disconnected.add(id);
  }

  /** Undoes {@link MemoryNetwork.disconnect} for `id` (partitions stay). */
  connect(id: string): void {
    this.#disconnected.delete(id);
  }

  /**
   * Drops every message between a node of `groupA` and a node of `groupB`,
   * both ways; nodes in neither group are unaffected. Partitions accumulate
   * until {@link MemoryNetwork.heal}.
   *
   * @throws A {@link ConfigurationError} when a node is in both groups.
   */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    const a = new Set(groupA);
    const b = new Set(groupB);
    for (const id of b) {
      if (a.has(id)) throw new ConfigurationError('partition', `node ${id} is in both groups`);
    }
    this.#partitions = [...this.#partitions, [a, b]];
  }

  /** Clears every partition and disconnection. The unreliable mode stays as it is. */
  heal(): void {
    this.#partitions = [];
    this.#disconnected.clear();
  }

  /** Whether a message from `from` to `to` would pass the current disconnections and partitions. */
  canReach(from: string, to: string): boolean {
    if (this.#disconnected.size === 0 && this.#partitions.length === 0) return true;
    if (this.#disconnected.has(from) || this.#disconnected.has(to)) return false;
    for (const [a, b] of this.#partitions) {
      if ((a.has(from) && b.has(to)) || (b.has(from) && a.has(to))) return false;
    }
    return true;
  }

  /**
   * Turns the unreliable mode on (with `opts` over the defaults) or off.
   * Messages already in flight keep their schedule.
   *
   * @throws A {@link ConfigurationError} naming the option when a rate is
   * outside `[0, 1]` or a delay is negative or not finite.
   */
  setUnreliable(on: boolean, opts: UnreliableOptions = {}): void {
    if (!on) {
      this.#unreliable = null;
      return;
    }
    const u: UnreliableSettings = { ...UNRELIABLE_DEFAULTS, ...definedOnly(opts) };
    checkRate('dropRate', u.dropRate);
    checkRate('duplicateRate', u.duplicateRate);
    checkRate('longDelayRate', u.longDelayRate);
    checkMs('maxDelayMs', u.maxDelayMs);
    checkMs('longDelayMs', u.longDelayMs);
    this.#unreliable = u;
  }

  /** Counters since creation or the last {@link MemoryNetwork.resetStats}; a snapshot, not live. */
  stats(): NetworkStats {
    return {
      sent: this.#sent,
      delivered: this.#delivered,
      dropped: this.#dropped,
      duplicated: this.#duplicated,
      handlerErrors: this.#handlerErrors,
      byType: { ...this.#byType },
    };
  }

  /** Zeroes the counters of {@link MemoryNetwork.stats}. */
  resetStats(): void {
    this.#sent = 0;
    this.#delivered = 0;
    this.#dropped = 0;
    this.#duplicated = 0;
    this.#handlerErrors = 0;
    this.#byType = Object.create(null) as Record<string, number>;
  }

  /** Messages (copies included) scheduled and not yet delivered or dropped. */
  inFlight(): number {
    return this.#inFlight;
  }

  // -- internals ------------------------------------------------------------

  #send(from: MemoryEndpoint, messages: readonly RaftMessage[]): void {
    const n = messages.length;
    if (n === 0) return;
    this.#sent += n;
    const byType = this.#byType;
    for (let i = 0; i < n; i++) {
      const type = (messages[i] as RaftMessage).type;
      byType[type] = (byType[type] ?? 0) + 1;
    }
    if (from.state === 'stopped') {
      this.#dropped += n;
      return;
    }
    const source = from.id;
    if (this.#unreliable !== null) {
      for (let i = 0; i < n; i++) this.#sendUnreliable(source, messages[i] as RaftMessage, this.#unreliable);
      return;
    }
    // Reliable: one batch per destination, in order.
    const to0 = (messages[0] as RaftMessage).to;
    let single = true;
    for (let i = 1; i < n; i++) {
      if ((messages[i] as RaftMessage).to !== to0) {
        single = false;
        break;
      }
    }
    if (single) {
      this.#sendBatch(from, to0, messages.slice());
      return;
    }
    const groups = new Map<string, RaftMessage[]>();
    for (let i = 0; i < n; i++) {
      const m = messages[i] as RaftMessage;
      const group = groups.get(m.to);
      if (group === undefined) groups.set(m.to, [m]);
      else group.push(m);
    }
    for (const [to, batch] of groups) this.#sendBatch(from, to, batch);
  }

  #sendBatch(from: MemoryEndpoint, to: string, batch: RaftMessage[]): void {
    const source = from.id;
    if (!this.canReach(source, to)) {
      this.#dropped += batch.length;
      return;
    }
    this.#inFlight += batch.length;
    const deliver = (): void => {
      this.#deliverBatch(source, batch);
    };
    if (this.#latencyMax === 0) {
      this.#clock.setImmediate(deliver);
      return;
    }
    const now = this.#clock.now();
    const due = Math.max(now + this.#drawLatency(), from.lastDue.get(to) ?? 0);
    from.lastDue.set(to, due);
    this.#clock.setTimeout(deliver, due - now);
  }

  #sendUnreliable(source: string, message: RaftMessage, u: UnreliableSettings): void {
    if (!this.canReach(source, message.to) || this.#random.next() < u.dropRate) {
      this.#dropped++;
      return;
    }
    this.#scheduleCopy(source, message, u);
    if (this.#random.next() < u.duplicateRate) {
      this.#duplicated++;
      this.#scheduleCopy(source, message, u);
    }
  }

  #scheduleCopy(source: string, message: RaftMessage, u: UnreliableSettings): void {
    const random = this.#random;
    const base = this.#latencyMax === 0 ? 0 : this.#drawLatency();
    const extra =
      random.next() < u.longDelayRate
        ? u.maxDelayMs + random.next() * Math.max(0, u.longDelayMs - u.maxDelayMs)
        : random.next() * u.maxDelayMs;
    this.#inFlight++;
    this.#clock.setTimeout(() => {
      this.#inFlight--;
      this.#deliver(source, message);
    }, base + extra);
  }

  #drawLatency(): number {
    const min = this.#latencyMin;
    const span = this.#latencyMax - min;
    return span === 0 ? min : min + this.#random.next() * span;
  }

  #deliverBatch(source: string, batch: readonly RaftMessage[]): void {
    for (let i = 0; i < batch.length; i++) {
      this.#inFlight--;
      this.#deliver(source, batch[i] as RaftMessage);
    }
  }

  /** Hands one arrived message to its receiver, or drops it. */
  #deliver(source: string, message: RaftMessage): void {
    const endpoint = this.#endpoints.get(message.to);
    const handler = endpoint?.handler;
    if (handler == null || !this.canReach(source, message.to)) {
      this.#dropped++;
      return;
    }
    this.#delivered++;
    try {
      handler(message);
    } catch (err) {
      this.#handlerErrors++;
      try {
        this.#onError?.(err, message);
      } catch {
        // onError must not break delivery either.
      }
    }
  }
}

/** `opts` without its `undefined` members, so they do not override defaults. */
function definedOnly(opts: UnreliableOptions): UnreliableOptions {
  const out: { -readonly [K in keyof UnreliableOptions]: number } = {};
  for (const key of Object.keys(opts) as Array<keyof UnreliableOptions>) {
    const value = opts[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
