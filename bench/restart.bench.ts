/**
 * Restart time of a node whose Level log holds many entries (issue 5's
 * benchmark): fills a LevelStorage on classic-level with N entries of 256
 * bytes (default 1,000,000; `BENCH_ENTRIES`), then measures, median of
 * `BENCH_RUNS` (default 3) cold restarts in this process:
 * - `open()` of the store (reads and checks every record),
 * - a single-voter node's `start()` (open + loading the log),
 * - until that node leads again (its election timeout included).
 * Also prints the heap used after the restart.
 *
 * Run: `npm run bench:restart` (builds first).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filter, firstValueFrom } from 'rxjs';
import { createRaftNode } from '../actors/node.actor.js';
import { LevelStorage } from '../adapters/storage/level.js';
import { MemoryNetwork } from '../adapters/transport/memory.js';
import type { LogEntry } from '../machines/types.js';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BATCH = 4096;
const DATA = new Uint8Array(256).fill(7);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

async function fill(path: string): Promise<number> {
  const s = new LevelStorage({ path });
  const t0 = performance.now();
  // The first entry is the single-voter configuration, as bootstrap() writes it.
  const node = createRaftNode({ id: 'n1', stateMachine: { apply: () => undefined }, storage: s, transport: new MemoryNetwork().transport('n1') });
  await node.start();
  await node.bootstrap([{ id: 'n1', address: 'n1' }]);
  await firstValueFrom(node.leader$.pipe(filter((l) => l.leaderId === 'n1')));
  await node.stop(); // closes the store
  const state = await s.open();
  let index = state.lastIndex;
  const term = state.hardState.term;
  while (index < ENTRIES) {
    const n = Math.min(BATCH, ENTRIES - index);
    const entries: LogEntry[] = Array.from({ length: n }, (_, k) => ({ index: index + k + 1, term, type: 'normal', data: DATA }));
    await s.write({ entries });
    index += n;
  }
  await s.close();
  return (performance.now() - t0) / 1000;
}

async function restart(path: string): Promise<{ openMs: number; startMs: number; leadMs: number; heap: number }> {
  const s = new LevelStorage({ path });
  const t0 = performance.now();
  const state = await s.open();
  const openMs = performance.now() - t0;
  if (state.lastIndex < ENTRIES) throw new Error(`store holds ${state.lastIndex} entries, expected ${ENTRIES}`);
  await s.close();
  let applied = 0;
  const node = createRaftNode({
    id: 'n1',
    stateMachine: { apply: () => void applied++ },
    storage: new LevelStorage({ path }),
    transport: new MemoryNetwork().transport('n1'),
  });
  const t1 = performance.now();
  await node.start();
  const startMs = performance.now() - t1;
  await firstValueFrom(node.leader$.pipe(filter((l) => l.leaderId === 'n1')));
  const leadMs = performance.now() - t1;
  const heap = process.memoryUsage().heapUsed;
  await node.stop();
  return { openMs, startMs, leadMs, heap };
}

const dir = await mkdtemp(join(tmpdir(), 'raftchart-restart-'));
try {
  const path = join(dir, 'db');
  const fillS = await fill(path);
  console.log(`filled ${ENTRIES.toLocaleString('en')} entries of 256 bytes in ${fillS.toFixed(1)} s`);
  const runs: Array<Awaited<ReturnType<typeof restart>>> = [];
  for (let r = 0; r < RUNS; r++) runs.push(await restart(path));
  const m = (k: 'openMs' | 'startMs' | 'leadMs'): string => `${(median(runs.map((x) => x[k])) / 1000).toFixed(2)} s`;
  console.log(`restart, median of ${RUNS}: open() ${m('openMs')}; node start() ${m('startMs')}; leading again ${m('leadMs')}; heap after start ${mib(median(runs.map((x) => x.heap)))}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
