/**
 * Network partitions for real processes on 127.0.0.1: one TCP proxy in front
 * of each node's Raft port (and one in front of its HTTP port, for the
 * requests nodes forward to the leader), with the node's peers pointed at the
 * proxies. A proxy learns which node a connection comes from by reading the
 * first bytes the dialer sends — the WebSocket transport's `hello` message,
 * or the kv service's `x-raftchart-forwarded-by` header — and cuts it when
 * the two nodes are on different sides of the current partition — or, in
 * `'hold'` mode, stops reading both sides until the partition heals and then
 * delivers everything late. Cut nodes redial; the proxy keeps cutting (or
 * holding) until the partition heals.
 *
 * Test utility only; not part of the package.
 *
 * @module
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * Reads the dialing node's id from the first bytes of a connection: a string
 * when known, `null` when it cannot be known (never cut), or a number `n`
 * while undecided (the first `n` bytes may already be forwarded).
 */
export type Identify = (head: Buffer) => string | null | number;

/** Largest head read before giving up on identification. */
const MAX_HEAD = 64 * 1024;

/**
 * The WebSocket transport's dialer: an HTTP upgrade request (forwarded at
 * once, so the server can send its challenge), then a masked text frame with
 * `{"type":"hello","id":...}`.
 */
export const identifyWebSocketHello: Identify = (head) => {
  const end = head.indexOf('\r\n\r\n');
  if (end < 0) return head.length > MAX_HEAD ? null : 0;
  const p = end + 4;
  if (head.length < p + 2) return p;
  const b1 = head[p + 1] as number;
  let len = b1 & 0x7f;
  let q = p + 2;
  if (len === 126) {
    if (head.length < q + 2) return p;
    len = head.readUInt16BE(q);
    q += 2;
  } else if (len === 127) return null;
  const masked = (b1 & 0x80) !== 0;
  const mask = masked ? head.subarray(q, q + 4) : null;
  if (masked) q += 4;
  if (head.length < q + len) return p;
  const payload = Buffer.from(head.subarray(q, q + len));
  if (mask !== null) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  try {
    const hello = JSON.parse(payload.toString('utf8')) as { id?: unknown };
    return typeof hello.id === 'string' ? hello.id : null;
  } catch {
    return null;
  }
};

/** The kv service forwarding a request: the header block of the first request names the forwarding node. */
export const identifyForwardedHttp: Identify = (head) => {
  const end = head.indexOf('\r\n\r\n');
  if (end < 0) return head.length > MAX_HEAD ? null : 0;
  const m = /\r\nx-raftchart-forwarded-by:\s*([^\r\n]+)/i.exec(head.subarray(0, end).toString('latin1'));
  return m === null ? null : (m[1] as string).trim();
};

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  source: string | null | undefined;
  /** Held by a `'hold'` partition: neither side is read until the partition heals. */
  held: boolean;
  /** Bytes of the first message not forwarded yet (a link held as soon as it named its source). */
  pending: Buffer | null;
}

/** What a partition does to a link across it: `'drop'` closes it (and every new one), `'hold'` stops its traffic until healing, then delivers it late. */
export type PartitionMode = 'drop' | 'hold';

/** The switchboard: which pairs of nodes are cut, and the proxies that enforce it. */
export class FaultNetwork {
  readonly #cut = new Set<string>();
  readonly #proxies: FaultProxy[] = [];
  #mode: PartitionMode = 'drop';
  /** Connections cut so far (for the test's report). */
  cuts = 0;
  /** Connections held so far. */
  holds = 0;

  /** What the current partition does to the links across it. */
  get mode(): PartitionMode {
    return this.#mode;
  }

  /** Whether traffic between `a` and `b` (either way) is cut. */
  isCut(a: string, b: string): boolean {
    return this.#cut.has(a < b ? `${a}|${b}` : `${b}|${a}`);
  }

  /** Cuts every pair of nodes in different groups (and heals every other pair). */
  partition(groups: readonly (readonly string[])[], mode: PartitionMode = 'drop'): void {
    this.heal();
    this.#mode = mode;
    for (const [i, g] of groups.entries()) {
      for (const h of groups.slice(i + 1)) {
        for (const a of g) for (const b of h) this.#cut.add(a < b ? `${a}|${b}` : `${b}|${a}`);
      }
    }
    for (const p of this.#proxies) p.enforce();
  }

  /** Heals every cut; held links deliver what they held. */
  heal(): void {
    this.#cut.clear();
    for (const p of this.#proxies) p.release();
  }

  /** Starts a proxy for node `target` on `listenPort`, forwarding to `targetPort` on 127.0.0.1. */
  async proxy(target: string, listenPort: number, targetPort: number, identify: Identify): Promise<FaultProxy> {
    const proxy = new FaultProxy(this, target, targetPort, identify);
    await proxy.listen(listenPort);
    this.#proxies.push(proxy);
    return proxy;
  }

  /** Closes every proxy and connection. */
  async close(): Promise<void> {
    await Promise.all(this.#proxies.map((p) => p.close()));
  }
}

/** One proxy in front of one port of one node. */
export class FaultProxy {
  readonly #links = new Set<Link>();
  #server: Server | null = null;

  constructor(
    readonly network: FaultNetwork,
    readonly target: string,
    readonly targetPort: number,
    readonly identify: Identify,
  ) {}

  /** Listens on 127.0.0.1:`port`. */
  listen(port: number): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  /** Cuts (or holds) the connections that the current partition forbids. */
  enforce(): void {
    for (const link of this.#links) {
      if (typeof link.source === 'string' && this.network.isCut(link.source, this.target)) this.#stop(link);
    }
  }

  /** Lets held links flow again, delivering what they held. */
  release(): void {
    for (const link of this.#links) {
      if (!link.held) continue;
      link.held = false;
      if (link.pending !== null && link.pending.length > 0) link.upstream.write(link.pending);
      link.pending = null;
      link.client.resume();
      link.upstream.resume();
    }
  }

  #stop(link: Link): void {
    if (this.network.mode === 'drop') this.#drop(link);
    else if (!link.held) {
      link.held = true;
      link.client.pause();
      link.upstream.pause();
      this.network.holds++;
    }
  }

  async close(): Promise<void> {
    for (const link of this.#links) this.#drop(link);
    const server = this.#server;
    if (server !== null) await new Promise((r) => server.close(r));
  }

  #drop(link: Link): void {
    link.client.destroy();
    link.upstream.destroy();
    if (this.#links.delete(link)) this.network.cuts++;
  }

  #accept(client: Socket): void {
    const upstream = connect(this.targetPort, '127.0.0.1');
    const link: Link = { client, upstream, source: undefined, held: false, pending: null };
    this.#links.add(link);
    const forget = (): void => {
      client.destroy();
      upstream.destroy();
      this.#links.delete(link);
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
    client.setNoDelay(true);
    upstream.setNoDelay(true);

    const relay = (from: Socket, to: Socket, chunk: Buffer): void => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!link.held) from.resume();
        });
      }
    };
    upstream.on('data', (chunk: Buffer) => relay(upstream, client, chunk));
    let head = Buffer.alloc(0);
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      if (link.source !== undefined) {
        relay(client, upstream, chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const who = head.length > MAX_HEAD ? null : this.identify(head);
      if (typeof who === 'number') {
        if (who > sent) relay(client, upstream, head.subarray(sent, who));
        sent = Math.max(sent, who);
        return;
      }
      link.source = who;
      if (who !== null && this.network.isCut(who, this.target)) {
        link.pending = head.subarray(sent);
        this.#stop(link);
        return;
      }
      if (head.length > sent) relay(client, upstream, head.subarray(sent));
    });
  }
}
