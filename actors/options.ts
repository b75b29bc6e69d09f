/**
 * Options of {@link createRaftNode}, their defaults and their validation.
 *
 * @module
 */
import type { InspectionEvent } from 'xstate';
import type { Clock } from '../adapters/clock.js';
import type { Random } from '../adapters/random.js';
import type { RaftStorage, SnapshotMeta } from '../adapters/storage/storage.js';
import type { Transport } from '../adapters/transport/transport.js';
import { ConfigurationError } from '../errors.js';
import type { ReadMode } from '../machines/node.machine.js';
import { DEFAULT_SNAPSHOT_SENDER_LIMITS, invalidSenderLimits, type SnapshotSenderLimits } from '../machines/snapshot.js';
import type { ServerId } from '../machines/types.js';

/** An entry handed to the user's state machine. */
export interface AppliedEntry {
  /** Log index. */
  readonly index: number;
  /** Term of the leader that created it. */
  readonly term: number;
  /** The proposed bytes. */
  readonly data: Uint8Array;
}

/**
 * The user's replicated state machine. Every node applies the same entries in the same order.
 *
 * @typeParam R - what `apply` returns; `propose` resolves with it on the node that proposed.
 */
export interface StateMachine<R = unknown> {
  /** Applies one committed entry. Must be deterministic. A throw is reported on `events$` and the entry counts as applied with an `undefined` result. */
  apply(entry: AppliedEntry): R | Promise<R>;
  /**
   * Serializes the state, for a snapshot. Optional: a node whose state machine has no `snapshot()`
   * never snapshots and never compacts its log (a follower of it that falls behind catches up from
   * the log).
   *
   * @remarks The node calls it between two applies, so the state at that moment is exactly that
   * of the last applied entry, and **keeps applying** while the returned promise settles and its
   * content is written. The contract: capture the state synchronously, during the call — return
   * the bytes, or a promise/iterable over a frozen copy or a persistent (immutable) structure —
   * never an iterable that reads the live state later. The content may be bytes or an
   * `AsyncIterable<Uint8Array>` of any number of pieces; its total size need not be known in
   * advance. A throw (or rejection) is reported as `snapshotFailed` on `events$`; the node goes on.
   *
   * @example
   * ```ts
   * const state = new Map<string, string>()
   * const machine: StateMachine<void> = {
   *   apply: (entry) => void state.set(String(entry.index), new TextDecoder().decode(entry.data)),
   *   snapshot: () => {
   *     const copy = [...state] // a synchronous copy: applying may go on
   *     return Promise.resolve(new TextEncoder().encode(JSON.stringify(copy)))
   *   },
   * }
   * ```
   */
  snapshot?(): Promise<Uint8Array | AsyncIterable<Uint8Array>> | Uint8Array | AsyncIterable<Uint8Array>;
  /**
   * Replaces the whole state with a snapshot's content (`chunks`, in order; the same bytes
   * `snapshot()` produced, possibly cut differently); `meta` says which entries it covers
   * (`meta.index`: the next entry applied is after it). Called at start when the storage holds a
   * snapshot (before the log tail is applied), and on a follower that installs a snapshot from
   * its leader (no entry is applied meanwhile), and on every server when it applies the commit of
   * a `RaftNode.restore` (then `chunks` are the user's bytes, and `meta.index` is the commit's
   * index). Required as soon as a snapshot exists: a node that must install one without it stops
   * with a `fatal` event (at start, `start()` rejects). Build the new state completely before
   * replacing the old one: a throw from a restore through the log is reported (`restoreFailed`)
   * and the node goes on with the state `restore()` left.
   */
  restore?(chunks: AsyncIterable<Uint8Array>, meta: SnapshotMeta): Promise<void>;
}

/**
 * Measurement callbacks (all optional), called synchronously in the node's turn: keep them cheap
 * (a histogram's `observe`). A throw is caught and ignored.
 */
export interface RaftMetricsSink {
  /** Milliseconds from `propose()` to its resolution (committed and applied here), per successful proposal. */
  commitLatency?(ms: number): void;
  /** Proposals the leader turned into one append batch (one turn's worth). */
  proposalBatch?(entries: number): void;
  /** Entries carried by one AppendEntries message sent to a follower (0 for a probe). */
  appendMessage?(entries: number): void;
  /** Snapshot bytes sent to (`'sent'`) or received from (`'received'`) a peer. */
  snapshotBytes?(direction: 'sent' | 'received', bytes: number): void;
}

const METRIC_CALLBACKS = ['commitLatency', 'proposalBatch', 'appendMessage', 'snapshotBytes'];

/** Options of a Raft node. Only `id`, `stateMachine`, `storage` and `transport` are required. */
export interface RaftNodeOptions<R = unknown> {
  /** Unique, stable id of this server. */
  readonly id: ServerId;
  /** The user's state machine. */
  readonly stateMachine: StateMachine<R>;
  /** Durable state. */
  readonly storage: RaftStorage;
  /** Messaging. */
  readonly transport: Transport;
  /** Election timeout: `[min, max)` in ms, or `T` for `[T, 2T)`. Default `[150, 300]`. */
  readonly electionTimeoutMs?: number | readonly [number, number];
  /** Leader heartbeat period in ms; must be below the minimum election timeout. Default 50. */
  readonly heartbeatIntervalMs?: number;
  /** Pre-vote before elections. Default true. */
  readonly preVote?: boolean;
  /** Leader steps down without quorum contact; followers ignore disruptive votes. Default true. */
  readonly checkQuorum?: boolean;
  /**
   * A snapshot is taken once this many entries were applied since the last one (when the state
   * machine has `snapshot()` and the storage a snapshot store). Default 8192.
   */
  readonly snapshotThreshold?: number;
  /** Entries kept in the log below a new snapshot's index (so slightly lagging followers catch up from the log). Default 10240. */
  readonly trailingLogs?: number;
  /** Leader: snapshot transfers streaming at once; further followers that need one wait for a slot. Default 2. */
  readonly maxConcurrentSnapshots?: number;
  /**
   * Also take a snapshot every this many milliseconds (jittered up to +10 % with `random`, so
   * servers do not all write at once) when anything was applied since the last one, however few
   * entries: bounds how old the newest snapshot is on a lightly written cluster, for backups taken
   * from storage. `0` (the default) turns the interval off; `snapshotThreshold` still applies.
   */
  readonly snapshotIntervalMs?: number;
  /**
   * Leader: limits of each snapshot transfer to a follower (chunk size, window of unacknowledged
   * chunks, retransmission backoff, retries); missing fields keep
   * {@link DEFAULT_SNAPSHOT_SENDER_LIMITS}: 256 KiB chunks, a window of 4, retransmission after
   * 200 ms doubling up to 5 s, 10 retransmissions of one chunk. `chunkBytes` is at most 16 MiB
   * and must fit the transport's frame limit.
   */
  readonly snapshotTransfer?: Partial<SnapshotSenderLimits>;
  /**
   * How the leader confirms linearizable reads (`readIndex()`, thesis §6.4). Default `'readIndex'`:
   * every batch of reads costs one heartbeat round to a quorum.
   *
   * `'lease'` (requires `checkQuorum: true`): a leader that heard from a quorum answer a heartbeat
   * round serves reads without a new round for 90 % of the minimum election timeout, counted from
   * when that round was **sent**. Followers that answered it refuse other candidates for a minimum
   * election timeout from when they received it (leader stickiness), and in lease mode a node
   * also refuses (pre-)votes for a minimum election timeout after it starts, so a follower that
   * restarts cannot shorten that. Safe under a **bounded clock drift** assumption: any two
   * servers' clocks advance at rates within 10 % of each other over an election timeout (no
   * synchronized time is needed). A leader that started a leadership transfer stops using its
   * lease for the rest of its term (transfer votes bypass stickiness).
   */
  readonly readMode?: ReadMode;
  /** How long `propose` waits before rejecting with `TimeoutError`; also the default timeout of `readIndex`, `barrier` and membership changes. Default 10000. */
  readonly proposalTimeoutMs?: number;
  /**
   * A server added with `addVoter` joins as a learner and is promoted to voter once its log stays
   * within this many entries of the leader's last index, at every heartbeat, for a full (minimum)
   * election timeout. Default 1024.
   */
  readonly promotionThreshold?: number;
  /** Largest accepted proposal in bytes. Default 8 MiB. */
  readonly maxProposalBytes?: number;
  /** Appends in flight to one follower. Default 256. */
  readonly maxInflightMessages?: number;
  /** Payload bytes in flight to one follower. Default 64 MiB. */
  readonly maxInflightBytes?: number;
  /** Entries in one append message. Default 4096. */
  readonly maxEntriesPerMessage?: number;
  /** Payload bytes in one append message (one larger entry still goes alone). Default 1 MiB. */
  readonly maxBytesPerMessage?: number;
  /** Time source. Default: real time. */
  readonly clock?: Clock;
  /** Randomness for election timeouts. Default: `Math.random`. */
  readonly random?: Random;
  /** XState inspection callback, passed through unchanged. */
  readonly inspect?: (event: InspectionEvent) => void;
  /** Receives measurements as they happen, for a metrics library (the kv service feeds Prometheus histograms). Default: none, at no cost. */
  readonly metrics?: RaftMetricsSink;
}

/** Options after defaults, validated. */
export interface ResolvedOptions {
  readonly electionTimeoutMs: readonly [number, number];
  readonly heartbeatIntervalMs: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readMode: ReadMode;
  readonly snapshotThreshold: number;
  readonly trailingLogs: number;
  readonly maxConcurrentSnapshots: number;
  readonly snapshotIntervalMs: number;
  readonly snapshotTransfer: SnapshotSenderLimits;
  readonly proposalTimeoutMs: number;
  readonly promotionThreshold: number;
  readonly maxProposalBytes: number;
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;
  readonly maxEntriesPerMessage: number;
  readonly maxBytesPerMessage: number;
}

const KNOWN = new Set([
  'id', 'stateMachine', 'storage', 'transport', 'electionTimeoutMs', 'heartbeatIntervalMs', 'preVote',
  'checkQuorum', 'readMode', 'snapshotThreshold', 'trailingLogs', 'maxConcurrentSnapshots', 'snapshotIntervalMs', 'snapshotTransfer', 'proposalTimeoutMs', 'promotionThreshold', 'maxProposalBytes',
  'maxInflightMessages', 'maxInflightBytes', 'maxEntriesPerMessage', 'maxBytesPerMessage', 'clock', 'random', 'inspect', 'metrics',
]);

function int(name: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigurationError(name, `must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

function bool(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ConfigurationError(name, `must be a boolean, got ${typeof value}`);
  return value;
}

function hasMethods(value: unknown, names: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return names.every((n) => typeof record[n] === 'function');
}

/**
 * Validates options and fills in defaults.
 *
 * @throws {@link ConfigurationError} naming the option and the bound it breaks.
 */
export function resolveOptions(options: RaftNodeOptions<unknown>): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new ConfigurationError('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new ConfigurationError(key, 'unknown option');
  }
  if (typeof options.id !== 'string' || options.id.length === 0 || options.id.length > 256) {
    throw new ConfigurationError('id', 'must be a non-empty string of at most 256 characters');
  }
  if (!hasMethods(options.stateMachine, ['apply'])) throw new ConfigurationError('stateMachine', 'must have an apply(entry) method');
  if (!hasMethods(options.storage, ['open', 'entries', 'write', 'close'])) {
    throw new ConfigurationError('storage', 'must implement RaftStorage (open, entries, write, close)');
  }
  if (!hasMethods(options.transport, ['start', 'send', 'setPeers', 'stop'])) {
    throw new ConfigurationError('transport', 'must implement Transport (start, send, setPeers, stop)');
  }
  if (options.clock !== undefined && !hasMethods(options.clock, ['now', 'setTimeout', 'clearTimeout', 'setImmediate'])) {
    throw new ConfigurationError('clock', 'must implement Clock (now, setTimeout, clearTimeout, setImmediate)');
  }
  if (options.random !== undefined && !hasMethods(options.random, ['next'])) throw new ConfigurationError('random', 'must have next()');
  if (options.inspect !== undefined && typeof options.inspect !== 'function') throw new ConfigurationError('inspect', 'must be a function');
  if (options.metrics !== undefined) {
    const sink = options.metrics as unknown as Record<string, unknown> | null;
    if (typeof sink !== 'object' || sink === null) throw new ConfigurationError('metrics', 'must be an object of callbacks');
    for (const [key, value] of Object.entries(sink)) {
      if (!METRIC_CALLBACKS.includes(key)) throw new ConfigurationError(`metrics.${key}`, `unknown callback; known: ${METRIC_CALLBACKS.join(', ')}`);
      if (value !== undefined && typeof value !== 'function') throw new ConfigurationError(`metrics.${key}`, 'must be a function');
    }
  }

  let election: [number, number];
  const raw = options.electionTimeoutMs;
  if (raw === undefined) election = [150, 300];
  else if (typeof raw === 'number') {
    const t = int('electionTimeoutMs', raw, 150, 1);
    election = [t, 2 * t];
  } else if (Array.isArray(raw) && raw.length === 2) {
    const lo = int('electionTimeoutMs[0]', raw[0], 150, 1);
    const hi = int('electionTimeoutMs[1]', raw[1], 300, 1);
    if (hi <= lo) throw new ConfigurationError('electionTimeoutMs', `max (${hi}) must exceed min (${lo})`);
    election = [lo, hi];
  } else throw new ConfigurationError('electionTimeoutMs', 'must be a number or a [min, max] pair');

  const heartbeatIntervalMs = int('heartbeatIntervalMs', options.heartbeatIntervalMs, 50, 1);
  if (heartbeatIntervalMs >= election[0]) {
    throw new ConfigurationError('heartbeatIntervalMs', `must be below the minimum election timeout (${election[0]} ms), got ${heartbeatIntervalMs}`);
  }
  const checkQuorum = bool('checkQuorum', options.checkQuorum, true);
  const readMode = options.readMode ?? 'readIndex';
  if (readMode !== 'readIndex' && readMode !== 'lease') {
    throw new ConfigurationError('readMode', `must be 'readIndex' or 'lease', got ${JSON.stringify(String(readMode))}`);
  }
  if (readMode === 'lease' && !checkQuorum) {
    throw new ConfigurationError('readMode', "'lease' requires checkQuorum: true (a leader must step down once it cannot reach a quorum)");
  }
  return {
    electionTimeoutMs: election,
    heartbeatIntervalMs,
    preVote: bool('preVote', options.preVote, true),
    checkQuorum,
    readMode,
    snapshotThreshold: int('snapshotThreshold', options.snapshotThreshold, 8192, 1),
    trailingLogs: int('trailingLogs', options.trailingLogs, 10240, 0),
    maxConcurrentSnapshots: int('maxConcurrentSnapshots', options.maxConcurrentSnapshots, 2, 1, 1024),
    snapshotIntervalMs: int('snapshotIntervalMs', options.snapshotIntervalMs, 0, 0),
    snapshotTransfer: senderLimits(options.snapshotTransfer, DEFAULT_SNAPSHOT_SENDER_LIMITS),
    proposalTimeoutMs: int('proposalTimeoutMs', options.proposalTimeoutMs, 10_000, 1),
    promotionThreshold: int('promotionThreshold', options.promotionThreshold, 1024, 0),
    maxProposalBytes: int('maxProposalBytes', options.maxProposalBytes, 8 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    maxInflightMessages: int('maxInflightMessages', options.maxInflightMessages, 256, 1, 65536),
    maxInflightBytes: int('maxInflightBytes', options.maxInflightBytes, 64 * 1024 * 1024, 1),
    maxEntriesPerMessage: int('maxEntriesPerMessage', options.maxEntriesPerMessage, 4096, 1),
    maxBytesPerMessage: int('maxBytesPerMessage', options.maxBytesPerMessage, 1024 * 1024, 1),
  };
}

/** The options a running node can change with {@link RaftNode.reloadConfig}. */
export interface ReloadableOptions {
  /** See {@link RaftNodeOptions.snapshotThreshold}. */
  readonly snapshotThreshold?: number;
  /** See {@link RaftNodeOptions.trailingLogs}. */
  readonly trailingLogs?: number;
  /** See {@link RaftNodeOptions.maxConcurrentSnapshots}. */
  readonly maxConcurrentSnapshots?: number;
  /** See {@link RaftNodeOptions.snapshotIntervalMs}; the next interval starts now. */
  readonly snapshotIntervalMs?: number;
  /** See {@link RaftNodeOptions.snapshotTransfer}; merged into the current limits, used by transfers that start afterwards. */
  readonly snapshotTransfer?: Partial<SnapshotSenderLimits>;
}

const RELOADABLE = new Set(['snapshotThreshold', 'trailingLogs', 'maxConcurrentSnapshots', 'snapshotIntervalMs', 'snapshotTransfer']);
const SENDER_LIMIT_KEYS = Object.keys(DEFAULT_SNAPSHOT_SENDER_LIMITS);
/** Largest snapshot chunk: far below the codec's 64 MiB frame cap. */
const MAX_CHUNK_BYTES = 16 * 1024 * 1024;

/** Validates `snapshotTransfer` and merges it over `base`. */
function senderLimits(value: unknown, base: SnapshotSenderLimits): SnapshotSenderLimits {
  if (value === undefined) return base;
  if (typeof value !== 'object' || value === null) throw new ConfigurationError('snapshotTransfer', 'must be an object');
  for (const key of Object.keys(value)) {
    if (!SENDER_LIMIT_KEYS.includes(key)) throw new ConfigurationError(`snapshotTransfer.${key}`, `unknown limit; known: ${SENDER_LIMIT_KEYS.join(', ')}`);
  }
  const merged: SnapshotSenderLimits = { ...base, ...(value as Partial<SnapshotSenderLimits>) };
  const why = invalidSenderLimits(merged);
  if (why !== null) throw new ConfigurationError('snapshotTransfer', why);
  if (merged.chunkBytes > MAX_CHUNK_BYTES) throw new ConfigurationError('snapshotTransfer.chunkBytes', `must be at most ${MAX_CHUNK_BYTES} (16 MiB), got ${merged.chunkBytes}`);
  return Object.freeze(merged);
}

/**
 * Validates `changes` against the same bounds as {@link resolveOptions} and returns `current` with them applied.
 *
 * @throws {@link ConfigurationError} naming an unknown (or not reloadable) option or the bound one breaks.
 */
export function reloadOptions(current: ResolvedOptions, changes: ReloadableOptions): ResolvedOptions {
  if (typeof changes !== 'object' || changes === null) throw new ConfigurationError('reloadConfig(options)', 'must be an object');
  for (const key of Object.keys(changes)) {
    if (!RELOADABLE.has(key)) throw new ConfigurationError(key, `cannot be changed at run time (reloadable: ${[...RELOADABLE].join(', ')})`);
  }
  return {
    ...current,
    snapshotThreshold: int('snapshotThreshold', changes.snapshotThreshold, current.snapshotThreshold, 1),
    trailingLogs: int('trailingLogs', changes.trailingLogs, current.trailingLogs, 0),
    maxConcurrentSnapshots: int('maxConcurrentSnapshots', changes.maxConcurrentSnapshots, current.maxConcurrentSnapshots, 1, 1024),
    snapshotIntervalMs: int('snapshotIntervalMs', changes.snapshotIntervalMs, current.snapshotIntervalMs, 0),
    snapshotTransfer: senderLimits(changes.snapshotTransfer, current.snapshotTransfer),
  };
}
