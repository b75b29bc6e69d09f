/**
 * The transport adapter contract: one-way messages between nodes. The memory
 * network implements it for tests; the WebSocket transport for real clusters.
 *
 * @module
 */
import type { Observable } from 'rxjs';
import type { RaftMessage, Server, ServerId } from '../../machines/types.js';

/** A change in a transport's connection to one peer (see {@link Transport.connections$}). */
export type ConnectionEvent =
  /** Authenticated and usable; `outbound`: this node dialed. */
  | { readonly type: 'connectionEstablished'; readonly peer: ServerId; readonly outbound: boolean }
  /** An established connection closed; the transport reconnects on its own. */
  | { readonly type: 'connectionLost'; readonly peer: ServerId; readonly reason: string }
  /** Dialing failed (reported once per streak of failures). */
  | { readonly type: 'connectionFailed'; readonly peer: ServerId; readonly reason: string };

/** Called once per received message, in arrival order. Must not throw. */
export type MessageHandler = (message: RaftMessage) => void;

/**
 * Carries Raft messages to other nodes.
 *
 * @remarks Delivery is best effort: messages may be lost, delayed, duplicated
 * or reordered, and Raft tolerates all of it. `send` never throws and never
 * blocks; a message to an unknown or unreachable peer is dropped. The messages
 * of one call (one node turn) should travel together, one frame per peer.
 */
export interface Transport {
  /** Begins delivering inbound messages addressed to `id` to `handler`. */
  start(id: string, handler: MessageHandler): Promise<void>;
  /** Sends messages; each goes to its `to`. */
  send(messages: readonly RaftMessage[]): void;
  /** Tells the transport where members live (called on every configuration change). */
  setPeers(servers: readonly Server[]): void;
  /** Connection changes, for transports that have connections; the node forwards them to its `events$`. Optional. */
  readonly connections$?: Observable<ConnectionEvent>;
  /** Stops sending and receiving; idempotent. */
  stop(): Promise<void>;
}
