/**
 * Leader election scenarios (Raft lab 2A), in simulated time on the seeded
 * cluster; the five safety invariants are checked after every step by the
 * harness. Each test names its seed; a harness failure message carries it too.
 */
import t from 'tap';
import { SimCluster } from './harness/cluster.js';

/** Election timeout of the harness: [150, 300) ms. */
const ELECTION_MS = 300;

/** Every live node in `ids` has the same term and follows `leaderId`. */
function allFollow(sim: SimCluster, ids: readonly string[], leaderId: string): boolean {
  const term = sim.stateOf(leaderId).term;
  return ids.every((id) => {
    const s = sim.stateOf(id);
    return s.term === term && s.leaderId === leaderId;
  });
}

t.test('initial election (§5.2): one leader, every node agrees on its term, and it keeps leading for 3 s without faults [seed 101]', async (t) => {
  const sim = new SimCluster({ seed: 101, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.runUntil(() => allFollow(sim, sim.ids, leader.id), 1000, 'every node follows the first leader');
  const term = sim.stateOf(leader.id).term;
  for (const id of sim.ids) t.equal(sim.stateOf(id).term, term, `${id} is in the leader's term ${term}`);

  await sim.always(3000, () => sim.leader()?.id === leader.id, `${leader.id} stays leader`);
  for (const id of sim.ids) {
    const s = sim.stateOf(id);
    t.equal(s.term, term, `${id}: no term change in 3 s without faults`);
    t.equal(s.leaderId, leader.id, `${id} still follows ${leader.id}`);
  }
  t.equal(sim.checker.stats().leaders, 1, 'exactly one term had a leader');
});

t.test('re-election: a disconnected leader is replaced, steps down, rejoins without disruption; no leader without a majority; recovery on reconnect [seed 102]', async (t) => {
  const sim = new SimCluster({ seed: 102, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const first = (await sim.waitLeader()).id;
  const others = sim.ids.filter((id) => id !== first);

  sim.network.disconnect(first);
  const second = (await sim.waitLeaderAmong(others, 2 * ELECTION_MS * 3)).id;
  t.not(second, first, 'the two connected nodes elect a new leader');
  const term2 = sim.stateOf(second).term;
  t.ok(term2 > sim.stateOf(first).term, 'in a higher term than the old leader');
  await sim.runUntil(() => sim.stateOf(first).role !== 'leader', 2 * ELECTION_MS, `cut-off leader ${first} steps down (check quorum)`);
  t.pass(`the cut-off leader ${first} stepped down by check quorum`);

  sim.network.connect(first);
  await sim.always(1000, () => sim.leader()?.id === second, `${second} keeps leading while ${first} rejoins`);
  t.ok(allFollow(sim, sim.ids, second), `the rejoined old leader follows ${second}`);
  t.equal(sim.stateOf(second).term, term2, 'the rejoining node did not raise the term');

  // Cut 2 of 3: the lone connected node must not become leader.
  const third = others.find((id) => id !== second) as string;
  const cut = [second, first];
  for (const id of cut) sim.network.disconnect(id);
  const lone = third;
  const loneTerm = sim.stateOf(lone).term;
  await sim.always(2000, () => sim.leaderAmong([lone]) === null, `no leader among the connected minority {${lone}}`);
  t.pass(`no leader among the connected minority for 2 s`);
  t.equal(sim.stateOf(lone).term, loneTerm, 'pre-vote keeps the minority from inflating its term (thesis §9.6)');

  // One comes back: the two connected elect a leader.
  sim.network.connect(first);
  const recovered = (await sim.waitLeaderAmong([lone, first], 3000)).id;
  t.ok([lone, first].includes(recovered), `a majority again (${lone}, ${first}) elects ${recovered}`);

  // Everyone back: one leader all agree on.
  sim.network.connect(second);
  await sim.run(1000);
  const final = await sim.waitLeader();
  await sim.runUntil(() => allFollow(sim, sim.ids, final.id), 2000, 'every node follows one leader after the full heal');
  t.pass(`all three follow ${final.id}`);
});

t.test('many elections on 7 nodes: 10 rounds of disconnecting 3 random nodes, a leader among the 4 connected each time [seed 103]', async (t) => {
  const sim = new SimCluster({ seed: 103, size: 7 });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  const r = sim.random.fork();
  for (let round = 1; round <= 10; round++) {
    const shuffled = [...sim.ids];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = r.int(0, i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
    }
    const cut = shuffled.slice(0, 3);
    const connected = shuffled.slice(3);
    for (const id of cut) sim.network.disconnect(id);
    const leader = (await sim.waitLeaderAmong(connected, 3000)).id;
    await sim.runUntil(() => allFollow(sim, connected, leader), 2000, `round ${round}: the connected four follow ${leader}`);
    t.ok(connected.includes(leader), `round ${round}: ${leader} leads the connected ${connected.join(',')} (cut ${cut.join(',')})`);
    for (const id of cut) sim.network.connect(id);
  }
  const final = await sim.waitLeader();
  await sim.runUntil(() => allFollow(sim, sim.ids, final.id), 3000, 'all seven follow one leader after the last round');
  t.pass(`all seven follow ${final.id}`);
  t.ok(sim.checker.stats().leaders >= 2, `leadership changed hands (${sim.checker.stats().leaders} leader terms)`);
});

t.test('a stale leader that still believes it leads (check quorum off) rejoins, steps down at once and does not disrupt the new leader [seed 104]', async (t) => {
  const sim = new SimCluster({ seed: 104, size: 3, node: { checkQuorum: false } });
  t.teardown(() => sim.stop());
  await sim.start();
  const first = (await sim.waitLeader()).id;
  const others = sim.ids.filter((id) => id !== first);
  sim.network.disconnect(first);
  const second = (await sim.waitLeaderAmong(others, 3000)).id;
  await sim.run(1000);
  t.equal(sim.stateOf(first).role, 'leader', `${first}, cut off, still believes it leads its old term`);
  const term2 = sim.stateOf(second).term;
  sim.network.connect(first);
  await sim.runUntil(() => sim.stateOf(first).role === 'follower', 500, `stale leader ${first} steps down`);
  await sim.always(1000, () => sim.leader()?.id === second && sim.stateOf(second).term === term2, `${second} keeps leading term ${term2}`);
  t.ok(allFollow(sim, sim.ids, second), `every node follows ${second} in term ${term2}`);
});
