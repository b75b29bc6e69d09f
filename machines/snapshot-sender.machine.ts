/**
 * The snapshot sender machine: streams one snapshot to one follower in
 * chunks (§7, InstallSnapshot). The leader spawns one when a follower's
 * replica enters `snapshot` (the entries it needs were compacted) and it
 * dies with the leadership.
 *
 * It does no I/O. It asks for chunks with the `readChunk` intent (the actor
 * reads the snapshot source, cut with {@link chunksOf}, and answers with
 * `snapshot.chunk`), emits each InstallSnapshot message with the `sendChunk`
 * intent, and takes the follower's answers as `snapshot.response`. Its only
 * timer is the retransmission delay, a named XState delay, so it runs on the
 * clock injected into the actor.
 *
 * States: `streaming` → `sent` (the follower installed the snapshot) or
 * `aborted` (higher term, step-down, abort, too many retries, a source that
 * failed, a follower that refused).
 *
 * @module
 */
import { assign, enqueueActions, sendTo, setup, type AnyActorRef } from 'xstate';
import {
  ackThrough,
  chunkEnd,
  DEFAULT_SNAPSHOT_SENDER_LIMITS,
  gapResends,
  retransmitDelay,
  type ChunkInFlight,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type SnapshotSenderLimits,
} from './snapshot.js';
import type { Configuration, ServerId } from './types.js';
// For the TSDoc links only.
import type { chunksOf, invalidSenderLimits } from './snapshot.js';

/** The snapshot to send: its identity, its configuration, and its size when known in advance. */
export interface SnapshotSendSource {
  /** Last index the snapshot covers. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** Membership at `index`. */
  readonly configuration: Configuration;
  /** Index of the entry that carried `configuration` (0 for a bootstrap). */
  readonly configurationIndex: number;
  /** Total bytes, or `null` when the source does not know them before the end. */
  readonly size: number | null;
}

/** Input of the snapshot sender machine. */
export interface SnapshotSenderInput {
  /** The follower. */
  readonly peerId: ServerId;
  /** This node, the leader. */
  readonly leaderId: ServerId;
  /** The leader's term; fixed for the transfer. */
  readonly term: number;
  /** Receives `snapshot.progress` and `snapshot.finished`. */
  readonly parent: AnyActorRef;
  /** What is sent. */
  readonly snapshot: SnapshotSendSource;
  /**
   * Limits; missing fields take {@link DEFAULT_SNAPSHOT_SENDER_LIMITS}. The
   * caller validates them with {@link invalidSenderLimits} (the machine does
   * not throw).
   */
  readonly limits?: Partial<SnapshotSenderLimits>;
}

/** Why a transfer ended without the follower installing the snapshot. */
export type SnapshotAbortReason =
  /** An answer carried a higher term: this leader is deposed. */
  | 'higherTerm'
  /** The leader stepped down (sent as a `snapshot.abort` reason). */
  | 'stepDown'
  /** Aborted on request (`snapshot.abort` without a reason). */
  | 'aborted'
  /** One chunk was retransmitted more than `maxRetries` times. */
  | 'retries'
  /** Reading the snapshot failed (`snapshot.readFailed`). */
  | 'source'
  /** The follower already holds this snapshot or a newer one. */
  | 'stale'
  /** The follower refused for another reason (its storage failed, or it claims a term conflict). */
  | 'refused';

/**
 * Context of the snapshot sender machine.
 *
 * @remarks Invariants: `window` holds at most `limits.window` chunks, sorted
 * by `seq` and by `offset`, contiguous; `acked <= sent <= readOffset`;
 * `reading` means one `readChunk` is outstanding; once `sourceDone`,
 * `total === readOffset`. All of it is replaced, never mutated.
 */
export interface SnapshotSenderContext {
  readonly peerId: ServerId;
  readonly leaderId: ServerId;
  readonly term: number;
  readonly parent: AnyActorRef;
  readonly snapshot: SnapshotSendSource;
  readonly limits: SnapshotSenderLimits;
  /** Chunks sent and not acknowledged, oldest first. */
  readonly window: readonly ChunkInFlight[];
  /** `seq` of the next chunk to read. */
  readonly nextSeq: number;
  /** Bytes read from the source so far: the next chunk's offset. */
  readonly readOffset: number;
  /** A `readChunk` is outstanding. */
  readonly reading: boolean;
  /** The last chunk was read. */
  readonly sourceDone: boolean;
  /** The follower holds every byte below this (its latest `next`). */
  readonly acked: number;
  /** Bytes sent (or skipped because the follower held them), counted once. */
  readonly sent: number;
  /** Total size: known from the input, or once the last chunk was read; else `null`. */
  readonly total: number | null;
  /** Transmissions so far (numbers the latest as `tx`). */
  readonly tx: number;
  /** Retransmissions in a row without progress: the exponent of the delay. */
  readonly backoff: number;
  /** `tx` of the last timeout retransmission, until an answer makes progress; `null` otherwise. */
  readonly recoverTx: number | null;
  /** The follower reported holding bytes below this (a resumed transfer): chunks below it are skipped. */
  readonly skipTo: number;
  /** Why the transfer is ending, once known. */
  readonly failure: SnapshotAbortReason | null;
}

/** Events the snapshot sender accepts. */
export type SnapshotSenderEvent =
  /** The chunk asked for with `readChunk` (the actor computes `checksum`, the CRC-32 of `data`). */
  | { readonly type: 'snapshot.chunk'; readonly data: Uint8Array; readonly checksum: number; readonly last: boolean }
  /** Reading the source failed. */
  | { readonly type: 'snapshot.readFailed'; readonly error: unknown }
  /** The follower's answer to a chunk. */
  | { readonly type: 'snapshot.response'; readonly message: InstallSnapshotResponse }
  /** Stop now. */
  | { readonly type: 'snapshot.abort'; readonly reason?: 'stepDown' | 'aborted' };

/** Intent: read the next chunk (at most `maxBytes`) from the snapshot source and send it back as `snapshot.chunk`. */
export interface ReadChunkIntent {
  readonly peerId: ServerId;
  /** The chunk's number, for the actor's bookkeeping. */
  readonly seq: number;
  readonly maxBytes: number;
}

/** Sent to the parent whenever bytes are sent or acknowledged. */
export interface SnapshotProgressEvent {
  readonly type: 'snapshot.progress';
  readonly peerId: ServerId;
  /** The snapshot's index. */
  readonly index: number;
  /** Bytes sent (each counted once). */
  readonly sent: number;
  /** Bytes the follower durably holds. */
  readonly acked: number;
  /** Total bytes, `null` until known. */
  readonly total: number | null;
}

/** What a finished transfer reports: the machine's output, and the `snapshot.finished` event to the parent. */
export interface SnapshotSendResult {
  readonly peerId: ServerId;
  /** The snapshot's index and term. */
  readonly index: number;
  readonly term: number;
  /** `sent`: the follower installed it; `aborted`: see `reason`. */
  readonly outcome: 'sent' | 'aborted';
  /** Why it aborted; `null` when sent. */
  readonly reason: SnapshotAbortReason | null;
  /** Bytes the follower acknowledged. */
  readonly bytes: number;
}

/** Sent to the parent when the transfer ends either way. */
export interface SnapshotFinishedEvent extends SnapshotSendResult {
  readonly type: 'snapshot.finished';
}

type Ctx = SnapshotSenderContext;

/** The InstallSnapshot message carrying chunk `c`. */
function requestFor(ctx: Ctx, c: ChunkInFlight): InstallSnapshotRequest {
  return {
    type: 'installSnapshot',
    term: ctx.term,
    from: ctx.leaderId,
    to: ctx.peerId,
    snapshotIndex: ctx.snapshot.index,
    snapshotTerm: ctx.snapshot.term,
    configuration: c.offset === 0 ? ctx.snapshot.configuration : null,
    configurationIndex: ctx.snapshot.configurationIndex,
    seq: c.seq,
    offset: c.offset,
    data: c.data,
    checksum: c.checksum,
    done: c.last,
    size: c.last ? chunkEnd(c) : null,
  };
}

function resultOf(ctx: Ctx): SnapshotSendResult {
  return {
    peerId: ctx.peerId,
    index: ctx.snapshot.index,
    term: ctx.snapshot.term,
    outcome: ctx.failure === null ? 'sent' : 'aborted',
    reason: ctx.failure,
    bytes: ctx.acked,
  };
}

const responseOf = (event: SnapshotSenderEvent): InstallSnapshotResponse | null =>
  event.type === 'snapshot.response' ? event.message : null;

/**
 * The snapshot sender machine: streams one snapshot to one follower in
 * chunks, with a window, cumulative acknowledgements and retransmission.
 *
 * @remarks The InstallSnapshot RPC of the Raft paper §7 (Figure 13) and thesis
 * §5.1, sent when the entries a follower needs were compacted away. The paper
 * sends chunks one at a time by offset; here up to a window of chunks are in
 * flight, each chunk carries a CRC-32 the follower checks, and the follower's
 * answers say how far it has durably staged.
 *
 * **Window.** At most `limits.window` chunks are unacknowledged; a new chunk
 * is read only when there is room and no read is outstanding.
 *
 * **Answers** are cumulative (`next`: the follower holds every byte below it),
 * so a lost or reordered answer is covered by any later one; answers for
 * another snapshot, from an older term, or that move nothing are dropped.
 * A `gap` answer retransmits the chunks the follower lacks that were sent no
 * later than the refused one ({@link gapResends}), a `checksum` answer the
 * refused chunk. An answer with `next` past what was read (the follower kept
 * a staging from an earlier transfer) makes the sender skip those bytes.
 *
 * **Retransmission.** One timer, restarted whenever an answer moves `next`
 * forward: when it fires, the oldest unacknowledged chunk is sent again and
 * the delay doubles (capped, {@link retransmitDelay}); the first answer that
 * makes progress afterwards also resends what was sent before that timeout.
 * A chunk retransmitted more than `maxRetries` times aborts the transfer.
 *
 * **End.** `sent` when an answer says `installed`; `aborted` on a higher term
 * in an answer, `snapshot.abort`, `snapshot.readFailed`, a `stale`, `storage`
 * or `term` refusal, or too many retries. A follower's `next` never goes
 * back (it answers only for durably staged bytes), so a `gap` answer below
 * `acked` is an old one overtaken on the way and is ignored; a follower that
 * really lost its staging (it was superseded) keeps refusing, and the
 * transfer ends by running out of retries. Both send `snapshot.finished` to the parent and give the same
 * {@link SnapshotSendResult} as output.
 *
 * Intents are placeholders (`readChunk`, `sendChunk`); the actor provides
 * them with `machine.provide()`. Transitions never throw.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate'
 * const sender = createActor(snapshotSenderMachine.provide({ actions: {
 *   readChunk: (_, intent) => console.log('read', intent), // then: sender.send({ type: 'snapshot.chunk', ... })
 *   sendChunk: (_, message) => outbox.push(message),
 * } }), { input: { peerId: 'n2', leaderId: 'n1', term: 3, parent, snapshot }, clock })
 * sender.start()
 * ```
 */
export const snapshotSenderMachine = setup({
  types: {
    context: {} as SnapshotSenderContext,
    events: {} as SnapshotSenderEvent,
    input: {} as SnapshotSenderInput,
    output: {} as SnapshotSendResult,
  },
  delays: {
    /** The retransmission delay: `min(retryBaseMs × 2^backoff, retryMaxMs)`. */
    retransmit: ({ context }) => retransmitDelay(context.limits, context.backoff),
  },
  actions: {
    /** Placeholder: the actor reads the next chunk and answers with `snapshot.chunk`. */
    readChunk: (_: unknown, _intent: ReadChunkIntent) => {},
    /** Placeholder: the actor sends the message to the follower. */
    sendChunk: (_: unknown, _message: InstallSnapshotRequest) => {},
    /** Asks for the next chunk when the window has room and nothing is being read. */
    fill: enqueueActions(({ context, enqueue }) => {
      if (context.reading || context.sourceDone || context.failure !== null || context.window.length >= context.limits.window) return;
      enqueue({ type: 'readChunk', params: { peerId: context.peerId, seq: context.nextSeq, maxBytes: context.limits.chunkBytes } });
      enqueue.assign({ reading: true });
    }),
    /** Takes a chunk read: sends it (or skips it when the follower holds it already). */
    takeChunk: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'snapshot.chunk') return;
      const offset = context.readOffset;
      const end = offset + event.data.length;
      const base = {
        reading: false,
        nextSeq: context.nextSeq + 1,
        readOffset: end,
        sourceDone: event.last,
        total: event.last ? end : context.total,
        sent: Math.max(context.sent, end),
      };
      if (!event.last && end <= context.skipTo) {
        enqueue.assign(base);
        return;
      }
      const tx = context.tx + 1;
      const chunk: ChunkInFlight = { seq: context.nextSeq, offset, data: event.data, checksum: event.checksum, last: event.last, tx, attempts: 0 };
      enqueue.assign({ ...base, tx, window: [...context.window, chunk] });
      enqueue({ type: 'sendChunk', params: requestFor(context, chunk) });
    }),
    /** Takes an answer: frees acknowledged chunks, retransmits what a refusal or a timeout says is lost. */
    takeResponse: enqueueActions(({ context, event, enqueue }) => {
      const m = responseOf(event);
      if (m === null) return;
      const progress = m.next > context.acked;
      const window = ackThrough(context.window, m.next);
      const resend = new Set<number>();
      let failure: SnapshotAbortReason | null = null;
      if (!m.ok && m.reason === 'checksum') {
        if (window.some((c) => c.seq === m.seq)) resend.add(m.seq);
      } else if (!m.ok && m.reason === 'gap' && m.next >= context.acked) {
        // (A gap below `acked` is an old answer overtaken by later ones: the follower's `next` only grows.)
        for (const seq of gapResends(window, m.next, m.seq)) resend.add(seq);
      }
      let recoverTx = context.recoverTx;
      if (progress && recoverTx !== null) {
        // The first progress after a timeout: what went out before that retransmission is presumed lost too.
        for (const c of window) if (c.tx < recoverTx && (chunkEnd(c) > m.next || c.last)) resend.add(c.seq);
        recoverTx = null;
      }
      let tx = context.tx;
      const next = window.map((c) => {
        if (!resend.has(c.seq) || failure !== null) return c;
        const again: ChunkInFlight = { ...c, tx: ++tx, attempts: c.attempts + 1 };
        if (again.attempts > context.limits.maxRetries) failure = 'retries';
        return again;
      });
      if (failure === null) for (const c of next) if (resend.has(c.seq)) enqueue({ type: 'sendChunk', params: requestFor(context, c) });
      enqueue.assign({
        window: next,
        acked: Math.max(context.acked, m.next),
        skipTo: Math.max(context.skipTo, m.next),
        backoff: progress ? 0 : context.backoff,
        tx,
        recoverTx,
        failure,
      });
    }),
    /** The timer fired without progress: resend the oldest chunk, back off. */
    retransmitOldest: enqueueActions(({ context, enqueue }) => {
      const [oldest, ...rest] = context.window;
      if (oldest === undefined) return;
      const tx = context.tx + 1;
      const again: ChunkInFlight = { ...oldest, tx, attempts: oldest.attempts + 1 };
      if (again.attempts > context.limits.maxRetries) {
        enqueue.assign({ failure: 'retries' });
        return;
      }
      enqueue({ type: 'sendChunk', params: requestFor(context, again) });
      enqueue.assign({ window: [again, ...rest], tx, backoff: context.backoff + 1, recoverTx: tx });
    }),
    /** Tells the parent how far the transfer got. */
    reportProgress: sendTo(
      ({ context }) => context.parent,
      ({ context }): SnapshotProgressEvent => ({
        type: 'snapshot.progress',
        peerId: context.peerId,
        index: context.snapshot.index,
        sent: context.sent,
        acked: context.acked,
        total: context.total,
      }),
    ),
    /** Tells the parent the transfer ended. */
    reportFinished: sendTo(
      ({ context }) => context.parent,
      ({ context }): SnapshotFinishedEvent => ({ type: 'snapshot.finished', ...resultOf(context) }),
    ),
  },
  guards: {
    /** A chunk nobody asked for (no read outstanding): dropped. */
    isUnexpectedChunk: ({ context }) => !context.reading,
    isWindowEmpty: ({ context }) => context.window.length === 0,
    hasUnacked: ({ context }) => context.window.length > 0,
    hasFailed: ({ context }) => context.failure !== null,
    /** An answer for another snapshot or from an older term: dropped. */
    isForeign: ({ context, event }) => {
      const m = responseOf(event);
      return (
        m === null ||
        m.from !== context.peerId ||
        m.snapshotIndex !== context.snapshot.index ||
        m.snapshotTerm !== context.snapshot.term ||
        m.term < context.term
      );
    },
    isHigherTerm: ({ context, event }) => (responseOf(event)?.term ?? 0) > context.term,
    isInstalled: ({ event }) => {
      const m = responseOf(event);
      return m !== null && m.ok && m.installed;
    },
    isRefusal: ({ event }) => {
      const m = responseOf(event);
      return m !== null && !m.ok && (m.reason === 'stale' || m.reason === 'storage' || m.reason === 'term');
    },
    isAdvance: ({ context, event }) => (responseOf(event)?.next ?? 0) > context.acked,
  },
}).createMachine({
  id: 'snapshotSender',
  context: ({ input }) => ({
    peerId: input.peerId,
    leaderId: input.leaderId,
    term: input.term,
    parent: input.parent,
    snapshot: input.snapshot,
    limits: { ...DEFAULT_SNAPSHOT_SENDER_LIMITS, ...input.limits },
    window: [],
    nextSeq: 0,
    readOffset: 0,
    reading: false,
    sourceDone: false,
    acked: 0,
    sent: 0,
    total: input.snapshot.size,
    tx: 0,
    backoff: 0,
    recoverTx: null,
    skipTo: 0,
    failure: null,
  }),
  initial: 'streaming',
  on: {
    'snapshot.abort': {
      target: '.aborted',
      actions: assign({ failure: ({ event }) => (event.type === 'snapshot.abort' ? (event.reason ?? 'aborted') : 'aborted') }),
    },
  },
  states: {
    streaming: {
      entry: 'fill',
      always: { guard: 'hasFailed', target: 'aborted' },
      after: {
        retransmit: { guard: 'hasUnacked', target: 'streaming', reenter: true, actions: 'retransmitOldest' },
      },
      on: {
        'snapshot.chunk': [
          { guard: 'isUnexpectedChunk' },
          // Restart the timer: it found nothing to retransmit while the window was empty.
          { guard: 'isWindowEmpty', target: 'streaming', reenter: true, actions: ['takeChunk', 'reportProgress'] },
          { actions: ['takeChunk', 'reportProgress', 'fill'] },
        ],
        'snapshot.response': [
          { guard: 'isForeign' },
          { guard: 'isHigherTerm', target: 'aborted', actions: assign({ failure: 'higherTerm' }) },
          {
            guard: 'isInstalled',
            target: 'sent',
            actions: assign({
              acked: ({ context, event }) => Math.max(context.acked, responseOf(event)?.next ?? 0),
              window: [],
            }),
          },
          {
            guard: 'isRefusal',
            target: 'aborted',
            actions: assign({ failure: ({ event }) => (responseOf(event)?.reason === 'stale' ? 'stale' : 'refused') }),
          },
          // Progress restarts the retransmission timer (and refills the window on entry).
          { guard: 'isAdvance', target: 'streaming', reenter: true, actions: ['takeResponse', 'reportProgress'] },
          { actions: 'takeResponse' },
        ],
        'snapshot.readFailed': { target: 'aborted', actions: assign({ failure: 'source' }) },
      },
    },
    sent: { type: 'final', entry: 'reportFinished' },
    aborted: { type: 'final', entry: 'reportFinished' },
  },
  output: ({ context }) => resultOf(context),
});
