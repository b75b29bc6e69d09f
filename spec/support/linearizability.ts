/**
 * A linearizability checker for key-value histories, in the manner of
 * Porcupine: the history is split per key (linearizability is compositional,
 * Herlihy & Wing's P-compositionality), and each key's history is searched
 * with the Wing & Gong / Lowe algorithm (WGL), memoizing every
 * (set of linearized operations, register value) pair already explored.
 *
 * The model is one register per key, absent (`null`) at the start:
 * - `put(key, value)` sets it;
 * - `get(key) → value | null` reads it;
 * - `delete(key)` clears it;
 * - `cas(key, expect | null, value) → 'ok' | 'fail'` sets it to `value` when it
 *   equals `expect` (`null`: when absent), and otherwise leaves it alone.
 *
 * Every operation has a call time and a return time, numbers from any clock
 * (operation A precedes B only when `A.return < B.call`; equal times count as
 * concurrent). An operation whose outcome is unknown — a timeout, a 503 — has
 * `return: Infinity`: it may have taken effect at any time after its call, or
 * never. An unknown `get` tells nothing and is left out.
 *
 * Beyond Porcupine's memoization the search uses two dominance rules and one
 * cut (each argued where it is applied, and cross-checked against brute force
 * in the spec): a get or failed cas that fits the current value is taken
 * without branching; an unknown-outcome write is tried only when some
 * candidate operation could see the value it writes; and a branch stops as
 * soon as a completed operation needs a value that the register does not hold
 * and that nothing left can write (which is what makes a stale read deep in a
 * long history cheap to refuse).
 *
 * The search is bounded by a step budget and a time budget; when either runs
 * out the answer is `unknown`, never a hang. Cost grows with the number of
 * operations in flight on one key at once (unknown ones stay in flight for
 * ever): spread a long test over many keys, as Jepsen's independent keys do,
 * rather than hammering one key with dozens of clients.
 *
 * Test utility only; not part of the package.
 *
 * @module
 */

/** A register value; `null` is "absent". */
export type KvValue = string | null;

interface OpTimes {
  /** Which client issued it (for the explanation only). */
  readonly client?: string | number;
  /** When the call was made. */
  readonly call: number;
  /** When the answer came back; `Infinity` when the outcome is unknown. */
  readonly return: number;
}

/** `put(key, value)`. */
export interface PutOp extends OpTimes {
  readonly f: 'put';
  readonly key: string;
  readonly value: string;
}
/** `get(key) → result` (`null`: absent). `result` is ignored when the outcome is unknown. */
export interface GetOp extends OpTimes {
  readonly f: 'get';
  readonly key: string;
  readonly result?: KvValue;
}
/** `delete(key)`. */
export interface DeleteOp extends OpTimes {
  readonly f: 'delete';
  readonly key: string;
}
/** `cas(key, expect, value) → result`. `result` is ignored (and may be left out) when the outcome is unknown. */
export interface CasOp extends OpTimes {
  readonly f: 'cas';
  readonly key: string;
  readonly expect: KvValue;
  readonly value: string;
  readonly result?: 'ok' | 'fail';
}

/** One operation of a client history. */
export type KvOp = PutOp | GetOp | DeleteOp | CasOp;

/** Budget for {@link checkKv}. */
export interface CheckOptions {
  /** Search steps allowed per key before the answer is `unknown` (default 2,000,000). */
  readonly maxSteps?: number;
  /** Wall-clock milliseconds allowed for the whole check (default 60,000). */
  readonly timeoutMs?: number;
  /** Largest per-key history (operations) that is shrunk for the explanation (default 300). */
  readonly shrinkLimit?: number;
}

/** The history is linearizable. */
export interface CheckOk {
  readonly ok: true;
  readonly result: 'ok';
  /** Keys checked. */
  readonly keys: number;
  /** Search steps taken over all keys. */
  readonly steps: number;
}

/** A key whose history has no linearization. */
export interface CheckIllegal {
  readonly ok: false;
  readonly result: 'illegal';
  readonly key: string;
  /** A readable account: the operations, the longest linearizable prefix, why nothing can come next. */
  readonly explanation: string;
  /** The key's operations, after leaving out reads that do not matter to the failure. */
  readonly operations: readonly KvOp[];
  /** The longest linearizable prefix found, in linearization order. */
  readonly longestPrefix: readonly KvOp[];
}

/** The budget ran out before the search decided. */
export interface CheckUnknown {
  readonly ok: false;
  readonly result: 'unknown';
  readonly key: string;
  readonly explanation: string;
}

/** Outcome of {@link checkKv}. Only `ok: true` means "linearizable". */
export type CheckResult = CheckOk | CheckIllegal | CheckUnknown;

/** What the search of one key's history found. */
type SearchOutcome =
  | { readonly kind: 'ok'; readonly steps: number }
  | { readonly kind: 'illegal'; readonly steps: number; readonly best: readonly number[] }
  | { readonly kind: 'unknown'; readonly steps: number; readonly why: string; readonly best: readonly number[] };

const DEFAULT_MAX_STEPS = 2_000_000;
const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_SHRINK_LIMIT = 300;
/** Step budget of the search for the longest prefix shown in an explanation. */
const EXPLAIN_STEPS = 300_000;

/** Does `op` have an unknown outcome? */
const unknown = (op: KvOp): boolean => op.return === Infinity;

/**
 * Applies `op` to register value `state`: `undefined` when the recorded
 * output is impossible from `state`, else the value afterwards.
 */
function step(state: KvValue, op: KvOp): KvValue | undefined {
  switch (op.f) {
    case 'put':
      return op.value;
    case 'delete':
      return null;
    case 'get':
      return op.result === state ? state : undefined;
    case 'cas': {
      const matches = state === op.expect;
      if (unknown(op)) return matches ? op.value : state;
      if (op.result === 'ok') return matches ? op.value : undefined;
      return matches ? undefined : state;
    }
  }
}

/** The value `op` may write (`null` for a delete); undefined when it writes nothing. */
const writesOf = (op: KvOp): KvValue | undefined =>
  op.f === 'put' ? op.value : op.f === 'delete' ? null : op.f === 'cas' && (unknown(op) || op.result === 'ok') ? op.value : undefined;

/** The value a completed `op` needs the register to hold (a get's result, a successful cas's expectation); undefined for none. */
const needsOf = (op: KvOp): KvValue | undefined =>
  unknown(op) ? undefined : op.f === 'get' ? (op.result ?? null) : op.f === 'cas' && op.result === 'ok' ? op.expect : undefined;

/** Checks shape and times of one operation; throws a RangeError naming it. */
function validate(op: KvOp, i: number): void {
  const where = `operation #${i} (${op.f} ${JSON.stringify(op.key)})`;
  if (typeof op.key !== 'string') throw new RangeError(`${where}: key must be a string`);
  if (!Number.isFinite(op.call)) throw new RangeError(`${where}: call time must be a finite number, got ${op.call}`);
  if (Number.isNaN(op.return) || op.return < op.call) {
    throw new RangeError(`${where}: return time must be ≥ call time (${op.call}) or Infinity, got ${op.return}`);
  }
  if (op.return === -Infinity) throw new RangeError(`${where}: return time must not be -Infinity`);
  if (op.return === Infinity) return;
  if (op.f === 'get' && op.result === undefined) throw new RangeError(`${where}: a completed get needs a result (null for absent)`);
  if (op.f === 'cas' && op.result !== 'ok' && op.result !== 'fail') {
    throw new RangeError(`${where}: a completed cas needs result 'ok' or 'fail'`);
  }
}

/** 32-bit mix of an integer (murmur3 finalizer): per-operation hash words, deterministic. */
function mix32(x: number): number {
  let h = (x + 0x9e3779b9) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * WGL search over one key's operations (none of them an unknown get).
 *
 * The history is a doubly linked list of call and return entries in time
 * order (calls first on ties); unknown operations have only a call entry.
 * Walking from the head, a call entry whose operation is legal from the
 * current value, and whose (linearized set, value) was not seen before, is
 * lifted out with its return entry and the walk restarts; reaching a return
 * entry means that operation should have been linearized by now, so the last
 * choice is undone. Reaching the end of the list means every completed
 * operation is linearized (unknown ones may stay out): linearizable.
 */
function search(ops: readonly KvOp[], maxSteps: number, deadline: number, prune = true): SearchOutcome {
  const n = ops.length;
  // Entries: 2*i is op i's call, 2*i+1 its return. Sentinels: head = 2n, tail = 2n+1.
  const head = 2 * n;
  const tail = 2 * n + 1;
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  const order: { e: number; t: number }[] = [];
  ops.forEach((op, i) => {
    order.push({ e: 2 * i, t: op.call });
    if (!unknown(op)) order.push({ e: 2 * i + 1, t: op.return });
  });
  order.sort((a, b) => a.t - b.t || (a.e & 1) - (b.e & 1) || a.e - b.e);
  let last = head;
  for (const { e } of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = tail;
  prev[tail] = last;

  const remove = (e: number): void => {
    next[prev[e] as number] = next[e] as number;
    prev[next[e] as number] = prev[e] as number;
  };
  const restore = (e: number): void => {
    next[prev[e] as number] = e;
    prev[next[e] as number] = e;
  };

  // States interned to small integers; the linearized set is a bitset with an incremental XOR hash.
  const stateIds = new Map<KvValue, number>();
  const intern = (s: KvValue): number => {
    let id = stateIds.get(s);
    if (id === undefined) {
      id = stateIds.size;
      stateIds.set(s, id);
    }
    return id;
  };
  const words = new Uint32Array(Math.ceil(n / 32) || 1);
  const opHash = Array.from({ length: n }, (_, i) => mix32(i));
  let hash = 0;
  const seen = new Map<number, Uint32Array[]>();
  /** Records (words, state); false when it was already there. */
  const remember = (stateId: number): boolean => {
    const k = (hash >>> 0) + stateId * 0x1_0000_0000;
    const bucket = seen.get(k);
    if (bucket === undefined) {
      seen.set(k, [words.slice()]);
      return true;
    }
    for (const w of bucket) {
      let same = true;
      for (let j = 0; j < w.length; j++) {
        if (w[j] !== words[j]) {
          same = false;
          break;
        }
      }
      if (same) return false;
    }
    bucket.push(words.slice());
    return true;
  };
  const flip = (i: number): void => {
    words[i >>> 5] = ((words[i >>> 5] as number) ^ (1 << (i & 31))) >>> 0;
    hash ^= opHash[i] as number;
  };

  // A completed get or failed cas changes nothing. When one is a candidate (called before any
  // remaining operation returned) and fits the current value, linearizing it next is as good as
  // any other choice: in any successful order it could be moved to the front. So it is taken
  // without branching ("forced"), and backtracking goes straight past it.
  const readOnly = ops.map((op) => !unknown(op) && (op.f === 'get' || (op.f === 'cas' && op.result === 'fail')));
  const stack: { op: number; state: KvValue; forced: boolean }[] = [];
  let best: number[] = [];
  let state: KvValue = null;
  let steps = 0;
  const DEAD = -1;

  // For each value: how many operations not yet linearized could still write it (a delete writes
  // null), and how many completed ones still need to see it (a get of it, a successful cas
  // expecting it). A value needed but no longer writable is an orphan: unless the register holds
  // it now, some operation can never be linearized, and the branch is dead.
  const writes = ops.map(writesOf);
  const needs = ops.map(needsOf);
  const writers = new Map<KvValue, number>();
  const needers = new Map<KvValue, number>();
  for (const v of writes) if (v !== undefined) writers.set(v, (writers.get(v) ?? 0) + 1);
  for (const v of needs) if (v !== undefined) needers.set(v, (needers.get(v) ?? 0) + 1);
  const orphans = new Set<KvValue>();
  const recheck = (v: KvValue): void => {
    if ((needers.get(v) ?? 0) > 0 && (writers.get(v) ?? 0) === 0) orphans.add(v);
    else orphans.delete(v);
  };
  for (const v of needers.keys()) recheck(v);
  const count = (i: number, d: 1 | -1): void => {
    const w = writes[i];
    if (w !== undefined) {
      writers.set(w, (writers.get(w) as number) + d);
      recheck(w);
    }
    const n = needs[i];
    if (n !== undefined) {
      needers.set(n, (needers.get(n) as number) + d);
      recheck(n);
    }
  };
  const doomed = (): boolean => {
    if (prune) for (const v of orphans) if (v !== state) return true;
    return false;
  };

  const lift = (i: number, after: KvValue, forced: boolean): void => {
    count(i, -1);
    stack.push({ op: i, state, forced });
    if (stack.length > best.length) best = stack.map((s) => s.op);
    state = after;
    remove(2 * i);
    if (!unknown(ops[i] as KvOp)) remove(2 * i + 1);
  };
  /** At a configuration reached for the first time: take the forced reads; DEAD when one leads somewhere already explored, or the configuration is doomed. */
  const arrive = (): number => {
    for (let e = next[head] as number; e !== tail && (e & 1) === 0; ) {
      steps++;
      const i = e >> 1;
      if (readOnly[i] === true && step(state, ops[i] as KvOp) !== undefined) {
        flip(i);
        if (!remember(intern(state))) {
          flip(i);
          return DEAD;
        }
        lift(i, state, true);
        e = next[head] as number;
        continue;
      }
      e = next[e] as number;
    }
    return doomed() ? DEAD : (next[head] as number);
  };
  /** Undoes choices back to the last branching one; the entry after it, or DEAD when there is none. */
  const backtrack = (): number => {
    for (;;) {
      const top = stack.pop();
      if (top === undefined) return DEAD;
      if (!unknown(ops[top.op] as KvOp)) restore(2 * top.op + 1);
      restore(2 * top.op);
      flip(top.op);
      count(top.op, 1);
      state = top.state;
      if (!top.forced) return next[2 * top.op] as number;
    }
  };

  /** Whether a candidate other than op `i` could see `v`: a get of it, a cas expecting it, or a failed cas (any other value). */
  const observed = (i: number, v: KvValue): boolean => {
    for (let e = next[head] as number; e !== tail && (e & 1) === 0; e = next[e] as number) {
      const op = ops[e >> 1] as KvOp;
      if (e >> 1 === i) continue;
      if (op.f === 'get' && !unknown(op) && op.result === v) return true;
      if (op.f === 'cas' && (op.expect === v || (op.result === 'fail' && !unknown(op)))) return true;
    }
    return false;
  };
  /**
   * Whether to try an unknown-outcome write `op` (index `i`) now, taking the register to `after`.
   * Not when it would change nothing (leaving it out is as good), nor when no candidate could see
   * the value it writes: in any successful order that takes it now, it can be left out instead,
   * because the operation after it is then a write (or an unknown no-op) that hides it.
   */
  const worthTrying = (i: number, after: KvValue): boolean => after !== state && observed(i, after);

  let entry = arrive();
  for (;;) {
    if (++steps > maxSteps) return { kind: 'unknown', steps, why: `step budget of ${maxSteps} spent`, best };
    if ((steps & 1023) === 0 && performance.now() > deadline) return { kind: 'unknown', steps, why: 'time budget spent', best };
    if (entry === tail) return { kind: 'ok', steps };
    if (entry !== DEAD && (entry & 1) === 0) {
      const i = entry >> 1;
      const op = ops[i] as KvOp;
      const after = step(state, op);
      if (after !== undefined && (!unknown(op) || worthTrying(i, after))) {
        flip(i);
        if (remember(intern(after))) {
          lift(i, after, false);
          entry = arrive();
          continue;
        }
        flip(i);
      }
      entry = next[entry] as number;
    } else {
      // A completed operation not yet linearized (or a dead configuration): undo the last choice.
      entry = backtrack();
      if (entry === DEAD) return { kind: 'illegal', steps, best };
    }
  }
}

const show = (v: KvValue): string => (v === null ? 'absent' : JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v));
const time = (t: number): string => (t === Infinity ? '?' : Number.isInteger(t) ? String(t) : t.toFixed(3));

/** One operation on one line, without its key. */
function describe(op: KvOp): string {
  const out = unknown(op) ? ' → ? (outcome unknown)' : '';
  switch (op.f) {
    case 'put':
      return `put ${show(op.value)}${out}`;
    case 'delete':
      return `delete${out}`;
    case 'get':
      return `get → ${show(op.result ?? null)}`;
    case 'cas':
      return `cas ${show(op.expect)} → ${show(op.value)}${unknown(op) ? out : `: ${op.result ?? '?'}`}`;
  }
}

/** Why `op` (a get or a completed cas: puts and deletes always fit) cannot follow a prefix that left the register at `state`. */
function whyNot(op: KvOp, state: KvValue): string {
  if (op.f === 'get') return `it read ${show(op.result ?? null)} but the value is ${show(state)}`;
  if (op.f === 'cas' && op.result === 'ok') return `it succeeded, but the value is ${show(state)}, not ${show(op.expect)}`;
  return `it failed, but the value is ${show(state)}, as expected`;
}

/** Histories longer than this are shown around the failure only. */
const SHOW_ALL = 30;

/** The readable account of a failed key. */
function explain(key: string, ops: readonly KvOp[], best: readonly number[], dropped: number): string {
  const lines: string[] = [];
  const label = (i: number): string => `#${i}`;
  let state: KvValue = null;
  for (const i of best) state = step(state, ops[i] as KvOp) ?? state;
  const done = new Set(best);
  const rest = ops.map((_, i) => i).filter((i) => !done.has(i));
  const firstReturn = Math.min(...rest.map((i) => (ops[i] as KvOp).return));
  const candidates = rest.filter((i) => (ops[i] as KvOp).call <= firstReturn);
  const blocked = rest.filter((i) => (ops[i] as KvOp).call > firstReturn);

  // Which operations to list: all of a short history; of a long one, those overlapping the moment
  // it gets stuck, and the last few writes of the prefix (which made the value what it is).
  let shown = ops.map((_, i) => i);
  if (ops.length > SHOW_ALL) {
    const from = Math.min(...candidates.filter((i) => !unknown(ops[i] as KvOp)).map((i) => (ops[i] as KvOp).call));
    const writes = best.filter((i) => (ops[i] as KvOp).f !== 'get').slice(-3);
    const around = ops.map((_, i) => i).filter((i) => {
      const op = ops[i] as KvOp;
      return op.call <= firstReturn && (unknown(op) ? candidates.includes(i) : op.return >= from);
    });
    // And the writes of the values the stuck operations wanted (a stale read's source).
    const wanted = new Set<KvValue | undefined>(candidates.map((i) => needsOf(ops[i] as KvOp)));
    wanted.delete(undefined);
    const sources = ops.map((_, i) => i).filter((i) => wanted.has(writesOf(ops[i] as KvOp))).slice(-3);
    shown = [...new Set([...writes, ...sources, ...around])].sort((a, b) => a - b);
  }
  // Pending unknown-outcome writes that could not help are many in a long run: count them, do not list them.
  const idle = candidates.filter((i) => unknown(ops[i] as KvOp));
  if (idle.length > 3) shown = shown.filter((i) => !idle.includes(i));
  lines.push(
    `key ${JSON.stringify(key)}: not linearizable — ${ops.length} operations` +
      (dropped > 0 ? ` (${dropped} reads that do not matter to the failure left out)` : '') +
      (shown.length < ops.length ? `; the ${shown.length} around the failure:` : ':'),
  );
  const width = Math.max(...shown.map((i) => describe(ops[i] as KvOp).length));
  for (const i of shown) {
    const op = ops[i] as KvOp;
    const who = op.client === undefined ? '' : ` client ${op.client}`;
    lines.push(`  ${label(i).padEnd(4)} ${describe(op).padEnd(width)}  [${time(op.call)}, ${time(op.return)}]${who}`);
  }
  const prefix = best.map((i) => `${label(i)} ${describe(ops[i] as KvOp)}`);
  lines.push(
    `longest linearizable prefix (${best.length} of ${ops.length}): ` +
      (best.length === 0 ? '(none)' : (prefix.length <= 12 ? prefix : ['...', ...prefix.slice(-10)]).join(', ')) +
      ` ⇒ value ${show(state)}`,
  );
  // Operations that can never come: they need a value that the register does not hold and that
  // nothing left writes (the search stops a branch as soon as one appears).
  const writable = new Set(rest.map((i) => writesOf(ops[i] as KvOp)));
  const orphans = rest.filter((i) => {
    const v = needsOf(ops[i] as KvOp);
    return v !== undefined && v !== state && !writable.has(v);
  });
  lines.push('then no remaining operation can come next:');
  for (const i of candidates) {
    const op = ops[i] as KvOp;
    // Completed candidates that fit only lead to an orphan (otherwise the prefix would be longer);
    // unknown-outcome writes may fit, but taking effect here helps no one.
    if (unknown(op)) {
      if (idle.length <= 3) lines.push(`  ${label(i)} ${describe(op)}: its outcome is unknown, and taking effect here would help no later operation`);
    } else if (step(state, op) === undefined) lines.push(`  ${label(i)} ${describe(op)}: ${whyNot(op, state)}`);
    else if (!orphans.includes(i)) lines.push(`  ${label(i)} ${describe(op)}: it fits here, but cannot save the operations below`);
  }
  for (const i of orphans.filter((o) => !candidates.includes(o)).slice(0, 5)) {
    const op = ops[i] as KvOp;
    lines.push(`  ${label(i)} ${describe(op)} can never come: it needs ${show(needsOf(op) ?? null)}, which nothing left writes, and the value is ${show(state)}`);
  }
  if (idle.length > 3) {
    lines.push(`  (nor would any of the ${idle.length} unknown-outcome writes still pending, not listed: ${idle.slice(0, 10).map(label).join(', ')}${idle.length > 10 ? ', ...' : ''})`);
  }
  if (blocked.length > 0) {
    const names = blocked.slice(0, 10).map(label).join(', ') + (blocked.length > 10 ? ` and ${blocked.length - 10} more` : '');
    lines.push(`  (${names} called after ${time(firstReturn)}, when an operation above had already returned)`);
  }
  return lines.join('\n');
}

/**
 * Leaves out unknown-outcome writes that nothing could have observed.
 *
 * @remarks Unknown operations are what makes the search exponential: each one
 * may take effect at any time after its call, or never. One whose written
 * value (`null` for a delete) no get returned and no cas expected, and after
 * whose call no completed cas failed, can be dropped: given a linearization
 * in which it took effect, removing it changes only the value seen by the
 * operations between it and the next write, and none of those can tell (a get
 * would have read its value, a successful cas expected it, an unknown cas can
 * be dropped too, and no failed cas is late enough to be among them).
 * Conversely it may always be left out, its outcome being unknown.
 */
function withoutUnobservedUnknowns(ops: readonly KvOp[]): KvOp[] {
  const observed = new Set<KvValue>();
  let lastFailedCasReturn = -Infinity;
  for (const op of ops) {
    if (op.f === 'get' && !unknown(op)) observed.add(op.result ?? null);
    if (op.f === 'cas') observed.add(op.expect);
    if (op.f === 'cas' && op.result === 'fail' && !unknown(op)) lastFailedCasReturn = Math.max(lastFailedCasReturn, op.return);
  }
  return ops.filter((op) => {
    if (!unknown(op) || op.f === 'get') return true;
    const value = op.f === 'delete' ? null : op.value;
    return observed.has(value) || lastFailedCasReturn >= op.call;
  });
}

/**
 * Checks a key-value history for linearizability, key by key.
 *
 * @remarks For a failing key the explanation is made readable by leaving
 * out reads (and failed CASes) one at a time while the rest stays
 * non-linearizable: removing an operation that changes nothing cannot turn a
 * linearizable history into a non-linearizable one, so what is left is still
 * a proof. Keys are checked in order of first appearance; the first failing
 * key is reported.
 * @throws RangeError for an operation with a non-finite call time, a return
 *   before its call, or a completed get/cas without a result.
 *
 * @example
 * ```ts
 * const r = checkKv([
 *   { f: 'put', key: 'x', value: 'a', call: 0, return: 10 },
 *   { f: 'get', key: 'x', result: null, call: 20, return: 30 },
 * ]);
 * // r.ok === false: the read after the acknowledged put saw nothing
 * ```
 */
export function checkKv(history: readonly KvOp[], options: CheckOptions = {}): CheckResult {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const deadline = performance.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const shrinkLimit = options.shrinkLimit ?? DEFAULT_SHRINK_LIMIT;
  history.forEach(validate);
  const byKey = new Map<string, KvOp[]>();
  for (const op of history) {
    if (op.f === 'get' && unknown(op)) continue;
    let ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, (ops = []));
    ops.push(op);
  }
  for (const [key, ops] of byKey) byKey.set(key, withoutUnobservedUnknowns(ops).sort((a, b) => a.call - b.call));
  let steps = 0;
  let undecided: CheckUnknown | undefined;
  for (const [key, ops] of byKey) {
    const found = search(ops, maxSteps, deadline);
    steps += found.steps;
    if (found.kind === 'unknown') {
      undecided ??= {
        ok: false,
        result: 'unknown',
        key,
        explanation: `key ${JSON.stringify(key)}: undecided after ${found.steps} steps (${found.why}); ${ops.length} operations`,
      };
      continue;
    }
    if (found.kind === 'ok') continue;
    // Shrink: drop reads and failed CASes that are not needed for the failure.
    let kept = [...ops];
    let best = found.best;
    if (kept.length <= shrinkLimit) {
      for (let j = kept.length - 1; j >= 0; j--) {
        const op = kept[j] as KvOp;
        const readOnly = !unknown(op) && (op.f === 'get' || (op.f === 'cas' && op.result === 'fail'));
        if (!readOnly) continue;
        const without = kept.filter((_, k) => k !== j);
        const again = search(without, maxSteps, deadline);
        if (again.kind === 'illegal') {
          kept = without;
          best = again.best;
        }
      }
    }
    // The search stops a branch as soon as some operation can never come, so its deepest point may
    // be early; for the explanation, search again without that cut (bounded) for the longest prefix.
    const deep = search(kept, Math.min(maxSteps, EXPLAIN_STEPS), deadline, false);
    if (deep.kind !== 'ok' && deep.best.length > best.length) best = deep.best;
    const longestPrefix = best.map((i) => kept[i] as KvOp);
    return {
      ok: false,
      result: 'illegal',
      key,
      explanation: explain(key, kept, best, ops.length - kept.length),
      operations: kept,
      longestPrefix,
    };
  }
  return undecided ?? { ok: true, result: 'ok', keys: byKey.size, steps };
}
