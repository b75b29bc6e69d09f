/**
 * Prometheus metrics of a kv node, in the text exposition format (`GET /metrics`),
 * on `prom-client`. Each node has its own registry, so several nodes in one
 * process (the demo) do not collide.
 *
 * | metric | type | from |
 * | --- | --- | --- |
 * | `raftchart_commit_latency_seconds` | histogram | `propose()` to applied, per proposal (the node's metrics sink) |
 * | `raftchart_proposal_batch_entries` | histogram | proposals turned into one append batch |
 * | `raftchart_append_message_entries` | histogram | entries per AppendEntries message sent |
 * | `raftchart_snapshot_bytes_total{direction}` | counter | snapshot bytes sent / received |
 * | `raftchart_leader_changes_total` | counter | leader changes seen by this node (`leader$`) |
 * | `raftchart_replica_lag_entries{peer}` | gauge | leader: last log index − the replica's match |
 * | `raftchart_term`, `raftchart_commit_index`, `raftchart_applied_index`, `raftchart_last_log_index` | gauge | `status()` |
 * | `raftchart_is_leader` | gauge | 1 on the leader |
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RaftMetricsSink, RaftNode } from '../../index.js';

/** The metrics of one kv node: the sink to hand to `createRaftNode`, and the exposition. */
export interface KvMetrics {
  /** Pass as the node's `metrics` option. */
  readonly sink: RaftMetricsSink;
  /** Starts reading the node's streams and status (call once the node exists). */
  attach(node: RaftNode<unknown>): void;
  /** The `Content-Type` of {@link KvMetrics.render}. */
  readonly contentType: string;
  /** The current metrics, as Prometheus text. */
  render(): Promise<string>;
  /** Stops reading the node. */
  detach(): void;
}

const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
const LATENCY_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Creates the metrics of one node, in a registry of its own. */
export function createKvMetrics(): KvMetrics {
  const registry = new Registry();
  let node: RaftNode<unknown> | null = null;
  let leaderSub: { unsubscribe(): void } | null = null;
  const commitLatency = new Histogram({
    name: 'raftchart_commit_latency_seconds',
    help: 'Time from propose() to the entry being applied on this node, per proposal.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const proposalBatch = new Histogram({
    name: 'raftchart_proposal_batch_entries',
    help: 'Proposals the leader appended as one batch (one event-loop turn).',
    buckets: SIZE_BUCKETS,
    registers: [registry],
  });
  const appendMessage = new Histogram({
    name: 'raftchart_append_message_entries',
    help: 'Entries carried by one AppendEntries message (0: a probe).',
    buckets: [0, ...SIZE_BUCKETS],
    registers: [registry],
  });
  const snapshotBytes = new Counter({
    name: 'raftchart_snapshot_bytes_total',
    help: 'Snapshot bytes sent to or received from peers.',
    labelNames: ['direction'],
    registers: [registry],
  });
  const leaderChanges = new Counter({
    name: 'raftchart_leader_changes_total',
    help: 'Leader changes seen by this node.',
    registers: [registry],
  });
  const status = () => node?.status() ?? null;
  new Gauge({
    name: 'raftchart_replica_lag_entries',
    help: "Leader only: entries the replica's log is behind the leader's last index.",
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      const s = status();
      if (s === null || s.role !== 'leader') return;
      for (const [peer, r] of Object.entries(s.replicas)) this.set({ peer }, Math.max(0, s.lastLogIndex - r.match));
    },
  });
  const gauge = (name: string, help: string, read: (s: NonNullable<ReturnType<typeof status>>) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const s = status();
        if (s !== null) this.set(read(s));
      },
    });
  };
  gauge('raftchart_term', 'Current term.', (s) => s.term);
  gauge('raftchart_commit_index', 'Highest index known committed.', (s) => s.commitIndex);
  gauge('raftchart_applied_index', 'Highest index applied to the state machine.', (s) => s.appliedIndex);
  gauge('raftchart_last_log_index', 'Index of the last log entry.', (s) => s.lastLogIndex);
  gauge('raftchart_is_leader', '1 when this node is the leader.', (s) => (s.role === 'leader' ? 1 : 0));

  return {
    sink: {
      commitLatency: (ms) => commitLatency.observe(ms / 1000),
      proposalBatch: (n) => proposalBatch.observe(n),
      appendMessage: (n) => appendMessage.observe(n),
      snapshotBytes: (direction, bytes) => snapshotBytes.inc({ direction }, bytes),
    },
    attach(n) {
      node = n;
      let first = true;
      leaderSub?.unsubscribe();
      leaderSub = n.leader$.subscribe(() => {
        if (!first) leaderChanges.inc();
        first = false;
      });
    },
    contentType: registry.contentType,
    render: () => registry.metrics(),
    detach() {
      leaderSub?.unsubscribe();
      leaderSub = null;
      node = null;
    },
  };
}
