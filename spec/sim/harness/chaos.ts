/**
 * One seeded random fault schedule: partitions, crashes and restarts that
 * lose unsynced writes, an unreliable network (drop, delay, reorder,
 * duplicate), client proposals and linearizable reads at random nodes
 * throughout (every read that resolves must reflect every write acknowledged
 * before it began), leadership transfers and membership changes (voters
 * removed, added back through automatic promotion, whole memberships swapped
 * through joint consensus, the leader itself removed). A quarter of the seeds run
 * without check quorum, and a third of the others use lease reads. The invariants are checked after
 * every step; at the end the faults heal, every server is added back as a
 * voter, and the cluster must recover with every acknowledged proposal in
 * every log.
 */
import { SimCluster } from './cluster.js';

/** Knobs of one chaos run. */
export interface ChaosOptions {
  readonly seed: number;
  /** Simulated milliseconds of faults. Default 4000. */
  readonly durationMs?: number;
  /**
   * Snapshots on: the state machine can snapshot, and nodes snapshot every `threshold` entries
   * keeping `trailing` (so lagging and restarted nodes catch up by snapshot). Default off.
   */
  readonly snapshots?: { readonly threshold: number; readonly trailing: number };
}

/** What a run did, for reporting. */
export interface ChaosReport {
  readonly seed: number;
  readonly size: number;
  readonly steps: number;
  readonly acks: number;
  readonly leaders: number;
  readonly faults: number;
  readonly commitIndex: number;
  /** Reads that resolved (each checked against the writes acknowledged before it). */
  readonly reads: number;
  /** Leadership transfers started. */
  readonly transfers: number;
  /** Membership changes requested (accepted or refused). */
  readonly membershipChanges: number;
  /** Membership changes that committed (their promise resolved). */
  readonly membershipCommitted: number;
  /** State machine restores from a snapshot (restarts and installs from a leader); 0 without snapshots. */
  readonly restores: number;
}

/** Runs one seed; throws a SimFailure naming the seed on any violation. */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const seedRandom = (opts.seed * 2654435761) >>> 0;
  const size = seedRandom % 2 === 0 ? 3 : 5;
  // A quarter of the seeds run without check quorum: a partitioned leader then keeps leading its
  // minority, and every read it is asked must still wait for a quorum round (and never resolve).
  const checkQuorum = (seedRandom >>> 1) % 4 !== 0;
  // A third of the others serve reads from the leader lease.
  const readMode = checkQuorum && (seedRandom >>> 3) % 3 === 0 ? 'lease' : 'readIndex';
  const snap = opts.snapshots;
  const sim = new SimCluster({
    seed: opts.seed,
    size,
    latencyMs: [1, 8],
    syncDelayMs: [0, 3],
    node: snap === undefined ? { checkQuorum, readMode } : { checkQuorum, readMode, snapshotThreshold: snap.threshold, trailingLogs: snap.trailing },
    snapshots: snap !== undefined,
  });
  const r = sim.random.fork();
  await sim.start();
  const duration = opts.durationMs ?? 5000;
  const end = sim.clock.now() + duration;
  let faults = 0;
  let counter = 0;
  let transfers = 0;
  let membershipChanges = 0;
  let membershipCommitted = 0;
  const inflight = new Set<Promise<unknown>>();
  while (sim.clock.now() < end) {
    const slice = 20 + r.int(0, 80);
    // Client load: a few proposals at whoever is leader right now.
    const n = r.int(0, 4);
    for (let i = 0; i < n; i++) {
      const p = sim.propose(`v${opts.seed}-${counter++}`);
      inflight.add(p);
      void p.then(() => inflight.delete(p));
    }
    // Client reads at a random live node.
    if (r.chance(0.3)) {
      const up = sim.up();
      if (up.length > 0) {
        const p = sim.read(r.pick(up), 1000);
        inflight.add(p);
        void p.then(() => inflight.delete(p));
      }
    }
    // Now and then the leader hands over, to a random voter or the most up-to-date one.
    if (r.chance(0.03)) {
      const leader = sim.leader();
      if (leader !== null) {
        transfers++;
        const target = r.chance(0.5) ? null : r.pick(sim.ids);
        void leader.transferLeadership(target).catch(() => undefined);
      }
    }
    // Now and then the membership changes: a voter (maybe the leader) removed, a missing server
    // added back as a voter (promoted once caught up), or the voters swapped through a joint configuration.
    if (r.chance(0.06)) {
      const leader = sim.leader();
      if (leader !== null) {
        membershipChanges++;
        const m = leader.status();
        const missing = sim.ids.filter((id) => !m.voters.includes(id));
        const pick = r.int(0, 3);
        let op: Promise<unknown>;
        if (pick === 0 && m.voters.length > 2) op = leader.removeServer(r.pick(m.voters));
        else if (pick === 1 && missing.length > 0) {
          const id = r.pick(missing);
          op = leader.addVoter(id, id);
        } else {
          const voters = sim.ids.filter(() => r.chance(0.7));
          op = leader.changeMembership((voters.length >= 2 ? voters : sim.ids).map((id) => ({ id, address: id })));
        }
        op.then(
          () => membershipCommitted++,
          () => undefined,
        );
      }
    }
    if (r.chance(0.25)) {
      faults++;
      const ids = sim.ids;
      const pick = r.int(0, 6);
      if (pick === 0) {
        const shuffled = [...ids].sort(() => r.next() - 0.5);
        const cut = r.int(1, ids.length);
        sim.network.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      } else if (pick === 1) {
        sim.network.heal();
      } else if (pick === 2) {
        await sim.crash(r.pick(ids));
      } else if (pick === 3) {
        const down = ids.filter((id) => !sim.nodes.has(id));
        if (down.length > 0) await sim.restart(r.pick(down));
      } else if (pick === 4) {
        sim.network.setUnreliable(r.chance(0.6), { dropRate: 0.1, duplicateRate: 0.05, maxDelayMs: 30, longDelayRate: 0.02, longDelayMs: 400 });
      } else {
        // Crash the leader at a random moment (Figure 8).
        const leader = sim.leader();
        if (leader !== null) await sim.crash(leader.id);
      }
    }
    await sim.run(slice);
  }
  // Heal everything and require recovery.
  sim.network.heal();
  sim.network.setUnreliable(false);
  for (const id of sim.ids) await sim.restart(id);
  // A leader change or a leadership transfer still under way (at most one election timeout) can
  // race the marker: retry at whoever leads.
  let marker: Error | null = null;
  for (let attempt = 0; attempt < 4; attempt++) {
    await sim.waitLeader(10_000);
    const out = await sim.commit(`final${attempt}-${opts.seed}`, 10_000);
    marker = out instanceof Error ? out : null;
    if (marker === null) break;
    await sim.run(100);
  }
  if (marker !== null) sim.fail(`cluster did not recover: ${marker.message}`);
  // Every server back as a voter (added servers are promoted once caught up), so that every log must converge.
  for (let attempt = 0; attempt < 60; attempt++) {
    const m = sim.membership();
    const missing = sim.ids.filter((id) => !m.voters.includes(id));
    if (missing.length === 0 && m.oldVoters === null) break;
    const leader = await sim.waitLeader(10_000);
    // Refused harmlessly while a change is in flight or when the learner is already staged for promotion.
    if (m.oldVoters === null) void leader.addVoter(missing[0] as string, missing[0] as string).catch(() => undefined);
    await sim.run(300);
  }
  const final = sim.membership();
  if (final.voters.length !== sim.ids.length || final.oldVoters !== null) {
    sim.fail(`membership was not restored: voters ${final.voters.join(',')}, learners ${final.learners.join(',')}, joint ${String(final.oldVoters)}`);
  }
  const target = Math.max(0, ...sim.acks.map((a) => a.index));
  await sim.runUntil(() => sim.minCommitIndex() >= target, 10_000, 'log convergence');
  // Compacted logs no longer hold old entries: then check the state machines instead.
  if (snap === undefined) sim.assertAcksDurable();
  else {
    await sim.runUntil(() => [...sim.nodes.values()].every((n) => n.status().appliedIndex >= target), 10_000, 'apply convergence');
    sim.assertAcksApplied();
  }
  sim.assertNoStaleReads();
  const report: ChaosReport = {
    seed: opts.seed,
    size,
    steps: sim.steps,
    acks: sim.acks.length,
    restores: sim.restores.length,
    leaders: sim.checker.stats().leaders,
    faults,
    commitIndex: sim.checker.stats().maxCommitIndex,
    reads: sim.reads.length,
    transfers,
    membershipChanges,
    membershipCommitted,
  };
  await sim.stop();
  return report;
}
