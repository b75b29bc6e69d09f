/**
 * The live cluster view: a small HTTP server (node:http only, loopback only)
 * that serves one page showing each node's role, term, leader, commit and
 * applied index, each replica's progress and the role machine's diagram with
 * the active states highlighted, updated live over Server-Sent Events.
 *
 * It reads nodes through their public API only: `status()`, `role$`,
 * `leader$`, `events$`, and — when a node was created with
 * `inspect: view.inspect(id)` — the XState inspection stream, from which it
 * takes the role machine's full state value (so `follower.led` or
 * `leader.transfer.transferring` light up, not just the role).
 *
 * ## HTTP
 *
 * ```
 * GET  /                     the page
 * GET  /events               text/event-stream: `event: state` with a ClusterView as JSON,
 *                            on every change and at least every `sampleMs` while a page is open
 * GET  /state                the current ClusterView as JSON
 * POST /nodes/:id/kill       calls onKill(id); needs the header `x-live-view: kill`
 * ```
 *
 * With a `secret`, every request must carry it as `?token=` (the page passes
 * its own on). Requests whose `Host` is not the address the server listens on
 * are refused (DNS rebinding), and so is a kill from another origin.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Observable, Subscription } from 'rxjs';
import type { InspectionEvent } from 'xstate';
import {
  ConfigurationError,
  describeMachine,
  nodeMachine,
  toSvg,
  type RaftEvent,
  type RaftNode,
  type RaftStatus,
  type ReplicaStatus,
  type Role,
} from '../../index.js';
import { livePage } from './page.js';

/** A node to show: a {@link RaftNode}, or an id with the node now running under it (`null`: down). */
export type LiveViewNode = RaftNode<unknown> | { readonly id: string; readonly node: RaftNode<unknown> | null };

/** Options of {@link startLiveView}. */
export interface LiveViewOptions {
  /** `'host:port'` on a loopback address (`127.0.0.1`, `[::1]`, `localhost`); port 0 picks one. */
  readonly listen: string;
  /**
   * The nodes to show: a fixed list, or a function called at every sample that returns the
   * current list (so a node stopped and started again under the same id is followed).
   * A node is shown as down when its entry's `node` is `null` or after it stopped (its `role$` completed).
   */
  readonly nodes: readonly LiveViewNode[] | (() => readonly LiveViewNode[]);
  /** When set (at least 16 characters), every request must carry it as `?token=`; {@link LiveView.url} includes it. */
  readonly secret?: string | undefined;
  /**
   * Called by the page's kill button with the node's id; resolves when the node is stopped. Without
   * it the page shows no kill buttons and the endpoint answers 404.
   */
  readonly onKill?: (id: string) => void | Promise<void>;
  /** How often an open page gets fresh numbers (commit index, last contact, ...), in ms. Default 250. */
  readonly sampleMs?: number;
  /** Most pages connected at once; more get 503. Default 16. */
  readonly maxClients?: number;
  /** A kill that has not finished after this long answers 504 (the kill goes on). Default 30000. */
  readonly killTimeoutMs?: number;
}

/** One replica's progress, as the leader reports it (see {@link ReplicaStatus}). */
export interface LiveReplicaView extends ReplicaStatus {
  /** The peer's id. */
  readonly id: string;
}

/** One line of a node's recent history. */
export interface LiveEventView {
  /** Wall-clock time, ms since the epoch. */
  readonly at: number;
  /** What happened, in words. */
  readonly text: string;
}

/** One node as the page shows it: the fields of `status()` it draws, plus what only the view knows. */
export interface LiveNodeView extends Pick<RaftStatus, 'term' | 'leaderId' | 'commitIndex' | 'appliedIndex' | 'lastLogIndex'> {
  readonly id: string;
  /** `false` when the node is stopped or not running. */
  readonly up: boolean;
  /** `null` when down. */
  readonly role: Role | null;
  /** Ids of the members of the configuration in effect. */
  readonly members: readonly string[];
  /** Leader only: each peer's progress, by id. */
  readonly replicas: readonly LiveReplicaView[];
  /** Active state paths of the role machine (`follower`, `follower.led`), the keys of the diagram's `data-state`. */
  readonly active: readonly string[];
  /** `'inspect'`: `active` comes from the node's inspection stream; `'role'`: from `status().role` only. */
  readonly activeFrom: 'inspect' | 'role';
  /** The latest observations, oldest first (at most 12). */
  readonly events: readonly LiveEventView[];
}

/** What the page receives: every node, in the order of {@link LiveViewOptions.nodes}. */
export interface ClusterView {
  /** Wall-clock time of the sample, ms since the epoch. */
  readonly at: number;
  /** Whether the kill buttons work ({@link LiveViewOptions.onKill} was given). */
  readonly killable: boolean;
  readonly nodes: readonly LiveNodeView[];
}

/** A running live view. */
export interface LiveView {
  /** The page's address, with `?token=` when a secret is set: open it in a browser. */
  readonly url: string;
  /** The address the server listens on, `'127.0.0.1:PORT'`. */
  readonly address: string;
  /**
   * An XState inspection callback for node `id`: pass it as the node's `inspect` option and the
   * page highlights the role machine's full state value, not just the role.
   *
   * @remarks Keeps only the latest state value of the node's root actor. XState does more work per
   * event when any inspect callback is attached (roughly half the event rate, per the stack notes):
   * right for a demo or a dashboard, worth measuring on a hot production path. To inspect with
   * another tool as well, call both from one callback.
   */
  inspect(id: string): (event: InspectionEvent) => void;
  /** The view as the page would now show it. */
  snapshot(): ClusterView;
  /** Stops serving: ends the event streams, unsubscribes from every node, closes the server. */
  close(): Promise<void>;
}

const KNOWN = ['listen', 'nodes', 'secret', 'onKill', 'sampleMs', 'maxClients', 'killTimeoutMs'];
const EVENTS_KEPT = 12;
const COALESCE_MS = 20;
const PING_MS = 15_000;
const CLIENT_HIGH_WATER_BYTES = 256 * 1024;
const LOOPBACK = /^(?:127(?:\.\d{1,3}){3}|::1|localhost)$/;

/** Per node id: what the view has subscribed to and remembers. */
interface Tracked {
  node: RaftNode<unknown> | null;
  subscriptions: Subscription[];
  stopped: boolean;
  /** A node has been followed under this id before. */
  seen: boolean;
  /** The root actor's latest state value from `inspect`, and the session it came from. */
  inspected: { readonly value: unknown; readonly sessionId: string } | null;
  events: LiveEventView[];
}

function fail(option: string, why: string): never {
  throw new ConfigurationError(option, why);
}

function checkOptions(options: LiveViewOptions): { host: string; port: number; sampleMs: number; maxClients: number; killTimeoutMs: number } {
  if (typeof options !== 'object' || options === null) fail('options', 'must be an object');
  for (const key of Object.keys(options)) if (!KNOWN.includes(key)) fail(key, `unknown option; known options are ${KNOWN.join(', ')}`);
  const m = typeof options.listen === 'string' ? /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(options.listen) : null;
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (m === null || host === undefined || !(port >= 0 && port <= 65535)) fail('listen', `must be 'host:port' with a port in 0..65535, got ${JSON.stringify(options.listen)}`);
  if (!LOOPBACK.test(host)) fail('listen', `the live view binds a loopback address only (127.0.0.1, [::1], localhost), got '${host}'`);
  if (!Array.isArray(options.nodes) && typeof options.nodes !== 'function') fail('nodes', 'must be an array of nodes or a function returning one');
  if (options.secret !== undefined && (typeof options.secret !== 'string' || options.secret.length < 16)) fail('secret', 'must be a string of at least 16 characters');
  if (options.onKill !== undefined && typeof options.onKill !== 'function') fail('onKill', 'must be a function');
  const int = (name: 'sampleMs' | 'maxClients' | 'killTimeoutMs', fallback: number, min: number, max: number): number => {
    const v = options[name] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(name, `must be an integer in [${min}, ${max}], got ${String(v)}`);
    return v;
  };
  return { host, port, sampleMs: int('sampleMs', 250, 20, 60_000), maxClients: int('maxClients', 16, 1, 1024), killTimeoutMs: int('killTimeoutMs', 30_000, 1, 600_000) };
}

/** Active state paths of a state value: `{ leader: { transfer: 'idle' } }` → `leader`, `leader.transfer`, `leader.transfer.idle`. */
export function activePaths(value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [`${prefix}${value}`];
  if (typeof value !== 'object' || value === null) return [];
  const out: string[] = [];
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    out.push(`${prefix}${key}`, ...activePaths(child, `${prefix}${key}.`));
  }
  return out;
}

/** One observation in words. */
export function describeEvent(e: RaftEvent): string {
  switch (e.type) {
    case 'roleChanged':
      return `role ${e.role} (term ${e.term})`;
    case 'leaderChanged':
      return `leader ${e.leaderId ?? 'unknown'} (term ${e.term})`;
    case 'membershipChanged':
      return `members ${e.servers.map((s) => s.id).join(', ')} (index ${e.index})`;
    case 'applyFailed':
      return `apply failed at ${e.index}: ${e.error instanceof Error ? e.error.message : String(e.error)}`;
    case 'fatal':
      return `fatal: ${e.error instanceof Error ? e.error.message : String(e.error)}`;
    case 'transferStarted':
      return `transferring leadership to ${e.target} (term ${e.term})`;
    case 'transferCompleted':
      return `leadership transferred to ${e.target} (term ${e.term})`;
    case 'transferAborted':
      return `transfer to ${e.target} aborted: ${e.reason}`;
    case 'readLeaseExpired':
      return `read lease expired (term ${e.term})`;
    default: {
      // Observations added after this view was written: the type and its plain fields.
      const fields = Object.entries(e as Readonly<Record<string, unknown>>)
        .filter(([k, v]) => k !== 'type' && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'))
        .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? Math.round(v) : String(v)}`);
      const type = (e as { readonly type?: unknown }).type;
      return [typeof type === 'string' ? type : 'event', ...fields].join(' ');
    }
  }
}

function entryOf(n: LiveViewNode): { id: string; node: RaftNode<unknown> | null } {
  return 'node' in n && !('status' in n) ? { id: n.id, node: n.node } : { id: n.id, node: n as RaftNode<unknown> };
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Starts the live cluster view.
 *
 * @remarks Read-only but for the kill button, which only calls your `onKill`. Listens on loopback
 * only; keep it that way (it has no TLS). Nothing a page sends can reach a node: the view samples
 * each node's `status()` and subscribes to its Observables, and a slow page loses nothing but
 * freshness (each message is the whole view).
 *
 * @throws {@link ConfigurationError} naming the option: a non-loopback or malformed `listen`, a
 * short secret, an unknown option; the server's `EADDRINUSE` and the like reject the promise.
 *
 * @example
 * ```ts
 * const nodes = new Map<string, RaftNode | null>()
 * const view = await startLiveView({
 *   listen: '127.0.0.1:8000',
 *   nodes: () => [...nodes].map(([id, node]) => ({ id, node })),
 *   onKill: async (id) => { await nodes.get(id)?.stop(); nodes.set(id, null) },
 * })
 * // create each node with `inspect: view.inspect(id)`, then open view.url
 * ```
 */
export async function startLiveView(options: LiveViewOptions): Promise<LiveView> {
  const { host, port, sampleMs, maxClients, killTimeoutMs } = checkOptions(options);
  const tokenDigest = options.secret === undefined ? null : digest(options.secret);
  const tracked = new Map<string, Tracked>();
  const clients = new Set<ServerResponse>();
  let closed = false;
  let sampleTimer: NodeJS.Timeout | null = null;
  let pingTimer: NodeJS.Timeout | null = null;
  let pushTimer: NodeJS.Timeout | null = null;
  let lastSent = '';
  let followTimer: NodeJS.Timeout | null = null;

  const machine = describeMachine(nodeMachine);
  const page = livePage({ states: toSvg(machine, { legend: false, details: false }), full: toSvg(machine) });

  const trackedFor = (id: string): Tracked => {
    let t = tracked.get(id);
    if (t === undefined) {
      t = { node: null, subscriptions: [], stopped: false, seen: false, inspected: null, events: [] };
      tracked.set(id, t);
    }
    return t;
  };

  const note = (t: Tracked, text: string): void => {
    t.events.push({ at: Date.now(), text });
    if (t.events.length > EVENTS_KEPT) t.events.splice(0, t.events.length - EVENTS_KEPT);
  };

  const schedulePush = (): void => {
    if (closed || clients.size === 0 || pushTimer !== null) return;
    pushTimer = setTimeout(() => {
      pushTimer = null;
      push(false);
    }, COALESCE_MS);
  };

  /** Follows the node now running under `id`: subscribes to a new one, drops an old one. */
  const follow = (id: string, node: RaftNode<unknown> | null): Tracked => {
    const t = trackedFor(id);
    if (t.node === node) return t;
    for (const s of t.subscriptions) s.unsubscribe();
    t.subscriptions = [];
    // t.inspected stays: a restarted node's actor reports its first state during start(), before it is listed here
    if (node === null) note(t, 'down');
    else if (t.seen) note(t, 'restarted');
    t.seen ||= node !== null;
    t.node = node;
    t.stopped = false;
    if (node === null) return t;
    const down = (why: string) => (): void => {
      if (t.node !== node || t.stopped) return;
      t.stopped = true;
      t.inspected = null;
      note(t, why);
      schedulePush();
    };
    const guard = <T>(observable: Observable<T>, next: (v: T) => void): void => {
      t.subscriptions.push(
        observable.subscribe({
          next: (v) => {
            if (t.node !== node) return;
            try {
              next(v);
            } catch {
              // a bad value is not worth a crash; the next sample shows the truth
            }
            schedulePush();
          },
          error: down('stopped (stream failed)'),
          complete: down('stopped'),
        }),
      );
    };
    try {
      // role$ and leader$ replay their current value, so a view that starts following late still
      // lists the node's role and leader; events$ adds the rest (its role and leader changes would repeat them).
      guard<Role>(node.role$, (role) => note(t, `role ${role} (term ${node.status().term})`));
      guard(node.leader$, (l) => note(t, describeEvent({ type: 'leaderChanged', leaderId: l.leaderId, term: l.term })));
      guard<RaftEvent>(node.events$, (e) => {
        if (e.type !== 'roleChanged' && e.type !== 'leaderChanged') note(t, describeEvent(e));
      });
    } catch {
      t.stopped = true;
    }
    return t;
  };

  const currentNodes = (): { id: string; node: RaftNode<unknown> | null }[] => {
    try {
      const list = typeof options.nodes === 'function' ? options.nodes() : options.nodes;
      return Array.isArray(list) ? list.map(entryOf) : [];
    } catch {
      return [...tracked.entries()].map(([id, t]) => ({ id, node: t.node }));
    }
  };

  const viewOf = (id: string, t: Tracked): LiveNodeView => {
    const downView: LiveNodeView = {
      id, up: false, role: null, term: 0, leaderId: null, commitIndex: 0, appliedIndex: 0, lastLogIndex: 0,
      members: [], replicas: [], active: [], activeFrom: 'role', events: t.events.slice(),
    };
    if (t.node === null || t.stopped) return downView;
    try {
      const s = t.node.status();
      const inspected = t.inspected === null ? [] : activePaths(t.inspected.value);
      const fromInspect = inspected[0] === s.role;
      return {
        id,
        up: true,
        role: s.role,
        term: s.term,
        leaderId: s.leaderId,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        lastLogIndex: s.lastLogIndex,
        members: s.members.map((m) => m.id),
        replicas: Object.entries(s.replicas).map(([peer, r]) => ({ id: peer, ...r })),
        active: fromInspect ? inspected : [s.role],
        activeFrom: fromInspect ? 'inspect' : 'role',
        events: t.events.slice(),
      };
    } catch {
      return downView;
    }
  };

  const snapshot = (): ClusterView => {
    const list = currentNodes();
    const views = list.map(({ id, node }) => viewOf(id, follow(id, node)));
    return { at: Date.now(), killable: options.onKill !== undefined, nodes: views };
  };

  const push = (force: boolean): void => {
    if (closed || clients.size === 0) return;
    const view = snapshot();
    const body = JSON.stringify({ ...view, at: 0 });
    if (!force && body === lastSent) return;
    lastSent = body;
    const frame = `event: state\ndata: ${JSON.stringify(view)}\n\n`;
    // A page that does not keep up skips messages rather than growing this process's buffers.
    for (const res of clients) if (res.writableLength < CLIENT_HIGH_WATER_BYTES) res.write(frame);
  };

  const startTimers = (): void => {
    sampleTimer ??= setInterval(() => push(false), sampleMs);
    pingTimer ??= setInterval(() => {
      for (const res of clients) res.write(': ping\n\n');
    }, PING_MS);
  };

  const stopTimers = (): void => {
    if (sampleTimer !== null) clearInterval(sampleTimer);
    if (pingTimer !== null) clearInterval(pingTimer);
    if (pushTimer !== null) clearTimeout(pushTimer);
    sampleTimer = pingTimer = pushTimer = null;
  };

  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const address = `${shownHost}:${bound}`;
  const allowedHosts = new Set([address, `localhost:${bound}`, `127.0.0.1:${bound}`, `[::1]:${bound}`]);
  const query = options.secret === undefined ? '' : `?token=${encodeURIComponent(options.secret)}`;

  const send = (res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void => {
    res.writeHead(status, {
      'content-type': type,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...extra,
    });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, body: unknown): void => send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));

  const authorized = (url: URL): boolean => {
    if (tokenDigest === null) return true;
    const given = url.searchParams.get('token');
    return given !== null && timingSafeEqual(digest(given), tokenDigest);
  };

  const kill = async (req: IncomingMessage, res: ServerResponse, id: string): Promise<void> => {
    const onKill = options.onKill;
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedHosts.has(origin.replace(/^http:\/\//, ''))) return json(res, 403, { error: 'kill from another origin' });
    if (req.headers['x-live-view'] !== 'kill') return json(res, 400, { error: "a kill needs the header 'x-live-view: kill'" });
    if (onKill === undefined) return json(res, 404, { error: 'this live view has no kill hook' });
    if (!currentNodes().some((n) => n.id === id)) return json(res, 404, { error: `no node '${id}'` });
    note(trackedFor(id), 'kill requested');
    schedulePush();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), killTimeoutMs);
    });
    try {
      const outcome = await Promise.race([Promise.resolve().then(() => onKill(id)).then(() => 'done' as const), timeout]);
      if (outcome === 'timeout') json(res, 504, { error: `kill of '${id}' still running after ${killTimeoutMs} ms` });
      else json(res, 200, { killed: id });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      note(trackedFor(id), `kill failed: ${message}`);
      json(res, 500, { error: message });
    } finally {
      clearTimeout(timer);
      schedulePush();
    }
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    res.on('error', () => undefined);
    if (closed) return json(res, 503, { error: 'closing' });
    if (!allowedHosts.has(req.headers.host ?? '')) return json(res, 421, { error: 'unexpected Host header' });
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${address}`);
    } catch {
      return json(res, 400, { error: 'bad request target' });
    }
    if (!authorized(url)) return json(res, 401, { error: 'missing or wrong ?token=' });
    const path = url.pathname;
    const killMatch = /^\/nodes\/([^/]{1,256})\/kill$/.exec(path);
    if (req.method === 'POST' && killMatch !== null) {
      let id: string;
      try {
        id = decodeURIComponent(killMatch[1] as string);
      } catch {
        return json(res, 400, { error: 'bad node id' });
      }
      req.resume();
      void kill(req, res, id);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: `${req.method ?? '?'} not allowed here` });
    if (path === '/') {
      return send(res, 200, 'text/html; charset=utf-8', page.html, { 'content-security-policy': page.csp, 'x-frame-options': 'DENY' });
    }
    if (path === '/state') return json(res, 200, snapshot());
    if (path === '/events' && req.method === 'GET') {
      if (clients.size >= maxClients) return json(res, 503, { error: `at most ${maxClients} pages at once` });
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 1000\n\n');
      clients.add(res);
      req.on('close', () => {
        clients.delete(res);
        if (clients.size === 0) stopTimers();
      });
      startTimers();
      push(true);
      return;
    }
    return json(res, 404, { error: 'not found' });
  });

  // Follow the nodes even while no page is open, so a page opened later shows their recent events.
  const followAll = (): void => {
    for (const { id, node } of currentNodes()) follow(id, node);
  };
  followAll();
  followTimer = setInterval(followAll, 1000);
  followTimer.unref();

  return {
    url: `http://${address}/${query}`,
    address,
    inspect(id: string) {
      if (typeof id !== 'string') fail('inspect', 'needs the node id');
      return (event: InspectionEvent): void => {
        if (event.type !== '@xstate.snapshot' || event.actorRef.sessionId !== event.rootId) return;
        const t = trackedFor(id);
        t.inspected = { value: (event.snapshot as { readonly value?: unknown }).value, sessionId: event.rootId };
        schedulePush();
      };
    },
    snapshot,
    async close() {
      if (closed) return;
      closed = true;
      stopTimers();
      if (followTimer !== null) clearInterval(followTimer);
      for (const t of tracked.values()) for (const s of t.subscriptions) s.unsubscribe();
      for (const res of clients) res.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
