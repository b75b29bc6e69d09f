/**
 * Injected time. The same {@link Clock} object reaches XState (`createActor(..., { clock })`),
 * the node actor, the memory network and the simulator, so a cluster can run in
 * real time or in simulated time without changing a line.
 *
 * @module
 */
import { ConfigurationError } from '../errors.js';

/** Opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/**
 * A source of time and timers.
 *
 * @remarks A superset of XState's `Clock` (which needs only `setTimeout` and `clearTimeout`).
 * `setImmediate` runs a callback at the end of the current turn, after pending
 * microtasks: the node coalesces one turn's messages and proposals with it.
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never decreases. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; unknown or fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
  /** Runs `fn` at the end of the current turn. */
  setImmediate(fn: () => void): void;
}

// ---------------------------------------------------------------------------
// systemClock

/** Callbacks waiting for the fallback end-of-turn flush (used only where `setImmediate` is missing). */
let fallbackQueue: Array<() => void> = [];
/** Posts one message to flush {@link fallbackQueue}; created on first use. */
let fallbackPost: (() => void) | null = null;

function flushFallback(): void {
  const queue = fallbackQueue;
  fallbackQueue = [];
  for (const fn of queue) {
    try {
      fn();
    } catch (err) {
      // Report like a real immediate would, without starving the rest of the batch.
      globalThis.setTimeout(() => {
        throw err;
      }, 0);
    }
  }
}

function fallbackImmediate(fn: () => void): void {
  fallbackQueue.push(fn);
  if (fallbackQueue.length > 1) return; // a flush is already posted
  if (fallbackPost === null) {
    if (typeof MessageChannel === 'function') {
      const channel = new MessageChannel();
      // Node's MessagePort keeps the process alive while referenced: hold a
      // reference only while a flush is pending (browsers lack ref/unref).
      const port = channel.port1 as MessagePort & { ref?: () => void; unref?: () => void };
      port.onmessage = () => {
        port.unref?.();
        flushFallback();
      };
      port.unref?.();
      fallbackPost = () => {
        port.ref?.();
        channel.port2.postMessage(null);
      };
    } else {
      fallbackPost = () => {
        globalThis.setTimeout(flushFallback, 0);
      };
    }
  }
  fallbackPost();
}

/**
 * The real clock: `performance.now()` and the host's timers.
 *
 * @remarks `setImmediate` uses the global `setImmediate` when the host has one
 * (Node, Bun, Deno) and otherwise batches callbacks behind one
 * `MessageChannel` message (browsers), or `setTimeout(0)` as a last resort, so
 * the code stays isomorphic. All three run after pending microtasks.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * const actor = createActor(nodeMachine, { input, clock: systemClock });
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => {
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout> | undefined);
  },
  setImmediate: (fn) => {
    const native = (globalThis as { setImmediate?: (cb: () => void) => unknown }).setImmediate;
    if (typeof native === 'function') native(fn);
    else fallbackImmediate(fn);
  },
};

// ---------------------------------------------------------------------------
// SimulatedClock

/** One scheduled callback of a {@link SimulatedClock}; the handle its `setTimeout` returns. */
class SimTimer {
  /** Position in the owner's heap, `-1` once fired or cleared. */
  index = -1;
  constructor(
    readonly owner: SimulatedClock,
    readonly time: number,
    readonly seq: number,
    public fn: (() => void) | null,
  ) {}
}

/** `true` when `a` must run before `b`: earlier time, then earlier scheduling. */
function before(a: SimTimer, b: SimTimer): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/**
 * A virtual clock for deterministic tests and simulation. Time starts at 0 and
 * moves only when the driver runs timers.
 *
 * @remarks Invariants:
 * - timers run in order of due time; timers due at the same time run in the
 *   order they were scheduled (FIFO, by a sequence number);
 * - `setImmediate(fn)` is a timer due at `now()`: it runs after every timer
 *   already due at `now()` and before any later one;
 * - `now()` never decreases; every pending timer is due at or after `now()`;
 * - timers live in a binary heap that always holds exactly the pending ones
 *   (`clearTimeout` removes in O(log n)), so `pending()` is exact;
 * - the heap is consistent before a callback runs, so a callback that throws
 *   leaves the clock usable; the error propagates to the caller of
 *   `runNext`/`advanceTo`.
 *
 * Callbacks run synchronously inside `runNext`. Promise continuations they
 * cause (a resolved storage write, say) run only when the driver yields to
 * the microtask queue, for example with `await null` between steps.
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock();
 * const log: string[] = [];
 * clock.setTimeout(() => log.push('b'), 10);
 * clock.setTimeout(() => log.push('a'), 5);
 * clock.setImmediate(() => log.push('now'));
 * clock.advanceTo(7);   // runs 'now' then 'a'; clock.now() === 7
 * clock.runNext();      // runs 'b';         clock.now() === 10
 * ```
 */
export class SimulatedClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #heap: SimTimer[] = [];

  /** Current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /**
   * Schedules `fn` at `now() + max(0, ms)`.
   *
   * @remarks A negative or `NaN` delay counts as 0.
   * @returns A handle for {@link SimulatedClock.clearTimeout}.
   */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const delay = ms > 0 ? ms : 0;
    const timer = new SimTimer(this, this.#now + delay, this.#seq++, fn);
    this.#push(timer);
    return timer;
  }

  /** Cancels a pending timer; handles that fired, were cleared or belong to another clock are ignored. */
  clearTimeout(handle: TimerHandle): void {
    if (!(handle instanceof SimTimer) || handle.owner !== this || handle.index < 0) return;
    this.#removeAt(handle.index);
    handle.fn = null;
  }

  /** Schedules `fn` at `now()`, after the timers already due at `now()`. */
  setImmediate(fn: () => void): void {
    this.#push(new SimTimer(this, this.#now, this.#seq++, fn));
  }

  /** Number of timers scheduled and neither fired nor cleared. */
  pending(): number {
    return this.#heap.length;
  }

  /** Due time of the next timer, or `undefined` when none is pending. */
  nextTime(): number | undefined {
    return this.#heap[0]?.time;
  }

  /**
   * Runs the earliest pending timer, first advancing `now()` to its due time.
   *
   * @returns `false` when no timer was pending.
   * @throws Whatever the callback throws, after the clock is consistent again.
   */
  runNext(): boolean {
    const timer = this.#heap[0];
    if (timer === undefined) return false;
    this.#removeAt(0);
    this.#now = timer.time;
    const fn = timer.fn;
    timer.fn = null;
    fn?.();
    return true;
  }

  /**
   * Runs every timer due at or before `t` (including those the callbacks
   * schedule on the way), in order, then sets `now()` to `t`.
   *
   * @remarks If `t < now()`, nothing runs and `now()` stays put. If a callback
   * throws, `now()` is left at that timer's due time and later timers stay
   * pending.
   * @throws A {@link ConfigurationError} when `t` is not a finite number.
   */
  advanceTo(t: number): void {
    if (!Number.isFinite(t)) throw new ConfigurationError('t', `must be a finite number, got ${t}`);
    for (let next = this.#heap[0]; next !== undefined && next.time <= t; next = this.#heap[0]) {
      this.runNext();
    }
    if (t > this.#now) this.#now = t;
  }

  /** Same as {@link SimulatedClock.advanceTo}. */
  runUntil(t: number): void {
    this.advanceTo(t);
  }

  /**
   * Same as `advanceTo(now() + ms)`.
   *
   * @throws A {@link ConfigurationError} when `ms` is not a finite number.
   */
  advanceBy(ms: number): void {
    if (!Number.isFinite(ms)) throw new ConfigurationError('ms', `must be a finite number, got ${ms}`);
    this.advanceTo(this.#now + ms);
  }

  // -- binary heap ----------------------------------------------------------

  #push(timer: SimTimer): void {
    const heap = this.#heap;
    timer.index = heap.length;
    heap.push(timer);
    this.#siftUp(timer.index);
  }

  #removeAt(i: number): void {
    const heap = this.#heap;
    const removed = heap[i] as SimTimer;
    const last = heap.pop() as SimTimer;
    removed.index = -1;
    if (last === removed) return;
    heap[i] = last;
    last.index = i;
    this.#siftDown(i);
    if (last.index === i) this.#siftUp(i);
  }

  #siftUp(i: number): void {
    const heap = this.#heap;
    const timer = heap[i] as SimTimer;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as SimTimer;
      if (!before(timer, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = p;
    }
    heap[i] = timer;
    timer.index = i;
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const timer = heap[i] as SimTimer;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      let child = heap[l] as SimTimer;
      if (r < n) {
        const right = heap[r] as SimTimer;
        if (before(right, child)) {
          c = r;
          child = right;
        }
      }
      if (!before(child, timer)) break;
      heap[i] = child;
      child.index = i;
      i = c;
    }
    heap[i] = timer;
    timer.index = i;
  }
}
