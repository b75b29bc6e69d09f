/**
 * `npm run test:long`: the 200 MiB version of spec/process/snapshot-transfer.spec.ts
 * (issue 5 item 6). SNAPSHOT_MB changes the size.
 */
import t from 'tap';
import { snapshotTransferSuite } from './snapshot-transfer.suite.js';

const mb = Number(process.env.SNAPSHOT_MB ?? 200);
if (!Number.isInteger(mb) || mb < 1) throw new Error(`SNAPSHOT_MB must be a positive integer, got ${process.env.SNAPSHOT_MB}`);

t.test(`a follower catches up by a ${mb} MiB snapshot over WebSocket + Level: same bytes, same leader, heartbeats on time`, (t) =>
  snapshotTransferSuite(t, mb, Math.max(120_000, mb * 3_000)));
