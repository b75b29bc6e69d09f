import t from 'tap';
import { Inflights } from '../../machines/inflights.js';

const line = (w: Inflights): string => `inflight=${w.count}/${w.capacity} bytes=${w.bytes}/${w.maxBytes} full=${w.full()}`;

t.test('a new window is empty and not full', async (t) => {
  t.equal(line(new Inflights(3, 100)), 'inflight=0/3 bytes=0/100 full=false');
});

t.test('full by count', async (t) => {
  const w = new Inflights(3, 1000);
  const seen: string[] = [];
  for (const [last, bytes] of [[5, 10], [9, 10], [12, 10]] as const) {
    w.add(last, bytes);
    seen.push(line(w));
  }
  t.same(seen, [
    'inflight=1/3 bytes=10/1000 full=false',
    'inflight=2/3 bytes=20/1000 full=false',
    'inflight=3/3 bytes=30/1000 full=true',
  ]);
});

t.test('full by bytes', async (t) => {
  const w = new Inflights(10, 100);
  w.add(1, 60);
  t.equal(line(w), 'inflight=1/10 bytes=60/100 full=false');
  w.add(2, 40);
  t.equal(line(w), 'inflight=2/10 bytes=100/100 full=true', 'reaching maxBytes fills the window');
});

t.test('one oversized message is let through when the window is empty', async (t) => {
  const w = new Inflights(10, 100);
  t.notOk(w.full());
  w.add(1, 500);
  t.equal(line(w), 'inflight=1/10 bytes=500/100 full=true');
});

t.test('add is ignored when full (by count or by bytes)', async (t) => {
  const byCount = new Inflights(2, 1000);
  byCount.add(1, 1);
  byCount.add(2, 1);
  byCount.add(3, 1);
  t.equal(line(byCount), 'inflight=2/2 bytes=2/1000 full=true');
  byCount.freeTo(2);
  t.equal(line(byCount), 'inflight=0/2 bytes=0/1000 full=false', 'the ignored message was never recorded');

  const byBytes = new Inflights(10, 100);
  byBytes.add(1, 100);
  byBytes.add(2, 5);
  t.equal(line(byBytes), 'inflight=1/10 bytes=100/100 full=true');
});

t.test('freeTo releases every message acknowledged, in order', async (t) => {
  const w = new Inflights(4, 1000);
  w.add(3, 10);
  w.add(6, 20);
  w.add(9, 30);
  w.freeTo(2);
  t.equal(line(w), 'inflight=3/4 bytes=60/1000 full=false', 'an ack below the oldest frees nothing');
  w.freeTo(7);
  t.equal(line(w), 'inflight=1/4 bytes=30/1000 full=false', 'frees 3 and 6, keeps 9');
  w.freeTo(6);
  t.equal(line(w), 'inflight=1/4 bytes=30/1000 full=false', 'a stale ack is harmless');
  w.freeTo(100);
  t.equal(line(w), 'inflight=0/4 bytes=0/1000 full=false');
});

t.test('the ring wraps around', async (t) => {
  const w = new Inflights(3, 1000);
  let last = 0;
  const acks: string[] = [];
  // Keep the window at 2-3 messages for many laps of the ring.
  for (let round = 0; round < 20; round++) {
    while (!w.full()) w.add(++last, 1);
    w.freeTo(last - 1);
    acks.push(`${w.count}:${w.bytes}`);
  }
  t.same(new Set(acks), new Set(['1:1']), 'each round leaves exactly the newest message');
  t.equal(last, 3 + 19 * 2, 'two slots refilled per round after the first');
  w.freeTo(last);
  t.equal(line(w), 'inflight=0/3 bytes=0/1000 full=false');
});

t.test('reset forgets everything', async (t) => {
  const w = new Inflights(2, 1000);
  w.add(4, 100);
  w.add(8, 100);
  w.reset();
  t.equal(line(w), 'inflight=0/2 bytes=0/1000 full=false');
  w.add(10, 7);
  w.freeTo(9);
  t.equal(line(w), 'inflight=1/2 bytes=7/1000 full=false', 'old entries do not linger after reset');
});
