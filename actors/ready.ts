/**
 * The turn's Ready: every effect one turn of the node decided, drained in a
 * fixed order — persist, then send what depended on it, then apply, then
 * publish. Nothing that depends on durable state leaves before the sync.
 *
 * @module
 */
import type { HardState, RaftMessage } from '../machines/types.js';
import { addTruncation, type LogDelta } from './log.js';

/**
 * Effects recorded during one turn.
 *
 * @remarks `immediate` messages depend on no unsynced state (a leader's
 * appends and heartbeats, pre-vote requests: §10.2.1 lets a leader write its
 * log in parallel with replication). `afterSync` messages (vote grants, vote
 * requests, append acknowledgements) leave only once this turn's write and
 * every earlier one are durable.
 */
export interface Ready {
  hardState: HardState | null;
  delta: LogDelta;
  immediate: RaftMessage[];
  afterSync: RaftMessage[];
  /** Called once this turn's write (and every earlier one) is durable. */
  synced: (() => void)[];
}

/** A Ready with nothing in it. */
export function emptyReady(): Ready {
  return { hardState: null, delta: { truncateFrom: null, entries: [] }, immediate: [], afterSync: [], synced: [] };
}

/** Whether the Ready has anything to write to storage. */
export function hasWrite(r: Ready): boolean {
  return r.hardState !== null || r.delta.truncateFrom !== null || r.delta.entries.length > 0;
}

/** Message types that must wait for the sync of everything recorded before them. */
const AFTER_SYNC = new Set<RaftMessage['type']>(['vote', 'voteResponse', 'appendResponse', 'heartbeatResponse']);

/** Files a message under `immediate` or `afterSync`. */
export function record(r: Ready, message: RaftMessage): void {
  if (AFTER_SYNC.has(message.type)) r.afterSync.push(message);
  else r.immediate.push(message);
}

/**
 * Merges Readies queued behind an in-flight write into one storage write
 * (group commit), keeping their order.
 */
export function merge(readies: readonly Ready[]): Ready {
  const out = emptyReady();
  for (const r of readies) {
    if (r.hardState !== null) out.hardState = r.hardState;
    if (r.delta.truncateFrom !== null) addTruncation(out.delta, r.delta.truncateFrom);
    for (const e of r.delta.entries) out.delta.entries.push(e);
    for (const m of r.afterSync) out.afterSync.push(m);
    for (const f of r.synced) out.synced.push(f);
  }
  return out;
}
