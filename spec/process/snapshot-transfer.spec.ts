/**
 * Real sockets and real disk: three nodes in one process over LevelStorage and
 * WebSocketTransport on 127.0.0.1; a follower stopped while the leader
 * snapshots and compacts catches up by an 8 MiB snapshot (the 200 MiB run is
 * `npm run test:long`). Real time, generous bounds, waits on events.
 */
import t from 'tap';
import { snapshotTransferSuite } from '../long/snapshot-transfer.suite.js';

t.test('a follower catches up by an 8 MiB snapshot over WebSocket + Level: same bytes, same leader, heartbeats on time', (t) =>
  snapshotTransferSuite(t, 8, 60_000));
