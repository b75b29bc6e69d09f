/**
 * The inspection endpoint: JSON serialization of XState inspection events,
 * the authenticated WebSocket stream on 127.0.0.1 fed by a real node, late
 * subscribers, refusals, and slow subscribers. Handshake timeouts run on a
 * simulated clock; everything else waits on events with generous bounds.
 */
import { once } from 'node:events';
import { filter, firstValueFrom, take, timeout, toArray } from 'rxjs';
import t from 'tap';
import type { Test } from 'tap';
import { WebSocket } from 'ws';
import type { InspectionEvent } from 'xstate';
import { createRaftNode } from '../../actors/node.actor.js';
import { SimulatedClock } from '../../adapters/clock.js';
import { InspectionServer, inspectionStream, type InspectionMessage } from '../../adapters/inspect/websocket.js';
import { toInspectionRecord, toJsonValue } from '../../adapters/inspect/serialize.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { MemoryNetwork } from '../../adapters/transport/memory.js';

const SECRET = 'inspection-spec-secret-0123456789';
const BOUND_MS = 20_000;

const server = async (t: Test, options: Partial<ConstructorParameters<typeof InspectionServer>[0]> = {}): Promise<InspectionServer> => {
  const s = new InspectionServer({ listen: '127.0.0.1:0', secret: SECRET, ...options });
  await s.start();
  t.teardown(() => s.stop());
  return s;
};

/** A raw client that speaks the protocol by hand; resolves with the close code. */
const rawClient = async (url: string, script: (ws: WebSocket, challenge: Record<string, unknown>) => void): Promise<number> => {
  const ws = new WebSocket(url);
  const closed = once(ws, 'close') as Promise<[number, Buffer]>;
  const [data] = (await once(ws, 'message')) as [Buffer];
  script(ws, JSON.parse(data.toString()) as Record<string, unknown>);
  const [code] = await closed;
  return code;
};

t.test('toJsonValue turns live objects into bounded JSON', async (t) => {
  const actor = { sessionId: 'x:3', id: 'replica:n2', send: () => undefined };
  const cyclic: Record<string, unknown> = { name: 'c' };
  cyclic.self = cyclic;
  const value = {
    map: new Map([['n2', { match: 4 }]]),
    numericMap: new Map([[1, 'one']]),
    set: new Set(['a', 'b']),
    bytes: new Uint8Array(7),
    actor,
    cyclic,
    fn: () => 1,
    missing: undefined,
    nan: Number.NaN,
    big: 12n,
    error: new RangeError('boom'),
  };
  t.same(toJsonValue(value), {
    map: { n2: { match: 4 } },
    numericMap: [[1, 'one']],
    set: ['a', 'b'],
    bytes: { bytes: 7 },
    actor: { actor: 'x:3' },
    cyclic: { name: 'c', self: '[cycle]' },
    nan: 'NaN',
    big: '12',
    error: { error: 'RangeError', message: 'boom' },
  });
  const shared = { k: 1 };
  t.same(toJsonValue([shared, shared]), [{ k: 1 }, { k: 1 }], 'a repeated (acyclic) object is not a cycle');
  const limits = { depth: 2, items: 3, chars: 3 };
  t.same(toJsonValue({ a: { b: { c: 1 } }, s: 'abcdef', l: [1, 2, 3, 4, 5] }, limits), {
    a: { b: '[…]' },
    s: 'abc…(6 chars)',
    l: [1, 2, 3, '…(2 more)'],
  });
  t.same(toJsonValue({ a: 1, b: 2, c: 3, d: 4 }, limits), { a: 1, b: 2, c: 3, '…': '1 more keys' });
  t.equal(toJsonValue(undefined), null);

  const snapshotEvent = {
    type: '@xstate.snapshot',
    rootId: 'x:0',
    actorRef: actor,
    event: { type: 'tick' },
    snapshot: { status: 'active', value: { leader: 'idle' }, context: { term: 2, peers: new Set(['n2']) } },
  } as unknown as InspectionEvent;
  t.same(toInspectionRecord(snapshotEvent, 9), {
    seq: 9,
    type: '@xstate.snapshot',
    rootId: 'x:0',
    sessionId: 'x:3',
    actorId: 'replica:n2',
    event: { type: 'tick' },
    snapshot: { status: 'active', value: { leader: 'idle' }, context: { term: 2, peers: ['n2'] } },
  });
  const action = { type: '@xstate.action', rootId: 'x:0', actorRef: actor, action: { type: 'sendAppend', params: { to: 'n2' } } } as unknown as InspectionEvent;
  t.same(toInspectionRecord(action, 1).action, { type: 'sendAppend', params: { to: 'n2' } });
  const sent = { type: '@xstate.event', rootId: 'x:0', actorRef: actor, sourceRef: { sessionId: 'x:0', send: () => 0 }, event: { type: 'go' } } as unknown as InspectionEvent;
  t.match(toInspectionRecord(sent, 2), { sourceId: 'x:0', event: { type: 'go' } });
});

t.test('a node published over the endpoint: late subscribers get the current state, then live records', async (t) => {
  const inspector = await server(t);
  const seen: InspectionEvent[] = [];
  const network = new MemoryNetwork();
  const node = createRaftNode({
    id: 'n1',
    stateMachine: { apply: () => undefined },
    storage: new MemoryStorage(),
    transport: network.transport('n1'),
    inspect: (e) => {
      seen.push(e);
      inspector.inspect(e);
    },
  });
  t.teardown(() => node.stop());
  await node.start();
  await node.bootstrap([{ id: 'n1', address: 'n1' }]);
  await firstValueFrom(node.leader$.pipe(filter((l) => l.leaderId === 'n1'), timeout(BOUND_MS)));
  t.ok(seen.length > 0 && seen.every((e) => typeof e.rootId === 'string' && 'actorRef' in e), 'the inspect option gets XState inspection events, unchanged');

  const stream = inspectionStream({ url: inspector.address(), secret: SECRET });
  const replayed = firstValueFrom(stream.pipe(filter((m): m is Extract<InspectionMessage, { type: 'record' }> => m.type === 'record'), take(1), timeout(BOUND_MS)));
  const first = await replayed;
  t.equal(first.record.replayed, true, 'a late subscriber first gets the latest snapshot of each live actor');
  t.equal(first.record.type, '@xstate.snapshot');
  t.match(first.record.snapshot, { status: 'active', value: { leader: /\w+/ } }, 'the root actor is the role machine, in leader');

  const live = firstValueFrom(
    stream.pipe(
      filter((m) => m.type === 'record' && m.record.replayed !== true && m.record.type === '@xstate.event'),
      take(1),
      toArray(),
      timeout(BOUND_MS),
    ),
  );
  // the subscription above connects asynchronously: keep proposing until it sees an event (bounded)
  let proposals = 0;
  let done = false;
  void live.finally(() => {
    done = true;
  });
  while (!done && proposals < 200) {
    await node.propose(new Uint8Array([proposals++]));
    await new Promise((r) => setImmediate(r));
  }
  const [record] = await live;
  t.ok(record?.type === 'record' && typeof record.record.seq === 'number' && record.record.seq > first.record.seq, 'live records follow, numbered');
  t.ok(inspector.stats().recordsSent >= 2);
});

t.test('refusals: wrong secret, malformed hello, binary message, too many subscribers', async (t) => {
  const inspector = await server(t, { maxSubscribers: 1 });
  await t.rejects(
    firstValueFrom(inspectionStream({ url: inspector.address(), secret: 'not-the-secret-0123456789' })),
    { name: 'TransportError', message: /closed during the handshake \(4003/ },
    'a subscriber with the wrong secret is refused',
  );
  t.equal(await rawClient(inspector.address(), (ws) => ws.send('{"type":"hello"}')), 4002, 'a hello without a nonce');
  t.equal(await rawClient(inspector.address(), (ws) => ws.send('not json')), 4002, 'not JSON');
  t.equal(await rawClient(inspector.address(), (ws) => ws.send(Buffer.from([1, 2]))), 4002, 'binary');
  t.equal(await rawClient(inspector.address(), (ws) => ws.send('x'.repeat(10_000))), 1009, 'an oversized message');

  const first = inspectionStream({ url: inspector.address(), secret: SECRET }).subscribe();
  t.teardown(() => first.unsubscribe());
  const deadline = Date.now() + BOUND_MS;
  while (inspector.stats().subscribers === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(inspector.stats().subscribers, 1);
  await t.rejects(firstValueFrom(inspectionStream({ url: inspector.address(), secret: SECRET })), { message: /4009/ }, 'over maxSubscribers');
  t.ok(inspector.stats().refused >= 5);
  t.equal(inspector.stats().subscribers, 1, 'the first subscriber is untouched');

  // the endpoint must prove the secret back: a fake server that welcomes without a proof is refused by the client
  const fake = new (await import('ws')).WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.teardown(() => fake.close());
  await once(fake, 'listening');
  fake.on('connection', (ws) => {
    ws.send(JSON.stringify({ type: 'challenge', version: 1, nonce: 'n' }));
    ws.on('message', () => ws.send(JSON.stringify({ type: 'welcome', proof: 'AAAA' })));
  });
  const port = (fake.address() as { port: number }).port;
  await t.rejects(firstValueFrom(inspectionStream({ url: `ws://127.0.0.1:${port}`, secret: SECRET })), { message: /did not prove the secret/ });
});

t.test('a subscriber that never says hello is closed after the handshake timeout (simulated clock)', async (t) => {
  const clock = new SimulatedClock();
  const inspector = await server(t, { clock, handshakeTimeoutMs: 1000 });
  const code = rawClient(inspector.address(), () => {
    clock.advanceBy(999);
    t.equal(inspector.stats().refused, 0, 'not before the timeout');
    clock.advanceBy(1);
  });
  t.equal(await code, 4008);
});

t.test('a slow subscriber loses records, is told how many, and never blocks the publisher', async (t) => {
  const inspector = await server(t, { highWaterMarkBytes: 64 * 1024 });
  const messages: InspectionMessage[] = [];
  const sub = inspectionStream({ url: inspector.address(), secret: SECRET }).subscribe((m) => messages.push(m));
  t.teardown(() => sub.unsubscribe());
  const deadline = Date.now() + BOUND_MS;
  while (inspector.stats().subscribers === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(inspector.stats().subscribers, 1);

  const actor = { sessionId: 'x:1', id: 'x:1', send: () => undefined };
  const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]));
  const event = (i: number): InspectionEvent =>
    ({ type: '@xstate.snapshot', rootId: 'x:1', actorRef: actor, event: { type: 'e', i }, snapshot: { status: 'active', value: 's', context: big } }) as unknown as InspectionEvent;
  // one synchronous burst: the socket cannot drain in between, so the buffer passes the mark
  for (let i = 0; i < 400; i++) inspector.inspect(event(i));
  const dropped = inspector.stats().recordsDropped;
  t.ok(dropped > 0, `records were dropped (${dropped}) rather than buffered`);
  t.ok(inspector.stats().recordsSent < 400);
  // once it drains, the next record is preceded by a gap notice
  while (!messages.some((m) => m.type === 'gap') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    inspector.inspect(event(1000));
  }
  const gap = messages.find((m) => m.type === 'gap');
  t.ok(gap !== undefined && gap.type === 'gap' && gap.dropped >= dropped, 'the subscriber is told how many it missed');
});

t.test('options are validated, naming the option', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['listen', { listen: 'nowhere', secret: SECRET }],
    ['secret', { listen: '127.0.0.1:0' }],
    ['secret', { listen: '127.0.0.1:0', secret: 'short' }],
    ['insecure', { listen: '127.0.0.1:0', secret: SECRET, insecure: true }],
    ['types', { listen: '127.0.0.1:0', secret: SECRET, types: ['@xstate.nope'] }],
    ['maxSubscribers', { listen: '127.0.0.1:0', secret: SECRET, maxSubscribers: 0 }],
    ['port', { listen: '127.0.0.1:0', secret: SECRET, port: 1 }],
    ['options', null],
  ];
  for (const [option, options] of bad) {
    t.throws(() => new InspectionServer(options as ConstructorParameters<typeof InspectionServer>[0]), { name: 'ConfigurationError', option }, option);
  }
  const s = new InspectionServer({ listen: '127.0.0.1:0', insecure: true });
  t.throws(() => s.address(), { name: 'TransportError' });
  await s.start();
  await t.rejects(s.start(), { name: 'TransportError' });
  const busy = new InspectionServer({ listen: s.address().replace('ws://', ''), insecure: true });
  await t.rejects(busy.start(), { name: 'TransportError', message: /cannot listen/ });
  const sub = inspectionStream({ url: s.address(), insecure: true }).subscribe();
  const deadline = Date.now() + BOUND_MS;
  while (s.stats().subscribers === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(s.stats().subscribers, 1, 'an insecure endpoint accepts an insecure subscriber');
  sub.unsubscribe();
  await s.stop();
  await s.stop();
});
