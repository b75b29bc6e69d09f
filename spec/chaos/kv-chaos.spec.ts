/**
 * Chaos test of the kv service, the way Jepsen tests etcd: three `raftchart kv`
 * processes on 127.0.0.1 (Level storage, WebSocket transport), concurrent
 * clients recording every put, get, cas and delete with call and return times
 * (a timeout or a 503 OUTCOME_UNKNOWN is an unknown outcome), and a seeded
 * schedule of nemeses: kill -9 and restart of one node and of all three,
 * SIGSTOP/SIGCONT of the leader, and partitions through TCP proxies placed
 * between the nodes (spec/support/fault-proxy.ts: each node's peers dial
 * proxies that cut — or hold, then deliver late — the links crossing the
 * partition, Raft and forwarded HTTP alike). At the end everything is healed, every key is read once more, each
 * key's history is checked for linearizability (spec/support/linearizability.ts),
 * and every acknowledged write to a write-once key is read back.
 *
 * Default: each nemesis once (about 20–30 s of faults, plus process
 * restarts), bounded below 3 minutes; CHAOS_SECONDS=N adds random nemeses
 * until N seconds of faults and calm; CHAOS_SEED replays a schedule (the
 * clients' interleaving is not replayable). The seed and the schedule are
 * printed first, each nemesis as it happens; a failure prints the offending
 * key's history. A long run needs tap's file timeout raised, e.g.
 * `CHAOS_SECONDS=90 npx tap spec/chaos/kv-chaos.spec.ts --disable-coverage --timeout=600`
 * (about 4 minutes on the 2-core machine: 22,700 operations over 2,578 keys).
 */
import t, { type Test } from 'tap';
import { Agent, request } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom, type SeededRandom } from '../../adapters/random.js';
import { RaftchartCluster, copySources, freePorts, pause, type KvNodeSpec } from '../../bench/kv/clusters.js';
import { FaultNetwork, identifyForwardedHttp, identifyWebSocketHello } from '../support/fault-proxy.js';
import { checkKv, type KvOp, type KvValue } from '../support/linearizability.js';

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 20);
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
const CLIENTS = 8;
const ACTIVE_KEYS = 4;
const OPS_PER_KEY = 50;
const CLIENT_TIMEOUT_MS = 4000;
const IDS = ['n1', 'n2', 'n3'];

type Nemesis = 'kill-one' | 'kill-all' | 'pause-leader' | 'partition-leader' | 'partition-one';
const NEMESES: readonly Nemesis[] = ['kill-one', 'kill-all', 'pause-leader', 'partition-leader', 'partition-one'];

interface Step {
  readonly nemesis: Nemesis;
  /** Seconds the fault lasts. */
  readonly hold: number;
  /** Seconds of calm after healing. */
  readonly calm: number;
}

/** A seeded schedule: every nemesis once (shuffled), then random ones, filling `seconds`. */
function schedule(random: SeededRandom, seconds: number): Step[] {
  const order = [...NEMESES];
  for (let i = order.length - 1; i > 0; i--) {
    const j = random.int(0, i + 1);
    [order[i], order[j]] = [order[j] as Nemesis, order[i] as Nemesis];
  }
  const steps: Step[] = [];
  let total = 0;
  while (steps.length < order.length || total < seconds) {
    const nemesis = steps.length < order.length ? (order[steps.length] as Nemesis) : random.pick(NEMESES);
    const step = { nemesis, hold: random.int(2, 5), calm: random.int(2, 4) };
    steps.push(step);
    total += step.hold + step.calm;
  }
  return steps;
}

/** One HTTP exchange: status and body, or an error (with `sent`: whether the request may have reached the node). */
type Exchange = { readonly status: number; readonly body: string } | { readonly error: string; readonly sent: boolean };

function exchange(agent: Agent, url: string, method: string, body?: string): Promise<Exchange> {
  return new Promise((resolve) => {
    let sent = false;
    const req = request(url, { method, agent, timeout: CLIENT_TIMEOUT_MS }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', (e) => resolve({ error: String(e), sent: true }));
    });
    req.on('socket', (socket) => {
      // A reused keep-alive socket is connected already: the request may be sent.
      if (!socket.connecting) sent = true;
      else socket.once('connect', () => (sent = true));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? String(e), sent: sent && e.code !== 'ECONNREFUSED' }));
    req.end(body);
  });
}

const errorCode = (body: string): string | null => {
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    return null;
  }
};

/** How a write ended: applied, not applied (leave it out of the history), or unknown. */
function writeOutcome(x: Exchange, okStatuses: readonly number[]): 'ok' | 'fail' | 'none' | 'unknown' {
  if ('error' in x) return x.sent ? 'unknown' : 'none';
  if (okStatuses.includes(x.status)) return 'ok';
  if (x.status === 409) return 'fail';
  const code = errorCode(x.body);
  // Documented as "not applied" by examples/kv/server.ts.
  if (x.status === 503 && code === 'UNAVAILABLE') return 'none';
  if (x.status >= 500) return 'unknown';
  throw new Error(`unexpected answer ${x.status}: ${x.body}`);
}

interface Workload {
  readonly history: KvOp[];
  /** Write-once keys whose put was acknowledged, with their values. */
  readonly acked: Map<string, string>;
  readonly counts: Record<string, number>;
  stop(): Promise<void>;
}

/** Concurrent clients over a rotating set of keys, each key retired after OPS_PER_KEY operations. */
function startWorkload(urls: readonly string[], random: SeededRandom, t0: number): Workload {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const history: KvOp[] = [];
  const acked = new Map<string, string>();
  const counts: Record<string, number> = { ok: 0, fail: 0, unknown: 0, none: 0, reads: 0, readErrors: 0 };
  const active: { key: string; ops: number }[] = [];
  let nextKey = 0;
  const freshKey = (): { key: string; ops: number } => ({ key: `k${nextKey++}`, ops: 0 });
  for (let i = 0; i < ACTIVE_KEYS; i++) active.push(freshKey());
  const now = (): number => performance.now() - t0;
  let running = true;

  const client = async (c: number): Promise<void> => {
    const lastSeen = new Map<string, KvValue>();
    let seq = 0;
    let once = 0;
    while (running) {
      const url = random.pick(urls);
      const slot = random.int(0, active.length);
      const entry = active[slot] as { key: string; ops: number };
      if (++entry.ops >= OPS_PER_KEY) active[slot] = freshKey();
      const key = entry.key;
      const r = random.next();
      const call = now();
      if (r < 0.1) {
        // Write-once key: its acknowledged value must survive everything.
        const k = `once-${c}-${once++}`;
        const value = `${c}:${seq++}`;
        const x = await exchange(agent, `${url}/kv/${k}`, 'PUT', value);
        const out = writeOutcome(x, [200]);
        counts[out] = (counts[out] ?? 0) + 1;
        if (out === 'ok') acked.set(k, value);
        if (out !== 'none') history.push({ f: 'put', key: k, value, call, return: out === 'unknown' ? Infinity : now(), client: c });
      } else if (r < 0.45) {
        const x = await exchange(agent, `${url}/kv/${key}`, 'GET');
        const ret = now();
        if ('status' in x && (x.status === 200 || (x.status === 404 && errorCode(x.body) === 'KEY_NOT_FOUND'))) {
          const result = x.status === 200 ? x.body : null;
          lastSeen.set(key, result);
          history.push({ f: 'get', key, result, call, return: ret, client: c });
          counts['reads'] = (counts['reads'] ?? 0) + 1;
        } else counts['readErrors'] = (counts['readErrors'] ?? 0) + 1;
      } else if (r < 0.75) {
        const value = `${c}:${seq++}`;
        const x = await exchange(agent, `${url}/kv/${key}`, 'PUT', value);
        const out = writeOutcome(x, [200]);
        counts[out] = (counts[out] ?? 0) + 1;
        if (out === 'ok') lastSeen.set(key, value);
        if (out !== 'none') history.push({ f: 'put', key, value, call, return: out === 'unknown' ? Infinity : now(), client: c });
      } else if (r < 0.95) {
        const value = `${c}:${seq++}`;
        const expect = lastSeen.get(key) ?? null;
        const x = await exchange(agent, `${url}/kv/${key}/cas`, 'POST', JSON.stringify({ expect, value }));
        const out = writeOutcome(x, [200]);
        counts[out] = (counts[out] ?? 0) + 1;
        if (out === 'ok') lastSeen.set(key, value);
        if (out === 'ok' || out === 'fail') history.push({ f: 'cas', key, expect, value, result: out, call, return: now(), client: c });
        else if (out === 'unknown') history.push({ f: 'cas', key, expect, value, call, return: Infinity, client: c });
      } else {
        const x = await exchange(agent, `${url}/kv/${key}`, 'DELETE');
        const out = writeOutcome(x, [200]);
        counts[out] = (counts[out] ?? 0) + 1;
        if (out === 'ok') lastSeen.set(key, null);
        if (out !== 'none') history.push({ f: 'delete', key, call, return: out === 'unknown' ? Infinity : now(), client: c });
      }
      // A refused connection (node down) answers at once: do not spin.
      if (now() - call < 2) await pause(50);
    }
  };
  const done = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  return {
    history,
    acked,
    counts,
    async stop() {
      running = false;
      await done;
      agent.destroy();
    },
  };
}

/** A linearizable GET with retries until `deadline` (ms, performance.now()); undefined if none answered. */
async function finalRead(agent: Agent, urls: readonly string[], key: string, deadline: number): Promise<{ result: KvValue; call: number; ret: number } | undefined> {
  for (let i = 0; performance.now() < deadline; i++) {
    const call = performance.now();
    const x = await exchange(agent, `${urls[i % urls.length] as string}/kv/${key}`, 'GET');
    if ('status' in x && x.status === 200) return { result: x.body, call, ret: performance.now() };
    if ('status' in x && x.status === 404 && errorCode(x.body) === 'KEY_NOT_FOUND') return { result: null, call, ret: performance.now() };
    await pause(100);
  }
  return undefined;
}

/**
 * The history with one final read replaced by a value overwritten before it: an acknowledged put
 * P followed (after P returned) by an acknowledged put Q of another value, both returned before
 * the final read was called. Undefined when no key has such a pair.
 */
function staleFinalRead(history: readonly KvOp[]): { key: string; history: KvOp[] } | undefined {
  for (const [i, read] of history.entries()) {
    if (read.f !== 'get' || read.client !== 'final') continue;
    const puts = history.filter((op): op is KvOp & { f: 'put' } => op.f === 'put' && op.key === read.key && op.return < read.call);
    const p = puts.find((a) => puts.some((b) => a.return < b.call && b.value !== a.value));
    if (p === undefined) continue;
    return { key: read.key, history: history.map((op, j) => (j === i ? { ...read, result: p.value } : op)) };
  }
  return undefined;
}

async function setup(t: Test): Promise<{ cluster: RaftchartCluster; net: FaultNetwork }> {
  const root = await mkdtemp(join(tmpdir(), 'raftchart-chaos-'));
  const ports = await freePorts(12);
  const nodes: KvNodeSpec[] = IDS.map((id, i) => ({
    id,
    raftPort: ports[4 * i] as number,
    httpPort: ports[4 * i + 1] as number,
    peerRaftPort: ports[4 * i + 2] as number,
    peerHttpPort: ports[4 * i + 3] as number,
  }));
  const net = new FaultNetwork();
  for (const n of nodes) {
    await net.proxy(n.id, n.peerRaftPort as number, n.raftPort, identifyWebSocketHello);
    await net.proxy(n.id, n.peerHttpPort as number, n.httpPort, identifyForwardedHttp);
  }
  const cluster = new RaftchartCluster(nodes, root, ['--request-timeout-ms', '3000']);
  // The nodes run a copy of the sources taken now: every restart runs the same code.
  cluster.cli = await copySources(join(root, 'src'));
  cluster.cwd = join(root, 'src');
  t.teardown(async () => {
    await cluster.stop();
    await net.close();
    await rm(root, { recursive: true, force: true });
  });
  return { cluster, net };
}

/** A client WebSocket frame as the `ws` dialer sends it: masked text. */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const mask = Buffer.from([1, 2, 3, 4]);
  const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
  return Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ (mask[i & 3] as number)))]);
}

t.test('the fault proxy learns who dials and cuts links across the partition', async (t) => {
  t.equal(identifyWebSocketHello(Buffer.from('GET / HTTP/1.1\r\nHost: x')), 0, 'nothing forwarded before the upgrade request is complete');
  const upgrade = Buffer.from('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n');
  t.equal(identifyWebSocketHello(upgrade), upgrade.length, 'the upgrade request is forwarded');
  const hello = maskedTextFrame(JSON.stringify({ type: 'hello', id: 'n2', nonce: 'x'.repeat(200) }));
  t.equal(identifyWebSocketHello(Buffer.concat([upgrade, hello.subarray(0, 10)])), upgrade.length, 'a partial frame waits');
  t.equal(identifyWebSocketHello(Buffer.concat([upgrade, hello])), 'n2', 'the hello names the dialer (16-bit length)');
  t.equal(identifyWebSocketHello(Buffer.concat([upgrade, maskedTextFrame('{"type":"hello","id":"n3"}')])), 'n3', 'short frame');
  t.equal(identifyWebSocketHello(Buffer.concat([upgrade, maskedTextFrame('not json')])), null, 'garbage: unknown for good');
  t.equal(identifyForwardedHttp(Buffer.from('PUT /kv/a HTTP/1.1\r\nX-Raftchart-Forwarded-By: n1\r\n\r\nbody')), 'n1');
  t.equal(identifyForwardedHttp(Buffer.from('PUT /kv/a HTTP/1.1\r\nHost: x\r\n\r\n')), null, 'a client request is never cut');
  t.equal(identifyForwardedHttp(Buffer.from('PUT /kv/a HTTP/1.1\r\nHo')), 0);

  // An echo server behind a proxy for node "t"; dialers announce themselves as HTTP forwards.
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const [proxyPort] = await freePorts(1);
  const net = new FaultNetwork();
  await net.proxy('t', proxyPort as number, (echo.address() as { port: number }).port, identifyForwardedHttp);
  t.teardown(async () => {
    await net.close();
    await new Promise((r) => echo.close(r));
  });
  const dial = (from: string): Promise<{ socket: Socket; echoed: Promise<string>; closed: Promise<void> }> =>
    new Promise((resolve, reject) => {
      const socket = connect(proxyPort as number, '127.0.0.1', () => {
        let got = '';
        const echoed = new Promise<string>((r) => socket.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.includes('\r\n\r\n')) r(got);
        }));
        const closed = new Promise<void>((r) => socket.on('close', () => r()));
        socket.write(`GET / HTTP/1.1\r\nx-raftchart-forwarded-by: ${from}\r\n\r\n`);
        resolve({ socket, echoed, closed });
      });
      socket.on('error', reject);
    });
  const a = await dial('a');
  t.match(await a.echoed, 'x-raftchart-forwarded-by: a', 'bytes flow while healed');
  net.partition([['a'], ['t', 'b']]);
  await a.closed;
  t.equal(net.cuts, 1, 'the open link from a is cut by the partition');
  const again = await dial('a');
  await again.closed;
  t.equal(net.cuts, 2, 'a new link from a is cut once it names itself');
  const b = await dial('b');
  t.match(await b.echoed, 'forwarded-by: b', 'b, on the same side, still gets through');
  net.heal();
  const healed = await dial('a');
  t.match(await healed.echoed, 'forwarded-by: a', 'after healing a gets through again');
  b.socket.destroy();

  // Hold mode: the link stays open, its bytes wait, and arrive after healing.
  let heard = '';
  healed.socket.on('data', (d: Buffer) => (heard += d.toString()));
  net.partition([['a'], ['t', 'b']], 'hold');
  t.equal(net.holds, 1, 'the open link from a is held');
  healed.socket.write('ping from a');
  const b2 = await dial('b');
  t.match(await b2.echoed, 'forwarded-by: b', 'b gets through meanwhile');
  t.notMatch(heard, 'ping from a', 'what a sent is held');
  const delivered = new Promise<void>((r) => healed.socket.on('data', () => heard.includes('ping from a') && r()));
  net.heal();
  await delivered;
  t.match(heard, 'ping from a', 'and delivered after healing');
  t.equal(net.cuts, 2, 'nothing was cut in hold mode');
  b2.socket.destroy();
  healed.socket.destroy();
});

t.test('kv service under kill -9, SIGSTOP and partitions stays linearizable and loses no acknowledged write', async (t) => {
  const random = seededRandom(SEED);
  const steps = schedule(random, SECONDS);
  t.comment(`chaos seed ${SEED} (replay: CHAOS_SEED=${SEED} CHAOS_SECONDS=${SECONDS})`);
  t.comment(`schedule: ${steps.map((s) => `${s.nemesis} ${s.hold}s + calm ${s.calm}s`).join(', ')}`);
  const { cluster, net } = await setup(t);
  await cluster.start(90_000);

  const t0 = performance.now();
  const urls = cluster.members.map((m) => m.url);
  const workload = startWorkload(urls, random.fork(), t0);
  const log = (what: string): void => {
    t.comment(`${((performance.now() - t0) / 1000).toFixed(1)}s ${what}`);
  };
  const leaderOrAny = async (): Promise<string> => {
    try {
      return (await cluster.leader(5000)).id;
    } catch {
      return random.pick(IDS);
    }
  };
  /** Restarts a node; a failed start (a port taken meanwhile by another process) is logged and tried once more. */
  const restart = async (id: string): Promise<void> => {
    try {
      await cluster.restart(id, 60_000);
    } catch (error) {
      log(`restart of ${id} failed, trying again: ${String(error).slice(0, 1500)}`);
      await pause(1000);
      await cluster.restart(id, 60_000);
    }
  };
  const done = new Set<Nemesis>();
  try {
    await pause(2000);
    for (const step of steps) {
      const holdMs = step.hold * 1000;
      switch (step.nemesis) {
        case 'kill-one': {
          const victim = random.pick(IDS);
          log(`kill -9 ${victim}`);
          await cluster.kill(victim);
          await pause(holdMs);
          log(`restart ${victim}`);
          await restart(victim);
          break;
        }
        case 'kill-all': {
          log('kill -9 n1 n2 n3');
          await Promise.all(IDS.map((id) => cluster.kill(id)));
          await pause(Math.min(holdMs, 2000));
          log('restart n1 n2 n3');
          await Promise.all(IDS.map((id) => restart(id)));
          break;
        }
        case 'pause-leader': {
          const leader = await leaderOrAny();
          log(`SIGSTOP ${leader}`);
          cluster.freeze(leader);
          await pause(holdMs);
          log(`SIGCONT ${leader}`);
          cluster.thaw(leader);
          break;
        }
        case 'partition-leader':
        case 'partition-one': {
          const alone = step.nemesis === 'partition-leader' ? await leaderOrAny() : random.pick(IDS);
          const mode = random.chance(0.5) ? 'drop' : 'hold';
          log(`partition (${mode}) ${alone} | ${IDS.filter((id) => id !== alone).join(' ')}`);
          net.partition([[alone], IDS.filter((id) => id !== alone)], mode);
          await pause(holdMs);
          log('heal');
          net.heal();
          break;
        }
      }
      done.add(step.nemesis);
      await pause(step.calm * 1000);
    }
  } finally {
    net.heal();
    for (const id of IDS) cluster.thaw(id);
    await workload.stop();
  }
  log('load stopped');
  for (const m of cluster.members) if (m.child === null) await restart(m.id);
  await cluster.leader(30_000);

  // One more read of every key, after healing: a lost write shows up here.
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const keys = [...new Set(workload.history.map((op) => op.key))];
  const deadline = performance.now() + 60_000;
  const finals = new Map<string, KvValue>();
  const unread: string[] = [];
  let k = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (k < keys.length) {
      const key = keys[k++] as string;
      const r = await finalRead(agent, urls, key, deadline);
      if (r === undefined) unread.push(key);
      else {
        finals.set(key, r.result);
        workload.history.push({ f: 'get', key, result: r.result, call: r.call - t0, return: r.ret - t0, client: 'final' });
      }
    }
  }));
  agent.destroy();
  log(`final reads of ${keys.length} keys`);
  const c = workload.counts;
  t.comment(`operations: ${workload.history.length} recorded over ${keys.length} keys; writes ok ${c['ok']}, cas failed ${c['fail']}, unknown ${c['unknown']}, not applied ${c['none']}; reads ${c['reads']} (${c['readErrors']} refused); connections cut by partitions: ${net.cuts}, held: ${net.holds}`);

  t.same([...done].sort(), [...NEMESES].sort(), 'every nemesis ran');
  t.same(unread, [], 'every key could be read after healing');
  t.ok((c['ok'] ?? 0) > 100, `enough acknowledged writes to mean something (${c['ok']})`);
  t.ok((c['reads'] ?? 0) > 100, `enough reads to mean something (${c['reads']})`);
  t.ok(net.cuts + net.holds > 0, 'the partitions cut or held connections');

  const lost = [...workload.acked].filter(([key, value]) => finals.get(key) !== value);
  t.same(lost.map(([key, value]) => `${key}=${value} read ${JSON.stringify(finals.get(key))}`), [], `every acknowledged write-once put (${workload.acked.size}) is there`);

  // The history is rich enough to catch a lost write: a final read turned stale must be refused.
  const stale = staleFinalRead(workload.history);
  t.ok(stale !== undefined, 'some key has two acknowledged puts in sequence before its final read');
  if (stale !== undefined) t.equal(checkKv(stale.history, { timeoutMs: 30_000 }).result, 'illegal', `a stale final read of ${stale.key} is refused`);

  const checked = checkKv(workload.history, { timeoutMs: 60_000 });
  t.equal(checked.result, 'ok', checked.result === 'ok' ? `linearizable (${checked.keys} keys, ${checked.steps} search steps)` : `seed ${SEED}: ${checked.explanation}`);
});
