/**
 * Error classes. Every error raftchart raises is a {@link RaftError} with a stable
 * upper-case `code`, so callers can branch on `err.code` across versions.
 *
 * @module
 */
import type { MembershipRefusal } from './machines/membership.js';
import type { ServerId } from './machines/types.js';

/** Stable error codes. */
export type RaftErrorCode =
  | 'NOT_LEADER'
  | 'SHUTDOWN'
  | 'TIMEOUT'
  | 'LEADERSHIP_LOST'
  | 'CONFIGURATION'
  | 'STORAGE'
  | 'STORAGE_CORRUPTION'
  | 'CODEC'
  | 'TRANSPORT'
  | 'LEADERSHIP_TRANSFER'
  | 'MEMBERSHIP'
  | 'RESTORE';

/**
 * Base class of every raftchart error.
 *
 * @remarks `code` is stable across versions and `name` is the subclass's name;
 * branch on `code` (or `instanceof`) rather than on messages, which may change.
 *
 * @example
 * ```ts
 * try {
 *   await node.propose(bytes)
 * } catch (e) {
 *   if (!(e instanceof RaftError)) throw e
 *   if (e.code === 'NOT_LEADER' || e.code === 'LEADERSHIP_TRANSFER') retry()
 *   else if (e.code === 'TIMEOUT' || e.code === 'LEADERSHIP_LOST') console.warn('outcome unknown:', e.message)
 *   else throw e
 * }
 * ```
 */
export class RaftError extends Error {
  /** Stable code, e.g. `'NOT_LEADER'`. */
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * The node is not the leader; retry at `leaderId` if known.
 *
 * @example
 * ```ts
 * try { await node.propose(bytes) } catch (e) {
 *   if (e instanceof NotLeaderError && e.leaderId) forwardTo(e.leaderId)
 * }
 * ```
 */
export class NotLeaderError extends RaftError {
  /** The leader this node knows of, or `null`. */
  readonly leaderId: ServerId | null;
  constructor(leaderId: ServerId | null) {
    super('NOT_LEADER', leaderId === null ? 'not the leader; no leader known' : `not the leader; leader is ${leaderId}`);
    this.leaderId = leaderId;
  }
}

/**
 * The node stopped before the operation completed. A proposal rejected this
 * way may still have been committed (its outcome is unknown, as on a crash).
 *
 * @example
 * ```ts
 * const pending = node.propose(bytes)
 * await node.stop()
 * await pending.catch((e: unknown) => { if (e instanceof ShutdownError) console.log('outcome unknown: retry idempotently') })
 * ```
 */
export class ShutdownError extends RaftError {
  constructor(what = 'operation') {
    super('SHUTDOWN', `node stopped before the ${what} completed`);
  }
}

/**
 * The operation did not complete within its timeout. Its outcome is unknown: a proposal may still commit.
 *
 * @remarks A proposal that timed out may already be in the leader's log, and
 * the Raft paper's Log Matching and Leader Completeness properties (§5.3,
 * §5.4) let a later leader commit it. Retrying it blindly can apply the
 * command twice; make commands idempotent or deduplicate them (thesis §6.3).
 *
 * @example
 * ```ts
 * try {
 *   await node.propose(bytes, { timeoutMs: 2000 })
 * } catch (e) {
 *   if (e instanceof TimeoutError) retry() // safe only if the command is idempotent
 *   else throw e
 * }
 * ```
 */
export class TimeoutError extends RaftError {
  constructor(what: string, ms: number) {
    super('TIMEOUT', `${what} timed out after ${ms} ms; its outcome is unknown`);
  }
}

/**
 * The leader lost leadership before the entry was committed. The outcome is
 * unknown: the entry may still be committed by the next leader.
 *
 * @remarks The entry at `index` is on some servers; a new leader that holds
 * it will commit it once it commits an entry of its own term (Raft paper
 * §5.4.2), and one that does not will overwrite it (§5.3). Which one wins the
 * election is not known here.
 *
 * @example
 * ```ts
 * try {
 *   await node.propose(bytes)
 * } catch (e) {
 *   if (e instanceof LeadershipLostError) console.warn(`entry ${e.index}: outcome unknown`)
 *   else throw e
 * }
 * ```
 */
export class LeadershipLostError extends RaftError {
  /** Index the entry was appended at. */
  readonly index: number;
  constructor(index: number) {
    super('LEADERSHIP_LOST', `leadership lost before entry ${index} committed; its outcome is unknown`);
    this.index = index;
  }
}

/**
 * A bad option or an impossible configuration request. The message names the option and why.
 *
 * @example
 * ```ts
 * try {
 *   createRaftNode({ ...options, electionTimeoutMs: -1 })
 * } catch (e) {
 *   if (e instanceof ConfigurationError) console.error(e.option, e.message)
 * }
 * ```
 */
export class ConfigurationError extends RaftError {
  /** The option or argument at fault. */
  readonly option: string;
  constructor(option: string, why: string) {
    super('CONFIGURATION', `${option}: ${why}`);
    this.option = option;
  }
}

/**
 * The storage adapter failed; the node stops rather than continue on state it cannot trust.
 *
 * @example
 * ```ts
 * node.events$.subscribe((e) => { if (e.type === 'fatal' && e.error instanceof StorageError) console.error('disk failed:', e.error.message) })
 * ```
 */
export class StorageError extends RaftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORAGE', message, options);
  }
}

/**
 * A stored record failed its checksum or could not be decoded. The store
 * refuses to open rather than silently drop committed data.
 *
 * @example
 * ```ts
 * try { await new LevelStorage({ path: 'data/n1' }).open() } catch (e) {
 *   if (e instanceof StorageCorruptionError) console.error(`record ${e.key} (log index ${e.index ?? '-'}) is damaged; restore this node from a peer`)
 * }
 * ```
 */
export class StorageCorruptionError extends RaftError {
  /** The storage key of the bad record, printable (hex for binary keys). */
  readonly key: string;
  /** The log index the record holds, or `null` for a non-log record. */
  readonly index: number | null;
  constructor(key: string, index: number | null, why: string) {
    super('STORAGE_CORRUPTION', `corrupted record ${key}${index === null ? '' : ` (log index ${index})`}: ${why}`);
    this.name = 'StorageCorruptionError';
    this.key = key;
    this.index = index;
  }
}

/**
 * A frame or message could not be decoded: wrong version, bad field, truncated or oversized.
 *
 * @example
 * ```ts
 * try { decodeFrame(new Uint8Array([0xff, 0])) } catch (e) {
 *   if (e instanceof CodecError) console.log('dropped a bad frame:', e.message)
 * }
 * ```
 */
export class CodecError extends RaftError {
  constructor(message: string) {
    super('CODEC', message);
  }
}

/**
 * A transport-level refusal: failed authentication, a peer of another cluster,
 * an unusable listen address. The message names both sides where it can.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ listen: '127.0.0.1:7001', secret })
 * await transport.start('n1', () => undefined).catch((e: unknown) => {
 *   if (e instanceof TransportError) console.error(e.message) // e.g. cannot listen on 127.0.0.1:7001: address in use
 * })
 * ```
 */
export class TransportError extends RaftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TRANSPORT', message, options);
  }
}

/**
 * A leadership transfer is under way (or could not be carried out): the leader
 * refuses new proposals until it ends, and a second transfer is refused.
 *
 * @remarks Proposals refused with this error were never appended: retry them
 * at `targetId` once it leads (watch `leader$`), or here after the transfer
 * aborts (at most one maximum election timeout).
 *
 * @example
 * ```ts
 * import { filter, firstValueFrom } from 'rxjs'
 * try { await node.propose(bytes) } catch (e) {
 *   if (e instanceof LeadershipTransferError) await firstValueFrom(node.leader$.pipe(filter((l) => l.leaderId !== node.id)))
 * }
 * ```
 */
export class LeadershipTransferError extends RaftError {
  /** The node leadership is (or was) being handed to, or `null` when none was chosen. */
  readonly targetId: ServerId | null;
  constructor(targetId: ServerId | null, why = 'leadership transfer in progress') {
    super('LEADERSHIP_TRANSFER', targetId === null ? why : `${why} (target ${targetId})`);
    this.targetId = targetId;
  }
}

/**
 * The leader refused a membership change; `reason` says why and the message explains it.
 *
 * @remarks Nothing was appended. `changeInProgress`, `leaderNotReady` and `transferInProgress`
 * are transient: retry after the change in flight commits (or the joint configuration is left),
 * once the new leader has committed its first entry, or after the transfer ends. The others
 * describe the request against the latest configuration in the log (`alreadyVoter`,
 * `notMember`, `lastVoter`, `twoVoters`, ...). Bad arguments (an empty id, a non-string
 * address) are a {@link ConfigurationError} instead.
 *
 * @example
 * ```ts
 * try { await leader.removeServer('n2') } catch (e) {
 *   if (e instanceof MembershipError && e.reason === 'changeInProgress') setTimeout(retry, 100)
 * }
 * ```
 */
export class MembershipError extends RaftError {
  /** Why the change was refused. */
  readonly reason: MembershipRefusal;
  constructor(reason: MembershipRefusal, why: string) {
    super('MEMBERSHIP', `membership change refused (${reason}): ${why}`);
    this.reason = reason;
  }
}

/**
 * A restore through the log (`RaftNode.restore`) reached its commit entry but did not
 * replace the state: the state machine's `restore()` threw (the error is the `cause`), or the
 * chunks before the commit do not add up. `index` is the commit entry's.
 *
 * @remarks Every server applies the same commit entry the same way, so every server reports the
 * same failure (event `restoreFailed`) and keeps the state its `restore()` left, which is the
 * previous state when `restore()` builds the new one before swapping it in, as the contract asks.
 *
 * @example
 * ```ts
 * try { await leader.restore(backup) } catch (e) {
 *   if (e instanceof RestoreError) console.error(`backup refused at ${e.index}:`, e.cause)
 * }
 * ```
 */
export class RestoreError extends RaftError {
  /** Index of the restore's commit entry. */
  readonly index: number;
  constructor(index: number, why: string, options?: { cause?: unknown }) {
    super('RESTORE', `restore at index ${index} failed: ${why}`, options);
    this.index = index;
  }
}
