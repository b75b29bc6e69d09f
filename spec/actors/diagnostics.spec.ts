/**
 * Diagnostics: vote and heartbeat observations on events$, and explain().
 * Pure tables for the sentences; a simulated cluster (seeded, simulated
 * time) for the events as a real node emits them.
 */
import t from 'tap';
import { Diagnostics, explain, refusalReason, type DiagnosticEvent, type ExplainFacts } from '../../actors/diagnostics.js';
import { createRaftNode, type RaftEvent } from '../../actors/node.actor.js';
import { MemoryStorage } from '../../adapters/storage/memory.js';
import type { RaftMessage } from '../../machines/types.js';
import { SimCluster } from '../sim/harness/cluster.js';

const facts = (over: Partial<ExplainFacts> = {}): ExplainFacts => ({
  id: 'n1',
  role: 'follower',
  term: 4,
  leaderId: null,
  votedFor: null,
  voters: ['n1', 'n2', 'n3'],
  learners: [],
  oldVoters: null,
  configured: true,
  commitIndex: 7,
  lastLogIndex: 7,
  votes: {},
  electionTimeoutMs: [150, 300],
  preVote: true,
  checkQuorum: true,
  lastContactMs: {},
  replicas: {},
  maxInflight: 256,
  lastRefusalReceived: null,
  lastAnswerGiven: null,
  failedPeers: [],
  transferTarget: null,
  now: 1000,
  ...over,
});

t.test('explain(): why this node is or is not the leader', async (t) => {
  t.equal(explain(facts({ role: 'leader' })).leadership, 'n1 is the leader of term 4.');
  t.match(explain(facts({ role: 'leader', transferTarget: 'n2' })).leadership, /handing leadership to n2/);
  t.match(explain(facts({ configured: false })).leadership, /no configuration: bootstrap\(\)/);
  t.match(explain(facts({ voters: ['n2', 'n3'], learners: ['n1'] })).leadership, /n1 is a learner, so it never campaigns/);
  t.match(explain(facts({ voters: ['n2', 'n3'] })).leadership, /not a member of the configuration it knows/);
  t.match(
    explain(facts({ leaderId: 'n2', lastContactMs: { n2: 12 } })).leadership,
    /^n2 leads term 4; n1 follows it and last heard from it 12 ms ago\. A follower campaigns only after 150–300 ms/,
  );
  t.match(explain(facts({ leaderId: 'n2' })).leadership, /has not heard from it yet/);
  const leaderless = explain(facts({ votedFor: 'n3' })).leadership;
  t.match(leaderless, /knows no leader in term 4; it campaigns when its election timer \(150–300 ms\) fires\. In term 4 it voted for n3\. It will first ask for pre-votes/);
  t.notMatch(explain(facts({ preVote: false })).leadership, /pre-votes/);
  t.equal(
    explain(facts({ role: 'preCandidate', votes: { n1: true, n2: false } })).leadership,
    'n1 is campaigning for term 5: pre-votes granted by n1, refused by n2. It needs 2 of the 3 voters (n1, n2, n3); has 1. ' +
      'No answer from n3: down, partitioned, or ignoring the request because it hears from a live leader (leader stickiness).',
  );
  t.match(
    explain(facts({ role: 'candidate', votes: { n1: true, n4: true }, voters: ['n1', 'n4', 'n5'], oldVoters: ['n1', 'n2', 'n3'] })).leadership,
    /term 4: votes granted by n1, n4, refused by none\. It needs 2 of the 3 voters \(n1, n4, n5\); has 2, and 2 of the old configuration's 3 \(n1, n2, n3\); has 1\./,
  );
});

t.test('explain(): votes refused and given, with the reason in words', async (t) => {
  const refused = { voter: 'n2', candidate: 'n1', term: 5, preVote: true, granted: false, reason: 'log' as const, at: 990 };
  const e = explain(facts({ lastRefusalReceived: refused, lastAnswerGiven: { ...refused, voter: 'n1', candidate: 'n3', preVote: false, reason: 'voted' } }));
  t.equal(e.lastVoteRefused, `n2 refused this node's pre-vote for term 5 (10 ms ago): ${refusalReason('log')}.`);
  t.equal(e.lastVoteGiven, `n1 refused n3's vote for term 5 (10 ms ago): ${refusalReason('voted')}.`);
  t.match(e.lastVoteRefused, /§5\.4\.1/);
  const granted = explain(facts({ lastAnswerGiven: { voter: 'n1', candidate: 'n2', term: 6, preVote: false, granted: true, reason: null, at: 1000 } }));
  t.equal(granted.lastVoteGiven, 'n1 granted n2 its vote for term 6 (0 ms ago).');
  t.equal(granted.lastVoteRefused, null);
  for (const r of ['term', 'voted', 'log', 'leader', 'learner', 'unknown'] as const) t.ok(refusalReason(r).length > 20, r);
  t.equal(e.text.split('\n').length, 3, 'text: one line per sentence');
});

t.test('explain(): why each replica is in probe, replicate or snapshot', async (t) => {
  const e = explain(
    facts({
      role: 'leader',
      replicas: {
        n2: { match: 0, next: 8, state: 'probe', inflight: 0, paused: true },
        n3: { match: 7, next: 8, state: 'replicate', inflight: 256, paused: false },
        n4: { match: 3, next: 4, state: 'probe', inflight: 0, paused: false },
        n5: { match: 0, next: 1, state: 'snapshot', inflight: 0, paused: false },
      },
      lastContactMs: { n3: 5, n4: 900 },
      failedPeers: ['n4'],
    }),
  );
  t.match(e.replicas.n2, /^n2 is in probe: every replica starts in probe when a leader is elected.*from index 8 \(match 0\); n2 has not answered this leader yet\. One probe is out/);
  t.match(e.replicas.n3, /^n3 is in replicate: its log matches up to 7 and appends stream from 8 \(256 in flight\); n3 last answered 5 ms ago\. The window of 256 appends in flight is full/);
  t.match(e.replicas.n4, /does not yet know where the follower's log matches.*missed heartbeats for longer than the minimum election timeout \(150 ms\)/);
  t.match(e.replicas.n5, /n5 is in snapshot: it needs entries this leader has compacted away/);
  t.same(Object.keys(e.replicas), ['n2', 'n3', 'n4', 'n5']);
});

t.test('Diagnostics: vote events, remembered answers, heartbeat failed and resumed', async (t) => {
  const events: DiagnosticEvent[] = [];
  const d = new Diagnostics('n1', (e) => events.push(e));
  d.ignoredVote({ type: 'append', term: 1, from: 'n2', to: 'n1', prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 }, 0);
  t.same(events, [], 'only vote requests can be ignored');
  d.ignoredVote({ type: 'vote', term: 9, from: 'n4', to: 'n1', lastLogIndex: 0, lastLogTerm: 0 }, 0);
  t.same(events.splice(0), [{ type: 'voteRefused', candidate: 'n4', term: 9, preVote: false, reason: 'leader', silently: true }]);
  const msg = (m: Partial<RaftMessage> & Pick<RaftMessage, 'type'>): RaftMessage => ({ term: 3, from: 'n2', to: 'n1', ...m }) as RaftMessage;
  d.inbound(msg({ type: 'preVote', lastLogIndex: 1, lastLogTerm: 1 }), 0);
  d.inbound(msg({ type: 'preVoteResponse', granted: false, reason: 'log' }), 1);
  d.inbound(msg({ type: 'voteResponse', granted: true }), 2);
  t.match(d.lastRefusalReceived, { voter: 'n2', preVote: true, reason: 'log', at: 1 });
  t.match(d.lastAnswerReceived, { granted: true, reason: null });
  const contact = new Map<string, number>();
  d.outbound([msg({ type: 'voteResponse', from: 'n1', to: 'n3', granted: false })], 3, contact, 150);
  d.outbound([msg({ type: 'preVoteResponse', from: 'n1', to: 'n3', granted: true })], 4, contact, 150);
  t.same(events, [
    { type: 'voteRequested', candidate: 'n2', term: 3, preVote: true },
    { type: 'voteRefused', candidate: 'n3', term: 3, preVote: false, reason: 'unknown' },
    { type: 'voteGranted', candidate: 'n3', term: 3, preVote: true },
  ]);
  events.length = 0;
  const beat = (to: string): RaftMessage => msg({ type: 'heartbeat', from: 'n1', to } as Partial<RaftMessage> & Pick<RaftMessage, 'type'>);
  d.outbound([beat('n2'), beat('n3')], 100, contact, 150); // starts watching both
  contact.set('n2', 200);
  d.outbound([beat('n2'), beat('n3')], 250, contact, 150);
  t.same(events, [], 'not before the minimum election timeout');
  d.outbound([beat('n2'), beat('n3')], 251, contact, 150);
  t.same(events, [{ type: 'heartbeatFailed', peer: 'n3', lastContactMs: null }], 'n3, never heard, fails once');
  d.outbound([beat('n3')], 400, contact, 150);
  t.equal(events.length, 1, 'reported once');
  t.same(d.failedPeers(), ['n3']);
  d.inbound(msg({ type: 'heartbeatResponse', from: 'n3' } as Partial<RaftMessage> & Pick<RaftMessage, 'type'>), 500);
  t.same(events[1], { type: 'heartbeatResumed', peer: 'n3', downMs: 400 });
  d.resetLeadership();
  t.same(d.failedPeers(), []);
});

t.test('a node emits vote and heartbeat events, and explains itself [seed 7307]', async (t) => {
  const sim = new SimCluster({ seed: 7307, size: 3 });
  t.teardown(() => sim.stop());
  const events = new Map<string, RaftEvent[]>();
  await sim.start();
  for (const [id, node] of sim.nodes) {
    const list: RaftEvent[] = [];
    events.set(id, list);
    node.events$.subscribe((e) => list.push(e));
  }
  const leader = await sim.waitLeader();
  await sim.commit('x');
  const follower = [...sim.nodes.keys()].find((id) => id !== leader.id) as string;
  const other = [...sim.nodes.keys()].find((id) => id !== leader.id && id !== follower) as string;
  t.match(leader.explain().leadership, new RegExp(`^${leader.id} is the leader of term ${leader.status().term}\\.`));
  t.match(sim.nodes.get(follower)?.explain().leadership, new RegExp(`^${leader.id} leads term \\d+; ${follower} follows it and last heard from it \\d+ ms ago`));
  for (const text of Object.values(leader.explain().replicas)) t.match(text, /is in replicate/);

  const mark = (events.get(other) ?? []).length;
  sim.network.partition([leader.id], [follower]); // the follower still reaches the third node
  await sim.run(600);
  const failed = (events.get(leader.id) ?? []).filter((e) => e.type === 'heartbeatFailed');
  t.same(failed.map((e) => e.type === 'heartbeatFailed' && e.peer), [follower], 'the leader reports the cut-off follower once');
  t.match(leader.explain().replicas[follower], /missed heartbeats/);
  const cutOff = sim.nodes.get(follower);
  t.match(cutOff?.explain().leadership, /campaigning for term|knows no leader/, 'the cut-off follower explains it has no leader');
  t.match(cutOff?.explain().leadership, new RegExp(`No answer from ${leader.id}, ${other}|No answer from ${other}, ${leader.id}`), 'its pre-votes go unanswered');
  t.match(sim.nodes.get(other)?.explain().lastVoteGiven, new RegExp(`${other} refused ${follower}'s pre-vote for term \\d+ \\(\\d+ ms ago\\): the voter heard from a live leader`));
  sim.network.heal();
  await sim.runUntil(() => (events.get(leader.id) ?? []).some((e) => e.type === 'heartbeatResumed'), 2000, 'heartbeat resumes');
  t.equal(sim.leader()?.id, leader.id, 'pre-vote kept the leader');
  const since = (events.get(other) ?? []).slice(mark);
  const refused = since.filter((e) => e.type === 'voteRefused');
  t.ok(refused.length > 0, 'the third node refused the cut-off follower\'s pre-votes');
  for (const e of refused) t.match(e, { candidate: follower, preVote: true, reason: 'leader', silently: true });
  const requested = since.filter((e) => e.type === 'voteRequested');
  t.equal(requested.length, refused.length, 'each after being asked');
  t.notOk(since.some((e) => e.type === 'voteGranted'), 'and none granted');
});

t.test('a metrics sink gets commit latencies, proposal batches and append sizes; a throwing one changes nothing [seed 7308]', async (t) => {
  const seen = { latency: [] as number[], batches: [] as number[], appends: [] as number[] };
  let calls = 0;
  const sim = new SimCluster({
    seed: 7308,
    size: 3,
    node: {
      metrics: {
        commitLatency: (ms) => seen.latency.push(ms),
        proposalBatch: (n) => seen.batches.push(n),
        appendMessage: (n) => {
          seen.appends.push(n);
          if (++calls % 3 === 0) throw new Error('a broken exporter');
        },
      },
    },
  });
  t.teardown(() => sim.stop());
  await sim.start();
  await sim.waitLeader();
  for (const v of ['a', 'b', 'c', 'd']) void sim.propose(v); // one turn: one batch
  await sim.runUntil(() => sim.acks.length === 4, 5000, 'four acks');
  await sim.commit('e');
  t.equal(seen.latency.length, 5, 'one latency per acknowledged proposal');
  t.ok(seen.latency.every((ms) => ms >= 0 && Number.isFinite(ms)));
  t.equal(seen.batches.reduce((a, b) => a + b, 0), 5, 'every proposal counted in a batch');
  t.ok(seen.batches.some((n) => n > 1), `proposals of one turn share a batch (${seen.batches.join(',')})`);
  t.ok(seen.appends.some((n) => n > 0), 'append sizes reported');
  t.same(sim.applied.get(sim.leader()?.id ?? '')?.map((a) => a.value).slice(-5), ['a', 'b', 'c', 'd', 'e'], 'the node went on despite the throwing sink');
  const network = sim.network;
  const options = { id: 'x', stateMachine: { apply: () => undefined }, storage: new MemoryStorage(), transport: network.transport('x') };
  t.throws(() => createRaftNode({ ...options, metrics: { commitLatencies: () => 0 } as never }), { name: 'ConfigurationError', option: 'metrics.commitLatencies' });
  t.throws(() => createRaftNode({ ...options, metrics: { commitLatency: 5 } as never }), { name: 'ConfigurationError', option: 'metrics.commitLatency' });
  t.throws(() => createRaftNode({ ...options, metrics: null as never }), { name: 'ConfigurationError', option: 'metrics' });
});

t.test('status() marks a replica down while it misses heartbeats [seed 7309]', async (t) => {
  const sim = new SimCluster({ seed: 7309, size: 3 });
  t.teardown(() => sim.stop());
  await sim.start();
  const leader = await sim.waitLeader();
  await sim.commit('x');
  const follower = [...sim.nodes.keys()].find((id) => id !== leader.id) as string;
  t.equal(leader.status().replicas[follower]?.down, false);
  sim.network.partition([leader.id], [follower]);
  await sim.run(600);
  t.equal(leader.status().replicas[follower]?.down, true, 'down after missing heartbeats');
  t.match(leader.explain().replicas[follower], /missed heartbeats/);
  sim.network.heal();
  await sim.runUntil(() => leader.status().replicas[follower]?.down === false, 2000, 'up again');
  t.pass('up again once it answers');
});
