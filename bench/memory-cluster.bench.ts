/**
 * In-process benchmark: a 3-node cluster over MemoryNetwork and MemoryStorage
 * on real timers. Measures committed entries per second with 1 and 256
 * concurrent proposers (16-byte payloads) and the XState events the nodes
 * process. Prints medians of several runs; `--json` prints machine-readable output.
 *
 * Run: `npm run bench` (builds first).
 */
import { createActor } from 'xstate';
import { createRaftNode, type RaftNode } from '../actors/node.actor.js';
import { RaftLog } from '../actors/log.js';
import { MemoryStorage } from '../adapters/storage/memory.js';
import { MemoryNetwork } from '../adapters/transport/memory.js';
import { nodeMachine } from '../machines/node.machine.js';

const RUN_MS = Number(process.env.BENCH_MS ?? 3000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

interface ClusterRun {
  readonly proposers: number;
  readonly commitsPerSec: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly eventsPerSec: number;
  readonly eventsPerCommit: number;
  /** Proposals rejected (leader changes under load); a run with failures is reported, not hidden. */
  readonly failures: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? 0;
}

async function cluster(countEvents: boolean): Promise<{ nodes: RaftNode[]; events: () => number; stop: () => Promise<void> }> {
  const network = new MemoryNetwork();
  const ids = ['n1', 'n2', 'n3'];
  let events = 0;
  const nodes = ids.map((id) =>
    createRaftNode({
      id,
      storage: new MemoryStorage(),
      transport: network.transport(id),
      stateMachine: { apply: (e) => e.index },
      ...(countEvents
        ? {
            inspect: (ev: { type: string }) => {
              if (ev.type === '@xstate.event') events++;
            },
          }
        : {}),
    }),
  );
  for (const n of nodes) await n.start();
  await Promise.all(nodes.map((n) => n.bootstrap(ids.map((id) => ({ id, address: id })))));
  return { nodes, events: () => events, stop: async () => { for (const n of nodes) await n.stop(); } };
}

async function waitLeader(nodes: RaftNode[]): Promise<RaftNode> {
  const until = performance.now() + 10_000;
  while (performance.now() < until) {
    const l = nodes.find((n) => n.status().role === 'leader');
    if (l !== undefined) return l;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no leader within 10 s');
}

async function runCluster(proposers: number, countEvents: boolean): Promise<ClusterRun> {
  const c = await cluster(countEvents);
  let leader = await waitLeader(c.nodes);
  const payload = new Uint8Array(16).fill(7);
  let commits = 0;
  let failures = 0;
  let finding: Promise<RaftNode> | null = null;
  const latencies: number[] = [];
  let running = true;
  // Warm up for 300 ms, then measure.
  const warmupEnd = performance.now() + 300;
  let measuring = false;
  let eventsAtStart = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const t0 = performance.now();
      try {
        await leader.propose(payload);
      } catch {
        // A leader change under load (the event loop starved past an election timeout): count it, find the new leader, go on.
        failures++;
        if (running) {
          finding ??= waitLeader(c.nodes).finally(() => (finding = null));
          leader = await finding;
        }
        continue;
      }
      if (measuring) {
        commits++;
        if (latencies.length < 200_000) latencies.push((performance.now() - t0) * 1000);
      } else if (performance.now() >= warmupEnd) {
        measuring = true;
        eventsAtStart = c.events();
      }
    }
  };
  const workers = Array.from({ length: proposers }, () => worker());
  await new Promise((r) => setTimeout(r, 300));
  measuring = true;
  eventsAtStart = c.events();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, RUN_MS));
  const elapsed = (performance.now() - t0) / 1000;
  const done = commits;
  const events = c.events() - eventsAtStart;
  running = false;
  await Promise.allSettled(workers);
  await c.stop();
  return {
    proposers,
    commitsPerSec: done / elapsed,
    p50us: percentile(latencies, 0.5),
    p99us: percentile(latencies, 0.99),
    eventsPerSec: events / elapsed,
    eventsPerCommit: done === 0 ? 0 : events / done,
    failures,
  };
}

/** Raw XState throughput of the node machine: a follower handling heartbeats. */
function machineEventsPerSec(): number {
  const log = new RaftLog();
  const actor = createActor(
    nodeMachine.provide({ actions: { send: () => {} } }),
    {
      input: {
        id: 'n1', log, term: 1, votedFor: null, voters: ['n1', 'n2', 'n3'], learners: [],
        preVote: true, checkQuorum: true, electionTimeoutMs: 1_000_000, heartbeatIntervalMs: 50,
        limits: { maxInflight: 256, maxInflightBytes: 1 << 26, maxEntriesPerMessage: 4096, maxBytesPerMessage: 1 << 20 },
      },
    },
  );
  actor.start();
  const n = 200_000;
  const message = { type: 'heartbeat' as const, term: 1, from: 'n2', to: 'n1', commit: 0 };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) actor.send({ type: 'msg.receive', message });
  const sec = (performance.now() - t0) / 1000;
  actor.stop();
  // Each msg.receive raises one routed event: two XState events per message.
  return (2 * n) / sec;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const results: Record<string, unknown> = { node: process.version, runMs: RUN_MS, runs: RUNS };
  const rows: string[] = [];
  const sizes = (process.env.BENCH_PROPOSERS ?? '1,256').split(',').map(Number);
  for (const proposers of sizes) {
    const runs: ClusterRun[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await runCluster(proposers, false));
    const counted = await runCluster(proposers, true);
    const row = {
      proposers,
      commitsPerSec: Math.round(median(runs.map((r) => r.commitsPerSec))),
      p50us: Math.round(median(runs.map((r) => r.p50us))),
      p99us: Math.round(median(runs.map((r) => r.p99us))),
      eventsPerCommit: Number(counted.eventsPerCommit.toFixed(3)),
      eventsPerSecWithInspect: Math.round(counted.eventsPerSec),
      all: runs.map((r) => Math.round(r.commitsPerSec)),
      failures: runs.map((r) => r.failures),
    };
    results[`proposers${proposers}`] = row;
    rows.push(
      `| ${proposers} | ${row.commitsPerSec.toLocaleString('en')} | ${row.p50us} | ${row.p99us} | ${row.eventsPerCommit} | ${row.all.join(', ')} | ${row.failures.join(', ')} |`,
    );
  }
  const machine = [machineEventsPerSec(), machineEventsPerSec(), machineEventsPerSec()];
  results.machineEventsPerSec = Math.round(median(machine));
  if (json) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  console.log(`node ${process.version}, ${RUNS} runs of ${RUN_MS} ms each, medians\n`);
  console.log('| proposers | commits/s | p50 µs | p99 µs | XState events per commit | runs (commits/s) | failed proposals per run |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
  console.log(`\nnode machine alone: ${Math.round(median(machine)).toLocaleString('en')} XState events/s (follower handling heartbeats)`);
}

await main();
