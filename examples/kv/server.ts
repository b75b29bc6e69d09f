/**
 * One node of the replicated key-value service: a raftchart node over a
 * {@link KvStore}, and its HTTP API.
 *
 * ## HTTP contract
 *
 * ```
 * PUT    /kv/:key        body = value (bytes)            → 200 {"index":N}
 * GET    /kv/:key        linearizable (node.readIndex)  → 200 value | 404
 * GET    /kv/:key?stale  this node's state, no barrier  → 200 value | 404
 * DELETE /kv/:key                                        → 200 {"index":N,"deleted":bool}
 * POST   /kv/:key/cas    {"expect":v|null,"value":v}    → 200 {"index":N} | 409
 * GET    /status         node status, replica progress, peers' HTTP addresses
 * GET    /healthz        200 while the process serves
 * ```
 *
 * `:key` is one URL path segment, percent-decoded, 1–1024 UTF-8 bytes, no control characters.
 * Values are bytes; a GET answers them as `application/octet-stream` with an `x-raft-index` header.
 * In a CAS body `expect` and `value` are strings, compared and stored as UTF-8.
 *
 * Every error is JSON `{"error":{"code","message"}}`: `BAD_KEY`, `BAD_JSON`, `BAD_REQUEST` (400),
 * `NOT_FOUND` (404: route), `KEY_NOT_FOUND` (404: key), `METHOD_NOT_ALLOWED` (405, with `Allow`),
 * `CAS_FAILED` (409, with `current`: the value found, or `null`), `PAYLOAD_TOO_LARGE` (413),
 * `NOT_LEADER` (421, only to a request another node forwarded, with `leaderId`),
 * `OUTCOME_UNKNOWN` (503: the write may or may not take effect — a timeout or a leader lost
 * after the entry was appended, or a forwarded request whose answer never came),
 * `UNAVAILABLE` (503: no leader took the write within the bound; it was **not** applied),
 * `TIMEOUT` (503: a read found no quorum in time), `SHUTTING_DOWN` (503).
 *
 * ## Forwarding
 *
 * Writes go to the local node first; a follower's `propose` refuses at once with
 * `NotLeaderError { leaderId }`, and the request is forwarded to that leader's HTTP address
 * over a keep-alive connection, marked with `x-raftchart-forwarded-by`. A node that gets a
 * forwarded request never forwards it again: it answers 421 `NOT_LEADER` and the first node
 * retries at the leader named there, or after the next leader change, within
 * `requestTimeoutMs` and 16 attempts. Only failures that prove the request never reached the
 * leader (connection refused, name not found, unreachable) are retried; any other failure
 * after sending is `OUTCOME_UNKNOWN`, because retrying could apply the write twice.
 * Reads are not forwarded: `readIndex` on a follower asks the leader over Raft.
 *
 * @module
 */
import { Agent, createServer, request, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConfigurationError,
  LeadershipTransferError,
  LevelStorage,
  NotLeaderError,
  ShutdownError,
  TimeoutError,
  TransportError,
  WebSocketTransport,
  createRaftNode,
  type RaftNode,
  type RaftNodeOptions,
  type RaftStorage,
  type Transport,
} from '../../index.js';
import { splitHostPort, type KvPeer } from './config.js';
import { createKvMetrics } from './metrics.js';
import { KvStore, encodeCommand, type KvCommand, type KvResult } from './store.js';

/** Options of {@link startKvNode}. A {@link KvConfig} from `loadKvConfig` fits as is. */
export interface KvNodeOptions {
  /** This node's Raft id. */
  readonly id: string;
  /** Every initial member, this node included (Raft and HTTP addresses). */
  readonly peers: readonly KvPeer[];
  /** HTTP listen address `host:port`; port 0 picks one (read it back from `httpAddress`). Default: this node's entry in `peers`. */
  readonly httpListen?: string;
  /** Raft listen address `host:port` (ignored when `transport` is given). Default: this node's entry in `peers`. */
  readonly raftListen?: string;
  /** Level data directory (ignored when `storage` is given). Default `data/<id>`. */
  readonly data?: string;
  /** Cluster secret of the WebSocket transport (at least 16 bytes). */
  readonly secret?: string | null | undefined;
  /** Run the WebSocket transport without a secret. */
  readonly insecure?: boolean;
  /** WebSocket cluster id. Default `'raftchart-kv'`. */
  readonly clusterId?: string;
  /** `'auto'` (default): bootstrap with `peers` when the storage is fresh. `'never'`: wait to be added. */
  readonly bootstrap?: 'auto' | 'never';
  /** Largest value (and request body) in bytes. Default 1 MiB. */
  readonly maxValueBytes?: number;
  /** Bound on one request, forwarding and retries included. Default 10000. */
  readonly requestTimeoutMs?: number;
  /** Storage instead of `LevelStorage` at `data` (tests: `MemoryStorage`). */
  readonly storage?: RaftStorage;
  /** Transport instead of a `WebSocketTransport` on `raftListen` (tests: `MemoryNetwork`). */
  readonly transport?: Transport;
  /** Extra options of `createRaftNode` (timeouts, clock…). */
  readonly raftOptions?: Partial<Omit<RaftNodeOptions<KvResult>, 'id' | 'stateMachine' | 'storage' | 'transport'>>;
  /** Where the node reports what happens (one object per event: `leader`, `forwardError`…). Default: nowhere. */
  readonly onEvent?: (event: KvEvent) => void;
}

/** What a kv node reports through `onEvent`. */
export type KvEvent =
  | { readonly event: 'leader'; readonly id: string; readonly leaderId: string | null; readonly term: number }
  | { readonly event: 'bootstrapped'; readonly id: string; readonly peers: readonly string[] }
  | { readonly event: 'error'; readonly id: string; readonly message: string };

/** A running kv node. */
export interface KvNode {
  /** The Raft node. */
  readonly node: RaftNode<KvResult>;
  /** The replicated map. */
  readonly store: KvStore;
  /** Where the HTTP API listens, `host:port` (the real port when 0 was asked for). */
  readonly httpAddress: string;
  /** Stops the HTTP server (in-flight requests finish or are cut after 2 s), then the node, handing leadership over first when it leads. */
  close(): Promise<void>;
}

interface Reply {
  readonly status: number;
  readonly body: Uint8Array | string;
  readonly headers?: Readonly<Record<string, string>>;
}

const MAX_ATTEMPTS = 16;
const MAX_KEY_BYTES = 1024;
const FORWARDED_HEADER = 'x-raftchart-forwarded-by';
/** Errors that prove a forwarded request never reached the other node. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const encoder = new TextEncoder();
const lenient = new TextDecoder();

function json(status: number, value: unknown, headers?: Record<string, string>): Reply {
  return { status, body: JSON.stringify(value), headers: { 'content-type': 'application/json', ...headers } };
}

function fail(status: number, code: string, message: string, extra?: Record<string, unknown>, headers?: Record<string, string>): Reply {
  return json(status, { error: { code, message, ...extra } }, headers);
}

const unknownOutcome = (why: string): Reply =>
  fail(503, 'OUTCOME_UNKNOWN', `the write may or may not have been applied: ${why}`);

class PayloadTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new PayloadTooLarge());
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new PayloadTooLarge());
      } else parts.push(chunk);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      resolve(Buffer.concat(parts));
    });
    req.on('error', reject);
    req.on('close', () => {
      if (!ended) reject(new Error('the request was cut off before its body ended'));
    });
  });
}

function checkKey(segment: string): string | Reply {
  let key: string;
  try {
    key = decodeURIComponent(segment);
  } catch {
    return fail(400, 'BAD_KEY', 'the key is not valid percent-encoding');
  }
  const bytes = encoder.encode(key).byteLength;
  if (bytes === 0) return fail(400, 'BAD_KEY', 'the key is empty');
  if (bytes > MAX_KEY_BYTES) return fail(400, 'BAD_KEY', `the key has ${bytes} bytes; at most ${MAX_KEY_BYTES}`);
  if (/[\u0000-\u001f\u007f]/.test(key)) return fail(400, 'BAD_KEY', 'the key contains a control character');
  return key;
}

/** Parses a CAS body; a Reply on bad input. */
function parseCas(body: Buffer, maxValueBytes: number): { expect: Uint8Array | null; value: Uint8Array } | Reply {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    return fail(400, 'BAD_JSON', `the body is not JSON: ${(error as Error).message}`);
  }
  const o = parsed as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o) || !('expect' in o) || typeof o['value'] !== 'string' || (o['expect'] !== null && typeof o['expect'] !== 'string')) {
    return fail(400, 'BAD_REQUEST', 'the body must be {"expect": string | null, "value": string}');
  }
  const value = encoder.encode(o['value']);
  const expect = o['expect'] === null ? null : encoder.encode(o['expect'] as string);
  if (value.byteLength > maxValueBytes || (expect?.byteLength ?? 0) > maxValueBytes) {
    return fail(413, 'PAYLOAD_TOO_LARGE', `a value is larger than ${maxValueBytes} bytes`);
  }
  return { expect, value };
}

type Forwarded =
  | { readonly kind: 'response'; readonly status: number; readonly contentType: string | undefined; readonly body: Buffer }
  | { readonly kind: 'notSent'; readonly error: string }
  | { readonly kind: 'unknown'; readonly error: string };

/**
 * Starts one kv node: opens its storage, starts Raft, bootstraps a fresh node (unless
 * `bootstrap: 'never'`) and listens for HTTP.
 *
 * @remarks The returned `close()` is idempotent. A node that fails to start releases what it
 * opened and rejects.
 *
 * @throws `ConfigurationError` for bad options; `TransportError` when a port cannot be bound;
 * `StorageError`/`StorageCorruptionError` when the data directory cannot be used.
 *
 * @example
 * ```ts
 * const kv = await startKvNode({ id: 'n1', peers: [{ id: 'n1', raft: '127.0.0.1:7001', http: '127.0.0.1:8001' }], secret: process.env.RAFTCHART_SECRET })
 * // curl -X PUT --data hello http://127.0.0.1:8001/kv/greeting
 * await kv.close()
 * ```
 */
export async function startKvNode(options: KvNodeOptions): Promise<KvNode> {
  const { id, peers } = options;
  const self = peers.find((p) => p.id === id);
  const httpListen = options.httpListen ?? self?.http;
  const raftListen = options.raftListen ?? self?.raft.replace(/^wss?:\/\//, '');
  if (httpListen === undefined || splitHostPort(httpListen) === null) throw new ConfigurationError('httpListen', `needs host:port (or an entry for ${id} in peers), got ${String(httpListen)}`);
  const maxValueBytes = options.maxValueBytes ?? 1024 * 1024;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const emit = options.onEvent ?? (() => undefined);
  const httpOf = new Map(peers.map((p) => [p.id, p.http]));

  const store = new KvStore();
  let transport = options.transport;
  if (transport === undefined) {
    if (raftListen === undefined) throw new ConfigurationError('raftListen', `needs host:port (or an entry for ${id} in peers)`);
    transport = new WebSocketTransport({
      listen: raftListen,
      ...(options.insecure === true ? { insecure: true } : { secret: options.secret ?? undefined }),
      clusterId: options.clusterId ?? 'raftchart-kv',
      logger: (entry) => {
        if (entry.level !== 'info') emit({ event: 'error', id, message: entry.message });
      },
    });
  }
  const metrics = createKvMetrics();
  const node = createRaftNode<KvResult>({
    metrics: metrics.sink,
    ...options.raftOptions,
    id,
    stateMachine: store,
    storage: options.storage ?? new LevelStorage({ path: options.data ?? `data/${id}` }),
    transport,
  });
  await node.start();
  metrics.attach(node);
  const subscription = node.leader$.subscribe(({ leaderId, term }) => emit({ event: 'leader', id, leaderId, term }));
  let server: HttpServer | undefined;
  try {
    const status = node.status();
    if ((options.bootstrap ?? 'auto') === 'auto' && status.lastLogIndex === 0 && status.term === 0) {
      try {
        await node.bootstrap(peers.map((p) => ({ id: p.id, address: /^wss?:\/\//.test(p.raft) ? p.raft : `ws://${p.raft}` })));
        emit({ event: 'bootstrapped', id, peers: peers.map((p) => p.id) });
      } catch (error) {
        // A peer's vote request raised our term between start() and bootstrap(): the cluster
        // exists already and its leader will send us the configuration.
        if (!(error instanceof ConfigurationError && error.option === 'bootstrap')) throw error;
        emit({ event: 'error', id, message: `not bootstrapped: ${error.message}` });
      }
    }
  } catch (error) {
    subscription.unsubscribe();
    await node.stop();
    throw error;
  }

  const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 30_000 });
  let closing = false;

  /** Resolves once a leader other than `avoid` is known, or after `ms`. */
  const leaderOtherThan = (avoid: string | null, ms: number): Promise<void> =>
    new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => finish(), Math.max(0, ms));
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        queueMicrotask(() => sub.unsubscribe());
        resolve();
      };
      const sub = node.leader$.subscribe({
        next: ({ leaderId }) => {
          if (leaderId !== null && leaderId !== avoid) finish();
        },
        complete: finish,
      });
    });

  const forward = (address: string, method: string, path: string, body: Buffer, timeoutMs: number): Promise<Forwarded> =>
    new Promise((resolve) => {
      const hp = splitHostPort(address);
      if (hp === null) {
        resolve({ kind: 'notSent', error: `bad HTTP address ${address}` });
        return;
      }
      let settled = false;
      const settle = (r: Forwarded): void => {
        if (!settled) {
          settled = true;
          resolve(r);
        }
      };
      const req = request({
        host: hp.host.replace(/^\[|\]$/g, ''),
        port: hp.port,
        method,
        path,
        agent,
        timeout: Math.max(1, timeoutMs),
        headers: { [FORWARDED_HEADER]: id, 'content-type': 'application/octet-stream', 'content-length': String(body.byteLength) },
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${address} within ${timeoutMs} ms`)));
      req.on('error', (error: NodeJS.ErrnoException) => {
        settle(NOT_SENT.has(error.code ?? '') ? { kind: 'notSent', error: `${address}: ${error.code}` } : { kind: 'unknown', error: `${address}: ${error.message}` });
      });
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size <= maxValueBytes + 65536) parts.push(chunk);
        });
        res.on('end', () => settle({ kind: 'response', status: res.statusCode ?? 502, contentType: res.headers['content-type'], body: Buffer.concat(parts) }));
        res.on('error', (error) => settle({ kind: 'unknown', error: `${address}: ${error.message}` }));
        res.on('aborted', () => settle({ kind: 'unknown', error: `${address}: the answer was cut off` }));
      });
      req.end(body);
    });

  const answerWrite = (command: KvCommand, r: { index: number; result: KvResult }): Reply => {
    const result = r.result;
    if (result.op === 'delete') return json(200, { index: r.index, deleted: result.existed });
    if (result.op === 'cas' && !result.ok) {
      return fail(409, 'CAS_FAILED', `${command.key} did not hold the expected value`, { index: r.index, current: result.current === null ? null : lenient.decode(result.current) });
    }
    return json(200, { index: r.index });
  };

  const write = async (command: KvCommand, req: IncomingMessage, path: string, body: Buffer): Promise<Reply> => {
    const forwarded = req.headers[FORWARDED_HEADER] !== undefined;
    const data = encodeCommand(command);
    const deadline = Date.now() + requestTimeoutMs;
    let hint: string | null = null;
    let lastRefusal = 'no leader known';
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const remaining = deadline - Date.now();
      // A node on its way down sends a forwarded write back: the first node retries at the next leader.
      if (closing && forwarded) return fail(421, 'NOT_LEADER', `${id} is shutting down`, { leaderId: null });
      if (remaining <= 0 || closing) break;
      let leader: string | null;
      try {
        const r = await node.propose(data, { timeoutMs: remaining });
        return answerWrite(command, r);
      } catch (error) {
        if (error instanceof NotLeaderError) {
          if (forwarded) return fail(421, 'NOT_LEADER', `${id} is not the leader`, { leaderId: error.leaderId });
          leader = hint ?? error.leaderId;
        } else if (error instanceof LeadershipTransferError) {
          if (forwarded) return fail(421, 'NOT_LEADER', `${id} is handing leadership over`, { leaderId: null });
          lastRefusal = error.message;
          await leaderOtherThan(id, Math.min(remaining, 1000));
          continue;
        } else if (error instanceof ConfigurationError) {
          return fail(413, 'PAYLOAD_TOO_LARGE', error.message);
        } else if (error instanceof TimeoutError || error instanceof ShutdownError) {
          return unknownOutcome(error.message);
        } else {
          return unknownOutcome((error as Error).message); // LeadershipLostError and anything unexpected
        }
      }
      hint = null;
      if (leader === null || leader === id) {
        lastRefusal = 'no leader known';
        await leaderOtherThan(null, Math.min(remaining, 500));
        continue;
      }
      const address = httpOf.get(leader);
      if (address === undefined) return fail(503, 'UNAVAILABLE', `the leader ${leader} has no known HTTP address; the write was not applied`);
      const answer = await forward(address, req.method ?? 'PUT', path, body, remaining);
      if (answer.kind === 'unknown') return unknownOutcome(answer.error);
      if (answer.kind === 'notSent') {
        lastRefusal = `cannot reach the leader ${leader} (${answer.error})`;
        await leaderOtherThan(leader, Math.min(remaining, 300));
        continue;
      }
      if (answer.status === 421) {
        let next: string | null = null;
        try {
          const v = (JSON.parse(answer.body.toString('utf8')) as { error?: { leaderId?: unknown } }).error?.leaderId;
          if (typeof v === 'string') next = v;
        } catch {
          // no hint
        }
        lastRefusal = `${leader} is no longer the leader`;
        if (next === null || next === leader) await leaderOtherThan(leader, Math.min(remaining, 300));
        else hint = next;
        continue;
      }
      return { status: answer.status, body: answer.body, headers: { 'content-type': answer.contentType ?? 'application/json' } };
    }
    if (closing) return fail(503, 'SHUTTING_DOWN', `${id} is shutting down; the write was not applied`);
    return fail(503, 'UNAVAILABLE', `no leader took the write within ${requestTimeoutMs} ms (${lastRefusal}); it was not applied`);
  };

  const read = async (key: string, stale: boolean): Promise<Reply> => {
    let index = store.appliedIndex;
    if (!stale) {
      const deadline = Date.now() + requestTimeoutMs;
      let confirmed = false;
      for (let attempt = 0; attempt < MAX_ATTEMPTS && !confirmed; attempt++) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        try {
          index = await node.readIndex({ timeoutMs: remaining });
          confirmed = true;
        } catch (error) {
          if (error instanceof NotLeaderError) await leaderOtherThan(null, Math.min(remaining, 500));
          else if (error instanceof TimeoutError) return fail(503, 'TIMEOUT', error.message);
          else if (error instanceof ShutdownError) return fail(503, 'SHUTTING_DOWN', error.message);
          else return fail(503, 'UNAVAILABLE', (error as Error).message);
        }
      }
      if (!confirmed) return fail(503, 'UNAVAILABLE', `no leader confirmed the read within ${requestTimeoutMs} ms`);
    }
    const value = store.get(key);
    if (value === undefined) return fail(404, 'KEY_NOT_FOUND', `no value for ${key}`, { index });
    return { status: 200, body: value, headers: { 'content-type': 'application/octet-stream', 'x-raft-index': String(index) } };
  };

  const statusBody = (): Record<string, unknown> => {
    const s = node.status();
    return {
      ...s,
      http: httpAddress,
      leaderHttp: s.leaderId === null ? null : (httpOf.get(s.leaderId) ?? null),
      members: s.members.map((m) => ({ ...m, http: httpOf.get(m.id) ?? null })),
      keys: store.size,
    };
  };

  const route = async (req: IncomingMessage): Promise<Reply> => {
    const url = new URL(req.url ?? '/', 'http://kv.invalid');
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === '/metrics') {
      if (method !== 'GET') return fail(405, 'METHOD_NOT_ALLOWED', '/metrics takes GET', undefined, { allow: 'GET' });
      return { status: 200, body: await metrics.render(), headers: { 'content-type': metrics.contentType } };
    }
    if (path === '/healthz' || path === '/status') {
      if (method !== 'GET') return fail(405, 'METHOD_NOT_ALLOWED', `${path} takes GET`, undefined, { allow: 'GET' });
      if (path === '/status') return json(200, statusBody());
      return json(200, { ok: true, id, role: node.status().role, leaderId: node.status().leaderId });
    }
    const m = /^\/kv\/([^/]*)(\/cas)?$/.exec(path);
    if (m === null) return fail(404, 'NOT_FOUND', `no route ${path}`);
    const cas = m[2] !== undefined;
    const allow = cas ? 'POST' : 'GET, PUT, DELETE';
    if (!allow.split(', ').includes(method)) return fail(405, 'METHOD_NOT_ALLOWED', `${cas ? '/kv/:key/cas' : '/kv/:key'} takes ${allow}`, undefined, { allow });
    const key = checkKey(m[1] as string);
    if (typeof key !== 'string') return key;
    if (method === 'GET') return read(key, url.searchParams.has('stale'));
    if (method === 'DELETE') return write({ op: 'delete', key }, req, url.pathname + url.search, Buffer.alloc(0));
    const body = await readBody(req, cas ? 2 * maxValueBytes + 4096 : maxValueBytes);
    if (!cas) return write({ op: 'put', key, value: body }, req, url.pathname + url.search, body);
    const parsed = parseCas(body, maxValueBytes);
    if ('status' in parsed) return parsed;
    return write({ op: 'cas', key, ...parsed }, req, url.pathname + url.search, body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    route(req)
      .catch((error: unknown): Reply => {
        if (error instanceof PayloadTooLarge) return fail(413, 'PAYLOAD_TOO_LARGE', `the body is larger than the limit (values up to ${maxValueBytes} bytes)`, undefined, { connection: 'close' });
        return fail(500, 'INTERNAL', (error as Error).message);
      })
      .then((reply) => {
        if (res.headersSent || res.destroyed) return;
        const body = typeof reply.body === 'string' ? Buffer.from(reply.body) : reply.body;
        res.writeHead(reply.status, { ...reply.headers, 'content-length': String(body.byteLength) });
        res.end(body);
      }, () => undefined);
  };

  server = createServer({ keepAliveTimeout: 60_000, headersTimeout: 20_000, requestTimeout: 0 }, handle);
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":{"code":"BAD_REQUEST","message":"malformed HTTP request"}}');
    else socket.destroy();
  });
  const hp = splitHostPort(httpListen) as { host: string; port: number };
  const listening = server;
  try {
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(hp.port, hp.host.replace(/^\[|\]$/g, ''), () => {
        listening.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    subscription.unsubscribe();
    await node.stop();
    throw new TransportError(`cannot listen for HTTP on ${httpListen}: ${(error as Error).message}`, { cause: error });
  }
  const bound = listening.address() as AddressInfo;
  const httpAddress = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;

  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const serverClosed = new Promise<void>((resolve) => listening.close(() => resolve()));
      listening.closeIdleConnections();
      const cut = setTimeout(() => listening.closeAllConnections(), 2000);
      await node.stop({ transferLeadership: true });
      await serverClosed;
      clearTimeout(cut);
      agent.destroy();
      subscription.unsubscribe();
      metrics.detach();
    })();
    return closed;
  };
  return { node, store, httpAddress, close };
}
