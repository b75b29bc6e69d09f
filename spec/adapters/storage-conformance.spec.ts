import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLevel } from 'memory-level';
import t from 'tap';
import { LevelStorage } from '../../adapters/storage/level.js';
import { crc32Js } from '../../adapters/storage/crc32.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import { storageConformance } from './storage.suite.js';

storageConformance(t, 'MemoryStorage', () => {
  const s = new MemoryStorage();
  return { create: () => s, reopen: () => s };
});

storageConformance(t, 'MemoryStorage with a 1 ms sync', () => {
  const s = new MemoryStorage({ syncDelayMs: 1 });
  return { create: () => s, reopen: () => s };
});

storageConformance(t, 'LevelStorage on classic-level', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-level-'));
  const path = join(dir, 'db');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { create: () => new LevelStorage({ path }), reopen: () => new LevelStorage({ path }) };
});

storageConformance(t, 'LevelStorage on memory-level', (t) => {
  const db = new MemoryLevel();
  t.teardown(() => db.close());
  return { create: () => new LevelStorage({ db }), reopen: () => new LevelStorage({ db }) };
});

storageConformance(t, 'LevelStorage on memory-level with the portable CRC-32 (as in a browser)', (t) => {
  const db = new MemoryLevel();
  t.teardown(() => db.close());
  return { create: () => new LevelStorage({ db, crc32: crc32Js }), reopen: () => new LevelStorage({ db, crc32: crc32Js }) };
});
