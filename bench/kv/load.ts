/**
 * A closed-loop load generator over HTTP keep-alive: N clients, each sending
 * one request and waiting for its answer before the next, for a fixed time.
 * Targets are pluggable: the raftchart kv HTTP API (`PUT/GET /kv/:key`) and
 * etcd's v3 JSON gateway (`POST /v3/kv/put`, `POST /v3/kv/range`; a range is
 * linearizable unless `serializable` is set). No dependencies beyond node:http.
 *
 * @module
 */
import { Agent, request } from 'node:http';

/** One kind of request against one system. */
export interface KvTarget {
  readonly name: string;
  /** Writes `value` under `key`; rejects on any answer but success. */
  put(key: string, value: Buffer): Promise<void>;
  /** Reads `key` linearizably; `null` when absent; rejects on error. */
  get(key: string): Promise<Buffer | null>;
  /** Closes the keep-alive sockets. */
  close(): void;
}

interface Answer {
  readonly status: number;
  readonly body: Buffer;
}

function send(agent: Agent, url: string, method: string, body: Buffer | string | undefined, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, timeout: timeoutMs, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

const agentFor = (sockets: number): Agent => new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });

/**
 * The raftchart kv HTTP contract. Client `c` talks to `urls[c % urls.length]`.
 *
 * @example
 * ```ts
 * const target = raftchartTarget(['http://127.0.0.1:8001'], 64);
 * await target.put('k', Buffer.from('v'));
 * ```
 */
export function raftchartTarget(urls: readonly string[], clients: number, timeoutMs = 10_000): KvTarget & { readonly urls: readonly string[] } {
  const agent = agentFor(clients);
  let next = 0;
  const pick = (): string => urls[next++ % urls.length] as string;
  return {
    name: 'raftchart',
    urls,
    async put(key, value) {
      const r = await send(agent, `${pick()}/kv/${encodeURIComponent(key)}`, 'PUT', value, timeoutMs);
      if (r.status !== 200) throw new Error(`PUT ${key}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
    },
    async get(key) {
      const r = await send(agent, `${pick()}/kv/${encodeURIComponent(key)}`, 'GET', undefined, timeoutMs);
      if (r.status === 404) return null;
      if (r.status !== 200) throw new Error(`GET ${key}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
      return r.body;
    },
    close: () => agent.destroy(),
  };
}

/**
 * etcd v3 through its gRPC JSON gateway (keys and values base64 in JSON).
 * A range without `serializable` is linearizable (etcd's ReadIndex).
 */
export function etcdTarget(urls: readonly string[], clients: number, timeoutMs = 10_000): KvTarget & { readonly urls: readonly string[] } {
  const agent = agentFor(clients);
  let next = 0;
  const pick = (): string => urls[next++ % urls.length] as string;
  const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
  return {
    name: 'etcd',
    urls,
    async put(key, value) {
      const r = await send(agent, `${pick()}/v3/kv/put`, 'POST', JSON.stringify({ key: b64(key), value: value.toString('base64') }), timeoutMs);
      if (r.status !== 200) throw new Error(`etcd put ${key}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
    },
    async get(key) {
      const r = await send(agent, `${pick()}/v3/kv/range`, 'POST', JSON.stringify({ key: b64(key) }), timeoutMs);
      if (r.status !== 200) throw new Error(`etcd range ${key}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
      const parsed = JSON.parse(r.body.toString('utf8')) as { kvs?: { value?: string }[] };
      const v = parsed.kvs?.[0]?.value;
      return v === undefined ? null : Buffer.from(v, 'base64');
    },
    close: () => agent.destroy(),
  };
}

/** Result of one measured run. */
export interface LoadResult {
  readonly ops: number;
  readonly opsPerSec: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly errors: number;
  readonly firstError: string | null;
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  readonly clients: number;
  readonly op: 'put' | 'get';
  /** Measured window. */
  readonly durationMs: number;
  /** Load before the window that is not measured. Default 500. */
  readonly warmupMs?: number;
  /** Keys used (`bench-0` … `bench-(keys-1)`). Default 1000. */
  readonly keys?: number;
  /** Value size in bytes. Default 256. */
  readonly valueBytes?: number;
}

const percentile = (sorted: Float64Array, p: number): number => (sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number));

/** Writes every key once, so that gets find values. */
export async function preload(target: KvTarget, keys = 1000, valueBytes = 256, clients = 32): Promise<void> {
  const value = Buffer.alloc(valueBytes, 0x61);
  let k = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (k < keys) await target.put(`bench-${k++}`, value);
  }));
}

/**
 * Runs `clients` closed loops of `op` for `warmupMs + durationMs`; counts and
 * times only the requests that started and finished inside the window.
 */
export async function runLoad(target: KvTarget, options: LoadOptions): Promise<LoadResult> {
  const keys = options.keys ?? 1000;
  const warmup = options.warmupMs ?? 500;
  const value = Buffer.alloc(options.valueBytes ?? 256, 0x62);
  const t0 = performance.now();
  const from = t0 + warmup;
  const until = from + options.durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let seq = 0;
  await Promise.all(Array.from({ length: options.clients }, async (_, c) => {
    let i = c * 7919;
    while (performance.now() < until) {
      const key = `bench-${(i++ * 31 + seq++) % keys}`;
      const start = performance.now();
      try {
        if (options.op === 'put') await target.put(key, value);
        else await target.get(key);
        const end = performance.now();
        if (start >= from && end <= until) latencies.push(end - start);
      } catch (error) {
        errors++;
        firstError ??= String(error);
        if (errors > 1000) throw new Error(`${target.name}: too many errors, first: ${firstError}`);
      }
    }
  }));
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops: sorted.length,
    opsPerSec: sorted.length / (options.durationMs / 1000),
    p50ms: percentile(sorted, 0.5),
    p99ms: percentile(sorted, 0.99),
    errors,
    firstError,
  };
}
