/**
 * `npm run bench:kv`: the raftchart kv service and etcd, side by side, in one
 * run on this machine, with the same load generator (bench/kv/load.ts).
 *
 * - raftchart: three `raftchart kv` processes (Level storage, every write
 *   synced; WebSocket transport) on 127.0.0.1.
 * - etcd: three members of Debian's `etcd-server` (installed by
 *   bench/kv/install-etcd.sh when missing) on 127.0.0.1, default durability,
 *   through the v3 JSON gateway.
 *
 * 256-byte values over 1,000 keys; puts, and linearizable gets; 1, 16, 64 and
 * 256 closed-loop clients on HTTP keep-alive; every client talks to the
 * leader (`BENCH_KV_ENDPOINTS=all` spreads them over the three members);
 * median of 3 runs of 5 s each, the two systems alternating run by run. The
 * table goes to stdout and replaces the kv section of bench/RESULTS.md.
 *
 * Environment: `BENCH_MS` (window per run, default 5000), `BENCH_RUNS`
 * (default 3), `BENCH_CLIENTS` (default `1,16,64,256`), `BENCH_KV_SYSTEMS`
 * (`etcd,raftchart`), `BENCH_KV_ENDPOINTS` (`leader` | `all`),
 * `BENCH_KV_NO_WRITE=1` (print only).
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RaftchartCluster, type Cluster } from './clusters.js';
import { EtcdCluster } from './etcd-cluster.js';
import { etcdTarget, preload, raftchartTarget, runLoad, type KvTarget, type LoadResult } from './load.js';

const RUN_MS = Number(process.env.BENCH_MS ?? 5000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,16,64,256').split(',').map(Number);
const SYSTEMS = (process.env.BENCH_KV_SYSTEMS ?? 'etcd,raftchart').split(',');
const ALL_ENDPOINTS = process.env.BENCH_KV_ENDPOINTS === 'all';
const RESULTS = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../RESULTS.md' : '../../../bench/RESULTS.md', import.meta.url));
const START = '<!-- kv-bench:start -->';
const END = '<!-- kv-bench:end -->';

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};
const fmt = (n: number): string => Math.round(n).toLocaleString('en');

function fsyncsPerSec(dir: string): number {
  const fd = openSync(join(dir, 'fsync.bin'), 'w');
  const buf = Buffer.alloc(64, 1);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 1000) {
    writeSync(fd, buf);
    fdatasyncSync(fd);
    n++;
  }
  closeSync(fd);
  return n / ((performance.now() - t0) / 1000);
}

interface Row {
  readonly clients: number;
  readonly op: 'put' | 'get';
  readonly results: Map<string, LoadResult[]>;
}

interface System {
  readonly name: string;
  readonly cluster: Cluster;
  target: KvTarget | null;
}

async function makeTarget(sys: System, clients: number): Promise<KvTarget> {
  const leader = await sys.cluster.leader(20_000);
  const urls = ALL_ENDPOINTS ? sys.cluster.members.map((m) => m.url) : [leader.url];
  return sys.name === 'etcd' ? etcdTarget(urls, clients) : raftchartTarget(urls, clients);
}

function table(rows: readonly Row[], names: readonly string[]): string {
  const both = names.includes('etcd') && names.includes('raftchart');
  const head = ['clients', 'op'];
  for (const n of names) head.push(`${n} ops/s`, `${n} p50 ms`, `${n} p99 ms`);
  if (both) head.push('ops/s raftchart/etcd', 'p99 raftchart/etcd');
  for (const n of names) head.push(`${n} runs (ops/s)`);
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const cells: string[] = [String(r.clients), r.op === 'put' ? 'put' : 'get (linearizable)'];
    const med = new Map<string, { ops: number; p50: number; p99: number }>();
    for (const n of names) {
      const rs = r.results.get(n) ?? [];
      const m = { ops: median(rs.map((x) => x.opsPerSec)), p50: median(rs.map((x) => x.p50ms)), p99: median(rs.map((x) => x.p99ms)) };
      med.set(n, m);
      cells.push(fmt(m.ops), m.p50.toFixed(2), m.p99.toFixed(2));
    }
    if (both) {
      const a = med.get('raftchart') as { ops: number; p99: number };
      const b = med.get('etcd') as { ops: number; p99: number };
      cells.push(b.ops > 0 ? (a.ops / b.ops).toFixed(2) : '–', b.p99 > 0 ? (a.p99 / b.p99).toFixed(2) : '–');
    }
    for (const n of names) {
      const rs = r.results.get(n) ?? [];
      const errors = rs.reduce((s, x) => s + x.errors, 0);
      cells.push(rs.map((x) => fmt(x.opsPerSec)).join(', ') + (errors > 0 ? ` (${errors} errors)` : ''));
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const etcdVersion = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (SYSTEMS.includes('etcd') && etcdVersion.status !== 0) {
    console.error('etcd is not installed: run `sh bench/kv/install-etcd.sh` (npm run bench:kv does it), or set BENCH_KV_SYSTEMS=raftchart');
    process.exitCode = 1;
    return;
  }
  const root = await mkdtemp(join(tmpdir(), 'raftchart-kv-bench-'));
  const systems: System[] = [];
  // Ctrl-C or SIGTERM: stop the members (they are our children) and the data, then exit.
  const interrupt = (): void => {
    void Promise.all(systems.map((s) => s.cluster.stop()))
      .then(() => rm(root, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  const notes: string[] = [];
  try {
    const fsync = median([fsyncsPerSec(root), fsyncsPerSec(root), fsyncsPerSec(root)]);
    const load0 = loadavg()[0] ?? 0;
    for (const name of SYSTEMS) {
      const cluster = name === 'etcd' ? await EtcdCluster.onFreePorts(join(root, 'etcd')) : await RaftchartCluster.onFreePorts(join(root, 'raftchart'));
      try {
        await cluster.start(60_000);
        systems.push({ name, cluster, target: null });
      } catch (error) {
        await cluster.stop();
        const why = `${name} could not be started, so it is not measured: ${String(error).split('\n')[0]}`;
        console.error(String(error));
        notes.push(why);
      }
    }
    for (const sys of systems) {
      const t = await makeTarget(sys, 32);
      await preload(t, 1000, 256);
      t.close();
    }
    const names = systems.map((s) => s.name);
    const machine =
      `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}` +
      (names.includes('etcd') ? `, ${etcdVersion.stdout.split('\n')[0]?.trim()}` : '') +
      `; data in ${tmpdir()} (raw fdatasync of a 64-byte append: ${fmt(fsync)}/s); load average at start ${load0.toFixed(2)}`;
    console.log(machine);
    console.log(`${RUNS} runs of ${RUN_MS} ms per cell after 500 ms warm-up; clients talk to ${ALL_ENDPOINTS ? 'all three members' : 'the leader'}\n`);

    const rows: Row[] = [];
    for (const clients of CLIENTS) {
      for (const op of ['put', 'get'] as const) {
        const row: Row = { clients, op, results: new Map(names.map((n) => [n, []])) };
        for (let run = 0; run < RUNS; run++) {
          for (const sys of systems) {
            const target = await makeTarget(sys, clients);
            try {
              const r = await runLoad(target, { clients, op, durationMs: RUN_MS });
              row.results.get(sys.name)?.push(r);
              if (r.errors > 0) console.error(`${sys.name} ${op} ×${clients}: ${r.errors} errors, first: ${r.firstError}`);
            } finally {
              target.close();
            }
          }
        }
        rows.push(row);
        console.log(table([row], names).split('\n').slice(rows.length === 1 ? 0 : 2).join('\n'));
      }
    }
    const text = table(rows, names);
    const section =
      `${START}\nMeasured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC in one run of \`npm run bench:kv\`. Machine: ${machine}, at the end ${(loadavg()[0] ?? 0).toFixed(2)} (other work on the machine moves every figure: compare the two systems within a table, not across tables).\n` +
      `${RUNS} runs of ${RUN_MS / 1000} s per cell (medians), clients to ${ALL_ENDPOINTS ? 'all three members' : 'the leader'}, 256-byte values over 1,000 keys.\n` +
      (notes.length > 0 ? `\n${notes.map((n) => `Note: ${n}`).join('\n')}\n` : '') +
      `\n${text}\n${END}`;
    if (process.env.BENCH_KV_NO_WRITE !== '1') await writeSection(section);
  } finally {
    await Promise.all(systems.map((s) => s.cluster.stop()));
    await rm(root, { recursive: true, force: true });
  }
}

/** Replaces the kv section of bench/RESULTS.md, or appends it with its heading. */
async function writeSection(section: string): Promise<void> {
  const current = await readFile(RESULTS, 'utf8');
  const a = current.indexOf(START);
  const b = current.indexOf(END);
  const next =
    a >= 0 && b > a
      ? current.slice(0, a) + section + current.slice(b + END.length)
      : `${current.trimEnd()}\n\n## 4. The kv service against etcd — \`npm run bench:kv\`\n\n` +
        'Three `raftchart kv` processes (Level, synced writes; WebSocket) and three etcd members (Debian `etcd-server`, ' +
        'default durability, v3 JSON gateway) on 127.0.0.1, measured by the same closed-loop HTTP keep-alive load ' +
        'generator (bench/kv/load.ts). Gets are linearizable on both (raftchart `readIndex`; etcd range without ' +
        '`serializable`). Ratios are raftchart/etcd: above 1 means more throughput (ops/s) or a longer tail (p99).\n\n' +
        `${section}\n`;
  await writeFile(RESULTS, next);
  console.log(`\nwritten to ${RESULTS}`);
}

await main();
