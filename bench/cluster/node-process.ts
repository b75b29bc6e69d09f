/**
 * One raftchart node in its own process, for the real-process tests: Level
 * storage in a data directory, the WebSocket transport on 127.0.0.1. Driven by
 * its parent over the IPC channel of `child_process.fork`.
 *
 * Parent → child: `{ t: 'propose', req, value }`, `{ t: 'dump' }`, `{ t: 'stop' }`.
 * Child → parent: `{ t: 'up' }`, `{ t: 'leader', leaderId, term }`,
 * `{ t: 'ack', req, index }`, `{ t: 'nack', req, code, leaderId }`,
 * `{ t: 'dump', applied, commitIndex, appliedIndex }`.
 *
 * A storage that refuses to open (corruption) prints the error on stderr and
 * exits with code 3, touching nothing else.
 */
import { createRaftNode } from '../../actors/node.actor.js';
import { LevelStorage } from '../../adapters/storage/level.js';
import { WebSocketTransport } from '../../adapters/transport/websocket.js';
import { NotLeaderError, RaftError } from '../../errors.js';

/** What the parent passes in `RAFT_NODE` (JSON). */
export interface FixtureConfig {
  readonly id: string;
  readonly port: number;
  readonly dir: string;
  readonly peers: readonly { readonly id: string; readonly port: number }[];
  readonly secret: string;
}

export type ToChild =
  | { readonly t: 'propose'; readonly req: number; readonly value: string }
  | { readonly t: 'dump' }
  | { readonly t: 'stop' };

export type FromChild =
  | { readonly t: 'up' }
  | { readonly t: 'leader'; readonly leaderId: string | null; readonly term: number }
  | { readonly t: 'ack'; readonly req: number; readonly index: number }
  | { readonly t: 'nack'; readonly req: number; readonly code: string; readonly leaderId: string | null }
  | { readonly t: 'dump'; readonly applied: readonly string[]; readonly commitIndex: number; readonly appliedIndex: number };

const config = JSON.parse(process.env.RAFT_NODE ?? 'null') as FixtureConfig;
const tell = (m: FromChild): void => {
  process.send?.(m);
};

const applied: string[] = [];
const decoder = new TextDecoder();
const node = createRaftNode({
  id: config.id,
  storage: new LevelStorage({ path: config.dir }),
  transport: new WebSocketTransport({ listen: `127.0.0.1:${config.port}`, secret: config.secret, clusterId: 'process-test' }),
  stateMachine: {
    apply: (e) => {
      applied.push(decoder.decode(e.data));
      return e.index;
    },
  },
  electionTimeoutMs: [300, 600],
  heartbeatIntervalMs: 60,
  proposalTimeoutMs: 5000,
});

try {
  await node.start();
} catch (error) {
  process.stderr.write(`node ${config.id} refused to start: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
  process.exit(3);
}
if (node.status().lastLogIndex === 0) {
  await node.bootstrap(config.peers.map((p) => ({ id: p.id, address: `ws://127.0.0.1:${p.port}` })));
}
node.leader$.subscribe((l) => tell({ t: 'leader', leaderId: l.leaderId, term: l.term }));

const encoder = new TextEncoder();
process.on('message', (m: ToChild) => {
  if (m.t === 'propose') {
    node.propose(encoder.encode(m.value)).then(
      (r) => tell({ t: 'ack', req: m.req, index: r.index }),
      (e: unknown) =>
        tell({
          t: 'nack',
          req: m.req,
          code: e instanceof RaftError ? e.code : 'UNKNOWN',
          leaderId: e instanceof NotLeaderError ? e.leaderId : null,
        }),
    );
  } else if (m.t === 'dump') {
    const s = node.status();
    tell({ t: 'dump', applied: [...applied], commitIndex: s.commitIndex, appliedIndex: s.appliedIndex });
  } else {
    void node.stop().then(() => process.exit(0));
  }
});
process.on('disconnect', () => {
  void node.stop().then(() => process.exit(0));
});
tell({ t: 'up' });
