/**
 * The replica progress machine: what a leader knows about one follower, and
 * what to send it next. One is spawned per peer when a node becomes leader
 * (systemId `replica:<id>`) and dies with the leadership.
 *
 * States (etcd's Progress, thesis §3.5 / §10.2):
 * - `probe`: the leader does not know where the follower's log matches; it
 *   sends one append at a time and walks `next` back on each refusal using the
 *   conflict hint, at most one probe per heartbeat when unanswered.
 * - `replicate`: the match point is known; appends stream optimistically,
 *   `next` runs ahead of `match`, bounded by the {@link Inflights} window.
 * - `snapshot`: the entries the follower needs were compacted; a
 *   {@link snapshotSenderMachine} child streams the leader's latest snapshot
 *   (`sending`), and the replica returns to `probe` from just after the
 *   snapshot once the follower installed it. A transfer that aborts waits
 *   (`waiting`) for the follower's next heartbeat answer, then probes again
 *   (and so starts a new transfer if the entries are still compacted).
 *
 * @module
 */
import { assign, enqueueActions, sendTo, setup, type AnyActorRef } from 'xstate';
import { Inflights } from './inflights.js';
import { nextAfterConflict } from './log-matching.js';
import type { InstallSnapshotResponse, SnapshotSenderLimits } from './snapshot.js';
import {
  snapshotSenderMachine,
  type SnapshotFinishedEvent,
  type SnapshotProgressEvent,
  type SnapshotSendResult,
  type SnapshotSendSource,
} from './snapshot-sender.machine.js';
import type { AppendResponse, LogView, ServerId } from './types.js';

/**
 * What a leader can send a follower that needs compacted entries: a read-only view of its
 * snapshot store.
 */
export interface ReplicaSnapshots {
  /** The newest snapshot held, or `null` when none is. Read, never changed, by the machine. */
  readonly latest: () => SnapshotSendSource | null;
  /** Limits of each transfer (validated by the caller); missing fields take the sender's defaults. */
  readonly limits?: Partial<SnapshotSenderLimits>;
}

/** Progress of a snapshot transfer to the follower, while the replica is in `snapshot`. */
export interface SnapshotTransfer {
  /** Index of the snapshot being sent. */
  readonly index: number;
  /** Bytes sent (each counted once). */
  readonly sent: number;
  /** Bytes the follower durably holds. */
  readonly acked: number;
  /** Total size, `null` until known. */
  readonly total: number | null;
}

/** Flow-control limits for one follower. */
export interface ReplicaLimits {
  /** Appends in flight at most (replicate state). */
  readonly maxInflight: number;
  /** Payload bytes in flight at most (replicate state). */
  readonly maxInflightBytes: number;
  /** Entries in one append at most. */
  readonly maxEntriesPerMessage: number;
  /** Payload bytes in one append at most (a single larger entry still goes alone). */
  readonly maxBytesPerMessage: number;
}

/** Input of the replica machine. */
export interface ReplicaInput extends ReplicaLimits {
  /** The follower this replica tracks. */
  readonly peerId: ServerId;
  /** The leader's node actor; receives `replica.progress`. */
  readonly parent: AnyActorRef;
  /** The leader's log. */
  readonly log: LogView;
  /** Where to start probing. The leader passes its last index after appending its no-op, so the first probe carries the no-op. */
  readonly next: number;
  /** The leader's commit index at spawn. */
  readonly commit: number;
  /** The leader's term; fixed for the replica's life. */
  readonly term: number;
  /** The leader's id (the `from` of snapshot chunks). Default `''`: snapshots then carry no sender. */
  readonly leaderId?: ServerId;
  /** The leader's snapshots; without them a follower that needs compacted entries waits in `snapshot`. */
  readonly snapshots?: ReplicaSnapshots | null;
}

/**
 * Context of the replica machine.
 *
 * @remarks Invariant: `0 <= match < next`. In `probe`, `next` is the index the
 * next probe starts at; in `replicate`, `next - 1` is the last index sent.
 * `inflights` is mutated in place (flow control is data, not events).
 */
export interface ReplicaContext extends ReplicaLimits {
  readonly peerId: ServerId;
  readonly parent: AnyActorRef;
  readonly log: LogView;
  /** The leader's term. */
  readonly term: number;
  /** Highest index known to match the leader's log. */
  readonly match: number;
  /** Next index to send. */
  readonly next: number;
  /** Leader's commit index as last told. */
  readonly commit: number;
  /** In `probe`: a probe is outstanding; don't send another until answered or a heartbeat passes. */
  readonly paused: boolean;
  /**
   * `match` when the previous heartbeat answer arrived with appends in flight, else `null`: no movement
   * across two answers that both found appends in flight means those appends were lost.
   */
  readonly matchAtLastBeat: number | null;
  /** Appends sent and not acknowledged. */
  readonly inflights: Inflights;
  readonly leaderId: ServerId;
  readonly snapshots: ReplicaSnapshots | null;
  /** In `snapshot.sending`: how far the transfer got; `null` otherwise. */
  readonly transfer: SnapshotTransfer | null;
}

/** Events a replica machine accepts (all sent by its leader). */
export type ReplicaEvent =
  | { readonly type: 'replica.entries'; readonly commit: number }
  | { readonly type: 'replica.heartbeat'; readonly commit: number; readonly round: number }
  | { readonly type: 'replica.appendResponse'; readonly message: AppendResponse }
  | { readonly type: 'replica.heartbeatResponse' }
  | { readonly type: 'replica.snapshotResponse'; readonly message: InstallSnapshotResponse }
  /** From the snapshot sender child. */
  | SnapshotProgressEvent
  | SnapshotFinishedEvent;

/** Reported to the leader whenever `match` advances. */
export interface ReplicaProgressEvent {
  readonly type: 'replica.progress';
  readonly peerId: ServerId;
  readonly match: number;
}

/** Intent: send entries `prevIndex + 1 .. lastIndex` to `to`. The actor fills in term, sender and the entries. */
export interface SendAppendIntent {
  readonly term: number;
  readonly to: ServerId;
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly lastIndex: number;
  readonly commit: number;
}

/** Intent: send a heartbeat carrying a commit index the follower can trust and the leader's round (echoed back). */
export interface SendHeartbeatIntent {
  readonly term: number;
  readonly to: ServerId;
  readonly commit: number;
  readonly round: number;
}

/** Intent (observation): a snapshot transfer to `peerId` moved on. */
export interface SnapshotProgressIntent extends SnapshotTransfer {
  readonly peerId: ServerId;
}

type Ctx = ReplicaContext;

/** The probe to send from `next`, or `null` when its previous entry is compacted. */
function probeFrom(ctx: Ctx): SendAppendIntent | null {
  const prevIndex = ctx.next - 1;
  const prevTerm = ctx.log.term(prevIndex);
  if (prevTerm === undefined) return null;
  const lastIndex = ctx.log.limit(ctx.next, ctx.maxEntriesPerMessage, ctx.maxBytesPerMessage);
  return { term: ctx.term, to: ctx.peerId, prevIndex, prevTerm, lastIndex, commit: ctx.commit };
}

/** Appends to stream in replicate state until the window is full; updates `inflights` in place. */
function streamFrom(ctx: Ctx): { intents: SendAppendIntent[]; next: number } {
  const intents: SendAppendIntent[] = [];
  let next = ctx.next;
  const last = ctx.log.lastIndex();
  while (next <= last && !ctx.inflights.full()) {
    const prevTerm = ctx.log.term(next - 1);
    if (prevTerm === undefined) break;
    const lastIndex = ctx.log.limit(next, ctx.maxEntriesPerMessage, ctx.maxBytesPerMessage);
    intents.push({ term: ctx.term, to: ctx.peerId, prevIndex: next - 1, prevTerm, lastIndex, commit: ctx.commit });
    ctx.inflights.add(lastIndex, ctx.log.bytes(next, lastIndex));
    next = lastIndex + 1;
  }
  return { intents, next };
}

/**
 * The replica progress machine: what a leader knows about one follower
 * (`match`, `next`) and what to send it next.
 *
 * @remarks The leader's per-follower `nextIndex` and `matchIndex` of the Raft
 * paper §5.3 (Figure 2), as states: `probe` (the match point is unknown; one
 * append at a time, walking `next` back with {@link nextAfterConflict}),
 * `replicate` (appends stream, bounded by the {@link Inflights} window,
 * thesis §10.2.2) and `snapshot` (the entries the follower needs were
 * compacted; a {@link snapshotSenderMachine} child sends the leader's latest
 * snapshot, paper §7, thesis §5).
 *
 * Invariant: `0 <= match < next`, and `match` never decreases: it is only
 * raised by a successful answer above it or an installed snapshot, and it is
 * what the leader's commit rule counts (§5.3). Transitions never throw; stale
 * and duplicate answers are dropped by guards (an acknowledgement at or below
 * `match`, a refusal for a probe that is no longer outstanding).
 *
 * One is spawned per peer when a node becomes leader and dies with the
 * leadership; the intents `sendAppend` and `sendHeartbeat` are placeholders
 * that the node actor provides.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate'
 * const replica = createActor(replicaMachine.provide({ actions: {
 *   sendAppend: (_, intent) => console.log('append', intent.prevIndex, intent.lastIndex),
 *   sendHeartbeat: (_, intent) => console.log('heartbeat', intent),
 * } }), { input: { peerId: 'n2', parent, log, next: log.lastIndex(), commit: 0, term: 3,
 *   maxInflight: 256, maxInflightBytes: 1 << 20, maxEntriesPerMessage: 64, maxBytesPerMessage: 1 << 20 } })
 * replica.start() // probes from `next`
 * ```
 */
export const replicaMachine = setup({
  types: {
    context: {} as ReplicaContext,
    events: {} as ReplicaEvent,
    input: {} as ReplicaInput,
  },
  actors: { snapshotSender: snapshotSenderMachine },
  actions: {
    /** Placeholder (observation): a snapshot transfer moved on. */
    snapshotProgress: (_: unknown, _intent: SnapshotProgressIntent) => {},
    /** Placeholder (observation): a snapshot transfer ended, either way. */
    snapshotFinished: (_: unknown, _result: SnapshotSendResult) => {},
    /** The follower installed the snapshot (or holds a newer one): it matches up to its index. */
    recordSnapshotMatch: assign(({ context, event }) => {
      const out = (event as { output?: SnapshotSendResult }).output;
      if (out === undefined) return {};
      const match = Math.max(context.match, out.index);
      return { match, next: Math.max(context.next, match + 1), paused: false };
    }),
    recordTransfer: assign(({ event }) =>
      event.type === 'snapshot.progress' ? { transfer: { index: event.index, sent: event.sent, acked: event.acked, total: event.total } } : {},
    ),
    /** Placeholder: the node actor records the append into the turn's Ready. */
    sendAppend: (_: unknown, _intent: SendAppendIntent) => {},
    /** Placeholder: the node actor records the heartbeat into the turn's Ready. */
    sendHeartbeat: (_: unknown, _intent: SendHeartbeatIntent) => {},
    /**
     * Forgets the appends in flight (on entering probe or replicate). Runs while the transition
     * resolves, like `stream` that fills the window, so `transition()` sees the same order.
     */
    resetInflights: enqueueActions(({ context }) => {
      context.inflights.reset();
    }),
    /** Sends one probe from `next` unless one is outstanding. */
    sendProbe: enqueueActions(({ context, enqueue }) => {
      if (context.paused) return;
      const probe = probeFrom(context);
      if (probe === null) return;
      enqueue({ type: 'sendAppend', params: probe });
      enqueue.assign({ paused: true });
    }),
    /** Streams appends from `next` until the window is full. */
    stream: enqueueActions(({ context, enqueue }) => {
      const { intents, next } = streamFrom(context);
      for (const intent of intents) enqueue({ type: 'sendAppend', params: intent });
      if (next !== context.next) enqueue.assign({ next });
    }),
    /** Takes an acknowledgement: `match` moves up, the window frees. */
    recordMatch: assign(({ context, event }) => {
      if (event.type !== 'replica.appendResponse') return {};
      const match = event.message.index;
      context.inflights.freeTo(match);
      return { match, next: Math.max(context.next, match + 1), paused: false };
    }),
    /** Walks `next` back after a refusal, using the follower's conflict hint. */
    backtrack: assign(({ context, event }) => {
      if (event.type !== 'replica.appendResponse') return {};
      const next = nextAfterConflict(context.log, event.message.index, event.message);
      return { paused: false, next: Math.max(context.match + 1, next) };
    }),
    /** Tells the leader that `match` advanced. */
    reportProgress: sendTo(
      ({ context }) => context.parent,
      ({ context }): ReplicaProgressEvent => ({ type: 'replica.progress', peerId: context.peerId, match: context.match }),
    ),
    rememberCommit: assign(({ event }) =>
      event.type === 'replica.entries' || event.type === 'replica.heartbeat' ? { commit: event.commit } : {},
    ),
  },
  guards: {
    isAdvance: ({ context, event }) =>
      event.type === 'replica.appendResponse' && event.message.success && event.message.index > context.match,
    isCurrentRefusal: ({ context, event }) =>
      event.type === 'replica.appendResponse' && !event.message.success && event.message.index === context.next - 1,
    isStreamRefusal: ({ context, event }) =>
      event.type === 'replica.appendResponse' && !event.message.success && event.message.index > context.match,
    lagsBehind: ({ context }) => context.match < context.log.lastIndex(),
    isStuck: ({ context }) => context.inflights.count > 0 && context.match === context.matchAtLastBeat,
    needsSnapshot: ({ context }) => context.log.term(context.next - 1) === undefined,
    hasSnapshot: ({ context }) => context.snapshots?.latest() != null,
    /** The transfer ended with the follower holding the snapshot (installed now, or a newer one already). */
    delivered: ({ event }) => {
      const out = (event as { output?: SnapshotSendResult }).output;
      return out !== undefined && (out.outcome === 'sent' || out.reason === 'stale');
    },
  },
}).createMachine({
  id: 'replica',
  context: ({ input }) => ({
    peerId: input.peerId,
    parent: input.parent,
    log: input.log,
    term: input.term,
    match: 0,
    next: Math.max(1, input.next),
    commit: input.commit,
    paused: false,
    matchAtLastBeat: null,
    inflights: new Inflights(input.maxInflight, input.maxInflightBytes),
    maxInflight: input.maxInflight,
    maxInflightBytes: input.maxInflightBytes,
    maxEntriesPerMessage: input.maxEntriesPerMessage,
    maxBytesPerMessage: input.maxBytesPerMessage,
    leaderId: input.leaderId ?? '',
    snapshots: input.snapshots ?? null,
    transfer: null,
  }),
  initial: 'probe',
  on: {
    'replica.heartbeat': {
      actions: [
        'rememberCommit',
        {
          type: 'sendHeartbeat',
          params: ({ context, event }) => ({
            term: context.term,
            to: context.peerId,
            commit: Math.min(context.match, context.commit),
            round: event.type === 'replica.heartbeat' ? event.round : 0,
          }),
        },
      ],
    },
  },
  states: {
    probe: {
      always: { guard: 'needsSnapshot', target: 'snapshot' },
      entry: ['resetInflights', 'sendProbe'],
      on: {
        'replica.entries': { actions: ['rememberCommit', 'sendProbe'] },
        'replica.appendResponse': [
          { guard: 'isAdvance', target: 'replicate', actions: ['recordMatch', 'reportProgress'] },
          { guard: 'isCurrentRefusal', target: 'probe', reenter: true, actions: 'backtrack' },
        ],
        'replica.heartbeatResponse': { guard: 'lagsBehind', actions: [assign({ paused: false }), 'sendProbe'] },
      },
    },
    replicate: {
      // The leader compacted entries this follower still needs (it lagged behind trailingLogs): send a snapshot.
      always: { guard: 'needsSnapshot', target: 'snapshot' },
      entry: [
        'resetInflights',
        assign({ next: ({ context }) => context.match + 1, matchAtLastBeat: null }),
        'stream',
      ],
      on: {
        'replica.entries': { actions: ['rememberCommit', 'stream'] },
        'replica.appendResponse': [
          { guard: 'isAdvance', actions: ['recordMatch', 'reportProgress', 'stream'] },
          { guard: 'isStreamRefusal', target: 'probe', actions: 'backtrack' },
        ],
        'replica.heartbeatResponse': [
          // Two heartbeat answers and no acknowledgement between them: appends were lost. Re-probe from match.
          { guard: 'isStuck', target: 'probe', actions: assign({ paused: false, next: ({ context }) => context.match + 1 }) },
          { actions: assign({ matchAtLastBeat: ({ context }) => (context.inflights.count > 0 ? context.match : null) }) },
        ],
      },
    },
    snapshot: {
      initial: 'starting',
      exit: assign({ transfer: null }),
      on: { 'replica.entries': { actions: 'rememberCommit' } },
      states: {
        starting: { always: [{ guard: 'hasSnapshot', target: 'sending' }, { target: 'waiting' }] },
        sending: {
          invoke: {
            id: 'sender',
            src: 'snapshotSender',
            input: ({ context, self }) => ({
              peerId: context.peerId,
              leaderId: context.leaderId,
              term: context.term,
              parent: self,
              snapshot: context.snapshots?.latest() as SnapshotSendSource,
              ...(context.snapshots?.limits === undefined ? {} : { limits: context.snapshots.limits }),
            }),
            onDone: [
              {
                guard: 'delivered',
                target: '#replica.probe',
                actions: ['recordSnapshotMatch', 'reportProgress', { type: 'snapshotFinished', params: ({ event }) => event.output }],
              },
              { target: 'waiting', actions: { type: 'snapshotFinished', params: ({ event }) => event.output } },
            ],
          },
          on: {
            'replica.snapshotResponse': {
              actions: sendTo('sender', ({ event }) => ({ type: 'snapshot.response' as const, message: (event as { message: InstallSnapshotResponse }).message })),
            },
            'snapshot.progress': {
              actions: [
                'recordTransfer',
                {
                  type: 'snapshotProgress',
                  params: ({ context, event }) => ({
                    peerId: context.peerId,
                    index: event.index,
                    sent: event.sent,
                    acked: event.acked,
                    total: event.total,
                  }),
                },
              ],
            },
          },
        },
        /** The last transfer aborted: try again once the follower answers a heartbeat. */
        waiting: { on: { 'replica.heartbeatResponse': { target: '#replica.probe' } } },
      },
    },
  },
});
