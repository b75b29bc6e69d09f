/**
 * raftchart — Raft consensus for TypeScript, built as explicit XState state machines.
 *
 * @example
 * ```ts
 * import { createRaftNode, MemoryNetwork, MemoryStorage } from 'raftchart'
 * const network = new MemoryNetwork()
 * const node = createRaftNode({ id: 'n1', stateMachine: { apply: (e) => e.index },
 *   storage: new MemoryStorage(), transport: network.transport('n1') })
 * await node.start()
 * await node.bootstrap([{ id: 'n1', address: 'n1' }])
 * ```
 *
 * @packageDocumentation
 */
export {
  createRaftNode,
  type RaftNode,
  type RaftStatus,
  type ReplicaStatus,
  type ReplicaProgress,
  type LeaderInfo,
  type RaftEvent,
  type ProposalResult,
  type ProposeOptions,
  type ReadOptions,
  type TransferOptions,
  type StopOptions,
  type TransferAbortReason,
  type MembershipOptions,
  type MembershipResult,
} from './actors/node.actor.js';
export { recoverCluster, type RecoveryResult } from './actors/recover.js';
export { explain, Diagnostics, type DiagnosticEvent, type Explanation, type ExplainFacts, type VoteAnswer } from './actors/diagnostics.js';
export type { RaftNodeOptions, RaftMetricsSink, StateMachine, AppliedEntry, ReloadableOptions } from './actors/options.js';
export {
  RaftError,
  NotLeaderError,
  ShutdownError,
  TimeoutError,
  LeadershipLostError,
  LeadershipTransferError,
  MembershipError,
  RestoreError,
  ConfigurationError,
  StorageError,
  StorageCorruptionError,
  CodecError,
  TransportError,
  type RaftErrorCode,
} from './errors.js';
export { systemClock, SimulatedClock, type Clock, type TimerHandle } from './adapters/clock.js';
export { seededRandom, systemRandom, type Random, type SeededRandom } from './adapters/random.js';
export {
  hasSnapshotStore,
  type RaftStorage,
  type StorageWrite,
  type StoredState,
  type SnapshotStore,
  type SnapshotStaging,
  type SnapshotDescriptor,
  type SnapshotMeta,
} from './adapters/storage/storage.js';
export { MemoryStorage, type MemoryStorageOptions } from './adapters/storage/memory.js';
export { LevelStorage, LEVEL_FORMAT_VERSION, type LevelStorageOptions, type LevelRecovery } from './adapters/storage/level.js';
export { crc32Js, type Crc32 } from './adapters/storage/crc32.js';
export type { Transport, MessageHandler, ConnectionEvent } from './adapters/transport/transport.js';
export { MemoryNetwork, type MemoryNetworkOptions, type UnreliableOptions, type NetworkStats } from './adapters/transport/memory.js';
export {
  WebSocketTransport,
  HANDSHAKE_VERSION,
  type WebSocketTransportOptions,
  type WebSocketTransportStats,
  type WebSocketTlsOptions,
  type TransportLogEntry,
  type TransportLogger,
} from './adapters/transport/websocket.js';
export {
  InspectionServer,
  inspectionStream,
  type InspectionServerOptions,
  type InspectionServerStats,
  type InspectionClientOptions,
  type InspectionMessage,
} from './adapters/inspect/websocket.js';
export {
  toInspectionRecord,
  toJsonValue,
  DEFAULT_INSPECTION_TYPES,
  DEFAULT_JSON_LIMITS,
  type InspectionRecord,
  type JsonValue,
  type JsonLimits,
} from './adapters/inspect/serialize.js';
/**
 * Machines as data: {@link describeMachine} reads any XState machine (such as {@link nodeMachine})
 * into plain data, {@link toSvg} and {@link toMermaid} draw it. The docs site and the live cluster
 * view use them; the diagrams are generated from the code, so they cannot drift from it.
 */
export {
  describeMachine,
  toSvg,
  toMermaid,
  type SvgOptions,
  type MachineInfo,
  type StateInfo,
  type StateKind,
  type TransitionInfo,
  type Trigger,
} from './adapters/inspect/statechart.js';
export {
  encodeFrame,
  decodeFrame,
  CODEC_VERSION,
  MESSAGE_TYPE_CODES,
  ENTRY_TYPE_CODES,
  VOTE_REFUSAL_CODES,
  SNAPSHOT_REFUSAL_CODES,
  DEFAULT_CODEC_LIMITS,
  MAX_ID_BYTES,
  type CodecLimits,
} from './adapters/codec.js';
export {
  nodeMachine,
  type NodeContext,
  type NodeEvent,
  type NodeInput,
  type RoutedEvent,
  type ReplicaRefs,
  type AppendEntriesIntent,
  type AppendProposalsIntent,
  type ReadMode,
  type PendingRead,
  type ConfirmedRead,
  type RejectReadsIntent,
  type TransferRefusal,
  type AppendConfigIntent,
  type RefuseChangeIntent,
  type ConfigOrigin,
} from './machines/node.machine.js';
export {
  membershipOf,
  isVoterIn,
  isMemberOf,
  peersOf,
  allVoters,
  jointQuorumIndex,
  jointTally,
  jointHasQuorum,
  isCaughtUp,
  planChange,
  leaveJoint,
  NO_MEMBERSHIP,
  type Membership,
  type MembershipChange,
  type MembershipRefusal,
  type ChangePlan,
} from './machines/membership.js';
export {
  replicaMachine,
  type ReplicaContext,
  type ReplicaEvent,
  type ReplicaInput,
  type ReplicaLimits,
  type ReplicaProgressEvent,
  type ReplicaSnapshots,
  type SnapshotTransfer,
  type SnapshotProgressIntent,
  type SendAppendIntent,
  type SendHeartbeatIntent,
} from './machines/replica.machine.js';
export {
  snapshotSenderMachine,
  type SnapshotSenderContext,
  type SnapshotSenderEvent,
  type SnapshotSenderInput,
  type SnapshotSendSource,
  type SnapshotAbortReason,
  type SnapshotProgressEvent,
  type SnapshotFinishedEvent,
  type SnapshotSendResult,
  type ReadChunkIntent,
} from './machines/snapshot-sender.machine.js';
export {
  DEFAULT_SNAPSHOT_CHUNK_BYTES,
  DEFAULT_SNAPSHOT_SENDER_LIMITS,
  invalidSenderLimits,
  retransmitDelay,
  ackThrough,
  gapResends,
  chunkEnd,
  chunksOf,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type SnapshotRefusal,
  type SnapshotSenderLimits,
  type ChunkInFlight,
} from './machines/snapshot.js';
export {
  RestoreTracker,
  encodeRestoreRecord,
  decodeRestoreRecord,
  type RestoreRecord,
  type RestoreStep,
  type CompletedRestore,
} from './machines/restore.js';
export type { RestoreSource, RestoreResult } from './actors/restore-writer.js';
export { Inflights } from './machines/inflights.js';
export { majority, quorumIndex, tally, hasQuorum, type ElectionResult } from './machines/quorum.js';
export { isUpToDate, decideVote, type VoterState, type Ballot, type VoteDecision } from './machines/vote.js';
export { matches, conflictHint, nextAfterConflict, type ConflictHint } from './machines/log-matching.js';
export type * from './machines/types.js';
