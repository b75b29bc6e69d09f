/**
 * Subscriber isolation of the node's Observables (actors/observe.ts): a
 * throwing subscriber is cut off and reported, the others go on, and nothing
 * is rethrown on a timer (which would crash the process).
 */
import { BehaviorSubject, Subject, map } from 'rxjs';
import t from 'tap';
import type { Test } from 'tap';
import { isolate, ProgressFeed } from '../../actors/observe.js';
import type { RaftEvent, ReplicaProgress } from '../../actors/node.actor.js';
import { SimCluster } from '../sim/harness/cluster.js';

const withUnhandledWatch = async (t: Test, body: () => void | Promise<void>): Promise<unknown[]> => {
  const unhandled: unknown[] = [];
  const onError = (e: unknown): void => {
    unhandled.push(e);
  };
  // RxJS reports a subscriber's throw by throwing it from a setTimeout callback
  process.prependListener('uncaughtException', onError);
  t.teardown(() => process.off('uncaughtException', onError));
  await body();
  await new Promise((r) => setTimeout(r, 20));
  return unhandled;
};

t.test('a throwing subscriber is unsubscribed and reported; the others and the source go on', async (t) => {
  const failures: Array<[string, unknown]> = [];
  const subject = new Subject<number>();
  const stream = isolate('test$', subject.asObservable(), (name, e) => failures.push([name, e]));
  const good: number[] = [];
  const bad: number[] = [];
  let completed = false;
  const unhandled = await withUnhandledWatch(t, () => {
    stream.subscribe((v) => good.push(v));
    stream.subscribe({
      next: (v) => {
        bad.push(v);
        if (v === 2) throw new Error('subscriber bug');
      },
      complete: () => {
        completed = true;
      },
    });
    for (const v of [1, 2, 3]) subject.next(v); // must not throw into the producer
  });
  t.same(good, [1, 2, 3], 'the well-behaved subscriber gets everything, in order');
  t.same(bad, [1, 2], 'the thrower gets nothing after its throw');
  t.equal(completed, true, 'and is completed, so it knows it was cut off');
  t.equal(failures.length, 1);
  t.match(failures[0], ['test$', { message: 'subscriber bug' }]);
  t.same(unhandled, [], 'nothing rethrown on a timer');
  t.equal(subject.observed, true, 'the good subscriber is still attached');
});

t.test('a replaying source replays to late subscribers; errors and completion pass through', async (t) => {
  const failures: unknown[] = [];
  const state = new BehaviorSubject('follower');
  const stream = isolate('role$', state.asObservable(), (_n, e) => failures.push(e));
  state.next('leader');
  const seen: string[] = [];
  stream.subscribe((v) => seen.push(v));
  t.same(seen, ['leader'], 'the current value first');
  let errored: unknown;
  stream.subscribe({ error: (e: unknown) => (errored = e) });
  state.error(new Error('stopped'));
  t.match(errored, { message: 'stopped' });
  t.match(failures, [{ message: 'stopped' }], 'an error reaching a subscriber without an error callback is reported, not rethrown');

  const done = new Subject<number>();
  let complete = 0;
  isolate('x', done, () => undefined).subscribe({ complete: () => complete++ });
  done.complete();
  t.equal(complete, 1);
});

t.test('a throwing error or complete callback, and a throwing failure handler, are contained too', async (t) => {
  const unhandled = await withUnhandledWatch(t, () => {
    const a = new Subject<number>();
    isolate('a', a, () => {
      throw new Error('handler bug');
    }).subscribe(() => {
      throw new Error('next bug');
    });
    a.next(1);
    const b = new Subject<number>();
    const reported: unknown[] = [];
    isolate('b', b, (_n, e) => reported.push(e)).subscribe({
      complete: () => {
        throw new Error('complete bug');
      },
    });
    b.complete();
    t.match(reported, [{ message: 'complete bug' }]);
    const c = new Subject<number>();
    isolate('c', c, (_n, e) => reported.push(e)).subscribe({
      error: () => {
        throw new Error('error bug');
      },
    });
    c.error(new Error('source error'));
    t.match(reported[1], { message: 'error bug' });
  });
  t.same(unhandled, []);
});

t.test('a subscriber behind operators is still delivered to (its throw stays RxJS\'s to report)', async (t) => {
  const s = new Subject<number>();
  const seen: number[] = [];
  isolate('p', s, () => undefined)
    .pipe(map((v) => v * 2))
    .subscribe((v) => seen.push(v));
  s.next(2);
  t.same(seen, [4]);
});

/** A fake replica actor: a snapshot you set, counting who follows it. */
class FakeReplica {
  followers = 0;
  readonly #s: BehaviorSubject<{ match: number; state: string }>;
  constructor(match: number) {
    this.#s = new BehaviorSubject({ match, state: 'probe' });
  }
  set(match: number, state = 'replicate'): void {
    this.#s.next({ match, state });
  }
  getSnapshot(): { match: number; state: string } {
    return this.#s.getValue();
  }
  subscribe(cb: (s: { match: number; state: string }) => void): { unsubscribe(): void } {
    this.followers++;
    const sub = this.#s.subscribe(cb);
    return {
      unsubscribe: () => {
        this.followers--;
        sub.unsubscribe();
      },
    };
  }
}

t.test('ProgressFeed: follows replicas only while observed, replays, publishes every change once', async (t) => {
  type P = { peer: string; match: number; state: string };
  const feed = new ProgressFeed<{ match: number; state: string }, P>(
    (peer, s) => ({ peer, ...s }),
    (a, b) => a.match === b.match && a.state === b.state,
  );
  const n2 = new FakeReplica(0);
  const n3 = new FakeReplica(0);
  feed.track({ n2, n3 });
  n2.set(1);
  t.equal(n2.followers + n3.followers, 0, 'nobody subscribed: the replicas are not followed');

  const seen: P[] = [];
  const sub = feed.progress$.subscribe((p) => seen.push(p));
  t.same(seen, [{ peer: 'n2', match: 1, state: 'replicate' }, { peer: 'n3', match: 0, state: 'probe' }], 'the current progress of each replica first');
  t.equal(n2.followers + n3.followers, 2);
  seen.length = 0;
  n2.set(2);
  n2.set(2); // unchanged: not republished
  n3.set(5, 'probe');
  n2.set(3);
  t.same(seen.map((p) => `${p.peer}:${p.match}:${p.state}`), ['n2:2:replicate', 'n3:5:probe', 'n2:3:replicate'], 'every change, in order, once');

  seen.length = 0;
  const n4 = new FakeReplica(7);
  feed.track({ n2, n4 });
  t.equal(n3.followers, 0, 'a replica that left is no longer followed');
  t.equal(n4.followers, 1);
  n4.set(8);
  n3.set(9);
  t.same(seen.map((p) => `${p.peer}:${p.match}`), ['n4:7', 'n4:8'], 'a new replica is followed from its current progress');
  feed.track({ n2, n4 });

  sub.unsubscribe();
  t.equal(n2.followers + n4.followers, 0, 'the last unsubscribe stops following');
  let completed = 0;
  feed.progress$.subscribe({ complete: () => completed++ });
  feed.end();
  feed.end();
  t.equal(completed, 1, 'end() completes subscribers');
  feed.progress$.subscribe({ complete: () => completed++ });
  t.equal(completed, 2, 'a subscriber after the end completes at once');
  feed.track({ n2 });
  t.equal(n2.followers, 0);
});

t.test('a node\'s streams: commitIndex$ and progress$ replay and follow; a throwing subscriber is cut off, the node goes on [seed 4242]', async (t) => {
  const sim = new SimCluster({ seed: 4242, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.commit('a');

  const commits: number[] = [];
  leader.commitIndex$.subscribe((c) => commits.push(c));
  t.equal(commits.length, 1, 'the current commit index is replayed');
  t.equal(commits[0], leader.status().commitIndex);

  const progress: ReplicaProgress[] = [];
  leader.progress$.subscribe((p) => progress.push(p));
  t.same(progress.map((p) => p.peer).sort(), ['n1', 'n2', 'n3'].filter((id) => id !== leader.id), 'each replica\'s current progress first');
  for (const p of progress) t.equal(p.match, leader.status().replicas[p.peer]?.match);

  const events: RaftEvent[] = [];
  leader.events$.subscribe((e) => events.push(e));
  let thrown = 0;
  leader.events$.subscribe(() => {
    thrown++;
    throw new Error('a buggy dashboard');
  });
  leader.commitIndex$.subscribe((c) => {
    if (c > commits[0]!) throw new Error('a buggy commit watcher');
  });

  await sim.commit('b');
  await sim.commit('c');
  const before = commits[0] as number;
  t.ok(commits.length >= 3 && commits.at(-1)! >= before + 2, `commitIndex$ followed the commits (${commits.join(',')})`);
  t.same(commits, [...commits].sort((a, b) => a - b), 'in order, never backwards');
  const lastMatch = new Map<string, number>();
  for (const p of progress) {
    t.ok(p.match >= (lastMatch.get(p.peer) ?? 0), 'match never goes back');
    lastMatch.set(p.peer, p.match);
  }
  for (const [peer, match] of lastMatch) t.equal(match, leader.status().replicas[peer]?.match, `progress$ ends where status() is for ${peer}`);
  const failed = events.filter((e) => e.type === 'subscriberFailed');
  t.equal(thrown, 1, 'the throwing events$ subscriber saw one event, then was cut off');
  t.same(failed.map((e) => e.type === 'subscriberFailed' && e.stream).sort(), ['commitIndex$', 'events$'], 'both failures reported');
  t.same((sim.applied.get(leader.id) ?? []).map((a) => a.value).slice(-3), ['a', 'b', 'c'], 'the node went on');

  let completed = 0;
  leader.progress$.subscribe({ complete: () => completed++ });
  leader.commitIndex$.subscribe({ complete: () => completed++ });
  await sim.crash(leader.id);
  t.equal(completed, 2, 'the streams complete when the node stops');
});
