/**
 * The live view's server without a browser (the browser half is
 * live-view.e2e.ts, run by `npm run test:e2e`): options, the page and its
 * Content-Security-Policy, the state it serves over /state and /events, the
 * kill endpoint and its guards, following stopped and restarted nodes.
 *
 * The cluster runs on a SimulatedClock over the memory network (seeded), driven
 * step by step until what a test waits for holds, with a bounded step count;
 * only the view's HTTP server is real (127.0.0.1).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import {
  ConfigurationError,
  MemoryNetwork,
  MemoryStorage,
  SimulatedClock,
  createRaftNode,
  seededRandom,
  type RaftEvent,
  type RaftNode,
} from '../../index.js';
import { activePaths, describeEvent, livePage, startLiveView, type ClusterView, type LiveView } from '../../examples/live-view/index.js';
import { runCli } from '../../examples/kv/cli.js';

const SEED = Number(process.env.SEED ?? 7);
const SECRET = 'live-view-spec-secret-0123456789';

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request to the view; `headers` may override Host. */
function http(view: LiveView, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const [host, port] = view.address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), method, path, headers, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Reads `/events` until the first `state` message; resolves with it and the open response's closer. */
function firstState(view: LiveView, token: string): Promise<{ view: ClusterView; ended: Promise<void>; close: () => void; headers: IncomingHttpHeaders }> {
  const [host, port] = view.address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: `/events?token=${encodeURIComponent(token)}`, timeout: 10_000 }, (res) => {
      let buffer = '';
      let done = false;
      const ended = new Promise<void>((r) => res.on('end', r).on('close', r));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        const m = /event: state\ndata: (.*)\n\n/.exec(buffer);
        if (m !== null && !done) {
          done = true;
          resolve({ view: JSON.parse(m[1] as string) as ClusterView, ended, close: () => req.destroy(), headers: res.headers });
        }
      });
      res.on('end', () => {
        if (!done) reject(new Error(`/events ended without a state message (status ${res.statusCode}): ${buffer}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('/events timed out')));
    req.on('error', (e) => reject(e));
    req.end();
  });
}

/** A seeded three-node cluster on a simulated clock, driven in 5 ms steps. */
class Cluster {
  readonly clock = new SimulatedClock();
  readonly network = new MemoryNetwork({ clock: this.clock, random: seededRandom(SEED) });
  readonly ids = ['n1', 'n2', 'n3'];
  readonly storages = new Map(this.ids.map((id) => [id, new MemoryStorage()]));
  readonly current = new Map<string, RaftNode | null>();
  #incarnation = 0;

  create(id: string, view: LiveView | null): RaftNode {
    const node = createRaftNode({
      id,
      stateMachine: { apply: (e) => e.index },
      storage: this.storages.get(id) as MemoryStorage,
      transport: this.network.transport(id),
      clock: this.clock,
      random: seededRandom(SEED * 31 + this.#incarnation++),
      ...(view === null ? {} : { inspect: view.inspect(id) }),
    });
    this.current.set(id, node);
    return node;
  }

  /** Runs the clock until `until()` holds; fails (with the seed) after 4000 steps (20 s simulated). */
  async drive(until: () => boolean, what: string): Promise<void> {
    for (let step = 0; step < 4000; step++) {
      if (until()) return;
      this.clock.advanceBy(5);
      await new Promise((r) => setImmediate(r));
    }
    throw new Error(`SEED=${SEED}: gave up waiting for ${what}`);
  }

  async settle<T>(p: Promise<T>, what: string): Promise<T> {
    let done = false;
    let failed: unknown = null;
    let value: T | undefined;
    p.then(
      (v) => {
        value = v;
        done = true;
      },
      (e: unknown) => {
        failed = e;
        done = true;
      },
    );
    await this.drive(() => done, what);
    if (failed !== null) throw failed;
    return value as T;
  }

  leaders(): string[] {
    return [...this.current].filter(([, n]) => n !== null && n.status().role === 'leader').map(([id]) => id);
  }
}

t.test('options are checked and named', async (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ listen: '0.0.0.0:0', nodes: [] }, /^listen: the live view binds a loopback address only/],
    [{ listen: '192.168.1.2:80', nodes: [] }, /^listen: .*loopback/],
    [{ listen: 'nope', nodes: [] }, /^listen: must be 'host:port'/],
    [{ listen: 8000, nodes: [] }, /^listen: must be 'host:port'/],
    [{ listen: '127.0.0.1:70000', nodes: [] }, /^listen: must be 'host:port'/],
    [{ listen: '127.0.0.1:0' }, /^nodes: must be an array/],
    [{ listen: '127.0.0.1:0', nodes: [], secret: 'short' }, /^secret: must be a string of at least 16 characters/],
    [{ listen: '127.0.0.1:0', nodes: [], onKill: 'yes' }, /^onKill: must be a function/],
    [{ listen: '127.0.0.1:0', nodes: [], sampleMs: 0 }, /^sampleMs: must be an integer in \[20, 60000\]/],
    [{ listen: '127.0.0.1:0', nodes: [], maxClients: 1.5 }, /^maxClients: must be an integer/],
    [{ listen: '127.0.0.1:0', nodes: [], killTimeoutMs: 'soon' }, /^killTimeoutMs: must be an integer/],
    [{ listen: '127.0.0.1:0', nodes: [], colour: 'red' }, /^colour: unknown option; known options are listen, nodes/],
  ];
  for (const [options, message] of bad) {
    await t.rejects(startLiveView(options as never), { name: 'ConfigurationError', message }, JSON.stringify(options));
  }
  await t.rejects(startLiveView(null as never), ConfigurationError);
  const ipv6: LiveView | Error = await startLiveView({ listen: '[::1]:0', nodes: [] }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  if (ipv6 instanceof Error) t.match(ipv6.message, /EADDRNOTAVAIL|EAFNOSUPPORT/, 'no IPv6 loopback here');
  else {
    t.match(ipv6.url, /^http:\/\/\[::1\]:\d+\/$/, 'an IPv6 loopback address is shown in brackets');
    await ipv6.close();
  }
  const taken = await startLiveView({ listen: '127.0.0.1:0', nodes: [] });
  await t.rejects(startLiveView({ listen: taken.address, nodes: [] }), { code: 'EADDRINUSE' }, 'a port in use rejects');
  await taken.close();
  await taken.close();
});

t.test('raftchart demo: --live is checked before any node starts, and listed in --help', async (t) => {
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {}, signal: new AbortController().signal });
    return { code, out, err };
  };
  const bad = await run(['demo', '--data', '/nonexistent/raftchart-live-spec', '--live', '0.0.0.0:8000']);
  t.equal(bad.code, 2, 'a usage error');
  t.match(bad.err, /^raftchart demo: --live: the live view binds a loopback address only/);
  t.equal(bad.out, '', 'nothing started');
  const help = await run(['demo', '--help']);
  t.match(help.out, /--live HOST:PORT/);
});

t.test('state paths and events in words', async (t) => {
  t.same(activePaths('follower'), ['follower']);
  t.same(activePaths({ follower: 'led' }), ['follower', 'follower.led']);
  t.same(activePaths({ leader: { heartbeat: 'beating', transfer: 'idle' } }), ['leader', 'leader.heartbeat', 'leader.heartbeat.beating', 'leader.transfer', 'leader.transfer.idle']);
  t.same(activePaths(undefined), []);
  t.same(activePaths(42), []);
  const cases: [RaftEvent, string][] = [
    [{ type: 'roleChanged', role: 'leader', term: 3 }, 'role leader (term 3)'],
    [{ type: 'leaderChanged', leaderId: null, term: 3 }, 'leader unknown (term 3)'],
    [{ type: 'leaderChanged', leaderId: 'n2', term: 4 }, 'leader n2 (term 4)'],
    [{ type: 'membershipChanged', servers: [{ id: 'n1', address: 'a' }, { id: 'n2', address: 'b' }], index: 7 } as unknown as RaftEvent, 'members n1, n2 (index 7)'],
    [{ type: 'applyFailed', index: 9, error: new Error('boom') }, 'apply failed at 9: boom'],
    [{ type: 'fatal', error: 'disk' }, 'fatal: disk'],
    [{ type: 'transferStarted', target: 'n3', term: 5 }, 'transferring leadership to n3 (term 5)'],
    [{ type: 'transferCompleted', target: 'n3', term: 6 }, 'leadership transferred to n3 (term 6)'],
    [{ type: 'transferAborted', target: 'n3', reason: 'timeout', term: 5 }, 'transfer to n3 aborted: timeout'],
    [{ type: 'readLeaseExpired', term: 5 }, 'read lease expired (term 5)'],
  ];
  for (const [event, text] of cases) t.equal(describeEvent(event), text, event.type);
  t.equal(describeEvent({ type: 'heartbeatFailed', peer: 'n2', lastContactMs: 182.74, nested: { x: 1 } } as unknown as RaftEvent), 'heartbeatFailed peer=n2 lastContactMs=183', 'an observation this view does not know: its type and plain fields');
  t.equal(describeEvent({} as unknown as RaftEvent), 'event');
});

t.test('the page: one inline script allowed by hash, both diagrams, nothing from elsewhere', async (t) => {
  const { html, csp } = livePage({ states: '<svg id="s"><g data-state="a"></g></svg>\n', full: '<svg id="f"></svg>' });
  const script = /<script type="module">([\s\S]*)<\/script>/.exec(html)?.[1] ?? '';
  t.ok(script.length > 500, 'the client script is inlined');
  const hash = createHash('sha256').update(script, 'utf8').digest('base64');
  t.match(csp, `script-src 'sha256-${hash}'`, 'the policy allows exactly that script');
  t.match(csp, "default-src 'none'");
  t.match(csp, "connect-src 'self'");
  t.match(html, '<template id="diagram-states"><svg id="s"><g data-state="a"></g></svg></template>');
  t.match(html, '<template id="diagram-full"><svg id="f"></svg></template>');
  t.notMatch(html, /\bsrc=|href=|https?:\/\//, 'no external resource');
  t.notMatch(script, /\brequire\(|\bimport\b/, 'the script stands alone');
});

t.test('a three-node cluster through the view', async (t) => {
  const c = new Cluster();
  const kills: string[] = [];
  const view = await startLiveView({
    listen: '127.0.0.1:0',
    nodes: () => c.ids.map((id) => ({ id, node: c.current.get(id) ?? null })),
    secret: SECRET,
    sampleMs: 20,
    maxClients: 1,
    onKill: async (id) => {
      kills.push(id);
      const node = c.current.get(id);
      if (node === null || node === undefined) throw new Error(`${id} is already down`);
      await node.stop();
      c.current.set(id, null);
    },
  });
  t.teardown(async () => {
    await view.close();
    for (const n of c.current.values()) await n?.stop();
  });
  const q = `?token=${encodeURIComponent(SECRET)}`;
  t.equal(view.url, `http://${view.address}/${q}`, 'the URL carries the token');
  t.match(view.address, /^127\.0\.0\.1:\d+$/);

  // Before any node runs, all are down.
  t.same(view.snapshot().nodes.map((n) => [n.id, n.up]), [['n1', false], ['n2', false], ['n3', false]]);
  t.equal(view.snapshot().killable, true);

  const nodes = c.ids.map((id) => c.create(id, view));
  await c.settle(Promise.all(nodes.map((n) => n.start())), 'start');
  const servers = c.ids.map((id) => ({ id, address: id }));
  await c.settle(Promise.all(nodes.map((n) => n.bootstrap(servers))), 'bootstrap');
  await c.drive(() => c.leaders().length === 1, 'a leader');
  const leaderId = c.leaders()[0] as string;
  await c.drive(() => {
    const s = view.snapshot();
    const leader = s.nodes.find((n) => n.id === leaderId);
    return leader !== undefined && leader.replicas.length === 2 && leader.commitIndex >= 1 && s.nodes.every((n) => n.up && n.activeFrom === 'inspect');
  }, 'the view to show the leader with both peers');

  // Access: token, Host, methods, paths.
  t.equal((await http(view, 'GET', '/')).status, 401, 'no token');
  t.equal((await http(view, 'GET', '/?token=wrong')).status, 401, 'a wrong token');
  t.equal((await http(view, 'GET', `/${q}`, { host: 'attacker.example:80' })).status, 421, 'a foreign Host header (DNS rebinding)');
  t.equal((await http(view, 'GET', `/${q}`, { host: `localhost:${view.address.split(':')[1]}` })).status, 200, 'localhost is the same server');
  t.equal((await http(view, 'GET', `/nope${q}`)).status, 404);
  t.equal((await http(view, 'PUT', `/${q}`)).status, 405);
  t.equal((await http(view, 'GET', `/%zz${q}`)).status, 404, 'an odd path is just not found');
  const page = await http(view, 'GET', `/${q}`);
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], 'text/html');
  t.match(page.headers['content-security-policy'], /script-src 'sha256-/);
  t.equal(page.headers['x-frame-options'], 'DENY');
  t.match(page.body, 'data-state="leader.transfer.transferring"', 'the diagram is generated from nodeMachine');
  t.equal((await http(view, 'HEAD', `/${q}`)).status, 200);

  // What /state says.
  const state = JSON.parse((await http(view, 'GET', `/state${q}`)).body) as ClusterView;
  t.same(state.nodes.map((n) => n.id), ['n1', 'n2', 'n3'], 'in the order given');
  const leader = state.nodes.find((n) => n.id === leaderId);
  t.ok(leader !== undefined && leader.role === 'leader' && leader.leaderId === leaderId, 'the leader is shown as leader');
  t.same(leader?.replicas.map((r) => r.id).sort(), c.ids.filter((id) => id !== leaderId), 'its peers');
  for (const r of leader?.replicas ?? []) {
    t.ok(['probe', 'replicate', 'snapshot'].includes(r.state) && r.next > r.match && r.inflight >= 0 && typeof r.paused === 'boolean', `replica ${r.id}: ${JSON.stringify(r)}`);
  }
  t.same(leader?.members, ['n1', 'n2', 'n3']);
  t.equal(leader?.active[0], 'leader');
  t.ok((leader?.active ?? []).some((p) => p.startsWith('leader.')), 'nested leader states from the inspection stream');
  for (const f of state.nodes.filter((n) => n.id !== leaderId)) {
    t.equal(f.role, 'follower');
    t.same(f.active, ['follower', 'follower.led'], `${f.id} follows a known leader`);
    t.equal(f.leaderId, leaderId);
  }
  t.ok(leader?.events.some((e) => e.text.startsWith('role leader')), 'its events$ observations are listed');

  // Server-Sent Events: a state message at once; one page at a time here (maxClients: 1).
  const stream = await firstState(view, SECRET);
  t.match(stream.headers['content-type'], 'text/event-stream');
  t.equal(stream.view.nodes.length, 3);
  t.equal((await http(view, 'GET', `/events${q}`)).status, 503, 'a second page is refused');
  stream.close();
  await stream.ended;

  // Kill: guarded, then done through onKill.
  t.equal((await http(view, 'POST', `/nodes/${leaderId}/kill${q}`)).status, 400, 'without the x-live-view header');
  t.equal((await http(view, 'POST', `/nodes/${leaderId}/kill${q}`, { 'x-live-view': 'kill', origin: 'http://attacker.example' })).status, 403, 'from another origin');
  t.equal((await http(view, 'POST', `/nodes/nobody/kill${q}`, { 'x-live-view': 'kill' })).status, 404, 'an unknown node');
  t.equal((await http(view, 'POST', `/nodes/%E0%A4%A/kill${q}`, { 'x-live-view': 'kill' })).status, 400, 'a malformed id');
  t.same(kills, [], 'none of those reached onKill');
  const killed = http(view, 'POST', `/nodes/${leaderId}/kill${q}`, { 'x-live-view': 'kill', origin: `http://${view.address}` });
  const reply = await c.settle(killed, 'the kill');
  t.equal(reply.status, 200);
  t.same(JSON.parse(reply.body), { killed: leaderId });
  t.same(kills, [leaderId]);
  const down = view.snapshot().nodes.find((n) => n.id === leaderId);
  t.equal(down?.up, false, 'a stopped node is shown as down');
  t.equal(down?.role, null);
  t.same(down?.active, []);
  t.ok(down?.events.some((e) => e.text === 'kill requested') && down.events.some((e) => e.text === 'down'), 'its events say so');
  const again = await c.settle(http(view, 'POST', `/nodes/${leaderId}/kill${q}`, { 'x-live-view': 'kill' }), 'the second kill');
  t.equal(again.status, 500, 'onKill throwing answers 500');
  t.match(JSON.parse(again.body), { error: `${leaderId} is already down` });
  t.ok(view.snapshot().nodes.find((n) => n.id === leaderId)?.events.some((e) => e.text === `kill failed: ${leaderId} is already down`), 'and lists the failure');

  // A new leader among the others; the view follows.
  await c.drive(() => c.leaders().length === 1 && view.snapshot().nodes.filter((n) => n.up && n.role === 'leader').length === 1, 'a new leader');
  const second = c.leaders()[0] as string;
  t.not(second, leaderId);

  // Restart the old leader under the same id: the view follows the new node object.
  const restarted = c.create(leaderId, view);
  await c.settle(restarted.start(), 'restart');
  await c.drive(() => view.snapshot().nodes.find((n) => n.id === leaderId)?.up === true, 'the restarted node shown up');
  const back = view.snapshot().nodes.find((n) => n.id === leaderId);
  const texts = back?.events.map((e) => e.text) ?? [];
  t.ok(texts.lastIndexOf('restarted') > texts.lastIndexOf('down') && texts.includes('down'), `down, then restarted: ${texts.join(' | ')}`);
  t.ok((back?.events.length ?? 0) <= 12, 'at most 12 events kept');

  // Closing ends the streams and the server.
  const open = await firstState(view, SECRET);
  await view.close();
  await open.ended;
  await t.rejects(http(view, 'GET', `/${q}`), 'nothing listens any more');
});

t.test('a fixed node list, no kill hook, and a kill that takes too long', async (t) => {
  const c = new Cluster();
  const node = c.create('n1', null);
  await c.settle(node.start(), 'start');
  const plain = await startLiveView({ listen: 'localhost:0', nodes: [node] });
  t.teardown(() => plain.close());
  t.match(plain.url, /^http:\/\/localhost:\d+\/$/, 'no token without a secret');
  const s = plain.snapshot();
  t.equal(s.killable, false);
  t.match(s.nodes, [{ id: 'n1', up: true, role: 'follower', active: ['follower'], activeFrom: 'role' }], 'without the inspect hook, the role alone');
  t.equal((await http(plain, 'POST', '/nodes/n1/kill', { 'x-live-view': 'kill' })).status, 404, 'no kill hook');
  t.equal((await http(plain, 'GET', '/state')).status, 200, 'no token needed without a secret');

  let release: () => void = () => undefined;
  const slow = await startLiveView({
    listen: '127.0.0.1:0',
    nodes: () => {
      throw new Error('the list is broken');
    },
  });
  t.teardown(() => slow.close());
  t.same(slow.snapshot().nodes, [], 'a throwing node list shows what the view already follows (nothing)');

  await c.settle(node.stop(), 'stop');
  t.match(plain.snapshot().nodes, [{ id: 'n1', up: false }], 'a stopped node of a fixed list is down (its role$ completed)');

  const hanging = await startLiveView({ listen: '127.0.0.1:0', nodes: [{ id: 'n9', node: null }], onKill: () => new Promise<void>((r) => (release = r)), killTimeoutMs: 50 });
  t.teardown(() => hanging.close());
  const reply = await http(hanging, 'POST', '/nodes/n9/kill', { 'x-live-view': 'kill' });
  t.equal(reply.status, 504, 'a kill still running after killTimeoutMs');
  release();
});
