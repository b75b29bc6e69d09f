/**
 * The node's public Observables, made safe to hand to anyone: every
 * subscriber is isolated (its throw is caught, reported and ends only its own
 * subscription), state streams replay their current value, and per-replica
 * progress is followed from the replica actors themselves, so no transition
 * is skipped — at no cost while nobody subscribes.
 *
 * @module
 */
import { Observable, type Subscription } from 'rxjs';

/** Where a subscriber's failure is reported: the stream's name and what it threw. */
export type SubscriberFailureHandler = (stream: string, error: unknown) => void;

/**
 * `source`, with every subscriber isolated: values, errors and completion are
 * delivered synchronously, in order, as by `source`; a callback that throws
 * is unsubscribed at once and reported to `onFailure` (which must not throw;
 * if it does, that is swallowed too) instead of RxJS rethrowing it on a timer,
 * which would crash the process.
 */
export function isolate<T>(name: string, source: Observable<T>, onFailure: SubscriberFailureHandler): Observable<T> {
  return new Observable<T>((subscriber) => {
    let inner: Subscription | null = null;
    let failed = false;
    const fail = (error: unknown, tellSubscriber: boolean): void => {
      failed = true;
      inner?.unsubscribe();
      try {
        onFailure(name, error);
      } catch {
        // a failing failure handler must not take the node down either
      }
      try {
        // a subscriber cut off after a value learns it by completion (which may throw again: ignored)
        if (tellSubscriber) deliverComplete(subscriber);
      } catch {
        // already reported once
      }
      subscriber.unsubscribe();
    };
    const guard = (deliver: () => void, tellSubscriber = false): void => {
      if (failed) return;
      try {
        deliver();
      } catch (error) {
        fail(error, tellSubscriber);
      }
    };
    // RxJS runs a subscriber's callbacks inside its own try/catch and rethrows on a timer;
    // calling the destination's callbacks through a plain observer defeats that: we catch first.
    inner = source.subscribe({
      next: (v) => guard(() => deliverNext(subscriber, v), true),
      error: (e: unknown) => guard(() => deliverError(subscriber, e)),
      complete: () => guard(() => deliverComplete(subscriber)),
    });
    if (failed) inner.unsubscribe();
    return () => inner?.unsubscribe();
  });
}

/** What RxJS calls on a subscriber, reached without its error-reporting wrapper (see {@link isolate}). */
interface RawDestination<T> {
  readonly destination?: { readonly partialObserver?: Partial<{ next(v: T): void; error(e: unknown): void; complete(): void }> };
}

// A Subscriber made by `subscribe(fn)` or `subscribe({...})` wraps the user's callbacks in a
// ConsumerObserver that catches and reports asynchronously. To observe the throw ourselves we
// call the user's callbacks directly when they are reachable; otherwise (an operator chain, an
// internal subscriber) the plain method is used, which is already safe to call.
function callbacksOf<T>(s: unknown): Partial<{ next(v: T): void; error(e: unknown): void; complete(): void }> | null {
  const partial = (s as RawDestination<T>).destination?.partialObserver;
  return partial !== undefined && partial !== null && typeof partial === 'object' ? partial : null;
}

function deliverNext<T>(s: { next(v: T): void; closed: boolean }, v: T): void {
  const raw = callbacksOf<T>(s);
  if (raw !== null && !s.closed) {
    raw.next?.(v);
    return;
  }
  s.next(v);
}

function deliverError(s: { error(e: unknown): void; unsubscribe(): void; closed: boolean }, e: unknown): void {
  const raw = callbacksOf<never>(s);
  if (raw !== null && !s.closed) {
    if (raw.error === undefined) throw e;
    raw.error(e);
    s.unsubscribe();
    return;
  }
  s.error(e);
}

function deliverComplete(s: { complete(): void; unsubscribe(): void; closed: boolean }): void {
  const raw = callbacksOf<never>(s);
  if (raw !== null && !s.closed) {
    raw.complete?.();
    s.unsubscribe();
    return;
  }
  s.complete();
}

/** The part of an actor reference {@link ProgressFeed} uses. */
export interface SnapshotSource<S> {
  getSnapshot(): S;
  subscribe(observer: (snapshot: S) => void): { unsubscribe(): void };
}

/**
 * Follows a changing set of replica actors and publishes each one's progress
 * on {@link ProgressFeed.progress$}: on subscribe the current progress of every
 * replica, then one value per change, in order. It subscribes to the replica
 * actors only while someone subscribes to it, so an unobserved node pays
 * nothing per append.
 *
 * @typeParam S - the replica actor's snapshot.
 * @typeParam P - what is published for a peer.
 */
export class ProgressFeed<S, P> {
  readonly #toProgress: (peer: string, snapshot: S) => P;
  readonly #same: (a: P, b: P) => boolean;
  readonly #observers = new Set<{ next(p: P): void; complete(): void }>();
  readonly #followed = new Map<string, { ref: SnapshotSource<S>; sub: { unsubscribe(): void } }>();
  readonly #last = new Map<string, P>();
  #refs: Readonly<Record<string, SnapshotSource<S>>> = {};
  #ended = false;
  /** Replica progress: replayed per live replica on subscribe, then every change. Completes when the node stops. */
  readonly progress$: Observable<P>;

  /**
   * @param toProgress - what to publish for `peer` in `snapshot`.
   * @param same - whether two published values are equal (a new snapshot equal to the last is not republished).
   */
  constructor(toProgress: (peer: string, snapshot: S) => P, same: (a: P, b: P) => boolean) {
    this.#toProgress = toProgress;
    this.#same = same;
    this.progress$ = new Observable<P>((subscriber) => {
      if (this.#ended) {
        subscriber.complete();
        return undefined;
      }
      const observer = { next: (p: P) => subscriber.next(p), complete: () => subscriber.complete() };
      this.#observers.add(observer);
      for (const [peer, ref] of Object.entries(this.#refs)) {
        const p = this.#toProgress(peer, ref.getSnapshot());
        this.#last.set(peer, p);
        observer.next(p);
      }
      if (this.#observers.size === 1) this.#follow();
      return () => {
        this.#observers.delete(observer);
        if (this.#observers.size === 0) this.#unfollow();
      };
    });
  }

  /** The replica actors now (the same object again is a no-op). */
  track(refs: Readonly<Record<string, SnapshotSource<S>>>): void {
    if (refs === this.#refs || this.#ended) return;
    this.#refs = refs;
    if (this.#observers.size > 0) this.#follow();
  }

  /** Completes every subscriber and stops following. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#unfollow();
    for (const o of [...this.#observers]) o.complete();
    this.#observers.clear();
  }

  #follow(): void {
    for (const [peer, f] of this.#followed) {
      if (this.#refs[peer] !== f.ref) {
        f.sub.unsubscribe();
        this.#followed.delete(peer);
        this.#last.delete(peer);
      }
    }
    for (const [peer, ref] of Object.entries(this.#refs)) {
      if (this.#followed.has(peer)) continue;
      const sub = ref.subscribe((snapshot) => this.#publish(peer, snapshot));
      this.#followed.set(peer, { ref, sub });
      this.#publish(peer, ref.getSnapshot()); // a replica that just appeared, from where it is (no-op after a replay)
    }
  }

  #unfollow(): void {
    for (const f of this.#followed.values()) f.sub.unsubscribe();
    this.#followed.clear();
    this.#last.clear();
  }

  #publish(peer: string, snapshot: S): void {
    const p = this.#toProgress(peer, snapshot);
    const last = this.#last.get(peer);
    if (last !== undefined && this.#same(last, p)) return;
    this.#last.set(peer, p);
    for (const o of this.#observers) o.next(p);
  }
}
