/**
 * The snapshot catch-up assertions, shared by the 8 MB run in `npm test`
 * (spec/process/snapshot-transfer.spec.ts) and the 200 MB run in
 * `npm run test:long` (spec/long/snapshot-transfer.long.ts).
 */
import type { Test } from 'tap';
import { snapshotCatchUp } from './snapshot-cluster.js';

/** Runs the scenario with a snapshot of `mb` MiB and asserts on it. */
export async function snapshotTransferSuite(t: Test, mb: number, timeoutMs: number): Promise<void> {
  const bytes = mb * 1024 * 1024;
  const run = await snapshotCatchUp({ bytes, timeoutMs });
  t.equal(run.meta.size, bytes, `the leader's snapshot is ${mb} MiB`);
  t.equal(run.follower.restored.length, 1, 'the follower restored one snapshot');
  const got = run.follower.restored[0];
  t.ok(got, 'a restore happened');
  if (!got) return;
  t.equal(got.meta.index, run.meta.index, 'the follower installed the snapshot the leader took');
  t.equal(got.size, bytes, 'every byte arrived');
  const made = run.leader.made.get(got.digest);
  t.ok(made, 'the leader made a snapshot of the state the follower restored');
  t.equal(got.sha, made, 'the restored stream has the SHA-256 of the one the leader generated');
  t.equal(run.other.restored.length, 0, 'the follower that stayed up needed no snapshot');
  t.same(run.leaderChanges, [], 'no leader change during the transfer');
  t.equal(run.termAfter, run.termBefore, 'the term did not move');
  t.ok(run.beats > 0, `the follower heard the leader during the transfer (${run.beats} heartbeats/appends in ${Math.round(run.transferMs)} ms)`);
  t.ok(run.maxGapMs < run.electionMinMs, `longest gap between heartbeats at the follower ${Math.round(run.maxGapMs)} ms < election timeout minimum ${run.electionMinMs} ms`);
  const digests = new Set(Object.values(run.finalDigests));
  t.equal(digests.size, 1, 'all three nodes reach the same state after one more entry');
}
