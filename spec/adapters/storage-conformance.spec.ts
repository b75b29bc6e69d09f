import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLevel } from 'memory-level';
import t from 'tap';
import { LevelStorage } from '../../adapters/storage/level.js';
import { crc32Js } from '../../adapters/storage/crc32.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { storageConformance, type StorageFactory } from './storage.suite.js';

type Corrupt = NonNullable<StorageFactory['corruptChunk']>;

const VIEW = { keyEncoding: 'view', valueEncoding: 'view' } as const;

/** MemoryStorage keeps chunks by reference: damaging the appended buffer is damaging the store. */
const memoryCorrupt: Corrupt = async (target, seq, appended) => {
  appended[0] = (appended[0] ?? 0) ^ 0xff;
  return target.kind === 'staged' ? `staging/${seq}` : `snapshot/${target.index}/${seq}`;
};

/** Flips the last byte of chunk `seq` of the newest slot (the documented key: 's' ‖ u64 slot ‖ u32 seq). */
const levelCorrupt = (db: MemoryLevel<Uint8Array, Uint8Array>): Corrupt => async (_target, seq) => {
  let newest: Uint8Array | null = null;
  for await (const key of db.keys({ gte: Uint8Array.of(0x73), lt: Uint8Array.of(0x74), reverse: true, limit: 1, ...VIEW })) newest = key;
  if (newest === null) throw new Error('no chunk records');
  const key = Uint8Array.from(newest);
  new DataView(key.buffer).setUint32(9, seq);
  const value = await db.get(key, VIEW);
  if (value === undefined) throw new Error(`no chunk ${seq}`);
  const damaged = Uint8Array.from(value);
  damaged[damaged.length - 1] = (damaged[damaged.length - 1] ?? 0) ^ 0x01;
  await db.put(key, damaged, VIEW);
  return Buffer.from(key).toString('hex');
};

storageConformance(t, 'MemoryStorage', () => {
  const s = new MemoryStorage();
  return { create: () => s, reopen: () => s, corruptChunk: memoryCorrupt };
});

storageConformance(t, 'MemoryStorage with a 1 ms sync', () => {
  const s = new MemoryStorage({ syncDelayMs: 1 });
  return { create: () => s, reopen: () => s, corruptChunk: memoryCorrupt };
});

storageConformance(t, 'LevelStorage on classic-level', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-level-'));
  const path = join(dir, 'db');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { create: () => new LevelStorage({ path }), reopen: () => new LevelStorage({ path }) };
});

storageConformance(t, 'LevelStorage on memory-level', (t) => {
  const db = new MemoryLevel<Uint8Array, Uint8Array>(VIEW);
  t.teardown(() => db.close());
  return { create: () => new LevelStorage({ db }), reopen: () => new LevelStorage({ db }), corruptChunk: levelCorrupt(db) };
});

storageConformance(t, 'LevelStorage on memory-level with the portable CRC-32 (as in a browser)', (t) => {
  const db = new MemoryLevel<Uint8Array, Uint8Array>(VIEW);
  t.teardown(() => db.close());
  return {
    create: () => new LevelStorage({ db, crc32: crc32Js }),
    reopen: () => new LevelStorage({ db, crc32: crc32Js }),
    corruptChunk: levelCorrupt(db),
  };
});
