/**
 * The wire codec: a versioned, validating binary encoding of {@link RaftMessage}s.
 *
 * A **frame** is a batch of messages from one sender to one peer (one node
 * turn). All integers are big-endian.
 *
 * ```
 * frame   = version:u8 (= CODEC_VERSION) count:u32 message{count}      -- no trailing bytes
 * message = tag:u8 term:u64 from:id to:id body
 * id      = length:u8 (1..255) utf8-bytes                               -- fatal UTF-8
 * u64     = hi:u32 lo:u32                                                -- value <= Number.MAX_SAFE_INTEGER
 * bool    = u8 0 | 1
 * ```
 *
 * | tag | `type`              | body                                                                        |
 * |----:|---------------------|-----------------------------------------------------------------------------|
 * |   1 | `vote`              | lastLogIndex:u64 lastLogTerm:u64 hasTransfer:bool [transfer:bool]          |
 * |   2 | `preVote`           | same as `vote`                                                              |
 * |   3 | `voteResponse`      | granted:bool reason:u8 (0 none, 1 term, 2 voted, 3 log, 4 leader, 5 learner) |
 * |   4 | `preVoteResponse`   | same as `voteResponse`                                                      |
 * |   5 | `append`            | prevLogIndex:u64 prevLogTerm:u64 leaderCommit:u64 count:u32 entry{count}    |
 * |   6 | `appendResponse`    | success:bool index:u64 hintTerm:u64 hintIndex:u64                           |
 * |   7 | `heartbeat`         | commit:u64 hasRound:bool [round:u64]                                        |
 * |   8 | `heartbeatResponse` | hasRound:bool [round:u64]                                                   |
 * |   9 | `readIndex`         | requestId:u64                                                               |
 * |  10 | `readIndexResponse` | requestId:u64 success:bool index:u64                                        |
 * |  11 | `timeoutNow`        | (empty)                                                                     |
 * |  12 | `installSnapshot`   | snapshotIndex:u64 snapshotTerm:u64 configurationIndex:u64 seq:u64 offset:u64 checksum:u32 done:bool hasSize:bool [size:u64] hasConfig:bool [config] length:u32 data{length} |
 * |  13 | `installSnapshotResponse` | snapshotIndex:u64 snapshotTerm:u64 seq:u64 ok:bool reason:u8 (0 none, 1 term, 2 gap, 3 checksum, 4 stale, 5 storage) next:u64 installed:bool |
 *
 * `entry = index:u64 term:u64 type:u8 (0 normal, 1 noop, 2 config, 3 restore) length:u32 data{length}`
 *
 * `config = count:u16 server{count} hasOld:bool [count:u16 server{count}]`, with
 * `server = id addressLength:u16 address-utf8 suffrage:u8 (0 absent, 1 voter, 2 learner) autoPromote:u8 (0 absent, 1 false, 2 true)`
 *
 * The encoding is canonical: every value has exactly one encoding, so
 * `encodeFrame(decodeFrame(bytes))` reproduces `bytes` byte for byte.
 *
 * @remarks
 * - Decoding validates every field and throws only {@link CodecError}, whose
 *   message names the field and its byte offset. A length or count is checked
 *   against the bytes that remain (and against {@link CodecLimits}) before
 *   anything is allocated for it.
 * - Decoded entry payloads are **views** into the decoded buffer, not copies:
 *   the buffer must not be reused or mutated while the entries live (and a
 *   retained entry keeps the whole buffer alive).
 * - Encoding sizes the frame first and writes it into one buffer.
 *
 * @module
 */
import { CodecError } from '../errors.js';
import type { SnapshotRefusal } from '../machines/snapshot.js';
import type { Configuration, EntryType, LogEntry, RaftMessage, Server, VoteRefusal } from '../machines/types.js';

/**
 * Version byte at the head of every frame; bumped on any incompatible change.
 *
 * @remarks Version 2 added the optional heartbeat `round` (read index) and the
 * `readIndex`, `readIndexResponse` and `timeoutNow` messages; version 3 the
 * `installSnapshot` and `installSnapshotResponse` messages; version 4 the
 * `restore` entry type.
 */
export const CODEC_VERSION = 4;

/**
 * Message type tags on the wire (see the table in the module documentation).
 *
 * @remarks Tags are part of the wire format: never renumber, only add.
 */
export const MESSAGE_TYPE_CODES = {
  vote: 1,
  preVote: 2,
  voteResponse: 3,
  preVoteResponse: 4,
  append: 5,
  appendResponse: 6,
  heartbeat: 7,
  heartbeatResponse: 8,
  readIndex: 9,
  readIndexResponse: 10,
  timeoutNow: 11,
  installSnapshot: 12,
  installSnapshotResponse: 13,
} as const satisfies Record<RaftMessage['type'], number>;

/** Entry type codes on the wire (and on disk in `LevelStorage`). Never renumber, only add. */
export const ENTRY_TYPE_CODES = { normal: 0, noop: 1, config: 2, restore: 3 } as const satisfies Record<EntryType, number>;

/** Vote refusal codes on the wire; 0 means "no reason given". */
export const VOTE_REFUSAL_CODES = { term: 1, voted: 2, log: 3, leader: 4, learner: 5 } as const satisfies Record<
  VoteRefusal,
  number
>;

/** Snapshot refusal codes on the wire; 0 means "none" (an accepted chunk). */
export const SNAPSHOT_REFUSAL_CODES = { term: 1, gap: 2, checksum: 3, stale: 4, storage: 5 } as const satisfies Record<
  SnapshotRefusal,
  number
>;

/** Bounds a decoder (and an encoder) enforces. */
export interface CodecLimits {
  /** Largest frame, in bytes. Default 64 MiB. */
  readonly maxFrameBytes?: number;
  /** Most messages in one frame. Default 65,536. */
  readonly maxMessages?: number;
  /** Most log entries in one frame, over all its messages. Default 1,048,576. */
  readonly maxEntries?: number;
}

/** The limits used when none are given. */
export const DEFAULT_CODEC_LIMITS: Required<CodecLimits> = Object.freeze({
  maxFrameBytes: 64 * 1024 * 1024,
  maxMessages: 65_536,
  maxEntries: 1_048_576,
});

/** Longest server id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 255;

const HEADER_BYTES = 5;
/** tag + term + two one-byte ids (the smallest possible message). */
const MIN_MESSAGE_BYTES = 1 + 8 + 2 + 2;
/** index + term + type + length. */
const ENTRY_HEADER_BYTES = 8 + 8 + 1 + 4;
const TWO_POW_32 = 4294967296;
/** Largest high word of a safe integer: 2^53 - 1 = 0x1FFFFF_FFFFFFFF. */
const MAX_SAFE_HI = 0x1fffff;

const TAG_TO_TYPE: readonly (RaftMessage['type'] | undefined)[] = (() => {
  const out: (RaftMessage['type'] | undefined)[] = [];
  for (const [type, code] of Object.entries(MESSAGE_TYPE_CODES)) out[code] = type as RaftMessage['type'];
  return out;
})();
/** Entry types by code: the inverse of {@link ENTRY_TYPE_CODES}. */
export const ENTRY_TYPES: readonly (EntryType | undefined)[] = (() => {
  const out: (EntryType | undefined)[] = [];
  for (const [type, code] of Object.entries(ENTRY_TYPE_CODES)) out[code] = type as EntryType;
  return out;
})();
const REFUSALS: readonly (VoteRefusal | undefined)[] = [undefined, 'term', 'voted', 'log', 'leader', 'learner'];
const SNAPSHOT_REFUSALS: readonly (SnapshotRefusal | undefined)[] = [undefined, 'term', 'gap', 'checksum', 'stale', 'storage'];
const SUFFRAGES = [undefined, 'voter', 'learner'] as const;
const MAX_SERVERS = 0xffff;

/** Validates a server list and returns its encoded size. */
function measureServers(field: string, list: unknown): number {
  if (!Array.isArray(list)) throw new CodecError(`${field}: must be an array`);
  if (list.length > MAX_SERVERS) throw new CodecError(`${field}: ${list.length} servers, at most ${MAX_SERVERS}`);
  let bytes = 2;
  for (let k = 0; k < list.length; k++) {
    const s = list[k] as Server;
    const f = `${field}[${k}]`;
    if (typeof s !== 'object' || s === null) throw new CodecError(`${f}: must be an object`);
    bytes += 1 + encodeId(`${f}.id`, s.id).length;
    if (typeof s.address !== 'string') throw new CodecError(`${f}.address: must be a string`);
    if (LONE_SURROGATE.test(s.address)) throw new CodecError(`${f}.address: contains a lone surrogate (not valid UTF-8)`);
    const address = utf8Encoder.encode(s.address).length;
    if (address > 0xffff) throw new CodecError(`${f}.address: ${address} bytes is too long`);
    if (s.suffrage !== undefined && s.suffrage !== 'voter' && s.suffrage !== 'learner') throw new CodecError(`${f}.suffrage: unknown suffrage ${JSON.stringify(String(s.suffrage))}`);
    if (s.autoPromote !== undefined) checkBool(`${f}.autoPromote`, s.autoPromote);
    bytes += 2 + address + 2;
  }
  return bytes;
}

/** Validates a configuration and returns its encoded size. */
function measureConfig(field: string, c: unknown): number {
  if (typeof c !== 'object' || c === null) throw new CodecError(`${field}: must be an object or null`);
  const { servers, old } = c as Configuration;
  return measureServers(`${field}.servers`, servers) + 1 + (old === undefined ? 0 : measureServers(`${field}.old`, old));
}

function resolveLimits(limits: CodecLimits | undefined): Required<CodecLimits> {
  if (limits === undefined) return DEFAULT_CODEC_LIMITS;
  return {
    maxFrameBytes: limits.maxFrameBytes ?? DEFAULT_CODEC_LIMITS.maxFrameBytes,
    maxMessages: limits.maxMessages ?? DEFAULT_CODEC_LIMITS.maxMessages,
    maxEntries: limits.maxEntries ?? DEFAULT_CODEC_LIMITS.maxEntries,
  };
}

// ---------------------------------------------------------------------------
// ids

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /\p{Cs}/u;
/** Encoded ids: a cluster has few, and every message carries two. Bounded. */
const idCache = new Map<string, Uint8Array>();
const ID_CACHE_MAX = 4096;

function encodeId(field: string, id: unknown): Uint8Array {
  if (typeof id !== 'string') throw new CodecError(`${field}: must be a string, got ${typeof id}`);
  const cached = idCache.get(id);
  if (cached !== undefined) return cached;
  if (id.length === 0) throw new CodecError(`${field}: must not be empty`);
  if (LONE_SURROGATE.test(id)) throw new CodecError(`${field}: contains a lone surrogate (not valid UTF-8)`);
  const bytes = utf8Encoder.encode(id);
  if (bytes.length > MAX_ID_BYTES) {
    throw new CodecError(`${field}: ${bytes.length} UTF-8 bytes, at most ${MAX_ID_BYTES} allowed`);
  }
  if (idCache.size >= ID_CACHE_MAX) idCache.clear();
  idCache.set(id, bytes);
  return bytes;
}

// ---------------------------------------------------------------------------
// encoding

function checkU64(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CodecError(`${field}: must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

function checkBool(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new CodecError(`${field}: must be a boolean, got ${typeof value}`);
  return value;
}

/** Validates `m` and returns its encoded size; fills `ids` with its encoded from/to. */
function measure(m: RaftMessage, i: number, ids: Uint8Array[]): { bytes: number; entries: number } {
  const at = `message[${i}]`;
  if (typeof m !== 'object' || m === null) throw new CodecError(`${at}: must be an object`);
  const tag = (MESSAGE_TYPE_CODES as Record<string, number | undefined>)[m.type];
  if (tag === undefined || !Object.hasOwn(MESSAGE_TYPE_CODES, m.type)) {
    throw new CodecError(`${at}.type: unknown message type ${JSON.stringify(String(m.type))}`);
  }
  checkU64(`${at}.term`, m.term);
  const from = encodeId(`${at}.from`, m.from);
  const to = encodeId(`${at}.to`, m.to);
  ids.push(from, to);
  let bytes = 1 + 8 + 1 + from.length + 1 + to.length;
  let entries = 0;
  switch (m.type) {
    case 'vote':
    case 'preVote':
      checkU64(`${at}.lastLogIndex`, m.lastLogIndex);
      checkU64(`${at}.lastLogTerm`, m.lastLogTerm);
      bytes += 17;
      if (m.transfer !== undefined) {
        checkBool(`${at}.transfer`, m.transfer);
        bytes += 1;
      }
      break;
    case 'voteResponse':
    case 'preVoteResponse':
      checkBool(`${at}.granted`, m.granted);
      if (m.reason !== undefined && !Object.hasOwn(VOTE_REFUSAL_CODES, m.reason)) {
        throw new CodecError(`${at}.reason: unknown refusal ${JSON.stringify(String(m.reason))}`);
      }
      bytes += 2;
      break;
    case 'append': {
      checkU64(`${at}.prevLogIndex`, m.prevLogIndex);
      checkU64(`${at}.prevLogTerm`, m.prevLogTerm);
      checkU64(`${at}.leaderCommit`, m.leaderCommit);
      if (!Array.isArray(m.entries)) throw new CodecError(`${at}.entries: must be an array`);
      bytes += 28;
      const list = m.entries;
      for (let j = 0; j < list.length; j++) {
        const e = list[j] as LogEntry;
        const ef = `${at}.entries[${j}]`;
        if (typeof e !== 'object' || e === null) throw new CodecError(`${ef}: must be an object`);
        checkU64(`${ef}.index`, e.index);
        checkU64(`${ef}.term`, e.term);
        if (!Object.hasOwn(ENTRY_TYPE_CODES, e.type)) {
          throw new CodecError(`${ef}.type: unknown entry type ${JSON.stringify(String(e.type))}`);
        }
        if (!(e.data instanceof Uint8Array)) throw new CodecError(`${ef}.data: must be a Uint8Array`);
        if (e.data.length >= TWO_POW_32) throw new CodecError(`${ef}.data: ${e.data.length} bytes is too long`);
        bytes += ENTRY_HEADER_BYTES + e.data.length;
      }
      entries = list.length;
      break;
    }
    case 'appendResponse':
      checkBool(`${at}.success`, m.success);
      checkU64(`${at}.index`, m.index);
      checkU64(`${at}.hintTerm`, m.hintTerm);
      checkU64(`${at}.hintIndex`, m.hintIndex);
      bytes += 25;
      break;
    case 'heartbeat':
      checkU64(`${at}.commit`, m.commit);
      bytes += 9;
      if (m.round !== undefined) {
        checkU64(`${at}.round`, m.round);
        bytes += 8;
      }
      break;
    case 'heartbeatResponse':
      bytes += 1;
      if (m.round !== undefined) {
        checkU64(`${at}.round`, m.round);
        bytes += 8;
      }
      break;
    case 'readIndex':
      checkU64(`${at}.requestId`, m.requestId);
      bytes += 8;
      break;
    case 'readIndexResponse':
      checkU64(`${at}.requestId`, m.requestId);
      checkBool(`${at}.success`, m.success);
      checkU64(`${at}.index`, m.index);
      bytes += 17;
      break;
    case 'timeoutNow':
      break;
    case 'installSnapshot':
      checkU64(`${at}.snapshotIndex`, m.snapshotIndex);
      checkU64(`${at}.snapshotTerm`, m.snapshotTerm);
      checkU64(`${at}.configurationIndex`, m.configurationIndex);
      checkU64(`${at}.seq`, m.seq);
      checkU64(`${at}.offset`, m.offset);
      if (typeof m.checksum !== 'number' || !Number.isInteger(m.checksum) || m.checksum < 0 || m.checksum > 0xffffffff) {
        throw new CodecError(`${at}.checksum: must be a 32-bit unsigned integer, got ${String(m.checksum)}`);
      }
      checkBool(`${at}.done`, m.done);
      bytes += 5 * 8 + 4 + 1 + 1 + 1 + 4;
      if (m.size !== null) {
        checkU64(`${at}.size`, m.size);
        bytes += 8;
      }
      if (m.configuration !== null) bytes += measureConfig(`${at}.configuration`, m.configuration);
      if (!(m.data instanceof Uint8Array)) throw new CodecError(`${at}.data: must be a Uint8Array`);
      if (m.data.length >= TWO_POW_32) throw new CodecError(`${at}.data: ${m.data.length} bytes is too long`);
      bytes += m.data.length;
      break;
    case 'installSnapshotResponse':
      checkU64(`${at}.snapshotIndex`, m.snapshotIndex);
      checkU64(`${at}.snapshotTerm`, m.snapshotTerm);
      checkU64(`${at}.seq`, m.seq);
      checkBool(`${at}.ok`, m.ok);
      if (m.reason !== null && !Object.hasOwn(SNAPSHOT_REFUSAL_CODES, m.reason)) {
        throw new CodecError(`${at}.reason: unknown refusal ${JSON.stringify(String(m.reason))}`);
      }
      checkU64(`${at}.next`, m.next);
      checkBool(`${at}.installed`, m.installed);
      bytes += 3 * 8 + 1 + 1 + 8 + 1;
      break;
  }
  return { bytes, entries };
}

/**
 * Encodes a batch of messages as one frame.
 *
 * @param messages - The batch, in order; may be empty.
 * @param limits - Refuses to build a frame its peer would refuse; defaults to {@link DEFAULT_CODEC_LIMITS}.
 * @returns A fresh buffer holding exactly the frame.
 * @throws A {@link CodecError} naming the field when a message is malformed
 *   (unknown type, negative or unsafe number, id empty, longer than 255 UTF-8
 *   bytes or not well-formed Unicode, data not a `Uint8Array`), or when the
 *   frame exceeds a limit.
 *
 * @example
 * ```ts
 * const bytes = encodeFrame([{ type: 'heartbeat', term: 3, from: 'n1', to: 'n2', commit: 7 }]);
 * decodeFrame(bytes); // [{ type: 'heartbeat', term: 3, from: 'n1', to: 'n2', commit: 7 }]
 * ```
 */
export function encodeFrame(messages: readonly RaftMessage[], limits?: CodecLimits): Uint8Array {
  const lim = resolveLimits(limits);
  const n = messages.length;
  if (n > lim.maxMessages) throw new CodecError(`frame: ${n} messages, at most ${lim.maxMessages} allowed`);
  const ids: Uint8Array[] = [];
  let size = HEADER_BYTES;
  let entries = 0;
  for (let i = 0; i < n; i++) {
    const r = measure(messages[i] as RaftMessage, i, ids);
    size += r.bytes;
    entries += r.entries;
  }
  if (entries > lim.maxEntries) throw new CodecError(`frame: ${entries} entries, at most ${lim.maxEntries} allowed`);
  if (size > lim.maxFrameBytes) throw new CodecError(`frame: ${size} bytes, at most ${lim.maxFrameBytes} allowed`);

  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  const u8 = (v: number): void => {
    out[o++] = v;
  };
  const u32 = (v: number): void => {
    view.setUint32(o, v);
    o += 4;
  };
  const u64 = (v: number): void => {
    view.setUint32(o, Math.floor(v / TWO_POW_32));
    view.setUint32(o + 4, v >>> 0);
    o += 8;
  };
  const bytes = (b: Uint8Array): void => {
    out.set(b, o);
    o += b.length;
  };
  const u16 = (v: number): void => {
    view.setUint16(o, v);
    o += 2;
  };
  const servers = (list: readonly Server[]): void => {
    u16(list.length);
    for (const s of list) {
      const id = utf8Encoder.encode(s.id);
      u8(id.length);
      bytes(id);
      const address = utf8Encoder.encode(s.address);
      u16(address.length);
      bytes(address);
      u8(s.suffrage === undefined ? 0 : s.suffrage === 'voter' ? 1 : 2);
      u8(s.autoPromote === undefined ? 0 : s.autoPromote ? 2 : 1);
    }
  };
  u8(CODEC_VERSION);
  u32(n);
  for (let i = 0; i < n; i++) {
    const m = messages[i] as RaftMessage;
    const from = ids[2 * i] as Uint8Array;
    const to = ids[2 * i + 1] as Uint8Array;
    u8(MESSAGE_TYPE_CODES[m.type]);
    u64(m.term);
    u8(from.length);
    bytes(from);
    u8(to.length);
    bytes(to);
    switch (m.type) {
      case 'vote':
      case 'preVote':
        u64(m.lastLogIndex);
        u64(m.lastLogTerm);
        if (m.transfer === undefined) u8(0);
        else {
          u8(1);
          u8(m.transfer ? 1 : 0);
        }
        break;
      case 'voteResponse':
      case 'preVoteResponse':
        u8(m.granted ? 1 : 0);
        u8(m.reason === undefined ? 0 : VOTE_REFUSAL_CODES[m.reason]);
        break;
      case 'append':
        u64(m.prevLogIndex);
        u64(m.prevLogTerm);
        u64(m.leaderCommit);
        u32(m.entries.length);
        for (const e of m.entries) {
          u64(e.index);
          u64(e.term);
          u8(ENTRY_TYPE_CODES[e.type]);
          u32(e.data.length);
          bytes(e.data);
        }
        break;
      case 'appendResponse':
        u8(m.success ? 1 : 0);
        u64(m.index);
        u64(m.hintTerm);
        u64(m.hintIndex);
        break;
      case 'heartbeat':
        u64(m.commit);
        if (m.round === undefined) u8(0);
        else {
          u8(1);
          u64(m.round);
        }
        break;
      case 'heartbeatResponse':
        if (m.round === undefined) u8(0);
        else {
          u8(1);
          u64(m.round);
        }
        break;
      case 'readIndex':
        u64(m.requestId);
        break;
      case 'readIndexResponse':
        u64(m.requestId);
        u8(m.success ? 1 : 0);
        u64(m.index);
        break;
      case 'timeoutNow':
        break;
      case 'installSnapshot':
        u64(m.snapshotIndex);
        u64(m.snapshotTerm);
        u64(m.configurationIndex);
        u64(m.seq);
        u64(m.offset);
        u32(m.checksum);
        u8(m.done ? 1 : 0);
        if (m.size === null) u8(0);
        else {
          u8(1);
          u64(m.size);
        }
        if (m.configuration === null) u8(0);
        else {
          u8(1);
          servers(m.configuration.servers);
          if (m.configuration.old === undefined) u8(0);
          else {
            u8(1);
            servers(m.configuration.old);
          }
        }
        u32(m.data.length);
        bytes(m.data);
        break;
      case 'installSnapshotResponse':
        u64(m.snapshotIndex);
        u64(m.snapshotTerm);
        u64(m.seq);
        u8(m.ok ? 1 : 0);
        u8(m.reason === null ? 0 : SNAPSHOT_REFUSAL_CODES[m.reason]);
        u64(m.next);
        u8(m.installed ? 1 : 0);
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// decoding

/** A cursor over one frame; every read checks bounds first. */
class Reader {
  o = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  remaining(): number {
    return this.bytes.length - this.o;
  }

  need(field: string, n: number): void {
    if (this.bytes.length - this.o < n) {
      throw new CodecError(`${field} at offset ${this.o}: needs ${n} bytes, only ${this.bytes.length - this.o} remain`);
    }
  }

  u8(field: string): number {
    this.need(field, 1);
    return this.bytes[this.o++] as number;
  }

  u32(field: string): number {
    this.need(field, 4);
    const v = this.view.getUint32(this.o);
    this.o += 4;
    return v;
  }

  u64(field: string): number {
    this.need(field, 8);
    const hi = this.view.getUint32(this.o);
    if (hi > MAX_SAFE_HI) throw new CodecError(`${field} at offset ${this.o}: exceeds Number.MAX_SAFE_INTEGER`);
    const v = hi * TWO_POW_32 + this.view.getUint32(this.o + 4);
    this.o += 8;
    return v;
  }

  u16(field: string): number {
    this.need(field, 2);
    const v = this.view.getUint16(this.o);
    this.o += 2;
    return v;
  }

  /** A UTF-8 string of `len` bytes (may be empty). */
  text(field: string, len: number): string {
    this.need(field, len);
    const start = this.o;
    this.o += len;
    try {
      return utf8Decoder.decode(this.bytes.subarray(start, start + len));
    } catch {
      throw new CodecError(`${field} at offset ${start}: not valid UTF-8`);
    }
  }

  servers(field: string): Server[] {
    const n = this.u16(`${field} count`);
    const out: Server[] = [];
    for (let k = 0; k < n; k++) {
      const f = `${field}[${k}]`;
      const id = this.id(`${f}.id`);
      const address = this.text(`${f}.address`, this.u16(`${f}.address length`));
      const suffrageAt = this.o;
      const code = this.u8(`${f}.suffrage`);
      if (code >= SUFFRAGES.length) throw new CodecError(`${f}.suffrage at offset ${suffrageAt}: unknown code ${code}`);
      const suffrage = SUFFRAGES[code];
      const promoteAt = this.o;
      const promote = this.u8(`${f}.autoPromote`);
      if (promote > 2) throw new CodecError(`${f}.autoPromote at offset ${promoteAt}: unknown code ${promote}`);
      const server: { id: string; address: string; suffrage?: 'voter' | 'learner'; autoPromote?: boolean } = { id, address };
      if (suffrage !== undefined) server.suffrage = suffrage;
      if (promote !== 0) server.autoPromote = promote === 2;
      out.push(server);
    }
    return out;
  }

  bool(field: string): boolean {
    const at = this.o;
    const v = this.u8(field);
    if (v > 1) throw new CodecError(`${field} at offset ${at}: boolean must be 0 or 1, got ${v}`);
    return v === 1;
  }

  id(field: string): string {
    const at = this.o;
    const len = this.u8(`${field} length`);
    if (len === 0) throw new CodecError(`${field} at offset ${at}: id must not be empty`);
    this.need(field, len);
    const start = this.o;
    const end = start + len;
    const b = this.bytes;
    this.o = end;
    let ascii = true;
    for (let k = start; k < end; k++) {
      if ((b[k] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, b.subarray(start, end) as unknown as number[]);
    try {
      return utf8Decoder.decode(b.subarray(start, end));
    } catch {
      throw new CodecError(`${field} at offset ${start}: not valid UTF-8`);
    }
  }
}

/**
 * Decodes one frame into its messages, validating every field.
 *
 * @param bytes - Exactly one frame (no trailing bytes).
 * @param limits - Bounds on frame size, messages and entries; defaults to {@link DEFAULT_CODEC_LIMITS}.
 * @returns The messages, in frame order. Entry `data` are views into `bytes`.
 * @throws A {@link CodecError} naming the field and byte offset on any
 *   violation: wrong version, unknown tag, truncation, a length or count past
 *   the remaining bytes or a limit, a number above `Number.MAX_SAFE_INTEGER`,
 *   a boolean other than 0/1, an empty, over-long or invalid UTF-8 id, trailing
 *   bytes. Never any other exception.
 *
 * @example
 * ```ts
 * ws.on('message', (data: Buffer) => {
 *   try { for (const m of decodeFrame(data)) handler(m) }
 *   catch (err) { if (err instanceof CodecError) ws.close(4002, 'bad frame') }
 * });
 * ```
 */
export function decodeFrame(bytes: Uint8Array, limits?: CodecLimits): RaftMessage[] {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('frame: must be a Uint8Array');
  const lim = resolveLimits(limits);
  if (bytes.length > lim.maxFrameBytes) {
    throw new CodecError(`frame at offset 0: ${bytes.length} bytes, at most ${lim.maxFrameBytes} allowed`);
  }
  const r = new Reader(bytes);
  const version = r.u8('version');
  if (version !== CODEC_VERSION) {
    throw new CodecError(`version at offset 0: unsupported codec version ${version}, expected ${CODEC_VERSION}`);
  }
  const countAt = r.o;
  const count = r.u32('message count');
  if (count > lim.maxMessages) {
    throw new CodecError(`message count at offset ${countAt}: ${count} exceeds the limit of ${lim.maxMessages}`);
  }
  if (count * MIN_MESSAGE_BYTES > r.remaining()) {
    throw new CodecError(`message count at offset ${countAt}: ${count} messages cannot fit in ${r.remaining()} bytes`);
  }
  const out: RaftMessage[] = [];
  let entriesLeft = lim.maxEntries;
  for (let i = 0; i < count; i++) {
    const at = `message[${i}]`;
    const tagAt = r.o;
    const tag = r.u8(`${at}.type`);
    const type = TAG_TO_TYPE[tag];
    if (type === undefined) throw new CodecError(`${at}.type at offset ${tagAt}: unknown type tag ${tag}`);
    const term = r.u64(`${at}.term`);
    const from = r.id(`${at}.from`);
    const to = r.id(`${at}.to`);
    switch (type) {
      case 'vote':
      case 'preVote': {
        const lastLogIndex = r.u64(`${at}.lastLogIndex`);
        const lastLogTerm = r.u64(`${at}.lastLogTerm`);
        if (r.bool(`${at}.hasTransfer`)) {
          const transfer = r.bool(`${at}.transfer`);
          out.push({ type, term, from, to, lastLogIndex, lastLogTerm, transfer });
        } else {
          out.push({ type, term, from, to, lastLogIndex, lastLogTerm });
        }
        break;
      }
      case 'voteResponse':
      case 'preVoteResponse': {
        const granted = r.bool(`${at}.granted`);
        const reasonAt = r.o;
        const code = r.u8(`${at}.reason`);
        if (code >= REFUSALS.length) {
          throw new CodecError(`${at}.reason at offset ${reasonAt}: unknown refusal code ${code}`);
        }
        const reason = REFUSALS[code];
        out.push(reason === undefined ? { type, term, from, to, granted } : { type, term, from, to, granted, reason });
        break;
      }
      case 'append': {
        const prevLogIndex = r.u64(`${at}.prevLogIndex`);
        const prevLogTerm = r.u64(`${at}.prevLogTerm`);
        const leaderCommit = r.u64(`${at}.leaderCommit`);
        const nAt = r.o;
        const n = r.u32(`${at}.entries count`);
        if (n > entriesLeft) {
          throw new CodecError(`${at}.entries count at offset ${nAt}: ${n} exceeds the frame limit of ${lim.maxEntries} entries`);
        }
        if (n * ENTRY_HEADER_BYTES > r.remaining()) {
          throw new CodecError(`${at}.entries count at offset ${nAt}: ${n} entries cannot fit in ${r.remaining()} bytes`);
        }
        entriesLeft -= n;
        const entries: LogEntry[] = [];
        for (let j = 0; j < n; j++) {
          const ef = `${at}.entries[${j}]`;
          const index = r.u64(`${ef}.index`);
          const eterm = r.u64(`${ef}.term`);
          const typeAt = r.o;
          const etype = ENTRY_TYPES[r.u8(`${ef}.type`)];
          if (etype === undefined) {
            throw new CodecError(`${ef}.type at offset ${typeAt}: unknown entry type code ${bytes[typeAt] as number}`);
          }
          const lenAt = r.o;
          const len = r.u32(`${ef}.data length`);
          if (len > r.remaining()) {
            throw new CodecError(`${ef}.data length at offset ${lenAt}: ${len} bytes but only ${r.remaining()} remain`);
          }
          const data = new Uint8Array(bytes.buffer, bytes.byteOffset + r.o, len);
          r.o += len;
          entries.push({ index, term: eterm, type: etype, data });
        }
        out.push({ type, term, from, to, prevLogIndex, prevLogTerm, entries, leaderCommit });
        break;
      }
      case 'appendResponse': {
        const success = r.bool(`${at}.success`);
        const index = r.u64(`${at}.index`);
        const hintTerm = r.u64(`${at}.hintTerm`);
        const hintIndex = r.u64(`${at}.hintIndex`);
        out.push({ type, term, from, to, success, index, hintTerm, hintIndex });
        break;
      }
      case 'heartbeat': {
        const commit = r.u64(`${at}.commit`);
        if (r.bool(`${at}.hasRound`)) out.push({ type, term, from, to, commit, round: r.u64(`${at}.round`) });
        else out.push({ type, term, from, to, commit });
        break;
      }
      case 'heartbeatResponse':
        if (r.bool(`${at}.hasRound`)) out.push({ type, term, from, to, round: r.u64(`${at}.round`) });
        else out.push({ type, term, from, to });
        break;
      case 'readIndex':
        out.push({ type, term, from, to, requestId: r.u64(`${at}.requestId`) });
        break;
      case 'readIndexResponse': {
        const requestId = r.u64(`${at}.requestId`);
        const success = r.bool(`${at}.success`);
        const index = r.u64(`${at}.index`);
        out.push({ type, term, from, to, requestId, success, index });
        break;
      }
      case 'timeoutNow':
        out.push({ type, term, from, to });
        break;
      case 'installSnapshot': {
        const snapshotIndex = r.u64(`${at}.snapshotIndex`);
        const snapshotTerm = r.u64(`${at}.snapshotTerm`);
        const configurationIndex = r.u64(`${at}.configurationIndex`);
        const seq = r.u64(`${at}.seq`);
        const offset = r.u64(`${at}.offset`);
        const checksum = r.u32(`${at}.checksum`);
        const done = r.bool(`${at}.done`);
        const size = r.bool(`${at}.hasSize`) ? r.u64(`${at}.size`) : null;
        let configuration: Configuration | null = null;
        if (r.bool(`${at}.hasConfig`)) {
          const servers = r.servers(`${at}.configuration.servers`);
          configuration = r.bool(`${at}.configuration.hasOld`) ? { servers, old: r.servers(`${at}.configuration.old`) } : { servers };
        }
        const lenAt = r.o;
        const len = r.u32(`${at}.data length`);
        if (len > r.remaining()) throw new CodecError(`${at}.data length at offset ${lenAt}: ${len} bytes but only ${r.remaining()} remain`);
        const data = new Uint8Array(bytes.buffer, bytes.byteOffset + r.o, len);
        r.o += len;
        out.push({ type, term, from, to, snapshotIndex, snapshotTerm, configuration, configurationIndex, seq, offset, data, checksum, done, size });
        break;
      }
      case 'installSnapshotResponse': {
        const snapshotIndex = r.u64(`${at}.snapshotIndex`);
        const snapshotTerm = r.u64(`${at}.snapshotTerm`);
        const seq = r.u64(`${at}.seq`);
        const ok = r.bool(`${at}.ok`);
        const reasonAt = r.o;
        const code = r.u8(`${at}.reason`);
        if (code >= SNAPSHOT_REFUSALS.length) throw new CodecError(`${at}.reason at offset ${reasonAt}: unknown refusal code ${code}`);
        const next = r.u64(`${at}.next`);
        const installed = r.bool(`${at}.installed`);
        out.push({ type, term, from, to, snapshotIndex, snapshotTerm, seq, ok, reason: SNAPSHOT_REFUSALS[code] ?? null, next, installed });
        break;
      }
    }
  }
  if (r.remaining() !== 0) throw new CodecError(`frame at offset ${r.o}: ${r.remaining()} trailing bytes`);
  return out;
}
