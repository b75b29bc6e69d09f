#!/usr/bin/env node
/**
 * The `raftchart` command line.
 *
 * `raftchart demo` runs a three-node cluster in this process: each node keeps
 * its log in Level under `./data/demo/<id>` and talks to the others over
 * WebSockets on 127.0.0.1. It prints leader changes while it proposes values
 * and, every few seconds, stops the leader and restarts it on its data. A
 * second run resumes the same data.
 *
 * @module
 */
import { createRaftNode, type RaftNode } from '../actors/node.actor.js';
import { join, resolve } from 'node:path';
import { LevelStorage } from '../adapters/storage/level.js';
import { WebSocketTransport } from '../adapters/transport/websocket.js';
import { NotLeaderError } from '../errors.js';
import type { Server } from '../machines/types.js';

const HELP = `raftchart — Raft consensus as explicit state machines

Usage:
  raftchart demo [--seconds N] [--data DIR] [--port P]
                                 three nodes in this process on Level storage (DIR,
                                 default ./data/demo) and WebSockets on 127.0.0.1
                                 ports P..P+2 (default 7001); prints leader changes,
                                 restarts the leader every 4 s; Ctrl-C stops
  raftchart --help               this text
`;

/** The demo's cluster secret. It only ever listens on 127.0.0.1; a real cluster takes its secret from the environment. */
const DEMO_SECRET = 'raftchart-demo-loopback-only';

async function demo(seconds: number, dataDir: string, basePort: number): Promise<void> {
  const ids = ['n1', 'n2', 'n3'];
  const servers: Server[] = ids.map((id, i) => ({ id, address: `ws://127.0.0.1:${basePort + i}` }));
  const counts = new Map<string, number>();
  const nodes = new Map<string, RaftNode<number>>();
  const t0 = Date.now();
  const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s`;
  const launch = async (id: string): Promise<RaftNode<number>> => {
    counts.set(id, 0); // a restarted node re-applies its log from the start (no snapshots yet)
    const index = ids.indexOf(id);
    const node = createRaftNode<number>({
      id,
      storage: new LevelStorage({ path: join(dataDir, id) }),
      transport: new WebSocketTransport({ listen: `127.0.0.1:${basePort + index}`, secret: DEMO_SECRET, clusterId: 'raftchart-demo', logger: null }),
      stateMachine: {
        apply: () => {
          const n = (counts.get(id) ?? 0) + 1;
          counts.set(id, n);
          return n;
        },
      },
    });
    await node.start();
    node.leader$.subscribe(({ leaderId, term }) => {
      if (leaderId !== null) console.log(`${stamp()}  ${id} sees leader ${leaderId} (term ${term})`);
    });
    nodes.set(id, node);
    return node;
  };
  for (const id of ids) await launch(id);
  const fresh = [...nodes.values()].filter((n) => n.status().lastLogIndex === 0);
  await Promise.all(fresh.map((n) => n.bootstrap(servers)));
  console.log(`${stamp()}  ${fresh.length === ids.length ? 'started' : 'resumed'} ${servers.map((s) => `${s.id} ${s.address}`).join(', ')}; data in ${dataDir} (Ctrl-C to stop)`);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const n of nodes.values()) await n.stop();
    const applied = ids.map((id) => `${id}=${counts.get(id) ?? 0}`).join(' ');
    console.log(`${stamp()}  stopped; entries applied per node: ${applied}`);
  };
  process.once('SIGINT', () => void stop());

  let proposed = 0;
  const end = Date.now() + seconds * 1000;
  let nextCrash = Date.now() + 4000;
  while (!stopping && Date.now() < end) {
    const leader = [...nodes.values()].find((n) => n.status().role === 'leader');
    if (leader !== undefined) {
      try {
        await leader.propose(new TextEncoder().encode(`value-${proposed}`));
        proposed++;
      } catch (error) {
        if (!(error instanceof NotLeaderError) && !stopping) console.log(`${stamp()}  proposal failed: ${(error as Error).message}`);
      }
    }
    if (leader !== undefined && Date.now() >= nextCrash) {
      console.log(`${stamp()}  stopping leader ${leader.id} (${proposed} values committed so far)`);
      nodes.delete(leader.id);
      await leader.stop();
      setTimeout(() => void (stopping ? undefined : launch(leader.id).then(() => console.log(`${stamp()}  restarted ${leader.id}`))), 1000);
      nextCrash = Date.now() + 4000;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === 'demo') {
    if (rest.includes('--help')) {
      process.stdout.write(HELP);
      return 0;
    }
    const flag = (name: string): string | undefined => {
      const i = rest.indexOf(name);
      return i >= 0 ? (rest[i + 1] ?? '') : undefined;
    };
    const unknown = rest.filter((a, i) => a.startsWith('--') && !['--seconds', '--data', '--port'].includes(a) && !(i > 0 && ['--seconds', '--data', '--port'].includes(rest[i - 1] as string)));
    if (unknown.length > 0) {
      process.stderr.write(`raftchart demo: unknown option ${unknown[0]}\n\n${HELP}`);
      return 2;
    }
    const seconds = flag('--seconds') === undefined ? Infinity : Number(flag('--seconds'));
    if (!(seconds > 0)) {
      process.stderr.write('raftchart demo: --seconds needs a positive number\n');
      return 2;
    }
    const port = flag('--port') === undefined ? 7001 : Number(flag('--port'));
    if (!Number.isInteger(port) || port < 1 || port > 65533) {
      process.stderr.write('raftchart demo: --port needs a port number between 1 and 65533\n');
      return 2;
    }
    const data = flag('--data');
    if (data === '') {
      process.stderr.write('raftchart demo: --data needs a directory\n');
      return 2;
    }
    try {
      await demo(seconds, resolve(data ?? join('data', 'demo')), port);
    } catch (error) {
      process.stderr.write(`raftchart demo: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
    return 0;
  }
  process.stderr.write(`raftchart: unknown command '${command}'\n\n${HELP}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
