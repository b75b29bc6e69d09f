/**
 * Membership math, pure and table-tested: who votes, who is replicated to,
 * joint-consensus quorums, and which configuration a change request leads to
 * (thesis §4, Raft paper §6).
 *
 * @module
 */
import { quorumIndex, hasQuorum, tally, type ElectionResult } from './quorum.js';
import type { Configuration, Server, ServerId } from './types.js';

/**
 * The ids of a configuration, sorted by role: what the node machine consults on every quorum decision.
 *
 * @remarks `oldVoters` is `null` unless the configuration is joint. A server that votes in
 * either half of a joint configuration may campaign and its vote counts where it is a voter.
 */
export interface Membership {
  /** Voters of the configuration (of C_new while joint). */
  readonly voters: readonly ServerId[];
  /** While joint: the voters of C_old; `null` otherwise. */
  readonly oldVoters: readonly ServerId[] | null;
  /** Non-voting members of the configuration (of C_new while joint). */
  readonly learners: readonly ServerId[];
  /** The learners marked `autoPromote`: the leader promotes them once they caught up. */
  readonly staging: readonly ServerId[];
}

/** The empty membership: a fresh node that has no configuration yet. */
export const NO_MEMBERSHIP: Membership = { voters: [], oldVoters: null, learners: [], staging: [] };

/**
 * Sorts the servers of a configuration by role.
 *
 * @remarks The node machine calls it on the latest configuration in its log,
 * committed or not: a server uses a configuration as soon as it is in its log
 * (thesis §4.1). `null` (no configuration yet) gives {@link NO_MEMBERSHIP}.
 * While joint (`config.old` set), `voters` and `learners` are C_new's and
 * `oldVoters` C_old's voters (Raft paper §6, thesis §4.3).
 *
 * @example
 * ```ts
 * membershipOf({ servers: [{ id: 'a', address: 'a' }, { id: 'l', address: 'l', suffrage: 'learner' }] })
 * // { voters: ['a'], oldVoters: null, learners: ['l'], staging: [] }
 * ```
 */
export function membershipOf(config: Configuration | null): Membership {
  if (config === null) return NO_MEMBERSHIP;
  const voters: ServerId[] = [];
  const learners: ServerId[] = [];
  const staging: ServerId[] = [];
  for (const s of config.servers) {
    if (s.suffrage === 'learner') {
      learners.push(s.id);
      if (s.autoPromote === true) staging.push(s.id);
    } else {
      voters.push(s.id);
    }
  }
  const oldVoters = config.old === undefined ? null : config.old.filter((s) => s.suffrage !== 'learner').map((s) => s.id);
  return { voters, oldVoters, learners, staging };
}

/**
 * Whether `id` votes in the configuration (in either half while joint): it may campaign and its vote counts.
 *
 * @remarks Learners never vote and never campaign, so adding one cannot
 * change any quorum (thesis §4.2.1, new servers join without votes until
 * they have caught up). During joint consensus a voter of either C_old or
 * C_new is a voter (Raft paper §6).
 *
 * @example
 * ```ts
 * const m = membershipOf({ servers: [{ id: 'a', address: 'a' }, { id: 'l', address: 'l', suffrage: 'learner' }] })
 * isVoterIn(m, 'a') // true
 * isVoterIn(m, 'l') // false: a learner
 * ```
 */
export function isVoterIn(m: Membership, id: ServerId): boolean {
  return m.voters.includes(id) || (m.oldVoters !== null && m.oldVoters.includes(id));
}

/**
 * Whether `id` belongs to the configuration at all (voter of either half, or learner).
 *
 * @example
 * ```ts
 * const m = membershipOf({ servers: [{ id: 'a', address: 'a' }, { id: 'l', address: 'l', suffrage: 'learner' }] })
 * isMemberOf(m, 'l') // true
 * isMemberOf(m, 'z') // false
 * ```
 */
export function isMemberOf(m: Membership, id: ServerId): boolean {
  return isVoterIn(m, id) || m.learners.includes(id);
}

/**
 * Every server a leader `self` replicates to: voters of both halves and learners, without `self`.
 *
 * @remarks While joint, log entries are replicated to the servers of both
 * configurations (Raft paper §6); learners receive the log like voters but
 * are never counted toward a quorum. The order is C_new's voters, then C_old's,
 * then learners, each once.
 *
 * @example
 * ```ts
 * peersOf({ voters: ['a', 'b'], oldVoters: ['a', 'c'], learners: ['l'], staging: [] }, 'a') // ['b', 'c', 'l']
 * ```
 */
export function peersOf(m: Membership, self: ServerId): ServerId[] {
  const out: ServerId[] = [];
  const add = (id: ServerId): void => {
    if (id !== self && !out.includes(id)) out.push(id);
  };
  for (const v of m.voters) add(v);
  for (const v of m.oldVoters ?? []) add(v);
  for (const l of m.learners) add(l);
  return out;
}

/**
 * Every voter of either half, once (the servers a candidate asks for votes, itself included).
 *
 * @remarks While joint, a candidate needs a majority of C_old and of C_new
 * (Raft paper §6), so it asks the union; {@link jointTally} counts the answers
 * per half.
 *
 * @example
 * ```ts
 * allVoters({ voters: ['a', 'b'], oldVoters: ['a', 'c'], learners: [], staging: [] }) // ['a', 'b', 'c']
 * ```
 */
export function allVoters(m: Membership): ServerId[] {
  if (m.oldVoters === null) return [...m.voters];
  const out = [...m.voters];
  for (const v of m.oldVoters) if (!out.includes(v)) out.push(v);
  return out;
}

/**
 * The highest index held by a majority of the voters, in both halves while joint (§6 of the paper).
 *
 * @remarks The commit candidate of the Raft paper §5.3 under joint consensus:
 * while joint, agreement (for elections and entry commitment) requires
 * separate majorities from both C_old and C_new (paper §6, thesis §4.3), so
 * it is the lower of the two quorum indexes. The leader still commits it only
 * if that entry is from its current term (§5.4.2).
 *
 * @example
 * ```ts
 * jointQuorumIndex({ voters: ['a', 'b', 'c'], oldVoters: ['a', 'd', 'e'], learners: [], staging: [] },
 *   { a: 9, b: 9, c: 9, d: 2, e: 1 }) // 2: C_old holds only up to 2 by a majority
 * ```
 */
export function jointQuorumIndex(m: Membership, match: Readonly<Record<ServerId, number>>): number {
  const index = quorumIndex(m.voters, match);
  return m.oldVoters === null ? index : Math.min(index, quorumIndex(m.oldVoters, match));
}

/**
 * Tallies an election: won with a majority in both halves while joint; lost once either half is lost.
 *
 * @remarks Election Safety (Raft paper §5.2) across a configuration change:
 * a joint configuration cannot elect a leader without a majority of C_old and
 * one of C_new (paper §6, thesis §4.3), so neither configuration can elect a
 * second leader on its own in the same term.
 *
 * @example
 * ```ts
 * const joint = { voters: ['a', 'b', 'c'], oldVoters: ['a', 'd', 'e'], learners: [], staging: [] }
 * jointTally(joint, { a: true, b: true })          // 'pending': no majority of C_old yet
 * jointTally(joint, { a: true, b: true, d: true }) // 'won'
 * ```
 */
export function jointTally(m: Membership, votes: Readonly<Record<ServerId, boolean>>): ElectionResult {
  const result = tally(m.voters, votes);
  if (m.oldVoters === null) return result;
  const old = tally(m.oldVoters, votes);
  if (result === 'lost' || old === 'lost') return 'lost';
  return result === 'won' && old === 'won' ? 'won' : 'pending';
}

/**
 * The check-quorum rule: `active` holds a majority of the voters, in both halves while joint.
 *
 * @remarks A leader steps down when it has not heard from a majority within
 * an election timeout (thesis §6.2); while joint it must hear from a majority
 * of both halves (thesis §4.3). The node machine counts itself as active.
 *
 * @example
 * ```ts
 * jointHasQuorum({ voters: ['a', 'b', 'c'], oldVoters: null, learners: [], staging: [] }, new Set(['a', 'b'])) // true
 * ```
 */
export function jointHasQuorum(m: Membership, active: ReadonlySet<ServerId>): boolean {
  return hasQuorum(m.voters, active) && (m.oldVoters === null || hasQuorum(m.oldVoters, active));
}

/**
 * Whether a learner's replication is close enough to the leader's log to promote it: at most
 * `threshold` entries behind the leader's last index.
 *
 * @remarks A new server joins as a learner and becomes a voter only once it
 * has caught up, so adding it does not leave the cluster unavailable while
 * it copies the log (thesis §4.2.1, catching up new servers).
 *
 * @example
 * ```ts
 * isCaughtUp(95, 100, 10) // true: 5 entries behind
 * isCaughtUp(80, 100, 10) // false
 * ```
 */
export function isCaughtUp(match: number, lastIndex: number, threshold: number): boolean {
  return lastIndex - match <= threshold;
}

/** A membership change request, as the leader admits it. */
export type MembershipChange =
  /** Adds a non-voting member. */
  | { readonly type: 'addLearner'; readonly server: Server }
  /** Adds a learner that the leader promotes to voter once it has caught up (or marks an existing learner so). */
  | { readonly type: 'addVoter'; readonly server: Server }
  /** Internal: the leader promotes a caught-up learner. */
  | { readonly type: 'promote'; readonly id: ServerId }
  /** Turns a voter into a learner. */
  | { readonly type: 'demoteVoter'; readonly id: ServerId }
  /** Removes a member (voter or learner). */
  | { readonly type: 'removeServer'; readonly id: ServerId }
  /** Replaces the whole membership; through a joint configuration when more than one voter changes. */
  | { readonly type: 'replace'; readonly servers: readonly Server[] };

/**
 * Why a membership change was refused.
 *
 * - `changeInProgress`: a configuration entry is not committed yet, or the cluster is in a joint configuration (one change at a time).
 * - `leaderNotReady`: the leader has not committed an entry of its own term yet (retry shortly).
 * - `transferInProgress`: a leadership transfer (or a hand-over) is under way.
 * - `alreadyVoter`, `alreadyLearner`, `notMember`, `notVoter`, `notLearner`: the server's role does not allow it.
 * - `lastVoter`: the change would leave no voter.
 * - `twoVoters`: removing or demoting one of two voters (see {@link planChange}); pass `force` to do it anyway.
 * - `noChange`: the request changes nothing.
 */
export type MembershipRefusal =
  | 'changeInProgress'
  | 'leaderNotReady'
  | 'transferInProgress'
  | 'alreadyVoter'
  | 'alreadyLearner'
  | 'notMember'
  | 'notVoter'
  | 'notLearner'
  | 'lastVoter'
  | 'twoVoters'
  | 'noChange';

/** Outcome of {@link planChange}: the configuration to append, or why not. */
export type ChangePlan =
  | { readonly config: Configuration }
  | { readonly refusal: MembershipRefusal; readonly detail: string };

function refuse(refusal: MembershipRefusal, detail: string): ChangePlan {
  return { refusal, detail };
}

const isVoter = (s: Server): boolean => s.suffrage !== 'learner';

/** A server as stored in a configuration: explicit suffrage, `autoPromote` only on learners. */
function normalize(s: Server): Server {
  const suffrage = s.suffrage === 'learner' ? 'learner' : 'voter';
  return suffrage === 'learner' && s.autoPromote === true
    ? { id: s.id, address: s.address, suffrage, autoPromote: true }
    : { id: s.id, address: s.address, suffrage };
}

/** The two-voter trap: going from exactly two voters to one of them. */
function twoVoterTrap(before: readonly ServerId[], after: readonly ServerId[]): boolean {
  return before.length === 2 && after.length === 1 && before.includes(after[0] as ServerId);
}

/**
 * The configuration a change leads to, checked against the latest configuration in the log.
 *
 * @remarks Refuses while `config` is joint (`changeInProgress`). Single-server changes
 * (add, promote, demote, remove one voter) yield a plain configuration: any two majorities of
 * configurations that differ by one voter overlap (thesis §4.1). `replace` yields a joint
 * configuration (`old` set) when more than one voter is added or removed; the leader leaves it
 * once it is committed.
 *
 * Two-voter trap: removing or demoting one of exactly two voters is refused (`twoVoters`)
 * unless `force`. With configurations effective on append, if the leader removes itself and the
 * other voter loses the entry (a crash before it was stored), each side holds a configuration in
 * which it cannot win: the remaining voter needs the removed leader's vote, which its longer log
 * refuses, and the removed leader no longer campaigns. The one-voter cluster left behind also
 * tolerates no failure. Add a third voter first, or pass `force` knowingly.
 *
 * @example
 * ```ts
 * const abc = { servers: ['a', 'b', 'c'].map((id) => ({ id, address: id })) }
 * planChange(abc, { type: 'removeServer', id: 'c' }, false) // { config: { servers: a, b } }
 * planChange(abc, { type: 'addLearner', server: { id: 'a', address: 'a' } }, false) // { refusal: 'alreadyVoter', ... }
 * ```
 */
export function planChange(config: Configuration | null, change: MembershipChange, force: boolean): ChangePlan {
  const servers = (config?.servers ?? []).map(normalize);
  if (config?.old !== undefined) return refuse('changeInProgress', 'the cluster is in a joint configuration');
  const voters = servers.filter(isVoter).map((s) => s.id);
  const find = (id: ServerId): Server | undefined => servers.find((s) => s.id === id);
  switch (change.type) {
    case 'addLearner':
    case 'addVoter': {
      const held = find(change.server.id);
      if (held !== undefined && isVoter(held)) return refuse('alreadyVoter', `${change.server.id} is already a voter`);
      if (change.type === 'addLearner') {
        if (held !== undefined) return refuse('alreadyLearner', `${change.server.id} is already a learner`);
        return { config: { servers: [...servers, { id: change.server.id, address: change.server.address, suffrage: 'learner' }] } };
      }
      if (held?.autoPromote === true) return refuse('noChange', `${change.server.id} is already being added as a voter`);
      const added: Server = { id: change.server.id, address: held?.address ?? change.server.address, suffrage: 'learner', autoPromote: true };
      return { config: { servers: held === undefined ? [...servers, added] : servers.map((s) => (s.id === added.id ? added : s)) } };
    }
    case 'promote': {
      const held = find(change.id);
      if (held === undefined) return refuse('notMember', `${change.id} is not a member`);
      if (isVoter(held)) return refuse('alreadyVoter', `${change.id} is already a voter`);
      return { config: { servers: servers.map((s) => (s.id === change.id ? { id: s.id, address: s.address, suffrage: 'voter' } : s)) } };
    }
    case 'demoteVoter':
    case 'removeServer': {
      const held = find(change.id);
      if (held === undefined) return refuse('notMember', `${change.id} is not a member`);
      if (change.type === 'demoteVoter' && !isVoter(held)) return refuse('notVoter', `${change.id} is not a voter`);
      if (isVoter(held)) {
        const after = voters.filter((v) => v !== change.id);
        if (after.length === 0) return refuse('lastVoter', `${change.id} is the last voter`);
        if (!force && twoVoterTrap(voters, after)) {
          return refuse('twoVoters', `${change.id} is one of two voters: add a third voter first, or pass { force: true } (see the membership guide)`);
        }
      }
      const next =
        change.type === 'removeServer'
          ? servers.filter((s) => s.id !== change.id)
          : servers.map((s) => (s.id === change.id ? { id: s.id, address: s.address, suffrage: 'learner' as const } : s));
      return { config: { servers: next } };
    }
    case 'replace': {
      const next = change.servers.map(normalize);
      const nextVoters = next.filter(isVoter).map((s) => s.id);
      if (nextVoters.length === 0) return refuse('lastVoter', 'the new configuration has no voter');
      if (sameServers(servers, next)) return refuse('noChange', 'the new configuration equals the current one');
      if (!force && twoVoterTrap(voters, nextVoters)) {
        return refuse('twoVoters', 'going from two voters to one of them: add a third voter first, or pass { force: true } (see the membership guide)');
      }
      const added = nextVoters.filter((v) => !voters.includes(v)).length;
      const removed = voters.filter((v) => !nextVoters.includes(v)).length;
      return { config: added + removed <= 1 ? { servers: next } : { servers: next, old: servers } };
    }
  }
}

/**
 * Leaves a joint configuration: C_new alone. A plain configuration is returned as is.
 *
 * @remarks The second step of joint consensus: once C_old,new is committed,
 * the leader appends C_new (Raft paper §6, thesis §4.3). C_new's servers keep
 * their suffrage; C_old's servers that are not in C_new are dropped.
 *
 * @example
 * ```ts
 * const a = { id: 'a', address: 'a' }, b = { id: 'b', address: 'b' }
 * leaveJoint({ servers: [a, b], old: [a] }) // { servers: [a, b] }
 * ```
 */
export function leaveJoint(config: Configuration): Configuration {
  return config.old === undefined ? config : { servers: config.servers };
}

function sameServers(a: readonly Server[], b: readonly Server[]): boolean {
  if (a.length !== b.length) return false;
  for (const s of a) {
    const t = b.find((x) => x.id === s.id);
    if (t === undefined || t.address !== s.address || (t.suffrage ?? 'voter') !== (s.suffrage ?? 'voter') || (t.autoPromote === true) !== (s.autoPromote === true)) {
      return false;
    }
  }
  return true;
}
