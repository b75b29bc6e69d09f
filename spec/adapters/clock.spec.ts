import t from 'tap';
import { SimulatedClock, systemClock } from '../../adapters/clock.js';
import { ConfigurationError } from '../../errors.js';
import { seededRandom } from '../../adapters/random.js';

t.test('SimulatedClock', async (t) => {
  t.test('starts at 0 with nothing pending', async (t) => {
    const clock = new SimulatedClock();
    t.equal(clock.now(), 0);
    t.equal(clock.pending(), 0);
    t.equal(clock.nextTime(), undefined);
    t.equal(clock.runNext(), false);
    t.equal(clock.now(), 0);
  });

  t.test('runs timers in due-time order and advances now to each', async (t) => {
    const clock = new SimulatedClock();
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => seen.push(['c', clock.now()]), 30);
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10);
    clock.setTimeout(() => seen.push(['b', clock.now()]), 20);
    t.equal(clock.pending(), 3);
    t.equal(clock.nextTime(), 10);
    while (clock.runNext());
    t.same(seen, [
      ['a', 10],
      ['b', 20],
      ['c', 30],
    ]);
    t.equal(clock.now(), 30);
    t.equal(clock.pending(), 0);
  });

  t.test('timers due at the same time run FIFO', async (t) => {
    const clock = new SimulatedClock();
    const seen: number[] = [];
    for (let i = 0; i < 50; i++) clock.setTimeout(() => seen.push(i), 5);
    clock.advanceTo(5);
    t.same(
      seen,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  t.test('FIFO ties hold for timers scheduled at different moments for the same time', async (t) => {
    const clock = new SimulatedClock();
    const seen: string[] = [];
    clock.setTimeout(() => seen.push('first, at 0 for +10'), 10);
    clock.setTimeout(() => {
      clock.setTimeout(() => seen.push('third, at 5 for +5'), 5);
    }, 5);
    clock.setTimeout(() => seen.push('second, at 0 for +10'), 10);
    clock.advanceTo(10);
    t.same(seen, ['first, at 0 for +10', 'second, at 0 for +10', 'third, at 5 for +5']);
  });

  t.test('negative and NaN delays count as 0', async (t) => {
    const clock = new SimulatedClock();
    clock.advanceTo(7);
    clock.setTimeout(() => {}, -5);
    clock.setTimeout(() => {}, Number.NaN);
    t.equal(clock.nextTime(), 7);
    clock.runNext();
    t.equal(clock.now(), 7);
  });

  t.test('setImmediate runs at now, after timers already due now, before later ones', async (t) => {
    const clock = new SimulatedClock();
    const seen: string[] = [];
    clock.setTimeout(() => {
      seen.push('t5');
      clock.setImmediate(() => seen.push(`imm@${clock.now()}`));
      clock.setTimeout(() => seen.push('t5+0'), 0);
    }, 5);
    clock.setTimeout(() => seen.push('t5b'), 5);
    clock.setTimeout(() => seen.push('t6'), 6);
    clock.setImmediate(() => seen.push(`imm@${clock.now()}`));
    clock.advanceTo(100);
    t.same(seen, ['imm@0', 't5', 't5b', 'imm@5', 't5+0', 't6']);
    t.equal(clock.now(), 100);
  });

  t.test('clearTimeout cancels; unknown, fired or foreign handles are ignored', async (t) => {
    const clock = new SimulatedClock();
    const other = new SimulatedClock();
    const seen: string[] = [];
    const a = clock.setTimeout(() => seen.push('a'), 1);
    const b = clock.setTimeout(() => seen.push('b'), 2);
    const c = clock.setTimeout(() => seen.push('c'), 3);
    const foreign = other.setTimeout(() => seen.push('foreign'), 1);
    clock.clearTimeout(b);
    clock.clearTimeout(b); // twice
    clock.clearTimeout(foreign);
    clock.clearTimeout(undefined);
    clock.clearTimeout(42);
    clock.clearTimeout({ index: 0 });
    t.equal(clock.pending(), 2);
    t.equal(other.pending(), 1);
    clock.runNext();
    clock.clearTimeout(a); // already fired
    t.equal(clock.pending(), 1);
    clock.advanceTo(10);
    t.same(seen, ['a', 'c']);
    clock.clearTimeout(c);
    t.equal(clock.pending(), 0);
  });

  t.test('a callback may clear a later timer, or itself', async (t) => {
    const clock = new SimulatedClock();
    const seen: string[] = [];
    const later = clock.setTimeout(() => seen.push('later'), 10);
    const self: { h?: unknown } = {};
    self.h = clock.setTimeout(() => {
      seen.push('self');
      clock.clearTimeout(self.h);
      clock.clearTimeout(later);
    }, 5);
    clock.advanceTo(20);
    t.same(seen, ['self']);
    t.equal(clock.pending(), 0);
  });

  t.test('advanceTo runs timers scheduled on the way, stops at t, keeps later ones', async (t) => {
    const clock = new SimulatedClock();
    const seen: number[] = [];
    const tick = (): void => {
      seen.push(clock.now());
      clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    clock.advanceTo(35);
    t.same(seen, [10, 20, 30]);
    t.equal(clock.now(), 35);
    t.equal(clock.nextTime(), 40);
    clock.runUntil(40);
    t.same(seen, [10, 20, 30, 40]);
    clock.advanceBy(25);
    t.equal(clock.now(), 65);
    t.same(seen, [10, 20, 30, 40, 50, 60]);
  });

  t.test('advanceTo into the past is a no-op; non-finite targets throw', async (t) => {
    const clock = new SimulatedClock();
    clock.advanceTo(50);
    clock.advanceTo(10);
    t.equal(clock.now(), 50);
    t.throws(() => clock.advanceTo(Number.POSITIVE_INFINITY), ConfigurationError);
    t.throws(() => clock.advanceTo(Number.NaN), ConfigurationError);
    t.throws(() => clock.advanceBy(Number.NaN), ConfigurationError);
    t.equal(clock.now(), 50);
  });

  t.test('a throwing callback propagates and leaves the heap consistent', async (t) => {
    const clock = new SimulatedClock();
    const seen: number[] = [];
    for (let i = 1; i <= 20; i++) {
      clock.setTimeout(() => {
        if (i === 7) throw new Error('boom');
        seen.push(i);
      }, i);
    }
    t.throws(() => clock.advanceTo(100), { message: 'boom' });
    t.equal(clock.now(), 7, 'now stays at the failing timer');
    t.equal(clock.pending(), 13);
    t.same(seen, [1, 2, 3, 4, 5, 6]);
    t.throws(() => {
      clock.setImmediate(() => {
        throw new Error('again');
      });
      clock.runNext();
    });
    clock.advanceTo(100);
    t.same(seen, [1, 2, 3, 4, 5, 6, ...Array.from({ length: 13 }, (_, i) => i + 8)]);
    t.equal(clock.now(), 100);
  });

  t.test('heap order matches a sorted reference under random set/clear (30k timers)', async (t) => {
    const clock = new SimulatedClock();
    const random = seededRandom(1234);
    const fired: Array<{ time: number; seq: number }> = [];
    const live = new Map<number, { time: number; handle: unknown }>();
    let seq = 0;
    for (let round = 0; round < 30_000; round++) {
      const op = random.next();
      if (op < 0.6 || live.size === 0) {
        const delay = random.int(0, 200);
        const s = seq++;
        const time = clock.now() + delay;
        const handle = clock.setTimeout(() => {
          fired.push({ time: clock.now(), seq: s });
          live.delete(s);
        }, delay);
        live.set(s, { time, handle });
      } else if (op < 0.85) {
        const keys = [...live.keys()];
        const victim = random.pick(keys);
        clock.clearTimeout(live.get(victim)?.handle);
        live.delete(victim);
      } else {
        clock.runNext();
      }
      if (round % 1000 === 0) t.equal(clock.pending(), live.size);
    }
    const remaining = [...live.entries()].map(([s, v]) => ({ time: v.time, seq: s }));
    remaining.sort((a, b) => a.time - b.time || a.seq - b.seq);
    const before = fired.length;
    while (clock.runNext());
    t.same(fired.slice(before), remaining, 'drains in (time, seq) order');
    let ok = true;
    for (let i = 1; i < fired.length; i++) {
      const a = fired[i - 1];
      const b = fired[i];
      if (a === undefined || b === undefined || b.time < a.time) ok = false;
    }
    t.ok(ok, 'fire times never decrease');
    t.equal(clock.pending(), 0);
  });
});

t.test('systemClock', async (t) => {
  t.test('now is monotonic and near performance.now()', async (t) => {
    const a = systemClock.now();
    const b = systemClock.now();
    t.ok(b >= a);
    t.ok(Math.abs(performance.now() - b) < 1000);
  });

  t.test('setTimeout fires; clearTimeout cancels', async (t) => {
    const seen: string[] = [];
    const h = systemClock.setTimeout(() => seen.push('cleared'), 0);
    systemClock.clearTimeout(h);
    systemClock.clearTimeout(undefined);
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 1));
    t.same(seen, []);
  });

  t.test('setImmediate runs after pending microtasks', async (t) => {
    const seen: string[] = [];
    await new Promise<void>((resolve) => {
      systemClock.setImmediate(() => {
        seen.push('immediate');
        resolve();
      });
      void Promise.resolve().then(() => seen.push('microtask'));
    });
    t.same(seen, ['microtask', 'immediate']);
  });

  t.test('falls back to a batched MessageChannel flush without a global setImmediate', async (t) => {
    const g = globalThis as { setImmediate?: unknown };
    const saved = g.setImmediate;
    g.setImmediate = undefined;
    const seen: string[] = [];
    try {
      await new Promise<void>((resolve) => {
        systemClock.setImmediate(() => seen.push('a'));
        systemClock.setImmediate(() => {
          seen.push('b');
          resolve();
        });
        void Promise.resolve().then(() => seen.push('microtask'));
      });
    } finally {
      g.setImmediate = saved;
    }
    t.same(seen, ['microtask', 'a', 'b']);
  });
});
