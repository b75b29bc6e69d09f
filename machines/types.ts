/**
 * Protocol types shared by the machines, the actors and the adapters.
 *
 * Everything here is plain data: numbers, strings and byte arrays. Machines
 * import these; adapters encode them; nothing here does I/O.
 *
 * @module
 */
import type { InstallSnapshotRequest, InstallSnapshotResponse } from './snapshot.js';

/** A server's identity, unique for all time within a cluster. */
export type ServerId = string;

/**
 * The kind of a log entry. `noop` is appended by a new leader (§5.4.2, §8); `config` carries a
 * {@link Configuration}; `restore` carries part of a user-supplied snapshot being restored through
 * the log (see `RestoreTracker`).
 */
export type EntryType = 'normal' | 'noop' | 'config' | 'restore';

/**
 * One record of the replicated log.
 *
 * @remarks Invariant: `index >= 1`, `term >= 1`; within one log, indexes are
 * contiguous and terms never decrease (§5.3).
 */
export interface LogEntry {
  /** Position in the log, starting at 1. */
  readonly index: number;
  /** Term of the leader that created the entry. */
  readonly term: number;
  /** What the entry carries. */
  readonly type: EntryType;
  /** The payload: user bytes for `normal`, an encoded {@link Configuration} for `config`, empty for `noop`, a restore record for `restore`. */
  readonly data: Uint8Array;
}

/** A member of the cluster and where to reach it. */
export interface Server {
  /** Unique, stable id. */
  readonly id: ServerId;
  /** Transport address (for example `ws://127.0.0.1:7001`); the memory transport ignores it. */
  readonly address: string;
  /** Voters count towards quorums; learners only receive the log. Defaults to `'voter'`. */
  readonly suffrage?: 'voter' | 'learner';
  /**
   * On a learner: the leader promotes it to voter once it has caught up (set by `addVoter`).
   * Ignored on a voter.
   */
  readonly autoPromote?: boolean;
}

/**
 * A cluster membership: the servers of one configuration entry.
 *
 * @remarks A configuration takes effect on a server as soon as it is appended to its log, and
 * the latest one in the log wins (thesis §4.1); a truncation that removes it reverts to the one
 * before. While `old` is present the configuration is **joint** (C_old,new, §6 of the Raft
 * paper): elections and commitment need a majority of the voters of `servers` AND of `old`.
 */
export interface Configuration {
  /** Every member, voters and learners (C_new while joint). */
  readonly servers: readonly Server[];
  /** While joint: the servers of the outgoing configuration (C_old). Absent otherwise. */
  readonly old?: readonly Server[];
}

/** Persistent per-server state (Figure 2 of the Raft paper): written before any message that depends on it leaves. */
export interface HardState {
  /** Latest term this server has seen. */
  readonly term: number;
  /** Candidate that received this server's vote in `term`, or `null`. */
  readonly votedFor: ServerId | null;
}

/**
 * Read-only view of a log that machines consult in guards.
 *
 * @remarks Indexes outside `[firstIndex - 1, lastIndex]` have no term; index
 * `firstIndex - 1` is the boundary (snapshot) entry and still has a term.
 */
export interface LogView {
  /** Index of the first entry still held (1 until compaction). */
  firstIndex(): number;
  /** Index of the last entry, 0 when empty. */
  lastIndex(): number;
  /** Term of the last entry, 0 when empty. */
  lastTerm(): number;
  /** Term of the entry at `index`, `0` for index 0, `undefined` when not held. */
  term(index: number): number | undefined;
  /**
   * The last index to put in one message that starts at `from`, holding at
   * most `maxEntries` entries and, past the first, `maxBytes` payload bytes.
   * Returns `from - 1` when `from > lastIndex()`.
   */
  limit(from: number, maxEntries: number, maxBytes: number): number;
  /** Payload bytes of entries `from..to` inclusive. */
  bytes(from: number, to: number): number;
}

interface MessageBase {
  /** Sender's current term (or, for a pre-vote request, the term it would campaign in). */
  readonly term: number;
  /** Sender. */
  readonly from: ServerId;
  /** Receiver. */
  readonly to: ServerId;
}

/** RequestVote (§5.2) and its PreVote twin (thesis §9.6). */
export interface VoteRequest extends MessageBase {
  readonly type: 'vote' | 'preVote';
  /** Index of the candidate's last entry. */
  readonly lastLogIndex: number;
  /** Term of the candidate's last entry. */
  readonly lastLogTerm: number;
  /** Set when campaigning on a leadership transfer: bypasses leader stickiness. */
  readonly transfer?: boolean;
}

/** Answer to a {@link VoteRequest}. */
export interface VoteResponse extends MessageBase {
  readonly type: 'voteResponse' | 'preVoteResponse';
  /** Whether the vote was granted. */
  readonly granted: boolean;
  /** Why not, in a word: `'term' | 'voted' | 'log' | 'leader' | 'learner'`. */
  readonly reason?: VoteRefusal;
}

/** Why a vote or pre-vote was refused. */
export type VoteRefusal = 'term' | 'voted' | 'log' | 'leader' | 'learner';

/** AppendEntries (§5.3). */
export interface AppendRequest extends MessageBase {
  readonly type: 'append';
  /** Index of the entry before `entries`. */
  readonly prevLogIndex: number;
  /** Term of that entry. */
  readonly prevLogTerm: number;
  /** New entries, contiguous from `prevLogIndex + 1`. */
  readonly entries: readonly LogEntry[];
  /** Leader's commit index. */
  readonly leaderCommit: number;
}

/** Answer to an {@link AppendRequest}. */
export interface AppendResponse extends MessageBase {
  readonly type: 'appendResponse';
  /** Whether the entries were appended (prev entry matched). */
  readonly success: boolean;
  /** On success: last index known to match the leader. On refusal: the `prevLogIndex` that did not match. */
  readonly index: number;
  /** On refusal: the term of the follower's entry at `index`, or 0 if it has none (fast backtracking). */
  readonly hintTerm: number;
  /** On refusal: the first index the follower holds with `hintTerm`, or its last index + 1 when `hintTerm` is 0. */
  readonly hintIndex: number;
}

/** Leader liveness beacon; carries a commit index the follower can trust (`min(match, commit)`). */
export interface Heartbeat extends MessageBase {
  readonly type: 'heartbeat';
  /** Commit index safe for this follower. */
  readonly commit: number;
  /**
   * The leader's heartbeat round (1, 2, ... within its term); the answer echoes it. A quorum of
   * answers for round `r` proves the sender was still leader when it sent round `r` (read index, §6.4).
   */
  readonly round?: number;
}

/** Answer to a {@link Heartbeat}. */
export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeatResponse';
  /** The `round` of the heartbeat answered, when it carried one. */
  readonly round?: number;
}

/**
 * A follower asks the leader for a read index (thesis §6.4): the leader answers with its commit
 * index once a heartbeat round sent after the request reached a quorum.
 */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'readIndex';
  /** Chosen by the follower; echoed in the answer. */
  readonly requestId: number;
}

/** Answer to a {@link ReadIndexRequest}. */
export interface ReadIndexResponse extends MessageBase {
  readonly type: 'readIndexResponse';
  /** The request answered. */
  readonly requestId: number;
  /** Whether `index` is a confirmed read index; `false` when the sender is not (or no longer) the leader. */
  readonly success: boolean;
  /** On success: the leader's commit index when the request arrived (or when its term's first entry committed); 0 otherwise. */
  readonly index: number;
}

/**
 * Leadership transfer (thesis §3.10): the leader tells a caught-up voter to campaign at once,
 * skipping pre-vote; its vote requests carry `transfer: true` so leader stickiness lets them through.
 */
export interface TimeoutNow extends MessageBase {
  readonly type: 'timeoutNow';
}

/** Every message a node sends or receives (the InstallSnapshot pair is defined in `snapshot.ts`). */
export type RaftMessage =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | ReadIndexRequest
  | ReadIndexResponse
  | TimeoutNow
  | InstallSnapshotRequest
  | InstallSnapshotResponse;

/** The role a node plays (§5.1, thesis §9.6). */
export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Replica progress states, as tracked by a leader for each follower. */
export type ReplicaState = 'probe' | 'replicate' | 'snapshot';
