/**
 * Offline disaster recovery: rewrite the configuration of a stopped server
 * after the cluster lost its quorum for good.
 *
 * @module
 */
import type { RaftStorage, StoredState } from '../adapters/storage/storage.js';
import { ConfigurationError } from '../errors.js';
import type { Configuration, LogEntry, Server } from '../machines/types.js';
import { encodeConfig, validateServers } from './config.js';

/** What {@link recoverCluster} wrote. */
export interface RecoveryResult {
  /** Index of the configuration entry appended. */
  readonly index: number;
  /** Its term, also the new current term of the store. */
  readonly term: number;
  /** The configuration now in effect on that store. */
  readonly configuration: Configuration;
}

/**
 * **UNSAFE — last resort.** Forces the configuration of a stopped server to `servers`, for a
 * cluster that lost its quorum for good (most voters destroyed), as hashicorp/raft's
 * `RecoverCluster`.
 *
 * @remarks It opens `storage` (which no running node may use), appends one configuration entry
 * after the last entry of the log, in a new term above every term the store has seen, makes that
 * the current term with no vote, and closes the store. Start the node again afterwards: with the
 * new configuration in effect it can elect a leader among `servers` alone.
 *
 * Why it is unsafe:
 * - The next leader commits **every entry in its log**, including an uncommitted tail that the
 *   old cluster never acknowledged (and may have replaced on the lost servers). Writes that were
 *   acknowledged by the old cluster but never reached this server are **lost**.
 * - Run it on every surviving server with the **same** `servers` list, and only when the lost
 *   servers can never come back with their old data: a returning old majority could elect a
 *   leader of its own configuration and diverge.
 * - Servers whose logs differ may be given the same (index, term) for different entries, which
 *   breaks Log Matching between them. Prefer recovering the single most up-to-date survivor
 *   (highest last term, then longest log), starting it, and adding the others back with fresh
 *   storage (`addVoter`).
 *
 * @param storage - the stopped server's storage (closed again on return).
 * @param servers - the new membership, as for `bootstrap` (at least one voter).
 * @throws {@link ConfigurationError} for a bad `servers` list, or a store with no state at all
 *   (use `bootstrap` for a new cluster); storage errors as the adapter raises them.
 *
 * @example
 * ```ts
 * // n1 survived; n2 and n3 are gone for good.
 * await node.stop()
 * await recoverCluster(storage, [{ id: 'n1', address: 'ws://10.0.0.1:7001' }])
 * const revived = createRaftNode({ id: 'n1', storage, stateMachine, transport })
 * await revived.start() // leads alone; add new voters with addVoter
 * ```
 */
export async function recoverCluster(storage: RaftStorage, servers: readonly Server[]): Promise<RecoveryResult> {
  const list = validateServers(servers, 'recoverCluster(servers)');
  const stored = await storage.open();
  try {
    const hasEntries = stored.lastIndex >= stored.firstIndex;
    if (stored.hardState.term === 0 && !hasEntries) {
      throw new ConfigurationError('recoverCluster(storage)', 'the store holds no state: bootstrap a new cluster instead');
    }
    const last: LogEntry | undefined = hasEntries ? (await storage.entries(stored.lastIndex, stored.lastIndex))[0] : undefined;
    // A store that compacted its log reports the term of the entry before its first one (when it supports snapshots).
    const boundaryTerm = (stored as StoredState & { readonly boundaryTerm?: number }).boundaryTerm ?? 0;
    const lastTerm = last?.term ?? boundaryTerm;
    const term = Math.max(stored.hardState.term, lastTerm) + 1;
    const configuration: Configuration = { servers: list };
    const index = stored.lastIndex + 1;
    await storage.write({
      hardState: { term, votedFor: null },
      entries: [{ index, term, type: 'config', data: encodeConfig(configuration) }],
    });
    return { index, term, configuration };
  } finally {
    await storage.close();
  }
}
