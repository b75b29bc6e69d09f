/**
 * A {@link Transport} over WebSockets (`ws`), for real clusters: one
 * authenticated, reused connection per pair of nodes, binary frames of the
 * {@link encodeFrame | wire codec}, bounded memory under backpressure.
 *
 * ## Handshake (JSON text messages, before any Raft frame)
 *
 * The accepting side (server) speaks first. Nonces are 32 random bytes,
 * base64; `boot` is a random id of the transport instance (it changes on
 * every restart).
 *
 * ```
 * S → C  {"type":"challenge","version":1,"cluster":C_s,"id":S,"boot":B_s,"nonce":N_s}
 * C → S  {"type":"hello","version":1,"cluster":C_c,"id":C,"boot":B_c,"nonce":N_c,
 *         "proof":HMAC(secret, ["raftchart-ws/1","client",cluster,C,S,N_s,N_c])}
 * S → C  {"type":"welcome","proof":HMAC(secret, ["raftchart-ws/1","server",cluster,C,S,N_s,N_c])}
 *   or   {"type":"reject","reason":"cluster"|"auth"|"identity"|"version"|"protocol","message":...}
 * ```
 *
 * HMAC is HMAC-SHA256 over the UTF-8 JSON text of the array, compared with
 * `timingSafeEqual`. The client proves the secret first; the server proves it
 * back only to an authenticated client, over the client's nonce, so both sides
 * authenticate and neither can be replayed. A cluster-id mismatch is refused on
 * both ends with a {@link TransportError} naming both ids; a bad proof is
 * refused and logged. Only after `welcome` do binary Raft frames flow; a text
 * message after it, a binary one before it, or a frame that fails to decode
 * closes that connection (logged) and nothing else.
 *
 * ## One connection per pair
 *
 * Both nodes dial the peers they know (from {@link Transport.setPeers}), and a
 * connection carries messages both ways. When two authenticated connections
 * join the same pair (they dialed each other at once), both ends keep the one
 * **dialed by the lower id** (string order) and close the other with code
 * 4004. When the peer's `boot` differs (it restarted), the newer connection
 * replaces the older one instead.
 *
 * Close codes: 1001 stopping, 1009 frame over `maxPayloadBytes`, 4001 cluster
 * mismatch, 4002 protocol error (bad handshake message or bad frame), 4003
 * authentication failed, 4004 duplicate or superseded connection, 4005 wrong
 * identity, 4006 version mismatch, 4008 handshake or keepalive timeout.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { proof, proofMatches, secretKey } from '../auth.js';
import { checkInt, checkKeys, listen, parseListen } from '../net.js';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Subject } from 'rxjs';
import { WebSocket, WebSocketServer } from 'ws';
import type { RawData } from 'ws';
import { CodecError, ConfigurationError, TransportError } from '../../errors.js';
import type { RaftMessage, Server } from '../../machines/types.js';
import { CODEC_VERSION, MAX_ID_BYTES, decodeFrame, encodeFrame } from '../codec.js';
import { systemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { systemRandom } from '../random.js';
import type { Random } from '../random.js';
import type { ConnectionEvent, MessageHandler, Transport } from './transport.js';

/** Version of the handshake; a peer with another version is refused. */
export const HANDSHAKE_VERSION = 1;

/** TLS material for `wss://`, in PEM (string or bytes). The same options serve the listening side and the dialing side. */
export interface WebSocketTlsOptions {
  /** This node's private key. */
  readonly key: string | Uint8Array;
  /** This node's certificate (chain); presented as server, and as client when the peer asks for one. */
  readonly cert: string | Uint8Array;
  /** Certificates to trust instead of the system roots (for a private CA or self-signed certs). */
  readonly ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /** Mutual TLS: require dialing peers to present a certificate signed by `ca`. Default `false`. */
  readonly requestCert?: boolean;
}

/** One log record of a {@link WebSocketTransport}. */
export interface TransportLogEntry {
  /** `info`: connection churn; `warn`: a bad frame or an oversized message; `error`: a refused handshake. */
  readonly level: 'info' | 'warn' | 'error';
  /** Human-readable, names the peer and the cause. */
  readonly message: string;
  /** The peer concerned, when known. */
  readonly peer?: string;
  /** The error behind the record (a {@link TransportError} for refusals, a {@link CodecError} for bad frames). */
  readonly error?: Error;
}

/** Receives the transport's log records; must not throw (exceptions are swallowed). */
export type TransportLogger = (entry: TransportLogEntry) => void;

/** Options of {@link WebSocketTransport}. Unknown options are refused. */
export interface WebSocketTransportOptions {
  /** `'host:port'` (IPv6 as `'[::1]:7001'`) to listen on. Port 0 picks a free port; read it back with {@link WebSocketTransport.address}. */
  readonly listen: string;
  /**
   * The shared cluster secret (at least 16 bytes, ideally 32 random ones):
   * both sides of every connection prove they hold it. Required unless
   * `insecure` is `true`.
   */
  readonly secret?: string | Uint8Array | undefined;
  /** Runs without a secret: the handshake still checks the cluster id but authenticates nobody. Default `false`; never combine with `secret`. */
  readonly insecure?: boolean;
  /** Name of the cluster; peers of another cluster are refused. Default `'raftchart'`. */
  readonly clusterId?: string;
  /** Serve and dial `wss://`. Addresses without a scheme then use `wss`. */
  readonly tls?: WebSocketTlsOptions;
  /**
   * Largest WebSocket message accepted, and largest frame sent, in bytes
   * (ws `maxPayload`, on both sides). An inbound message over it closes that
   * connection (code 1009, logged). Default 64 MiB.
   */
  readonly maxPayloadBytes?: number;
  /**
   * Backpressure threshold per peer socket, in bytes. Above it, `append` and
   * `installSnapshot` messages (log entries and snapshot chunks) to that peer
   * are dropped (Raft and the snapshot sender retransmit) while votes,
   * heartbeats and responses still go; above twice it, everything to that peer
   * is dropped. It also bounds the frames held for a peer while a connection
   * to it is being made. Default 4 MiB.
   */
  readonly highWaterMarkBytes?: number;
  /** Capped exponential backoff between dial attempts, with jitter in `[delay/2, delay]`. Default `{ initialMs: 100, maxMs: 5000 }`. */
  readonly reconnect?: { readonly initialMs?: number; readonly maxMs?: number };
  /** A connection that has not finished its handshake after this long is closed. Default 5000. */
  readonly handshakeTimeoutMs?: number;
  /** Ping period; a connection that missed a whole period's pong is closed. 0 turns keepalive off. Default 15000. */
  readonly keepaliveMs?: number;
  /** Drives every timer (backoff, handshake timeout, keepalive, stop grace). Default {@link systemClock}. */
  readonly clock?: Clock;
  /** Draws backoff jitter. Default {@link systemRandom}. */
  readonly random?: Random;
  /**
   * Where log records go. Default: `warn` and `error` records to
   * `console.warn`, `info` nowhere. `null` silences everything.
   */
  readonly logger?: TransportLogger | null;
}

/** Counters of a {@link WebSocketTransport}, from creation; a snapshot, not live. */
export interface WebSocketTransportStats {
  /** Raft frames written to sockets (one per `send` call and peer, more only when a batch is too large). */
  readonly framesSent: number;
  /** Messages in those frames. */
  readonly messagesSent: number;
  /** Bytes of those frames. */
  readonly bytesSent: number;
  /** Raft frames decoded. */
  readonly framesReceived: number;
  /** Messages handed to the handler. */
  readonly messagesReceived: number;
  /** Bytes of decoded frames. */
  readonly bytesReceived: number;
  /** `append` messages dropped because the peer socket was over the high-water mark. */
  readonly droppedAppends: number;
  /** Every outbound message dropped, for any reason: backpressure, peer not connected or unknown, transport not started, not encodable. */
  readonly droppedMessages: number;
  /** Inbound messages dropped because `to` is not this node or `from` is not the authenticated peer. */
  readonly droppedInbound: number;
  /** Dial attempts made after a failure or a lost connection. */
  readonly reconnects: number;
  /** Handshakes completed. */
  readonly handshakes: number;
  /** Handshakes refused, by either side, seen from this node (cluster, secret, identity, version, protocol, timeout). */
  readonly rejectedHandshakes: number;
  /** Connections closed for a frame that failed to decode, a protocol violation or an oversized message. */
  readonly protocolErrors: number;
  /** Authenticated connections open now. */
  readonly connections: number;
  /** Per known peer: whether a connection is up and how many bytes wait in its socket. */
  readonly peers: Readonly<Record<string, { readonly connected: boolean; readonly bufferedAmount: number }>>;
}

type MutableStats = { -readonly [K in keyof Omit<WebSocketTransportStats, 'connections' | 'peers'>]: number };

const KNOWN_OPTIONS = [
  'listen',
  'secret',
  'insecure',
  'clusterId',
  'tls',
  'maxPayloadBytes',
  'highWaterMarkBytes',
  'reconnect',
  'handshakeTimeoutMs',
  'keepaliveMs',
  'clock',
  'random',
  'logger',
] as const;
const KNOWN_TLS = ['key', 'cert', 'ca', 'requestCert'];
const KNOWN_RECONNECT = ['initialMs', 'maxMs'];

const MiB = 1024 * 1024;
const MAX_HANDSHAKE_CHARS = 4096;
const NONCE_BYTES = 32;
const MAX_PENDING_FRAMES = 1024;
const STOP_GRACE_MS = 1000;
/** How long a closing handshake may take before the socket is cut. */
const CLOSE_GRACE_MS = 1000;
const PROOF_LABEL = 'raftchart-ws/1';

const CLOSE = {
  stopping: 1001,
  cluster: 4001,
  protocol: 4002,
  auth: 4003,
  duplicate: 4004,
  identity: 4005,
  version: 4006,
  timeout: 4008,
} as const;

type RejectReason = 'cluster' | 'auth' | 'identity' | 'version' | 'protocol';

/** One WebSocket, from dial or accept to close. */
interface Conn {
  readonly ws: WebSocket;
  /** `true` when this node dialed it. */
  readonly outbound: boolean;
  /** For logs: the URL dialed or the remote address. */
  readonly where: string;
  /** Outbound: the peer id we meant to reach. */
  readonly expectId: string | null;
  phase: 'challenge' | 'hello' | 'welcome' | 'open' | 'closed';
  peerId: string | null;
  peerBoot: string | null;
  serverNonce: string;
  clientNonce: string;
  timer: TimerHandle | null;
  /** Cuts the socket if a closing handshake stalls. */
  closeTimer: TimerHandle | null;
  /** Keepalive: a pong (or any message) arrived since the last ping. */
  alive: boolean;
  /** Set once a refusal was logged, so the close that follows is not logged again. */
  refused: boolean;
  /** The last socket error, for the `connections$` reason. */
  lastError: string | null;
  readonly closed: Promise<void>;
}

/** What this node knows of one peer. */
interface Peer {
  readonly id: string;
  /** Where to dial; `null` when unknown (a peer that only dialed us). */
  url: string | null;
  /** Listed in the latest `setPeers`. */
  member: boolean;
  /** The authenticated connection messages go through. */
  conn: Conn | null;
  /** Our dial in progress. */
  dialing: Conn | null;
  /** Frames sent while `dialing`, flushed when it opens; bounded by bytes and count. */
  pending: Uint8Array[];
  pendingBytes: number;
  pendingMessages: number;
  retry: TimerHandle | null;
  attempt: number;
  /** Reported on `connections$` as connected (established, not lost since). */
  up: boolean;
  /** A failed dial was reported in the current streak of failures. */
  failReported: boolean;
}

function fail(option: string, why: string): never {
  throw new ConfigurationError(option, why);
}

function isPem(value: unknown): value is string | Uint8Array {
  return (typeof value === 'string' && value.length > 0) || (value instanceof Uint8Array && value.length > 0);
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The WebSocket {@link Transport}: authenticated, one connection per node pair,
 * batched binary frames, bounded memory.
 *
 * @remarks
 * - `send` never throws and never blocks. A message to a peer with no open
 *   connection is dropped, except that frames sent while a dial is in progress
 *   wait for it (at most `highWaterMarkBytes` and 1,024 frames per peer); on a
 *   failed dial they are dropped. Nothing queues while a peer is down.
 * - The messages of one `send` call travel as one frame per peer (split only
 *   when larger than `maxPayloadBytes`; a single message over it is dropped and
 *   logged).
 * - Inbound messages reach the handler in arrival order; one whose `to` is not
 *   this node, or whose `from` is not the peer authenticated on that
 *   connection, is dropped and counted.
 * - Decoded entry payloads are views into the received WebSocket message.
 * - A peer restart is handled by the `boot` rule above; the dialing side
 *   reconnects with capped, jittered exponential backoff while the peer stays
 *   in `setPeers`.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ listen: '127.0.0.1:7001', secret: process.env.RAFT_SECRET });
 * const node = createRaftNode({ id: 'n1', stateMachine, storage, transport });
 * await node.start();
 * await node.bootstrap([
 *   { id: 'n1', address: 'ws://127.0.0.1:7001' },
 *   { id: 'n2', address: 'ws://127.0.0.1:7002' },
 *   { id: 'n3', address: 'ws://127.0.0.1:7003' },
 * ]);
 * ```
 */
export class WebSocketTransport implements Transport {
  readonly #host: string;
  readonly #port: number;
  readonly #secret: Buffer;
  readonly #clusterId: string;
  readonly #tls: WebSocketTlsOptions | undefined;
  readonly #maxPayload: number;
  readonly #hwm: number;
  readonly #backoffInitial: number;
  readonly #backoffMax: number;
  readonly #handshakeTimeout: number;
  readonly #keepalive: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #logger: TransportLogger | null;

  #state: 'new' | 'starting' | 'started' | 'stopped' = 'new';
  #id = '';
  #boot = '';
  #handler: MessageHandler | null = null;
  #server: HttpServer | null = null;
  #wss: WebSocketServer | null = null;
  #bound: AddressInfo | null = null;
  #keepaliveTimer: TimerHandle | null = null;
  #stopping: Promise<void> | null = null;
  #startup: Promise<void> | null = null;
  readonly #conns = new Set<Conn>();
  readonly #connections$ = new Subject<ConnectionEvent>();
  /**
   * Connection changes per peer: established (after the handshake), lost, and failed (the first
   * failed dial of a streak; later retries are quiet until one succeeds). Completes on `stop()`.
   */
  readonly connections$ = this.#connections$.asObservable();
  readonly #peers = new Map<string, Peer>();
  readonly #stats: MutableStats = {
    framesSent: 0,
    messagesSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    droppedAppends: 0,
    droppedMessages: 0,
    droppedInbound: 0,
    reconnects: 0,
    handshakes: 0,
    rejectedHandshakes: 0,
    protocolErrors: 0,
  };

  /**
   * @throws A {@link ConfigurationError} naming the option: an unknown option,
   *   a malformed `listen`, a missing `secret` without `insecure: true` (or
   *   both given), a secret under 16 bytes, a bad number, TLS without `key` or
   *   `cert`.
   */
  constructor(options: WebSocketTransportOptions) {
    if (typeof options !== 'object' || options === null) fail('options', 'must be an object');
    checkKeys('', options, KNOWN_OPTIONS);
    const { host, port } = parseListen(options.listen);
    this.#host = host;
    this.#port = port;

    this.#secret = secretKey(options.secret, options.insecure ?? false);

    const clusterId = options.clusterId ?? 'raftchart';
    if (typeof clusterId !== 'string' || clusterId.length === 0 || utf8Length(clusterId) > MAX_ID_BYTES) {
      fail('clusterId', `must be a non-empty string of at most ${MAX_ID_BYTES} UTF-8 bytes`);
    }
    this.#clusterId = clusterId;

    if (options.tls !== undefined) {
      const tls = options.tls;
      if (typeof tls !== 'object' || tls === null) fail('tls', 'must be an object { key, cert, ca?, requestCert? }');
      checkKeys('tls', tls, KNOWN_TLS);
      if (!isPem(tls.key)) fail('tls.key', 'required: a PEM private key (string or bytes)');
      if (!isPem(tls.cert)) fail('tls.cert', 'required: a PEM certificate (string or bytes)');
      if (tls.ca !== undefined && !isPem(tls.ca) && !(Array.isArray(tls.ca) && tls.ca.every(isPem))) {
        fail('tls.ca', 'must be PEM certificates (a string, bytes, or an array of them)');
      }
      if (tls.requestCert !== undefined && typeof tls.requestCert !== 'boolean') fail('tls.requestCert', 'must be a boolean');
    }
    this.#tls = options.tls;

    this.#maxPayload = checkInt('maxPayloadBytes', options.maxPayloadBytes ?? 64 * MiB, 1024);
    this.#hwm = checkInt('highWaterMarkBytes', options.highWaterMarkBytes ?? 4 * MiB, 1);
    const reconnect = options.reconnect ?? {};
    if (typeof reconnect !== 'object' || reconnect === null) fail('reconnect', 'must be an object { initialMs?, maxMs? }');
    checkKeys('reconnect', reconnect, KNOWN_RECONNECT);
    this.#backoffInitial = checkInt('reconnect.initialMs', reconnect.initialMs ?? 100, 1);
    this.#backoffMax = checkInt('reconnect.maxMs', reconnect.maxMs ?? Math.max(5000, this.#backoffInitial), this.#backoffInitial);
    this.#handshakeTimeout = checkInt('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 5000, 1);
    this.#keepalive = checkInt('keepaliveMs', options.keepaliveMs ?? 15_000, 0);

    const clock = options.clock ?? systemClock;
    if (typeof clock?.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
      fail('clock', 'must implement Clock (setTimeout, clearTimeout)');
    }
    this.#clock = clock;
    const random = options.random ?? systemRandom;
    if (typeof random?.next !== 'function') fail('random', 'must implement Random (next)');
    this.#random = random;
    if (options.logger !== undefined && options.logger !== null && typeof options.logger !== 'function') {
      fail('logger', 'must be a function, or null for silence');
    }
    this.#logger = options.logger === undefined ? defaultLogger : options.logger;
  }

  /**
   * Listens, then dials the peers already known.
   *
   * @throws A {@link ConfigurationError} when `id` is empty or longer than 255
   *   UTF-8 bytes, or the transport was started or stopped before; a
   *   {@link TransportError} when the address cannot be bound.
   */
  start(id: string, handler: MessageHandler): Promise<void> {
    if (typeof id !== 'string' || id.length === 0 || utf8Length(id) > MAX_ID_BYTES) {
      return Promise.reject(new ConfigurationError('id', `must be a non-empty string of at most ${MAX_ID_BYTES} UTF-8 bytes`));
    }
    if (typeof handler !== 'function') return Promise.reject(new ConfigurationError('handler', 'must be a function'));
    if (this.#state !== 'new') {
      const why = this.#state === 'stopped' ? 'this transport was stopped; create a new WebSocketTransport' : 'already started';
      return Promise.reject(new ConfigurationError('start', why));
    }
    this.#state = 'starting';
    this.#id = id;
    this.#boot = randomBytes(12).toString('base64url');
    this.#startup = this.#listen(handler);
    return this.#startup;
  }

  async #listen(handler: MessageHandler): Promise<void> {
    const tls = this.#tls;
    const server = tls
      ? createHttpsServer({
          key: toPem(tls.key),
          cert: toPem(tls.cert),
          ...(tls.ca === undefined ? {} : { ca: toPemList(tls.ca) }),
          requestCert: tls.requestCert ?? false,
          rejectUnauthorized: tls.requestCert ?? false,
        })
      : createHttpServer();
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('raftchart: WebSocket only\n');
    });
    server.on('tlsClientError', (err: Error) => {
      this.#log('warn', `TLS handshake from a client failed: ${err.message}`, undefined, new TransportError(`TLS handshake failed: ${err.message}`, { cause: err }));
    });
    try {
      await listen(server, this.#host, this.#port);
    } catch (err) {
      this.#state = 'stopped';
      throw new TransportError(`cannot listen on ${this.#host}:${this.#port}: ${describe(err)}`, { cause: err });
    }
    server.on('error', (err: Error) => this.#log('error', `server error: ${err.message}`, undefined, err));
    this.#server = server;
    this.#bound = server.address() as AddressInfo;
    const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: this.#maxPayload, clientTracking: false });
    wss.on('connection', (ws, req) => this.#accept(ws, req));
    wss.on('error', (err: Error) => this.#log('error', `WebSocket server error: ${err.message}`, undefined, err));
    wss.on('wsClientError', (err: Error) => this.#log('info', `bad upgrade request: ${err.message}`));
    this.#wss = wss;
    if (this.#state !== 'starting') return; // stop() ran while we were binding; it shuts down next
    this.#handler = handler;
    this.#state = 'started';
    if (this.#keepalive > 0) this.#scheduleKeepalive();
    for (const peer of this.#peers.values()) this.#dial(peer);
  }

  /**
   * The URL peers reach this node at, e.g. `'ws://127.0.0.1:41234'` (the real
   * port when `listen` gave port 0); pass it as this node's `Server.address`.
   *
   * @throws A {@link TransportError} before `start` completed.
   */
  address(): string {
    const bound = this.#bound;
    if (bound === null) throw new TransportError('not listening: call start() first');
    const host = bound.family === 'IPv6' || bound.address.includes(':') ? `[${bound.address}]` : bound.address;
    return `${this.#tls ? 'wss' : 'ws'}://${host}:${bound.port}`;
  }

  /** Sends each message to its `to`, one frame per peer; never throws, never blocks. */
  send(messages: readonly RaftMessage[]): void {
    const n = messages.length;
    if (n === 0) return;
    if (this.#state !== 'started') {
      this.#stats.droppedMessages += n;
      return;
    }
    try {
      let groups: Map<string, RaftMessage[]>;
      const to0 = messages[0]?.to;
      if (messages.every((m) => m.to === to0)) groups = new Map([[String(to0), messages.slice()]]);
      else {
        groups = new Map();
        for (const m of messages) {
          const list = groups.get(m.to);
          if (list === undefined) groups.set(m.to, [m]);
          else list.push(m);
        }
      }
      for (const [to, list] of groups) this.#sendTo(to, list);
    } catch (err) {
      this.#log('error', `send failed: ${describe(err)}`, undefined, err instanceof Error ? err : undefined);
    }
  }

  /**
   * Learns where members live. Peers no longer listed stop being dialed (an
   * open connection stays until it closes); new or moved ones are dialed.
   * Addresses are `'ws://host:port'`, `'wss://host:port'` or `'host:port'`;
   * a malformed one is logged and that peer is not dialed. Never throws.
   */
  setPeers(servers: readonly Server[]): void {
    const listed = new Set<string>();
    for (const s of servers) {
      if (typeof s?.id !== 'string' || s.id.length === 0) continue;
      listed.add(s.id);
      const peer = this.#peer(s.id);
      peer.member = true;
      const url = this.#parseAddress(s.id, s.address);
      if (url !== peer.url) {
        peer.url = url;
        peer.attempt = 0;
      }
    }
    for (const peer of this.#peers.values()) {
      if (listed.has(peer.id)) continue;
      peer.member = false;
      peer.url = null;
      this.#cancelRetry(peer);
      this.#forget(peer);
    }
    if (this.#state === 'started') for (const peer of this.#peers.values()) this.#dial(peer);
  }

  /** Counters and per-peer connection state; see {@link WebSocketTransportStats}. */
  stats(): WebSocketTransportStats {
    const peers: Record<string, { connected: boolean; bufferedAmount: number }> = {};
    let connections = 0;
    for (const peer of this.#peers.values()) {
      if (peer.id === this.#id) continue;
      const conn = peer.conn;
      peers[peer.id] = { connected: conn !== null, bufferedAmount: conn === null ? 0 : conn.ws.bufferedAmount };
    }
    for (const conn of this.#conns) if (conn.phase === 'open') connections++;
    return { ...this.#stats, connections, peers };
  }

  /** Closes the server and every connection and clears every timer; idempotent. */
  stop(): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    const wasStarted = this.#state === 'started';
    const wasStarting = this.#state === 'starting';
    this.#state = 'stopped';
    this.#handler = null;
    if (wasStarting && this.#startup !== null) {
      // Shut down once the listen in progress settles.
      this.#stopping = this.#startup.then(
        () => this.#shutdown(),
        () => undefined,
      );
      return this.#stopping;
    }
    this.#stopping = wasStarted ? this.#shutdown() : Promise.resolve();
    return this.#stopping.finally(() => this.#connections$.complete());
  }

  // -- lifecycle --------------------------------------------------------------

  async #shutdown(): Promise<void> {
    this.#handler = null;
    if (this.#keepaliveTimer !== null) this.#clock.clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = null;
    for (const peer of this.#peers.values()) {
      this.#cancelRetry(peer);
      peer.pending = [];
      peer.pendingBytes = 0;
      peer.pendingMessages = 0;
    }
    const closing: Promise<void>[] = [];
    for (const conn of this.#conns) {
      closing.push(conn.closed);
      this.#close(conn, CLOSE.stopping, 'stopping');
    }
    if (closing.length > 0) {
      let grace: TimerHandle | null = null;
      await Promise.race([
        Promise.all(closing),
        new Promise<void>((resolve) => {
          grace = this.#clock.setTimeout(resolve, STOP_GRACE_MS);
        }),
      ]);
      if (grace !== null) this.#clock.clearTimeout(grace);
      for (const conn of this.#conns) conn.ws.terminate();
    }
    const server = this.#server;
    this.#wss?.close();
    if (server !== null) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.#server = null;
    this.#wss = null;
  }

  #scheduleKeepalive(): void {
    this.#keepaliveTimer = this.#clock.setTimeout(() => {
      this.#keepaliveTimer = null;
      if (this.#state !== 'started') return;
      for (const conn of this.#conns) {
        if (conn.phase !== 'open') continue;
        if (!conn.alive) {
          this.#log('warn', `no pong from ${conn.peerId} within ${this.#keepalive} ms; closing the connection`, conn.peerId ?? undefined);
          this.#close(conn, CLOSE.timeout, 'keepalive timeout');
          conn.ws.terminate();
          continue;
        }
        conn.alive = false;
        conn.ws.ping();
      }
      this.#scheduleKeepalive();
    }, this.#keepalive);
  }

  // -- peers and dialing --------------------------------------------------------

  #peer(id: string): Peer {
    let peer = this.#peers.get(id);
    if (peer === undefined) {
      peer = { id, url: null, member: false, conn: null, dialing: null, pending: [], pendingBytes: 0, pendingMessages: 0, retry: null, attempt: 0, up: false, failReported: false };
      this.#peers.set(id, peer);
    }
    return peer;
  }

  /** Drops the record of a peer that is neither listed nor connected, so unknown dialers cannot grow the map. */
  #forget(peer: Peer): void {
    if (!peer.member && peer.conn === null && peer.dialing === null && peer.retry === null) this.#peers.delete(peer.id);
  }

  #parseAddress(id: string, address: unknown): string | null {
    if (typeof address !== 'string' || address.length === 0) {
      this.#log('warn', `peer ${id} has no address; it will not be dialed`, id);
      return null;
    }
    const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `${this.#tls ? 'wss' : 'ws'}://${address}`;
    try {
      const url = new URL(text);
      if ((url.protocol === 'ws:' || url.protocol === 'wss:') && url.hostname !== '' && url.port !== '') return url.href;
    } catch {
      // fall through
    }
    this.#log('error', `peer ${id} has an unusable address '${address}' (want ws://host:port, wss://host:port or host:port)`, id);
    return null;
  }

  #cancelRetry(peer: Peer): void {
    if (peer.retry !== null) this.#clock.clearTimeout(peer.retry);
    peer.retry = null;
  }

  #scheduleReconnect(peer: Peer): void {
    if (this.#state !== 'started' || peer.url === null || !peer.member || peer.id === this.#id) return;
    if (peer.retry !== null || peer.dialing !== null || peer.conn !== null) return;
    const base = Math.min(this.#backoffMax, this.#backoffInitial * 2 ** Math.min(peer.attempt, 30));
    const delay = base / 2 + (this.#random.next() * base) / 2;
    peer.attempt++;
    peer.retry = this.#clock.setTimeout(() => {
      peer.retry = null;
      this.#stats.reconnects++;
      this.#dial(peer);
    }, delay);
  }

  #dial(peer: Peer): void {
    if (this.#state !== 'started' || peer.url === null || !peer.member || peer.id === this.#id) return;
    if (peer.conn !== null || peer.dialing !== null || peer.retry !== null) return;
    const url = peer.url;
    const tls = this.#tls;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: this.#maxPayload,
        handshakeTimeout: this.#handshakeTimeout,
        ...(tls === undefined
          ? {}
          : { key: toPem(tls.key), cert: toPem(tls.cert), ...(tls.ca === undefined ? {} : { ca: toPemList(tls.ca) }) }),
      });
    } catch (err) {
      this.#log('error', `cannot dial ${peer.id} at ${url}: ${describe(err)}`, peer.id);
      this.#scheduleReconnect(peer);
      return;
    }
    const conn = this.#track(ws, true, url, peer.id);
    peer.dialing = conn;
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    if (this.#state !== 'started') {
      ws.terminate();
      return;
    }
    const where = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const conn = this.#track(ws, false, where, null);
    conn.serverNonce = randomBytes(NONCE_BYTES).toString('base64');
    this.#sendJson(conn, {
      type: 'challenge',
      version: HANDSHAKE_VERSION,
      cluster: this.#clusterId,
      id: this.#id,
      boot: this.#boot,
      nonce: conn.serverNonce,
    });
  }

  /** Wires a socket's events and starts its handshake timer. */
  #track(ws: WebSocket, outbound: boolean, where: string, expectId: string | null): Conn {
    let resolveClosed: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    const conn: Conn = {
      ws,
      outbound,
      where,
      expectId,
      phase: outbound ? 'challenge' : 'hello',
      peerId: null,
      peerBoot: null,
      serverNonce: '',
      clientNonce: '',
      timer: null,
      closeTimer: null,
      alive: true,
      refused: false,
      lastError: null,
      closed,
    };
    this.#conns.add(conn);
    conn.timer = this.#clock.setTimeout(() => {
      conn.timer = null;
      if (conn.phase === 'open' || conn.phase === 'closed') return;
      this.#refuse(conn, null, CLOSE.timeout, 'handshake timeout', `handshake with ${this.#label(conn)} did not complete within ${this.#handshakeTimeout} ms`);
      conn.ws.terminate();
    }, this.#handshakeTimeout);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      conn.alive = true;
      this.#onMessage(conn, data, isBinary);
    });
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => this.#onError(conn, err));
    ws.on('close', (code: number, reason: Buffer) => {
      this.#onClose(conn, code, reason.toString());
      resolveClosed();
    });
    return conn;
  }

  #label(conn: Conn): string {
    const id = conn.peerId ?? conn.expectId;
    return id === null ? `a peer at ${conn.where}` : `${id} at ${conn.where}`;
  }

  #onError(conn: Conn, err: Error & { code?: string }): void {
    conn.lastError = err.message;
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.#stats.protocolErrors++;
      this.#log(
        'warn',
        `message from ${this.#label(conn)} exceeds maxPayloadBytes (${this.#maxPayload}); connection closed`,
        conn.peerId ?? undefined,
        new TransportError(`message from ${this.#label(conn)} exceeds maxPayloadBytes (${this.#maxPayload})`, { cause: err }),
      );
      // ws has sent the 1009 close and stopped reading; do not wait for its 30 s close timeout.
      this.#close(conn, 1009, 'message too big');
      return;
    }
    if (this.#state !== 'started') return;
    const peer = conn.outbound && conn.expectId !== null ? this.#peers.get(conn.expectId) : undefined;
    const quiet = conn.outbound && conn.phase === 'challenge' && (peer?.attempt ?? 0) > 0;
    this.#log(quiet ? 'info' : 'warn', `connection with ${this.#label(conn)}: ${err.message}`, conn.peerId ?? conn.expectId ?? undefined, err);
  }

  #onClose(conn: Conn, code: number, reason: string): void {
    const wasOpen = conn.phase === 'open';
    conn.phase = 'closed';
    this.#conns.delete(conn);
    if (conn.timer !== null) this.#clock.clearTimeout(conn.timer);
    conn.timer = null;
    if (conn.closeTimer !== null) this.#clock.clearTimeout(conn.closeTimer);
    conn.closeTimer = null;
    if (this.#state !== 'started') return;
    if (!conn.refused && !wasOpen && code >= 4000 && code < 4100 && code !== CLOSE.duplicate) {
      // The other side refused us without (or before) a readable reject message.
      this.#stats.rejectedHandshakes++;
      this.#log('error', `${this.#label(conn)} refused the handshake (code ${code}: ${reason || 'no reason'})`, conn.peerId ?? undefined, new TransportError(`${this.#label(conn)} refused the handshake: ${reason || code}`));
    } else if (wasOpen && code === 1009) {
      this.#log('warn', `${this.#label(conn)} closed the connection: a message exceeded its maximum payload (code 1009)`, conn.peerId ?? undefined);
    } else if (wasOpen && code !== CLOSE.duplicate && code !== CLOSE.stopping) {
      this.#log('info', `connection with ${this.#label(conn)} closed (code ${code}${reason ? `: ${reason}` : ''})`, conn.peerId ?? undefined);
    }
    const id = conn.peerId ?? conn.expectId;
    const peer = id === null ? undefined : this.#peers.get(id);
    if (peer === undefined) return;
    if (peer.dialing === conn) {
      peer.dialing = null;
      this.#stats.droppedMessages += peer.pendingMessages;
      peer.pending = [];
      peer.pendingBytes = 0;
      peer.pendingMessages = 0;
    }
    if (peer.conn === conn) peer.conn = null;
    const why = `code ${code}${reason ? `: ${reason}` : ''}${conn.lastError === null ? '' : ` (${conn.lastError})`}`;
    if (wasOpen && peer.up && peer.conn === null) {
      peer.up = false;
      this.#connections$.next({ type: 'connectionLost', peer: peer.id, reason: why });
    } else if (!wasOpen && conn.outbound && !peer.up && !peer.failReported) {
      peer.failReported = true;
      this.#connections$.next({ type: 'connectionFailed', peer: peer.id, reason: why });
    }
    if (peer.conn === null && peer.dialing === null) this.#scheduleReconnect(peer);
    this.#forget(peer);
  }

  // -- handshake ------------------------------------------------------------------

  #sendJson(conn: Conn, value: object): void {
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(value));
  }

  /** Starts a closing handshake, bounded: a peer that does not answer it within a grace period is cut off. */
  #close(conn: Conn, code: number, reason: string): void {
    const ws = conn.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    try {
      ws.close(code, reason);
    } catch {
      ws.terminate();
      return;
    }
    conn.closeTimer ??= this.#clock.setTimeout(() => {
      conn.closeTimer = null;
      ws.terminate();
    }, CLOSE_GRACE_MS);
  }

  /** Logs and counts a refused handshake, tells the peer why (when the server side), and closes. */
  /** The client's `hello`: who we are, our nonce and our proof (empty when we only announce ourselves before refusing). */
  #sendHello(conn: Conn, nonce: string, proof: string): void {
    this.#sendJson(conn, { type: 'hello', version: HANDSHAKE_VERSION, cluster: this.#clusterId, id: this.#id, boot: this.#boot, nonce, proof });
  }

  #refuse(conn: Conn, reason: RejectReason | null, code: number, closeReason: string, message: string): void {
    if (conn.refused) return;
    conn.refused = true;
    this.#stats.rejectedHandshakes++;
    this.#log('error', message, conn.peerId ?? conn.expectId ?? undefined, new TransportError(message));
    if (reason !== null && !conn.outbound) this.#sendJson(conn, { type: 'reject', reason, message });
    if (conn.outbound && (reason === 'cluster' || reason === 'version')) {
      // Tell the server who we are (without a proof), so it logs the mismatch too.
      this.#sendHello(conn, randomBytes(NONCE_BYTES).toString('base64'), '');
    }
    this.#close(conn, code, closeReason);
  }

  #proofParts(role: 'client' | 'server', clientId: string, serverId: string, serverNonce: string, clientNonce: string): string[] {
    return [PROOF_LABEL, role, this.#clusterId, clientId, serverId, serverNonce, clientNonce];
  }

  #onMessage(conn: Conn, data: RawData, isBinary: boolean): void {
    if (this.#state !== 'started' || conn.phase === 'closed' || conn.refused) return;
    if (conn.phase === 'open') {
      if (!isBinary) {
        this.#protocolError(conn, new TransportError(`text message from ${this.#label(conn)} after the handshake`));
        return;
      }
      this.#onFrame(conn, toBytes(data));
      return;
    }
    if (isBinary) {
      this.#refuse(conn, 'protocol', CLOSE.protocol, 'binary before handshake', `protocol error: ${this.#label(conn)} sent binary data before completing the handshake`);
      this.#stats.protocolErrors++;
      return;
    }
    const text = toBytes(data);
    let msg: Record<string, unknown> | null = null;
    if (text.length <= MAX_HANDSHAKE_CHARS) {
      try {
        const parsed: unknown = JSON.parse(Buffer.from(text.buffer, text.byteOffset, text.length).toString('utf8'));
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) msg = parsed as Record<string, unknown>;
      } catch {
        msg = null;
      }
    }
    if (msg === null) {
      this.#refuse(conn, 'protocol', CLOSE.protocol, 'bad handshake', `protocol error: ${this.#label(conn)} sent an unreadable handshake message`);
      this.#stats.protocolErrors++;
      return;
    }
    if (msg.type === 'reject' && conn.outbound) {
      const why = typeof msg.message === 'string' ? msg.message.slice(0, 1024) : String(msg.reason);
      this.#refuse(conn, null, CLOSE.protocol, 'rejected', `${this.#label(conn)} refused the handshake: ${why}`);
      return;
    }
    if (conn.phase === 'challenge' && msg.type === 'challenge') this.#onChallenge(conn, msg);
    else if (conn.phase === 'hello' && msg.type === 'hello') this.#onHello(conn, msg);
    else if (conn.phase === 'welcome' && msg.type === 'welcome') this.#onWelcome(conn, msg);
    else {
      this.#refuse(conn, 'protocol', CLOSE.protocol, 'unexpected message', `protocol error: unexpected handshake message ${JSON.stringify(String(msg.type)).slice(0, 40)} from ${this.#label(conn)}`);
      this.#stats.protocolErrors++;
    }
  }

  /** Common checks of a challenge or hello; refuses and returns `false` on failure. */
  #checkPeerHello(conn: Conn, msg: Record<string, unknown>): msg is Record<string, unknown> & { version: number; cluster: string; id: string; boot: string; nonce: string } {
    const { version, cluster, id, boot, nonce } = msg;
    if (
      typeof version !== 'number' ||
      typeof cluster !== 'string' ||
      typeof id !== 'string' ||
      id.length === 0 ||
      utf8Length(id) > MAX_ID_BYTES ||
      typeof boot !== 'string' ||
      boot.length > 64 ||
      typeof nonce !== 'string' ||
      Buffer.from(nonce, 'base64').length !== NONCE_BYTES
    ) {
      this.#refuse(conn, 'protocol', CLOSE.protocol, 'malformed handshake', `protocol error: malformed ${String(msg.type)} from ${this.#label(conn)}`);
      this.#stats.protocolErrors++;
      return false;
    }
    const who = `${id} at ${conn.where}`;
    if (version !== HANDSHAKE_VERSION) {
      this.#refuse(conn, 'version', CLOSE.version, 'version mismatch', `version mismatch: ${who} speaks handshake version ${version}, this node (${this.#id}) speaks ${HANDSHAKE_VERSION}`);
      return false;
    }
    if (cluster !== this.#clusterId) {
      this.#refuse(
        conn,
        'cluster',
        CLOSE.cluster,
        'cluster mismatch',
        `cluster mismatch: ${who} belongs to cluster '${cluster.slice(0, 255)}', this node (${this.#id}) belongs to cluster '${this.#clusterId}'`,
      );
      return false;
    }
    if (id === this.#id) {
      this.#refuse(conn, 'identity', CLOSE.identity, 'same id', `identity conflict: a peer at ${conn.where} uses this node's own id '${id}'`);
      return false;
    }
    return true;
  }

  #onChallenge(conn: Conn, msg: Record<string, unknown>): void {
    if (!this.#checkPeerHello(conn, msg)) return;
    if (msg.id !== conn.expectId) {
      this.#refuse(conn, null, CLOSE.identity, 'wrong node', `identity mismatch: dialed ${conn.expectId} at ${conn.where} but reached ${msg.id}`);
      return;
    }
    conn.peerId = msg.id;
    conn.peerBoot = msg.boot;
    conn.serverNonce = msg.nonce;
    conn.clientNonce = randomBytes(NONCE_BYTES).toString('base64');
    conn.phase = 'welcome';
    this.#sendHello(conn, conn.clientNonce, proof(this.#secret, this.#proofParts('client', this.#id, msg.id, conn.serverNonce, conn.clientNonce)).toString('base64'));
  }

  #onHello(conn: Conn, msg: Record<string, unknown>): void {
    if (!this.#checkPeerHello(conn, msg)) return;
    conn.peerId = msg.id;
    if (!proofMatches(this.#secret, this.#proofParts('client', msg.id, this.#id, conn.serverNonce, msg.nonce), msg.proof)) {
      this.#refuse(
        conn,
        'auth',
        CLOSE.auth,
        'authentication failed',
        `authentication failed: ${msg.id} at ${conn.where} did not prove the cluster secret (wrong secret?)`,
      );
      return;
    }
    conn.peerBoot = msg.boot;
    conn.clientNonce = msg.nonce;
    this.#sendJson(conn, { type: 'welcome', proof: proof(this.#secret, this.#proofParts('server', msg.id, this.#id, conn.serverNonce, msg.nonce)).toString('base64') });
    this.#open(conn);
  }

  #onWelcome(conn: Conn, msg: Record<string, unknown>): void {
    if (!proofMatches(this.#secret, this.#proofParts('server', this.#id, conn.peerId as string, conn.serverNonce, conn.clientNonce), msg.proof)) {
      this.#refuse(conn, null, CLOSE.auth, 'authentication failed', `authentication failed: ${this.#label(conn)} did not prove the cluster secret (wrong secret?)`);
      return;
    }
    this.#open(conn);
  }

  /** The handshake succeeded: adopt the connection for its peer, resolving duplicates. */
  #open(conn: Conn): void {
    conn.phase = 'open';
    this.#stats.handshakes++;
    if (conn.timer !== null) this.#clock.clearTimeout(conn.timer);
    conn.timer = null;
    const peer = this.#peer(conn.peerId as string);
    if (peer.dialing === conn) peer.dialing = null;
    const current = peer.conn;
    if (current === null || current.phase === 'closed') {
      peer.conn = conn;
    } else if (current.peerBoot !== conn.peerBoot) {
      peer.conn = conn;
      this.#close(current, CLOSE.duplicate, 'superseded');
    } else if (this.#preferred(conn, current)) {
      peer.conn = conn;
      this.#close(current, CLOSE.duplicate, 'duplicate');
    } else {
      this.#close(conn, CLOSE.duplicate, 'duplicate');
    }
    const active = peer.conn;
    if (active === null) return;
    peer.attempt = 0;
    if (!peer.up) {
      peer.up = true;
      peer.failReported = false;
      this.#connections$.next({ type: 'connectionEstablished', peer: peer.id, outbound: active.outbound });
    }
    this.#cancelRetry(peer);
    if (peer.pending.length > 0) {
      for (const frame of peer.pending) this.#write(active, frame, 0);
      this.#stats.messagesSent += peer.pendingMessages;
      peer.pending = [];
      peer.pendingBytes = 0;
      peer.pendingMessages = 0;
    }
  }

  /** Whether `a` should win over `b` (same peer incarnation): the one dialed by the lower id, else the newer (`a`). */
  #preferred(a: Conn, b: Conn): boolean {
    const dialerA = a.outbound ? this.#id : (a.peerId as string);
    const dialerB = b.outbound ? this.#id : (b.peerId as string);
    return dialerA === dialerB ? true : dialerA < dialerB;
  }

  // -- frames ---------------------------------------------------------------------

  #protocolError(conn: Conn, error: Error): void {
    this.#stats.protocolErrors++;
    this.#log('warn', `${error.message}; connection closed`, conn.peerId ?? undefined, error);
    this.#close(conn, CLOSE.protocol, 'protocol error');
  }

  #onFrame(conn: Conn, bytes: Uint8Array): void {
    let messages: RaftMessage[];
    try {
      messages = decodeFrame(bytes, { maxFrameBytes: this.#maxPayload });
    } catch (err) {
      const why = err instanceof CodecError ? err : new CodecError(describe(err));
      this.#stats.protocolErrors++;
      this.#log('warn', `undecodable frame from ${this.#label(conn)}: ${why.message}; connection closed`, conn.peerId ?? undefined, why);
      this.#close(conn, CLOSE.protocol, 'bad frame');
      return;
    }
    this.#stats.framesReceived++;
    this.#stats.bytesReceived += bytes.length;
    const me = this.#id;
    const from = conn.peerId;
    for (const m of messages) {
      const handler = this.#handler;
      if (handler === null) return;
      if (m.to !== me || m.from !== from) {
        this.#stats.droppedInbound++;
        continue;
      }
      this.#stats.messagesReceived++;
      try {
        handler(m);
      } catch (err) {
        this.#log('error', `message handler threw on ${m.type} from ${m.from}: ${describe(err)}`, m.from, err instanceof Error ? err : undefined);
      }
    }
  }

  #sendTo(to: string, list: RaftMessage[]): void {
    const peer = to === this.#id ? undefined : this.#peers.get(to);
    if (peer === undefined) {
      this.#stats.droppedMessages += list.length;
      return;
    }
    const conn = peer.conn;
    if (conn !== null && conn.phase === 'open' && conn.ws.readyState === WebSocket.OPEN) {
      const buffered = conn.ws.bufferedAmount;
      if (buffered >= 2 * this.#hwm) {
        this.#stats.droppedMessages += list.length;
        for (const m of list) if (m.type === 'append') this.#stats.droppedAppends++;
        return;
      }
      if (buffered >= this.#hwm) {
        // Bulk traffic goes first so heartbeats never wait behind it.
        const kept = list.filter((m) => m.type !== 'append' && m.type !== 'installSnapshot');
        const dropped = list.length - kept.length;
        for (const m of list) if (m.type === 'append') this.#stats.droppedAppends++;
        this.#stats.droppedMessages += dropped;
        list = kept;
        if (list.length === 0) return;
      }
      for (const [frame, count] of this.#encode(list)) {
        this.#write(conn, frame, count);
      }
      return;
    }
    if (peer.dialing !== null) {
      for (const [frame, count] of this.#encode(list)) {
        if (peer.pending.length >= MAX_PENDING_FRAMES || peer.pendingBytes + frame.length > this.#hwm) {
          this.#stats.droppedMessages += count;
          continue;
        }
        peer.pending.push(frame);
        peer.pendingBytes += frame.length;
        peer.pendingMessages += count;
      }
      return;
    }
    this.#stats.droppedMessages += list.length;
    this.#dial(peer);
  }

  /** Encodes `list` as one frame, or several if it is over `maxPayloadBytes`; drops (and logs) messages that cannot be encoded. */
  #encode(list: RaftMessage[]): Array<[Uint8Array, number]> {
    try {
      return [[encodeFrame(list, { maxFrameBytes: this.#maxPayload }), list.length]];
    } catch (err) {
      if (list.length > 1) {
        const mid = list.length >> 1;
        return [...this.#encode(list.slice(0, mid)), ...this.#encode(list.slice(mid))];
      }
      this.#stats.droppedMessages += 1;
      this.#log('warn', `dropped a ${list[0]?.type} to ${list[0]?.to}: ${describe(err)}`, list[0]?.to, err instanceof Error ? err : undefined);
      return [];
    }
  }

  #write(conn: Conn, frame: Uint8Array, count: number): void {
    conn.ws.send(frame, { binary: true });
    this.#stats.framesSent++;
    this.#stats.messagesSent += count;
    this.#stats.bytesSent += frame.length;
  }

  #log(level: TransportLogEntry['level'], message: string, peer?: string, error?: Error): void {
    const logger = this.#logger;
    if (logger === null) return;
    const entry: TransportLogEntry = {
      level,
      message: this.#id === '' ? message : `[${this.#id}] ${message}`,
      ...(peer === undefined ? {} : { peer }),
      ...(error === undefined ? {} : { error }),
    };
    try {
      logger(entry);
    } catch {
      // A logger must not break the transport.
    }
  }
}

function defaultLogger(entry: TransportLogEntry): void {
  if (entry.level !== 'info') console.warn(`raftchart ws ${entry.level}: ${entry.message}`);
}

function toPem(value: string | Uint8Array): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(value);
}

function toPemList(value: string | Uint8Array | ReadonlyArray<string | Uint8Array>): string | Buffer | Array<string | Buffer> {
  return Array.isArray(value) ? value.map((v: string | Uint8Array) => toPem(v)) : toPem(value as string | Uint8Array);
}
