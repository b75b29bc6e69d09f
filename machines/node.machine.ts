/**
 * The node machine: one Raft server's role and term, as an explicit statechart.
 *
 * Every inbound message passes ONE term gate (root `msg.receive`) before any
 * role sees it: a higher term is adopted (and the node becomes follower), a
 * lower term is answered with ours or dropped. The gate then re-raises the
 * message as `msg.<type>` for the active role:
 *
 * - `follower` (`leaderless` | `led`): answers appends and votes; campaigns when
 *   its randomized election timeout passes without word from a leader. While
 *   `led` (heard from a leader within the minimum election timeout) it ignores
 *   vote and pre-vote requests of higher terms: leader stickiness.
 * - `preCandidate`: asks for pre-votes at `term + 1` without changing its term,
 *   so a partitioned node cannot disrupt a healthy cluster (thesis §9.6).
 * - `candidate`: increments the term, votes for itself, asks for votes (§5.2).
 * - `leader`: appends a no-op, spawns one replica machine per peer, heartbeats,
 *   commits by quorum for entries of its own term only (§5.4.2) and steps down
 *   when it has not heard from a quorum within an election timeout (check quorum).
 *   Three more parallel regions: `lease` (`expired` | `held`, lease reads),
 *   `transfer` (`idle` | `transferring`, leadership transfer) next to
 *   `heartbeat` and `quorum`.
 *
 * Reads (thesis §6.4): a `client.read` batch (one event per turn, however many
 * reads) or a follower's `readIndex` request records the commit index once the
 * leader has committed an entry of its term (until then it waits), then needs
 * one heartbeat round sent after it. Every heartbeat carries the leader's round
 * number, answers echo it, and a read is confirmed once a quorum echoed a
 * round at least its own. Reads arriving while a read round is in flight wait
 * for the next one, so concurrent reads share rounds. In lease mode a leader
 * whose lease is `held` confirms at once.
 *
 * Leadership transfer (thesis §3.10): `client.transfer` picks the target,
 * refuses proposals, waits until the target's match reaches the leader's last
 * index and sends it `timeoutNow`; the target campaigns at once with
 * `transfer: true` on its vote requests, which bypasses leader stickiness. The
 * transfer aborts after `transferTimeout`.
 *
 * Membership (thesis §4, paper §6; math in `membership.ts`): the latest
 * configuration in the log is in effect from when it is appended (`config.changed`
 * from the actor on followers and on truncation; at once on the leader's own
 * append) and never changes the role. The leader admits one `client.membership`
 * change at a time, only after committing an entry of its term; while the
 * configuration is joint every quorum needs majorities of both halves, and the
 * leader appends C_new once the joint entry commits. At each heartbeat tick it
 * samples learners added by `addVoter` and promotes one that stayed caught up
 * for a full election timeout. A leader outside its committed configuration
 * hands over (`timeoutNow` to the most up-to-date voter) and steps down. Vote
 * requests from servers outside the configuration are dropped at the term gate.
 *
 * The machine does no I/O: it records intents (`send`, `appendEntries`,
 * `appendProposals`, `commitTo`, `rejectProposals`) that the node actor
 * implements, and reads the log through a {@link LogView}.
 *
 * @module
 */
import { and, assign, enqueueActions, not, raise, setup, stateIn, stopChild, type ActorRefFrom } from 'xstate';
import { conflictHint, matches } from './log-matching.js';
import {
  allVoters,
  isCaughtUp,
  isMemberOf,
  isVoterIn,
  jointHasQuorum,
  jointQuorumIndex,
  jointTally,
  leaveJoint,
  membershipOf,
  peersOf,
  planChange,
  type MembershipChange,
  type MembershipRefusal,
} from './membership.js';
import {
  replicaMachine,
  type ReplicaLimits,
  type ReplicaProgressEvent,
  type ReplicaSnapshots,
} from './replica.machine.js';
import type { InstallSnapshotRequest, InstallSnapshotResponse } from './snapshot.js';
import { decideVote, type VoteDecision } from './vote.js';
import type {
  AppendRequest,
  AppendResponse,
  Configuration,
  EntryType,
  Heartbeat,
  HeartbeatResponse,
  LogEntry,
  LogView,
  RaftMessage,
  ReadIndexRequest,
  ReadIndexResponse,
  ServerId,
  TimeoutNow,
  VoteRequest,
  VoteResponse,
} from './types.js';

/** Input of the node machine: identity, restored hard state, membership and tunables. */
export interface NodeInput {
  /** This server. */
  readonly id: ServerId;
  /** The node's log (read-only to the machine). */
  readonly log: LogView;
  /** Restored current term. */
  readonly term: number;
  /** Restored vote in `term`. */
  readonly votedFor: ServerId | null;
  /** The latest configuration in the log (`null` on a fresh node), in effect from when it was appended. */
  readonly config?: Configuration | null;
  /** Its log index (0 when `config` is `null`). Default 0. */
  readonly configIndex?: number;
  /** Shorthand used when `config` is absent: the voter ids (each server's address is its id). */
  readonly voters?: readonly ServerId[];
  /** Shorthand used when `config` is absent: the learner ids. */
  readonly learners?: readonly ServerId[];
  /** A learner marked `autoPromote` is promoted once at most this many entries behind the leader's last index for a full election timeout. Default 1024. */
  readonly promotionThreshold?: number;
  /** Run a pre-vote round before each election (thesis §9.6). */
  readonly preVote: boolean;
  /** Step down as leader without contact from a quorum for an election timeout; ignore disruptive votes meanwhile. */
  readonly checkQuorum: boolean;
  /** Lower bound T of the election timeout; the drawn timeout lies in [T, 2T). */
  readonly electionTimeoutMs: number;
  /** Leader heartbeat period. */
  readonly heartbeatIntervalMs: number;
  /** Flow control for each replica. */
  readonly limits: ReplicaLimits;
  /** `'readIndex'` (default): every read needs a heartbeat round; `'lease'`: a leader within its lease confirms reads at once. */
  readonly readMode?: ReadMode;
  /** Lease length for `readMode: 'lease'`; must stay below the minimum election timeout. Default `0.9 * electionTimeoutMs`. */
  readonly leaseMs?: number;
  /** Index known committed at start: the restored snapshot's. Default 0. */
  readonly commitIndex?: number;
  /** The leader's snapshots, handed to each replica (for followers that need compacted entries). Default none. */
  readonly snapshots?: ReplicaSnapshots | null;
}

/** How a leader confirms reads: a heartbeat round per batch, or a lease (thesis §6.4.1). */
export type ReadMode = 'readIndex' | 'lease';

/**
 * A read the leader has not confirmed yet.
 *
 * @remarks `index` is `null` until the leader has committed an entry of its
 * term; `round` is the first heartbeat round that can confirm it (one sent
 * after `index` was recorded).
 */
export interface PendingRead {
  /** The actor's batch id (local) or the follower's request id (remote). */
  readonly id: number;
  /** The follower that asked, or `null` for this node's own reads. */
  readonly from: ServerId | null;
  /** The read index, once known. */
  readonly index: number | null;
  /** Round that confirms it. */
  readonly round: number;
}

/** A confirmed read: the state machine may be read once it applied `index`. */
export interface ConfirmedRead {
  readonly id: number;
  readonly index: number;
}

/** Intent: fail reads; this node is not (or no longer) the leader. */
export interface RejectReadsIntent {
  readonly ids: readonly number[];
  /** The leader this node knows of, or `null`. */
  readonly leaderId: ServerId | null;
}

/** Why a leadership transfer did not start or did not finish. */
export type TransferRefusal = 'notLeader' | 'busy' | 'self' | 'notVoter' | 'noTarget' | 'timeout';

/** The replica actors a leader runs, by peer id. */
export type ReplicaRefs = Readonly<Record<ServerId, ActorRefFrom<typeof replicaMachine>>>;

/**
 * Context of the node machine. Numbers and ids only: entries live in the log.
 *
 * @remarks Invariants: `commitIndex <= log.lastIndex()`; `commitIndex` never
 * decreases; `votedFor` is reset exactly when `term` increases; `leaderId`
 * is `id` exactly in state `leader`.
 */
export interface NodeContext {
  readonly id: ServerId;
  readonly log: LogView;
  readonly term: number;
  readonly votedFor: ServerId | null;
  readonly leaderId: ServerId | null;
  readonly commitIndex: number;
  /** The latest configuration in the log; `null` on a fresh node. */
  readonly config: Configuration | null;
  /** Log index of `config`; a change is in flight while it exceeds `commitIndex`. */
  readonly configIndex: number;
  /** Voters of `config` (of C_new while joint). */
  readonly voters: readonly ServerId[];
  /** While `config` is joint: the voters of C_old; `null` otherwise. */
  readonly oldVoters: readonly ServerId[] | null;
  /** Learners of `config`. */
  readonly learners: readonly ServerId[];
  /** Learners marked `autoPromote`. */
  readonly staging: readonly ServerId[];
  /** See {@link NodeInput.promotionThreshold}. */
  readonly promotionThreshold: number;
  /** Leader: consecutive heartbeat ticks each staging learner was caught up and heard from. */
  readonly catchUp: Readonly<Record<ServerId, number>>;
  /** Leader: staging learners heard from since the last heartbeat tick. */
  readonly heard: Readonly<Record<ServerId, true>>;
  /** Leader: the current transfer is a hand-over (this leader is no longer a voter); it steps down when it ends. */
  readonly handover: boolean;
  /** Votes (or pre-votes) received in the current election. */
  readonly votes: Readonly<Record<ServerId, boolean>>;
  /** Leader: the replica machine of each peer. */
  readonly replicas: ReplicaRefs;
  /** Leader: highest index known replicated on each member (itself: durably written). */
  readonly match: Readonly<Record<ServerId, number>>;
  /** Leader: members heard from in the current check-quorum window. */
  readonly active: Readonly<Record<ServerId, true>>;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly limits: ReplicaLimits;
  /** See {@link NodeInput.snapshots}. */
  readonly snapshots: ReplicaSnapshots | null;
  readonly readMode: ReadMode;
  readonly leaseMs: number;
  /** Leader: heartbeat rounds sent in this term (the last round's number). */
  readonly round: number;
  /** Leader: highest round each peer echoed. */
  readonly beats: Readonly<Record<ServerId, number>>;
  /** Leader: reads not yet confirmed, oldest first. */
  readonly reads: readonly PendingRead[];
  /** Leader: the round whose quorum confirmation started the current lease (the actor times the lease from its send). */
  readonly leaseRound: number;
  /** Leader: the lease is held (lease mode only). */
  readonly leaseHeld: boolean;
  /** Leader: the voter leadership is being handed to, or `null`. */
  readonly transferTarget: ServerId | null;
  /** Leader: how long the current transfer may take. */
  readonly transferTimeoutMs: number;
  /** Leader: `timeoutNow` went out this term; lease reads stay off for the rest of the term (the target may win at any time). */
  readonly transferSent: boolean;
  /** Candidate: this campaign follows a `timeoutNow`; its vote requests carry `transfer: true`. */
  readonly campaignTransfer: boolean;
  /**
   * Lease mode: for the first minimum election timeout after start this node ignores (pre-)vote
   * requests, as if it had just heard from a leader. A follower that acknowledged a leader's round
   * and restarted therefore cannot help elect a new leader while that leader's lease may run.
   */
  readonly startQuiet: boolean;
}

/** A message after the term gate, addressed to the active role. */
export type RoutedEvent =
  | { readonly type: 'msg.vote'; readonly message: VoteRequest }
  | { readonly type: 'msg.preVote'; readonly message: VoteRequest }
  | { readonly type: 'msg.voteResponse'; readonly message: VoteResponse }
  | { readonly type: 'msg.preVoteResponse'; readonly message: VoteResponse }
  | { readonly type: 'msg.append'; readonly message: AppendRequest }
  | { readonly type: 'msg.appendResponse'; readonly message: AppendResponse }
  | { readonly type: 'msg.heartbeat'; readonly message: Heartbeat }
  | { readonly type: 'msg.heartbeatResponse'; readonly message: HeartbeatResponse }
  | { readonly type: 'msg.readIndex'; readonly message: ReadIndexRequest }
  | { readonly type: 'msg.readIndexResponse'; readonly message: ReadIndexResponse }
  | { readonly type: 'msg.timeoutNow'; readonly message: TimeoutNow }
  | { readonly type: 'msg.installSnapshot'; readonly message: InstallSnapshotRequest }
  | { readonly type: 'msg.installSnapshotResponse'; readonly message: InstallSnapshotResponse };

/** Events the node machine accepts. */
export type NodeEvent =
  | { readonly type: 'msg.receive'; readonly message: RaftMessage }
  | RoutedEvent
  /** Entries to append as leader: `normal` by default; `restore` for the records of `RaftNode.restore`. */
  | { readonly type: 'client.propose'; readonly payloads: readonly Uint8Array[]; readonly entryType?: 'normal' | 'restore' }
  | { readonly type: 'client.campaign' }
  | { readonly type: 'client.bootstrap'; readonly config: Configuration }
  | { readonly type: 'storage.synced'; readonly index: number; readonly term: number }
  /** The latest configuration in the log changed (a follower appended one, or a truncation reverted one). */
  | { readonly type: 'config.changed'; readonly config: Configuration | null; readonly index: number }
  /** A membership change request (thesis §4). */
  | { readonly type: 'client.membership'; readonly change: MembershipChange; readonly force: boolean }
  /** Internal (raised by the leader): it is no longer a voter and its configuration is committed; hand leadership over. */
  | { readonly type: 'leader.handover' }
  /** Internal (raised by the leader): step down now. */
  | { readonly type: 'leader.stepDown' }
  /** Internal (raised by the leader): append this configuration entry. */
  | { readonly type: 'leader.appendConfig'; readonly config: Configuration; readonly origin: ConfigOrigin }
  /** The turn's reads, as one batch with one id. */
  | { readonly type: 'client.read'; readonly id: number }
  /** Hand leadership to `target`, or to the most up-to-date voter when `null`. */
  | { readonly type: 'client.transfer'; readonly target: ServerId | null; readonly timeoutMs?: number }
  /** Internal (raised by the leader): a quorum confirmed a round; the lease restarts. */
  | { readonly type: 'lease.renew' }
  /** A snapshot covering entries up to `index` was installed here (they are committed). */
  | { readonly type: 'snapshot.installed'; readonly index: number }
  | ReplicaProgressEvent;

/** Intent: follower appends `entries` after `prevIndex`, truncating only a conflicting suffix (§5.3). */
export interface AppendEntriesIntent {
  readonly prevIndex: number;
  readonly entries: readonly LogEntry[];
}

/** Why the leader appends a configuration entry. */
export type ConfigOrigin = 'client' | 'promotion' | 'leaveJoint';

/** Intent: leader appends a configuration entry of its term; the configuration is in effect from now on. */
export interface AppendConfigIntent {
  readonly term: number;
  readonly config: Configuration;
  readonly origin: ConfigOrigin;
}

/** Intent: a membership change request is refused. */
export interface RefuseChangeIntent {
  readonly refusal: MembershipRefusal | 'notLeader';
  /** Human-readable reason. */
  readonly detail: string;
  /** The leader this node knows of, or `null`. */
  readonly leaderId: ServerId | null;
}

/** Intent: leader appends new entries of its term (one per payload). */
export interface AppendProposalsIntent {
  readonly term: number;
  readonly type: EntryType;
  readonly payloads: readonly Uint8Array[];
}

type Ctx = NodeContext;
type Ev = NodeEvent;

const EMPTY = new Uint8Array(0);

/** The per-term leader bookkeeping (read rounds, lease, transfer), fresh: at start and whenever a node becomes leader. */
function freshLeaderState(): Pick<
  NodeContext,
  | 'round'
  | 'beats'
  | 'reads'
  | 'leaseRound'
  | 'leaseHeld'
  | 'transferTarget'
  | 'transferSent'
  | 'campaignTransfer'
  | 'catchUp'
  | 'heard'
  | 'handover'
> {
  return {
    round: 0,
    beats: {},
    reads: [],
    leaseRound: 0,
    leaseHeld: false,
    transferTarget: null,
    transferSent: false,
    campaignTransfer: false,
    catchUp: {},
    heard: {},
    handover: false,
  };
}

/** The context fields derived from a configuration. */
function configFields(
  config: Configuration | null,
  index: number,
): Pick<NodeContext, 'config' | 'configIndex' | 'voters' | 'oldVoters' | 'learners' | 'staging'> {
  const m = membershipOf(config);
  return { config, configIndex: index, voters: m.voters, oldVoters: m.oldVoters, learners: m.learners, staging: m.staging };
}

/** A configuration from bare ids (addresses = ids), or `null` when there are none. */
function configOfIds(voters: readonly ServerId[] = [], learners: readonly ServerId[] = []): Configuration | null {
  if (voters.length === 0 && learners.length === 0) return null;
  return {
    servers: [
      ...voters.map((id) => ({ id, address: id, suffrage: 'voter' as const })),
      ...learners.map((id) => ({ id, address: id, suffrage: 'learner' as const })),
    ],
  };
}

/** Leader: a configuration change may be admitted now (thesis §4.1 and its one-change-at-a-time rule). */
function changeBlocker(ctx: Ctx): { refusal: MembershipRefusal; detail: string } | null {
  if (!committedOwnTerm(ctx)) return { refusal: 'leaderNotReady', detail: `the leader has not committed an entry of term ${ctx.term} yet; retry shortly` };
  if (ctx.oldVoters !== null) return { refusal: 'changeInProgress', detail: 'the cluster is in a joint configuration' };
  if (ctx.configIndex > ctx.commitIndex) return { refusal: 'changeInProgress', detail: `configuration entry ${ctx.configIndex} is not committed yet` };
  if (ctx.transferTarget !== null) return { refusal: 'transferInProgress', detail: `leadership is being handed to ${ctx.transferTarget}` };
  return null;
}

/** Leader: no longer a voter, its configuration committed and plain: it must hand leadership over. */
function needsHandover(ctx: Ctx): boolean {
  return ctx.oldVoters === null && ctx.configIndex <= ctx.commitIndex && ctx.config !== null && !isVoterIn(ctx, ctx.id);
}

function voteDecision(ctx: Ctx, m: VoteRequest): VoteDecision {
  return decideVote(
    {
      term: ctx.term,
      votedFor: ctx.votedFor,
      leaderId: ctx.leaderId,
      lastIndex: ctx.log.lastIndex(),
      lastTerm: ctx.log.lastTerm(),
    },
    { preVote: m.type === 'preVote', term: m.term, candidate: m.from, lastIndex: m.lastLogIndex, lastTerm: m.lastLogTerm },
  );
}

function voteRequests(ctx: Ctx, type: 'vote' | 'preVote', term: number): RaftMessage[] {
  const lastLogIndex = ctx.log.lastIndex();
  const lastLogTerm = ctx.log.lastTerm();
  return allVoters(ctx)
    .filter((v) => v !== ctx.id)
    .map((to) => ({ type, term, from: ctx.id, to, lastLogIndex, lastLogTerm }));
}

function msgOf(event: Ev): RaftMessage | undefined {
  return 'message' in event ? event.message : undefined;
}

/** Whether the leader has committed an entry of its own term (§5.4.2, §6.4: only then is its commit index current). */
function committedOwnTerm(ctx: Ctx): boolean {
  return ctx.commitIndex > 0 && ctx.log.term(ctx.commitIndex) === ctx.term;
}

/** The highest round a quorum of voters echoed (the leader counts its own latest round). */
function quorumRound(ctx: Ctx, round: number): number {
  return jointQuorumIndex(ctx, { ...ctx.beats, [ctx.id]: round });
}

/** The transfer target for a request: the given voter, or the voter with the highest match. */
function pickTarget(ctx: Ctx, wanted: ServerId | null): { target: ServerId } | { refusal: TransferRefusal } {
  if (wanted !== null) {
    if (wanted === ctx.id) return { refusal: 'self' };
    if (!ctx.voters.includes(wanted)) return { refusal: 'notVoter' };
    return { target: wanted };
  }
  let best: ServerId | null = null;
  let bestMatch = -1;
  for (const v of ctx.voters) {
    if (v === ctx.id) continue;
    const m = ctx.match[v] ?? 0;
    if (m > bestMatch) {
      best = v;
      bestMatch = m;
    }
  }
  return best === null ? { refusal: 'noTarget' } : { target: best };
}

/**
 * The node machine: one Raft server's role (follower, pre-candidate, candidate,
 * leader) and term as an explicit statechart.
 *
 * @remarks Roles and transitions are those of the Raft paper §5.1-§5.2
 * (Figure 4), with PreVote and leader stickiness (thesis §9.6). Every inbound
 * message passes one term gate first: a higher term is adopted and the node
 * becomes follower, a lower one is answered with the current term (paper §5.1,
 * Figure 2 "Rules for Servers").
 *
 * The safety properties of the paper's Figure 3 rest on its guards:
 * - Election Safety (§5.2): one vote per term ({@link decideVote}, `votedFor`
 *   reset only when the term increases), and a win needs a majority
 *   ({@link jointTally}, both halves while joint, §6).
 * - Leader Append-Only and Log Matching (§5.3): a follower accepts entries only
 *   after the consistency check ({@link matches}); the leader never rewrites its log.
 * - Leader Completeness (§5.4): votes go only to candidates whose log is at
 *   least as up-to-date ({@link isUpToDate}, §5.4.1), and the leader advances
 *   `commitIndex` only to a quorum index whose entry is of its own term (§5.4.2).
 * - `commitIndex` never decreases.
 *
 * Reads follow thesis §6.4 (read index, optional leases), leadership transfer
 * thesis §3.10, membership changes thesis §4 (single-server changes, joint
 * consensus for replacements, learners caught up before promotion), and a
 * leader that has not heard from a quorum within an election timeout steps
 * down (check quorum, thesis §6.2).
 *
 * Intents are placeholders here; `actors/node.actor.ts` provides
 * them with `machine.provide()`. Delays (`electionTimeout`, `leaseTimeout`,
 * `heartbeatInterval`) come from context; the actor overrides
 * `electionTimeout` with a draw in [T, 2T) from the injected random.
 * The machine does no I/O and reads the log through a {@link LogView}.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate'
 * const actor = createActor(nodeMachine.provide({ actions: { send: (_, m) => outbox.push(...m) } }),
 *   { input, clock })
 * actor.start()
 * actor.send({ type: 'msg.receive', message })
 * ```
 */
export const nodeMachine = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as NodeInput,
  },
  actors: { replica: replicaMachine },
  delays: {
    electionTimeout: ({ context }) => context.electionTimeoutMs,
    leaseTimeout: ({ context }) => context.electionTimeoutMs,
    heartbeatInterval: ({ context }) => context.heartbeatIntervalMs,
    /** How long the read lease lasts from now. The actor overrides it to count from the send time of round `leaseRound`. */
    readLease: ({ context }) => context.leaseMs,
    /** How long a leadership transfer may take before it aborts: the request's `timeoutMs`, else the election timeout. */
    transferTimeout: ({ context }) => context.transferTimeoutMs,
  },
  actions: {
    /** Intent: send messages (the actor holds back those that depend on unsynced state). */
    send: (_: unknown, _messages: readonly RaftMessage[]) => {},
    /** Intent: follower log append (§5.3). */
    appendEntries: (_: unknown, _intent: AppendEntriesIntent) => {},
    /** Intent: leader log append of new entries. */
    appendProposals: (_: unknown, _intent: AppendProposalsIntent) => {},
    /** Intent: entries up to `index` are committed; apply them. */
    commitTo: (_: unknown, _index: number) => {},
    /** Intent: these reads may be served once the state machine applied their index. */
    confirmReads: (_: unknown, _reads: readonly ConfirmedRead[]) => {},
    /** Intent: fail these reads; this node cannot confirm them. */
    rejectReads: (_: unknown, _intent: RejectReadsIntent) => {},
    /** Intent: fail the turn's proposals; leadership is being handed to `target`. */
    refuseProposals: (_: unknown, _target: ServerId) => {},
    /** Intent (observation): a transfer to `target` started. */
    transferStarted: (_: unknown, _target: ServerId) => {},
    /** Intent: a transfer request was refused, or a transfer aborted (`'timeout'`); the leader leads on. */
    transferFailed: (_: unknown, _refusal: TransferRefusal) => {},
    /** Intent: this leader stepped down while handing leadership to `target`. */
    transferSteppedDown: (_: unknown, _target: ServerId) => {},
    /** Intent (observation): the read lease expired without renewal. */
    leaseExpired: () => {},
    /** Intent: fail the turn's proposals; this node is not the leader. */
    rejectProposals: (_: unknown, _leaderId: ServerId | null) => {},
    /** Intent: append a configuration entry (leader). */
    appendConfig: (_: unknown, _intent: AppendConfigIntent) => {},
    /** Intent: refuse a membership change request. */
    refuseChange: (_: unknown, _intent: RefuseChangeIntent) => {},
    /** Intent: follower hands a snapshot chunk to its receiver (which answers it once staged, §7). */
    installSnapshot: (_: unknown, _message: InstallSnapshotRequest) => {},

    /** Re-raises a gated message for the active role. */
    route: raise(({ event }) => {
      const m = msgOf(event);
      return (m === undefined ? { type: 'client.campaign' } : { type: `msg.${m.type}`, message: m }) as NodeEvent;
    }),
    /** Term gate: a higher term is adopted, the vote cleared, the sender's leadership noted (§5.1). */
    adoptTerm: assign(({ event }) => {
      const m = msgOf(event);
      if (m === undefined) return {};
      const leading = m.type === 'append' || m.type === 'heartbeat' || m.type === 'installSnapshot';
      return { term: m.term, votedFor: null, leaderId: leading ? m.from : null };
    }),
    /** Term gate: a message from an older term gets our term back, so a stale leader or candidate steps down. */
    answerStale: enqueueActions(({ context, event, enqueue }) => {
      const m = msgOf(event);
      if (m === undefined) return;
      const base = { term: context.term, from: context.id, to: m.from };
      let reply: RaftMessage | null = null;
      if (m.type === 'append') reply = { ...base, type: 'appendResponse', success: false, index: m.prevLogIndex, hintTerm: 0, hintIndex: 0 };
      else if (m.type === 'heartbeat') reply = { ...base, type: 'heartbeatResponse' };
      else if (m.type === 'vote') reply = { ...base, type: 'voteResponse', granted: false, reason: 'term' };
      else if (m.type === 'preVote') reply = { ...base, type: 'preVoteResponse', granted: false, reason: 'term' };
      else if (m.type === 'readIndex') reply = { ...base, type: 'readIndexResponse', requestId: m.requestId, success: false, index: 0 };
      else if (m.type === 'installSnapshot') {
        reply = {
          ...base,
          type: 'installSnapshotResponse',
          snapshotIndex: m.snapshotIndex,
          snapshotTerm: m.snapshotTerm,
          seq: m.seq,
          ok: false,
          reason: 'term',
          next: 0,
          installed: false,
        };
      }
      if (reply !== null) enqueue({ type: 'send', params: [reply] });
    }),
    answerVote: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'msg.vote' && event.type !== 'msg.preVote') return;
      const m = event.message;
      const decision = voteDecision(context, m);
      const preVote = m.type === 'preVote';
      if (decision.granted && !preVote) enqueue.assign({ votedFor: m.from });
      const reply: VoteResponse = {
        type: preVote ? 'preVoteResponse' : 'voteResponse',
        term: decision.granted && preVote ? m.term : context.term,
        from: context.id,
        to: m.from,
        granted: decision.granted,
        ...(decision.granted ? {} : { reason: decision.reason }),
      };
      enqueue({ type: 'send', params: [reply] });
    }),
    setLeader: assign(({ event }) => {
      const m = msgOf(event);
      return m === undefined ? {} : { leaderId: m.from };
    }),
    /** Follower side of AppendEntries (§5.3): consistency check, append, commit, answer. */
    acceptAppend: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'msg.append') return;
      const m = event.message;
      const base = { type: 'appendResponse' as const, term: context.term, from: context.id, to: m.from };
      let prevIndex = m.prevLogIndex;
      let prevTerm = m.prevLogTerm;
      let entries = m.entries;
      if (prevIndex < context.commitIndex) {
        // Entries at or below our commit index are committed and, by Log Matching, identical: skip them.
        const skip = Math.min(context.commitIndex - prevIndex, entries.length);
        if (prevIndex + entries.length <= context.commitIndex) {
          enqueue({ type: 'send', params: [{ ...base, success: true, index: context.commitIndex, hintTerm: 0, hintIndex: 0 }] });
          return;
        }
        prevTerm = entries[skip - 1]?.term ?? prevTerm;
        prevIndex += skip;
        entries = entries.slice(skip);
      }
      if (!matches(context.log, prevIndex, prevTerm)) {
        const hint = conflictHint(context.log, m.prevLogIndex);
        enqueue({ type: 'send', params: [{ ...base, success: false, index: m.prevLogIndex, ...hint }] });
        return;
      }
      if (entries.length > 0) enqueue({ type: 'appendEntries', params: { prevIndex, entries } });
      const lastNew = prevIndex + entries.length;
      const commit = Math.min(m.leaderCommit, lastNew);
      if (commit > context.commitIndex) {
        enqueue.assign({ commitIndex: commit });
        enqueue({ type: 'commitTo', params: commit });
      }
      enqueue({ type: 'send', params: [{ ...base, success: true, index: lastNew, hintTerm: 0, hintIndex: 0 }] });
    }),
    acceptHeartbeat: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'msg.heartbeat') return;
      const m = event.message;
      const commit = Math.min(m.commit, context.log.lastIndex());
      if (commit > context.commitIndex) {
        enqueue.assign({ commitIndex: commit });
        enqueue({ type: 'commitTo', params: commit });
      }
      const reply: HeartbeatResponse = m.round === undefined
        ? { type: 'heartbeatResponse', term: context.term, from: context.id, to: m.from }
        : { type: 'heartbeatResponse', term: context.term, from: context.id, to: m.from, round: m.round };
      enqueue({ type: 'send', params: [reply] });
    }),
    startPreCampaign: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ leaderId: null, votes: { [context.id]: true } });
      enqueue({ type: 'send', params: voteRequests(context, 'preVote', context.term + 1) });
    }),
    startCampaign: enqueueActions(({ context, enqueue }) => {
      const term = context.term + 1;
      enqueue.assign({ term, votedFor: context.id, leaderId: null, votes: { [context.id]: true }, campaignTransfer: false });
      const requests = voteRequests({ ...context, term }, 'vote', term);
      enqueue({ type: 'send', params: context.campaignTransfer ? requests.map((r) => ({ ...r, transfer: true })) : requests });
    }),
    recordVote: assign(({ context, event }) => {
      if (event.type !== 'msg.voteResponse' && event.type !== 'msg.preVoteResponse') return {};
      if (!isVoterIn(context, event.message.from)) return {};
      return { votes: { ...context.votes, [event.message.from]: event.message.granted } };
    }),
    /** §5.2 and §8: a new leader appends a no-op, then probes every peer from its last index. */
    becomeLeader: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({
        leaderId: context.id,
        match: {},
        active: {},
        votes: {},
        ...freshLeaderState(),
      });
      enqueue({ type: 'appendProposals', params: { term: context.term, type: 'noop', payloads: [EMPTY] } });
      enqueue('spawnMissingReplicas');
    }),
    /** Leader: one replica machine per peer that has none (all of them on election). */
    spawnMissingReplicas: assign(({ context, spawn, self }) => {
      const replicas: Record<ServerId, ActorRefFrom<typeof replicaMachine>> = { ...context.replicas };
      const next = context.log.lastIndex();
      for (const peer of peersOf(context, context.id)) {
        if (replicas[peer] !== undefined) continue;
        replicas[peer] = spawn('replica', {
          id: `replica:${peer}`,
          systemId: `replica:${peer}`,
          input: {
            peerId: peer,
            parent: self,
            log: context.log,
            next,
            commit: context.commitIndex,
            term: context.term,
            leaderId: context.id,
            snapshots: context.snapshots,
            ...context.limits,
          },
        });
      }
      return { replicas };
    }),
    stopReplicas: enqueueActions(({ context, enqueue }) => {
      for (const ref of Object.values(context.replicas)) enqueue(stopChild(ref));
      enqueue.assign({ replicas: {}, match: {}, active: {} });
    }),
    appendBatch: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'client.propose') return;
      enqueue({ type: 'appendProposals', params: { term: context.term, type: event.entryType ?? 'normal', payloads: event.payloads } });
      enqueue('notifyReplicas');
    }),
    notifyReplicas: enqueueActions(({ context, enqueue }) => {
      for (const ref of Object.values(context.replicas)) enqueue.sendTo(ref, { type: 'replica.entries', commit: context.commitIndex });
    }),
    /** A new heartbeat round to every peer; a quorum of echoes confirms the reads waiting for it. */
    broadcastHeartbeat: enqueueActions(({ context, enqueue }) => {
      const round = context.round + 1;
      enqueue.assign({ round });
      for (const ref of Object.values(context.replicas)) enqueue.sendTo(ref, { type: 'replica.heartbeat', commit: context.commitIndex, round });
      enqueue('trackCatchUp');
      enqueue('checkHandover');
    }),
    /** Notes the round a peer echoed. */
    recordBeat: assign(({ context, event }) => {
      if (event.type !== 'msg.heartbeatResponse') return {};
      const { from, round } = event.message;
      if (round === undefined || round > context.round || (context.beats[from] ?? 0) >= round) return {};
      return { beats: { ...context.beats, [from]: round } };
    }),
    /** Leader: queues a local read batch or a follower's request (§6.4). */
    queueRead: enqueueActions(({ context, event, enqueue }) => {
      let read: PendingRead;
      if (event.type === 'client.read') read = { id: event.id, from: null, index: null, round: 0 };
      else if (event.type === 'msg.readIndex') read = { id: event.message.requestId, from: event.message.from, index: null, round: 0 };
      else return;
      enqueue.assign({ reads: [...context.reads, read] });
      enqueue('processReads');
    }),
    /**
     * Leader: records read indexes once an entry of this term committed, confirms the reads a
     * quorum round (or the lease) covers, and starts a round for waiting reads when none is in flight.
     */
    processReads: enqueueActions(({ context, enqueue }) => {
      if (context.reads.length === 0) return;
      let round = context.round;
      const current = committedOwnTerm(context);
      const lease = context.readMode === 'lease' && context.leaseHeld && !context.transferSent;
      let reads = context.reads.map((r) => (r.index === null && current ? { ...r, index: context.commitIndex, round: round + 1 } : r));
      const confirm = (): void => {
        const q = quorumRound(context, round);
        const done: PendingRead[] = [];
        const rest: PendingRead[] = [];
        for (const r of reads) (r.index !== null && (lease || r.round <= q) ? done : rest).push(r);
        if (done.length === 0) return;
        reads = rest;
        const local = done.filter((r) => r.from === null).map((r) => ({ id: r.id, index: r.index as number }));
        if (local.length > 0) enqueue({ type: 'confirmReads', params: local });
        const remote: RaftMessage[] = done
          .filter((r) => r.from !== null)
          .map((r) => ({ type: 'readIndexResponse', term: context.term, from: context.id, to: r.from as ServerId, requestId: r.id, success: true, index: r.index as number }));
        if (remote.length > 0) enqueue({ type: 'send', params: remote });
      };
      confirm();
      const waiting = reads.some((r) => r.index !== null && r.round > round);
      const inFlight = reads.some((r) => r.index !== null && r.round <= round);
      if (waiting && !inFlight) {
        round++;
        for (const ref of Object.values(context.replicas)) enqueue.sendTo(ref, { type: 'replica.heartbeat', commit: context.commitIndex, round });
        confirm();
      }
      enqueue.assign({ reads, round });
    }),
    /** Leader: a quorum echoed a newer round; in lease mode the lease restarts from that round. */
    maybeRenewLease: enqueueActions(({ context, enqueue }) => {
      if (context.readMode !== 'lease' || context.transferSent) return;
      const q = quorumRound(context, context.round);
      if (q > context.leaseRound) {
        enqueue.assign({ leaseRound: q });
        enqueue.raise({ type: 'lease.renew' });
      }
    }),
    /** Leader stepping down: its unconfirmed reads fail, remote ones with an answer; a transfer in progress ends. */
    abandonLeadership: enqueueActions(({ context, enqueue }) => {
      const local = context.reads.filter((r) => r.from === null).map((r) => r.id);
      if (local.length > 0) enqueue({ type: 'rejectReads', params: { ids: local, leaderId: null } });
      const remote: RaftMessage[] = context.reads
        .filter((r) => r.from !== null)
        .map((r) => ({ type: 'readIndexResponse', term: context.term, from: context.id, to: r.from as ServerId, requestId: r.id, success: false, index: 0 }));
      if (remote.length > 0) enqueue({ type: 'send', params: remote });
      if (context.transferTarget !== null) enqueue({ type: 'transferSteppedDown', params: context.transferTarget });
      enqueue.assign({ reads: [], transferTarget: null, leaseHeld: false });
    }),
    /** Not leader: forward the read batch to the leader, or fail it when none is known. */
    forwardRead: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'client.read') return;
      if (context.leaderId === null || context.leaderId === context.id) {
        enqueue({ type: 'rejectReads', params: { ids: [event.id], leaderId: null } });
        return;
      }
      enqueue({ type: 'send', params: [{ type: 'readIndex', term: context.term, from: context.id, to: context.leaderId, requestId: event.id }] });
    }),
    /** Not leader: a follower's read request is refused. */
    refuseReadIndex: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'msg.readIndex') return;
      const m = event.message;
      enqueue({ type: 'send', params: [{ type: 'readIndexResponse', term: context.term, from: context.id, to: m.from, requestId: m.requestId, success: false, index: 0 }] });
    }),
    /** The leader's answer to our read request. */
    takeReadIndex: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'msg.readIndexResponse') return;
      const m = event.message;
      if (m.success) enqueue({ type: 'confirmReads', params: [{ id: m.requestId, index: m.index }] });
      else enqueue({ type: 'rejectReads', params: { ids: [m.requestId], leaderId: context.leaderId === m.from ? null : context.leaderId } });
    }),
    /** Leader: begins a transfer to the chosen voter and nudges its replica (thesis §3.10). */
    startTransfer: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'client.transfer') return;
      const pick = pickTarget(context, event.target);
      if (!('target' in pick)) return;
      enqueue.assign({ transferTarget: pick.target, transferTimeoutMs: event.timeoutMs ?? context.electionTimeoutMs });
      enqueue({ type: 'transferStarted', params: pick.target });
      const ref = context.replicas[pick.target];
      if (ref !== undefined) enqueue.sendTo(ref, { type: 'replica.entries', commit: context.commitIndex });
      enqueue('maybeTimeoutNow');
    }),
    refuseTransfer: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'client.transfer') return;
      if (context.transferTarget !== null) {
        enqueue({ type: 'transferFailed', params: 'busy' });
        return;
      }
      const pick = pickTarget(context, event.target);
      enqueue({ type: 'transferFailed', params: 'refusal' in pick ? pick.refusal : 'notLeader' });
    }),
    /** Leader: once the target holds the whole log, tell it to campaign now. */
    maybeTimeoutNow: enqueueActions(({ context, enqueue }) => {
      const target = context.transferTarget;
      if (target === null || context.transferSent) return;
      if ((context.match[target] ?? 0) < context.log.lastIndex()) return;
      enqueue.assign({ transferSent: true });
      enqueue({ type: 'send', params: [{ type: 'timeoutNow', term: context.term, from: context.id, to: target }] });
      if (context.handover) enqueue.raise({ type: 'leader.stepDown' });
    }),
    abortTransfer: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ transferTarget: null });
      enqueue({ type: 'transferFailed', params: 'timeout' });
      // A hand-over that could not catch its target up still ends this non-voter's leadership.
      if (context.handover) enqueue.raise({ type: 'leader.stepDown' });
    }),
    refuseDuringTransfer: enqueueActions(({ context, enqueue }) => {
      if (context.transferTarget !== null) enqueue({ type: 'refuseProposals', params: context.transferTarget });
    }),
    reject: enqueueActions(({ context, enqueue }) => {
      enqueue({ type: 'rejectProposals', params: context.leaderId });
    }),
    markActive: assign(({ context, event }) => {
      const m = msgOf(event);
      if (m === undefined) return {};
      const staged = context.staging.length > 0 && context.heard[m.from] !== true && context.staging.includes(m.from);
      if (context.active[m.from] && !staged) return {};
      return {
        active: context.active[m.from] ? context.active : { ...context.active, [m.from]: true as const },
        heard: staged ? { ...context.heard, [m.from]: true as const } : context.heard,
      };
    }),
    forwardToReplica: enqueueActions(({ context, event, enqueue }) => {
      const ref = 'message' in event ? context.replicas[event.message.from] : undefined;
      if (ref === undefined) return;
      if (event.type === 'msg.appendResponse') enqueue.sendTo(ref, { type: 'replica.appendResponse', message: event.message });
      else if (event.type === 'msg.heartbeatResponse') enqueue.sendTo(ref, { type: 'replica.heartbeatResponse' });
      else if (event.type === 'msg.installSnapshotResponse') enqueue.sendTo(ref, { type: 'replica.snapshotResponse', message: event.message });
    }),
    recordProgress: assign(({ context, event }) => {
      if (event.type === 'replica.progress') {
        if ((context.match[event.peerId] ?? 0) >= event.match) return {};
        return { match: { ...context.match, [event.peerId]: event.match } };
      }
      if (event.type === 'storage.synced' && context.log.term(event.index) === event.term) {
        if ((context.match[context.id] ?? 0) >= event.index) return {};
        return { match: { ...context.match, [context.id]: event.index } };
      }
      return {};
    }),
    /** §5.3/§5.4.2: commit the quorum index, but only by counting replicas of an entry of the current term. */
    advanceCommit: enqueueActions(({ context, enqueue }) => {
      const index = jointQuorumIndex(context, context.match);
      if (index > context.commitIndex && context.log.term(index) === context.term) {
        enqueue.assign({ commitIndex: index });
        enqueue({ type: 'commitTo', params: index });
        // Only a joint configuration or a leader outside its configuration has anything to do after a commit.
        if (context.oldVoters !== null || !context.voters.includes(context.id)) enqueue('afterCommit');
      }
    }),
    /**
     * Leader, after its commit index advanced: a committed joint configuration is left at once by
     * appending C_new (§6 of the paper); a leader that is no longer a voter hands over (thesis §4.2.2).
     */
    afterCommit: enqueueActions(({ context, enqueue }) => {
      if (context.config === null || context.configIndex > context.commitIndex) return;
      if (context.oldVoters !== null) {
        enqueue.raise({ type: 'leader.appendConfig', config: leaveJoint(context.config), origin: 'leaveJoint' });
        return;
      }
      if (context.transferTarget === null && needsHandover(context)) enqueue.raise({ type: 'leader.handover' });
    }),
    /** Leader: appends a configuration entry; it takes effect now (replicas follow the new membership). */
    appendConfigEntry: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'leader.appendConfig') return;
      const index = context.log.lastIndex() + 1;
      enqueue({ type: 'appendConfig', params: { term: context.term, config: event.config, origin: event.origin } });
      enqueue.assign({ ...configFields(event.config, index) });
      enqueue('syncReplicas');
      enqueue('notifyReplicas');
      enqueue('advanceCommit');
    }),
    /** Leader: a membership change request, admitted against the latest configuration in the log. */
    changeMembership: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'client.membership') return;
      const blocked = changeBlocker(context);
      if (blocked !== null) {
        enqueue({ type: 'refuseChange', params: { ...blocked, leaderId: context.id } });
        return;
      }
      const plan = planChange(context.config, event.change, event.force);
      if ('refusal' in plan) {
        enqueue({ type: 'refuseChange', params: { refusal: plan.refusal, detail: plan.detail, leaderId: context.id } });
        return;
      }
      enqueue.raise({ type: 'leader.appendConfig', config: plan.config, origin: 'client' });
    }),
    /** Not leader: membership changes are refused. */
    refuseChangeNotLeader: enqueueActions(({ context, enqueue }) => {
      enqueue({ type: 'refuseChange', params: { refusal: 'notLeader', detail: 'not the leader', leaderId: context.leaderId } });
    }),
    /** Leader: spawns replicas for new peers and stops those of servers no longer in the configuration. */
    syncReplicas: enqueueActions(({ context, enqueue }) => {
      const peers = peersOf(context, context.id);
      const gone = Object.keys(context.replicas).filter((p) => !peers.includes(p));
      if (gone.length === 0 && peers.every((p) => context.replicas[p] !== undefined)) return;
      const replicas = { ...context.replicas };
      const match = { ...context.match };
      const beats = { ...context.beats };
      for (const p of gone) {
        const ref = replicas[p];
        if (ref !== undefined) enqueue(stopChild(ref));
        delete replicas[p];
        delete match[p];
        delete beats[p];
      }
      enqueue.assign({ replicas, match, beats });
      enqueue('spawnMissingReplicas');
    }),
    /** Leader: the heartbeat tick also samples each staging learner's catch-up and promotes one that stayed caught up for a full election timeout. */
    trackCatchUp: enqueueActions(({ context, enqueue }) => {
      if (context.staging.length === 0) {
        if (Object.keys(context.catchUp).length > 0) enqueue.assign({ catchUp: {}, heard: {} });
        return;
      }
      const last = context.log.lastIndex();
      const needed = Math.ceil(context.electionTimeoutMs / context.heartbeatIntervalMs);
      const catchUp: Record<ServerId, number> = {};
      let ready: ServerId | null = null;
      for (const id of context.staging) {
        const ok = context.heard[id] === true && isCaughtUp(context.match[id] ?? 0, last, context.promotionThreshold);
        const streak = ok ? (context.catchUp[id] ?? 0) + 1 : 0;
        catchUp[id] = streak;
        if (streak > needed && ready === null) ready = id;
      }
      enqueue.assign({ catchUp, heard: {} });
      if (ready === null || changeBlocker(context) !== null) return;
      const plan = planChange(context.config, { type: 'promote', id: ready }, false);
      if ('config' in plan) enqueue.raise({ type: 'leader.appendConfig', config: plan.config, origin: 'promotion' });
    }),
    /** Leader: polls for a hand-over a previous attempt could not start (a user transfer was under way). */
    checkHandover: enqueueActions(({ context, enqueue }) => {
      if (context.transferTarget === null && needsHandover(context)) enqueue.raise({ type: 'leader.handover' });
    }),
    /** Leader, no longer a voter: hands leadership to the most up-to-date voter, then steps down. */
    startHandover: enqueueActions(({ context, enqueue }) => {
      const pick = pickTarget(context, null);
      if (!('target' in pick)) {
        enqueue.raise({ type: 'leader.stepDown' });
        return;
      }
      enqueue.assign({ transferTarget: pick.target, transferTimeoutMs: context.electionTimeoutMs, handover: true });
      enqueue({ type: 'transferStarted', params: pick.target });
      const ref = context.replicas[pick.target];
      if (ref !== undefined) enqueue.sendTo(ref, { type: 'replica.entries', commit: context.commitIndex });
      enqueue('maybeTimeoutNow');
    }),
    resetActive: assign({ active: () => ({}) }),
    /** The latest configuration in the log changed under us (appended as follower, or reverted by a truncation): adopt it, keep the role. */
    adoptConfig: assign(({ context, event }) => {
      if (event.type !== 'config.changed' || (event.config === context.config && event.index === context.configIndex)) return {};
      return configFields(event.config, event.index);
    }),
  },
  guards: {
    isStale: ({ context, event }) => event.type === 'msg.receive' && event.message.term < context.term,
    /** Leader stickiness: a higher-term (pre-)vote request while a live leader is known is ignored (thesis §4.2.3). */
    isDisruptive: ({ context, event }) => {
      if (event.type !== 'msg.receive') return false;
      const m = event.message;
      return (m.type === 'vote' || m.type === 'preVote') && m.term > context.term && m.transfer !== true;
    },
    checkQuorumOn: ({ context }) => context.checkQuorum,
    isTransferring: ({ context }) => context.transferTarget !== null,
    isStartQuiet: ({ context }) => context.startQuiet,
    canTransfer: ({ context, event }) =>
      event.type === 'client.transfer' && context.transferTarget === null && 'target' in pickTarget(context, event.target),
    /** `timeoutNow` from the leader we follow, received by a voter. */
    isTimeoutNowFromLeader: ({ context, event }) =>
      event.type === 'msg.timeoutNow' && event.message.from === context.leaderId && isVoterIn(context, context.id),
    isHigherTerm: ({ context, event }) => {
      if (event.type !== 'msg.receive') return false;
      const m = event.message;
      if (m.term <= context.term) return false;
      if (m.type === 'preVote') return false;
      if (m.type === 'preVoteResponse' && m.granted) return false;
      return true;
    },
    isLeaderMessage: ({ event }) =>
      event.type === 'msg.receive' &&
      (event.message.type === 'append' || event.message.type === 'heartbeat' || event.message.type === 'installSnapshot'),
    grantsVote: ({ context, event }) => event.type === 'msg.vote' && voteDecision(context, event.message).granted,
    isVoter: ({ context }) => isVoterIn(context, context.id),
    usesPreVote: ({ context }) => context.preVote,
    wonElection: ({ context }) => jointTally(context, context.votes) === 'won',
    lostElection: ({ context }) => jointTally(context, context.votes) === 'lost',
    isCurrentPreVoteAnswer: ({ context, event }) =>
      event.type === 'msg.preVoteResponse' && (event.message.term === context.term + 1 || !event.message.granted),
    quorumLost: ({ context }) => !jointHasQuorum(context, new Set([...Object.keys(context.active), context.id])),
    /**
     * A (pre-)vote request from a server outside our latest configuration: dropped before the term
     * gate adopts its term, so a removed server cannot disrupt the cluster.
     */
    isStrangerVote: ({ context, event }) => {
      if (event.type !== 'msg.receive') return false;
      const m = event.message;
      return (m.type === 'vote' || m.type === 'preVote') && context.config !== null && !isMemberOf(context, m.from);
    },
    /** A read index request from a server outside our configuration (it would never catch up to the index). */
    isStrangerRead: ({ context, event }) => event.type === 'msg.readIndex' && !isMemberOf(context, event.message.from),
    needsHandover: ({ context }) => context.transferTarget === null && needsHandover(context),
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({
    id: input.id,
    log: input.log,
    term: input.term,
    votedFor: input.votedFor,
    leaderId: null,
    commitIndex: input.commitIndex ?? 0,
    ...configFields(input.config ?? configOfIds(input.voters, input.learners), input.configIndex ?? 0),
    promotionThreshold: input.promotionThreshold ?? 1024,
    votes: {},
    replicas: {},
    match: {},
    active: {},
    preVote: input.preVote,
    checkQuorum: input.checkQuorum,
    electionTimeoutMs: input.electionTimeoutMs,
    heartbeatIntervalMs: input.heartbeatIntervalMs,
    limits: input.limits,
    snapshots: input.snapshots ?? null,
    readMode: input.readMode ?? 'readIndex',
    leaseMs: input.leaseMs ?? Math.floor(input.electionTimeoutMs * 0.9),
    ...freshLeaderState(),
    transferTimeoutMs: input.electionTimeoutMs,
    startQuiet: input.readMode === 'lease',
  }),
  initial: 'follower',
  // Lease mode: the quiet period after start ends (see `startQuiet`).
  after: { leaseTimeout: { actions: assign({ startQuiet: false }) } },
  on: {
    // The term gate (§5.1): runs before any role sees a message.
    'msg.receive': [
      { guard: 'isStale', actions: 'answerStale' },
      { guard: 'isStrangerVote' },
      { guard: and(['isDisruptive', stateIn('#node.follower.led')]) },
      { guard: and(['isDisruptive', 'isStartQuiet']) },
      { guard: and(['isDisruptive', stateIn('#node.leader'), 'checkQuorumOn']) },
      { guard: 'isHigherTerm', target: '.follower', actions: ['adoptTerm', 'route'] },
      { guard: and(['isLeaderMessage', not(stateIn('#node.follower'))]), target: '.follower', actions: ['setLeader', 'route'] },
      { actions: 'route' },
    ],
    'msg.vote': { actions: 'answerVote' },
    'msg.preVote': { actions: 'answerVote' },
    'client.propose': { actions: 'reject' },
    'client.read': { actions: 'forwardRead' },
    'client.transfer': { actions: 'refuseTransfer' },
    'msg.readIndex': { actions: 'refuseReadIndex' },
    'msg.readIndexResponse': { actions: 'takeReadIndex' },
    'config.changed': { actions: 'adoptConfig' },
    'snapshot.installed': {
      actions: assign(({ context, event }) => (event.type === 'snapshot.installed' && event.index > context.commitIndex ? { commitIndex: event.index } : {})),
    },
    'client.membership': { actions: 'refuseChangeNotLeader' },
    // Bootstrap writes the first configuration at term 1 on a node with no state (the actor checks).
    'client.bootstrap': {
      guard: ({ context }) => context.term === 0,
      target: '.follower',
      reenter: true,
      actions: assign(({ event }) => (event.type === 'client.bootstrap' ? { term: 1, ...configFields(event.config, 1) } : {})),
    },
  },
  states: {
    follower: {
      initial: 'leaderless',
      after: {
        electionTimeout: [
          { guard: and(['isVoter', 'usesPreVote']), target: 'preCandidate' },
          { guard: 'isVoter', target: 'candidate' },
          { target: 'follower', reenter: true },
        ],
      },
      on: {
        'msg.append': { target: '.led', reenter: true, actions: ['setLeader', 'acceptAppend'] },
        'msg.heartbeat': { target: '.led', reenter: true, actions: ['setLeader', 'acceptHeartbeat'] },
        'msg.installSnapshot': {
          target: '.led',
          reenter: true,
          actions: ['setLeader', { type: 'installSnapshot', params: ({ event }) => (event as { message: InstallSnapshotRequest }).message }],
        },
        'msg.vote': [{ guard: 'grantsVote', target: 'follower', reenter: true, actions: 'answerVote' }, { actions: 'answerVote' }],
        'client.campaign': [
          { guard: and(['isVoter', 'usesPreVote']), target: 'preCandidate' },
          { guard: 'isVoter', target: 'candidate' },
        ],
        // Leadership transfer: campaign now, skipping pre-vote (thesis §3.10).
        'msg.timeoutNow': { guard: 'isTimeoutNowFromLeader', target: 'candidate', actions: assign({ campaignTransfer: true }) },
      },
      states: {
        leaderless: {},
        /** Heard from the leader within the minimum election timeout. */
        led: { after: { leaseTimeout: 'leaderless' } },
      },
    },
    preCandidate: {
      entry: 'startPreCampaign',
      always: [{ guard: 'wonElection', target: 'candidate' }],
      after: { electionTimeout: { target: 'preCandidate', reenter: true } },
      on: {
        'msg.preVoteResponse': { guard: 'isCurrentPreVoteAnswer', actions: 'recordVote' },
        'client.campaign': { target: 'candidate' },
      },
    },
    candidate: {
      entry: 'startCampaign',
      always: [
        { guard: 'wonElection', target: 'leader' },
        { guard: 'lostElection', target: 'follower' },
      ],
      after: {
        electionTimeout: [{ guard: 'usesPreVote', target: 'preCandidate' }, { target: 'candidate', reenter: true }],
      },
      on: {
        'msg.voteResponse': { actions: 'recordVote' },
      },
    },
    leader: {
      type: 'parallel',
      entry: 'becomeLeader',
      exit: ['abandonLeadership', 'stopReplicas'],
      on: {
        'client.propose': [{ guard: 'isTransferring', actions: 'refuseDuringTransfer' }, { actions: 'appendBatch' }],
        'client.read': { actions: 'queueRead' },
        'msg.readIndex': [{ guard: 'isStrangerRead', actions: 'refuseReadIndex' }, { actions: 'queueRead' }],
        'client.membership': { actions: 'changeMembership' },
        'config.changed': { actions: ['adoptConfig', 'syncReplicas', 'advanceCommit'] },
        'leader.handover': { guard: 'needsHandover', target: '.transfer.transferring', actions: 'startHandover' },
        'leader.stepDown': { target: '#node.follower', actions: assign({ leaderId: null }) },
        'leader.appendConfig': { actions: 'appendConfigEntry' },
        'client.transfer': [{ guard: 'canTransfer', target: '.transfer.transferring', actions: 'startTransfer' }, { actions: 'refuseTransfer' }],
        'msg.appendResponse': { actions: ['markActive', 'forwardToReplica'] },
        'msg.installSnapshotResponse': { actions: ['markActive', 'forwardToReplica'] },
        'msg.heartbeatResponse': { actions: ['markActive', 'forwardToReplica', 'recordBeat', 'maybeRenewLease', 'processReads'] },
        'replica.progress': { actions: ['recordProgress', 'advanceCommit', 'processReads', 'maybeTimeoutNow'] },
        'storage.synced': { actions: ['recordProgress', 'advanceCommit', 'processReads', 'maybeTimeoutNow'] },
      },
      states: {
        heartbeat: {
          initial: 'beating',
          states: {
            beating: {
              after: { heartbeatInterval: { target: 'beating', reenter: true, actions: 'broadcastHeartbeat' } },
            },
          },
        },
        /** Lease reads (readMode 'lease'): held from a quorum-confirmed round for `readLease`. */
        lease: {
          initial: 'expired',
          on: { 'lease.renew': { target: '.held', reenter: true } },
          states: {
            expired: {},
            held: {
              entry: assign({ leaseHeld: true }),
              exit: assign({ leaseHeld: false }),
              after: { readLease: { target: 'expired', actions: 'leaseExpired' } },
            },
          },
        },
        /** Leadership transfer; proposals are refused while `transferring`. */
        transfer: {
          initial: 'idle',
          states: {
            idle: {},
            transferring: {
              always: { guard: not('isTransferring'), target: 'idle' },
              after: { transferTimeout: { target: 'idle', actions: 'abortTransfer' } },
            },
          },
        },
        quorum: {
          initial: 'window',
          states: {
            window: {
              after: {
                leaseTimeout: [
                  { guard: and(['checkQuorumOn', 'quorumLost']), target: '#node.follower', actions: assign({ leaderId: null }) },
                  { target: 'window', reenter: true, actions: 'resetActive' },
                ],
              },
            },
          },
        },
      },
    },
  },
});
