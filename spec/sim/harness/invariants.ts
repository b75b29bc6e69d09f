/**
 * The five Raft safety properties (Figure 3 of the Raft paper), checked
 * incrementally after every step of a deterministic cluster simulation.
 *
 * The checker never reads a whole log per step. It keeps, for every node, a
 * chain digest per index — `chain(i) = H(chain(i - 1), entryDigest(entry i))`
 * — so that one number at index `i` stands for the entire prefix `1..i`.
 * Equal chains at one index mean equal logs up to it (up to a 53-bit hash
 * collision), which turns Log Matching, Leader Completeness and the
 * committed-prefix comparison into O(1) look-ups. A step costs O(nodes + new
 * or rewritten entries + applies).
 *
 * @module
 */
import { ENTRY_TYPE_CODES } from '../../../adapters/codec.js';
import type { EntryType, LogEntry, Role } from '../../../machines/types.js';

// ---------------------------------------------------------------------------
// The view the simulator provides
// ---------------------------------------------------------------------------

/**
 * Read-only view of one node's log, as the checker sees it.
 *
 * @remarks Indexes `firstIndex()..lastIndex()` must all answer `term` and
 * `entry`; `lastIndex() === firstIndex() - 1` means the log is empty. After
 * compaction, `term(firstIndex() - 1)` should give the boundary (snapshot)
 * term; `undefined` is tolerated.
 */
export interface CheckedLog {
  /** Index of the first entry held (1 until compaction). */
  firstIndex(): number;
  /** Index of the last entry held, `firstIndex() - 1` when empty (0 for a fresh log). */
  lastIndex(): number;
  /** Term of the entry at `index`, `0` for index 0, `undefined` when not held. */
  term(index: number): number | undefined;
  /** The entry at `index`, `undefined` when not held. */
  entry(index: number): LogEntry | undefined;
}

/**
 * One live node as the checker sees it after a step.
 *
 * @remarks `commitIndex <= log.lastIndex()` (a larger value is clamped:
 * only entries the node holds can be recorded as committed).
 */
export interface CheckedNode {
  /** Server id, unique for all time. */
  readonly id: string;
  /** Bumps on each restart of the node over the same storage. */
  readonly incarnation: number;
  /** Role after the step. */
  readonly role: Role;
  /** Current term after the step. */
  readonly term: number;
  /** Highest index the node knows to be committed. */
  readonly commitIndex: number;
  /** The node's log (the same storage across incarnations). */
  readonly log: CheckedLog;
}

/** The names of the five safety properties of Figure 3 of the Raft paper. */
export type SafetyProperty =
  | 'electionSafety'
  | 'leaderAppendOnly'
  | 'logMatching'
  | 'leaderCompleteness'
  | 'stateMachineSafety';

/** The paper section each property comes from, printed in messages. */
const SECTION: Readonly<Record<SafetyProperty, string>> = {
  electionSafety: '§5.2',
  leaderAppendOnly: '§5.3',
  logMatching: '§5.3',
  leaderCompleteness: '§5.4',
  stateMachineSafety: '§5.4.3',
};

/** What {@link InvariantViolation} carries besides its message. */
export interface ViolationDetails {
  /** Node ids involved, the offending node first. */
  readonly nodes: readonly string[];
  /** Term at stake, or `null`. */
  readonly term: number | null;
  /** Log index at stake, or `null`. */
  readonly index: number | null;
}

/**
 * A Raft safety property does not hold: the simulated cluster is unsafe.
 *
 * @remarks The message starts with the property and its paper section and
 * names the nodes (`id#incarnation` where it matters), the term and the index.
 * `check` is the number of the `check()` call that found it; print it with the
 * seed to replay.
 *
 * @example
 * ```ts
 * try { checker.check(nodes) } catch (e) {
 *   if (e instanceof InvariantViolation) console.error(`seed ${seed}: ${e.message}`)
 *   throw e
 * }
 * ```
 */
export class InvariantViolation extends Error {
  /** Stable code, like the library's errors. */
  readonly code = 'INVARIANT' as const;
  /** The property that failed. */
  readonly property: SafetyProperty;
  /** Node ids involved, the offending node first. */
  readonly nodes: readonly string[];
  /** Term at stake, or `null`. */
  readonly term: number | null;
  /** Log index at stake, or `null`. */
  readonly index: number | null;
  /** Number of the `check()` call that found the violation (1-based). */
  readonly check: number;

  constructor(property: SafetyProperty, what: string, details: ViolationDetails, check: number) {
    super(`${property} (${SECTION[property]}): ${what} [check #${check}]`);
    this.name = 'InvariantViolation';
    this.property = property;
    this.nodes = details.nodes;
    this.term = details.term;
    this.index = details.index;
    this.check = check;
  }
}

/** A committed entry as recorded by the checker. */
export interface CommittedEntry {
  /** Term of the entry. */
  readonly term: number;
  /** {@link entryDigest} of the entry: its term, type and data. */
  readonly digest: number;
  /** Chain digest of the whole log prefix ending at this entry. */
  readonly chain: number;
}

/** Counters for the end-of-seed report. */
export interface InvariantStats {
  /** `check()` calls run. */
  readonly checks: number;
  /** Terms that had a leader (one leader per term). */
  readonly leaders: number;
  /** Highest term seen on any node. */
  readonly maxTerm: number;
  /** Highest index recorded as committed, 0 when none. */
  readonly maxCommitIndex: number;
  /** Distinct `(index, term)` entries seen in any log. */
  readonly entries: number;
  /** Entries hashed into some node's chain: grows with appends and rewrites, not with steps. */
  readonly hashed: number;
  /** `noteTruncate` calls. */
  readonly truncations: number;
  /** `noteApply` calls. */
  readonly applies: number;
  /** Applies not yet matched against a committed entry (their node died before the check). */
  readonly pendingApplies: number;
}

// ---------------------------------------------------------------------------
// Hashing: two independent 32-bit lanes folded into a 53-bit safe integer
// ---------------------------------------------------------------------------

const TWO_32 = 2 ** 32;
const TWO_21 = 2 ** 21;
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;

let laneA = 0;
let laneB = 0;

function begin(seedA: number, seedB: number): void {
  laneA = seedA | 0;
  laneB = seedB | 0;
}

/** Feeds one 32-bit word: a Murmur3 round in lane A, an xxHash32 round in lane B. */
function feed(word: number): void {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let a = laneA ^ k;
  a = (a << 13) | (a >>> 19);
  laneA = (Math.imul(a, 5) + 0xe6546b64) | 0;
  let b = (laneB + Math.imul(word, P2)) | 0;
  b = (b << 13) | (b >>> 19);
  laneB = Math.imul(b, P1);
}

/** Feeds a non-negative safe integer as two words. */
function feedNumber(n: number): void {
  feed(n >>> 0);
  feed(Math.floor(n / TWO_32) | 0);
}

function finish(): number {
  let a = laneA;
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  a = Math.imul(a, 0xc2b2ae35);
  a ^= a >>> 16;
  let b = laneB;
  b ^= b >>> 15;
  b = Math.imul(b, P2);
  b ^= b >>> 13;
  b = Math.imul(b, P3);
  b ^= b >>> 16;
  return (a >>> 0) * TWO_21 + (b >>> 11);
}


/**
 * 53-bit digest of one entry's content: term, type and data (not its index).
 *
 * @remarks Two lanes (Murmur3 and xxHash32 rounds) make accidental collisions
 * negligible (~2^-53 per pair). Not cryptographic.
 * @example
 * ```ts
 * entryDigest({ index: 3, term: 2, type: 'normal', data: bytes }) === checker.committed().get(3)?.digest
 * ```
 */
export function entryDigest(entry: Pick<LogEntry, 'term' | 'type' | 'data'>): number {
  const data = entry.data;
  const n = data.length;
  begin(0x2545f491, 0x5bd1e995);
  feed(ENTRY_TYPE_CODES[entry.type] + 1);
  feedNumber(entry.term);
  feed(n);
  const whole = n - (n % 4);
  let i = 0;
  for (; i < whole; i += 4) {
    feed((data[i] ?? 0) | ((data[i + 1] ?? 0) << 8) | ((data[i + 2] ?? 0) << 16) | ((data[i + 3] ?? 0) << 24));
  }
  if (i < n) {
    feed((data[i] ?? 0) | ((data[i + 1] ?? 0) << 8) | ((data[i + 2] ?? 0) << 16));
  }
  return finish();
}

/** Chain digest of index `i` from the chain of `i - 1` and the entry digest of `i`. */
function chainDigest(previous: number, digest: number): number {
  begin(0x27d4eb2f, 0x165667b1);
  feedNumber(previous);
  feedNumber(digest);
  return finish();
}

/** Chain digest of the empty prefix (index 0). */
const ROOT_CHAIN = 0;

/** Stand-in chain for a log whose prefix up to `index` the checker never saw. */
function pseudoChain(index: number, term: number | undefined): number {
  begin(0x61c88647, 0x7f4a7c15);
  feedNumber(index);
  feedNumber(term ?? 0);
  return finish();
}

// ---------------------------------------------------------------------------
// Checker state
// ---------------------------------------------------------------------------

/** What the checker remembers of one node (by id, across incarnations: the log outlives a restart). */
interface Track {
  readonly id: string;
  /** Incarnation seen at the last check. */
  incarnation: number;
  /** Index whose chain is the seed (`firstIndex - 1` when anchored); arrays are offset by it. */
  base: number;
  /** `terms[i - base]`: term at index `i`; slot 0 is the seed's term (`undefined` if unknown). */
  terms: (number | undefined)[];
  /** `chains[i - base]`: chain digest at index `i`. */
  chains: number[];
  /** `digests[i - base]`: entry digest at index `i` (`NaN` for the seed). */
  digests: number[];
  /** `types[i - base]`: entry type at index `i`. */
  types: (EntryType | undefined)[];
  /**
   * The seed is a stand-in for a prefix the checker never saw and cannot name
   * (no committed record, no boundary term): chains are private to this node,
   * so they are neither registered nor recorded as committed.
   */
  detached: boolean;
  /** Lowest index truncated since the last check, `Infinity` when none. */
  dirtyFrom: number;
  /** Role and term as of the last check (`null` before the first). */
  role: Role | null;
  term: number;
  /** commitIndex as of the last check. */
  commitIndex: number;
  /** Entries `<= recorded` have been recorded (or compared) as committed from this node. */
  recorded: number;
  /** Number of the last check that saw this node. */
  seenAt: number;
  /** Lowest index that existed at the previous check and changed or vanished in this one, `Infinity` when none. */
  changedFrom: number;
  /** lastIndex at the previous check. */
  previousTop: number;
  /** Set during a check when the tracked prefix must restart at this index. */
  anchorAt: number | null;
}

interface Registered {
  readonly chain: number;
  readonly node: string;
}

interface Committed extends CommittedEntry {
  /** Entry type: applies may skip only entries that are not `normal`. */
  readonly type: EntryType | undefined;
  /** Node whose log first showed this entry committed. */
  readonly node: string;
}

interface Applied {
  readonly term: number;
  readonly digest: number;
  readonly node: string;
}

/** An apply to match against the committed entry, or a run of indexes an apply skipped (`skipTo >= index`). */
interface PendingApply {
  readonly node: string;
  readonly incarnation: number;
  readonly index: number;
  readonly term: number;
  readonly digest: number;
  /** For a skip: the last skipped index (the apply that skipped is `skipTo + 1`); `null` for an apply. */
  readonly skipTo: number | null;
}

/** A point of the commit frontier: index `index` was seen committed by a node in term `term`. */
interface FrontierPoint {
  readonly term: number;
  readonly index: number;
  readonly node: string;
}

function top(s: Track): number {
  return s.base + s.terms.length - 1;
}

function truncateTrack(s: Track, index: number): void {
  const keep = index - s.base + 1;
  s.terms.length = keep;
  s.chains.length = keep;
  s.digests.length = keep;
  s.types.length = keep;
}

function label(id: string, incarnation: number): string {
  return `${id}#${incarnation}`;
}

/**
 * Checks the five Raft safety properties (Figure 3) after every simulation step.
 *
 * @remarks
 * - Election Safety (§5.2): at most one leader per term, over the whole run.
 * - Leader Append-Only (§5.3): between two checks where a node is leader of
 *   the same term (same incarnation), no entry it held is deleted or changed.
 * - Log Matching (§5.3): two logs holding the same `(index, term)` hold the
 *   same prefix up to it; terms never decrease along a log.
 * - Leader Completeness (§5.4): every entry seen committed by a node in term
 *   τ is in the log of every leader of a term `>= τ`. (A stale leader of an
 *   older term may legitimately lack entries committed later.)
 * - State Machine Safety (§5.4.3): nodes never disagree on a committed index;
 *   per incarnation, applies run in increasing index order from 1 (or from a
 *   restore point) and skip only committed entries that are not `normal`;
 *   they are identical across nodes at one index and match the committed entry.
 *
 * `note*` methods never throw (they may run inside actor callbacks); a
 * violation they find is thrown by the next `check()`. After a violation every
 * later `check()` rethrows it.
 *
 * @example
 * ```ts
 * const checker = new InvariantChecker();
 * storage.onTruncate = (from) => checker.noteTruncate(id, incarnation, from);
 * fsm.onApply = (entry) => checker.noteApply(id, incarnation, entry);
 * for (let step = 0; step < steps; step++) { sim.step(); checker.check(sim.liveNodes()); }
 * ```
 * @see https://raft.github.io/raft.pdf Figure 3
 */
export class InvariantChecker {
  readonly #tracks = new Map<string, Track>();
  /** term → leader id, forever. */
  readonly #leaders = new Map<number, string>();
  /** index → term → first chain registered for that entry. */
  readonly #registered = new Map<number, Map<number, Registered>>();
  readonly #committed = new Map<number, Committed>();
  /** Pareto frontier of (observer term, committed index): terms and indexes both strictly increase. */
  readonly #frontier: FrontierPoint[] = [];
  /** index → first applied entry. */
  readonly #applied = new Map<number, Applied>();
  /** `id#incarnation` → last applied index. */
  readonly #lastApplied = new Map<string, number>();
  #pending: PendingApply[] = [];
  #deferred: InvariantViolation | null = null;
  #failure: InvariantViolation | null = null;

  #checks = 0;
  #maxTerm = 0;
  #maxCommit = 0;
  #entries = 0;
  #hashed = 0;
  #truncations = 0;
  #applies = 0;

  /**
   * Checks all properties after one step; pass every live node (each id once).
   *
   * @throws {@link InvariantViolation} on the first violated property (or the
   * one a `note*` call found since the last check), and again on every later call.
   * @throws `Error` when the view breaks its contract (duplicate id, a hole in a log).
   */
  check(nodes: readonly CheckedNode[]): void {
    if (this.#failure !== null) throw this.#failure;
    const n = ++this.#checks;
    try {
      if (this.#deferred !== null) throw this.#deferred;
      this.#run(nodes, n);
    } catch (error) {
      if (error instanceof InvariantViolation) this.#failure = error;
      throw error;
    }
  }

  /**
   * Records that `nodeId`'s log deleted its entries `>= fromIndex`. Call it
   * synchronously when it happens, as often as it happens; deleting nothing
   * (`fromIndex > lastIndex`) is harmless.
   *
   * @remarks Without it a rewrite of an entry with an equal term would go
   * unseen; shorter logs and changed terms are found anyway. Only suffix
   * deletions: compaction (dropping a prefix) and restarts that lose unsynced
   * entries need no call. Never throws.
   * @param nodeId - the node whose log lost entries (the log outlives incarnations).
   * @param incarnation - the incarnation that truncated (informational).
   * @param fromIndex - the first deleted index.
   */
  noteTruncate(nodeId: string, incarnation: number, fromIndex: number): void {
    this.#truncations++;
    const s = this.#tracks.get(nodeId);
    if (s !== undefined && fromIndex < s.dirtyFrom) s.dirtyFrom = fromIndex;
  }

  /**
   * Records that the state machine of `nodeId#incarnation` applied `entry`.
   *
   * @remarks Per incarnation, applies must run in increasing index order
   * from 1 (or from {@link InvariantChecker.noteRestore | noteRestore}'s
   * index + 1). A skipped index is allowed only if it turns out committed with
   * a type other than `normal` (noop and config entries never reach the user's
   * state machine). Pass the entry as the log holds it (`type` included).
   * Never throws.
   */
  noteApply(nodeId: string, incarnation: number, entry: LogEntry): void {
    this.#applies++;
    if (this.#deferred !== null || this.#failure !== null) return;
    const who = label(nodeId, incarnation);
    const last = this.#lastApplied.get(who) ?? 0;
    if (entry.index <= last) {
      this.#defer(
        'stateMachineSafety',
        `${who} applied index ${entry.index} (term ${entry.term}) after index ${last}; applies must increase`,
        { nodes: [nodeId], term: entry.term, index: entry.index },
      );
      return;
    }
    if (entry.index > last + 1) {
      // Only entries that are not `normal` (noop, config) may be skipped: settled once they are known committed.
      this.#pending.push({ node: nodeId, incarnation, index: last + 1, term: 0, digest: 0, skipTo: entry.index - 1 });
    }
    this.#lastApplied.set(who, entry.index);
    const digest = entryDigest(entry);
    const earlier = this.#applied.get(entry.index);
    if (earlier === undefined) {
      this.#applied.set(entry.index, { term: entry.term, digest, node: nodeId });
    } else if (earlier.term !== entry.term || earlier.digest !== digest) {
      this.#defer(
        'stateMachineSafety',
        `${who} applied index ${entry.index} term ${entry.term}, but ${earlier.node} applied term ${earlier.term}` +
          (earlier.term === entry.term ? ' with different content' : '') +
          ` at that index`,
        { nodes: [nodeId, earlier.node], term: entry.term, index: entry.index },
      );
      return;
    }
    const committed = this.#committed.get(entry.index);
    if (committed !== undefined) {
      this.#compareApplied(nodeId, who, entry.index, entry.term, digest, committed, 'defer');
    } else {
      this.#pending.push({ node: nodeId, incarnation, index: entry.index, term: entry.term, digest, skipTo: null });
    }
  }

  /**
   * Records that the state machine of `nodeId#incarnation` was restored from a
   * snapshot covering indexes `<= index`: its next apply must be `index + 1`.
   *
   * @remarks A restore that goes back behind what the incarnation already
   * applied is a State Machine Safety violation. Never throws.
   */
  noteRestore(nodeId: string, incarnation: number, index: number): void {
    if (this.#deferred !== null || this.#failure !== null) return;
    const who = label(nodeId, incarnation);
    const last = this.#lastApplied.get(who) ?? 0;
    if (index < last) {
      this.#defer(
        'stateMachineSafety',
        `${who} restored a snapshot at index ${index} after applying up to ${last}`,
        { nodes: [nodeId], term: null, index },
      );
      return;
    }
    this.#lastApplied.set(who, index);
  }

  /** Every entry known committed so far, by index (not necessarily from 1 after compaction). */
  committed(): ReadonlyMap<number, CommittedEntry> {
    return this.#committed;
  }

  /** Counters for the end-of-seed report. */
  stats(): InvariantStats {
    return {
      checks: this.#checks,
      leaders: this.#leaders.size,
      maxTerm: this.#maxTerm,
      maxCommitIndex: this.#maxCommit,
      entries: this.#entries,
      hashed: this.#hashed,
      truncations: this.#truncations,
      applies: this.#applies,
      pendingApplies: this.#pending.length,
    };
  }

  // -------------------------------------------------------------------------

  #run(nodes: readonly CheckedNode[], n: number): void {
    // 1. Logs, first half: drop what no longer holds (truncations, rewrites, snapshots).
    for (const node of nodes) {
      const s = this.#track(node, n);
      s.anchorAt = this.#rewind(node, s);
    }

    // 2. Roles: Election Safety and Leader Append-Only (before new entries can trip Log Matching).
    for (const node of nodes) {
      const s = this.#tracks.get(node.id);
      if (s === undefined) continue;
      if (node.term > this.#maxTerm) this.#maxTerm = node.term;
      if (node.role === 'leader') this.#checkLeader(node, s, n);
    }

    // 3. Logs, second half: hash and register what is new (Log Matching).
    let unanchored: { node: CheckedNode; s: Track; boundary: number }[] | null = null;
    for (const node of nodes) {
      const s = this.#tracks.get(node.id);
      if (s === undefined) continue;
      const boundary = s.anchorAt;
      if (boundary !== null && !this.#anchor(node, s, boundary, false)) {
        (unanchored ??= []).push({ node, s, boundary });
      } else {
        this.#extend(node, s, n);
      }
    }
    if (unanchored !== null) {
      // Seed never-seen prefixes lowest first, so a log starting later reuses the chain of one starting earlier.
      unanchored.sort((x, y) => x.boundary - y.boundary);
      for (const { node, s, boundary } of unanchored) {
        this.#anchor(node, s, boundary, true);
        this.#extend(node, s, n);
      }
    }

    // 4. Commits: record newly committed entries, compare with what others committed.
    for (const node of nodes) {
      const s = this.#tracks.get(node.id);
      if (s !== undefined) this.#recordCommits(node, s, n);
    }

    // 5. Leader Completeness for every current leader (O(log terms) each).
    for (const node of nodes) {
      if (node.role !== 'leader') continue;
      const s = this.#tracks.get(node.id);
      if (s !== undefined) this.#checkCompleteness(node, s, n);
    }

    for (const node of nodes) {
      const s = this.#tracks.get(node.id);
      if (s === undefined) continue;
      s.role = node.role;
      s.term = node.term;
      s.commitIndex = node.commitIndex;
      s.incarnation = node.incarnation;
      s.previousTop = top(s);
      s.dirtyFrom = Infinity;
    }

    // 6. Applies made since the last check must match committed entries.
    if (this.#pending.length > 0) this.#settleApplies(n);
  }

  #track(node: CheckedNode, n: number): Track {
    let s = this.#tracks.get(node.id);
    if (s === undefined) {
      s = {
        id: node.id,
        incarnation: node.incarnation,
        base: 0,
        terms: [0],
        chains: [ROOT_CHAIN],
        digests: [Number.NaN],
        types: [undefined],
        detached: false,
        dirtyFrom: Infinity,
        role: null,
        term: 0,
        commitIndex: 0,
        recorded: 0,
        seenAt: 0,
        changedFrom: Infinity,
        previousTop: 0,
        anchorAt: null,
      };
      this.#tracks.set(node.id, s);
    } else if (s.seenAt === n) {
      throw new Error(`InvariantChecker.check: node ${node.id} passed twice in one check`);
    }
    if (s.incarnation !== node.incarnation) {
      s.role = null; // a restarted node is not the leader it was
    }
    s.seenAt = n;
    s.changedFrom = Infinity;
    return s;
  }

  /**
   * Drops tracked entries the log no longer holds as they were.
   * @returns `null` when the tracked prefix is still valid, else the index to re-anchor at.
   */
  #rewind(node: CheckedNode, s: Track): number | null {
    const log = node.log;
    const first = log.firstIndex();
    const last = log.lastIndex();
    const known = top(s);
    let t = Math.min(known, last, s.dirtyFrom - 1);
    // A truncation or a shorter log is explicit; a changed term means a rewrite we were not told of.
    while (t > s.base && t >= first && log.term(t) !== s.terms[t - s.base]) t--;
    if (t < known) s.changedFrom = t + 1;
    if (t < first - 1 || t < s.base || first - 1 < s.base) return first - 1; // unverifiable: a snapshot replaced the log
    if (t > 0 && (t === s.base || t === first - 1)) {
      const boundary = log.term(t);
      const mine = s.terms[t - s.base];
      if (boundary !== undefined && mine !== undefined && boundary !== mine) {
        s.changedFrom = Math.min(s.changedFrom, t);
        return first - 1;
      }
    }
    if (t < known) {
      truncateTrack(s, t);
      if (s.recorded > t) s.recorded = t;
    }
    return null;
  }

  /** Restarts a node's chain at `boundary`; when `force` is false, only if the seed is known. */
  #anchor(node: CheckedNode, s: Track, boundary: number, force: boolean): boolean {
    let term = boundary === 0 ? 0 : node.log.term(boundary);
    let chain: number | undefined;
    let digest = Number.NaN;
    let type: EntryType | undefined;
    if (boundary === 0) {
      chain = ROOT_CHAIN;
    } else {
      const committed = this.#committed.get(boundary);
      if (committed !== undefined && (term === undefined || term === committed.term)) {
        term = committed.term;
        chain = committed.chain;
        digest = committed.digest;
        type = committed.type;
      } else if (term !== undefined) {
        chain = this.#registered.get(boundary)?.get(term)?.chain;
      }
    }
    let detached = false;
    if (chain === undefined) {
      if (!force) return false;
      chain = pseudoChain(boundary, term);
      if (term !== undefined) this.#register(boundary, term, chain, node.id);
      else detached = true;
    }
    s.base = boundary;
    s.terms = [term];
    s.chains = [chain];
    s.digests = [digest];
    s.types = [type];
    s.detached = detached;
    s.recorded = boundary;
    return true;
  }

  /** Hashes the entries after the tracked prefix and registers each `(index, term)`. */
  #extend(node: CheckedNode, s: Track, n: number): void {
    const log = node.log;
    const last = log.lastIndex();
    let i = top(s);
    if (i >= last) return;
    let chain = s.chains[i - s.base] ?? ROOT_CHAIN;
    let previousTerm = s.terms[i - s.base] ?? 0;
    for (i++; i <= last; i++) {
      const entry = log.entry(i);
      const term = log.term(i);
      if (entry === undefined || term === undefined || entry.index !== i || entry.term !== term) {
        throw new Error(
          `InvariantChecker.check: ${label(node.id, node.incarnation)} log has lastIndex ${last} ` +
            `but index ${i} answers term ${String(term)} and entry ${entry === undefined ? 'none' : `${entry.index}/${entry.term}`}`,
        );
      }
      if (term < previousTerm) {
        throw this.#violation(
          'logMatching',
          `${label(node.id, node.incarnation)} holds term ${term} at index ${i} after term ${previousTerm} at index ${i - 1}; terms never decrease along a log`,
          { nodes: [node.id], term, index: i },
          n,
        );
      }
      const digest = entryDigest(entry);
      chain = chainDigest(chain, digest);
      s.terms.push(term);
      s.chains.push(chain);
      s.digests.push(digest);
      s.types.push(entry.type);
      this.#hashed++;
      const other = s.detached ? null : this.#register(i, term, chain, node.id);
      if (other !== null && other.chain !== chain) {
        const first = this.#firstDifference(s, this.#tracks.get(other.node), i);
        throw this.#violation(
          'logMatching',
          `${label(node.id, node.incarnation)} and ${other.node} both hold index ${i} term ${term} but their logs differ` +
            (first === null ? ' at or before it' : ` (first at index ${first})`),
          { nodes: [node.id, other.node], term, index: first ?? i },
          n,
        );
      }
      previousTerm = term;
    }
  }

  /** Registers `(index, term) → chain` if new; returns the earlier registration, or `null`. */
  #register(index: number, term: number, chain: number, node: string): Registered | null {
    let byTerm = this.#registered.get(index);
    if (byTerm === undefined) {
      byTerm = new Map();
      this.#registered.set(index, byTerm);
    }
    const earlier = byTerm.get(term);
    if (earlier !== undefined) return earlier;
    byTerm.set(term, { chain, node });
    this.#entries++;
    return null;
  }

  #checkLeader(node: CheckedNode, s: Track, n: number): void {
    const leader = this.#leaders.get(node.term);
    if (leader === undefined) {
      this.#leaders.set(node.term, node.id);
    } else if (leader !== node.id) {
      throw this.#violation(
        'electionSafety',
        `${label(node.id, node.incarnation)} is leader of term ${node.term}, which ${leader} already led`,
        { nodes: [node.id, leader], term: node.term, index: null },
        n,
      );
    }
    const stayed = s.role === 'leader' && s.term === node.term && s.incarnation === node.incarnation;
    if (stayed && s.changedFrom !== Infinity) {
      throw this.#violation(
        'leaderAppendOnly',
        `${label(node.id, node.incarnation)}, leader of term ${node.term}, deleted or rewrote its entries from index ${s.changedFrom} ` +
          `(last index was ${s.previousTop}, now ${node.log.lastIndex()})`,
        { nodes: [node.id], term: node.term, index: s.changedFrom },
        n,
      );
    }
  }

  #recordCommits(node: CheckedNode, s: Track, n: number): void {
    const upTo = Math.min(node.commitIndex, top(s));
    if (upTo <= s.recorded || s.detached) return;
    for (let i = Math.max(s.recorded, s.base) + 1; i <= upTo; i++) {
      const k = i - s.base;
      const chain = s.chains[k] ?? Number.NaN;
      const earlier = this.#committed.get(i);
      if (earlier === undefined) {
        this.#committed.set(i, {
          term: s.terms[k] ?? 0,
          digest: s.digests[k] ?? Number.NaN,
          chain,
          type: s.types[k],
          node: node.id,
        });
      } else if (earlier.chain !== chain) {
        const first = this.#firstCommittedDifference(s, i) ?? i;
        const fk = first - s.base;
        const theirs = this.#committed.get(first) ?? earlier;
        throw this.#violation(
          'stateMachineSafety',
          `${label(node.id, node.incarnation)} (commitIndex ${node.commitIndex}) has index ${first} term ${String(s.terms[fk])} committed, ` +
            `but ${theirs.node} committed term ${theirs.term}` +
            (theirs.term === s.terms[fk] ? ' with different content' : '') +
            ' at that index',
          { nodes: [node.id, theirs.node], term: s.terms[fk] ?? null, index: first },
          n,
        );
      }
    }
    s.recorded = upTo;
    if (upTo > this.#maxCommit) this.#maxCommit = upTo;
    if (this.#committed.has(upTo)) this.#advanceFrontier(node.term, upTo, node.id);
  }

  /** Adds (term, index) to the commit frontier unless an older-or-equal term already covers the index. */
  #advanceFrontier(term: number, index: number, node: string): void {
    const f = this.#frontier;
    const q = this.#frontierAt(term);
    const at = q < 0 ? undefined : f[q];
    if (at !== undefined && at.index >= index) return;
    const start = at !== undefined && at.term === term ? q : q + 1;
    let end = start;
    while (end < f.length && (f[end]?.index ?? Infinity) <= index) end++;
    f.splice(start, end - start, { term, index, node });
  }

  /** Position of the last frontier point with `term <= t`, or -1. */
  #frontierAt(t: number): number {
    const f = this.#frontier;
    let lo = 0;
    let hi = f.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((f[mid]?.term ?? Infinity) <= t) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  #checkCompleteness(node: CheckedNode, s: Track, n: number): void {
    const point = this.#frontier[this.#frontierAt(node.term)];
    if (point === undefined) return;
    const r = point.index;
    const committed = this.#committed.get(r);
    // Below a compaction boundary the entries were applied, so the apply checks cover them.
    if (committed === undefined || r < s.base || (s.detached && r === s.base)) return;
    const who = label(node.id, node.incarnation);
    const seen = `(seen committed by ${point.node} in term ${point.term})`;
    if (r > top(s)) {
      throw this.#violation(
        'leaderCompleteness',
        `${who}, leader of term ${node.term}, lacks committed index ${r} term ${committed.term} ${seen}; its log ends at ${top(s)}`,
        { nodes: [node.id, point.node], term: node.term, index: r },
        n,
      );
    }
    if (s.detached ? s.terms[r - s.base] !== committed.term : s.chains[r - s.base] !== committed.chain) {
      const first = this.#firstCommittedDifference(s, r) ?? r;
      const theirs = this.#committed.get(first) ?? committed;
      throw this.#violation(
        'leaderCompleteness',
        `${who}, leader of term ${node.term}, holds term ${String(s.terms[first - s.base])} at index ${first} ` +
          `where term ${theirs.term} was committed${theirs.term === s.terms[first - s.base] ? ' with different content' : ''} ${seen}`,
        { nodes: [node.id, point.node], term: node.term, index: first },
        n,
      );
    }
  }

  #settleApplies(n: number): void {
    const keep: PendingApply[] = [];
    for (const p of this.#pending) {
      if (p.skipTo === null ? !this.#settleApply(p, n) : !this.#settleSkip(p, n)) keep.push(p);
    }
    this.#pending = keep;
  }

  /** @returns whether `p` is settled; `false` keeps it pending (its node died, or holds commits beyond its log). */
  #settleApply(p: PendingApply, n: number): boolean {
    const who = label(p.node, p.incarnation);
    const committed = this.#committed.get(p.index);
    if (committed !== undefined) {
      this.#compareApplied(p.node, who, p.index, p.term, p.digest, committed, n);
      return true;
    }
    const s = this.#tracks.get(p.node);
    if (s !== undefined && s.seenAt === n && s.incarnation === p.incarnation && s.commitIndex < p.index) {
      throw this.#violation(
        'stateMachineSafety',
        `${who} applied index ${p.index} term ${p.term} but its commitIndex is ${s.commitIndex} and no node has it committed`,
        { nodes: [p.node], term: p.term, index: p.index },
        n,
      );
    }
    return false;
  }

  /** A skipped run settles when each index is known committed and not `normal`. */
  #settleSkip(p: PendingApply, n: number): boolean {
    const to = p.skipTo ?? p.index - 1;
    for (let i = p.index; i <= to; i++) {
      const committed = this.#committed.get(i);
      if (committed === undefined) return false;
      if (committed.type === 'normal') {
        const who = label(p.node, p.incarnation);
        throw this.#violation(
          'stateMachineSafety',
          `${who} applied index ${to + 1} after index ${p.index - 1}, skipping committed normal entry ${i} (term ${committed.term})`,
          { nodes: [p.node, committed.node], term: committed.term, index: i },
          n,
        );
      }
    }
    return true;
  }

  #compareApplied(
    node: string,
    who: string,
    index: number,
    term: number,
    digest: number,
    committed: Committed,
    n: number | 'defer',
  ): void {
    if (committed.term === term && committed.digest === digest) return;
    const what =
      `${who} applied index ${index} term ${term} but ${committed.node} committed term ${committed.term}` +
      (committed.term === term ? ' with different content' : '') +
      ' at that index';
    const details = { nodes: [node, committed.node], term, index };
    if (n === 'defer') this.#defer('stateMachineSafety', what, details);
    else throw this.#violation('stateMachineSafety', what, details, n);
  }

  /** Lowest index `<= upTo` where `s` and the committed record differ (for messages only: linear). */
  #firstCommittedDifference(s: Track, upTo: number): number | null {
    for (let i = Math.max(s.base + 1, 1); i <= upTo; i++) {
      const c = this.#committed.get(i);
      if (c !== undefined && (c.term !== s.terms[i - s.base] || c.digest !== s.digests[i - s.base])) return i;
    }
    return null;
  }

  /** Lowest index `<= upTo` where two tracked logs differ (for messages only: linear). */
  #firstDifference(a: Track, b: Track | undefined, upTo: number): number | null {
    if (b === undefined) return null;
    const from = Math.max(a.base, b.base) + 1;
    const to = Math.min(upTo, top(a), top(b));
    for (let i = from; i <= to; i++) {
      if (a.terms[i - a.base] !== b.terms[i - b.base] || a.digests[i - a.base] !== b.digests[i - b.base]) return i;
    }
    return null;
  }

  #defer(property: SafetyProperty, what: string, details: ViolationDetails): void {
    this.#deferred ??= new InvariantViolation(property, what, details, this.#checks + 1);
  }

  #violation(property: SafetyProperty, what: string, details: ViolationDetails, n: number): InvariantViolation {
    return new InvariantViolation(property, what, details, n);
  }
}
