/**
 * Real-process benchmark: three node processes on `LevelStorage` (classic-level,
 * every write synced) and `WebSocketTransport` over 127.0.0.1. Measures
 * committed entries per second and p50/p99 commit latency at 1, 64 and 256
 * concurrent proposers (16-byte values), next to the physical limit of the
 * same disk: raw `fdatasync`s per second, and synced single-record
 * classic-level batches per second.
 *
 * Latency is what a client in the parent process sees: it includes one IPC
 * hop each way (parent ↔ leader process), a few tens of µs.
 *
 * Run: `npm run bench:process` (builds first). `BENCH_MS` sets the measured
 * window per run (default 3000), `BENCH_RUNS` the runs per size (default 3).
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { ProcessCluster, freePorts } from './cluster/harness.js';
import type { FixtureConfig } from './cluster/node-process.js';

const RUN_MS = Number(process.env.BENCH_MS ?? 3000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = (process.env.BENCH_PROPOSERS ?? '1,64,256').split(',').map(Number);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};
const percentile = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? 0;
};

/** fdatasyncs per second of a 64-byte append to one file in `dir`. */
function rawFsyncsPerSec(dir: string): number {
  const fd = openSync(join(dir, 'fsync.bin'), 'w');
  const buf = Buffer.alloc(64, 1);
  const until = performance.now() + 2000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < until) {
    writeSync(fd, buf);
    fdatasyncSync(fd);
    n++;
  }
  const sec = (performance.now() - t0) / 1000;
  closeSync(fd);
  return n / sec;
}

/** Synced single-record batches per second on classic-level in `dir`. */
async function levelSyncedBatchesPerSec(dir: string): Promise<number> {
  const db = new ClassicLevel<string, Uint8Array>(join(dir, 'level'), { valueEncoding: 'view' });
  await db.open();
  const value = new Uint8Array(64).fill(2);
  const until = performance.now() + 2000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < until) {
    await db.batch([{ type: 'put', key: String(n).padStart(12, '0'), value }], { sync: true });
    n++;
  }
  const sec = (performance.now() - t0) / 1000;
  await db.close();
  return n / sec;
}

interface Run {
  readonly commitsPerSec: number;
  readonly p50ms: number;
  readonly p99ms: number;
}

async function runCluster(root: string, proposers: number, runIndex: number): Promise<Run> {
  const dir = join(root, `run-${proposers}-${runIndex}`);
  const ports = await freePorts(3);
  const peers = ['n1', 'n2', 'n3'].map((id, i) => ({ id, port: ports[i] as number }));
  const configs: FixtureConfig[] = peers.map((p) => ({ ...p, dir: join(dir, p.id), peers, secret: 'bench-cluster-secret' }));
  const cluster = new ProcessCluster(configs);
  try {
    for (const p of peers) cluster.start(p.id);
    await Promise.all([...cluster.nodes.values()].map((p) => p.up));
    await cluster.waitLeader(20_000);
    cluster.load(proposers);
    await new Promise((r) => setTimeout(r, 500)); // warm-up
    cluster.recordLatency = true;
    const before = cluster.acks.length;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, RUN_MS));
    const sec = (performance.now() - t0) / 1000;
    const done = cluster.acks.length - before;
    cluster.recordLatency = false;
    return { commitsPerSec: done / sec, p50ms: percentile(cluster.latencies, 0.5), p99ms: percentile(cluster.latencies, 0.99) };
  } finally {
    await cluster.stopAll();
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'raftchart-bench-'));
  try {
    const fsyncs = [rawFsyncsPerSec(root), rawFsyncsPerSec(root), rawFsyncsPerSec(root)];
    const level = [await levelSyncedBatchesPerSec(root)];
    console.log(`node ${process.version}; disk of ${tmpdir()}; ${RUNS} runs of ${RUN_MS} ms per size, medians\n`);
    console.log(`raw fdatasync: ${Math.round(median(fsyncs)).toLocaleString('en')}/s; classic-level synced single-record batches: ${Math.round(median(level)).toLocaleString('en')}/s\n`);
    console.log('| proposers | commits/s | p50 ms | p99 ms | commits per raw fsync | runs (commits/s) |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const proposers of SIZES) {
      const runs: Run[] = [];
      for (let i = 0; i < RUNS; i++) runs.push(await runCluster(root, proposers, i));
      const cps = median(runs.map((r) => r.commitsPerSec));
      console.log(
        `| ${proposers} | ${Math.round(cps).toLocaleString('en')} | ${median(runs.map((r) => r.p50ms)).toFixed(2)} | ${median(runs.map((r) => r.p99ms)).toFixed(2)} | ${(cps / median(fsyncs)).toFixed(2)} | ${runs.map((r) => Math.round(r.commitsPerSec)).join(', ')} |`,
      );
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
