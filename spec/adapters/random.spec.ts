import t from 'tap';
import { seededRandom, systemRandom } from '../../adapters/random.js';
import { ConfigurationError } from '../../errors.js';

const take = (n: number, f: () => number): number[] => Array.from({ length: n }, f);

t.test('seededRandom matches a reference C implementation (splitmix32 seeding + sfc32)', async (t) => {
  // Computed with an independent C program: state words from splitmix32 (golden-ratio
  // increment, MurmurHash3 fmix32) of (lo ^ fmix32(hi)), counter 1, 12 warm-up rounds.
  const table: Array<[number, number[]]> = [
    [0, [591558436, 2737234123, 107644106, 1338548054, 2499804003]],
    [1, [792534090, 3215351813, 160231488, 1151041103, 1990438114]],
    [42, [2476999517, 2284424721, 914527439, 3398404915, 1005869237]],
    [2 ** 32, [3978398699, 2964016621, 250326268, 2030334307, 3500633133]],
    [123456789012345, [2129185321, 2476998532, 580099613, 3676262998, 3144502936]],
  ];
  for (const [seed, expected] of table) {
    const r = seededRandom(seed);
    t.same(take(5, () => r.nextUint32()), expected, `seed ${seed}`);
  }
});

t.test('same seed, same sequence; different seed, different sequence', async (t) => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const c = seededRandom(8);
  const sa = take(1000, () => a.next());
  const sb = take(1000, () => b.next());
  const sc = take(1000, () => c.next());
  t.same(sa, sb);
  t.not(sa.join(), sc.join());
  t.ok(sa.every((x) => x >= 0 && x < 1), 'all in [0, 1)');
  const firsts = new Set(Array.from({ length: 1000 }, (_, i) => seededRandom(i).nextUint32()));
  t.equal(firsts.size, 1000, 'seeds 0..999 start differently');
  t.not(seededRandom(-1).nextUint32(), seededRandom(2 ** 32 - 1).nextUint32(), 'the high word of a seed counts');
});

t.test('next() is roughly uniform', async (t) => {
  const r = seededRandom(99);
  const buckets = new Array<number>(10).fill(0);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const k = Math.floor(r.next() * 10);
    buckets[k] = (buckets[k] ?? 0) + 1;
  }
  for (const count of buckets) t.ok(Math.abs(count - n / 10) < n / 100, `bucket ${count} within 10% of ${n / 10}`);
});

t.test('int(lo, hi) stays in range, hits both ends, validates its bounds', async (t) => {
  const r = seededRandom(3);
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const x = r.int(-3, 4);
    if (!Number.isInteger(x) || x < -3 || x >= 4) t.fail(`out of range: ${x}`);
    seen.add(x);
  }
  t.same([...seen].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3]);
  t.equal(r.int(5, 6), 5);
  t.throws(() => r.int(5, 5), ConfigurationError);
  t.throws(() => r.int(5, 4), ConfigurationError);
  t.throws(() => r.int(0.5, 4), ConfigurationError);
  t.throws(() => r.int(0, Number.POSITIVE_INFINITY), ConfigurationError);
});

t.test('chance(p) frequency; edges never/always', async (t) => {
  const r = seededRandom(11);
  let hits = 0;
  for (let i = 0; i < 100_000; i++) if (r.chance(0.3)) hits++;
  t.ok(Math.abs(hits - 30_000) < 1000, `${hits} ≈ 30000`);
  t.notOk(take(1000, () => (r.chance(0) ? 1 : 0)).some((x) => x === 1));
  t.ok(take(1000, () => (r.chance(1) ? 1 : 0)).every((x) => x === 1));
});

t.test('pick() covers the array and rejects an empty one', async (t) => {
  const r = seededRandom(5);
  const arr = ['a', 'b', 'c'] as const;
  const seen = new Set(take(300, () => arr.indexOf(r.pick(arr))));
  t.same([...seen].sort(), [0, 1, 2]);
  t.throws(() => r.pick([]), ConfigurationError);
});

t.test('fork() is deterministic and independent of its parent', async (t) => {
  const p1 = seededRandom(21);
  const p2 = seededRandom(21);
  const f1 = p1.fork();
  const f2 = p2.fork();
  t.same(take(100, () => f1.next()), take(100, () => f2.next()), 'forks of equal parents agree');
  t.same(take(100, () => p1.next()), take(100, () => p2.next()), 'parents stay in step');
  const fresh = seededRandom(21);
  const child = fresh.fork();
  t.not(take(20, () => child.nextUint32()).join(), take(20, () => fresh.nextUint32()).join());
  // Drawing from a fork does not move the parent.
  const q1 = seededRandom(33);
  const q2 = seededRandom(33);
  const g = q1.fork();
  q2.fork();
  take(50, () => g.next());
  t.same(take(10, () => q1.next()), take(10, () => q2.next()));
});

t.test('seed validation', async (t) => {
  t.throws(() => seededRandom(Number.NaN), ConfigurationError);
  t.throws(() => seededRandom(Number.POSITIVE_INFINITY), ConfigurationError);
  t.same(
    take(3, () => seededRandom(-1).nextUint32()),
    take(3, () => seededRandom(-1).nextUint32()),
  );
});

t.test('systemRandom', async (t) => {
  const xs = take(100, () => systemRandom.next());
  t.ok(xs.every((x) => x >= 0 && x < 1));
  t.ok(new Set(xs).size > 90);
});
