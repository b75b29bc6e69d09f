/**
 * A node's XState inspection stream, published over an authenticated
 * WebSocket endpoint — off unless you create one.
 *
 * ```ts
 * const inspector = new InspectionServer({ listen: '127.0.0.1:7101', secret });
 * await inspector.start();
 * const node = createRaftNode({ ...options, inspect: inspector.inspect });
 * // elsewhere:
 * inspectionStream({ url: inspector.address(), secret }).subscribe(console.log);
 * ```
 *
 * ## Protocol (JSON text messages)
 *
 * ```
 * S → C  {"type":"challenge","version":1,"nonce":N_s}
 * C → S  {"type":"hello","nonce":N_c,"proof":HMAC(secret, ["raftchart-inspect/1","client",N_s,N_c])}
 * S → C  {"type":"welcome","proof":HMAC(secret, ["raftchart-inspect/1","server",N_s,N_c])}
 *   or   close 4003 (bad proof)
 * S → C  {"type":"record","record":InspectionRecord}         one per inspection event, and first
 *                                                            the latest snapshot of every live actor (replayed: true)
 * S → C  {"type":"gap","dropped":n}                          n records were dropped for this slow subscriber
 * ```
 *
 * The secret is checked exactly as the transport's (at least 16
 * bytes, or `insecure: true`). Nonces are 32 random bytes, base64.
 *
 * ## Cost and isolation
 *
 * With no subscriber connected, {@link InspectionServer.inspect} only keeps a
 * reference to each actor's latest snapshot event. Records are built and sent
 * only for authenticated subscribers; a subscriber whose socket buffers more
 * than `highWaterMarkBytes` gets records dropped (and a `gap` message when it
 * catches up), so a slow viewer never holds the node's memory or its event
 * loop. Nothing a subscriber sends can reach the node.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Observable } from 'rxjs';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { InspectionEvent } from 'xstate';
import { ConfigurationError, TransportError } from '../../errors.js';
import { proof, proofMatches, secretKey } from '../auth.js';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { checkInt, checkKeys, listen, parseListen } from '../net.js';
import { DEFAULT_INSPECTION_TYPES, toInspectionRecord, type InspectionRecord } from './serialize.js';

/** Options of {@link InspectionServer}. */
export interface InspectionServerOptions {
  /** `'host:port'` to listen on (port 0 picks one; read it back with {@link InspectionServer.address}). Bind to loopback unless you mean it. */
  readonly listen: string;
  /** The shared secret subscribers must prove (at least 16 bytes). Required unless `insecure` is `true`. */
  readonly secret?: string | Uint8Array | undefined;
  /** Accept subscribers without a secret. Default `false`; never combine with `secret`. */
  readonly insecure?: boolean;
  /** Inspection event types forwarded. Default {@link DEFAULT_INSPECTION_TYPES} (all but `@xstate.microstep`). */
  readonly types?: readonly InspectionEvent['type'][];
  /** Most subscribers at once; more are closed with code 4009. Default 8. */
  readonly maxSubscribers?: number;
  /** Per-subscriber socket buffer above which records are dropped. Default 1 MiB. */
  readonly highWaterMarkBytes?: number;
  /** A subscriber that has not authenticated after this long is closed (4008). Default 5000. */
  readonly handshakeTimeoutMs?: number;
  /** Drives the handshake timeout. Default {@link systemClock}. */
  readonly clock?: Clock;
}

/** Counters of an {@link InspectionServer}. */
export interface InspectionServerStats {
  /** Authenticated subscribers now connected. */
  readonly subscribers: number;
  /** Inspection events received through {@link InspectionServer.inspect}. */
  readonly events: number;
  /** Records sent, summed over subscribers. */
  readonly recordsSent: number;
  /** Records dropped for slow subscribers, summed. */
  readonly recordsDropped: number;
  /** Connections refused: bad proof, malformed hello, handshake timeout, too many subscribers. */
  readonly refused: number;
}

/** What {@link inspectionStream} emits: a record, or notice that some were dropped. */
export type InspectionMessage = { readonly type: 'record'; readonly record: InspectionRecord } | { readonly type: 'gap'; readonly dropped: number };

/** Options of {@link inspectionStream}. */
export interface InspectionClientOptions {
  /** The endpoint, e.g. `'ws://127.0.0.1:7101'` ({@link InspectionServer.address}). */
  readonly url: string;
  /** The shared secret; required unless `insecure`. */
  readonly secret?: string | Uint8Array | undefined;
  /** Connect to an `insecure` endpoint. Default `false`. */
  readonly insecure?: boolean;
  /** Give up on a handshake that has not finished after this long. Default 5000. */
  readonly handshakeTimeoutMs?: number;
}

const LABEL = 'raftchart-inspect/1';
const VERSION = 1;
const NONCE_BYTES = 32;
const MAX_CLIENT_MESSAGE = 4096;
const CLOSE = { auth: 4003, protocol: 4002, timeout: 4008, full: 4009, stopping: 1001 } as const;
const KNOWN = ['listen', 'secret', 'insecure', 'types', 'maxSubscribers', 'highWaterMarkBytes', 'handshakeTimeoutMs', 'clock'];
const ALL_TYPES: readonly InspectionEvent['type'][] = [...DEFAULT_INSPECTION_TYPES, '@xstate.transition', '@xstate.microstep'];

interface Subscriber {
  readonly ws: WebSocket;
  readonly serverNonce: string;
  open: boolean;
  dropped: number;
  timer: TimerHandle | null;
}

const text = (data: RawData): string => (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8');

function parseObject(raw: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Publishes the XState inspection events handed to {@link InspectionServer.inspect}
 * to authenticated WebSocket subscribers (see the module documentation for the
 * protocol). Pass `inspector.inspect` as a node's `inspect` option.
 *
 * @example
 * ```ts
 * const inspector = new InspectionServer({ listen: '127.0.0.1:0', secret })
 * await inspector.start()
 * const node = createRaftNode({ ...options, inspect: inspector.inspect })
 * await node.start()
 * console.log('inspect at', inspector.address())
 * ```
 */
export class InspectionServer {
  readonly #host: string;
  readonly #port: number;
  readonly #key: Buffer;
  readonly #types: ReadonlySet<string>;
  readonly #maxSubscribers: number;
  readonly #hwm: number;
  readonly #handshakeTimeout: number;
  readonly #clock: Clock;
  readonly #subscribers = new Set<Subscriber>();
  /** The latest snapshot (or, before one, the registration) of every live actor, by session id. */
  readonly #latest = new Map<string, { event: InspectionEvent; seq: number }>();
  #server: HttpServer | null = null;
  #wss: WebSocketServer | null = null;
  #bound: AddressInfo | null = null;
  #state: 'new' | 'started' | 'stopped' = 'new';
  #seq = 0;
  #stats = { events: 0, recordsSent: 0, recordsDropped: 0, refused: 0 };

  /** @throws A {@link ConfigurationError} naming a bad or unknown option. */
  constructor(options: InspectionServerOptions) {
    if (typeof options !== 'object' || options === null) throw new ConfigurationError('options', 'must be an object');
    checkKeys('', options, KNOWN);
    ({ host: this.#host, port: this.#port } = parseListen(options.listen));
    this.#key = secretKey(options.secret, options.insecure ?? false);
    const types = options.types ?? DEFAULT_INSPECTION_TYPES;
    if (!Array.isArray(types) || !types.every((t) => ALL_TYPES.includes(t))) {
      throw new ConfigurationError('types', `must be a list of ${ALL_TYPES.join(', ')}`);
    }
    this.#types = new Set(types);
    this.#maxSubscribers = checkInt('maxSubscribers', options.maxSubscribers ?? 8, 1);
    this.#hwm = checkInt('highWaterMarkBytes', options.highWaterMarkBytes ?? 1024 * 1024, 1);
    this.#handshakeTimeout = checkInt('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 5000, 1);
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * The inspection callback to pass as a node's (or any XState actor's)
   * `inspect` option. Never throws: a failure to serialize or send one event
   * is counted as a drop.
   */
  readonly inspect = (event: InspectionEvent): void => {
    this.#stats.events++;
    const seq = ++this.#seq;
    try {
      this.#remember(event, seq);
      if (this.#subscribers.size === 0 || !this.#types.has(event.type)) return;
      const message = JSON.stringify({ type: 'record', record: toInspectionRecord(event, seq) });
      for (const s of this.#subscribers) if (s.open) this.#send(s, message);
    } catch {
      this.#stats.recordsDropped++;
    }
  };

  /**
   * Starts listening.
   *
   * @throws Rejects with a {@link TransportError} when the address cannot be bound, or when started twice.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new TransportError(`InspectionServer already ${this.#state}`);
    this.#state = 'started';
    const server = createServer((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('raftchart inspection: WebSocket only\n');
    });
    try {
      await listen(server, this.#host, this.#port);
    } catch (err) {
      this.#state = 'stopped';
      throw new TransportError(`inspection endpoint cannot listen on ${this.#host}:${this.#port}: ${(err as Error).message}`, { cause: err });
    }
    server.on('error', () => undefined);
    this.#server = server;
    this.#bound = server.address() as AddressInfo;
    const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: MAX_CLIENT_MESSAGE, clientTracking: false });
    wss.on('connection', (ws) => this.#accept(ws));
    wss.on('error', () => undefined);
    this.#wss = wss;
  }

  /** The endpoint's URL, e.g. `'ws://127.0.0.1:41234'`. @throws A {@link TransportError} before {@link InspectionServer.start} finished. */
  address(): string {
    const bound = this.#bound;
    if (bound === null) throw new TransportError('inspection endpoint not listening: call start() first');
    const host = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
    return `ws://${host}:${bound.port}`;
  }

  /** Counters since creation. */
  stats(): InspectionServerStats {
    let subscribers = 0;
    for (const s of this.#subscribers) if (s.open) subscribers++;
    return { subscribers, ...this.#stats };
  }

  /** Closes every subscriber and stops listening. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    for (const s of this.#subscribers) this.#drop(s, CLOSE.stopping, 'stopping');
    this.#wss?.close();
    const server = this.#server;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #remember(event: InspectionEvent, seq: number): void {
    const id = (event.actorRef as { sessionId?: string }).sessionId;
    if (typeof id !== 'string') return;
    if (event.type === '@xstate.snapshot') {
      const status = (event.snapshot as { status?: string }).status;
      if (status === undefined || status === 'active') this.#latest.set(id, { event, seq });
      else this.#latest.delete(id);
    } else if (event.type === '@xstate.actor' && !this.#latest.has(id)) {
      this.#latest.set(id, { event, seq });
    }
  }

  #accept(ws: WebSocket): void {
    if (this.#state !== 'started') {
      ws.close(CLOSE.stopping, 'stopping');
      return;
    }
    const s: Subscriber = { ws, serverNonce: randomBytes(NONCE_BYTES).toString('base64'), open: false, dropped: 0, timer: null };
    this.#subscribers.add(s);
    ws.on('error', () => undefined);
    ws.on('close', () => this.#forget(s));
    if (this.#subscribers.size > this.#maxSubscribers) {
      this.#refuse(s, CLOSE.full, 'too many subscribers');
      return;
    }
    s.timer = this.#clock.setTimeout(() => this.#refuse(s, CLOSE.timeout, 'handshake timeout'), this.#handshakeTimeout);
    ws.on('message', (data, isBinary) => this.#onMessage(s, data, isBinary));
    ws.send(JSON.stringify({ type: 'challenge', version: VERSION, nonce: s.serverNonce }));
  }

  #onMessage(s: Subscriber, data: RawData, isBinary: boolean): void {
    if (s.open) return; // subscribers have nothing to say after the handshake
    const msg = isBinary ? null : parseObject(text(data));
    if (msg === null || msg.type !== 'hello' || typeof msg.nonce !== 'string' || msg.nonce.length === 0 || msg.nonce.length > 128) {
      this.#refuse(s, CLOSE.protocol, 'expected a hello');
      return;
    }
    if (!proofMatches(this.#key, [LABEL, 'client', s.serverNonce, msg.nonce], msg.proof)) {
      this.#refuse(s, CLOSE.auth, 'authentication failed');
      return;
    }
    if (s.timer !== null) this.#clock.clearTimeout(s.timer);
    s.timer = null;
    s.open = true;
    s.ws.send(JSON.stringify({ type: 'welcome', proof: proof(this.#key, [LABEL, 'server', s.serverNonce, msg.nonce]).toString('base64') }));
    for (const { event, seq } of this.#latest.values()) {
      try {
        this.#send(s, JSON.stringify({ type: 'record', record: { ...toInspectionRecord(event, seq), replayed: true } }));
      } catch {
        this.#stats.recordsDropped++;
      }
    }
  }

  #send(s: Subscriber, message: string): void {
    if (s.ws.readyState !== WebSocket.OPEN || s.ws.bufferedAmount > this.#hwm) {
      s.dropped++;
      this.#stats.recordsDropped++;
      return;
    }
    if (s.dropped > 0) {
      s.ws.send(JSON.stringify({ type: 'gap', dropped: s.dropped }));
      s.dropped = 0;
    }
    s.ws.send(message);
    this.#stats.recordsSent++;
  }

  #refuse(s: Subscriber, code: number, reason: string): void {
    this.#stats.refused++;
    this.#drop(s, code, reason);
  }

  #drop(s: Subscriber, code: number, reason: string): void {
    this.#forget(s);
    try {
      s.ws.close(code, reason);
    } catch {
      s.ws.terminate();
    }
  }

  #forget(s: Subscriber): void {
    if (s.timer !== null) this.#clock.clearTimeout(s.timer);
    s.timer = null;
    s.open = false;
    this.#subscribers.delete(s);
  }
}

/**
 * Subscribes to an {@link InspectionServer}: connects on subscribe,
 * authenticates both ways, then emits every record (first the replayed
 * latest snapshots) and `gap` notices. Unsubscribing closes the connection.
 *
 * @throws The Observable errors with a {@link TransportError} when the
 *   endpoint cannot be reached, refuses the proof, fails to prove the secret
 *   back, or the handshake times out; it completes when the server closes.
 *   A bad `secret` option throws a {@link ConfigurationError} on subscribe.
 *
 * @example
 * ```ts
 * const subscription = inspectionStream({ url: 'ws://127.0.0.1:7101', secret }).subscribe({
 *   next: (m) => console.log(m.type === 'record' ? `${m.record.seq} ${m.record.type}` : `${m.dropped} dropped`),
 *   error: (e: unknown) => console.error(e),
 * })
 * subscription.unsubscribe() // closes the connection
 * ```
 */
export function inspectionStream(options: InspectionClientOptions): Observable<InspectionMessage> {
  return new Observable<InspectionMessage>((subscriber) => {
    const key = secretKey(options.secret, options.insecure ?? false);
    const timeoutMs = options.handshakeTimeoutMs ?? 5000;
    const ws = new WebSocket(options.url, { perMessageDeflate: false });
    const clientNonce = randomBytes(NONCE_BYTES).toString('base64');
    let serverNonce: string | null = null;
    let open = false;
    const fail = (why: string): void => {
      subscriber.error(new TransportError(`inspection stream ${options.url}: ${why}`));
      ws.terminate();
    };
    const timer = setTimeout(() => fail('handshake timed out'), timeoutMs);
    ws.on('error', (err) => fail(err.message));
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      if (open) subscriber.complete();
      else fail(`closed during the handshake (${code} ${reason.toString() || 'no reason'})`);
    });
    ws.on('message', (data, isBinary) => {
      const msg = isBinary ? null : parseObject(text(data));
      if (msg === null) return fail('malformed message');
      if (!open && serverNonce === null) {
        if (msg.type !== 'challenge' || msg.version !== VERSION || typeof msg.nonce !== 'string') return fail('expected a challenge');
        serverNonce = msg.nonce;
        ws.send(JSON.stringify({ type: 'hello', nonce: clientNonce, proof: proof(key, [LABEL, 'client', serverNonce, clientNonce]).toString('base64') }));
        return undefined;
      }
      if (!open) {
        if (msg.type !== 'welcome' || !proofMatches(key, [LABEL, 'server', serverNonce as string, clientNonce], msg.proof)) {
          return fail('the endpoint did not prove the secret');
        }
        open = true;
        clearTimeout(timer);
        return undefined;
      }
      if (msg.type === 'record' && typeof msg.record === 'object' && msg.record !== null) {
        subscriber.next({ type: 'record', record: msg.record as InspectionRecord });
      } else if (msg.type === 'gap' && typeof msg.dropped === 'number') {
        subscriber.next({ type: 'gap', dropped: msg.dropped });
      }
      return undefined;
    });
    return () => {
      clearTimeout(timer);
      ws.removeAllListeners('close');
      ws.on('close', () => undefined);
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'unsubscribed');
    };
  });
}
