/**
 * The node actor: wires the node machine to a log, storage, a transport, a
 * clock and the user's state machine, and turns it all into the public
 * {@link RaftNode} API.
 *
 * One turn = the inbound messages and timer events of one event-loop turn,
 * plus that turn's proposals as ONE `client.propose` event; at the end of the
 * turn the Ready drains: persist → send → apply → publish.
 *
 * @module
 */
import { BehaviorSubject, Subject, type Observable, type Subscription } from 'rxjs';
import { createActor, type Actor, type AnyActorRef, type SnapshotFrom } from 'xstate';
import { systemClock, type Clock, type TimerHandle } from '../adapters/clock.js';
import { systemRandom, type Random } from '../adapters/random.js';
import { crc32Js, loadCrc32, type Crc32 } from '../adapters/storage/crc32.js';
import { hasSnapshotStore, type RaftStorage, type SnapshotMeta, type SnapshotStore } from '../adapters/storage/storage.js';
import type { ConnectionEvent, Transport } from '../adapters/transport/transport.js';
import {
  CodecError,
  ConfigurationError,
  LeadershipLostError,
  LeadershipTransferError,
  MembershipError,
  NotLeaderError,
  RaftError,
  RestoreError,
  ShutdownError,
  StorageError,
  TimeoutError,
} from '../errors.js';
import { isVoterIn, membershipOf, type MembershipChange } from '../machines/membership.js';
import { nodeMachine, type TransferRefusal } from '../machines/node.machine.js';
import {
  replicaMachine,
  type ReplicaSnapshots,
  type SendAppendIntent,
  type SendHeartbeatIntent,
  type SnapshotProgressIntent,
  type SnapshotTransfer,
} from '../machines/replica.machine.js';
import { snapshotSenderMachine, type ReadChunkIntent, type SnapshotAbortReason, type SnapshotSendResult } from '../machines/snapshot-sender.machine.js';
import { chunksOf, DEFAULT_SNAPSHOT_CHUNK_BYTES, type InstallSnapshotRequest } from '../machines/snapshot.js';
import { decodeRestoreRecord, RestoreTracker, type CompletedRestore } from '../machines/restore.js';
import type { Configuration, LogEntry, RaftMessage, ReplicaState, Role, Server, ServerId } from '../machines/types.js';
import { encodeConfig, latestConfig, sameConfig, serversOf, validateServers } from './config.js';
import { RaftLog } from './log.js';
import { Diagnostics, explain, type DiagnosticEvent, type Explanation } from './diagnostics.js';
import { isolate, ProgressFeed } from './observe.js';
import { reloadOptions, resolveOptions, type ReloadableOptions, type RaftMetricsSink, type RaftNodeOptions, type ResolvedOptions, type StateMachine } from './options.js';
import { emptyReady, hasWrite, merge, record, type Ready } from './ready.js';
import { SnapshotReceiver, type SnapshotReceiverObservation } from './snapshot-receiver.js';
import { checkRestoreSource, writeRestore, type RestoreResult, type RestoreSource } from './restore-writer.js';

/** What `propose` resolves with, once the entry is applied on this node. */
export interface ProposalResult<R = unknown> {
  /** Log index of the entry. */
  readonly index: number;
  /** Term it was appended in. */
  readonly term: number;
  /** What the state machine's `apply` returned. */
  readonly result: R;
}

/** Progress of one replica as the leader sees it. */
export interface ReplicaStatus {
  /** Highest index known replicated there. */
  readonly match: number;
  /** Next index to send. */
  readonly next: number;
  /** Flow-control state. */
  readonly state: ReplicaState;
  /** Appends sent and unacknowledged. */
  readonly inflight: number;
  /** In probe: waiting for the answer to a probe. */
  readonly paused: boolean;
  /** Milliseconds since the last message from it, or `null` if none yet. */
  readonly lastContactMs: number | null;
  /**
   * Unreachable: it has not answered this leader's heartbeats for longer than the minimum election
   * timeout (the `heartbeatFailed` event) and has not answered since. It counts for nothing in the
   * check-quorum window until it does.
   */
  readonly down: boolean;
  /** In state `snapshot`, while a transfer runs: the snapshot's index, bytes sent and acknowledged, total (`null` until known). Absent otherwise. */
  readonly snapshot?: SnapshotTransfer;
}

/** One replica's progress as {@link RaftNode.progress$} publishes it: the peer and its {@link ReplicaStatus}. */
export interface ReplicaProgress extends ReplicaStatus {
  /** The follower (or learner) this leader replicates to. */
  readonly peer: ServerId;
}

/** Two progress values that differ at most in `lastContactMs` are the same progress. */
const sameProgress = (a: ReplicaProgress, b: ReplicaProgress): boolean =>
  a.match === b.match &&
  a.next === b.next &&
  a.state === b.state &&
  a.inflight === b.inflight &&
  a.paused === b.paused &&
  a.snapshot?.sent === b.snapshot?.sent &&
  a.snapshot?.acked === b.snapshot?.acked;

/** A snapshot of a node's state, for humans and dashboards. */
export interface RaftStatus {
  readonly id: ServerId;
  readonly role: Role;
  readonly term: number;
  readonly leaderId: ServerId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  /** The configuration in effect (the latest in the log): every server, those leaving a joint configuration included. */
  readonly members: readonly Server[];
  /** Voters of the configuration in effect (of C_new while joint). */
  readonly voters: readonly ServerId[];
  /** Learners of the configuration in effect (of C_new while joint). */
  readonly learners: readonly ServerId[];
  /** While the configuration is joint (C_old,new): the voters of C_old, whose majority is needed too; `null` otherwise. */
  readonly oldVoters: readonly ServerId[] | null;
  /** Log index of the configuration in effect (0 before bootstrap). A change is in flight while it exceeds `commitIndex`. */
  readonly configIndex: number;
  /** Leader only: each peer's progress, learners included. */
  readonly replicas: Readonly<Record<ServerId, ReplicaStatus>>;
}

/** The current leader as this node knows it. */
export interface LeaderInfo {
  readonly leaderId: ServerId | null;
  readonly term: number;
}

/** Observations published on `events$`. */
export type RaftEvent =
  | { readonly type: 'roleChanged'; readonly role: Role; readonly term: number }
  | { readonly type: 'leaderChanged'; readonly leaderId: ServerId | null; readonly term: number }
  /**
   * The configuration in effect changed: one was appended (it takes effect at once) or a truncation
   * reverted to an earlier one. `oldVoters` is set while the configuration is joint.
   */
  | {
      readonly type: 'membershipChanged';
      readonly servers: readonly Server[];
      readonly index: number;
      readonly voters: readonly ServerId[];
      readonly learners: readonly ServerId[];
      readonly oldVoters: readonly ServerId[] | null;
    }
  /** A server joined the configuration in effect (as voter or learner). */
  | { readonly type: 'peerAdded'; readonly id: ServerId; readonly suffrage: 'voter' | 'learner'; readonly index: number }
  /** A server left the configuration in effect. */
  | { readonly type: 'peerRemoved'; readonly id: ServerId; readonly index: number }
  /** A learner became a voter (automatically, after `addVoter`, once it caught up; or by `changeMembership`). */
  | { readonly type: 'learnerPromoted'; readonly id: ServerId; readonly index: number }
  /** A voter became a learner. */
  | { readonly type: 'voterDemoted'; readonly id: ServerId; readonly index: number }
  | { readonly type: 'applyFailed'; readonly index: number; readonly error: unknown }
  | { readonly type: 'fatal'; readonly error: unknown }
  /** This leader started handing leadership to `target`; proposals are refused until it ends. */
  | { readonly type: 'transferStarted'; readonly target: ServerId; readonly term: number }
  /** The transfer succeeded: `target` leads in `term`. */
  | { readonly type: 'transferCompleted'; readonly target: ServerId; readonly term: number }
  /** The transfer ended without `target` leading; the reason says why (`'timeout'`: this node leads on and accepts proposals again). */
  | { readonly type: 'transferAborted'; readonly target: ServerId; readonly reason: TransferAbortReason; readonly term: number }
  /** Lease mode: the leader's read lease ran out without a quorum round renewing it; reads fall back to heartbeat rounds. */
  | { readonly type: 'readLeaseExpired'; readonly term: number }
  /**
   * A subscriber of `stream` (`'leader$'`, `'role$'`, `'events$'`, `'commitIndex$'`, `'progress$'`)
   * threw; it was unsubscribed (and completed) and the node went on. Subscribers reached through
   * operators (`node.events$.pipe(...)`) are RxJS's own to report.
   */
  | { readonly type: 'subscriberFailed'; readonly stream: string; readonly error: unknown }
  /** Votes asked of, granted and refused (with the reason) by this node; a leader's heartbeats failing and resuming per peer. */
  | DiagnosticEvent
  /** This node took a snapshot of its state machine at `index` (automatically or by `snapshot()`). */
  | { readonly type: 'snapshotCreated'; readonly index: number; readonly term: number; readonly size: number }
  /** Taking a snapshot failed (the state machine's `snapshot()` or the storage threw); the node goes on with its log. */
  | { readonly type: 'snapshotFailed'; readonly index: number; readonly error: unknown }
  /** Log entries up to `upTo` were discarded after a snapshot; the log now starts at `firstIndex`. */
  | { readonly type: 'logCompacted'; readonly upTo: number; readonly firstIndex: number }
  /** Leader: a snapshot transfer to `peer` moved on (`total` is `null` until the whole size is known). */
  | { readonly type: 'snapshotSending'; readonly peer: ServerId; readonly index: number; readonly bytesSent: number; readonly total: number | null }
  /** Leader: `peer` installed the snapshot at `index`. */
  | { readonly type: 'snapshotSent'; readonly peer: ServerId; readonly index: number }
  /** Leader: a transfer to `peer` ended without the follower installing it; it is retried after its next heartbeat answer. */
  | { readonly type: 'snapshotAborted'; readonly peer: ServerId; readonly index: number; readonly reason: SnapshotAbortReason }
  /** Follower: a chunk of the leader's snapshot is durably staged; `bytes` staged so far. */
  | { readonly type: 'snapshotReceived'; readonly from: ServerId; readonly index: number; readonly bytes: number; readonly total: number | null }
  /** Follower: a snapshot from the leader was installed and restored into the state machine. */
  | { readonly type: 'snapshotInstalled'; readonly index: number; readonly term: number; readonly size: number }
  /** Every node: a snapshot supplied to `restore()` reached its commit entry at `index` and replaced the state machine's state. */
  | { readonly type: 'restored'; readonly index: number; readonly term: number; readonly size: number }
  /** Every node: a restore's commit entry at `index` did not replace the state (the state machine's `restore()` threw, or the chunks did not add up); see {@link RestoreError}. */
  | { readonly type: 'restoreFailed'; readonly index: number; readonly error: RestoreError }
  /** The transport's connection to a peer was established, lost, or could not be made (transports with connections, such as the WebSocket transport). */
  | ConnectionEvent;

/** Why a leadership transfer ended without the target leading. */
export type TransferAbortReason = 'timeout' | 'otherLeader' | 'shutdown';

/** Options of {@link RaftNode.readIndex} and {@link RaftNode.barrier}. */
export interface ReadOptions {
  /** Overrides the node's `proposalTimeoutMs`. */
  readonly timeoutMs?: number;
}

/** Options of {@link RaftNode.transferLeadership}. */
export interface TransferOptions {
  /** How long the leader tries before aborting and accepting proposals again. Default: the maximum election timeout. */
  readonly timeoutMs?: number;
}

/** Options of {@link RaftNode.stop}. */
export interface StopOptions {
  /**
   * A leader first hands leadership to the most up-to-date voter (best effort, bounded by about
   * two maximum election timeouts), so the cluster need not wait for an election timeout.
   */
  readonly transferLeadership?: boolean;
}

/** Options of the membership changes ({@link RaftNode.addVoter} and the others). */
export interface MembershipOptions {
  /** Overrides the node's `proposalTimeoutMs`. */
  readonly timeoutMs?: number;
  /**
   * Removes or demotes one of exactly two voters anyway (the two-voter trap, refused by default:
   * see the membership guide).
   */
  readonly force?: boolean;
}

/** What a membership change resolves with, once its configuration entry is committed and applied here. */
export interface MembershipResult {
  /** Log index of the configuration entry (for a joint change: of the final C_new entry). */
  readonly index: number;
  /** Term it was appended in. */
  readonly term: number;
  /** The configuration now in effect. */
  readonly configuration: Configuration;
}

/** Options of {@link RaftNode.propose}. */
export interface ProposeOptions {
  /** Overrides the node's `proposalTimeoutMs`. */
  readonly timeoutMs?: number;
}

/**
 * A running Raft server.
 *
 * @typeParam R - what the state machine's `apply` returns.
 */
export interface RaftNode<R = unknown> {
  /** This server's id. */
  readonly id: ServerId;
  /** Opens storage, restores state and starts the protocol. */
  start(): Promise<void>;
  /**
   * Stops: pending operations reject with `ShutdownError`. Unsynced writes may be lost, as on a crash.
   * With `{ transferLeadership: true }` a leader first tries to hand over (see {@link StopOptions}).
   */
  stop(options?: StopOptions): Promise<void>;
  /** Writes the first configuration on a fresh node. Every initial member bootstraps with the same list. */
  bootstrap(servers: readonly Server[]): Promise<void>;
  /**
   * Replicates `data`; resolves after it is applied on this node.
   *
   * @remarks On the leader only. The proposals of one turn are appended as one batch and
   * replicated together; each resolves once its entry is committed — stored by a majority of the
   * voters, both halves while joint, and the leader has an entry of its own term at or after it
   * (Raft paper §5.3, §5.4.2) — and applied here. Log Matching (§5.3) and State Machine Safety
   * (§5.4.3) then guarantee every server applies the same entry at that index. A rejection after
   * the entry was appended does not mean it was dropped: a later leader may still commit it, so
   * make commands idempotent or deduplicate them (thesis §6.3).
   *
   * @throws `ConfigurationError` when `data` is not a `Uint8Array`, exceeds `maxProposalBytes`,
   * or `timeoutMs` is not a positive integer; `NotLeaderError` on a follower (its `leaderId`
   * names the leader when known), or when leadership is lost before the entry was appended;
   * `LeadershipTransferError` while a leadership transfer is under way; `LeadershipLostError`
   * when leadership is lost after the entry was appended but before it committed (outcome
   * unknown); `TimeoutError` after `timeoutMs` (default `proposalTimeoutMs`); `ShutdownError`
   * when the node is not running.
   *
   * @example
   * ```ts
   * try {
   *   const { index, result } = await node.propose(new TextEncoder().encode('set x 1'))
   *   console.log(`applied at ${index}:`, result)
   * } catch (e) {
   *   if (e instanceof NotLeaderError && e.leaderId !== null) forwardTo(e.leaderId)
   *   else throw e
   * }
   * ```
   */
  propose(data: Uint8Array, options?: ProposeOptions): Promise<ProposalResult<R>>;
  /**
   * Linearizable read barrier (thesis §6.4): resolves with a read index once this node's state
   * machine has applied it; reading the state machine then sees every write acknowledged before
   * the call.
   *
   * @remarks On the leader, the reads of one turn share one heartbeat round to a quorum (reads
   * arriving while a round is in flight wait for the next). A new leader defers reads until it has
   * committed an entry of its own term (its no-op). A follower asks the leader for the index
   * (`readIndex` message) and waits for its own apply. With `readMode: 'lease'` a leader within
   * its lease skips the round. A leader that cannot reach a quorum never resolves: its reads time
   * out, or fail when it steps down.
   *
   * Why it is linearizable: the committed no-op gives Leader Completeness (Raft paper §5.4) for
   * the read index, and the quorum round proves no newer leader existed when the index was
   * recorded (thesis §6.4). Lease reads trade that round for a bound on clock drift (thesis §6.4.1).
   *
   * @throws `NotLeaderError` when no leader is known (or the leader stepped down before
   * confirming); `TimeoutError` after `timeoutMs` (default `proposalTimeoutMs`); `ShutdownError` on stop.
   *
   * @example
   * ```ts
   * await node.readIndex()
   * const value = kv.get(key) // the local state machine is now up to date
   * ```
   */
  readIndex(options?: ReadOptions): Promise<number>;
  /**
   * Resolves, on the leader, once every entry appended before the call (including proposals made
   * earlier in the same turn) is applied here; resolves with that index. It waits for the commit
   * of the leader's last index; it appends nothing.
   *
   * @remarks A new leader's log may hold entries of earlier terms that are committed but not yet
   * known to be (Raft paper §5.4.2); once its own no-op commits they are. A barrier lets code
   * that just became leader wait until its state machine holds every entry it may hold, for
   * example before serving from local state (thesis §6.4 describes the same step for reads).
   *
   * @example
   * ```ts
   * const applied = await leader.barrier()
   * console.log(`state machine is current up to ${applied}`)
   * ```
   *
   * @throws `NotLeaderError` on a follower; `LeadershipLostError` if leadership is lost before the
   * index commits; `TimeoutError`; `ShutdownError`.
   */
  barrier(options?: ReadOptions): Promise<number>;
  /**
   * Hands leadership to voter `id`, or to the most up-to-date voter (thesis §3.10). The leader
   * refuses new proposals with `LeadershipTransferError`, replicates until the target holds its
   * whole log, then sends it `timeoutNow`; the target campaigns at once. Resolves when this node
   * learns that the target leads.
   *
   * @remarks The target is a voter whose log matches the leader's last index when it receives
   * `timeoutNow`, so it wins the election under the usual rules (Election Safety, Raft paper
   * §5.2; up-to-date check §5.4.1); its vote requests carry `transfer: true` so the other voters
   * set leader stickiness aside (thesis §3.10, §9.6). Proposals are refused during the transfer so
   * the target can catch up; the transfer aborts after `timeoutMs` (default: the maximum election
   * timeout).
   *
   * @example
   * ```ts
   * await leader.transferLeadership('n2') // or transferLeadership() for the most up-to-date voter
   * ```
   *
   * @throws `NotLeaderError` on a follower; `ConfigurationError` for a target that is this node or
   * not a voter; `LeadershipTransferError` when a transfer is already under way or another node
   * took over; `TimeoutError` when the target did not take over in time (the leader then accepts
   * proposals again); `ShutdownError`.
   */
  transferLeadership(id?: ServerId | null, options?: TransferOptions): Promise<void>;
  /**
   * Adds a non-voting member: it receives the log but neither votes nor counts towards commitment.
   * Resolves once the configuration entry is committed and applied here.
   *
   * @remarks On the leader only. One change at a time: refused while another configuration entry
   * is uncommitted or the cluster is in a joint configuration, and until the leader has committed
   * an entry of its own term (thesis §4.1). The change takes effect on each server as soon as the
   * entry is appended to its log.
   *
   * @throws `NotLeaderError` on a follower; {@link MembershipError} when refused (its `reason` says
   * why); `ConfigurationError` for a bad id or address; `TimeoutError`; `LeadershipLostError` when
   * leadership is lost before the entry commits (outcome unknown); `ShutdownError`.
   */
  addLearner(id: ServerId, address: string, options?: MembershipOptions): Promise<MembershipResult>;
  /**
   * Adds a voter safely: it joins as a learner marked `autoPromote`, and the leader promotes it to
   * voter by itself once it has caught up — within `promotionThreshold` entries of the leader's
   * last index at every heartbeat for a full election timeout — so a new, empty server never
   * stalls commitment (thesis §4.2.1). Resolves once the learner entry is committed; watch
   * `events$` for `learnerPromoted` (or `status().voters`). An existing learner is marked for promotion.
   *
   * @remarks Each step (add the learner, later promote it) is a single-server change, so the
   * majorities of the configurations before and after it overlap and no two leaders can be elected
   * in one term (thesis §4.1, Election Safety of the Raft paper §5.2). The same admission rules as
   * {@link RaftNode.addLearner} apply: one change at a time, on a leader that has committed an
   * entry of its term.
   *
   * @throws As {@link RaftNode.addLearner}; `MembershipError` `alreadyVoter` for a voter.
   *
   * @example
   * ```ts
   * import { filter, firstValueFrom } from 'rxjs'
   * await leader.addVoter('n4', 'ws://127.0.0.1:7004')
   * await firstValueFrom(leader.events$.pipe(filter((e) => e.type === 'learnerPromoted' && e.id === 'n4')))
   * ```
   */
  addVoter(id: ServerId, address: string, options?: MembershipOptions): Promise<MembershipResult>;
  /**
   * Turns a voter into a learner. Demoting the leader itself makes it hand leadership to the most
   * up-to-date voter once the change is committed.
   *
   * @throws As {@link RaftNode.addLearner}; `MembershipError` `notVoter`, `lastVoter`, or
   * `twoVoters` (one of two voters, unless `force`).
   */
  demoteVoter(id: ServerId, options?: MembershipOptions): Promise<MembershipResult>;
  /**
   * Removes a server. Removing the leader itself: it keeps leading (without counting itself)
   * until the change commits, then hands leadership to the most up-to-date voter with
   * `timeoutNow` and steps down; proposals are refused meanwhile. A removed server never campaigns
   * and the others drop its vote requests, so it cannot disrupt the cluster.
   *
   * @remarks A single-server change (thesis §4.1): the configurations before and after differ by
   * one server, so their majorities overlap. A leader removing itself keeps replicating but stops
   * counting its own match toward commitment (thesis §4.2.2); a removed server's vote requests are
   * dropped so it cannot raise terms and disrupt the cluster (thesis §4.2.3). Refused with
   * `twoVoters` when removing one of exactly two voters unless `force` (see {@link planChange}).
   *
   * @example
   * ```ts
   * const { configuration } = await leader.removeServer('n3')
   * console.log(configuration.servers.map((s) => s.id))
   * ```
   *
   * @throws As {@link RaftNode.addLearner}; `MembershipError` `notMember`, `lastVoter`, or
   * `twoVoters` (one of two voters, unless `force`).
   */
  removeServer(id: ServerId, options?: MembershipOptions): Promise<MembershipResult>;
  /**
   * Replaces the membership with `servers` (as for `bootstrap`: `{ id, address, suffrage? }`).
   * When more than one voter is added or removed the leader goes through a joint configuration
   * (C_old,new, §6 of the paper): decisions need majorities of both; once it is committed the
   * leader appends C_new by itself. Resolves when C_new is committed and applied here.
   *
   * @remarks Joint consensus (Raft paper §6, thesis §4.3): while C_old,new is in effect, elections
   * and commitment need separate majorities of C_old and of C_new, so neither can decide alone
   * and Election Safety (§5.2) holds across the change. A change of at most one voter needs no
   * joint step. If leadership is lost while joint, the next leader finishes the change and this
   * call rejects with `LeadershipLostError`.
   *
   * New voters listed here join as voters at once: add empty servers with `addVoter`
   * (or as learners first) to keep the cluster available while they catch up.
   *
   * @example
   * ```ts
   * await leader.changeMembership([
   *   { id: 'n1', address: 'ws://127.0.0.1:7001' },
   *   { id: 'n4', address: 'ws://127.0.0.1:7004' },
   *   { id: 'n5', address: 'ws://127.0.0.1:7005' },
   * ])
   * ```
   *
   * @throws As {@link RaftNode.addLearner}; `MembershipError` `noChange`, `lastVoter`, `twoVoters`.
   */
  changeMembership(servers: readonly Server[], options?: MembershipOptions): Promise<MembershipResult>;
  /**
   * Takes a snapshot of the state machine now, at the index applied so far, then compacts the log
   * (keeping `trailingLogs` entries); resolves with the snapshot's metadata.
   *
   * @remarks Log compaction (Raft paper §7, thesis §5.1): the snapshot replaces the entries up to
   * its index, and records that index's term and the configuration in effect there, so the
   * AppendEntries consistency check (§5.3) still works at the boundary. Followers that need
   * compacted entries receive the leader's snapshot instead ({@link snapshotSenderMachine}).
   *
   * One snapshot at a time: a call while one is being taken resolves with that one; a
   * call when nothing was applied since the last snapshot resolves with it at once. Applying goes
   * on while the state machine's content is written (see {@link StateMachine.snapshot}). The node
   * also snapshots by itself once `snapshotThreshold` entries were applied since the last one. A
   * follower receiving a snapshot from its leader takes none of its own until that transfer ends.
   *
   * @throws `ConfigurationError` when the state machine has no `snapshot()` method, the storage
   * implements no snapshot store, or nothing was applied yet; the state machine's or the storage's
   * error when writing the snapshot fails; `ShutdownError` when the node is not running.
   *
   * @example
   * ```ts
   * const meta = await node.snapshot()
   * console.log(`snapshot at ${meta.index}, ${meta.size} bytes`)
   * ```
   */
  snapshot(): Promise<SnapshotMeta>;
  /**
   * Leader: replaces the state of every server's state machine with `source`, a snapshot in the
   * state machine's own format (a backup from `snapshot()`, say), through the log; resolves once
   * this leader applied it, with the index it holds from.
   *
   * @remarks Like hashicorp's `Restore`, for operators (disaster recovery, seeding a cluster), but
   * safe under faults: the bytes are appended as `restore` entries (chunks of at most
   * `snapshotTransfer.chunkBytes`, eight unapplied at a time), then a commit entry carrying their
   * count, size and CRC-32. Each server calls its state machine's `restore(chunks, meta)` when it
   * applies that commit (`meta.index` is the commit's index), so the restore happens at one
   * point of the log on every server, or on none. Entries committed before it are applied to the
   * old state and then replaced; entries after it apply to the restored state. If leadership is
   * lost midway the run is left incomplete and ignored; if `source` throws, an abort entry closes
   * it. Right after, each server takes a snapshot at the commit and compacts the whole run away;
   * until then its bytes are in every server's log (and memory). No snapshot is taken while a run
   * is open. `restore()` must build the new state completely before it replaces the old one: if
   * it throws, every server reports `restoreFailed` and keeps its state.
   *
   * One restore at a time per node. `timeoutMs` (default `proposalTimeoutMs`) bounds each step:
   * every chunk's commit, the wait for each piece of `source` (a stalled source aborts the
   * restore: an open run holds back every server's snapshots), and the commit plus the state
   * machine's restore.
   *
   * @throws `NotLeaderError` on a follower or when leadership is lost midway (the restore then
   * did not happen); `ConfigurationError` when the state machine lacks `snapshot()`/`restore()`,
   * the storage has no snapshot store, a restore is already running here, or `source` is not
   * bytes; {@link RestoreError} when the state machine's `restore()` refused the bytes (the state
   * is unchanged everywhere); `TimeoutError`; `ShutdownError`; the source's own error.
   *
   * @example
   * ```ts
   * // backup: the bytes of an earlier snapshot, e.g. read from a file
   * const { index } = await leader.restore(backup)
   * console.log(`every server holds the backup's state from index ${index}`)
   * ```
   */
  restore(source: RestoreSource, options?: ProposeOptions): Promise<RestoreResult>;
  /**
   * Changes tunables of the running node: `snapshotThreshold` (from the next applied entry),
   * `trailingLogs` (from the next compaction), `maxConcurrentSnapshots` (transfers waiting for a
   * slot start at once when it grows; running ones are not stopped when it shrinks),
   * `snapshotIntervalMs` (the next period starts now; `0` stops it) and `snapshotTransfer` (merged
   * into the current limits; transfers that start afterwards use them). Options not given keep
   * their value.
   *
   * @throws `ConfigurationError` naming an option that is unknown, not reloadable, or out of bounds
   * (nothing changes then).
   *
   * @example
   * ```ts
   * node.reloadConfig({ snapshotThreshold: 100_000, trailingLogs: 50_000 })
   * ```
   */
  reloadConfig(options: ReloadableOptions): void;
  /** A synchronous snapshot of the node's state. */
  status(): RaftStatus;
  /**
   * Answers in words, from the current state: why this node is or is not the leader, why its last
   * (pre-)vote was refused, what it last answered a candidate, and on a leader why each replica is
   * in probe, replicate or snapshot. A debugging aid; the sentences are for people, not parsers.
   *
   * @example
   * ```ts
   * console.log(node.explain().text)
   * // n3 knows no leader in term 4; it campaigns when its election timer (150–300 ms) fires. ...
   * // n1 refused this node's pre-vote for term 5 (12 ms ago): the candidate's log is not as up-to-date ...
   * ```
   */
  explain(): Explanation;
  /** The leader, replayed to late subscribers; emits on every change. */
  readonly leader$: Observable<LeaderInfo>;
  /** The role, replayed to late subscribers; emits on every change. */
  readonly role$: Observable<Role>;
  /**
   * Observations (see {@link RaftEvent}), delivered synchronously as they happen; not replayed.
   *
   * @remarks Every stream of the node isolates its subscribers: one that throws is cut off and
   * reported as a `subscriberFailed` event, and the node and the other subscribers go on.
   * Callbacks run synchronously in the node's turn, so keep them short or move work off it
   * (`observeOn(asyncScheduler)`). All streams complete when the node stops.
   */
  readonly events$: Observable<RaftEvent>;
  /** The commit index this node knows, replayed to late subscribers; emits every change (it only grows while the node runs). */
  readonly commitIndex$: Observable<number>;
  /**
   * On a leader, each replica's progress (match, next, probe/replicate/snapshot state, inflight,
   * paused): on subscribe the current progress of every replica, then every change, in order. The
   * replica machines are followed only while someone subscribes, so an unobserved node pays nothing.
   * A node that is not the leader has no replicas and publishes nothing until it leads.
   */
  readonly progress$: Observable<ReplicaProgress>;
}

/** One pending operation (read, barrier, transfer, proposal): settles once, clears its timer. */
class Waiter<T> {
  settled = false;
  timer: TimerHandle | null = null;
  /** Reads: the batch (request id) it was sent in, once sent. */
  batchId: number | null = null;
  constructor(
    readonly onResolve: (value: T) => void,
    readonly onReject: (error: unknown) => void,
    readonly clearTimer: (timer: TimerHandle) => void,
  ) {}

  resolve(value: T): void {
    if (this.finish()) this.onResolve(value);
  }

  reject(error: unknown): void {
    if (this.finish()) this.onReject(error);
  }

  /** Marks it settled; false if it already was. */
  protected finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    return true;
  }
}

/**
 * One proposal's promise. Settles once; a settled proposal ignores later
 * outcomes (a timed-out proposal that commits anyway stays rejected).
 */
class Proposal<R> extends Waiter<ProposalResult<R>> {
  term = 0;
  batch: Batch<R> | null = null;
  /** `restore` for the records of `RaftNode.restore`. */
  entryType: 'normal' | 'restore' = 'normal';
  constructor(
    readonly data: Uint8Array,
    onResolve: (value: ProposalResult<R>) => void,
    onReject: (error: unknown) => void,
    clearTimer: (timer: TimerHandle) => void,
  ) {
    super(onResolve, onReject, clearTimer);
  }

  protected override finish(): boolean {
    if (!super.finish()) return false;
    this.batch?.settledOne();
    return true;
  }
}

/** The proposals of one turn, sharing one timeout timer. */
class Batch<R> {
  timer: TimerHandle | null = null;
  #open: number;
  constructor(
    readonly proposals: readonly Proposal<R>[],
    readonly clearTimer: (timer: TimerHandle) => void,
  ) {
    this.#open = proposals.length;
  }

  settledOne(): void {
    if (--this.#open === 0 && this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
  }

  expire(error: () => unknown): void {
    this.timer = null;
    for (const p of this.proposals) p.reject(error());
  }
}


/** A confirmed read or a barrier, waiting for the apply to reach `index`. */
interface ApplyWait {
  readonly index: number;
  readonly waiter: Waiter<number>;
  /** Barriers fail when leadership is lost before `index` commits; confirmed reads do not. */
  readonly barrier: boolean;
}

/** A leadership transfer this node started. */
interface Transfer {
  readonly waiter: Waiter<void>;
  /** How long the leader tries before aborting. */
  readonly timeoutMs: number;
  target: ServerId | null;
  /** The leader stepped down; waiting to learn that the target leads. */
  steppedDown: boolean;
}

/** The client membership change this leader appended and has not yet settled. */
interface ChangeWait {
  readonly waiter: Waiter<MembershipResult>;
  index: number;
  term: number;
  configuration: Configuration;
  /** Joint: settle on the C_new entry the leader appends once this one commits. */
  joint: boolean;
}

type NodeActor = Actor<typeof nodeMachine>;

function roleOf(snapshot: SnapshotFrom<typeof nodeMachine>): Role {
  const v = snapshot.value;
  return (typeof v === 'string' ? v : Object.keys(v)[0]) as Role;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

const internalsOf = new WeakMap<object, NodeInternals>();

/** What the simulator may look at inside a node. Not part of the stable API. */
export interface NodeInternals {
  /** Read batches waiting for the leader's answer (a leak check). */
  readonly pendingReadBatches: () => number;
  /** The live log (replaced on `start()`). */
  readonly log: RaftLog;
  /** Role, term and commit index from the machine, without building a full status. */
  readonly state: () => { readonly role: Role; readonly term: number; readonly commitIndex: number; readonly leaderId: ServerId | null };
}

/** @internal The node's log, for simulation checks. */
export function nodeInternals(node: RaftNode<unknown>): NodeInternals {
  const internals = internalsOf.get(node);
  if (internals === undefined) throw new TypeError('not a raftchart node');
  return internals;
}

class Node<R> implements RaftNode<R> {
  readonly id: ServerId;
  readonly #fsm: StateMachine<R>;
  readonly #storage: RaftStorage;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #random: Random;
  #opts: ResolvedOptions;
  readonly #inspect: RaftNodeOptions<R>['inspect'];

  #state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  #actor: NodeActor | null = null;
  #log = new RaftLog();
  #ready: Ready = emptyReady();
  #turnScheduled = false;
  #writeQueue: Ready[] = [];
  #writing = false;
  #hardState = { term: 0, votedFor: null as ServerId | null };

  #proposals: Proposal<R>[] = [];
  /** Proposals with a non-default timeout (they carry their own timer). */
  #batch: Proposal<R>[] | null = null;
  #pending = new Map<number, Proposal<R>>();

  #commitTarget = 0;
  #applied = 0;
  #applyBusy = false;

  /** The storage's snapshot store, when it has one. */
  readonly #store: (RaftStorage & SnapshotStore) | null;
  /** The newest snapshot held. */
  #snapshotMeta: SnapshotMeta | null = null;
  /** Automatic snapshots count applied entries from here: the last snapshot's index, or the last failed attempt's. */
  #snapshotBase = 0;
  /** Its configuration: in effect while the log holds no later configuration entry. */
  #snapshotConfig: { index: number; config: Configuration } | null = null;
  /** The snapshot being taken, and who waits for it. */
  #snapshotting: Promise<SnapshotMeta> | null = null;
  #snapshotWaiters: Waiter<SnapshotMeta>[] = [];
  /** The `snapshotIntervalMs` timer, and whether it found a snapshot due (taken at the next point between two applies). */
  #snapshotTimer: TimerHandle | null = null;
  #snapshotDue = false;
  /** Restore runs in the applied log; the id of the last restore started here, whether one runs; compaction after a restore goes up to its commit. */
  readonly #restores = new RestoreTracker((data, previous) => this.#crc32(data, previous));
  #restoreId = 0;
  #restoreRunning = false;
  #compactThrough = 0;
  /** Follower: the receiver of InstallSnapshot chunks (one per run), the chunks this turn handed over, and those still being handled. */
  #receiver: SnapshotReceiver | null = null;
  #snapshotInbox: InstallSnapshotRequest[] = [];
  #installing = 0;
  /** When the last InstallSnapshot chunk arrived (clock ms), or `null`: a local snapshot would discard the receiver's staging. */
  #lastChunkAt: number | null = null;
  /** Bytes of the staging in progress already reported to the metrics sink. */
  #stagedBytes = 0;
  /** A snapshot is being restored into the state machine: applying waits. */
  #restoring = false;
  #idleWaiters: (() => void)[] = [];
  #crc32: Crc32 = crc32Js;
  /** Leader: the snapshot reader of each transfer, the peers holding a transfer slot, and transfers waiting for one. */
  #readers = new Map<ServerId, { readonly self: AnyActorRef; readonly it: AsyncIterator<{ readonly data: Uint8Array; readonly last: boolean }> }>();
  #slots = new Set<ServerId>();
  #slotQueue: { readonly self: AnyActorRef; readonly intent: ReadChunkIntent; readonly index: number }[] = [];
  /** Readies pushed to the write queue, and written, so far (a barrier for snapshot installs and compaction). */
  #writesQueued = 0;
  #writesDone = 0;
  #writeBarriers: { readonly target: number; readonly resolve: () => void }[] = [];

  /** This turn's reads, sent as one `client.read` batch. */
  #reads: Waiter<number>[] = [];
  /** Read batches waiting for the leader's confirmation, by batch (request) id. */
  #readBatches = new Map<number, Waiter<number>[]>();
  /** Last read batch id; ids start from the clock so a restarted node never reuses one still in flight. */
  #readSeq = 0;
  /** Confirmed reads and barriers waiting for the apply to reach `index`. */
  #applyWaits: ApplyWait[] = [];
  /** This turn's barriers (their index is fixed after the turn's proposals are appended). */
  #barriers: Waiter<number>[] = [];
  #transfer: Transfer | null = null;
  /** Lease mode: when each heartbeat round of this leadership was first sent. */
  #roundSentAt = new Map<number, number>();

  #config: { index: number; config: Configuration } | null = null;
  #configDirty = false;
  /**
   * Membership requests sent to the machine and not yet answered, oldest first. Each
   * `client.membership` event ends in exactly one `appendConfig` (origin `client`) or `refuseChange`;
   * usually during the `send`, later when it was called from inside the actor's own processing.
   */
  #changeRequests: Waiter<MembershipResult>[] = [];
  /** The client membership change appended by this leader, until it settles. */
  #change: ChangeWait | null = null;
  #lastContact = new Map<ServerId, number>();

  #role: Role = 'follower';
  #leader: LeaderInfo = { leaderId: null, term: 0 };
  readonly #role$ = new BehaviorSubject<Role>('follower');
  readonly #leader$ = new BehaviorSubject<LeaderInfo>({ leaderId: null, term: 0 });
  readonly #events$ = new Subject<RaftEvent>();
  readonly #commitIndex$ = new BehaviorSubject<number>(0);
  readonly #progress = new ProgressFeed<SnapshotFrom<typeof replicaMachine>, ReplicaProgress>(
    (peer, r) => ({ peer, ...this.#replicaStatus(peer, r) }),
    sameProgress,
  );
  readonly #diagnostics: Diagnostics;
  readonly #metrics: RaftMetricsSink | undefined;
  #connections: Subscription | null = null;
  readonly #subscriberFailed = (stream: string, error: unknown): void => {
    if (!this.#events$.closed) this.#events$.next({ type: 'subscriberFailed', stream, error });
  };
  readonly leader$ = isolate('leader$', this.#leader$.asObservable(), this.#subscriberFailed);
  readonly role$ = isolate('role$', this.#role$.asObservable(), this.#subscriberFailed);
  readonly events$ = isolate('events$', this.#events$.asObservable(), this.#subscriberFailed);
  readonly commitIndex$ = isolate('commitIndex$', this.#commitIndex$.asObservable(), this.#subscriberFailed);
  readonly progress$ = isolate('progress$', this.#progress.progress$, this.#subscriberFailed);

  readonly #endTurn = (): void => this.#runTurn();
  readonly #clearTimer = (timer: TimerHandle): void => this.#clock.clearTimeout(timer);

  constructor(options: RaftNodeOptions<R>) {
    this.#opts = resolveOptions(options as RaftNodeOptions<unknown>);
    this.id = options.id;
    this.#fsm = options.stateMachine;
    this.#storage = options.storage;
    this.#transport = options.transport;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#inspect = options.inspect;
    this.#diagnostics = new Diagnostics(this.id, (event) => this.#events$.next(event));
    this.#metrics = options.metrics;
    this.#store = hasSnapshotStore(options.storage) ? options.storage : null;
    this.#publishInternals();
  }

  #publishInternals(): void {
    internalsOf.set(this, {
      pendingReadBatches: () => this.#readBatches.size,
      log: this.#log,
      state: () => {
        const snapshot = this.#actor?.getSnapshot();
        const ctx = snapshot?.context;
        return {
          role: snapshot === undefined ? 'follower' : roleOf(snapshot),
          term: ctx?.term ?? this.#hardState.term,
          commitIndex: ctx?.commitIndex ?? 0,
          leaderId: ctx?.leaderId ?? null,
        };
      },
    });
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ConfigurationError('start', `node ${this.id} was already started`);
    this.#state = 'starting';
    try {
      const stored = await this.#storage.open();
      const entries = stored.lastIndex >= stored.firstIndex ? await this.#storage.entries(stored.firstIndex, stored.lastIndex) : [];
      this.#log = new RaftLog(entries, stored.firstIndex, stored.boundaryTerm ?? 0);
      this.#publishInternals();
      this.#hardState = { term: stored.hardState.term, votedFor: stored.hardState.votedFor };
      this.#snapshotMeta = stored.snapshot ?? null;
      this.#crc32 = await loadCrc32().catch(() => crc32Js);
    } catch (error) {
      this.#state = 'stopped';
      throw error instanceof RaftError ? error : new StorageError(`node ${this.id}: cannot open storage`, { cause: error });
    }
    if ((this.#state as string) === 'stopped') throw new ShutdownError('start');
    const snap = this.#snapshotMeta;
    if (snap !== null) {
      // The state machine starts from the snapshot; the log tail is applied on top of it.
      this.#snapshotConfig = { index: snap.configurationIndex, config: snap.configuration };
      try {
        if (this.#fsm.restore === undefined || this.#store === null) {
          throw new ConfigurationError('stateMachine', `storage holds a snapshot at ${snap.index}: the state machine needs a restore() method`);
        }
        await this.#fsm.restore(this.#store.readSnapshot(snap.index), snap);
      } catch (error) {
        this.#state = 'stopped';
        await this.#storage.close().catch(() => undefined);
        throw error;
      }
      this.#applied = snap.index;
      this.#commitTarget = snap.index;
      this.#snapshotBase = snap.index;
      if ((this.#state as string) === 'stopped') throw new ShutdownError('start');
    }
    if (this.#store !== null) {
      this.#receiver = new SnapshotReceiver({
        id: this.id,
        storage: this.#store,
        currentTerm: () => this.#hardState.term,
        restore: (chunks, meta) => this.#installed(chunks, meta),
        observe: (o) => this.#receiverObserved(o),
        crc32: this.#crc32,
      });
    }
    this.#config = this.#latestConfig();
    const [lo, hi] = this.#opts.electionTimeoutMs;
    const machine = nodeMachine.provide({
      delays: {
        electionTimeout: () => lo + Math.floor(this.#random.next() * (hi - lo)),
        // The lease counts from the send time of the round a quorum confirmed, never from its answers.
        readLease: ({ context }) => {
          const now = this.#clock.now();
          const sent = this.#roundSentAt.get(context.leaseRound) ?? now;
          for (const round of this.#roundSentAt.keys()) if (round < context.leaseRound) this.#roundSentAt.delete(round);
          return Math.max(0, context.leaseMs - (now - sent));
        },
      },
      actions: {
        send: (_, messages) => {
          for (const m of messages) record(this.#ready, m);
          this.#scheduleTurn();
        },
        appendEntries: (_, intent) => {
          const truncated = this.#log.appendAfter(intent.prevIndex, intent.entries, this.#ready.delta);
          if (truncated !== null && this.#config !== null && truncated <= this.#config.index) this.#configDirty = true;
          for (const e of intent.entries) if (e.type === 'config') this.#configDirty = true;
          this.#scheduleTurn();
        },
        appendProposals: (_, intent) => {
          const first = this.#log.appendNew(intent.term, intent.type, intent.payloads, this.#ready.delta);
          if ((intent.type === 'normal' || intent.type === 'restore') && this.#batch !== null) this.#track(this.#batch, first, intent.term);
          this.#batch = null;
          this.#scheduleTurn();
        },
        commitTo: (_, index) => {
          if (index > this.#commitTarget) this.#commitTarget = index;
          this.#scheduleTurn();
        },
        rejectProposals: (_, leaderId) => {
          const batch = this.#batch ?? [];
          this.#batch = null;
          for (const p of batch) p.reject(new NotLeaderError(leaderId));
        },
        refuseProposals: (_, target) => {
          const batch = this.#batch ?? [];
          this.#batch = null;
          for (const p of batch) p.reject(new LeadershipTransferError(target));
        },
        confirmReads: (_, reads) => {
          for (const { id, index } of reads) {
            const batch = this.#readBatches.get(id);
            if (batch === undefined) continue;
            this.#readBatches.delete(id);
            for (const waiter of batch) if (!waiter.settled) this.#applyWaits.push({ index, waiter, barrier: false });
          }
          this.#scheduleTurn();
        },
        rejectReads: (_, { ids, leaderId }) => {
          for (const id of ids) {
            const batch = this.#readBatches.get(id);
            this.#readBatches.delete(id);
            for (const waiter of batch ?? []) waiter.reject(new NotLeaderError(leaderId));
          }
        },
        transferStarted: (_, target) => {
          if (this.#transfer !== null) this.#transfer.target = target;
          this.#events$.next({ type: 'transferStarted', target, term: this.#hardState.term });
        },
        transferFailed: (_, refusal) => this.#transferFailed(refusal),
        transferSteppedDown: (_, target) => {
          const transfer = this.#transfer;
          if (transfer === null) return;
          transfer.target = target;
          transfer.steppedDown = true;
          // The target should win within an election; wait at most one more maximum election timeout.
          this.#clock.clearTimeout(transfer.waiter.timer);
          transfer.waiter.timer = this.#clock.setTimeout(() => this.#endTransfer('timeout'), hi);
        },
        leaseExpired: () => {
          this.#events$.next({ type: 'readLeaseExpired', term: this.#hardState.term });
        },
        appendConfig: (_, intent) => {
          const index = this.#log.appendNew(intent.term, 'config', [encodeConfig(intent.config)], this.#ready.delta);
          const request = intent.origin === 'client' ? this.#changeRequests.shift() : undefined;
          if (request !== undefined) {
            this.#change = { waiter: request, index, term: intent.term, configuration: intent.config, joint: intent.config.old !== undefined };
          } else if (intent.origin === 'leaveJoint' && this.#change?.joint === true) {
            Object.assign(this.#change, { index, term: intent.term, configuration: intent.config, joint: false });
          }
          this.#setConfig({ index, config: intent.config }, false);
          this.#scheduleTurn();
        },
        refuseChange: (_, intent) => {
          const request = this.#changeRequests.shift();
          request?.reject(intent.refusal === 'notLeader' ? new NotLeaderError(intent.leaderId) : new MembershipError(intent.refusal, intent.detail));
        },
        installSnapshot: (_, message) => {
          if (this.#receiver === null) return; // no snapshot store: the leader's transfer runs out of retries
          // Appends wait until the install is done (the storage's commit replaces the log); handled after this turn's writes.
          this.#installing++;
          this.#lastChunkAt = this.#clock.now();
          this.#snapshotInbox.push(message);
          this.#scheduleTurn();
        },
      },
      actors: {
        replica: replicaMachine.provide({
          actions: {
            sendAppend: (_, intent) => this.#sendAppend(intent),
            sendHeartbeat: (_, intent) => this.#sendHeartbeat(intent),
            snapshotProgress: (_, intent) => this.#snapshotProgress(intent),
            snapshotFinished: (_, result) => this.#snapshotFinished(result),
          },
          actors: {
            snapshotSender: snapshotSenderMachine.provide({
              actions: {
                readChunk: ({ self, context }, intent) => this.#readChunk(self, intent, context.snapshot.index),
                sendChunk: (_, message) => {
                  if (this.#metrics?.snapshotBytes !== undefined) this.#measure(() => this.#metrics?.snapshotBytes?.('sent', message.data.length));
                  record(this.#ready, message);
                  this.#scheduleTurn();
                },
              },
            }),
          },
        }),
      },
    });
    const actor = createActor(machine, {
      input: {
        id: this.id,
        log: this.#log,
        term: this.#hardState.term,
        votedFor: this.#hardState.votedFor,
        config: this.#config?.config ?? null,
        configIndex: this.#config?.index ?? 0,
        promotionThreshold: this.#opts.promotionThreshold,
        preVote: this.#opts.preVote,
        checkQuorum: this.#opts.checkQuorum,
        electionTimeoutMs: lo,
        commitIndex: this.#applied,
        snapshots: this.#store === null ? null : this.#snapshotView(),
        heartbeatIntervalMs: this.#opts.heartbeatIntervalMs,
        readMode: this.#opts.readMode,
        leaseMs: Math.floor(lo * 0.9),
        limits: {
          maxInflight: this.#opts.maxInflightMessages,
          maxInflightBytes: this.#opts.maxInflightBytes,
          maxEntriesPerMessage: this.#opts.maxEntriesPerMessage,
          maxBytesPerMessage: this.#opts.maxBytesPerMessage,
        },
      },
      clock: this.#clock,
      ...(this.#inspect === undefined ? {} : { inspect: this.#inspect }),
    });
    this.#actor = actor;
    actor.subscribe({
      next: (snapshot) => this.#observe(snapshot),
      error: (error) => this.#fail(error),
    });
    if (this.#config !== null) this.#transport.setPeers(serversOf(this.#config.config));
    this.#connections = this.#transport.connections$?.subscribe((event) => this.#events$.next(event)) ?? null;
    await this.#transport.start(this.id, (message) => this.#receive(message));
    this.#readSeq = Math.max(this.#readSeq, Math.floor(this.#clock.now() * 1024));
    this.#state = 'running';
    actor.start();
    this.#armSnapshotInterval();
  }

  async stop(options?: StopOptions): Promise<void> {
    if (this.#state === 'stopped') return;
    if (options?.transferLeadership === true && this.#state === 'running' && this.#role === 'leader') {
      // Best effort: bounded by the transfer's own timeouts.
      await this.transferLeadership().catch(() => undefined);
    }
    if ((this.#state as string) === 'stopped') return;
    const wasStarted = this.#state !== 'new';
    this.#state = 'stopped';
    this.#actor?.stop();
    this.#failAll(() => new ShutdownError('proposal'));
    this.#failReads(() => new ShutdownError('read'));
    this.#change?.waiter.reject(new ShutdownError('membership change'));
    this.#change = null;
    for (const w of this.#changeRequests.splice(0)) w.reject(new ShutdownError('membership change'));
    if (this.#transfer !== null) this.#endTransfer('shutdown');
    for (const w of this.#snapshotWaiters.splice(0)) w.reject(new ShutdownError('snapshot'));
    this.#armSnapshotInterval();
    this.#closeReaders();
    this.#releaseWriteBarriers();
    if (wasStarted) {
      await this.#transport.stop();
      this.#connections?.unsubscribe();
      await this.#storage.close();
    }
    this.#progress.end();
    this.#role$.complete();
    this.#leader$.complete();
    this.#commitIndex$.complete();
    this.#events$.complete();
  }

  async bootstrap(servers: readonly Server[]): Promise<void> {
    const list = validateServers(servers, 'bootstrap(servers)');
    this.#requireRunning('bootstrap');
    if (this.#hardState.term > 0 || this.#log.lastIndex() > 0) {
      throw new ConfigurationError('bootstrap', `node ${this.id} already has state (term ${this.#hardState.term}, last index ${this.#log.lastIndex()}); bootstrap only a fresh node`);
    }
    const config: Configuration = { servers: list };
    this.#log.appendNew(1, 'config', [encodeConfig(config)], this.#ready.delta);
    const done = new Promise<void>((resolve) => this.#ready.synced.push(resolve));
    this.#actor?.send({ type: 'client.bootstrap', config });
    this.#setConfig({ index: 1, config }, false);
    this.#scheduleTurn();
    await done;
  }

  propose(data: Uint8Array, options?: ProposeOptions): Promise<ProposalResult<R>> {
    if (!(data instanceof Uint8Array)) return Promise.reject(new ConfigurationError('propose(data)', 'must be a Uint8Array'));
    if (data.byteLength > this.#opts.maxProposalBytes) {
      return Promise.reject(new ConfigurationError('propose(data)', `${data.byteLength} bytes exceeds maxProposalBytes (${this.#opts.maxProposalBytes})`));
    }
    const timeoutMs = timeoutOf('propose', options, this.#opts.proposalTimeoutMs);
    if (timeoutMs instanceof ConfigurationError) return Promise.reject(timeoutMs);
    if (this.#state !== 'running') return Promise.reject(new ShutdownError('proposal'));
    if (this.#role !== 'leader') return Promise.reject(new NotLeaderError(this.#leader.leaderId));
    return this.#enqueue(data, timeoutMs, 'normal');
  }

  /**
   * Queues one entry for the next turn's batch. A normal proposal on the default timeout shares
   * its batch's timer; any other carries its own.
   */
  #enqueue(data: Uint8Array, timeoutMs: number, entryType: 'normal' | 'restore'): Promise<ProposalResult<R>> {
    return new Promise<ProposalResult<R>>((resolve, reject) => {
      const timed = entryType === 'normal' && this.#metrics?.commitLatency !== undefined;
      const proposal = new Proposal<R>(data, timed ? this.#timed(resolve) : resolve, reject, this.#clearTimer);
      proposal.entryType = entryType;
      if (entryType === 'restore' || timeoutMs !== this.#opts.proposalTimeoutMs) {
        const what = entryType === 'normal' ? 'proposal' : 'restore';
        proposal.timer = this.#clock.setTimeout(() => proposal.reject(new TimeoutError(what, timeoutMs)), timeoutMs);
      }
      this.#proposals.push(proposal);
      this.#scheduleTurn();
    });
  }

  readIndex(options?: ReadOptions): Promise<number> {
    return this.#wait('read', options, (waiter) => {
      this.#reads.push(waiter);
    });
  }

  barrier(options?: ReadOptions): Promise<number> {
    if (this.#state === 'running' && this.#role !== 'leader') return Promise.reject(new NotLeaderError(this.#leader.leaderId));
    return this.#wait('barrier', options, (waiter) => {
      this.#barriers.push(waiter);
    });
  }

  /** Validates the timeout, creates a waiter with its timer and hands it to `queue`. */
  #wait(what: 'read' | 'barrier', options: ReadOptions | undefined, queue: (waiter: Waiter<number>) => void): Promise<number> {
    const timeoutMs = timeoutOf(what === 'read' ? 'readIndex' : 'barrier', options, this.#opts.proposalTimeoutMs);
    if (timeoutMs instanceof ConfigurationError) return Promise.reject(timeoutMs);
    if (this.#state !== 'running') return Promise.reject(new ShutdownError(what));
    return new Promise<number>((resolve, reject) => {
      const waiter = new Waiter<number>(resolve, reject, this.#clearTimer);
      waiter.timer = this.#clock.setTimeout(() => {
        waiter.reject(new TimeoutError(what, timeoutMs));
        // A batch whose reads all timed out is forgotten (its answer may never come).
        const batch = waiter.batchId === null ? undefined : this.#readBatches.get(waiter.batchId);
        if (batch?.every((r) => r.settled) === true) this.#readBatches.delete(waiter.batchId as number);
      }, timeoutMs);
      queue(waiter);
      this.#scheduleTurn();
    });
  }

  transferLeadership(id?: ServerId | null, options?: TransferOptions): Promise<void> {
    if (id !== undefined && id !== null && (typeof id !== 'string' || id.length === 0)) {
      return Promise.reject(new ConfigurationError('transferLeadership(id)', 'must be a server id, null or undefined'));
    }
    const timeoutMs = timeoutOf('transferLeadership', options, this.#opts.electionTimeoutMs[1]);
    if (timeoutMs instanceof ConfigurationError) return Promise.reject(timeoutMs);
    if (this.#state !== 'running' || this.#actor === null) return Promise.reject(new ShutdownError('leadership transfer'));
    if (this.#role !== 'leader') return Promise.reject(new NotLeaderError(this.#leader.leaderId));
    if (this.#transfer !== null) return Promise.reject(new LeadershipTransferError(this.#transfer.target, 'a leadership transfer is already in progress'));
    const actor = this.#actor;
    return new Promise<void>((resolve, reject) => {
      const waiter = new Waiter<void>(resolve, reject, this.#clearTimer);
      const transfer: Transfer = { waiter, timeoutMs, target: id ?? null, steppedDown: false };
      this.#transfer = transfer;
      actor.send({ type: 'client.transfer', target: id ?? null, timeoutMs });
      this.#scheduleTurn();
    });
  }

  addLearner(id: ServerId, address: string, options?: MembershipOptions): Promise<MembershipResult> {
    return this.#requestChange('addLearner', options, () => ({ type: 'addLearner', server: checkServer('addLearner', id, address) }));
  }

  addVoter(id: ServerId, address: string, options?: MembershipOptions): Promise<MembershipResult> {
    return this.#requestChange('addVoter', options, () => ({ type: 'addVoter', server: checkServer('addVoter', id, address) }));
  }

  demoteVoter(id: ServerId, options?: MembershipOptions): Promise<MembershipResult> {
    return this.#requestChange('demoteVoter', options, () => ({ type: 'demoteVoter', id: checkId('demoteVoter(id)', id) }));
  }

  removeServer(id: ServerId, options?: MembershipOptions): Promise<MembershipResult> {
    return this.#requestChange('removeServer', options, () => ({ type: 'removeServer', id: checkId('removeServer(id)', id) }));
  }

  changeMembership(servers: readonly Server[], options?: MembershipOptions): Promise<MembershipResult> {
    return this.#requestChange('changeMembership', options, () => ({ type: 'replace', servers: validateServers(servers, 'changeMembership(servers)') }));
  }

  /** Validates a membership request and hands it to the machine, which appends it or refuses it at once. */
  #requestChange(what: string, options: MembershipOptions | undefined, build: () => MembershipChange): Promise<MembershipResult> {
    const timeoutMs = timeoutOf(what, options, this.#opts.proposalTimeoutMs);
    if (timeoutMs instanceof ConfigurationError) return Promise.reject(timeoutMs);
    const force = options?.force ?? false;
    if (typeof force !== 'boolean') return Promise.reject(new ConfigurationError(`${what}(options.force)`, 'must be a boolean'));
    let change: MembershipChange;
    try {
      change = build();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#state !== 'running' || this.#actor === null) return Promise.reject(new ShutdownError('membership change'));
    if (this.#role !== 'leader') return Promise.reject(new NotLeaderError(this.#leader.leaderId));
    const actor = this.#actor;
    return new Promise<MembershipResult>((resolve, reject) => {
      const waiter = new Waiter<MembershipResult>(resolve, reject, this.#clearTimer);
      waiter.timer = this.#clock.setTimeout(() => waiter.reject(new TimeoutError('membership change', timeoutMs)), timeoutMs);
      this.#changeRequests.push(waiter);
      actor.send({ type: 'client.membership', change, force });
      this.#scheduleTurn();
    });
  }

  /** The machine refused or aborted the transfer. */
  #transferFailed(refusal: TransferRefusal): void {
    const transfer = this.#transfer;
    if (transfer === null) return;
    if (refusal === 'timeout') {
      this.#endTransfer('timeout');
      return;
    }
    this.#transfer = null;
    const target = transfer.target;
    let error: Error;
    if (refusal === 'notLeader') error = new NotLeaderError(this.#leader.leaderId);
    else if (refusal === 'busy') error = new LeadershipTransferError(target, 'a leadership transfer is already in progress');
    else if (refusal === 'noTarget') error = new ConfigurationError('transferLeadership(id)', 'no other voter to hand leadership to');
    else if (refusal === 'self') error = new ConfigurationError('transferLeadership(id)', `${String(target)} is this node`);
    else error = new ConfigurationError('transferLeadership(id)', `${String(target)} is not a voter`);
    transfer.waiter.reject(error);
  }

  /** Ends the transfer in progress without success. */
  #endTransfer(reason: TransferAbortReason): void {
    const transfer = this.#transfer;
    if (transfer === null) return;
    this.#transfer = null;
    if (transfer.target !== null) this.#events$.next({ type: 'transferAborted', target: transfer.target, reason, term: this.#hardState.term });
    if (reason === 'timeout') transfer.waiter.reject(new TimeoutError('leadership transfer', transfer.timeoutMs));
    else if (reason === 'shutdown') transfer.waiter.reject(new ShutdownError('leadership transfer'));
    else transfer.waiter.reject(new LeadershipTransferError(transfer.target, `another node took over (${String(this.#leader.leaderId)})`));
  }

  snapshot(): Promise<SnapshotMeta> {
    if (this.#fsm.snapshot === undefined) return Promise.reject(new ConfigurationError('stateMachine', 'has no snapshot() method: this node cannot take snapshots'));
    if (this.#store === null) return Promise.reject(new ConfigurationError('storage', 'implements no snapshot store (stageSnapshot, readSnapshot, compact, ...)'));
    if (this.#state !== 'running') return Promise.reject(new ShutdownError('snapshot'));
    const current = this.#snapshotMeta;
    if (this.#snapshotting === null && current !== null && current.index >= this.#applied) return Promise.resolve(current);
    if (this.#snapshotting === null && this.#applied === 0) return Promise.reject(new ConfigurationError('snapshot', 'nothing applied yet'));
    return new Promise<SnapshotMeta>((resolve, reject) => {
      this.#snapshotWaiters.push(new Waiter<SnapshotMeta>(resolve, reject, this.#clearTimer));
      this.#maybeSnapshot();
    });
  }

  restore(source: RestoreSource, options?: ProposeOptions): Promise<RestoreResult> {
    try {
      checkRestoreSource(source);
    } catch (error) {
      return Promise.reject(error);
    }
    const timeoutMs = timeoutOf('restore', options, this.#opts.proposalTimeoutMs);
    if (timeoutMs instanceof ConfigurationError) return Promise.reject(timeoutMs);
    if (this.#fsm.snapshot === undefined || this.#fsm.restore === undefined) {
      return Promise.reject(new ConfigurationError('stateMachine', 'needs snapshot() and restore() methods to restore a snapshot through the log'));
    }
    if (this.#store === null) return Promise.reject(new ConfigurationError('storage', 'implements no snapshot store: a restore could never be compacted'));
    if (this.#state !== 'running') return Promise.reject(new ShutdownError('restore'));
    if (this.#role !== 'leader') return Promise.reject(new NotLeaderError(this.#leader.leaderId));
    if (this.#restoreRunning) return Promise.reject(new ConfigurationError('restore', 'a restore is already running on this node'));
    this.#restoreRunning = true;
    this.#restoreId = (this.#restoreId + 1) >>> 0;
    // A run belongs to one term: once this node's term moves, the rest of it must not be appended.
    const term = this.#hardState.term;
    const run = writeRestore(source, {
      id: this.#restoreId,
      entryBytes: Math.min(this.#opts.snapshotTransfer.chunkBytes, this.#opts.maxBytesPerMessage),
      window: 8,
      crc32: this.#crc32,
      propose: (payload) =>
        this.#hardState.term === term ? this.#proposeRecord(payload, timeoutMs) : Promise.reject(new NotLeaderError(this.#leader.leaderId)),
      stallMs: timeoutMs,
      clock: this.#clock,
    });
    return run.finally(() => {
      this.#restoreRunning = false;
    });
  }

  /** Leader: proposes one `restore` entry, settled when it is applied (or fails like a proposal). */
  #proposeRecord(payload: Uint8Array, timeoutMs: number): Promise<ProposalResult<R>> {
    if (this.#state !== 'running') return Promise.reject(new ShutdownError('restore'));
    if (this.#role !== 'leader') return Promise.reject(new NotLeaderError(this.#leader.leaderId));
    return this.#enqueue(payload, timeoutMs, 'restore');
  }

  reloadConfig(options: ReloadableOptions): void {
    this.#opts = reloadOptions(this.#opts, options);
    if (options.snapshotIntervalMs !== undefined) this.#armSnapshotInterval();
    while (this.#slotQueue.length > 0 && this.#slots.size < this.#opts.maxConcurrentSnapshots) {
      const waiting = this.#slotQueue.shift();
      if (waiting !== undefined && waiting.self.getSnapshot().status === 'active') this.#readChunk(waiting.self, waiting.intent, waiting.index);
    }
    this.#scheduleTurn();
  }

  status(): RaftStatus {
    const snapshot = this.#actor?.getSnapshot();
    const ctx = snapshot?.context;
    const replicas: Record<ServerId, ReplicaStatus> = {};
    const now = this.#clock.now();
    for (const [peer, ref] of Object.entries(ctx?.replicas ?? {})) replicas[peer] = this.#replicaStatus(peer, ref.getSnapshot(), now);
    return {
      id: this.id,
      role: snapshot === undefined ? 'follower' : roleOf(snapshot),
      term: ctx?.term ?? this.#hardState.term,
      leaderId: ctx?.leaderId ?? null,
      commitIndex: ctx?.commitIndex ?? 0,
      appliedIndex: this.#applied,
      lastLogIndex: this.#log.lastIndex(),
      members: serversOf(this.#config?.config ?? null),
      voters: ctx?.voters ?? [],
      learners: ctx?.learners ?? [],
      oldVoters: ctx?.oldVoters ?? null,
      configIndex: ctx?.configIndex ?? 0,
      replicas,
    };
  }

  explain(): Explanation {
    const status = this.status();
    const ctx = this.#actor?.getSnapshot().context;
    const now = this.#clock.now();
    const lastContactMs: Record<ServerId, number | null> = {};
    for (const id of new Set([...status.voters, ...status.learners, ...(status.oldVoters ?? [])])) {
      const at = this.#lastContact.get(id);
      lastContactMs[id] = at === undefined ? null : now - at;
    }
    return explain({
      id: this.id,
      role: status.role,
      term: status.term,
      leaderId: status.leaderId,
      votedFor: ctx?.votedFor ?? this.#hardState.votedFor,
      voters: status.voters,
      learners: status.learners,
      oldVoters: status.oldVoters,
      configured: this.#config !== null,
      commitIndex: status.commitIndex,
      lastLogIndex: status.lastLogIndex,
      votes: ctx?.votes ?? {},
      electionTimeoutMs: this.#opts.electionTimeoutMs,
      preVote: this.#opts.preVote,
      checkQuorum: this.#opts.checkQuorum,
      lastContactMs,
      replicas: status.replicas,
      maxInflight: this.#opts.maxInflightMessages,
      lastRefusalReceived: this.#diagnostics.lastRefusalReceived,
      lastAnswerGiven: this.#diagnostics.lastAnswerGiven,
      failedPeers: this.#diagnostics.failedPeers(),
      transferTarget: ctx?.transferTarget ?? null,
      now,
    });
  }

  #replicaStatus(peer: ServerId, r: SnapshotFrom<typeof replicaMachine>, now = this.#clock.now()): ReplicaStatus {
    const contact = this.#lastContact.get(peer);
    const status: ReplicaStatus = {
      match: r.context.match,
      next: r.context.next,
      state: (typeof r.value === 'string' ? r.value : Object.keys(r.value)[0]) as ReplicaState,
      inflight: r.context.inflights.count,
      paused: r.context.paused,
      lastContactMs: contact === undefined ? null : now - contact,
      down: this.#diagnostics.isDown(peer),
    };
    return r.context.transfer === null ? status : { ...status, snapshot: r.context.transfer };
  }

  // ---- the turn ----------------------------------------------------------------------------------

  #receive(message: RaftMessage): void {
    if (this.#state !== 'running' || message.to !== this.id) return;
    // While a snapshot is being installed the log must not change under the storage's commit: the leader resends.
    if (this.#installing > 0 && message.type === 'append') return;
    const now = this.#clock.now();
    this.#lastContact.set(message.from, now);
    this.#diagnostics.inbound(message, now);
    if (message.type === 'vote' || message.type === 'preVote') {
      // A (pre-)vote request that leaves no answer was ignored by leader stickiness (§4.2.3): say so on events$.
      const r = this.#ready;
      const [i, a] = [r.immediate.length, r.afterSync.length];
      this.#actor?.send({ type: 'msg.receive', message });
      const answered = (list: readonly RaftMessage[], from: number): boolean => {
        for (let k = from; k < list.length; k++) if (list[k]?.to === message.from) return true;
        return false;
      };
      if (r === this.#ready && !answered(r.immediate, i) && !answered(r.afterSync, a)) this.#diagnostics.ignoredVote(message, now);
    } else {
      this.#actor?.send({ type: 'msg.receive', message });
    }
    // A configuration takes effect when appended: tell the machine before anything else happens.
    if (this.#configDirty) this.#refreshConfig();
    this.#scheduleTurn();
  }

  #scheduleTurn(): void {
    if (this.#turnScheduled || this.#state !== 'running') return;
    this.#turnScheduled = true;
    this.#clock.setImmediate(this.#endTurn);
  }

  #runTurn(): void {
    this.#turnScheduled = false;
    if (this.#state !== 'running' || this.#actor === null) return;
    if (this.#proposals.length > 0) {
      const proposals = this.#proposals;
      this.#proposals = [];
      // Proposals on the default timeout share one timer; the others carry their own.
      const shared = proposals.filter((p) => p.timer === null && !p.settled);
      if (shared.length > 0) {
        const batch = new Batch<R>(shared, this.#clearTimer);
        const timeoutMs = this.#opts.proposalTimeoutMs;
        batch.timer = this.#clock.setTimeout(() => batch.expire(() => new TimeoutError('proposal', timeoutMs)), timeoutMs);
        for (const p of shared) p.batch = batch;
      }
      if (proposals.some((p) => p.entryType === 'restore')) {
        this.#proposeBatch(proposals.filter((p) => p.entryType === 'normal'), 'normal');
        this.#proposeBatch(proposals.filter((p) => p.entryType === 'restore'), 'restore');
      } else this.#proposeBatch(proposals, 'normal');
    }
    if (this.#reads.length > 0) {
      const reads = this.#reads.filter((r) => !r.settled);
      this.#reads = [];
      if (reads.length > 0) {
        const id = ++this.#readSeq;
        for (const r of reads) r.batchId = id;
        this.#readBatches.set(id, reads);
        this.#actor.send({ type: 'client.read', id });
      }
    }
    if (this.#barriers.length > 0) {
      const barriers = this.#barriers;
      this.#barriers = [];
      const index = this.#log.lastIndex();
      for (const b of barriers) {
        if (this.#role !== 'leader') b.reject(new NotLeaderError(this.#leader.leaderId));
        else this.#applyWaits.push({ index, waiter: b, barrier: true });
      }
    }
    if (this.#configDirty) this.#refreshConfig();
    this.#flush();
    if (this.#snapshotInbox.length > 0) this.#handleSnapshotChunks();
    this.#apply();
    this.#releaseWaits();
  }

  /** Hands one batch of proposals of one entry type to the machine, which appends or rejects it. */
  #proposeBatch(proposals: Proposal<R>[], entryType: 'normal' | 'restore'): void {
    if (proposals.length === 0) return;
    this.#batch = proposals;
    if (entryType === 'normal' && this.#metrics?.proposalBatch !== undefined) this.#measure(() => this.#metrics?.proposalBatch?.(proposals.length));
    const payloads = new Array<Uint8Array>(proposals.length);
    for (let k = 0; k < proposals.length; k++) payloads[k] = (proposals[k] as Proposal<R>).data;
    this.#actor?.send(entryType === 'normal' ? { type: 'client.propose', payloads } : { type: 'client.propose', payloads, entryType });
    // A batch the machine neither appended nor rejected (it cannot happen today) must not hang.
    if (this.#batch !== null) for (const p of this.#batch) p.reject(new NotLeaderError(this.#leader.leaderId));
    this.#batch = null;
  }

  /** Resolves the confirmed reads and barriers whose index is applied; forgets settled ones. */
  #releaseWaits(): void {
    if (this.#applyWaits.length === 0) return;
    const applied = this.#applied;
    const keep: ApplyWait[] = [];
    for (const w of this.#applyWaits) {
      if (w.waiter.settled) continue;
      if (w.index <= applied) w.waiter.resolve(w.index);
      else keep.push(w);
    }
    this.#applyWaits = keep;
  }

  #failReads(error: () => Error): void {
    for (const r of this.#reads) r.reject(error());
    this.#reads = [];
    for (const batch of this.#readBatches.values()) for (const r of batch) r.reject(error());
    this.#readBatches.clear();
    for (const w of this.#applyWaits) w.waiter.reject(error());
    this.#applyWaits = [];
    for (const b of this.#barriers) b.reject(error());
    this.#barriers = [];
  }

  /** Drains the Ready: immediate messages now; writes and what depends on them through the write queue. */
  #flush(): void {
    const r = this.#ready;
    this.#ready = emptyReady();
    if (r.immediate.length > 0) this.#send(r.immediate);
    if (!hasWrite(r) && !this.#writing && this.#writeQueue.length === 0) {
      if (r.afterSync.length > 0) this.#send(r.afterSync);
      for (const f of r.synced) f();
      return;
    }
    this.#writeQueue.push(r);
    this.#writesQueued++;
    void this.#pumpWrites();
  }

  /** Resolves once every write queued so far is done (at once when none is pending). */
  #afterWrites(): Promise<void> {
    const target = this.#writesQueued;
    if (this.#writesDone >= target || this.#state !== 'running') return Promise.resolve();
    return new Promise<void>((resolve) => this.#writeBarriers.push({ target, resolve }));
  }

  #releaseWriteBarriers(): void {
    const stopped = this.#state !== 'running';
    this.#writeBarriers = this.#writeBarriers.filter((b) => {
      if (!stopped && b.target > this.#writesDone) return true;
      b.resolve();
      return false;
    });
  }

  /** Wraps a proposal's resolve to report its latency to the metrics sink. */
  #timed<T>(resolve: (value: T) => void): (value: T) => void {
    const t0 = this.#clock.now();
    return (value) => {
      this.#measure(() => this.#metrics?.commitLatency?.(this.#clock.now() - t0));
      resolve(value);
    };
  }

  /** Calls a metrics callback; its throw must not reach the node. */
  #measure(call: () => void): void {
    try {
      call();
    } catch {
      // a broken metrics sink loses its measurement, nothing else
    }
  }

  #send(messages: readonly RaftMessage[]): void {
    this.#diagnostics.outbound(messages, this.#clock.now(), this.#lastContact, this.#opts.electionTimeoutMs[0]);
    this.#transport.send(messages);
  }

  async #pumpWrites(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#writeQueue.length > 0 && this.#state === 'running') {
        const batch = this.#writeQueue.splice(0);
        const r = merge(batch);
        if (hasWrite(r)) {
          await this.#storage.write({
            ...(r.hardState === null ? {} : { hardState: r.hardState }),
            ...(r.delta.truncateFrom === null ? {} : { truncateFrom: r.delta.truncateFrom }),
            entries: r.delta.entries,
          });
        }
        this.#writesDone += batch.length;
        if (this.#writeBarriers.length > 0) this.#releaseWriteBarriers();
        if (this.#state !== 'running') return;
        if (r.afterSync.length > 0) this.#send(r.afterSync);
        for (const f of r.synced) f();
        const last = r.delta.entries[r.delta.entries.length - 1];
        // Only a leader counts its own durable index towards the commit quorum.
        if (last !== undefined && this.#role === 'leader') {
          this.#actor?.send({ type: 'storage.synced', index: last.index, term: last.term });
          this.#scheduleTurn();
        }
      }
    } catch (error) {
      this.#fail(error instanceof StorageError ? error : new StorageError(`node ${this.id}: storage write failed`, { cause: error }));
    } finally {
      this.#writing = false;
      if (this.#state !== 'running') this.#releaseWriteBarriers();
    }
  }

  // ---- replication intents -----------------------------------------------------------------------

  #sendAppend(intent: SendAppendIntent): void {
    const entries: LogEntry[] = intent.lastIndex > intent.prevIndex ? this.#log.slice(intent.prevIndex + 1, intent.lastIndex) : [];
    if (this.#metrics?.appendMessage !== undefined) this.#measure(() => this.#metrics?.appendMessage?.(entries.length));
    record(this.#ready, {
      type: 'append',
      term: intent.term,
      from: this.id,
      to: intent.to,
      prevLogIndex: intent.prevIndex,
      prevLogTerm: intent.prevTerm,
      entries,
      leaderCommit: intent.commit,
    });
    this.#scheduleTurn();
  }

  #sendHeartbeat(intent: SendHeartbeatIntent): void {
    if (this.#opts.readMode === 'lease' && !this.#roundSentAt.has(intent.round)) this.#roundSentAt.set(intent.round, this.#clock.now());
    record(this.#ready, { type: 'heartbeat', term: intent.term, from: this.id, to: intent.to, commit: intent.commit, round: intent.round });
    this.#scheduleTurn();
  }

  // ---- apply -------------------------------------------------------------------------------------

  #track(batch: readonly Proposal<R>[], first: number, term: number): void {
    for (let k = 0; k < batch.length; k++) {
      const p = batch[k] as Proposal<R>;
      p.term = term;
      this.#pending.set(first + k, p);
    }
  }

  /** Applies committed entries in index order; resolves proposals made here. */
  #apply(): void {
    if (this.#applyBusy || this.#restoring) return;
    const threshold = this.#opts.snapshotThreshold;
    while (this.#applied < this.#commitTarget && this.#state === 'running') {
      // Between two applies: the state is exactly that of `#applied`, the moment to capture a snapshot.
      if (this.#applied - this.#snapshotBase >= threshold || this.#snapshotWaiters.length > 0 || this.#snapshotDue) this.#maybeSnapshot();
      const entry = this.#log.entry(this.#applied + 1);
      if (entry === undefined) return;
      // The tracker needs a normal entry only while a run is open (its term may close the run).
      if (entry.type !== 'normal' || this.#restores.open()) {
        const step = this.#restores.apply(entry);
        if (step.type === 'complete') {
          this.#restoreAt(entry, step.restore);
          return;
        }
        if (step.type === 'invalid') this.#restoreDone(entry, new RestoreError(entry.index, step.why));
      }
      if (entry.type !== 'normal') {
        this.#applied = entry.index;
        if (entry.type === 'config') this.#settleChange(entry);
        else this.#settle(entry, undefined as R);
        continue;
      }
      let result: R | Promise<R>;
      try {
        result = this.#fsm.apply({ index: entry.index, term: entry.term, data: entry.data });
      } catch (error) {
        this.#events$.next({ type: 'applyFailed', index: entry.index, error });
        result = undefined as R;
      }
      if (isThenable(result)) {
        this.#applyBusy = true;
        Promise.resolve(result).then(
          (value) => this.#afterAsyncApply(entry, value),
          (error: unknown) => {
            this.#events$.next({ type: 'applyFailed', index: entry.index, error });
            this.#afterAsyncApply(entry, undefined as R);
          },
        );
        return;
      }
      this.#applied = entry.index;
      this.#settle(entry, result);
    }
    if (this.#applied - this.#snapshotBase >= threshold || this.#snapshotWaiters.length > 0 || this.#snapshotDue) this.#maybeSnapshot();
  }

  /**
   * A restore's commit entry is applied: the state machine restores from the run's chunks, read
   * from the log, as an asynchronous apply of the commit (so an install from the leader waits for it).
   */
  #restoreAt(entry: LogEntry, restore: CompletedRestore): void {
    const fsm = this.#fsm;
    if (fsm.restore === undefined) {
      // As for a snapshot from the leader: going on would leave this server's state different from the others'.
      this.#fail(new ConfigurationError('stateMachine', `has no restore() method: it cannot apply the restore committed at ${entry.index}`));
      return;
    }
    this.#applyBusy = true;
    const log = this.#log;
    const chunks = async function* (): AsyncGenerator<Uint8Array> {
      for (const index of restore.chunks) {
        const e = log.entry(index);
        const record = e === undefined ? null : decodeRestoreRecord(e.data);
        // Never happens: no snapshot (hence no compaction) is taken inside an open run.
        if (record?.kind !== 'chunk') throw new StorageError(`restore chunk at index ${index} is no longer in the log`);
        yield record.data;
      }
    };
    const config = this.#configAt(entry.index);
    const meta: SnapshotMeta = {
      index: entry.index,
      term: entry.term,
      configuration: config?.config ?? { servers: [] },
      configurationIndex: config?.index ?? 0,
      size: restore.size,
      checksum: restore.checksum,
      chunks: restore.chunks.length,
    };
    Promise.resolve()
      .then(() => fsm.restore?.(chunks(), meta))
      .then(
        () => null,
        (error: unknown) => new RestoreError(entry.index, `the state machine's restore() threw: ${error instanceof Error ? error.message : String(error)}`, { cause: error }),
      )
      .then((failure) => {
        if (this.#state !== 'running') return;
        this.#restoreDone(entry, failure, restore.size);
        this.#afterAsyncApply(entry, undefined as R);
      });
  }

  /** A restore's commit was applied (`failure` null) or refused: report it, settle this leader's call, snapshot and compact the run away. */
  #restoreDone(entry: LogEntry, failure: RestoreError | null, size = 0): void {
    if (failure === null) this.#events$.next({ type: 'restored', index: entry.index, term: entry.term, size });
    else this.#events$.next({ type: 'restoreFailed', index: entry.index, error: failure });
    const pending = this.#pending.get(entry.index);
    if (failure !== null && pending !== undefined) {
      this.#pending.delete(entry.index);
      pending.reject(pending.term === entry.term ? failure : new LeadershipLostError(entry.index));
    }
    this.#snapshotDue = true;
    this.#compactThrough = Math.max(this.#compactThrough, entry.index);
  }

  /** A configuration entry was applied: the client change it ends (if this leader appended it) settles. */
  #settleChange(entry: LogEntry): void {
    const change = this.#change;
    if (change === null || change.index !== entry.index) return;
    this.#change = null;
    if (change.term !== entry.term) change.waiter.reject(new LeadershipLostError(entry.index));
    else change.waiter.resolve({ index: entry.index, term: entry.term, configuration: change.configuration });
  }

  #afterAsyncApply(entry: LogEntry, value: R): void {
    this.#applyBusy = false;
    if (this.#state !== 'running') return;
    this.#applied = entry.index;
    this.#settle(entry, value);
    if (this.#restoring) {
      for (const f of this.#idleWaiters.splice(0)) f();
      return;
    }
    this.#apply();
    this.#releaseWaits();
  }

  #settle(entry: LogEntry, result: R): void {
    const pending = this.#pending.get(entry.index);
    if (pending === undefined) return;
    this.#pending.delete(entry.index);
    if (pending.term === entry.term) pending.resolve({ index: entry.index, term: entry.term, result });
    else pending.reject(new LeadershipLostError(entry.index));
  }

  // ---- snapshots ---------------------------------------------------------------------------------

  /** Starts taking a snapshot when one is due or asked for, the apply is between entries and none is being taken. */
  #maybeSnapshot(): void {
    if (this.#snapshotting !== null || this.#restoring || this.#applyBusy || this.#state !== 'running') return;
    // The store holds one staging: while a leader's snapshot streams in (chunks within two maximum
    // election timeouts), taking one here would discard it. Waiters are served on a later turn.
    if (this.#installing > 0 || (this.#lastChunkAt !== null && this.#clock.now() - this.#lastChunkAt < 2 * this.#opts.electionTimeoutMs[1])) return;
    const store = this.#store;
    const take = this.#fsm.snapshot;
    if (store === null || take === undefined) return;
    // Inside an open restore run a snapshot would drop chunks its commit needs (see RestoreTracker).
    if (this.#restores.open()) return;
    this.#snapshotDue = false;
    const index = this.#applied;
    const term = this.#log.term(index);
    const config = this.#configAt(index);
    if (index === 0 || term === undefined || config === null || index <= (this.#snapshotMeta?.index ?? 0)) {
      // Nothing new to capture: waiters get the current snapshot (or learn there is none).
      const current = this.#snapshotMeta;
      for (const w of this.#snapshotWaiters.splice(0)) {
        if (current !== null) w.resolve(current);
        else w.reject(new ConfigurationError('snapshot', 'nothing applied yet'));
      }
      return;
    }
    let content: Promise<Uint8Array | AsyncIterable<Uint8Array>>;
    try {
      // Called between two applies: the state machine captures its state now (see StateMachine.snapshot).
      content = Promise.resolve(take.call(this.#fsm));
    } catch (error) {
      content = Promise.reject(error);
    }
    const run = this.#writeSnapshot(store, content, { index, term, configuration: config.config, configurationIndex: config.index });
    this.#snapshotting = run;
    run.then(
      (meta) => {
        this.#snapshotting = null;
        for (const w of this.#snapshotWaiters.splice(0)) w.resolve(meta);
        this.#scheduleTurn();
      },
      (error: unknown) => {
        this.#snapshotting = null;
        this.#snapshotBase = Math.max(this.#snapshotBase, index);
        if (this.#state === 'running') this.#events$.next({ type: 'snapshotFailed', index, error });
        for (const w of this.#snapshotWaiters.splice(0)) w.reject(error);
        // Automatic snapshots wait for the next threshold's worth of entries after a failure.
      },
    );
  }

  /**
   * (Re)starts the `snapshotIntervalMs` timer: each period, jittered up to +10 %, marks a snapshot
   * due when anything was applied since the last one. Stops it when the interval is 0 or the node
   * is not running.
   */
  #armSnapshotInterval(): void {
    if (this.#snapshotTimer !== null) this.#clock.clearTimeout(this.#snapshotTimer);
    this.#snapshotTimer = null;
    const period = this.#opts.snapshotIntervalMs;
    if (period === 0 || this.#state !== 'running' || this.#store === null || this.#fsm.snapshot === undefined) return;
    const delay = period + Math.floor(this.#random.next() * period * 0.1);
    this.#snapshotTimer = this.#clock.setTimeout(() => {
      this.#snapshotTimer = null;
      if (this.#applied > this.#snapshotBase) {
        this.#snapshotDue = true;
        this.#maybeSnapshot();
      }
      this.#armSnapshotInterval();
    }, delay);
  }

  /** Stages the content, makes it current, compacts the log keeping `trailingLogs` entries. */
  async #writeSnapshot(
    store: RaftStorage & SnapshotStore,
    content: Promise<Uint8Array | AsyncIterable<Uint8Array>>,
    descriptor: { index: number; term: number; configuration: Configuration; configurationIndex: number },
  ): Promise<SnapshotMeta> {
    const data = await content;
    if (!(data instanceof Uint8Array) && (typeof data !== 'object' || data === null || typeof (data as Partial<AsyncIterable<Uint8Array>>)[Symbol.asyncIterator] !== 'function')) {
      throw new ConfigurationError('stateMachine.snapshot()', 'must resolve with a Uint8Array or an AsyncIterable<Uint8Array>');
    }
    // The log entries up to the snapshot must be in storage before its commit (which keeps a log that holds them).
    await this.#afterWrites();
    this.#requireRunning('snapshot');
    const staging = await store.stageSnapshot(descriptor);
    let meta: SnapshotMeta;
    try {
      for await (const { data: chunk } of chunksOf(data instanceof Uint8Array ? [data] : data, DEFAULT_SNAPSHOT_CHUNK_BYTES)) {
        if (chunk.length > 0) await staging.append(chunk);
      }
      meta = await staging.commit();
    } catch (error) {
      await staging.discard().catch(() => undefined);
      throw error;
    }
    this.#requireRunning('snapshot');
    if (meta.index > (this.#snapshotMeta?.index ?? 0)) {
      this.#snapshotBase = Math.max(this.#snapshotBase, meta.index);
      this.#snapshotMeta = meta;
      this.#snapshotConfig = { index: meta.configurationIndex, config: meta.configuration };
    }
    this.#events$.next({ type: 'snapshotCreated', index: meta.index, term: meta.term, size: meta.size });
    // After a restore the whole run goes: a follower that still needs it gets this snapshot, the same state.
    const upTo = Math.max(meta.index - this.#opts.trailingLogs, Math.min(this.#compactThrough, meta.index));
    if (upTo >= this.#log.firstIndex() && this.#log.term(upTo) !== undefined) {
      await store.compact(upTo);
      this.#requireRunning('snapshot');
      const before = this.#log.firstIndex();
      this.#log.compactTo(upTo);
      if (this.#log.firstIndex() > before) this.#events$.next({ type: 'logCompacted', upTo, firstIndex: this.#log.firstIndex() });
    }
    return meta;
  }

  /** What the replicas may send: the newest snapshot held. */
  #snapshotView(): ReplicaSnapshots {
    const opts = (): ResolvedOptions => this.#opts;
    return {
      latest: () => {
        const m = this.#snapshotMeta;
        return m === null ? null : { index: m.index, term: m.term, configuration: m.configuration, configurationIndex: m.configurationIndex, size: m.size };
      },
      // Read when a transfer starts: `reloadConfig({ snapshotTransfer })` applies to the next one.
      get limits() {
        return opts().snapshotTransfer;
      },
    };
  }

  /** Leader: the sender `self` asks for its next chunk. The first chunk of a transfer waits for a slot (`maxConcurrentSnapshots`). */
  #readChunk(self: AnyActorRef, intent: ReadChunkIntent, index: number): void {
    const peer = intent.peerId;
    if (intent.seq === 0 || !this.#readers.has(peer)) {
      this.#dropReader(peer);
      if (!this.#slots.has(peer)) {
        // Slots of transfers that ended without a word (their replica was stopped) are freed here.
        for (const holder of this.#slots) if (this.#readers.get(holder)?.self.getSnapshot().status !== 'active') this.#releaseSlot(holder, false);
        if (this.#slots.size >= this.#opts.maxConcurrentSnapshots) {
          this.#slotQueue.push({ self, intent, index });
          return;
        }
        this.#slots.add(peer);
      }
      const store = this.#store;
      if (store === null) {
        self.send({ type: 'snapshot.readFailed', error: new ConfigurationError('storage', 'implements no snapshot store') });
        return;
      }
      this.#readers.set(peer, { self, it: chunksOf(store.readSnapshot(index), intent.maxBytes)[Symbol.asyncIterator]() });
    }
    const reader = this.#readers.get(peer);
    if (reader === undefined) return;
    reader.it.next().then(
      (r) => {
        if (this.#readers.get(peer) !== reader || reader.self.getSnapshot().status !== 'active') return;
        if (r.done === true) reader.self.send({ type: 'snapshot.readFailed', error: new StorageError('snapshot ended early') });
        else reader.self.send({ type: 'snapshot.chunk', data: r.value.data, checksum: this.#crc32(r.value.data) >>> 0, last: r.value.last });
      },
      (error: unknown) => {
        if (this.#readers.get(peer) === reader && reader.self.getSnapshot().status === 'active') reader.self.send({ type: 'snapshot.readFailed', error });
      },
    );
  }

  #dropReader(peer: ServerId): void {
    const reader = this.#readers.get(peer);
    if (reader === undefined) return;
    this.#readers.delete(peer);
    void reader.it.return?.().catch(() => undefined);
  }

  /** Frees `peer`'s transfer slot and starts the oldest waiting transfer that is still live. */
  #releaseSlot(peer: ServerId, startNext = true): void {
    this.#dropReader(peer);
    if (!this.#slots.delete(peer) || !startNext) return;
    while (this.#slotQueue.length > 0) {
      const waiting = this.#slotQueue.shift();
      if (waiting === undefined) break;
      if (waiting.self.getSnapshot().status !== 'active') continue;
      this.#readChunk(waiting.self, waiting.intent, waiting.index);
      break;
    }
  }

  /** Leadership ended: every transfer stops. */
  #closeReaders(): void {
    for (const peer of [...this.#readers.keys()]) this.#dropReader(peer);
    this.#slots.clear();
    this.#slotQueue = [];
  }

  #snapshotProgress(p: SnapshotProgressIntent): void {
    this.#events$.next({ type: 'snapshotSending', peer: p.peerId, index: p.index, bytesSent: p.sent, total: p.total });
  }

  #snapshotFinished(result: SnapshotSendResult): void {
    this.#releaseSlot(result.peerId);
    if (result.outcome === 'sent') this.#events$.next({ type: 'snapshotSent', peer: result.peerId, index: result.index });
    else this.#events$.next({ type: 'snapshotAborted', peer: result.peerId, index: result.index, reason: result.reason ?? 'aborted' });
  }

  /** Follower: hands this turn's chunks to the receiver once the writes before them are done; sends each answer. */
  #handleSnapshotChunks(): void {
    const receiver = this.#receiver;
    const chunks = this.#snapshotInbox;
    this.#snapshotInbox = [];
    if (receiver === null) return;
    const barrier = this.#afterWrites();
    for (const m of chunks) {
      if (m.snapshotIndex <= this.#applied && m.term >= this.#hardState.term) {
        // This node already applied past the snapshot (those entries are committed): installing it would roll the state back.
        this.#installing--;
        record(this.#ready, {
          type: 'installSnapshotResponse', term: this.#hardState.term, from: this.id, to: m.from, snapshotIndex: m.snapshotIndex,
          snapshotTerm: m.snapshotTerm, seq: m.seq, ok: false, reason: 'stale', next: 0, installed: false,
        });
        this.#scheduleTurn();
        continue;
      }
      barrier
        .then(() => (this.#state === 'running' ? receiver.handle(m) : null))
        .then(
          (answer) => {
            this.#installing--;
            if (answer === null || this.#state !== 'running') return;
            record(this.#ready, answer);
            this.#scheduleTurn();
          },
          (error: unknown) => {
            this.#installing--;
            if (error instanceof CodecError) return; // a malformed chunk changes nothing; the sender retries or gives up
            this.#fail(error);
          },
        );
    }
  }

  #receiverObserved(o: SnapshotReceiverObservation): void {
    if (o.type === 'snapshot.staging') this.#stagedBytes = 0;
    else if (o.type === 'snapshot.resumed') this.#stagedBytes = o.bytes;
    if (o.type !== 'snapshot.received') return;
    const received = o.bytes - this.#stagedBytes;
    this.#stagedBytes = o.bytes;
    if (received > 0 && this.#metrics?.snapshotBytes !== undefined) this.#measure(() => this.#metrics?.snapshotBytes?.('received', received));
    const from = this.#leader.leaderId ?? '';
    this.#events$.next({ type: 'snapshotReceived', from, index: o.index, bytes: o.bytes, total: o.total });
  }

  /** Follower: the storage made the leader's snapshot current; mirror it in memory and restore the state machine from it. */
  async #installed(chunks: AsyncIterable<Uint8Array>, meta: SnapshotMeta): Promise<void> {
    this.#log.installSnapshot(meta.index, meta.term);
    this.#restores.reset();
    this.#snapshotMeta = meta;
    this.#snapshotBase = Math.max(this.#snapshotBase, meta.index);
    this.#snapshotConfig = { index: meta.configurationIndex, config: meta.configuration };
    this.#restoring = true;
    try {
      if (this.#applyBusy) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      if (this.#fsm.restore === undefined) throw new ConfigurationError('stateMachine', 'has no restore() method: it cannot install a snapshot from the leader');
      await this.#fsm.restore(chunks, meta);
    } finally {
      this.#restoring = false;
    }
    // The state is now that of `meta.index`; entries kept after it are applied on top.
    this.#applied = meta.index;
    if (meta.index > this.#commitTarget) this.#commitTarget = meta.index;
    if (this.#state !== 'running') return;
    this.#actor?.send({ type: 'snapshot.installed', index: meta.index });
    this.#lastChunkAt = null;
    this.#events$.next({ type: 'snapshotInstalled', index: meta.index, term: meta.term, size: meta.size });
    this.#configDirty = true;
    this.#scheduleTurn();
  }

  // ---- observation -------------------------------------------------------------------------------

  #observe(snapshot: SnapshotFrom<typeof nodeMachine>): void {
    const ctx = snapshot.context;
    if (ctx.commitIndex !== this.#commitIndex$.getValue()) this.#commitIndex$.next(ctx.commitIndex);
    this.#progress.track(ctx.replicas);
    if (ctx.term !== this.#hardState.term || ctx.votedFor !== this.#hardState.votedFor) {
      this.#hardState = { term: ctx.term, votedFor: ctx.votedFor };
      this.#ready.hardState = this.#hardState;
      this.#scheduleTurn();
    }
    const role = roleOf(snapshot);
    if (role !== this.#role) {
      const was = this.#role;
      this.#role = role;
      if (was === 'leader') {
        this.#loseLeadership(ctx.commitIndex);
        this.#closeReaders();
      }
      if (was === 'leader' || role === 'leader') this.#diagnostics.resetLeadership();
      if (role === 'leader') this.#roundSentAt.clear();
      this.#role$.next(role);
      this.#events$.next({ type: 'roleChanged', role, term: ctx.term });
    }
    if (ctx.leaderId !== this.#leader.leaderId || ctx.term !== this.#leader.term) {
      const changed = ctx.leaderId !== this.#leader.leaderId;
      this.#leader = { leaderId: ctx.leaderId, term: ctx.term };
      if (changed) {
        this.#leader$.next(this.#leader);
        this.#events$.next({ type: 'leaderChanged', leaderId: ctx.leaderId, term: ctx.term });
        this.#watchTransfer(ctx.leaderId, ctx.term);
      }
    }
  }

  /** After stepping down mid-transfer: done when the target leads, failed when another node does. */
  #watchTransfer(leaderId: ServerId | null, term: number): void {
    const transfer = this.#transfer;
    if (transfer === null || !transfer.steppedDown || leaderId === null || transfer.target === null) return;
    if (leaderId === transfer.target) {
      this.#transfer = null;
      this.#events$.next({ type: 'transferCompleted', target: leaderId, term });
      transfer.waiter.resolve();
    } else {
      this.#endTransfer('otherLeader');
    }
  }

  /** A deposed leader fails the proposals not yet committed: their outcome is unknown. So do barriers past the commit index. */
  #loseLeadership(commitIndex: number): void {
    for (const p of this.#proposals) p.reject(new NotLeaderError(null));
    this.#proposals = [];
    for (const b of this.#barriers) b.reject(new NotLeaderError(null));
    this.#barriers = [];
    this.#applyWaits = this.#applyWaits.filter((w) => {
      if (w.index <= commitIndex || !w.barrier) return true;
      w.waiter.reject(new LeadershipLostError(w.index));
      return false;
    });
    for (const [index, pending] of this.#pending) {
      if (index > commitIndex) {
        this.#pending.delete(index);
        pending.reject(new LeadershipLostError(index));
      }
    }
    // A joint change whose C_new this leader had not appended yet is also unknown: the next leader finishes it.
    const change = this.#change;
    if (change !== null && (change.index > commitIndex || change.joint)) {
      this.#change = null;
      change.waiter.reject(new LeadershipLostError(change.index));
    }
  }

  /** The configuration in effect: the latest in the log, else the snapshot's. */
  #latestConfig(): { index: number; config: Configuration } | null {
    return latestConfig((i) => this.#log.entry(i), this.#log.lastIndex(), this.#log.firstIndex()) ?? this.#snapshotConfig;
  }

  /** The configuration in effect at `index` (at or below the last index): for a snapshot taken there. */
  #configAt(index: number): { index: number; config: Configuration } | null {
    const inLog = latestConfig((i) => this.#log.entry(i), index, this.#log.firstIndex());
    if (inLog !== null) return inLog;
    return this.#snapshotConfig !== null && this.#snapshotConfig.index <= index ? this.#snapshotConfig : null;
  }

  /** Rescans the log for the latest configuration (after a follower append or a truncation) and adopts it. */
  #refreshConfig(): void {
    this.#configDirty = false;
    const latest = this.#latestConfig();
    if (latest?.index === this.#config?.index && sameConfig(latest?.config ?? null, this.#config?.config ?? null)) return;
    this.#setConfig(latest, true);
  }

  /** Makes `latest` the configuration in effect: transport peers, the machine (unless it decided it), observations. */
  #setConfig(latest: { index: number; config: Configuration } | null, tellMachine: boolean): void {
    const before = membershipOf(this.#config?.config ?? null);
    this.#config = latest;
    const config = latest?.config ?? null;
    const index = latest?.index ?? 0;
    if (config !== null) this.#transport.setPeers(serversOf(config));
    if (tellMachine) this.#actor?.send({ type: 'config.changed', config, index });
    const after = membershipOf(config);
    this.#events$.next({
      type: 'membershipChanged',
      servers: serversOf(config),
      index,
      voters: after.voters,
      learners: after.learners,
      oldVoters: after.oldVoters,
    });
    const roleIn = (m: typeof after, id: ServerId): 'voter' | 'learner' | null => (isVoterIn(m, id) ? 'voter' : m.learners.includes(id) ? 'learner' : null);
    const ids = new Set([...before.voters, ...(before.oldVoters ?? []), ...before.learners, ...after.voters, ...(after.oldVoters ?? []), ...after.learners]);
    for (const id of ids) {
      const was = roleIn(before, id);
      const now = roleIn(after, id);
      if (was === now) continue;
      if (was === null && now !== null) this.#events$.next({ type: 'peerAdded', id, suffrage: now, index });
      else if (now === null) this.#events$.next({ type: 'peerRemoved', id, index });
      else if (now === 'voter') this.#events$.next({ type: 'learnerPromoted', id, index });
      else this.#events$.next({ type: 'voterDemoted', id, index });
    }
  }

  #requireRunning(what: string): void {
    if (this.#state !== 'running') throw new ShutdownError(what);
  }

  #failAll(error: () => Error): void {
    for (const p of this.#proposals) p.reject(error());
    this.#proposals = [];
    for (const pending of this.#pending.values()) pending.reject(error());
    this.#pending.clear();
  }

  #fail(error: unknown): void {
    if (this.#state === 'stopped') return;
    this.#events$.next({ type: 'fatal', error });
    void this.stop();
  }
}

/** `options.timeoutMs`, or `fallback` when absent; a ConfigurationError naming `method(options.timeoutMs)` when it is not a positive integer. */
function timeoutOf(method: string, options: { readonly timeoutMs?: number } | undefined, fallback: number): number | ConfigurationError {
  const ms: unknown = options?.timeoutMs ?? fallback;
  return typeof ms === 'number' && Number.isInteger(ms) && ms >= 1 ? ms : new ConfigurationError(`${method}(options.timeoutMs)`, 'must be a positive integer');
}

function checkId(what: string, id: unknown): ServerId {
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new ConfigurationError(what, 'must be a non-empty string of at most 256 characters');
  return id;
}

function checkServer(what: string, id: unknown, address: unknown): Server {
  const checked = checkId(`${what}(id)`, id);
  if (typeof address !== 'string') throw new ConfigurationError(`${what}(address)`, 'must be a string');
  return { id: checked, address };
}

/**
 * Creates a Raft node. Nothing happens until `start()`.
 *
 * @remarks Options are validated here; a bad option throws at once.
 *
 * The node is the actor that runs the {@link nodeMachine} and one {@link replicaMachine} per
 * peer while leading, and does their I/O in a fixed order each turn: persist, then send what
 * depended on it, then apply. `currentTerm`, `votedFor` and the log (the persistent state of the
 * Raft paper's Figure 2) are durable before a vote is granted or an append acknowledged, which
 * Election Safety (§5.2) and commitment (§5.3) rely on across crashes; a leader may write its own
 * log in parallel with replicating it (thesis §10.2.1). Committed entries are applied to
 * `stateMachine` in log order (State Machine Safety, §5.4.3).
 *
 * @example
 * ```ts
 * const network = new MemoryNetwork()
 * const node = createRaftNode({ id: 'n1', stateMachine: { apply: (e) => e.index },
 *   storage: new MemoryStorage(), transport: network.transport('n1') })
 * await node.start()
 * await node.bootstrap([{ id: 'n1', address: 'n1' }])
 * ```
 *
 * @throws {@link ConfigurationError} for a missing, unknown or out-of-range option.
 */
export function createRaftNode<R = unknown>(options: RaftNodeOptions<R>): RaftNode<R> {
  return new Node<R>(options);
}
