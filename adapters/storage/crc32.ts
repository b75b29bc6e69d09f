/**
 * CRC-32 (the IEEE 802.3 / zlib polynomial) for the storage adapters.
 *
 * {@link LevelStorage} checksums every record. On Node ≥ 20.15 it uses
 * `zlib.crc32` (native); elsewhere — a browser with `browser-level`, an older
 * Node — it falls back to {@link crc32Js}, a table-driven implementation in
 * plain TypeScript that gives bit-for-bit the same values, so a store written
 * by one runtime opens in the other.
 *
 * @module
 */

/** A CRC-32 function with zlib's signature: `crc32(data, previous)` continues `previous`. */
export type Crc32 = (data: Uint8Array, previous?: number) => number;

const POLY = 0xedb88320;

/** Eight 256-entry tables for slicing-by-8: table k maps a byte k positions back. */
const TABLES: readonly Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const t0 = tables[0] as Uint32Array;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t0[n] as number;
    for (let k = 1; k < 8; k++) {
      c = (t0[c & 0xff] as number) ^ (c >>> 8);
      (tables[k] as Uint32Array)[n] = c >>> 0;
    }
  }
  return tables;
})();

/**
 * CRC-32 of `data` in plain TypeScript, continuing from `previous` (default 0),
 * equal to `zlib.crc32(data, previous)`.
 *
 * @example
 * ```ts
 * crc32Js(new TextEncoder().encode('123456789')) === 0xcbf43926; // true
 * ```
 */
export function crc32Js(data: Uint8Array, previous = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array,
    Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let crc = ~previous >>> 0;
  let i = 0;
  const end8 = data.length - (data.length % 8);
  while (i < end8) {
    const a = crc ^ ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24));
    crc = (t7[a & 0xff] as number) ^ (t6[(a >>> 8) & 0xff] as number) ^ (t5[(a >>> 16) & 0xff] as number) ^ (t4[a >>> 24] as number)
      ^ (t3[data[i + 4] as number] as number) ^ (t2[data[i + 5] as number] as number)
      ^ (t1[data[i + 6] as number] as number) ^ (t0[data[i + 7] as number] as number);
    i += 8;
  }
  while (i < data.length) crc = (t0[(crc ^ (data[i++] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

let native: Promise<Crc32> | null = null;

/**
 * The fastest CRC-32 this runtime has: Node's `zlib.crc32` when it exists,
 * otherwise {@link crc32Js}. Resolved once; the import is dynamic so that
 * bundling for a browser never needs `node:zlib`.
 */
export function loadCrc32(): Promise<Crc32> {
  native ??= import('node:zlib').then(
    (zlib: { crc32?: unknown }) => (typeof zlib.crc32 === 'function' ? (zlib.crc32 as Crc32) : crc32Js),
    () => crc32Js,
  );
  return native;
}
