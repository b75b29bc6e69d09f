/**
 * The key-value linearizability checker (spec/support/linearizability.ts):
 * hand-made histories that are and are not linearizable, histories generated
 * from a real sequential execution with random overlapping intervals (always
 * linearizable) and the same histories with a read made stale or impossible
 * (never linearizable), and the step budget.
 */
import t from 'tap';
import { seededRandom, type SeededRandom } from '../../adapters/random.js';
import { checkKv, type KvOp, type KvValue } from './linearizability.js';

const put = (key: string, value: string, call: number, ret: number, client?: number): KvOp =>
  client === undefined ? { f: 'put', key, value, call, return: ret } : { f: 'put', key, value, call, return: ret, client };
const get = (key: string, result: KvValue, call: number, ret: number): KvOp => ({ f: 'get', key, result, call, return: ret });
const del = (key: string, call: number, ret: number): KvOp => ({ f: 'delete', key, call, return: ret });
const cas = (key: string, expect: KvValue, value: string, result: 'ok' | 'fail' | undefined, call: number, ret: number): KvOp =>
  result === undefined ? { f: 'cas', key, expect, value, call, return: ret } : { f: 'cas', key, expect, value, result, call, return: ret };

t.test('linearizable histories', async (t) => {
  const cases: [string, KvOp[]][] = [
    ['empty history', []],
    ['read of a key never written', [get('x', null, 0, 1)]],
    ['sequential put then get', [put('x', 'a', 0, 1), get('x', 'a', 2, 3)]],
    ['concurrent put and get, get sees the new value', [put('x', 'a', 0, 10), get('x', 'a', 2, 3)]],
    ['concurrent put and get, get sees the old value', [put('x', 'a', 0, 10), get('x', null, 2, 3)]],
    ['concurrent puts, read sees the first called', [put('x', 'a', 0, 10), put('x', 'b', 1, 9), get('x', 'a', 11, 12)]],
    ['concurrent puts, read sees the second called', [put('x', 'a', 0, 10), put('x', 'b', 1, 9), get('x', 'b', 11, 12)]],
    ['equal return and call times count as concurrent', [put('x', 'a', 0, 5), get('x', null, 5, 6)]],
    ['delete then get absent', [put('x', 'a', 0, 1), del('x', 2, 3), get('x', null, 4, 5)]],
    ['cas ok from absent', [cas('x', null, 'a', 'ok', 0, 1), get('x', 'a', 2, 3)]],
    ['cas fail leaves the value', [put('x', 'a', 0, 1), cas('x', 'b', 'c', 'fail', 2, 3), get('x', 'a', 4, 5)]],
    [
      'two concurrent cas from the same value: one wins',
      [put('x', 'a', 0, 1), cas('x', 'a', 'b', 'ok', 2, 10), cas('x', 'a', 'c', 'fail', 3, 9), get('x', 'b', 11, 12)],
    ],
    [
      'unknown put that took effect',
      [put('x', 'a', 0, 1), put('x', 'b', 2, Infinity), get('x', 'b', 50, 51)],
    ],
    [
      'unknown put that did not take effect',
      [put('x', 'a', 0, 1), put('x', 'b', 2, Infinity), get('x', 'a', 50, 51), get('x', 'a', 60, 61)],
    ],
    [
      'unknown put that took effect late (after a read saw the old value)',
      [put('x', 'a', 0, 1), put('x', 'b', 2, Infinity), get('x', 'a', 50, 51), get('x', 'b', 60, 61)],
    ],
    ['unknown cas that took effect', [put('x', 'a', 0, 1), cas('x', 'a', 'b', undefined, 2, Infinity), get('x', 'b', 5, 6)]],
    ['unknown get is ignored', [put('x', 'a', 0, 1), { f: 'get', key: 'x', call: 2, return: Infinity }]],
    ['keys are independent', [put('x', 'a', 0, 10), put('y', 'b', 0, 10), get('x', 'a', 11, 12), get('y', 'b', 11, 12)]],
  ];
  for (const [name, history] of cases) {
    const r = checkKv(history);
    t.same(r.result, 'ok', name);
  }
});

t.test('non-linearizable histories are refused with an explanation', async (t) => {
  const cases: [string, KvOp[], string][] = [
    ['stale read after an acknowledged overwrite', [put('x', 'a', 0, 1), put('x', 'b', 2, 3), get('x', 'a', 4, 5)], 'x'],
    ['read of a value never written', [put('x', 'a', 0, 1), get('x', 'z', 2, 3)], 'x'],
    ['lost write: absent after an acknowledged put', [put('x', 'a', 0, 1), get('x', null, 2, 3)], 'x'],
    [
      'read flips back (a then b then a) with no write of a in between',
      [put('x', 'a', 0, 1), put('x', 'b', 2, 20), get('x', 'b', 5, 6), get('x', 'a', 7, 8)],
      'x',
    ],
    ['cas succeeded though the value differed', [put('x', 'a', 0, 1), cas('x', 'b', 'c', 'ok', 2, 3)], 'x'],
    ['cas failed though the value matched', [put('x', 'a', 0, 1), cas('x', 'a', 'c', 'fail', 2, 3)], 'x'],
    [
      'two sequential cas from the same value both succeed',
      [put('x', 'a', 0, 1), cas('x', 'a', 'b', 'ok', 2, 3), cas('x', 'a', 'c', 'ok', 4, 5)],
      'x',
    ],
    [
      'two concurrent cas from the same value both succeed',
      [put('x', 'a', 0, 1), cas('x', 'a', 'b', 'ok', 2, 10), cas('x', 'a', 'c', 'ok', 3, 9)],
      'x',
    ],
    ['unknown put cannot explain a read before its call', [put('x', 'b', 10, Infinity), get('x', 'b', 0, 5)], 'x'],
    [
      'an unknown put, once seen, cannot be unseen',
      [put('x', 'a', 0, 1), put('x', 'b', 2, Infinity), get('x', 'b', 10, 11), get('x', 'a', 12, 13)],
      'x',
    ],
    ['delete lost', [put('x', 'a', 0, 1), del('x', 2, 3), get('x', 'a', 4, 5)], 'x'],
    ['the failing key is named', [put('x', 'a', 0, 1), get('x', 'a', 2, 3), put('y', 'b', 0, 1), get('y', null, 2, 3)], 'y'],
  ];
  for (const [name, history, key] of cases) {
    const r = checkKv(history);
    t.equal(r.result, 'illegal', name);
    if (r.result !== 'illegal') continue;
    t.equal(r.key, key, `${name}: key`);
    t.match(r.explanation, `key ${JSON.stringify(key)}: not linearizable`, `${name}: explanation names the key`);
    t.ok(r.longestPrefix.length < r.operations.length, `${name}: prefix shorter than the history`);
  }
});

t.test('the explanation shows the operations with times, the longest prefix and the blocked operation', async (t) => {
  const history = [
    put('x', 'a', 0, 10, 1),
    get('x', 'a', 11, 12),
    get('x', 'a', 13, 14),
    put('x', 'b', 20, 30, 2),
    get('x', 'b', 31, 32),
    get('x', 'a', 40, 41),
  ];
  const r = checkKv(history);
  t.equal(r.result, 'illegal');
  if (r.result !== 'illegal') return;
  // The reads of 'a' before the overwrite and the read of 'b' do not matter: they are left out.
  t.same(
    r.operations.map((op) => [op.f, op.call]),
    [['put', 0], ['put', 20], ['get', 40]],
    'only the operations needed for the failure are kept',
  );
  t.same(r.longestPrefix.map((op) => op.call), [0, 20], 'prefix: the two puts');
  t.match(r.explanation, /3 reads that do not matter/);
  t.match(r.explanation, /#0\s+put "a"\s+\[0, 10\] client 1/);
  t.match(r.explanation, /longest linearizable prefix \(2 of 3\): #0 put "a", #1 put "b" ⇒ value "b"/);
  t.match(r.explanation, /#2 get → "a": it read "a" but the value is "b"/);
});

t.test('the explanation says why each candidate cannot come next, and who is blocked', async (t) => {
  // Two concurrent cas from 'a' both 'ok': whichever goes first, the other then fails.
  const r = checkKv([put('x', 'a', 0, 1), cas('x', 'a', 'b', 'ok', 2, 10), cas('x', 'a', 'c', 'ok', 3, 9), get('x', 'c', 20, 21)]);
  t.equal(r.result, 'illegal');
  if (r.result !== 'illegal') return;
  t.match(r.explanation, /it succeeded, but the value is "[bc]", not "a"/);
  const blocked = checkKv([put('x', 'a', 0, 1), get('x', 'z', 2, 3), put('x', 'z', 10, 11)]);
  t.equal(blocked.result, 'illegal');
  if (blocked.result === 'illegal') t.match(blocked.explanation, /#1 get → "z": it read "z" but the value is "a"\n  \(#2 called after 3, when an operation above had already returned\)/);
  const r2 = checkKv([put('x', 'a', 0, 1), cas('x', 'a', 'b', 'fail', 2, 3)]);
  t.equal(r2.result, 'illegal');
  if (r2.result === 'illegal') t.match(r2.explanation, /it failed, but the value is "a", as expected/);
  const r3 = checkKv([put('x', 'a', 0, 1), put('x', 'b', 2, Infinity), get('x', 'b', 10, 11), get('x', 'a', 12, 13)]);
  t.equal(r3.result, 'illegal');
  if (r3.result === 'illegal') t.match(r3.explanation, /put "b" → \? \(outcome unknown\)\s+\[2, \?\]/);
});

t.test('bad operations are refused with a RangeError naming them', async (t) => {
  t.throws(() => checkKv([put('x', 'a', Number.NaN, 1)]), RangeError);
  t.throws(() => checkKv([put('x', 'a', 5, 1)]), /operation #0 \(put "x"\): return time must be ≥ call time/);
  t.throws(() => checkKv([{ f: 'get', key: 'x', call: 0, return: 1 }]), /needs a result/);
  t.throws(() => checkKv([{ f: 'cas', key: 'x', expect: null, value: 'a', call: 0, return: 1 }]), /needs result 'ok' or 'fail'/);
  t.throws(() => checkKv([{ f: 'put', key: 1 as unknown as string, value: 'a', call: 0, return: 1 }]), /key must be a string/);
});

/**
 * A real sequential execution: `clients` clients each run operations back to
 * back; every operation takes effect at one instant inside [call, return]
 * against a single map, so the recorded history is linearizable by
 * construction. Puts write unique values; a few operations get an unknown
 * outcome (whether they took effect is random).
 */
function generate(random: SeededRandom, clients: number, opsPerClient: number, keys: readonly string[]): KvOp[] {
  interface Pending {
    readonly client: number;
    readonly call: number;
    readonly at: number;
    readonly ret: number;
    readonly key: string;
    readonly kind: 'put' | 'get' | 'delete' | 'cas';
    readonly lost: boolean;
  }
  const pending: Pending[] = [];
  for (let c = 0; c < clients; c++) {
    let now = random.int(0, 20);
    for (let i = 0; i < opsPerClient; i++) {
      const call = now;
      const at = call + random.int(0, 30);
      const ret = at + random.int(0, 30);
      const r = random.next();
      const kind = r < 0.35 ? 'put' : r < 0.75 ? 'get' : r < 0.85 ? 'delete' : 'cas';
      pending.push({ client: c, call, at, ret, key: random.pick(keys), kind, lost: random.chance(0.5) });
      now = ret + random.int(1, 10);
    }
  }
  // Execute in effect order (distinct instants: ties broken by client).
  pending.sort((a, b) => a.at - b.at || a.client - b.client);
  const map = new Map<string, string>();
  let serial = 0;
  const history: KvOp[] = [];
  for (const p of pending) {
    const unknownOutcome = p.kind !== 'get' && random.chance(0.05);
    const ret = unknownOutcome ? Infinity : p.ret;
    const applies = !unknownOutcome || !p.lost;
    const current = map.get(p.key) ?? null;
    const base = { key: p.key, call: p.call, return: ret, client: p.client };
    if (p.kind === 'put') {
      const value = `v${serial++}`;
      if (applies) map.set(p.key, value);
      history.push({ ...base, f: 'put', value });
    } else if (p.kind === 'delete') {
      if (applies) map.delete(p.key);
      history.push({ ...base, f: 'delete' });
    } else if (p.kind === 'get') {
      history.push({ ...base, f: 'get', result: current });
    } else {
      const value = `v${serial++}`;
      const expect = random.chance(0.7) ? current : `v${random.int(0, serial)}`;
      const ok = current === expect;
      if (ok && applies) map.set(p.key, value);
      history.push(unknownOutcome ? { ...base, f: 'cas', expect, value } : { ...base, f: 'cas', expect, value, result: ok ? 'ok' : 'fail' });
    }
  }
  return history;
}

/** A copy of `history` with operation `i` replaced. */
const replace = (history: readonly KvOp[], i: number, op: KvOp): KvOp[] => history.map((o, j) => (j === i ? op : o));

t.test('random histories from a sequential execution are linearizable; corrupted reads are not', async (t) => {
  const baseSeed = Number(process.env.SEED ?? 20261123);
  let staleChecked = 0;
  let impossibleChecked = 0;
  let mutated = 0;
  let mutatedFailed = 0;
  for (let run = 0; run < 40; run++) {
    const seed = baseSeed + run;
    const random = seededRandom(seed);
    const history = generate(random, random.int(2, 7), random.int(5, 25), ['a', 'b', 'c'].slice(0, random.int(1, 4)));
    const r = checkKv(history);
    if (r.result !== 'ok') {
      t.fail(`seed ${seed}: generated history judged ${r.result}\n${'explanation' in r ? r.explanation : ''}`);
      continue;
    }

    const reads = history.map((op, i) => [op, i] as const).filter(([op]) => op.f === 'get' && op.return !== Infinity);
    // (1) A read of a value nobody wrote: always illegal.
    for (const [op, i] of reads.slice(0, 3)) {
      const bad = replace(history, i, { ...op, f: 'get', result: 'never-written' } as KvOp);
      const rb = checkKv(bad);
      t.equal(rb.result, 'illegal', `seed ${seed}: read #${i} of a never-written value refused`);
      if (rb.result === 'illegal') t.equal(rb.key, op.key);
      impossibleChecked++;
    }
    // (2) A stale read: the value of a put P on the key, overwritten by a put Q with P.return < Q.call
    // and Q.return < read.call (values are unique, so nothing else wrote P's value): always illegal.
    for (const [op, i] of reads) {
      const puts = history.filter((o): o is KvOp & { f: 'put' } => o.f === 'put' && o.key === op.key && o.return < op.call);
      const stale = puts.find((p) => puts.some((q) => p.return < q.call && q !== p));
      if (stale === undefined) continue;
      const rb = checkKv(replace(history, i, { ...op, f: 'get', result: stale.value } as KvOp));
      t.equal(rb.result, 'illegal', `seed ${seed}: stale read #${i} of ${stale.value} refused`);
      staleChecked++;
      break;
    }
    // (3) Any other value written to the key: usually illegal (not always: the value may be concurrent).
    for (const [op, i] of reads.slice(0, 5)) {
      const written = history.filter((o) => (o.f === 'put' || o.f === 'cas') && o.key === op.key).map((o) => (o as { value: string }).value);
      const other = written.find((v) => v !== (op.f === 'get' ? op.result : undefined));
      if (other === undefined) continue;
      mutated++;
      if (checkKv(replace(history, i, { ...op, f: 'get', result: other } as KvOp)).result === 'illegal') mutatedFailed++;
    }
  }
  t.ok(impossibleChecked >= 40, `impossible reads checked: ${impossibleChecked}`);
  t.ok(staleChecked >= 10, `stale reads checked: ${staleChecked}`);
  t.ok(mutated >= 40 && mutatedFailed / mutated > 0.5, `random read mutations refused: ${mutatedFailed} of ${mutated}`);
});

t.test('a larger history with many concurrent clients and unknown outcomes is decided', async (t) => {
  const history = generate(seededRandom(7), 16, 60, ['k']);
  t.ok(history.filter((op) => op.return === Infinity).length >= 10, 'with at least ten unknown outcomes');
  const r = checkKv(history);
  t.equal(r.result, 'ok', 'linearizable');
  if (r.result === 'ok') t.equal(r.keys, 1);

  // The same shape with a late stale read: refused, and the explanation shows only the operations around it.
  const long = generate(seededRandom(11), 8, 60, ['k']);
  const firstPut = long.find((op): op is KvOp & { f: 'put' } => op.f === 'put' && op.return !== Infinity);
  const last = long.map((op, i) => [op, i] as const).filter(([op]) => op.f === 'get' && op.return !== Infinity).at(-1);
  if (firstPut === undefined || last === undefined) throw new Error('generator made no put or no read');
  const bad = replace(long, last[1], { ...last[0], f: 'get', result: firstPut.value } as KvOp);
  const rb = checkKv(bad);
  t.equal(rb.result, 'illegal', 'late stale read refused');
  if (rb.result !== 'illegal') return;
  const lines = rb.explanation.split('\n');
  t.ok(lines.length < 30, `explanation is short (${lines.length} lines)`);
  t.match(rb.explanation, new RegExp(`the \\d+ around the failure`));
  t.match(rb.explanation, new RegExp(`get → "${firstPut.value}": it read "${firstPut.value}" but the value is`));
  t.match(rb.explanation, /nor would any of the \d+ unknown-outcome writes still pending/);
});

/** The definition, by brute force: some order of the operations respects real time and the register (unknown ones may be left out). */
function naive(history: readonly KvOp[]): boolean {
  const ops = history.filter((op) => !(op.f === 'get' && op.return === Infinity));
  const keys = new Set(ops.map((op) => op.key));
  const apply = (state: KvValue, op: KvOp): KvValue | undefined => {
    if (op.f === 'put') return op.value;
    if (op.f === 'delete') return null;
    if (op.f === 'get') return op.result === state ? state : undefined;
    const matches = state === op.expect;
    if (op.return === Infinity) return matches ? op.value : state;
    return (op.result === 'ok') === matches ? (matches ? op.value : state) : undefined;
  };
  const go = (rest: readonly KvOp[], state: KvValue): boolean => {
    if (rest.every((op) => op.return === Infinity)) return true;
    const deadline = Math.min(...rest.map((op) => op.return));
    return rest.some((op, i) => {
      if (op.call > deadline) return false;
      const others = rest.filter((_, j) => j !== i);
      const after = apply(state, op);
      return (after !== undefined && go(others, after)) || (op.return === Infinity && go(others, state));
    });
  };
  return [...keys].every((k) => go(ops.filter((op) => op.key === k), null));
}

t.test('agrees with a brute-force check on small random histories with arbitrary results', async (t) => {
  const seed = Number(process.env.SEED ?? 4242);
  const random = seededRandom(seed);
  const values = ['a', 'b', 'c'];
  let legal = 0;
  let illegal = 0;
  for (let run = 0; run < 1500; run++) {
    const n = random.int(1, 7);
    const history: KvOp[] = [];
    for (let i = 0; i < n; i++) {
      const call = random.int(0, 20);
      const ret = random.chance(0.15) ? Infinity : call + random.int(0, 10);
      const value = random.pick(values);
      const seen = random.chance(0.3) ? null : random.pick(values);
      const kind = random.int(0, 4);
      if (kind === 0) history.push({ f: 'put', key: 'k', value, call, return: ret });
      else if (kind === 1) history.push({ f: 'get', key: 'k', result: seen, call, return: ret });
      else if (kind === 2) history.push({ f: 'delete', key: 'k', call, return: ret });
      else history.push({ f: 'cas', key: 'k', expect: seen, value, result: random.chance(0.5) ? 'ok' : 'fail', call, return: ret });
    }
    const expected = naive(history);
    const got = checkKv(history).result;
    if (got !== (expected ? 'ok' : 'illegal')) {
      t.fail(`seed ${seed} run ${run}: checker says ${got}, brute force says ${expected}\n${JSON.stringify(history)}`);
      return;
    }
    if (expected) legal++;
    else illegal++;
  }
  t.ok(legal > 200 && illegal > 200, `both answers exercised: ${legal} linearizable, ${illegal} not`);
});

t.test('the step budget ends the search with unknown, not a hang', async (t) => {
  // Many concurrent puts, then two reads of two of their values in a row: no order explains it,
  // and every subset of the other puts must be tried to know it.
  const history: KvOp[] = [];
  for (let i = 0; i < 30; i++) history.push(put('x', `v${i}`, 0, 100));
  history.push(get('x', 'v0', 101, 102), get('x', 'v1', 103, 104));
  const r = checkKv(history, { maxSteps: 500 });
  t.equal(r.result, 'unknown');
  t.notOk(r.ok, 'unknown is not ok');
  if (r.result === 'unknown') t.match(r.explanation, /step budget of 500 spent/);
  const timed = checkKv(history, { timeoutMs: 0, maxSteps: 1e9 });
  t.equal(timed.result, 'unknown', 'a spent time budget also gives unknown');
  if (timed.result === 'unknown') t.match(timed.explanation, /time budget spent/);
  // The same shape with fewer puts is decided within the default budget.
  const small = [...history.slice(0, 8), ...history.slice(30)];
  t.equal(checkKv(small).result, 'illegal', 'decided when the budget is enough');
});
