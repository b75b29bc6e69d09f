/**
 * Micro-benchmark of {@link LevelStorage} on classic-level in a temporary
 * directory, every write synced (`sync: true`, an fsync per batch):
 * - single-entry writes, each awaited before the next (no group commit);
 * - 64-entry writes, each awaited (one batch per write);
 * - 64 single-entry writes issued in one turn, then awaited (group commit
 *   merges them into one batch).
 * Entries carry 256 bytes. Prints the median of 5 runs.
 *
 * Run: `npm run build && node dist/bench/level-storage.bench.js`
 * (not part of `npm run bench`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStorage } from '../adapters/storage/level.js';
import type { LogEntry } from '../machines/types.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SINGLE_WRITES = Number(process.env.BENCH_SINGLE ?? 1000);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 200);
const DATA = new Uint8Array(256).fill(7);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const entry = (index: number): LogEntry => ({ index, term: 1, type: 'normal', data: DATA });

/** Runs `body` on a fresh store; returns operations per second, `ops` being what `body` reports. */
async function measure(body: (s: LevelStorage) => Promise<number>): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-bench-'));
  const s = new LevelStorage({ path: join(dir, 'db') });
  try {
    await s.open();
    await s.write({ hardState: { term: 1, votedFor: null }, entries: [] });
    const start = performance.now();
    const ops = await body(s);
    return ops / ((performance.now() - start) / 1000);
  } finally {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const single = (s: LevelStorage): Promise<number> =>
  (async () => {
    for (let i = 1; i <= SINGLE_WRITES; i++) await s.write({ entries: [entry(i)] });
    return SINGLE_WRITES;
  })();

const batched = (s: LevelStorage): Promise<number> =>
  (async () => {
    let next = 1;
    for (let b = 0; b < BATCHES; b++) {
      const entries = Array.from({ length: 64 }, (_, i) => entry(next + i));
      next += 64;
      await s.write({ entries });
    }
    return BATCHES;
  })();

const grouped = (s: LevelStorage): Promise<number> =>
  (async () => {
    let next = 1;
    for (let b = 0; b < BATCHES; b++) {
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 64; i++) writes.push(s.write({ entries: [entry(next++)] }));
      await Promise.all(writes);
    }
    return BATCHES * 64;
  })();

const results: Record<string, number[]> = { single: [], batched: [], grouped: [] };
for (let run = 0; run < RUNS; run++) {
  results.single?.push(await measure(single));
  results.batched?.push(await measure(batched));
  results.grouped?.push(await measure(grouped));
}
const s = median(results.single ?? []);
const b = median(results.batched ?? []);
const g = median(results.grouped ?? []);
console.log(`LevelStorage on classic-level, synced, 256-byte entries, median of ${RUNS} runs`);
console.log(`  single-entry writes, awaited one by one : ${s.toFixed(0)} writes/s`);
console.log(`  64-entry writes, awaited one by one     : ${b.toFixed(0)} batches/s = ${(b * 64).toFixed(0)} entries/s`);
console.log(`  64 single-entry writes per turn (group) : ${g.toFixed(0)} writes/s`);
