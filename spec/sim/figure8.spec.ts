/**
 * Figure 8 of the Raft paper (§5.4.2), as Raft lab 2C runs it: leaders crash
 * (or are cut off) at random moments while entries are in flight, so a new
 * leader often re-replicates entries of older terms. Committing such an entry
 * by counting its replicas is the bug Figure 8 shows: a later leader may
 * overwrite it. The harness checks the five safety invariants after every
 * step (a committed entry overwritten, or a leader lacking one, fails the
 * run), and at the end every acknowledged value must be in every log.
 *
 * The runs use one entry per append (`maxEntriesPerMessage: 1`). With larger
 * messages a new leader's no-op (§8) travels in the same append as the
 * old-term entries it re-replicates, so a quorum never matches an old-term
 * entry without the no-op and the §5.4.2 rule is hardly ever put to the test.
 *
 * Checked by mutation (dropping `log.term(index) === term` from the node
 * machine's `advanceCommit`): the exact Figure 8 test fails (an assertion and
 * a leaderCompleteness violation), and so does the unreliable run (seeds
 * 402..408 all fail with a leaderCompleteness violation). The reliable random
 * run does not catch it (0 of 8 seeds): with crashes only, the node holding
 * the competing later-term entry is rarely back in time to win.
 */
import t from 'tap';
import { nodeInternals } from '../../actors/node.actor.js';
import { SimCluster } from './harness/cluster.js';

interface Figure8Report {
  readonly rounds: number;
  readonly leadersFailed: number;
  readonly restarts: number;
  readonly leaderTerms: number;
  readonly acks: number;
}

/** Lab 2C Figure8: propose at the leader, wait a random while, crash it; keep at least 3 nodes up. */
async function figure8(seed: number, rounds: number): Promise<Figure8Report> {
  const sim = new SimCluster({ seed, size: 5, node: { maxEntriesPerMessage: 1 } });
  try {
    const r = sim.random.fork();
    await sim.start();
    await sim.waitLeader();
    await sim.one(`f${seed}-start`, 1);
    let leadersFailed = 0;
    let restarts = 0;
    let k = 0;
    for (let round = 0; round < rounds; round++) {
      const leader = (await sim.waitLeaderAmong(sim.up(), 10_000)).id;
      void sim.propose(`f${seed}-${k++}`, leader);
      await sim.run(r.chance(0.1) ? r.int(0, 500) : r.int(0, 13));
      if (sim.nodes.has(leader)) {
        await sim.crash(leader);
        leadersFailed++;
      }
      if (sim.up().length < 3) {
        await sim.restart(r.pick(sim.ids.filter((id) => !sim.nodes.has(id))));
        restarts++;
      }
    }
    for (const id of sim.ids) await sim.restart(id);
    await sim.one(`f${seed}-final`, 5, 20_000);
    const target = Math.max(0, ...sim.acks.map((a) => a.index));
    await sim.runUntil(() => sim.minCommitIndex() >= target, 10_000, 'every node commits every acknowledged index');
    sim.assertAcksDurable();
    return { rounds, leadersFailed, restarts, leaderTerms: sim.checker.stats().leaders, acks: sim.acks.length };
  } finally {
    await sim.stop();
  }
}

/**
 * Lab 2C Figure8Unreliable: as above on a lossy, duplicating, reordering
 * network, cutting the leader off (instead of crashing it) half the time;
 * from a fifth of the rounds on, some messages are held for up to 2 s.
 */
async function figure8Unreliable(seed: number, rounds: number): Promise<Figure8Report> {
  const sim = new SimCluster({ seed, size: 5, node: { maxEntriesPerMessage: 1 } });
  try {
    const r = sim.random.fork();
    await sim.start();
    await sim.waitLeader();
    sim.network.setUnreliable(true);
    await sim.one(`u${seed}-start`, 1);
    const disconnected = new Set<string>();
    let leadersFailed = 0;
    let restarts = 0;
    let k = 0;
    for (let round = 0; round < rounds; round++) {
      if (round === Math.floor(rounds / 5)) sim.network.setUnreliable(true, { longDelayRate: 0.1, longDelayMs: 2000 });
      const leader = (await sim.waitLeaderAmong(sim.ids.filter((id) => !disconnected.has(id)), 20_000)).id;
      // Stale leaders cut off earlier may accept proposals too: they must never commit.
      for (const id of sim.ids) if (sim.stateOf(id).role === 'leader') void sim.propose(`u${seed}-${k++}`, id);
      await sim.run(r.chance(0.1) ? r.int(0, 500) : r.int(0, 13));
      if (r.chance(0.5)) {
        sim.network.disconnect(leader);
        disconnected.add(leader);
        leadersFailed++;
      }
      if (sim.ids.length - disconnected.size < 3) {
        const id = r.pick([...disconnected]);
        disconnected.delete(id);
        sim.network.connect(id);
        restarts++;
      }
    }
    sim.network.heal();
    await sim.one(`u${seed}-final`, 5, 30_000);
    const target = Math.max(0, ...sim.acks.map((a) => a.index));
    await sim.runUntil(() => sim.minCommitIndex() >= target, 30_000, 'every node commits every acknowledged index');
    sim.assertAcksDurable();
    return { rounds, leadersFailed, restarts, leaderTerms: sim.checker.stats().leaders, acks: sim.acks.length };
  } finally {
    await sim.stop();
  }
}

t.test('Figure 8 (lab 2C Figure8): 1000 rounds on 5 nodes of propose, random pause, crash the leader; safety holds at every step, a final value commits everywhere, every acknowledged value is in every log [seed 401]', async (t) => {
  const report = await figure8(401, 1000);
  t.comment(JSON.stringify(report));
  t.equal(report.leadersFailed, 1000, 'a leader crashed at a random moment in every round');
  t.ok(report.leaderTerms >= 1000, `so leadership changed every round (${report.leaderTerms} leader terms)`);
  t.ok(report.acks >= 30, `and values were still acknowledged (${report.acks})`);
});

t.test('Figure 8 on an unreliable network with long reordering (lab 2C Figure8Unreliable): 1000 rounds, leaders cut off at random moments, messages dropped, duplicated and held up to 2 s [seed 402]', async (t) => {
  const report = await figure8Unreliable(402, 1000);
  t.comment(JSON.stringify(report));
  t.ok(report.leadersFailed >= 100, `leaders cut off at random moments (${report.leadersFailed} times)`);
  t.ok(report.leaderTerms >= 50, `leadership changed often (${report.leaderTerms} leader terms)`);
  t.ok(report.acks >= 50, `values were acknowledged (${report.acks})`);
});

t.test("Figure 8 exactly (§5.4.2): a leader re-replicates an old-term entry to a majority and is cut off before its no-op gets there; a node lacking the entry is then elected, so the entry must not have been committed [seed 403]", async (t) => {
  const sim = new SimCluster({ seed: 403, size: 5, node: { maxEntriesPerMessage: 1 } });
  t.teardown(() => sim.stop());
  await sim.start();
  const s1 = (await sim.waitLeader()).id;
  await sim.one('x0', 5);
  const [s2, ...rest] = sim.ids.filter((id) => id !== s1) as [string, string, string, string];

  // (a) S1 leads and replicates E (index i) to S2 only.
  sim.network.partition([s1, s2], rest);
  const i = nodeInternals(sim.nodes.get(s1) as NonNullable<ReturnType<typeof sim.nodes.get>>).log.lastIndex() + 1;
  void sim.propose('E', s1);
  await sim.runUntil(() => sim.valueAt(s2, i) === 'E', 100, `E reaches ${s2}`);
  const termE = sim.stateOf(s1).term;

  // (b) S5 is elected by S3 and S4 and is cut off before its no-op leaves: it holds a later term at i.
  const s5 = (await sim.waitLeaderAmong(rest, 3000)).id;
  sim.network.disconnect(s5);
  const [s3, s4] = rest.filter((id) => id !== s5) as [string, string];
  t.equal(sim.valueAt(s3, i), undefined, `${s3} lacks index ${i}`);
  t.equal(sim.valueAt(s4, i), undefined, `${s4} lacks index ${i}`);

  // (c) S1 comes back and is elected by S2 and S3 (S2 may win instead: it holds E too). It
  //     re-replicates E (term `termE`) to S3, and is cut off as soon as S3's acknowledgement of E
  //     arrives: E is on a majority (S1, S2, S3), the new leader's no-op is not.
  sim.network.heal();
  sim.network.disconnect(s5);
  sim.network.disconnect(s4);
  let leader4 = '';
  let other = '';
  await sim.runUntil(
    () => {
      const l = sim.leaderAmong([s1, s2]);
      if (l === null) return false;
      leader4 = l.id;
      other = leader4 === s1 ? s2 : s1;
      const replicas = l.status().replicas;
      return (replicas[s3]?.match ?? 0) >= i && (replicas[other]?.match ?? 0) >= i;
    },
    5000,
    `${s1} or ${s2} leads again and has E acknowledged by a majority`,
  );
  const term4 = sim.stateOf(leader4).term;
  t.ok(term4 > termE, `${leader4} leads term ${term4}; E is of the older term ${termE}`);
  t.equal(sim.valueAt(s3, i), 'E', `${s3} holds E`);
  t.equal(nodeInternals(sim.nodes.get(s3) as NonNullable<ReturnType<typeof sim.nodes.get>>).log.lastIndex(), i, `${s3} does not hold the no-op yet`);
  t.ok(sim.stateOf(leader4).commitIndex < i, `${leader4} did not commit E by counting its replicas (commitIndex ${sim.stateOf(leader4).commitIndex} < ${i})`);
  sim.network.disconnect(leader4);
  sim.network.disconnect(other);
  await sim.crash(leader4);

  // (d) S5 returns and is elected by S3 and S4 (its last term beats E's): it lacks E.
  sim.network.connect(s5);
  sim.network.connect(s4);
  const leader5 = (await sim.waitLeaderAmong([s3, s4, s5], 5000)).id;
  t.equal(leader5, s5, `${s5}, holding a later term at ${i} than E, is elected`);
  await sim.one('after', 3);
  t.not(sim.valueAt(s3, i), 'E', `E is overwritten on ${s3}`);

  // Everyone back: E is gone everywhere, and the cluster agrees.
  sim.network.heal();
  await sim.restart(leader4);
  await sim.one('final', 5);
  for (const id of sim.ids) t.not(sim.valueAt(id, i), 'E', `${id} no longer holds E at ${i}`);
  t.notOk(sim.acks.some((a) => a.value === 'E'), 'E was never acknowledged');
  sim.assertAcksDurable();
});
