#!/usr/bin/env node
/**
 * The `raftchart` command line.
 *
 * `raftchart demo` runs a three-node cluster in this process on real timers
 * and prints leader changes while it proposes values and, every few seconds,
 * crashes the leader and restarts it. (It runs over the in-memory transport
 * and storage; the WebSocket + Level demo arrives with those adapters.)
 *
 * @module
 */
import { createRaftNode, type RaftNode } from '../actors/node.actor.js';
import { MemoryStorage } from '../adapters/storage/memory.js';
import { MemoryNetwork } from '../adapters/transport/memory.js';
import { NotLeaderError } from '../errors.js';

const HELP = `raftchart — Raft consensus as explicit state machines

Usage:
  raftchart demo [--seconds N]   three nodes in this process; prints leader changes,
                                 crashes the leader every 4 s; Ctrl-C stops
  raftchart --help               this text
`;

async function demo(seconds: number): Promise<void> {
  const network = new MemoryNetwork();
  const ids = ['n1', 'n2', 'n3'];
  const storages = new Map(ids.map((id) => [id, new MemoryStorage()]));
  const counts = new Map<string, number>();
  const nodes = new Map<string, RaftNode<number>>();
  const t0 = Date.now();
  const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s`;
  const launch = async (id: string): Promise<RaftNode<number>> => {
    counts.set(id, 0); // a restarted node re-applies its log from the start (no snapshots yet)
    const node = createRaftNode<number>({
      id,
      storage: storages.get(id) as MemoryStorage,
      transport: network.transport(id),
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
  await Promise.all([...nodes.values()].map((n) => n.bootstrap(ids.map((id) => ({ id, address: id })))));
  console.log(`${stamp()}  started ${ids.join(', ')} (Ctrl-C to stop)`);

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
      console.log(`${stamp()}  crashing leader ${leader.id} (${proposed} values committed so far)`);
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
    const i = rest.indexOf('--seconds');
    const seconds = i >= 0 ? Number(rest[i + 1]) : Infinity;
    if (i >= 0 && !(seconds > 0)) {
      process.stderr.write('raftchart demo: --seconds needs a positive number\n');
      return 2;
    }
    await demo(seconds);
    return 0;
  }
  process.stderr.write(`raftchart: unknown command '${command}'\n\n${HELP}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
