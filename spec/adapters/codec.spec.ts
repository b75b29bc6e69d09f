import t from 'tap';
import {
  CODEC_VERSION,
  DEFAULT_CODEC_LIMITS,
  MESSAGE_TYPE_CODES,
  decodeFrame,
  encodeFrame,
} from '../../adapters/codec.js';
import { seededRandom } from '../../adapters/random.js';
import type { SeededRandom } from '../../adapters/random.js';
import { CodecError } from '../../errors.js';
import type { Configuration, EntryType, LogEntry, RaftMessage, Server, VoteRefusal } from '../../machines/types.js';
import { decodeConfig, encodeConfig } from '../../actors/config.js';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
const MiB = 1024 * 1024;

/**
 * `m` with each entry's data as base64 (plus its class), so `t.same` compares
 * a 1 MiB payload as one string instead of element by element.
 */
const plain = (ms: readonly RaftMessage[]): unknown[] =>
  ms.map((m) =>
    m.type !== 'append'
      ? m
      : {
          ...m,
          entries: m.entries.map((e) => ({
            ...e,
            data: [e.data.constructor.name, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length).toString('base64')],
          })),
        },
  );

/** One message of every type and shape, optional fields present and absent. */
function everyMessage(): RaftMessage[] {
  const big = new Uint8Array(MiB);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  return [
    { type: 'vote', term: 5, from: 'n1', to: 'n2', lastLogIndex: 10, lastLogTerm: 4 },
    { type: 'vote', term: 5, from: 'n1', to: 'n2', lastLogIndex: 0, lastLogTerm: 0, transfer: true },
    { type: 'preVote', term: 6, from: 'n1', to: 'n3', lastLogIndex: 10, lastLogTerm: 4, transfer: false },
    { type: 'voteResponse', term: 5, from: 'n2', to: 'n1', granted: true },
    { type: 'voteResponse', term: 5, from: 'n2', to: 'n1', granted: false, reason: 'voted' },
    { type: 'preVoteResponse', term: 6, from: 'n3', to: 'n1', granted: false, reason: 'learner' },
    { type: 'preVoteResponse', term: 6, from: 'n3', to: 'n1', granted: true },
    { type: 'append', term: 7, from: 'n1', to: 'n2', prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 },
    {
      type: 'append',
      term: 7,
      from: 'n1',
      to: 'n2',
      prevLogIndex: 9,
      prevLogTerm: 6,
      leaderCommit: 9,
      entries: [
        { index: 10, term: 7, type: 'noop', data: new Uint8Array(0) },
        { index: 11, term: 7, type: 'normal', data: bytes(0, 1, 2, 0xff, 0x80, 0) },
        { index: 12, term: 7, type: 'config', data: new TextEncoder().encode('{"servers":[]}') },
        { index: 13, term: 7, type: 'restore', data: new Uint8Array([2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) },
        { index: 14, term: 7, type: 'normal', data: big },
      ],
    },
    { type: 'appendResponse', term: 7, from: 'n2', to: 'n1', success: true, index: 13, hintTerm: 0, hintIndex: 0 },
    { type: 'appendResponse', term: 7, from: 'n2', to: 'n1', success: false, index: 9, hintTerm: 3, hintIndex: 4 },
    { type: 'heartbeat', term: Number.MAX_SAFE_INTEGER, from: 'n1', to: 'n2', commit: Number.MAX_SAFE_INTEGER },
    { type: 'heartbeat', term: 3, from: 'n1', to: 'n2', commit: 7, round: 0 },
    { type: 'heartbeat', term: 3, from: 'n1', to: 'n2', commit: 7, round: Number.MAX_SAFE_INTEGER },
    { type: 'heartbeatResponse', term: 0, from: 'ñ-節点-🚀', to: '\uFEFFbom' },
    { type: 'heartbeatResponse', term: 3, from: 'n2', to: 'n1', round: 42 },
    { type: 'readIndex', term: 3, from: 'n2', to: 'n1', requestId: 0 },
    { type: 'readIndex', term: 3, from: 'n2', to: 'n1', requestId: Number.MAX_SAFE_INTEGER },
    { type: 'readIndexResponse', term: 3, from: 'n1', to: 'n2', requestId: 17, success: true, index: 12 },
    { type: 'readIndexResponse', term: 4, from: 'n1', to: 'n2', requestId: 18, success: false, index: 0 },
    { type: 'timeoutNow', term: 3, from: 'n1', to: 'n3' },
    { type: 'heartbeatResponse', term: 1, from: 'x'.repeat(255), to: 'é'.repeat(127) },
    {
      type: 'installSnapshot', term: 4, from: 'n1', to: 'n2', snapshotIndex: 120, snapshotTerm: 3, configurationIndex: 7, seq: 0, offset: 0,
      configuration: { servers: [{ id: 'n1', address: 'ws://127.0.0.1:7001' }, { id: 'n2', address: 'é', suffrage: 'voter' }, { id: 'n3', address: '', suffrage: 'learner', autoPromote: true }] },
      data: bytes(1, 2, 3), checksum: 0xffffffff, done: false, size: null,
    },
    {
      type: 'installSnapshot', term: 4, from: 'n1', to: 'n2', snapshotIndex: 120, snapshotTerm: 3, configurationIndex: 7, seq: 1, offset: 0,
      configuration: { servers: [{ id: 'n1', address: 'a', autoPromote: false }], old: [{ id: 'n2', address: 'b' }] },
      data: new Uint8Array(0), checksum: 0, done: true, size: 0,
    },
    {
      type: 'installSnapshot', term: 4, from: 'n1', to: 'n2', snapshotIndex: Number.MAX_SAFE_INTEGER, snapshotTerm: 3, configurationIndex: 0, seq: 9,
      offset: 2 ** 40, configuration: null, data: big.subarray(0, 1000), checksum: 12345, done: true, size: 2 ** 40 + 1000,
    },
    { type: 'installSnapshotResponse', term: 4, from: 'n2', to: 'n1', snapshotIndex: 120, snapshotTerm: 3, seq: 2, ok: true, reason: null, next: 300, installed: false },
    { type: 'installSnapshotResponse', term: 5, from: 'n2', to: 'n1', snapshotIndex: 120, snapshotTerm: 3, seq: 3, ok: false, reason: 'gap', next: 0, installed: false },
    { type: 'installSnapshotResponse', term: 5, from: 'n2', to: 'n1', snapshotIndex: 120, snapshotTerm: 3, seq: 3, ok: true, reason: null, next: 9, installed: true },
  ];
}

t.test('every message type round-trips, alone and batched', (t) => {
  const all = everyMessage();
  const types = new Set(all.map((m) => m.type));
  t.same([...types].sort(), Object.keys(MESSAGE_TYPE_CODES).sort(), 'the sample covers every type');
  for (const m of all) {
    const frame = encodeFrame([m]);
    t.equal(frame[0], CODEC_VERSION);
    t.same(plain(decodeFrame(frame)), plain([m]), `${m.type} round-trips`);
  }
  const frame = encodeFrame(all);
  const back = decodeFrame(frame);
  t.same(plain(back), plain(all), 'a batch round-trips in order');
  t.ok(Buffer.from(encodeFrame(back)).equals(frame), 'the encoding is canonical');
  t.same(decodeFrame(encodeFrame([])), [], 'an empty frame');
  t.end();
});

t.test('InstallSnapshot: malformed fields are refused on encode and on decode, naming the field', (t) => {
  const chunk = {
    type: 'installSnapshot', term: 2, from: 'a', to: 'b', snapshotIndex: 5, snapshotTerm: 2, configurationIndex: 1, seq: 0, offset: 0,
    configuration: { servers: [{ id: 's', address: 'x' }] }, data: bytes(1), checksum: 7, done: false, size: null,
  } as const;
  const bad: Array<[string, unknown, RegExp]> = [
    ['checksum over 32 bits', { ...chunk, checksum: 2 ** 32 }, /message\[0\]\.checksum/],
    ['negative offset', { ...chunk, offset: -1 }, /message\[0\]\.offset/],
    ['done not boolean', { ...chunk, done: 1 }, /message\[0\]\.done/],
    ['data not bytes', { ...chunk, data: [1] }, /message\[0\]\.data/],
    ['servers not an array', { ...chunk, configuration: { servers: 'x' } }, /configuration\.servers: must be an array/],
    ['bad suffrage', { ...chunk, configuration: { servers: [{ id: 's', address: 'x', suffrage: 'boss' }] } }, /servers\[0\]\.suffrage/],
    ['address not a string', { ...chunk, configuration: { servers: [{ id: 's', address: 3 }] } }, /servers\[0\]\.address/],
    ['empty server id', { ...chunk, configuration: { servers: [{ id: '', address: 'x' }] } }, /servers\[0\]\.id/],
    [
      'unknown refusal',
      { type: 'installSnapshotResponse', term: 2, from: 'b', to: 'a', snapshotIndex: 5, snapshotTerm: 2, seq: 0, ok: false, reason: 'nope', next: 0, installed: false },
      /message\[0\]\.reason/,
    ],
  ];
  for (const [name, m, re] of bad) t.throws(() => encodeFrame([m as RaftMessage]), { name: 'CodecError', message: re }, name);

  const frame = encodeFrame([chunk]);
  // Layout after the header (5) and tag/term/ids (1 + 8 + 2 + 2): five u64, checksum u32, done, hasSize, hasConfig, count u16, server...
  const configAt = 5 + 13 + 40 + 4 + 2;
  const suffrageAt = configAt + 1 + 2 + 1 + 1 + 2 + 1; // hasConfig, count, id length, id, address length, address
  const patched = (at: number, v: number): Uint8Array => {
    const c = frame.slice();
    c[at] = v;
    return c;
  };
  t.throws(() => decodeFrame(patched(suffrageAt, 3)), { message: /servers\[0\]\.suffrage at offset \d+: unknown code 3/ });
  t.throws(() => decodeFrame(patched(suffrageAt + 1, 3)), { message: /servers\[0\]\.autoPromote at offset \d+: unknown code 3/ });
  t.throws(() => decodeFrame(patched(configAt, 2)), { message: /hasConfig at offset \d+: boolean must be 0 or 1/ });
  t.throws(() => decodeFrame(frame.subarray(0, frame.length - 1)), { message: /data length at offset \d+: 1 bytes but only 0 remain/ });
  const answer = encodeFrame([{ type: 'installSnapshotResponse', term: 2, from: 'b', to: 'a', snapshotIndex: 5, snapshotTerm: 2, seq: 0, ok: false, reason: 'gap', next: 0, installed: false }]);
  const badReason = answer.slice();
  badReason[5 + 13 + 24 + 1] = 6;
  t.throws(() => decodeFrame(badReason), { message: /reason at offset \d+: unknown refusal code 6/ });
  t.end();
});

t.test('decoded payloads are views into the frame, not copies', (t) => {
  const data = bytes(9, 8, 7);
  const frame = encodeFrame([
    { type: 'append', term: 1, from: 'a', to: 'b', prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0, entries: [{ index: 1, term: 1, type: 'normal', data }] },
  ]);
  const [m] = decodeFrame(frame);
  const e = m?.type === 'append' ? m.entries[0] : undefined;
  t.ok(e);
  t.equal(e?.data.buffer, frame.buffer, 'same backing buffer');
  t.equal(e?.data.constructor, Uint8Array, 'a plain Uint8Array');
  // A frame inside a larger buffer (as ws hands it over) decodes too.
  const padded = new Uint8Array(frame.length + 10);
  padded.set(frame, 7);
  t.same(decodeFrame(padded.subarray(7, 7 + frame.length)), [m]);
  t.end();
});

t.test('encoding refuses malformed messages with a CodecError naming the field', (t) => {
  const hb = { type: 'heartbeat', term: 1, from: 'a', to: 'b', commit: 0 } as const;
  const bad: Array<[string, unknown, RegExp]> = [
    ['negative term', { ...hb, term: -1 }, /message\[0\]\.term/],
    ['fractional commit', { ...hb, commit: 1.5 }, /message\[0\]\.commit/],
    ['unsafe term', { ...hb, term: 2 ** 53 }, /message\[0\]\.term/],
    ['empty id', { ...hb, from: '' }, /message\[0\]\.from/],
    ['long id', { ...hb, to: 'x'.repeat(256) }, /message\[0\]\.to: 256 UTF-8 bytes/],
    ['lone surrogate', { ...hb, to: 'a\uD800' }, /lone surrogate/],
    ['unknown type', { ...hb, type: 'gossip' }, /unknown message type/],
    ['prototype key as type', { ...hb, type: 'toString' }, /unknown message type/],
    ['granted not boolean', { type: 'voteResponse', term: 1, from: 'a', to: 'b', granted: 1 }, /granted/],
    ['bad reason', { type: 'voteResponse', term: 1, from: 'a', to: 'b', granted: false, reason: 'bored' }, /reason/],
    ['negative round', { ...hb, round: -1 }, /message\[0\]\.round/],
    ['fractional answer round', { type: 'heartbeatResponse', term: 1, from: 'a', to: 'b', round: 0.5 }, /message\[0\]\.round/],
    ['request id missing', { type: 'readIndex', term: 1, from: 'a', to: 'b' }, /message\[0\]\.requestId/],
    ['read success not boolean', { type: 'readIndexResponse', term: 1, from: 'a', to: 'b', requestId: 1, success: 'yes', index: 1 }, /message\[0\]\.success/],
    ['read index unsafe', { type: 'readIndexResponse', term: 1, from: 'a', to: 'b', requestId: 1, success: true, index: 2 ** 53 }, /message\[0\]\.index/],
    [
      'bad entry type',
      { type: 'append', term: 1, from: 'a', to: 'b', prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0, entries: [{ index: 1, term: 1, type: 'x', data: bytes() }] },
      /entries\[0\]\.type/,
    ],
    [
      'data not bytes',
      { type: 'append', term: 1, from: 'a', to: 'b', prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0, entries: [{ index: 1, term: 1, type: 'normal', data: 'x' }] },
      /entries\[0\]\.data/,
    ],
  ];
  for (const [name, m, re] of bad) {
    t.throws(() => encodeFrame([m as RaftMessage]), { name: 'CodecError', code: 'CODEC', message: re }, name);
  }
  t.throws(() => encodeFrame([hb, hb], { maxMessages: 1 }), { code: 'CODEC', message: /2 messages/ });
  t.throws(() => encodeFrame([hb], { maxFrameBytes: 10 }), { code: 'CODEC', message: /bytes, at most 10/ });
  t.end();
});

t.test('decoding rejects each kind of bad field, naming field and offset', (t) => {
  const hb: RaftMessage = { type: 'heartbeat', term: 1, from: 'a', to: 'b', commit: 2 };
  const ok = encodeFrame([hb]);
  const patch = (at: number, ...xs: number[]): Uint8Array => {
    const c = ok.slice();
    c.set(xs, at);
    return c;
  };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty input', bytes(), /version at offset 0: needs 1 bytes/],
    ['wrong version', patch(0, 1), new RegExp(`unsupported codec version 1, expected ${CODEC_VERSION}`)],
    ['count past bytes', patch(1, 0, 0, 1, 0), /message count at offset 1: 256 messages cannot fit/],
    ['count past limit', patch(1, 0xff, 0xff, 0xff, 0xff), /exceeds the limit/],
    ['unknown tag', patch(5, 99), /message\[0\]\.type at offset 5: unknown type tag 99/],
    ['zero tag', patch(5, 0), /unknown type tag 0/],
    ['unsafe term', patch(6, 0x00, 0x20, 0, 0), /message\[0\]\.term at offset 6: exceeds Number.MAX_SAFE_INTEGER/],
    ['empty id', patch(14, 0), /message\[0\]\.from at offset 14: id must not be empty/],
    ['id past end', patch(14, 200), /message\[0\]\.from at offset 15: needs 200 bytes/],
    ['invalid utf-8', patch(15, 0xc3), /message\[0\]\.from at offset 15: not valid UTF-8/],
    ['trailing byte', Uint8Array.from([...ok, 0]), /trailing bytes/],
    ['truncated', ok.subarray(0, ok.length - 2), /message\[0\]\.commit at offset \d+: needs 8 bytes/],
    ['round flag missing', ok.subarray(0, ok.length - 1), /message\[0\]\.hasRound at offset \d+: needs 1 bytes/],
    ['round flag not boolean', patch(ok.length - 1, 2), /message\[0\]\.hasRound at offset \d+: boolean must be 0 or 1, got 2/],
  ];
  for (const [name, b, re] of cases) t.throws(() => decodeFrame(b), { name: 'CodecError', message: re }, name);

  const vote = encodeFrame([{ type: 'vote', term: 1, from: 'a', to: 'b', lastLogIndex: 0, lastLogTerm: 0 }]);
  const badBool = vote.slice();
  badBool[badBool.length - 1] = 2;
  t.throws(() => decodeFrame(badBool), { message: /hasTransfer at offset \d+: boolean must be 0 or 1, got 2/ });
  const withRound = encodeFrame([{ type: 'heartbeat', term: 1, from: 'a', to: 'b', commit: 2, round: 3 }]);
  t.throws(() => decodeFrame(withRound.subarray(0, withRound.length - 1)), { message: /message\[0\]\.round at offset \d+: needs 8 bytes/ });
  const unsafeRound = withRound.slice();
  unsafeRound[unsafeRound.length - 8] = 0x00;
  unsafeRound[unsafeRound.length - 7] = 0x20;
  t.throws(() => decodeFrame(unsafeRound), { message: /message\[0\]\.round at offset \d+: exceeds Number.MAX_SAFE_INTEGER/ });
  const readAnswer = encodeFrame([{ type: 'readIndexResponse', term: 1, from: 'a', to: 'b', requestId: 1, success: true, index: 5 }]);
  const badSuccess = readAnswer.slice();
  badSuccess[badSuccess.length - 9] = 7;
  t.throws(() => decodeFrame(badSuccess), { message: /message\[0\]\.success at offset \d+: boolean must be 0 or 1, got 7/ });
  const badTag = encodeFrame([{ type: 'timeoutNow', term: 1, from: 'a', to: 'b' }]);
  badTag[5] = 14;
  t.throws(() => decodeFrame(badTag), { message: /unknown type tag 14/ });
  const resp = encodeFrame([{ type: 'voteResponse', term: 1, from: 'a', to: 'b', granted: false }]);
  const badReason = resp.slice();
  badReason[badReason.length - 1] = 6;
  t.throws(() => decodeFrame(badReason), { message: /reason at offset \d+: unknown refusal code 6/ });

  const append = encodeFrame([
    { type: 'append', term: 1, from: 'a', to: 'b', prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0, entries: [{ index: 1, term: 1, type: 'normal', data: bytes(1, 2, 3) }] },
  ]);
  const countAt = 5 + 1 + 8 + 2 + 2 + 24;
  const entryAt = countAt + 4;
  const withCount = (n: number): Uint8Array => {
    const c = append.slice();
    new DataView(c.buffer).setUint32(countAt, n);
    return c;
  };
  t.throws(() => decodeFrame(withCount(0xffffffff)), { message: /entries count at offset \d+: 4294967295 exceeds the frame limit/ });
  t.throws(() => decodeFrame(withCount(1000)), { message: /entries count at offset \d+: 1000 entries cannot fit/ });
  t.throws(() => decodeFrame(append, { maxEntries: 0 }), { message: /exceeds the frame limit of 0 entries/ });
  const badEntryType = append.slice();
  badEntryType[entryAt + 16] = 4;
  t.throws(() => decodeFrame(badEntryType), { message: /entries\[0\]\.type at offset \d+: unknown entry type code 4/ });
  const hugeLen = append.slice();
  new DataView(hugeLen.buffer).setUint32(entryAt + 17, 0xfffffff0);
  t.throws(() => decodeFrame(hugeLen), { message: /entries\[0\]\.data length at offset \d+: 4294967280 bytes but only 3 remain/ });
  t.throws(() => decodeFrame(append, { maxFrameBytes: append.length - 1 }), { message: /frame at offset 0: \d+ bytes, at most/ });
  t.throws(() => decodeFrame('nope' as unknown as Uint8Array), { name: 'CodecError' });
  t.equal(DEFAULT_CODEC_LIMITS.maxFrameBytes, 64 * MiB);
  t.end();
});

// ---------------------------------------------------------------------------
// seeded fuzz

const REFUSALS: readonly (VoteRefusal | undefined)[] = [undefined, 'term', 'voted', 'log', 'leader', 'learner'];
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop', 'config', 'restore'];
const ID_POOL = ['n1', 'n2', 'node-3', 'é', '節点', '🚀', 'x'.repeat(255)];

function randomNumber(r: SeededRandom): number {
  switch (r.int(0, 4)) {
    case 0:
      return 0;
    case 1:
      return r.int(0, 1000);
    case 2:
      return r.int(0, 2 ** 40);
    default:
      return Number.MAX_SAFE_INTEGER - r.int(0, 3);
  }
}

function randomData(r: SeededRandom): Uint8Array {
  const n = r.chance(0.3) ? 0 : r.int(0, 64);
  const d = new Uint8Array(n);
  for (let i = 0; i < n; i++) d[i] = r.int(0, 256);
  return d;
}

function randomMessage(r: SeededRandom): RaftMessage {
  const base = { term: randomNumber(r), from: r.pick(ID_POOL), to: r.pick(ID_POOL) };
  const type = r.pick(Object.keys(MESSAGE_TYPE_CODES) as RaftMessage['type'][]);
  switch (type) {
    case 'vote':
    case 'preVote': {
      const m = { type, ...base, lastLogIndex: randomNumber(r), lastLogTerm: randomNumber(r) };
      return r.chance(0.5) ? { ...m, transfer: r.chance(0.5) } : m;
    }
    case 'voteResponse':
    case 'preVoteResponse': {
      const reason = r.pick(REFUSALS);
      const m = { type, ...base, granted: r.chance(0.5) };
      return reason === undefined ? m : { ...m, reason };
    }
    case 'append': {
      const entries: LogEntry[] = [];
      const n = r.int(0, 4);
      for (let i = 0; i < n; i++) entries.push({ index: randomNumber(r), term: randomNumber(r), type: r.pick(ENTRY_TYPES), data: randomData(r) });
      return { type, ...base, prevLogIndex: randomNumber(r), prevLogTerm: randomNumber(r), leaderCommit: randomNumber(r), entries };
    }
    case 'appendResponse':
      return { type, ...base, success: r.chance(0.5), index: randomNumber(r), hintTerm: randomNumber(r), hintIndex: randomNumber(r) };
    case 'heartbeat':
      return r.chance(0.5) ? { type, ...base, commit: randomNumber(r) } : { type, ...base, commit: randomNumber(r), round: randomNumber(r) };
    case 'heartbeatResponse':
      return r.chance(0.5) ? { type, ...base } : { type, ...base, round: randomNumber(r) };
    case 'readIndex':
      return { type, ...base, requestId: randomNumber(r) };
    case 'readIndexResponse':
      return { type, ...base, requestId: randomNumber(r), success: r.chance(0.5), index: randomNumber(r) };
    case 'timeoutNow':
      return { type, ...base };
    case 'installSnapshot': {
      const servers = (): Server[] =>
        Array.from({ length: r.int(0, 3) }, (_, k) => {
          const s: { id: string; address: string; suffrage?: 'voter' | 'learner'; autoPromote?: boolean } = { id: `${r.pick(ID_POOL)}${k}`, address: r.chance(0.5) ? '' : 'ws://h:1' };
          if (r.chance(0.5)) s.suffrage = r.chance(0.5) ? 'voter' : 'learner';
          if (r.chance(0.3)) s.autoPromote = r.chance(0.5);
          return s;
        });
      const configuration = r.chance(0.5) ? null : r.chance(0.5) ? { servers: servers() } : { servers: servers(), old: servers() };
      const done = r.chance(0.5);
      return {
        type, ...base, snapshotIndex: randomNumber(r), snapshotTerm: randomNumber(r), configurationIndex: randomNumber(r), seq: randomNumber(r),
        offset: randomNumber(r), configuration, data: randomData(r), checksum: r.int(0, 2 ** 32), done, size: done ? randomNumber(r) : null,
      };
    }
    case 'installSnapshotResponse':
      return {
        type, ...base, snapshotIndex: randomNumber(r), snapshotTerm: randomNumber(r), seq: randomNumber(r), ok: r.chance(0.5),
        reason: r.pick([null, 'term', 'gap', 'checksum', 'stale', 'storage'] as const), next: randomNumber(r), installed: r.chance(0.5),
      };
  }
}

function randomFrame(r: SeededRandom): RaftMessage[] {
  const n = r.int(0, 5);
  const out: RaftMessage[] = [];
  for (let i = 0; i < n; i++) out.push(randomMessage(r));
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

t.test('seeded fuzz: decode returns canonical messages or throws CodecError, nothing else', (t) => {
  const seed = Number(process.env.CODEC_SEED ?? Date.now() % 2 ** 32);
  t.comment(`codec fuzz seed ${seed} (replay with CODEC_SEED=${seed})`);
  const r = seededRandom(seed);
  const limits = { maxFrameBytes: 4096, maxMessages: 64, maxEntries: 32 };
  const tally = { decoded: 0, rejected: 0, total: 0 };
  const failures: string[] = [];

  /** Decodes `input`; any outcome but canonical messages or a CodecError is a failure. */
  const check = (kind: string, input: Uint8Array, mustReject = false): void => {
    tally.total++;
    let messages: RaftMessage[];
    try {
      messages = decodeFrame(input, limits);
    } catch (err) {
      if (err instanceof CodecError && err.code === 'CODEC') {
        tally.rejected++;
        return;
      }
      failures.push(`${kind}: threw ${String(err)} (seed ${seed})`);
      return;
    }
    tally.decoded++;
    if (mustReject) failures.push(`${kind}: decoded although it must be rejected (seed ${seed})`);
    try {
      const again = encodeFrame(messages, limits);
      if (!equalBytes(again, input)) failures.push(`${kind}: re-encoding differs from the input (seed ${seed})`);
    } catch (err) {
      failures.push(`${kind}: decoded messages do not re-encode: ${String(err)} (seed ${seed})`);
    }
  };

  const started = performance.now();
  // 1. valid frames round-trip; every kind of truncation is rejected.
  for (let i = 0; i < 2000; i++) {
    const msgs = randomFrame(r);
    let frame: Uint8Array;
    try {
      frame = encodeFrame(msgs, limits);
    } catch (err) {
      if (!(err instanceof CodecError)) failures.push(`encode threw ${String(err)}`);
      continue;
    }
    check('valid', frame);
    if (i < 200) {
      for (let cut = 0; cut < frame.length; cut++) check(`truncated at ${cut}/${frame.length}`, frame.subarray(0, cut), true);
    } else {
      check('truncated', frame.subarray(0, r.int(0, frame.length)), true);
    }
    check('oversized frame', frame, frame.length > limits.maxFrameBytes);
    // 2. bit flips and byte overwrites.
    for (let k = 0; k < 10; k++) {
      const c = frame.slice();
      const flips = r.int(1, 4);
      for (let f = 0; f < flips; f++) {
        const at = r.int(0, c.length);
        c[at] = r.chance(0.5) ? (c[at] as number) ^ (1 << r.int(0, 8)) : r.int(0, 256);
      }
      check('bit-flipped', c);
    }
    // 3. oversized length and count fields at random 4-byte positions.
    for (let k = 0; k < 10 && frame.length >= 4; k++) {
      const c = frame.slice();
      new DataView(c.buffer).setUint32(r.int(0, c.length - 3), r.pick([0xffffffff, 0x7fffffff, 0x10000, r.nextUint32()]));
      check('oversized length', c);
    }
    // 4. a frame with bytes appended is rejected.
    check('trailing', Uint8Array.from([...frame, r.int(0, 256)]), true);
  }
  // 5. random bytes, mostly with a valid version byte so parsing goes deep.
  while (tally.total < 110_000) {
    const n = r.int(0, 96);
    const c = new Uint8Array(n);
    for (let i = 0; i < n; i++) c[i] = r.int(0, 256);
    if (n > 0 && r.chance(0.8)) c[0] = CODEC_VERSION;
    if (n > 4 && r.chance(0.8)) {
      c[1] = 0;
      c[2] = 0;
      c[3] = 0;
      c[4] = r.int(0, 4);
    }
    check('random', c);
  }
  // 6. an oversized frame against the limit.
  check('over the limit', new Uint8Array(limits.maxFrameBytes + 1).fill(CODEC_VERSION, 0, 1), true);
  const ms = Math.round(performance.now() - started);

  t.same(failures.slice(0, 10), [], `no failures among ${tally.total} frames (seed ${seed})`);
  t.ok(tally.total >= 100_000, `${tally.total} frames fuzzed in ${ms} ms`);
  t.ok(tally.decoded > 2000 && tally.rejected > 50_000, `both outcomes exercised: ${JSON.stringify(tally)}`);
  t.end();
});

t.test('configuration entries round-trip, joint ones included: the payload is opaque to the frame (no codec version change)', async (t) => {
  const plain: Configuration = { servers: [{ id: 'n1', address: 'ws://a:1', suffrage: 'voter' }, { id: 'n4', address: 'ws://d:4', suffrage: 'learner', autoPromote: true }] };
  const jointConfig: Configuration = {
    servers: [{ id: 'n1', address: 'ws://a:1', suffrage: 'voter' }, { id: 'n4', address: 'ws://d:4', suffrage: 'voter' }, { id: 'n5', address: 'ws://e:5', suffrage: 'voter' }],
    old: [{ id: 'n1', address: 'ws://a:1', suffrage: 'voter' }, { id: 'n2', address: 'ws://b:2', suffrage: 'voter' }, { id: 'n3', address: 'ws://c:3', suffrage: 'learner' }],
  };
  const message: RaftMessage = {
    type: 'append',
    term: 4,
    from: 'n1',
    to: 'n2',
    prevLogIndex: 7,
    prevLogTerm: 4,
    leaderCommit: 7,
    entries: [
      { index: 8, term: 4, type: 'config', data: encodeConfig(plain) },
      { index: 9, term: 4, type: 'config', data: encodeConfig(jointConfig) },
    ],
  };
  const [decoded] = decodeFrame(encodeFrame([message]));
  t.same(decoded, message, 'the frame round-trips');
  const entries = decoded?.type === 'append' ? decoded.entries : [];
  t.same(entries.map((e) => decodeConfig(e.data)), [plain, jointConfig], 'both configurations decode to what was encoded');
  t.equal(decodeConfig(new TextEncoder().encode('{"servers":[{"id":"a","address":"a"}],"old":[]}')), null, 'a joint half without voters is rejected');
  t.equal(decodeConfig(new TextEncoder().encode('{"servers":[{"id":"a","address":"a","autoPromote":1}]}')), null, 'a bad autoPromote is rejected');
  t.equal(CODEC_VERSION, 4, 'configuration payloads did not change the frame format (version 3 added the InstallSnapshot pair, version 4 the restore entry type)');
});
