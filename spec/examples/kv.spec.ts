/**
 * The kv service: the map state machine (commands, snapshot/restore) as pure
 * tables, then the HTTP API on an in-process three-node cluster (MemoryNetwork
 * + MemoryStorage for Raft, real HTTP on 127.0.0.1). Waits are driven by the
 * nodes' leader$/role$ events with deadlines; nothing sleeps.
 */
import t, { type Test } from 'tap';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { CodecError, MemoryNetwork, MemoryStorage } from '../../index.js';
import { KvStore, decodeCommand, encodeCommand, type KvCommand } from '../../examples/kv/store.js';
import { startKvNode, type KvNode } from '../../examples/kv/server.js';
import { freePorts, deadline } from '../../bench/cluster/harness.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

async function* chunksOf(...parts: Uint8Array[]): AsyncIterable<Uint8Array> {
  yield* parts;
}

async function collect(s: Uint8Array | AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  if (s instanceof Uint8Array) return [s];
  const out: Uint8Array[] = [];
  for await (const c of s) out.push(c);
  return out;
}

t.test('commands encode compactly and decode back', async (t) => {
  const cases: KvCommand[] = [
    { op: 'put', key: 'a', value: bytes('1') },
    { op: 'put', key: 'ключ/✓', value: new Uint8Array(0) },
    { op: 'delete', key: 'a' },
    { op: 'cas', key: 'k', expect: null, value: bytes('v') },
    { op: 'cas', key: 'k', expect: bytes('old'), value: bytes('new') },
    { op: 'cas', key: 'k', expect: new Uint8Array(0), value: new Uint8Array(0) },
  ];
  for (const c of cases) t.same(decodeCommand(encodeCommand(c)), c, `${c.op} ${c.key}`);
  t.equal(encodeCommand({ op: 'put', key: 'a', value: bytes('1') }).byteLength, 7, 'put a=1 is 7 bytes (op, u32 length, key, value)');
  const bad: [string, Uint8Array][] = [
    ['short', new Uint8Array([1, 0, 0])],
    ['key overrun', new Uint8Array([1, 0, 0, 0, 9, 97])],
    ['unknown op', new Uint8Array([9, 0, 0, 0, 1, 97])],
    ['delete with trailing bytes', new Uint8Array([2, 0, 0, 0, 1, 97, 1])],
    ['cas without flag', new Uint8Array([3, 0, 0, 0, 1, 97])],
    ['cas expect overrun', new Uint8Array([3, 0, 0, 0, 1, 97, 1, 0, 0, 0, 5, 1])],
    ['key not UTF-8', new Uint8Array([1, 0, 0, 0, 1, 0xff])],
  ];
  for (const [name, b] of bad) t.throws(() => decodeCommand(b), CodecError, name);
});

t.test('apply: put, delete, cas, and entries that are not commands', async (t) => {
  const store = new KvStore();
  let index = 0;
  const apply = (c: KvCommand | Uint8Array) => store.apply({ index: ++index, term: 1, data: c instanceof Uint8Array ? c : encodeCommand(c) });
  t.same(apply({ op: 'put', key: 'a', value: bytes('1') }), { op: 'put' });
  t.same(dec.decode(store.get('a')), '1');
  t.same(apply({ op: 'cas', key: 'a', expect: bytes('2'), value: bytes('3') }), { op: 'cas', ok: false, current: bytes('1') }, 'cas mismatch');
  t.same(apply({ op: 'cas', key: 'a', expect: bytes('10'), value: bytes('3') }), { op: 'cas', ok: false, current: bytes('1') }, 'cas length mismatch');
  t.same(apply({ op: 'cas', key: 'a', expect: null, value: bytes('3') }), { op: 'cas', ok: false, current: bytes('1') }, 'cas expecting absent on a present key');
  t.same(apply({ op: 'cas', key: 'a', expect: bytes('1'), value: bytes('3') }), { op: 'cas', ok: true, current: bytes('1') }, 'cas match');
  t.same(apply({ op: 'cas', key: 'b', expect: bytes('1'), value: bytes('x') }), { op: 'cas', ok: false, current: null }, 'cas on an absent key');
  t.same(apply({ op: 'cas', key: 'b', expect: null, value: bytes('x') }), { op: 'cas', ok: true, current: null }, 'cas creating a key');
  t.same(apply({ op: 'delete', key: 'b' }), { op: 'delete', existed: true });
  t.same(apply({ op: 'delete', key: 'b' }), { op: 'delete', existed: false });
  const invalid = apply(bytes('value-17'));
  t.equal(invalid.op, 'invalid', 'a foreign entry is reported, not thrown');
  t.equal(store.appliedIndex, index, 'appliedIndex follows every entry, invalid ones too');
  t.equal(store.size, 1);
  t.same([...store.entries()].map(([k, v]) => [k, dec.decode(v)]), [['a', '3']]);
});

t.test('snapshot and restore round trip, small and chunked', async (t) => {
  const store = new KvStore();
  const empty = new KvStore();
  const restoredEmpty = new KvStore();
  restoredEmpty.execute({ op: 'put', key: 'stale', value: bytes('x') });
  await restoredEmpty.restore(chunksOf(...(await collect(await empty.snapshot()))));
  t.equal(restoredEmpty.size, 0, 'restoring an empty snapshot clears the map');

  store.execute({ op: 'put', key: 'a', value: bytes('1') });
  store.execute({ op: 'put', key: 'ü', value: new Uint8Array(0) });
  const small = await store.snapshot();
  t.ok(small instanceof Uint8Array, 'a small map is one chunk');
  const copy = new KvStore();
  await copy.restore(chunksOf(small as Uint8Array));
  t.same([...copy.entries()], [...store.entries()]);

  const big = new KvStore();
  const value = new Uint8Array(300 * 1024).fill(7);
  for (let i = 0; i < 10; i++) big.execute({ op: 'put', key: `k${i}`, value });
  const snap = await big.snapshot();
  big.execute({ op: 'put', key: 'after', value: bytes('later') });
  const chunks = await collect(snap);
  t.ok(chunks.length > 1, `a 3 MB map is cut into chunks (${chunks.length})`);
  // Re-split at odd boundaries: restore must not depend on where chunks end.
  const all = Buffer.concat(chunks);
  const odd = [all.subarray(0, 3), all.subarray(3, 1000), all.subarray(1000)];
  const again = new KvStore();
  await again.restore(chunksOf(...odd), { index: 42, term: 3, configuration: { servers: [] }, configurationIndex: 1, size: all.length, checksum: 0, chunks: 3 });
  t.equal(again.size, 10, 'the snapshot was taken before the later put');
  t.equal(again.appliedIndex, 42, "appliedIndex is the snapshot's index after a restore");
  t.same(again.get('k9'), value);

  const bad: [string, Uint8Array][] = [
    ['bad magic', bytes('XXXX\x01\0\0\0\0')],
    ['bad version', new Uint8Array([0x52, 0x43, 0x4b, 0x56, 9, 0, 0, 0, 0])],
    ['truncated key length', new Uint8Array([0x52, 0x43, 0x4b, 0x56, 1, 0, 0, 0, 1, 0])],
    ['truncated key', new Uint8Array([0x52, 0x43, 0x4b, 0x56, 1, 0, 0, 0, 1, 0, 0, 0, 5, 97])],
    ['key not UTF-8', new Uint8Array([0x52, 0x43, 0x4b, 0x56, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0])],
    ['trailing bytes', new Uint8Array([0x52, 0x43, 0x4b, 0x56, 1, 0, 0, 0, 0, 1])],
  ];
  for (const [name, b] of bad) {
    const s = new KvStore();
    s.execute({ op: 'put', key: 'keep', value: bytes('me') });
    await t.rejects(s.restore(chunksOf(b)), CodecError, name);
    t.equal(dec.decode(s.get('keep')), 'me', `${name}: the map is unchanged`);
  }
});

// ---- HTTP on an in-process cluster ----------------------------------------------------------

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: { error?: { code?: string; message?: string; leaderId?: string | null; current?: string | null }; index?: number; [k: string]: unknown };
}

/** One HTTP request with node:http (no keep-alive), bounded by 15 s. */
function http(address: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}, chunked = false): Promise<Res> {
  const [host, port] = address.split(':') as [string, string];
  return deadline(new Promise<Res>((resolve, reject) => {
    const req = request({ host, port: Number(port), method, path, headers: { connection: 'close', ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: Res['json'] = {};
        try {
          json = JSON.parse(text) as Res['json'];
        } catch {
          // a value, not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (body !== undefined && chunked) {
      const b = Buffer.from(body);
      req.write(b.subarray(0, 10));
      req.end(b.subarray(10));
    } else req.end(body);
  }), 15_000, `${method} ${path} at ${address}`);
}

interface Cluster {
  network: MemoryNetwork;
  kvs: KvNode[];
  leader: () => Promise<KvNode>;
}

const ids = ['n1', 'n2', 'n3'];

async function startCluster(t: Test, opts: { maxValueBytes?: number; requestTimeoutMs?: number } = {}): Promise<Cluster> {
  const network = new MemoryNetwork();
  const ports = await freePorts(3);
  const peers = ids.map((id, i) => ({ id, raft: `${id}.invalid:7000`, http: `127.0.0.1:${ports[i]}` }));
  const kvs: KvNode[] = [];
  for (const id of ids) {
    kvs.push(await startKvNode({ id, peers, storage: new MemoryStorage(), transport: network.transport(id), ...opts }));
  }
  t.teardown(() => Promise.all(kvs.map((k) => k.close())).then(() => undefined));
  /** Resolves when one node leads and every connected node follows it. */
  const leader = (): Promise<KvNode> =>
    deadline(new Promise<KvNode>((resolve) => {
      const subs: { unsubscribe(): void }[] = [];
      let done = false;
      const check = (): void => {
        if (done) return;
        const l = kvs.find((k) => k.node.status().role === 'leader');
        if (l === undefined) return;
        const reachable = kvs.filter((k) => network.canReach(l.node.id, k.node.id) || k === l);
        if (reachable.every((k) => k.node.status().leaderId === l.node.id)) {
          done = true;
          queueMicrotask(() => subs.forEach((s) => s.unsubscribe()));
          resolve(l);
        }
      };
      for (const k of kvs) {
        subs.push(k.node.leader$.subscribe(check), k.node.role$.subscribe(check));
      }
    }), 20_000, 'a leader that every reachable node follows');
  return { network, kvs, leader };
}

t.test('HTTP API on three nodes', async (t) => {
  const c = await startCluster(t, { maxValueBytes: 1024 });
  const leader = await c.leader();
  const followers = c.kvs.filter((k) => k !== leader);
  const [f1, f2] = followers as [KvNode, KvNode];
  t.match(leader.httpAddress, /^127\.0\.0\.1:\d+$/, 'httpAddress is host:port');

  t.test('a write at a follower is forwarded to the leader', async (t) => {
    const put = await http(f1.httpAddress, 'PUT', '/kv/greeting', 'hello');
    t.equal(put.status, 200);
    t.type(put.json.index, 'number');
    t.equal(put.headers['content-type'], 'application/json');
    for (const k of c.kvs) {
      const get = await http(k.httpAddress, 'GET', '/kv/greeting');
      t.equal(get.status, 200, `linearizable GET at ${k.node.id}`);
      t.equal(get.text, 'hello');
      t.equal(get.headers['content-type'], 'application/octet-stream');
      t.ok(Number(get.headers['x-raft-index']) >= (put.json.index as number), 'the read index covers the write');
    }
    const key = encodeURIComponent('a key/with ✓');
    t.equal((await http(f2.httpAddress, 'PUT', `/kv/${key}`, Buffer.from([0, 255, 1]))).status, 200, 'any bytes as a value, any UTF-8 key');
    for (const k of c.kvs) {
      t.equal((await http(k.httpAddress, 'GET', `/kv/${key}`)).status, 200, `readable at ${k.node.id}`);
      t.same(k.store.get('a key/with ✓'), new Uint8Array([0, 255, 1]), `bytes kept as sent at ${k.node.id}`);
    }
  });

  t.test('delete and missing keys', async (t) => {
    t.equal((await http(leader.httpAddress, 'PUT', '/kv/gone', 'x')).status, 200);
    const del = await http(f1.httpAddress, 'DELETE', '/kv/gone');
    t.equal(del.status, 200);
    t.equal(del.json['deleted'], true);
    const again = await http(f2.httpAddress, 'DELETE', '/kv/gone');
    t.equal(again.status, 200);
    t.equal(again.json['deleted'], false, 'deleting a missing key is fine and says so');
    const get = await http(f2.httpAddress, 'GET', '/kv/gone');
    t.equal(get.status, 404);
    t.equal(get.json.error?.code, 'KEY_NOT_FOUND');
  });

  t.test('compare-and-set', async (t) => {
    const create = await http(f1.httpAddress, 'POST', '/kv/counter/cas', JSON.stringify({ expect: null, value: '1' }));
    t.equal(create.status, 200, 'expect null creates an absent key');
    const swap = await http(f2.httpAddress, 'POST', '/kv/counter/cas', JSON.stringify({ expect: '1', value: '2' }));
    t.equal(swap.status, 200);
    const lost = await http(leader.httpAddress, 'POST', '/kv/counter/cas', JSON.stringify({ expect: '1', value: '3' }));
    t.equal(lost.status, 409);
    t.equal(lost.json.error?.code, 'CAS_FAILED');
    t.equal(lost.json.error?.current, '2', 'a failed CAS says what it found');
    const absent = await http(f1.httpAddress, 'POST', '/kv/nothing/cas', JSON.stringify({ expect: 'x', value: 'y' }));
    t.equal(absent.status, 409);
    t.equal(absent.json.error?.current, null);
    t.equal((await http(f1.httpAddress, 'GET', '/kv/counter')).text, '2');
  });

  t.test('bad requests: 400, 404, 405, 413, all JSON with a code', async (t) => {
    const cases: [string, string, string | undefined, number, string][] = [
      ['GET', '/kv/%ZZ', undefined, 400, 'BAD_KEY'],
      ['PUT', '/kv/', 'x', 400, 'BAD_KEY'],
      ['PUT', `/kv/${'k'.repeat(1025)}`, 'x', 400, 'BAD_KEY'],
      ['PUT', '/kv/a%01b', 'x', 400, 'BAD_KEY'],
      ['POST', '/kv/a/cas', '{not json', 400, 'BAD_JSON'],
      ['POST', '/kv/a/cas', '{"value":"v"}', 400, 'BAD_REQUEST'],
      ['POST', '/kv/a/cas', '{"expect":1,"value":"v"}', 400, 'BAD_REQUEST'],
      ['POST', '/kv/a/cas', '[]', 400, 'BAD_REQUEST'],
      ['POST', '/kv/a/cas', JSON.stringify({ expect: null, value: 'v'.repeat(1025) }), 413, 'PAYLOAD_TOO_LARGE'],
      ['GET', '/nope', undefined, 404, 'NOT_FOUND'],
      ['GET', '/kv/a/b', undefined, 404, 'NOT_FOUND'],
      ['GET', '/', undefined, 404, 'NOT_FOUND'],
      ['PATCH', '/kv/a', 'x', 405, 'METHOD_NOT_ALLOWED'],
      ['POST', '/kv/a', 'x', 405, 'METHOD_NOT_ALLOWED'],
      ['GET', '/kv/a/cas', undefined, 405, 'METHOD_NOT_ALLOWED'],
      ['POST', '/status', undefined, 405, 'METHOD_NOT_ALLOWED'],
      ['DELETE', '/healthz', undefined, 405, 'METHOD_NOT_ALLOWED'],
      ['PUT', '/kv/big', 'v'.repeat(1025), 413, 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await http(f1.httpAddress, method, path, body);
      t.equal(r.status, status, `${method} ${path.slice(0, 40)} → ${status}`);
      t.equal(r.json.error?.code, code, `${method} ${path.slice(0, 40)} → ${code}`);
      t.type(r.json.error?.message, 'string');
    }
    const chunked = await http(f1.httpAddress, 'PUT', '/kv/big', 'v'.repeat(5000), { 'transfer-encoding': 'chunked' }, true);
    t.equal(chunked.status, 413, 'a streamed body over the limit is cut off');
    const allow = await http(f1.httpAddress, 'PATCH', '/kv/a', 'x');
    t.equal(allow.headers['allow'], 'GET, PUT, DELETE', '405 names the allowed methods');
    t.equal((await http(f1.httpAddress, 'GET', '/kv/big')).status, 404, 'nothing over the limit was written');
  });

  t.test('status and healthz', async (t) => {
    const h = await http(f1.httpAddress, 'GET', '/healthz');
    t.equal(h.status, 200);
    t.equal(h.json['ok'], true);
    const s = await http(leader.httpAddress, 'GET', '/status');
    t.equal(s.status, 200);
    t.equal(s.json['role'], 'leader');
    t.equal(s.json['leaderHttp'], leader.httpAddress);
    t.same(Object.keys(s.json['replicas'] as object).sort(), followers.map((f) => f.node.id).sort(), 'replica progress of every follower');
    t.same((s.json['members'] as { http: string }[]).map((m) => m.http).sort(), c.kvs.map((k) => k.httpAddress).sort());
    t.type(s.json['keys'], 'number');
  });

  t.test('a forwarded request that reaches a follower is refused with 421 and the leader', async (t) => {
    const r = await http(f1.httpAddress, 'PUT', '/kv/x', 'y', { 'x-raftchart-forwarded-by': 'test' });
    t.equal(r.status, 421);
    t.equal(r.json.error?.code, 'NOT_LEADER');
    t.equal(r.json.error?.leaderId, leader.node.id);
  });
});

t.test('a stale read answers locally where a linearizable one cannot', async (t) => {
  const c = await startCluster(t, { requestTimeoutMs: 1000 });
  const leader = await c.leader();
  const follower = c.kvs.find((k) => k !== leader) as KvNode;
  t.equal((await http(follower.httpAddress, 'PUT', '/kv/k', 'v1')).status, 200);
  // The follower has applied it once its linearizable read succeeds.
  t.equal((await http(follower.httpAddress, 'GET', '/kv/k')).text, 'v1');
  c.network.disconnect(follower.node.id);
  const stale = await http(follower.httpAddress, 'GET', '/kv/k?stale');
  t.equal(stale.status, 200);
  t.equal(stale.text, 'v1', 'the stale read serves the local copy');
  const lin = await http(follower.httpAddress, 'GET', '/kv/k');
  t.equal(lin.status, 503, 'a linearizable read needs the leader');
  t.match(lin.json.error?.code, /^(TIMEOUT|UNAVAILABLE)$/);
  c.network.connect(follower.node.id);
});

t.test('a write whose outcome is unknown answers 503 OUTCOME_UNKNOWN', async (t) => {
  const c = await startCluster(t, { requestTimeoutMs: 1500 });
  const leader = await c.leader();
  const others = c.kvs.filter((k) => k !== leader).map((k) => k.node.id);
  c.network.partition([leader.node.id], others);
  // The entry is appended on the leader, which can no longer commit it: timeout or step-down.
  const r = await http(leader.httpAddress, 'PUT', '/kv/maybe', 'v');
  t.equal(r.status, 503);
  t.equal(r.json.error?.code, 'OUTCOME_UNKNOWN');
  t.match(r.json.error?.message, /may or may not/);
  c.network.heal();
  const after = await c.leader();
  const read = await http(after.httpAddress, 'GET', '/kv/maybe');
  t.ok(read.status === 200 || read.status === 404, `after healing the write is either there or not (${read.status})`);
});

t.test('with no leader a write is refused as UNAVAILABLE, not applied', async (t) => {
  const c = await startCluster(t, { requestTimeoutMs: 800 });
  await c.leader();
  for (const id of ids) c.network.disconnect(id);
  // Wait until nobody leads or believes in a leader (check-quorum and election timeouts).
  await deadline(new Promise<void>((resolve) => {
    const subs: { unsubscribe(): void }[] = [];
    let done = false;
    const check = (): void => {
      if (!done && c.kvs.every((k) => k.node.status().role !== 'leader' && k.node.status().leaderId === null)) {
        done = true;
        queueMicrotask(() => subs.forEach((s) => s.unsubscribe()));
        resolve();
      }
    };
    for (const k of c.kvs) subs.push(k.node.leader$.subscribe(check), k.node.role$.subscribe(check));
  }), 20_000, 'every node to forget the leader');
  const r = await http((c.kvs[0] as KvNode).httpAddress, 'PUT', '/kv/nope', 'v');
  t.equal(r.status, 503);
  t.equal(r.json.error?.code, 'UNAVAILABLE');
  t.match(r.json.error?.message, /not applied/);
  const del = await http((c.kvs[1] as KvNode).httpAddress, 'DELETE', '/kv/nope');
  t.equal(del.json.error?.code, 'UNAVAILABLE');
  for (const id of ids) c.network.connect(id);
  await c.leader();
  t.equal((await http((c.kvs[2] as KvNode).httpAddress, 'GET', '/kv/nope')).status, 404, 'the refused write never happened');
});

t.test('a write at a follower whose leader is unreachable over HTTP is retried, then refused', async (t) => {
  const network = new MemoryNetwork();
  const ports = await freePorts(3);
  // n3 advertises an HTTP port nobody listens on (it really listens elsewhere):
  // forwarding to it is refused before anything is sent.
  const peers = ids.map((id, i) => ({ id, raft: id, http: `127.0.0.1:${ports[i]}` }));
  const kvs: KvNode[] = [];
  for (const id of ids) {
    kvs.push(await startKvNode({ id, peers, storage: new MemoryStorage(), transport: network.transport(id), requestTimeoutMs: 1000, ...(id === 'n3' ? { httpListen: '127.0.0.1:0' } : {}) }));
  }
  t.teardown(() => Promise.all(kvs.map((k) => k.close())).then(() => undefined));
  const [n1, , n3] = kvs as [KvNode, KvNode, KvNode];
  const leads = (who: string): Promise<void> => deadline(new Promise<void>((resolve) => {
    let done = false;
    const subs = kvs.map((k) => k.node.leader$.subscribe(() => {
      if (!done && n1.node.status().leaderId === who && kvs.some((x) => x.node.id === who && x.node.status().role === 'leader')) {
        done = true;
        queueMicrotask(() => subs.forEach((s) => s.unsubscribe()));
        resolve();
      }
    }));
  }), 20_000, `${who} to lead, as n1 sees it`);
  await deadline(new Promise<void>((resolve) => {
    let done = false;
    const subs = kvs.map((k) => k.node.role$.subscribe((role) => {
      if (!done && role === 'leader') {
        done = true;
        queueMicrotask(() => subs.forEach((s) => s.unsubscribe()));
        resolve();
      }
    }));
  }), 20_000, 'a leader');
  const first = kvs.find((k) => k.node.status().role === 'leader') as KvNode;
  if (first !== n3) await first.node.transferLeadership('n3');
  await leads('n3');
  const r = await http(n1.httpAddress, 'PUT', '/kv/x', 'v');
  t.equal(r.status, 503);
  t.equal(r.json.error?.code, 'UNAVAILABLE', 'connection refused proves the write was not sent');
  t.match(r.json.error?.message, /cannot reach the leader n3/);
  t.equal((await http(n3.httpAddress, 'PUT', '/kv/x', 'v')).status, 200, 'the same write at n3 itself succeeds');

  // Now something answers at n3's advertised address, badly: the outcome of a forwarded write is unknown.
  const fake = createServer();
  let behaviour: 'reset' | 'hang' | 'misdirect' = 'reset';
  const seen: (string | undefined)[] = [];
  fake.on('request', (req: IncomingMessage, res: ServerResponse) => {
    seen.push(req.headers['x-raftchart-forwarded-by'] as string | undefined);
    if (behaviour === 'reset') req.socket.destroy();
    else if (behaviour === 'misdirect') {
      res.writeHead(421, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'NOT_LEADER', message: 'no', leaderId: seen.length % 2 === 0 ? 'n3' : null } }));
    }
    // 'hang': never answers
  });
  await new Promise<void>((resolve) => fake.listen(ports[2], '127.0.0.1', resolve));
  t.teardown(() => {
    fake.closeAllConnections();
    return new Promise((r) => fake.close(r));
  });
  const reset = await http(n1.httpAddress, 'PUT', '/kv/y', 'v');
  t.equal(reset.status, 503);
  t.equal(reset.json.error?.code, 'OUTCOME_UNKNOWN', 'a connection cut after sending: outcome unknown, not retried');
  t.same(seen, ['n1'], 'forwarded once, marked with the forwarding node');
  behaviour = 'hang';
  const hung = await http(n1.httpAddress, 'PUT', '/kv/y', 'v');
  t.equal(hung.json.error?.code, 'OUTCOME_UNKNOWN', 'no answer within the bound: outcome unknown');
  t.match(hung.json.error?.message, /no answer from/);
  behaviour = 'misdirect';
  seen.length = 0;
  let connections = 0;
  fake.on('connection', () => connections++);
  const mis = await http(n1.httpAddress, 'PUT', '/kv/y', 'v');
  t.equal(mis.json.error?.code, 'UNAVAILABLE', 'a node that keeps saying it is not the leader: refused, not applied');
  t.ok(seen.length >= 2 && seen.length <= 16, `retried a bounded number of times (${seen.length})`);
  t.equal(connections, 1, 'the retries reuse one keep-alive connection');
});

t.test('close is idempotent and a closed node refuses connections', async (t) => {
  const network = new MemoryNetwork();
  const kv = await startKvNode({ id: 'solo', peers: [{ id: 'solo', raft: 'solo', http: '127.0.0.1:0' }], storage: new MemoryStorage(), transport: network.transport('solo') });
  const r = await http(kv.httpAddress, 'PUT', '/kv/a', '1');
  t.equal(r.status, 200, 'a cluster of one commits alone');
  await Promise.all([kv.close(), kv.close()]);
  await t.rejects(http(kv.httpAddress, 'GET', '/healthz'), 'the HTTP server is closed');
  await t.rejects(startKvNode({ id: 'x', peers: [], storage: new MemoryStorage(), transport: network.transport('x') }), { code: 'CONFIGURATION' }, 'no HTTP address');
});

t.test('bootstrap never: a node with fresh data waits to be added', async (t) => {
  const network = new MemoryNetwork();
  const kv = await startKvNode({ id: 'late', peers: [{ id: 'late', raft: 'late', http: '127.0.0.1:0' }], storage: new MemoryStorage(), transport: network.transport('late'), bootstrap: 'never', requestTimeoutMs: 300 });
  t.teardown(() => kv.close());
  t.equal(kv.node.status().lastLogIndex, 0, 'nothing was written');
  const r = await http(kv.httpAddress, 'PUT', '/kv/a', '1');
  t.equal(r.json.error?.code, 'UNAVAILABLE');
});

t.test('GET /metrics: Prometheus text with commit latency, batch sizes, replica lag and node gauges', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  for (const k of ['a', 'b', 'c']) t.equal((await http(leader.httpAddress, 'PUT', `/kv/${k}`, 'v')).status, 200);
  const res = await http(leader.httpAddress, 'GET', '/metrics');
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/plain/);
  const value = (name: string): number | undefined => {
    const line = res.text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.split(' ').at(-1));
  };
  t.equal(value('raftchart_commit_latency_seconds_count'), 3, 'one latency per acknowledged write');
  t.ok((value('raftchart_proposal_batch_entries_sum') ?? 0) >= 3);
  t.ok((value('raftchart_append_message_entries_count') ?? 0) > 0);
  t.equal(value('raftchart_is_leader'), 1);
  t.equal(value('raftchart_commit_index'), leader.node.status().commitIndex);
  const lags = res.text.split('\n').filter((l) => l.startsWith('raftchart_replica_lag_entries{'));
  t.equal(lags.length, 2, 'a lag per follower on the leader');
  t.match(res.text, /# TYPE raftchart_leader_changes_total counter/);
  const follower = c.kvs.find((k) => k !== leader) as KvNode;
  const f = await http(follower.httpAddress, 'GET', '/metrics');
  t.notMatch(f.text, /raftchart_replica_lag_entries\{/, 'a follower has no replicas');
  t.match(f.text, /raftchart_is_leader 0/);
  t.equal((await http(leader.httpAddress, 'POST', '/metrics', '')).status, 405);
});
