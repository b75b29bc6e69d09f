import t from 'tap';
import { SimulatedClock } from '../../adapters/clock.js';
import { seededRandom } from '../../adapters/random.js';
import { MemoryNetwork } from '../../adapters/transport/memory.js';
import type { MemoryNetworkOptions, NetworkStats } from '../../adapters/transport/memory.js';
import type { Transport } from '../../adapters/transport/transport.js';
import { ConfigurationError } from '../../errors.js';
import type { RaftMessage } from '../../machines/types.js';

let counter = 0;
/** A heartbeat from `from` to `to`; `commit` numbers messages so order is visible. */
const hb = (from: string, to: string, commit = counter++): RaftMessage => ({ type: 'heartbeat', term: 1, from, to, commit });
const ack = (from: string, to: string): RaftMessage => ({ type: 'heartbeatResponse', term: 1, from, to });

interface Received {
  readonly at: number;
  readonly node: string;
  readonly message: RaftMessage;
}

/** A network of started nodes that records every delivery. */
async function cluster(ids: readonly string[], options: MemoryNetworkOptions & { clock: SimulatedClock }) {
  const net = new MemoryNetwork(options);
  const received: Received[] = [];
  const nodes = new Map<string, Transport>();
  for (const id of ids) {
    const tr = net.transport(id);
    await tr.start(id, (message) => received.push({ at: options.clock.now(), node: id, message }));
    nodes.set(id, tr);
  }
  const node = (id: string): Transport => {
    const tr = nodes.get(id);
    if (tr === undefined) throw new Error(`no node ${id}`);
    return tr;
  };
  return { net, received, node, clock: options.clock };
}

const commits = (rs: readonly Received[], node?: string): number[] =>
  rs.filter((r) => node === undefined || r.node === node).map((r) => (r.message.type === 'heartbeat' ? r.message.commit : -1));

const total = (s: NetworkStats, inFlight: number): boolean => s.sent + s.duplicated === s.delivered + s.dropped + inFlight;

t.test('reliable, no latency: one callback per send call and destination, at the end of the turn', async (t) => {
  const clock = new SimulatedClock();
  const { net, received, node } = await cluster(['a', 'b', 'c'], { clock });
  const m1 = hb('a', 'b', 1);
  node('a').send([m1, hb('a', 'c', 2), hb('a', 'b', 3)]);
  t.same(received, [], 'nothing is delivered synchronously');
  t.equal(clock.pending(), 2, 'one callback per destination');
  t.equal(net.inFlight(), 3);
  clock.runNext();
  t.same(commits(received), [1, 3], 'b gets both of its messages, in order, in one callback');
  t.equal(received[0]?.message, m1, 'delivered by reference');
  clock.runNext();
  t.same(commits(received), [1, 3, 2]);
  t.equal(clock.now(), 0, 'no time passes');
  t.same(net.stats(), { sent: 3, delivered: 3, dropped: 0, duplicated: 0, handlerErrors: 0, byType: { heartbeat: 3 } });
  t.equal(net.inFlight(), 0);
});

t.test('the sender may reuse its array after send', async (t) => {
  const clock = new SimulatedClock();
  const { received, node } = await cluster(['a', 'b', 'c'], { clock });
  const outbox = [hb('a', 'b', 1), hb('a', 'b', 2)];
  node('a').send(outbox);
  outbox.length = 0;
  const mixed = [hb('a', 'b', 3), hb('a', 'c', 4)];
  node('a').send(mixed);
  mixed.length = 0;
  clock.advanceTo(0);
  t.same(commits(received), [1, 2, 3, 4]);
});

t.test('latency: deliveries fall in [min, max] and each link stays FIFO', async (t) => {
  const clock = new SimulatedClock();
  const { received, node } = await cluster(['a', 'b', 'c'], { clock, random: seededRandom(1), latencyMs: [2, 20] });
  const sentAt = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const to = i % 3 === 0 ? 'c' : 'b';
    sentAt.set(i, clock.now());
    node('a').send([hb('a', to, i)]);
    if (i % 7 === 0) clock.advanceBy(1);
  }
  clock.advanceBy(100);
  t.equal(received.length, 300);
  let inRange = true;
  for (const r of received) {
    const c = r.message.type === 'heartbeat' ? r.message.commit : -1;
    const d = r.at - (sentAt.get(c) ?? Number.NaN);
    if (!(d >= 2)) inRange = false; // FIFO may hold a batch past max, never before min
  }
  t.ok(inRange, 'no message arrives before the minimum latency');
  for (const id of ['b', 'c']) {
    const cs = commits(received, id);
    t.same(cs, [...cs].sort((x, y) => x - y), `link a→${id} is FIFO`);
  }
  // Without FIFO pressure, a single message arrives within [min, max].
  const lone = await cluster(['x', 'y'], { clock: new SimulatedClock(), random: seededRandom(2), latencyMs: [5, 9] });
  lone.node('x').send([hb('x', 'y')]);
  lone.clock.runNext();
  t.ok(lone.clock.now() >= 5 && lone.clock.now() <= 9, `arrived at ${lone.clock.now()}`);
  // Fixed latency draws nothing from the random source.
  const fixed = await cluster(['x', 'y'], { clock: new SimulatedClock(), latencyMs: [4, 4] });
  fixed.node('x').send([hb('x', 'y')]);
  fixed.clock.runNext();
  t.equal(fixed.clock.now(), 4);
});

t.test('disconnect drops both directions, including messages in flight; connect restores', async (t) => {
  const clock = new SimulatedClock();
  const { net, received, node } = await cluster(['a', 'b', 'c'], { clock });
  node('a').send([hb('a', 'b', 1)]); // in flight when b is cut off
  net.disconnect('b');
  t.notOk(net.canReach('a', 'b'));
  t.notOk(net.canReach('b', 'a'));
  t.ok(net.canReach('a', 'c'));
  node('b').send([hb('b', 'a', 2)]);
  node('a').send([hb('a', 'b', 3), hb('a', 'c', 4)]);
  clock.advanceTo(0);
  t.same(commits(received), [4]);
  t.same(net.stats().dropped, 3);
  net.connect('b');
  node('b').send([hb('b', 'a', 5)]);
  node('a').send([hb('a', 'b', 6)]);
  clock.advanceTo(0);
  t.same(commits(received), [4, 5, 6]);
  t.ok(total(net.stats(), net.inFlight()));
});

t.test('partition separates two groups both ways; others are unaffected; heal restores', async (t) => {
  const clock = new SimulatedClock();
  const { net, received, node } = await cluster(['a', 'b', 'c', 'd', 'e'], { clock });
  net.partition(['a', 'b'], ['c', 'd']);
  const all = ['a', 'b', 'c', 'd', 'e'];
  const reach = (from: string): string[] => all.filter((to) => to !== from && net.canReach(from, to));
  t.same(reach('a'), ['b', 'e']);
  t.same(reach('c'), ['d', 'e']);
  t.same(reach('e'), ['a', 'b', 'c', 'd']);
  for (const from of all) node(from).send(all.filter((to) => to !== from).map((to) => hb(from, to)));
  clock.advanceTo(0);
  const pairs = received.map((r) => `${r.message.from}${r.node}`).sort();
  t.same(pairs, ['ab', 'ae', 'ba', 'be', 'cd', 'ce', 'dc', 'de', 'ea', 'eb', 'ec', 'ed']);
  t.equal(net.stats().dropped, 8);

  net.partition(['e'], ['a']); // partitions accumulate
  t.notOk(net.canReach('e', 'a'));
  t.ok(net.canReach('e', 'c'));
  net.disconnect('e');
  net.heal();
  t.same(reach('a'), ['b', 'c', 'd', 'e']);
  t.same(reach('e'), ['a', 'b', 'c', 'd']);
  t.throws(() => net.partition(['a', 'b'], ['b']), ConfigurationError);
});

t.test('a message in flight when a partition starts is dropped on arrival', async (t) => {
  const clock = new SimulatedClock();
  const { net, received, node } = await cluster(['a', 'b'], { clock, random: seededRandom(3), latencyMs: [10, 10] });
  node('a').send([hb('a', 'b', 1)]);
  clock.advanceBy(5);
  net.partition(['a'], ['b']);
  clock.advanceBy(5);
  t.same(received, []);
  t.same(net.stats().dropped, 1);
  net.heal();
  node('a').send([hb('a', 'b', 2)]);
  clock.advanceBy(10);
  t.same(commits(received), [2]);
});

t.test('endpoints: unknown and stopped receivers drop; restart gets a fresh endpoint', async (t) => {
  const clock = new SimulatedClock();
  const { net, received, node } = await cluster(['a', 'b'], { clock });
  node('a').send([hb('a', 'nobody', 1)]);
  const notStarted = net.transport('z');
  t.equal(net.transport('z'), notStarted, 'the same endpoint while it is not stopped');
  node('a').send([hb('a', 'z', 2)]);
  clock.advanceTo(0);
  t.same(received, []);
  t.equal(net.stats().dropped, 2);

  const oldB = node('b');
  node('a').send([hb('a', 'b', 3)]); // in flight across b's restart
  await oldB.stop();
  await oldB.stop(); // idempotent
  oldB.send([hb('b', 'a', 4)]); // a stopped endpoint sends nothing
  await t.rejects(oldB.start('b', () => {}), ConfigurationError);
  const newB = net.transport('b');
  t.not(newB, oldB, 'fresh endpoint after stop');
  const got: number[] = [];
  await newB.start('b', (m) => got.push(m.type === 'heartbeat' ? m.commit : -1));
  clock.advanceTo(0);
  t.same(got, [3], 'a message in flight reaches the restarted node');
  t.same(received, [], 'nothing reached the old endpoint or came from it');
  t.equal(net.stats().dropped, 3);

  await t.rejects(newB.start('b', () => {}), ConfigurationError, 'already started');
  await t.rejects(net.transport('q').start('not-q', () => {}), ConfigurationError, 'wrong id');
  t.throws(() => net.transport(''), ConfigurationError);
  newB.setPeers([{ id: 'a', address: 'ignored' }]);
  newB.send([]);
  t.equal(clock.pending(), 0);
});

t.test('a throwing handler is reported and does not break delivery', async (t) => {
  const clock = new SimulatedClock();
  const errors: Array<[unknown, RaftMessage]> = [];
  const net = new MemoryNetwork({ clock, onError: (e, m) => errors.push([e, m]) });
  const got: number[] = [];
  await net.transport('a').start('a', () => {});
  await net.transport('b').start('b', (m) => {
    if (m.type === 'heartbeat' && m.commit === 2) throw new Error('bad handler');
    got.push(m.type === 'heartbeat' ? m.commit : -1);
  });
  net.transport('a').send([hb('a', 'b', 1), hb('a', 'b', 2), hb('a', 'b', 3)]);
  clock.advanceTo(0);
  t.same(got, [1, 3]);
  t.equal(errors.length, 1);
  t.equal((errors[0]?.[0] as Error).message, 'bad handler');
  t.equal(net.stats().handlerErrors, 1);
  t.equal(net.stats().delivered, 3);

  // onError that throws, and no onError at all, are both survived.
  const net2 = new MemoryNetwork({
    clock,
    onError: () => {
      throw new Error('worse');
    },
  });
  const net3 = new MemoryNetwork({ clock });
  for (const n of [net2, net3]) {
    await n.transport('a').start('a', () => {});
    await n.transport('b').start('b', () => {
      throw new Error('bad');
    });
    n.transport('a').send([hb('a', 'b'), hb('a', 'b')]);
  }
  t.doesNotThrow(() => clock.advanceTo(0));
  t.equal(net2.stats().handlerErrors, 2);
  t.equal(net3.stats().handlerErrors, 2);
});

t.test('stats count by type and reset', async (t) => {
  const clock = new SimulatedClock();
  const { net, node } = await cluster(['a', 'b'], { clock });
  node('a').send([hb('a', 'b'), hb('a', 'b')]);
  node('b').send([ack('b', 'a')]);
  t.same(net.stats().byType, { heartbeat: 2, heartbeatResponse: 1 });
  const snapshot = net.stats();
  clock.advanceTo(0);
  t.equal(snapshot.delivered, 0, 'stats() is a snapshot');
  t.equal(net.stats().delivered, 3);
  net.resetStats();
  t.same(net.stats(), { sent: 0, delivered: 0, dropped: 0, duplicated: 0, handlerErrors: 0, byType: {} });
});

/** Runs a fixed traffic pattern through an unreliable network; returns what arrived when. */
async function unreliableRun(seed: number, opts: Parameters<MemoryNetwork['setUnreliable']>[1] = {}) {
  const clock = new SimulatedClock();
  const c = await cluster(['a', 'b', 'c'], { clock, random: seededRandom(seed), latencyMs: [1, 3] });
  c.net.setUnreliable(true, opts);
  let k = 0;
  for (let step = 0; step < 400; step++) {
    c.node('a').send([hb('a', 'b', k++), hb('a', 'c', k++), hb('a', 'b', k++)]);
    c.node('b').send([ack('b', 'a')]);
    clock.advanceBy(1);
  }
  clock.advanceBy(10_000);
  return { ...c, log: c.received.map((r) => `${r.at.toFixed(6)} ${r.node} ${r.message.type} ${commits([r]).join()}`) };
}

t.test('unreliable mode drops, duplicates and reorders, reproducibly', async (t) => {
  const opts = { dropRate: 0.1, duplicateRate: 0.05, maxDelayMs: 8, longDelayRate: 0.02, longDelayMs: 300 };
  const run1 = await unreliableRun(42, opts);
  const run2 = await unreliableRun(42, opts);
  const run3 = await unreliableRun(43, opts);
  t.same(run1.log, run2.log, 'same seed: identical deliveries, times included');
  t.same(run1.net.stats(), run2.net.stats());
  t.not(run1.log.join('\n'), run3.log.join('\n'), 'different seed: different run');

  const s = run1.net.stats();
  t.equal(s.sent, 1600);
  t.ok(s.dropped > 1600 * 0.07 && s.dropped < 1600 * 0.13, `dropped ${s.dropped} ≈ 10%`);
  t.ok(s.duplicated > 1600 * 0.9 * 0.03 && s.duplicated < 1600 * 0.9 * 0.07, `duplicated ${s.duplicated} ≈ 5%`);
  t.equal(run1.net.inFlight(), 0);
  t.ok(total(s, 0), 'sent + duplicated = delivered + dropped');
  const cs = commits(run1.received, 'b');
  let inversions = 0;
  for (let i = 1; i < cs.length; i++) if ((cs[i] ?? 0) < (cs[i - 1] ?? 0)) inversions++;
  t.ok(inversions > 10, `reordered (${inversions} inversions)`);
  t.ok(new Set(cs).size < cs.length, 'some messages arrived twice');
  const late = run1.received.filter((r) => r.at > 400 + 3 + 8);
  t.ok(late.length > 0, 'some copies were held for a long delay');

  // Turning it off restores reliable, ordered delivery; in-flight copies keep their schedule.
  run1.net.setUnreliable(false);
  run1.net.resetStats();
  run1.received.length = 0;
  run1.node('a').send([hb('a', 'b', 1), hb('a', 'b', 2)]);
  run1.clock.advanceBy(10);
  t.same(commits(run1.received), [1, 2]);
  t.same(run1.net.stats().dropped, 0);
});

t.test('unreliable mode respects partitions and defaults', async (t) => {
  const clock = new SimulatedClock();
  const { net, received, node } = await cluster(['a', 'b'], { clock, random: seededRandom(9) });
  net.setUnreliable(true);
  net.partition(['a'], ['b']);
  node('a').send([hb('a', 'b'), hb('a', 'b')]);
  t.equal(net.stats().dropped, 2);
  net.heal();
  for (let i = 0; i < 2000; i++) node('a').send([hb('a', 'b')]);
  clock.advanceBy(1000);
  const s = net.stats();
  t.ok(s.dropped > 40 && s.dropped < 200, `default drop rate ~5% (${s.dropped})`);
  t.ok(s.duplicated > 10, `default duplicates (${s.duplicated})`);
  t.equal(received.length, s.delivered);
});

/** The `option` of the ConfigurationError `fn` throws. */
function optionOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof ConfigurationError ? err.option : `not a ConfigurationError: ${String(err)}`;
  }
  return 'did not throw';
}

t.test('option validation names the option', async (t) => {
  const net = new MemoryNetwork({ clock: new SimulatedClock() });
  t.equal(optionOf(() => net.setUnreliable(true, { dropRate: 1.5 })), 'dropRate');
  t.equal(optionOf(() => net.setUnreliable(true, { duplicateRate: -0.1 })), 'duplicateRate');
  t.equal(optionOf(() => net.setUnreliable(true, { longDelayRate: Number.NaN })), 'longDelayRate');
  t.equal(optionOf(() => net.setUnreliable(true, { maxDelayMs: -1 })), 'maxDelayMs');
  t.equal(optionOf(() => net.setUnreliable(true, { longDelayMs: Number.POSITIVE_INFINITY })), 'longDelayMs');
  t.equal(optionOf(() => new MemoryNetwork({ latencyMs: [5, 1] })), 'latencyMs');
  t.equal(optionOf(() => new MemoryNetwork({ latencyMs: [-1, 1] })), 'latencyMs[0]');
  t.doesNotThrow(() => net.setUnreliable(true, { dropRate: 0, duplicateRate: 1 }));
});

t.test('defaults to the system clock and random', async (t) => {
  const net = new MemoryNetwork();
  const got = new Promise<RaftMessage>((resolve) => {
    void net.transport('b').start('b', resolve);
  });
  await net.transport('a').start('a', () => {});
  net.transport('a').send([ack('a', 'b')]);
  t.equal((await got).type, 'heartbeatResponse');
});
