import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { WebSocket } from 'ws';
import { CODEC_VERSION, encodeFrame } from '../../adapters/codec.js';
import { WebSocketTransport } from '../../adapters/transport/websocket.js';
import type { TransportLogEntry, WebSocketTransportOptions } from '../../adapters/transport/websocket.js';
import type { ConnectionEvent } from '../../adapters/transport/transport.js';
import { ConfigurationError, TransportError } from '../../errors.js';
import type { RaftMessage } from '../../machines/types.js';
import { Inbox, Waitable, probe } from './transport.suite.js';

const SECRET = 'websocket-spec-secret-0123456789';

/** A started transport with its inbox and log. */
interface N {
  id: string;
  tr: WebSocketTransport;
  inbox: Inbox;
  log: Waitable<TransportLogEntry>;
}

async function node(t: Test, id: string, options: Partial<WebSocketTransportOptions> = {}): Promise<N> {
  const log = new Waitable<TransportLogEntry>();
  const inbox = new Inbox();
  const tr = new WebSocketTransport({
    listen: '127.0.0.1:0',
    secret: SECRET,
    reconnect: { initialMs: 20, maxMs: 200 },
    logger: (e) => log.push(e),
    ...options,
  } as WebSocketTransportOptions);
  await tr.start(id, inbox.handler);
  t.teardown(() => tr.stop());
  return { id, tr, inbox, log };
}

function introduce(...nodes: N[]): void {
  const servers = nodes.map((n) => ({ id: n.id, address: n.tr.address() }));
  for (const n of nodes) n.tr.setPeers(servers);
}

const logged = (n: N, re: RegExp, level: TransportLogEntry['level'] = 'error'): Promise<void> =>
  n.log.waitFor((es) => es.some((e) => e.level === level && re.test(e.message)), 10_000, `a ${level} log matching ${re} at ${n.id}`);

const firstLog = (n: N, re: RegExp): TransportLogEntry | undefined => n.log.items.find((e) => re.test(e.message));

const hb = (from: string, to: string, commit = 1): RaftMessage => ({ type: 'heartbeat', term: 1, from, to, commit });

t.test('options are validated; unknown ones are refused', (t) => {
  const base = { listen: '127.0.0.1:0', secret: SECRET };
  const bad: Array<[string, unknown, string]> = [
    ['unknown option', { ...base, compress: true }, 'compress'],
    ['unknown tls option', { ...base, tls: { key: 'k', cert: 'c', passphrase: 'x' } }, 'tls.passphrase'],
    ['unknown reconnect option', { ...base, reconnect: { initialMs: 1, factor: 2 } }, 'reconnect.factor'],
    ['no secret', { listen: '127.0.0.1:0' }, 'secret'],
    ['undefined secret', { listen: '127.0.0.1:0', secret: undefined }, 'secret'],
    ['short secret', { ...base, secret: 'short' }, 'secret'],
    ['insecure and secret', { ...base, insecure: true }, 'insecure'],
    ['listen without port', { ...base, listen: '127.0.0.1' }, 'listen'],
    ['listen port too big', { ...base, listen: '127.0.0.1:70000' }, 'listen'],
    ['empty cluster id', { ...base, clusterId: '' }, 'clusterId'],
    ['tls without cert', { ...base, tls: { key: 'k' } }, 'tls.cert'],
    ['negative high-water mark', { ...base, highWaterMarkBytes: -1 }, 'highWaterMarkBytes'],
    ['tiny max payload', { ...base, maxPayloadBytes: 10 }, 'maxPayloadBytes'],
    ['max below initial backoff', { ...base, reconnect: { initialMs: 100, maxMs: 50 } }, 'reconnect.maxMs'],
    ['logger not a function', { ...base, logger: 'console' }, 'logger'],
  ];
  for (const [name, options, option] of bad) {
    t.throws(() => new WebSocketTransport(options as WebSocketTransportOptions), ConfigurationError, name);
    try {
      new WebSocketTransport(options as WebSocketTransportOptions);
    } catch (err) {
      t.equal((err as ConfigurationError).option, option, `${name} names ${option}`);
    }
  }
  t.doesNotThrow(() => new WebSocketTransport({ listen: '[::1]:0', insecure: true }), 'insecure mode needs no secret');
  t.doesNotThrow(() => new WebSocketTransport({ listen: 'localhost:7001', secret: new Uint8Array(32) }), 'a byte secret');
  t.end();
});

t.test('start refuses a bad id, a second start and a busy port', async (t) => {
  const a = await node(t, 'a');
  await t.rejects(a.tr.start('a', () => {}), ConfigurationError, 'already started');
  const fresh = new WebSocketTransport({ listen: '127.0.0.1:0', secret: SECRET, logger: null });
  await t.rejects(fresh.start('', () => {}), ConfigurationError, 'empty id');
  t.throws(() => fresh.address(), TransportError, 'no address before start');
  const port = new URL(a.tr.address()).port;
  const busy = new WebSocketTransport({ listen: `127.0.0.1:${port}`, secret: SECRET, logger: null });
  await t.rejects(busy.start('b', () => {}), { name: 'TransportError', code: 'TRANSPORT', message: new RegExp(`cannot listen on 127.0.0.1:${port}`) });
  await busy.stop();
  await a.tr.stop();
  await t.rejects(a.tr.start('a', () => {}), { message: /create a new WebSocketTransport/ }, 'no restart after stop');
});

t.test('a wrong secret is refused on both ends; nothing is delivered; both keep running', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b', { secret: 'another-secret-0123456789abcdef' });
  introduce(a, b);
  a.tr.send([hb('a', 'b')]);
  b.tr.send([hb('b', 'a')]);
  await logged(b, /authentication failed: a at .* did not prove the cluster secret \(wrong secret\?\)/);
  await logged(a, /authentication failed: b at .* did not prove the cluster secret|refused the handshake: authentication failed/);
  const entry = firstLog(b, /authentication failed/);
  t.ok(entry?.error instanceof TransportError && entry.error.code === 'TRANSPORT', 'the log carries a TransportError');
  t.ok(a.tr.stats().rejectedHandshakes >= 1 && b.tr.stats().rejectedHandshakes >= 1, 'both count the refusal');
  t.equal(a.tr.stats().handshakes + b.tr.stats().handshakes, 0, 'no handshake completed');
  t.equal(a.tr.stats().connections + b.tr.stats().connections, 0, 'no connection is open');
  // Both still serve peers that know the secret.
  const c = await node(t, 'c');
  introduce(a, c);
  await probe(c.tr, 'c', 'a', a.inbox);
  await probe(a.tr, 'a', 'c', c.inbox);
  t.same(a.inbox.items.filter((m) => m.from === 'b'), [], 'a got nothing from b');
  t.same(b.inbox.items, [], 'b got nothing at all');
});

t.test('a peer of another cluster is refused with an error naming both cluster ids, on both ends', async (t) => {
  const a = await node(t, 'a', { clusterId: 'alpha' });
  const b = await node(t, 'b', { clusterId: 'beta' });
  introduce(a, b);
  for (const n of [a, b]) {
    await logged(n, /cluster mismatch: .*'(alpha|beta)'.*'(alpha|beta)'/);
    const entry = firstLog(n, /cluster mismatch/);
    t.match(entry?.message, /alpha/, `${n.id}'s error names alpha`);
    t.match(entry?.message, /beta/, `${n.id}'s error names beta`);
    t.ok(entry?.error instanceof TransportError, `${n.id} logs a TransportError`);
    t.ok(n.tr.stats().rejectedHandshakes >= 1, `${n.id} counts the refusal`);
  }
  a.tr.send([hb('a', 'b')]);
  t.equal(a.tr.stats().messagesSent, 0, 'nothing can be sent');
  t.same([...a.inbox.items, ...b.inbox.items], [], 'nothing delivered');
});

t.test('an oversized frame closes that connection; the receiver keeps running and accepts later frames', async (t) => {
  const a = await node(t, 'a', { maxPayloadBytes: 4 * 1024 * 1024 });
  const b = await node(t, 'b', { maxPayloadBytes: 64 * 1024 });
  // Only a dials, so the big frame goes on the one connection of the pair (not on a duplicate about to close).
  a.tr.setPeers([{ id: 'b', address: b.tr.address() }]);
  await probe(a.tr, 'a', 'b', b.inbox);
  const big: RaftMessage = {
    type: 'append',
    term: 1,
    from: 'a',
    to: 'b',
    prevLogIndex: 0,
    prevLogTerm: 0,
    leaderCommit: 0,
    entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(200 * 1024) }],
  };
  a.tr.send([big]);
  await logged(b, /exceeds maxPayloadBytes \(65536\); connection closed/, 'warn');
  await logged(a, /exceeded its maximum payload \(code 1009\)/, 'warn');
  t.ok(b.tr.stats().protocolErrors >= 1, 'the receiver counts it');
  await probe(a.tr, 'a', 'b', b.inbox);
  await probe(b.tr, 'b', 'a', a.inbox);
  t.notOk(b.inbox.items.some((m) => m.type === 'append'), 'the oversized append was never delivered');
  t.ok(a.tr.stats().reconnects >= 1, 'the link was re-established');
  // A sender refuses to build a frame over its own limit rather than lose the link.
  const small = await node(t, 'c', { maxPayloadBytes: 64 * 1024 });
  small.tr.setPeers([{ id: 'b', address: b.tr.address() }]);
  await probe(small.tr, 'c', 'b', b.inbox);
  small.tr.send([{ ...big, from: 'c' }, hb('c', 'b', 77)]);
  await b.inbox.waitFor((ms) => ms.some((m) => m.from === 'c' && m.type === 'heartbeat' && m.commit === 77), 10_000, 'the heartbeat batched with a too-large append');
  t.ok(firstLog(small, /dropped a append to b/), 'the unsendable message is logged');
});

/** The handshake of the module documentation, done by hand as a raw client. */
async function rawHandshake(url: string, id: string, secret: string, cluster = 'raftchart'): Promise<{ ws: WebSocket; closed: Promise<number>; serverId: string }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => {});
  const texts = new Waitable<Record<string, string>>();
  ws.on('message', (data, isBinary) => {
    if (!isBinary) texts.push(JSON.parse(String(data)) as Record<string, string>);
  });
  await texts.waitFor((m) => m.length >= 1, 5000, 'challenge');
  const challenge = texts.items[0] as Record<string, string>;
  const clientNonce = randomBytes(32).toString('base64');
  const proof = (role: string): string =>
    createHmac('sha256', secret)
      .update(JSON.stringify(['raftchart-ws/1', role, cluster, id, challenge.id, challenge.nonce, clientNonce]))
      .digest('base64');
  ws.send(JSON.stringify({ type: 'hello', version: 1, cluster, id, boot: 'raw', nonce: clientNonce, proof: proof('client') }));
  await texts.waitFor((m) => m.length >= 2, 5000, 'welcome');
  const welcome = texts.items[1] as Record<string, string>;
  if (welcome.type !== 'welcome' || welcome.proof !== proof('server')) throw new Error(`bad welcome ${JSON.stringify(welcome)}`);
  return { ws, closed, serverId: String(challenge.id) };
}

function rawSocket(url: string): { ws: WebSocket; closed: Promise<number> } {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('error', () => {});
  return { ws, closed: new Promise<number>((resolve) => ws.on('close', (code) => resolve(code))) };
}

t.test('raw clients sending garbage before or after the handshake are dropped and logged; the node keeps running', async (t) => {
  const b = await node(t, 'b', { handshakeTimeoutMs: 300 });
  const url = b.tr.address();

  const binaryFirst = rawSocket(url);
  binaryFirst.ws.on('open', () => binaryFirst.ws.send(randomBytes(64)));
  t.equal(await binaryFirst.closed, 4002, 'binary before the handshake: closed with 4002');
  await logged(b, /sent binary data before completing the handshake/);

  const textFirst = rawSocket(url);
  textFirst.ws.on('open', () => textFirst.ws.send('{not json'));
  t.equal(await textFirst.closed, 4002, 'garbage text before the handshake: closed with 4002');
  await logged(b, /unreadable handshake message/);

  const silent = rawSocket(url);
  t.equal(await silent.closed, 4008, 'a silent client is closed at the handshake timeout');
  await logged(b, /did not complete within 300 ms/);

  // The documented handshake works by hand; a valid frame then goes through.
  const raw = await rawHandshake(url, 'r', SECRET);
  t.equal(raw.serverId, 'b');
  raw.ws.send(encodeFrame([hb('r', 'b', 5), hb('r', 'someone-else', 6), hb('mallory', 'b', 7)]));
  await b.inbox.waitFor((ms) => ms.length >= 1, 5000, 'the raw frame');
  raw.ws.send(Uint8Array.of(CODEC_VERSION, 0, 0, 0, 9, 0xee));
  t.equal(await raw.closed, 4002, 'garbage after the handshake: closed with 4002');
  await logged(b, /undecodable frame from r at .*: message count at offset 1/, 'warn');
  t.same(b.inbox.items, [hb('r', 'b', 5)], 'only the message to b from the authenticated sender was delivered');
  t.equal(b.tr.stats().droppedInbound, 2, 'misaddressed and spoofed messages are dropped and counted');
  const decodeLog = firstLog(b, /undecodable frame/);
  t.equal(decodeLog?.error?.name, 'CodecError', 'the log carries the CodecError');

  const textAfter = await rawHandshake(url, 's', SECRET);
  textAfter.ws.send('hello again');
  t.equal(await textAfter.closed, 4002, 'text after the handshake: closed with 4002');

  const wrong = rawSocket(url);
  wrong.ws.on('message', (data) => {
    const challenge = JSON.parse(String(data)) as { nonce: string };
    wrong.ws.send(JSON.stringify({ type: 'hello', version: 1, cluster: 'raftchart', id: 'w', boot: 'x', nonce: challenge.nonce, proof: 'AAAA' }));
  });
  t.equal(await wrong.closed, 4003, 'a bad proof: closed with 4003');

  // Still serving.
  const a = await node(t, 'a');
  introduce(a, b);
  await probe(a.tr, 'a', 'b', b.inbox);
  await probe(b.tr, 'b', 'a', a.inbox);
  t.ok(b.tr.stats().protocolErrors >= 4, 'protocol errors counted');
});

t.test('two nodes dialing each other end with one connection', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b');
  introduce(a, b);
  await probe(a.tr, 'a', 'b', b.inbox);
  await probe(b.tr, 'b', 'a', a.inbox);
  // Both sides settle on the connection a dialed; wait for the duplicate to go.
  const settled = new Waitable<number>();
  const poll = setInterval(() => settled.push(a.tr.stats().connections + b.tr.stats().connections), 5);
  try {
    await settled.waitFor((xs) => xs[xs.length - 1] === 2, 5000, 'one connection on each end');
  } finally {
    clearInterval(poll);
  }
  t.equal(a.tr.stats().connections, 1);
  t.equal(b.tr.stats().connections, 1);
  t.same(a.tr.stats().peers, { b: { connected: true, bufferedAmount: 0 } });
});

/** A TCP relay whose reading side can be paused, to play a peer that stops reading. */
async function relay(target: string): Promise<{ address: string; pause(): void; resume(): void; close(): void }> {
  const { hostname, port } = new URL(target);
  const pairs: Array<[Socket, Socket]> = [];
  let paused = false;
  const server: NetServer = createServer((down) => {
    const up = connect(Number(port), hostname);
    down.on('error', () => {});
    up.on('error', () => {});
    down.pipe(up);
    up.pipe(down);
    pairs.push([down, up]);
    if (paused) down.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  const p = typeof bound === 'object' && bound !== null ? bound.port : 0;
  return {
    address: `ws://127.0.0.1:${p}`,
    pause() {
      paused = true;
      for (const [down, up] of pairs) {
        down.unpipe(up);
        down.pause();
      }
    },
    resume() {
      paused = false;
      for (const [down, up] of pairs) down.pipe(up);
    },
    close() {
      for (const [down, up] of pairs) {
        down.destroy();
        up.destroy();
      }
      server.close();
    },
  };
}

t.test('backpressure: appends to a peer that stops reading are dropped; heartbeats still go; memory stays bounded', async (t) => {
  const hwm = 256 * 1024;
  const a = await node(t, 'a', { highWaterMarkBytes: hwm });
  const b = await node(t, 'b');
  const proxy = await relay(b.tr.address());
  t.teardown(() => proxy.close());
  a.tr.setPeers([{ id: 'b', address: proxy.address }]); // only a dials, through the relay
  b.tr.setPeers([]);
  await probe(a.tr, 'a', 'b', b.inbox);
  proxy.pause();

  const payload = new Uint8Array(64 * 1024);
  const append = (i: number): RaftMessage => ({
    type: 'append',
    term: 1,
    from: 'a',
    to: 'b',
    prevLogIndex: i,
    prevLogTerm: 1,
    leaderCommit: 0,
    entries: [{ index: i + 1, term: 1, type: 'normal', data: payload }],
  });
  let maxBuffered = 0;
  let sentWithDroppedAppend = 0;
  const deadline = Date.now() + 15_000;
  for (let i = 0; sentWithDroppedAppend < 20; i++) {
    if (Date.now() > deadline) break;
    const before = a.tr.stats();
    a.tr.send([append(i), hb('a', 'b', i)]);
    const after = a.tr.stats();
    if (after.droppedAppends === before.droppedAppends + 1 && after.messagesSent === before.messagesSent + 1) sentWithDroppedAppend++;
    maxBuffered = Math.max(maxBuffered, after.peers.b?.bufferedAmount ?? 0);
    await new Promise<void>((resolve) => setImmediate(resolve)); // let the socket write
  }
  const s = a.tr.stats();
  t.ok(s.droppedAppends > 0, `appends were dropped (${s.droppedAppends})`);
  t.equal(sentWithDroppedAppend, 20, 'heartbeats kept going out while appends were dropped');
  t.ok(maxBuffered <= 2 * hwm + 70 * 1024, `buffered bytes stayed bounded: max ${maxBuffered} <= 2 × ${hwm} + one frame`);
  t.ok(s.peers.b?.connected, 'the connection stays up');

  proxy.resume();
  await b.inbox.waitFor((ms) => ms.some((m) => m.type === 'heartbeat' && m.commit > 0), 10_000, 'heartbeats after the peer reads again');
  t.pass('the peer catches up once it reads again');
});

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function selfSigned(dir: string, name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

t.test('TLS (wss) with self-signed certificates, including mutual TLS', { skip: hasOpenssl ? false : 'openssl is not installed: cannot generate test certificates' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftchart-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = selfSigned(dir, 'cluster');
  const stranger = selfSigned(dir, 'stranger');

  t.test('wss', async (t) => {
    const tls = { key: cluster.key, cert: cluster.cert, ca: cluster.cert };
    const a = await node(t, 'a', { tls });
    const b = await node(t, 'b', { tls });
    t.match(a.tr.address(), /^wss:\/\/127\.0\.0\.1:\d+$/);
    introduce(a, b);
    await probe(a.tr, 'a', 'b', b.inbox);
    await probe(b.tr, 'b', 'a', a.inbox);
    // A plain-ws node cannot talk to a TLS one.
    const plain = await node(t, 'p');
    plain.tr.setPeers([{ id: 'a', address: a.tr.address().replace('wss:', 'ws:') }]);
    plain.tr.send([hb('p', 'a')]);
    await plain.log.waitFor((es) => es.length > 0, 10_000, 'a failed dial');
    t.same(a.inbox.items.filter((m) => m.from === 'p'), [], 'nothing from the plain node');
  });

  t.test('mutual TLS refuses a client without a trusted certificate', async (t) => {
    const tls = { key: cluster.key, cert: cluster.cert, ca: cluster.cert, requestCert: true };
    const a = await node(t, 'a', { tls });
    const b = await node(t, 'b', { tls });
    introduce(a, b);
    await probe(a.tr, 'a', 'b', b.inbox);
    await probe(b.tr, 'b', 'a', a.inbox);
    // The stranger trusts the cluster's certificate, but the cluster does not trust the stranger's.
    const s = await node(t, 's', { tls: { key: stranger.key, cert: stranger.cert, ca: [cluster.cert, stranger.cert] } });
    s.tr.setPeers([{ id: 'a', address: a.tr.address() }]);
    s.tr.send([hb('s', 'a')]);
    await s.log.waitFor((es) => es.some((e) => /connection with a at/.test(e.message)), 10_000, 'the stranger fails to connect');
    t.same(a.inbox.items.filter((m) => m.from === 's'), [], 'nothing from the stranger');
    t.equal(s.tr.stats().handshakes, 0, 'the stranger completed no handshake');
  });
  t.end();
});

t.test('connections$: established on both ends, lost when a peer stops, one failure per streak of failed dials', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b');
  const seen = { a: new Waitable<ConnectionEvent>(), b: new Waitable<ConnectionEvent>() };
  a.tr.connections$.subscribe((e) => seen.a.push(e));
  b.tr.connections$.subscribe((e) => seen.b.push(e));
  introduce(a, b);
  await seen.a.waitFor((es) => es.some((e) => e.type === 'connectionEstablished'), 10_000, 'a connects');
  await seen.b.waitFor((es) => es.some((e) => e.type === 'connectionEstablished'), 10_000, 'b connects');
  t.match(seen.a.items, [{ type: 'connectionEstablished', peer: 'b' }], 'one connection, reported once');
  t.match(seen.b.items, [{ type: 'connectionEstablished', peer: 'a' }]);
  const address = b.tr.address();
  await b.tr.stop();
  await seen.a.waitFor((es) => es.some((e) => e.type === 'connectionLost'), 10_000, 'a sees b go');
  t.match(seen.a.items[1], { type: 'connectionLost', peer: 'b', reason: /code \d+/ });
  // b is gone: a redials with backoff (20..200 ms); wait for several attempts, then count the reports
  const attempts = a.tr.stats().reconnects;
  await seen.a.waitFor((es) => es.some((e) => e.type === 'connectionFailed'), 10_000, 'a fails to redial');
  const deadline = Date.now() + 10_000;
  while (a.tr.stats().reconnects < attempts + 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.ok(a.tr.stats().reconnects >= attempts + 4, 'several dials failed');
  t.equal(seen.a.items.filter((e) => e.type === 'connectionFailed').length, 1, 'reported once per streak');
  t.match(seen.a.items.find((e) => e.type === 'connectionFailed'), { peer: 'b', reason: /ECONNREFUSED|code/ });

  // b comes back on the same address: established again, and a later failure streak is reported anew
  const port = address.split(':').at(-1) as string;
  const b2 = await node(t, 'b', { listen: `127.0.0.1:${port}` });
  introduce(a, b2);
  await seen.a.waitFor((es) => es.filter((e) => e.type === 'connectionEstablished').length === 2, 10_000, 'a reconnects');
  let completed = false;
  b2.tr.connections$.subscribe({ complete: () => (completed = true) });
  await b2.tr.stop();
  t.ok(completed, 'connections$ completes on stop');
  await seen.a.waitFor((es) => es.filter((e) => e.type === 'connectionFailed').length === 2, 10_000, 'a new streak');
});
