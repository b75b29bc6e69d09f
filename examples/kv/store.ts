/**
 * The key-value state machine of the kv service: a `Map` of UTF-8 keys to byte
 * values, changed only by committed commands, with a compact binary encoding
 * of those commands and of snapshots.
 *
 * ## Command encoding
 *
 * ```
 * put     0x01  u32 keyLength  key  value…
 * delete  0x02  u32 keyLength  key
 * cas     0x03  u32 keyLength  key  0x00                     value…   (expect: absent)
 *                                   0x01 u32 expectLength expect value…
 * ```
 * Lengths are big-endian; the value runs to the end of the command.
 *
 * ## Snapshot encoding
 *
 * `"RCKV"`, version `0x01`, u32 count, then per key (in insertion order)
 * `u32 keyLength key u32 valueLength value`.
 *
 * @module
 */
import { CodecError, type AppliedEntry, type SnapshotMeta, type StateMachine } from '../../index.js';

/** A command of the kv state machine. Keys are strings; values are bytes. */
export type KvCommand =
  | { readonly op: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'cas'; readonly key: string; readonly expect: Uint8Array | null; readonly value: Uint8Array };

/** What applying one command returned; `propose` resolves with it on the node that proposed. */
export type KvResult =
  | { readonly op: 'put' }
  | { readonly op: 'delete'; readonly existed: boolean }
  /** `ok`: the value matched and was replaced; `current`: the value before the command (`null`: absent). */
  | { readonly op: 'cas'; readonly ok: boolean; readonly current: Uint8Array | null }
  /** The entry was not a kv command (e.g. written by another program into the same log); it changed nothing. */
  | { readonly op: 'invalid'; readonly reason: string };

const OP_PUT = 1;
const OP_DELETE = 2;
const OP_CAS = 3;
const SNAPSHOT_MAGIC = [0x52, 0x43, 0x4b, 0x56]; // "RCKV"
const SNAPSHOT_VERSION = 1;
/** Snapshot chunks are cut at about this size. */
const CHUNK_BYTES = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function u32(out: Uint8Array, at: number, n: number): void {
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(at, n);
}

/**
 * Encodes a command in the compact binary form the log stores.
 *
 * @example
 * ```ts
 * const bytes = encodeCommand({ op: 'put', key: 'a', value: new TextEncoder().encode('1') })
 * decodeCommand(bytes) // { op: 'put', key: 'a', value: Uint8Array [49] }
 * ```
 */
export function encodeCommand(command: KvCommand): Uint8Array {
  const key = encoder.encode(command.key);
  const head = 1 + 4 + key.byteLength;
  let out: Uint8Array;
  if (command.op === 'put') {
    out = new Uint8Array(head + command.value.byteLength);
    out.set(command.value, head);
  } else if (command.op === 'delete') {
    out = new Uint8Array(head);
  } else {
    const expect = command.expect;
    const extra = expect === null ? 1 : 5 + expect.byteLength;
    out = new Uint8Array(head + extra + command.value.byteLength);
    if (expect !== null) {
      out[head] = 1;
      u32(out, head + 1, expect.byteLength);
      out.set(expect, head + 5);
    }
    out.set(command.value, head + extra);
  }
  out[0] = command.op === 'put' ? OP_PUT : command.op === 'delete' ? OP_DELETE : OP_CAS;
  u32(out, 1, key.byteLength);
  out.set(key, 5);
  return out;
}

/**
 * Decodes a command written by {@link encodeCommand}.
 *
 * @throws `CodecError` (code `CODEC`) for bytes that are not a kv command: unknown op, truncated,
 * a key that is not UTF-8.
 */
export function decodeCommand(bytes: Uint8Array): KvCommand {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 5) throw new CodecError(`kv command of ${bytes.byteLength} bytes is truncated`);
  const op = bytes[0];
  const keyLength = view.getUint32(1);
  const head = 5 + keyLength;
  if (head > bytes.byteLength) throw new CodecError(`kv command key of ${keyLength} bytes overruns the command`);
  let key: string;
  try {
    key = decoder.decode(bytes.subarray(5, head));
  } catch {
    throw new CodecError('kv command key is not UTF-8');
  }
  if (op === OP_PUT) return { op: 'put', key, value: bytes.slice(head) };
  if (op === OP_DELETE) {
    if (head !== bytes.byteLength) throw new CodecError('kv delete command has trailing bytes');
    return { op: 'delete', key };
  }
  if (op === OP_CAS) {
    const flag = bytes[head];
    if (flag === 0) return { op: 'cas', key, expect: null, value: bytes.slice(head + 1) };
    if (flag === 1 && head + 5 <= bytes.byteLength) {
      const expectLength = view.getUint32(head + 1);
      const end = head + 5 + expectLength;
      if (end <= bytes.byteLength) return { op: 'cas', key, expect: bytes.slice(head + 5, end), value: bytes.slice(end) };
    }
    throw new CodecError('kv cas command is truncated or has a bad expect flag');
  }
  throw new CodecError(`unknown kv command op ${String(op)}`);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The replicated map: apply, snapshot and restore per the raftchart `StateMachine` contract.
 *
 * @remarks `apply` is deterministic and never throws: an entry that is not a kv command
 * changes nothing and returns `{ op: 'invalid' }`. Reads (`get`, `size`, `entries`) see
 * the state as of the last applied entry; call `node.readIndex()` first for a linearizable read.
 *
 * @example
 * ```ts
 * const store = new KvStore()
 * store.apply({ index: 1, term: 1, data: encodeCommand({ op: 'put', key: 'a', value: new Uint8Array([1]) }) })
 * store.get('a') // Uint8Array [1]
 * ```
 */
export class KvStore implements StateMachine<KvResult> {
  readonly #map = new Map<string, Uint8Array>();
  /** Index of the last entry applied, 0 before any. */
  appliedIndex = 0;

  /** Applies one committed entry. */
  apply(entry: AppliedEntry): KvResult {
    this.appliedIndex = entry.index;
    let command: KvCommand;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      return { op: 'invalid', reason: (error as Error).message };
    }
    return this.execute(command);
  }

  /** Runs a decoded command against the map (what `apply` does after decoding). */
  execute(command: KvCommand): KvResult {
    const current = this.#map.get(command.key) ?? null;
    switch (command.op) {
      case 'put':
        this.#map.set(command.key, command.value);
        return { op: 'put' };
      case 'delete':
        return { op: 'delete', existed: this.#map.delete(command.key) };
      case 'cas': {
        const ok = command.expect === null ? current === null : current !== null && sameBytes(current, command.expect);
        if (ok) this.#map.set(command.key, command.value);
        return { op: 'cas', ok, current };
      }
    }
  }

  /** The value of `key`, or `undefined`. */
  get(key: string): Uint8Array | undefined {
    return this.#map.get(key);
  }

  /** Number of keys. */
  get size(): number {
    return this.#map.size;
  }

  /** The keys and values, in insertion order. */
  entries(): IterableIterator<[string, Uint8Array]> {
    return this.#map.entries();
  }

  /**
   * Serializes the map as chunks of about 1 MiB (one `Uint8Array` for a small map).
   * The chunks are cut from a copy taken synchronously, so later applies do not change them.
   */
  async snapshot(): Promise<Uint8Array | AsyncIterable<Uint8Array>> {
    const chunks: Uint8Array[] = [];
    let parts: Uint8Array[] = [];
    let size = 0;
    const push = (bytes: Uint8Array): void => {
      parts.push(bytes);
      size += bytes.byteLength;
      if (size >= CHUNK_BYTES) flush();
    };
    const flush = (): void => {
      if (parts.length === 0) return;
      const chunk = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        chunk.set(p, at);
        at += p.byteLength;
      }
      chunks.push(chunk);
      parts = [];
      size = 0;
    };
    const header = new Uint8Array(9);
    header.set(SNAPSHOT_MAGIC, 0);
    header[4] = SNAPSHOT_VERSION;
    u32(header, 5, this.#map.size);
    push(header);
    for (const [key, value] of this.#map) {
      const k = encoder.encode(key);
      const record = new Uint8Array(8 + k.byteLength + value.byteLength);
      u32(record, 0, k.byteLength);
      record.set(k, 4);
      u32(record, 4 + k.byteLength, value.byteLength);
      record.set(value, 8 + k.byteLength);
      push(record);
    }
    flush();
    if (chunks.length === 1) return chunks[0] as Uint8Array;
    return (async function* () {
      yield* chunks;
    })();
  }

  /**
   * Replaces the map with the one a {@link KvStore.snapshot} serialized; `appliedIndex` becomes
   * `meta.index` (the state is that of the snapshot's last entry).
   *
   * @throws `CodecError` for bytes that are not a kv snapshot (bad magic or version, truncated,
   * trailing bytes); the map is left unchanged then.
   */
  async restore(chunks: AsyncIterable<Uint8Array>, meta?: SnapshotMeta): Promise<void> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of chunks) {
      parts.push(chunk);
      total += chunk.byteLength;
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.byteLength;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (total < 9 || SNAPSHOT_MAGIC.some((b, i) => bytes[i] !== b)) throw new CodecError('not a kv snapshot (bad magic)');
    if (bytes[4] !== SNAPSHOT_VERSION) throw new CodecError(`kv snapshot version ${String(bytes[4])} is not supported (expected ${SNAPSHOT_VERSION})`);
    const count = view.getUint32(5);
    const map = new Map<string, Uint8Array>();
    let pos = 9;
    const take = (what: string): Uint8Array => {
      if (pos + 4 > total) throw new CodecError(`kv snapshot truncated in a ${what} length`);
      const length = view.getUint32(pos);
      if (pos + 4 + length > total) throw new CodecError(`kv snapshot truncated in a ${what}`);
      const out = bytes.slice(pos + 4, pos + 4 + length);
      pos += 4 + length;
      return out;
    };
    for (let i = 0; i < count; i++) {
      let key: string;
      try {
        key = decoder.decode(take('key'));
      } catch (error) {
        if (error instanceof CodecError) throw error;
        throw new CodecError('kv snapshot key is not UTF-8');
      }
      map.set(key, take('value'));
    }
    if (pos !== total) throw new CodecError(`kv snapshot has ${total - pos} trailing bytes`);
    this.#map.clear();
    for (const [k, v] of map) this.#map.set(k, v);
    if (meta !== undefined) this.appliedIndex = meta.index;
  }
}
