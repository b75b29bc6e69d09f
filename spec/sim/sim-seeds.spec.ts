/**
 * Seeded random fault schedules with the five Raft safety properties checked
 * after every step (see harness/chaos.ts and harness/invariants.ts).
 *
 * npm test runs seeds 1..200. `SIM_SEEDS=n` runs 1..n; `RAFTCHART_SEED=s` replays one seed.
 */
import t from 'tap';
import { runChaos } from './harness/chaos.js';

function seeds(): number[] {
  const one = process.env.RAFTCHART_SEED;
  if (one !== undefined && one !== '') return [Number(one)];
  const n = Number(process.env.SIM_SEEDS ?? 200);
  if (!Number.isInteger(n) || n < 1) throw new Error(`SIM_SEEDS must be a positive integer, got ${process.env.SIM_SEEDS}`);
  return Array.from({ length: n }, (_, i) => i + 1);
}

t.test('random fault schedules keep every Raft safety property and lose no acknowledged write', async (t) => {
  const list = seeds();
  let leaders = 0;
  let acks = 0;
  let reads = 0;
  let transfers = 0;
  let membershipChanges = 0;
  let membershipCommitted = 0;
  let failures = 0;
  for (const seed of list) {
    try {
      const report = await runChaos({ seed });
      leaders += report.leaders;
      acks += report.acks;
      reads += report.reads;
      transfers += report.transfers;
      membershipChanges += report.membershipChanges;
      membershipCommitted += report.membershipCommitted;
    } catch (error) {
      failures++;
      t.fail((error as Error).message);
      if (failures >= 5) break;
    }
  }
  t.equal(failures, 0, `${list.length} seeds`);
  // The schedule must actually exercise elections and commits, or it proves nothing.
  t.ok(leaders >= list.length * 2, `elections happened (${leaders} leaders over ${list.length} seeds)`);
  t.ok(acks >= list.length * 10, `writes were acknowledged (${acks})`);
  t.ok(reads >= list.length * 5, `linearizable reads resolved, none stale (${reads})`);
  t.ok(transfers >= list.length / 2, `leadership transfers were attempted (${transfers})`);
  t.ok(membershipChanges >= list.length, `membership changes were requested (${membershipChanges})`);
  t.ok(membershipCommitted >= list.length / 4, `membership changes committed (${membershipCommitted})`);
});
