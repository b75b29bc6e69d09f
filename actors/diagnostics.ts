/**
 * What a node tells about itself beyond its state: vote and heartbeat
 * observations for `events$`, and {@link explain}, which answers in words why
 * this node is not the leader, why its last vote was refused and why a
 * replica is where it is.
 *
 * @module
 */
import type { RaftMessage, ReplicaState, Role, ServerId, VoteRefusal } from '../machines/types.js';

/** Vote and heartbeat observations (part of the node's `events$`). */
export type DiagnosticEvent =
  /** This node was asked for its (pre-)vote. */
  | { readonly type: 'voteRequested'; readonly candidate: ServerId; readonly term: number; readonly preVote: boolean }
  /** This node granted its (pre-)vote. */
  | { readonly type: 'voteGranted'; readonly candidate: ServerId; readonly term: number; readonly preVote: boolean }
  /** This node refused its (pre-)vote, and why; `silently`: it sent no answer (leader stickiness ignores the request). */
  | {
      readonly type: 'voteRefused';
      readonly candidate: ServerId;
      readonly term: number;
      readonly preVote: boolean;
      readonly reason: VoteRefusal | 'unknown';
      readonly silently?: true;
    }
  /** Leader: a peer has not answered for longer than the minimum election timeout (`lastContactMs` `null`: never in this leadership). */
  | { readonly type: 'heartbeatFailed'; readonly peer: ServerId; readonly lastContactMs: number | null }
  /** Leader: a peer reported failed answered again, after `downMs`. */
  | { readonly type: 'heartbeatResumed'; readonly peer: ServerId; readonly downMs: number };

/** A vote answer remembered for {@link explain}. */
export interface VoteAnswer {
  /** Who answered. */
  readonly voter: ServerId;
  /** Who asked. */
  readonly candidate: ServerId;
  readonly term: number;
  readonly preVote: boolean;
  readonly granted: boolean;
  readonly reason: VoteRefusal | 'unknown' | null;
  /** Clock time of the answer. */
  readonly at: number;
}

const REASONS: Readonly<Record<VoteRefusal | 'unknown', string>> = {
  term: "the request's term was behind the voter's (§5.1)",
  voted: 'the voter had already voted for another candidate in that term (§5.2)',
  log: "the candidate's log is not as up-to-date as the voter's: a lower last term, or the same last term and a shorter log (§5.4.1)",
  leader: 'the voter heard from a live leader within the minimum election timeout, so it ignores disruptive candidates (leader stickiness, thesis §4.2.3)',
  learner: 'the candidate is not a voter in the voter\'s configuration (learners and removed servers never campaign)',
  unknown: 'the voter gave no reason',
};

/** The sentence for a vote refusal reason. */
export function refusalReason(reason: VoteRefusal | 'unknown'): string {
  return REASONS[reason];
}

/**
 * Watches a node's messages (in and out) for {@link DiagnosticEvent}s and
 * remembers the last vote answers for {@link explain}. Cheap: a type test
 * per message, a map update per heartbeat round. The node runs one; it is
 * exported for tests and tools that replay recorded traffic.
 *
 * @example
 * ```ts
 * const seen: DiagnosticEvent[] = []
 * const d = new Diagnostics('n1', (e) => seen.push(e))
 * d.inbound({ type: 'preVote', term: 5, from: 'n2', to: 'n1', lastLogIndex: 9, lastLogTerm: 4 }, clock.now())
 * // seen: [{ type: 'voteRequested', candidate: 'n2', term: 5, preVote: true }]
 * ```
 */
export class Diagnostics {
  readonly #id: ServerId;
  readonly #emit: (event: DiagnosticEvent) => void;
  /** Leader: peers reported failed, with when they were last heard (or when watching started). */
  readonly #failed = new Map<ServerId, number>();
  /** Leader: when this leadership started watching a peer that has not answered yet. */
  readonly #watchedSince = new Map<ServerId, number>();
  /** The last answer this node received to its own campaign. */
  lastAnswerReceived: VoteAnswer | null = null;
  /** The last refusal this node received to its own campaign. */
  lastRefusalReceived: VoteAnswer | null = null;
  /** The last answer this node gave. */
  lastAnswerGiven: VoteAnswer | null = null;

  /** @param emit - receives every observation; must not throw. */
  constructor(id: ServerId, emit: (event: DiagnosticEvent) => void) {
    this.#id = id;
    this.#emit = emit;
  }

  /** A message arrived (`now`: clock time). */
  inbound(m: RaftMessage, now: number): void {
    const down = this.#failed.get(m.from);
    if (down !== undefined) {
      this.#failed.delete(m.from);
      this.#emit({ type: 'heartbeatResumed', peer: m.from, downMs: now - down });
    }
    if (m.type === 'vote' || m.type === 'preVote') {
      this.#emit({ type: 'voteRequested', candidate: m.from, term: m.term, preVote: m.type === 'preVote' });
    } else if (m.type === 'voteResponse' || m.type === 'preVoteResponse') {
      const answer: VoteAnswer = {
        voter: m.from,
        candidate: this.#id,
        term: m.term,
        preVote: m.type === 'preVoteResponse',
        granted: m.granted,
        reason: m.granted ? null : (m.reason ?? 'unknown'),
        at: now,
      };
      this.lastAnswerReceived = answer;
      if (!m.granted) this.lastRefusalReceived = answer;
    }
  }

  /**
   * A (pre-)vote request got no answer: the node ignored it because it hears
   * from a live leader (leader stickiness). Reported as refused with reason
   * `'leader'`; the candidate learns nothing (it only times out).
   */
  ignoredVote(m: RaftMessage, now: number): void {
    if (m.type !== 'vote' && m.type !== 'preVote') return;
    const preVote = m.type === 'preVote';
    this.lastAnswerGiven = { voter: this.#id, candidate: m.from, term: m.term, preVote, granted: false, reason: 'leader', at: now };
    this.#emit({ type: 'voteRefused', candidate: m.from, term: m.term, preVote, reason: 'leader', silently: true });
  }

  /**
   * Messages leave. Vote answers become events; a leader's heartbeat round
   * checks each recipient's last contact against `failAfterMs`.
   */
  outbound(messages: readonly RaftMessage[], now: number, lastContact: ReadonlyMap<ServerId, number>, failAfterMs: number): void {
    for (const m of messages) {
      if (m.type === 'voteResponse' || m.type === 'preVoteResponse') {
        const preVote = m.type === 'preVoteResponse';
        const reason = m.granted ? null : (m.reason ?? 'unknown');
        this.lastAnswerGiven = { voter: this.#id, candidate: m.to, term: m.term, preVote, granted: m.granted, reason, at: now };
        if (reason === null) this.#emit({ type: 'voteGranted', candidate: m.to, term: m.term, preVote });
        else this.#emit({ type: 'voteRefused', candidate: m.to, term: m.term, preVote, reason });
      } else if (m.type === 'heartbeat' && !this.#failed.has(m.to)) {
        const heard = lastContact.get(m.to);
        const since = this.#watchedSince.get(m.to) ?? (this.#watchedSince.set(m.to, now), now);
        const reference = heard !== undefined && heard > since ? heard : since;
        if (now - reference > failAfterMs) {
          this.#failed.set(m.to, reference);
          this.#emit({ type: 'heartbeatFailed', peer: m.to, lastContactMs: heard === undefined ? null : now - heard });
        }
      }
    }
  }

  /** Leadership ended (or began): forget the heartbeat bookkeeping. */
  resetLeadership(): void {
    this.#failed.clear();
    this.#watchedSince.clear();
  }

  /** Whether a leader has reported `peer` failed and not heard from it since. */
  isDown(peer: ServerId): boolean {
    return this.#failed.has(peer);
  }

  /** Peers a leader has reported failed and not yet heard from again. */
  failedPeers(): ServerId[] {
    return [...this.#failed.keys()];
  }
}

/** What {@link explain} reads: the node's state, a few options, and what {@link Diagnostics} remembered. */
export interface ExplainFacts {
  readonly id: ServerId;
  readonly role: Role;
  readonly term: number;
  readonly leaderId: ServerId | null;
  readonly votedFor: ServerId | null;
  readonly voters: readonly ServerId[];
  readonly learners: readonly ServerId[];
  readonly oldVoters: readonly ServerId[] | null;
  /** Whether any configuration is known (bootstrapped or replicated). */
  readonly configured: boolean;
  readonly commitIndex: number;
  readonly lastLogIndex: number;
  /** (Pre-)votes received in the current campaign. */
  readonly votes: Readonly<Record<ServerId, boolean>>;
  readonly electionTimeoutMs: readonly [number, number];
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Milliseconds since each peer was last heard from. */
  readonly lastContactMs: Readonly<Record<ServerId, number | null>>;
  /** Leader: per replica. */
  readonly replicas: Readonly<Record<ServerId, { readonly match: number; readonly next: number; readonly state: ReplicaState; readonly inflight: number; readonly paused: boolean }>>;
  readonly maxInflight: number;
  readonly lastRefusalReceived: VoteAnswer | null;
  readonly lastAnswerGiven: VoteAnswer | null;
  /** Leader: peers reported failed by the heartbeat check. */
  readonly failedPeers: readonly ServerId[];
  /** Leader: a leadership transfer target, if one is under way. */
  readonly transferTarget: ServerId | null;
  /** Current clock time (to age the remembered answers). */
  readonly now: number;
}

/** The answers of {@link explain}: each a sentence or a few. */
export interface Explanation {
  /** Why this node is (or is not) the leader. */
  readonly leadership: string;
  /** The last refusal this node's campaign received and why; `null` if none was received. */
  readonly lastVoteRefused: string | null;
  /** The last vote answer this node gave and why; `null` if it gave none. */
  readonly lastVoteGiven: string | null;
  /** Leader: why each replica is in its state. Empty elsewhere. */
  readonly replicas: Readonly<Record<ServerId, string>>;
  /** Every sentence above, in order, one per line. */
  readonly text: string;
}

const ms = (x: number): string => `${Math.round(x)} ms`;
const list = (ids: readonly string[]): string => (ids.length === 0 ? 'none' : ids.join(', '));
const majorityOf = (n: number): number => Math.floor(n / 2) + 1;

function campaign(f: ExplainFacts, kind: 'pre-votes' | 'votes', term: number): string {
  const granted = Object.entries(f.votes).filter(([, g]) => g).map(([id]) => id);
  const refused = Object.entries(f.votes).filter(([, g]) => !g).map(([id]) => id);
  const countIn = (voters: readonly string[]): number => granted.filter((id) => voters.includes(id)).length;
  let need = `${majorityOf(f.voters.length)} of the ${f.voters.length} voters (${list(f.voters)}); has ${countIn(f.voters)}`;
  if (f.oldVoters !== null) {
    need += `, and ${majorityOf(f.oldVoters.length)} of the old configuration's ${f.oldVoters.length} (${list(f.oldVoters)}); has ${countIn(f.oldVoters)}`;
  }
  const all = [...new Set([...f.voters, ...(f.oldVoters ?? [])])].filter((id) => id !== f.id && f.votes[id] === undefined);
  const silent = all.length === 0 ? '' : ` No answer from ${list(all)}: down, partitioned, or ignoring the request because it hears from a live leader (leader stickiness).`;
  return `${f.id} is campaigning for term ${term}: ${kind} granted by ${list(granted)}, refused by ${list(refused)}. It needs ${need}.${silent}`;
}

function leadership(f: ExplainFacts): string {
  const [lo, hi] = f.electionTimeoutMs;
  if (f.role === 'leader') {
    const transfer = f.transferTarget === null ? '' : ` It is handing leadership to ${f.transferTarget}.`;
    return `${f.id} is the leader of term ${f.term}.${transfer}`;
  }
  if (!f.configured) return `${f.id} has no configuration: bootstrap() a new cluster on it, or add it to a running cluster (addVoter / addLearner) from the leader.`;
  if (!f.voters.includes(f.id) && !(f.oldVoters ?? []).includes(f.id)) {
    const as = f.learners.includes(f.id) ? 'a learner' : 'not a member of the configuration it knows';
    return `${f.id} is ${as}, so it never campaigns: only voters can lead.`;
  }
  if (f.role === 'preCandidate') return campaign(f, 'pre-votes', f.term + 1);
  if (f.role === 'candidate') return campaign(f, 'votes', f.term);
  if (f.leaderId !== null) {
    const heard = f.lastContactMs[f.leaderId];
    const contact = heard === null || heard === undefined ? 'has not heard from it yet' : `last heard from it ${ms(heard)} ago`;
    return `${f.leaderId} leads term ${f.term}; ${f.id} follows it and ${contact}. A follower campaigns only after ${lo}–${hi} ms (its election timeout) without hearing from a leader.`;
  }
  const vote = f.votedFor === null ? '' : ` In term ${f.term} it voted for ${f.votedFor}.`;
  const pre = f.preVote ? ' It will first ask for pre-votes, so it cannot raise the term unless it could win.' : '';
  return `${f.id} knows no leader in term ${f.term}; it campaigns when its election timer (${lo}–${hi} ms) fires.${vote}${pre}`;
}

function answer(a: VoteAnswer, now: number, received: boolean): string {
  const kind = a.preVote ? 'pre-vote' : 'vote';
  const ago = `${ms(now - a.at)} ago`;
  if (a.granted) return `${a.voter} granted ${received ? 'this node' : a.candidate} its ${kind} for term ${a.term} (${ago}).`;
  const who = received ? `${a.voter} refused this node's ${kind} for term ${a.term}` : `${a.voter} refused ${a.candidate}'s ${kind} for term ${a.term}`;
  return `${who} (${ago}): ${refusalReason(a.reason ?? 'unknown')}.`;
}

function replica(f: ExplainFacts, peer: ServerId): string {
  const r = f.replicas[peer];
  if (r === undefined) return '';
  const heard = f.lastContactMs[peer];
  const contact = heard === null || heard === undefined ? 'has not answered this leader yet' : `last answered ${ms(heard)} ago`;
  const failed = f.failedPeers.includes(peer) ? ` It missed heartbeats for longer than the minimum election timeout (${f.electionTimeoutMs[0]} ms): down, partitioned or overloaded.` : '';
  switch (r.state) {
    case 'probe': {
      const why = r.match === 0 && heard === undefined
        ? 'every replica starts in probe when a leader is elected, until a follower confirms where its log matches'
        : 'the leader does not yet know where the follower\'s log matches its own (a new leadership, a rejected append, or a follower that was unreachable)';
      const wait = r.paused ? ' One probe is out; the next waits for its answer or the next heartbeat.' : '';
      return `${peer} is in probe: ${why}. It sends one append at a time from index ${r.next} (match ${r.match}); ${peer} ${contact}.${wait}${failed}`;
    }
    case 'replicate': {
      const full = r.inflight >= f.maxInflight ? ` The window of ${f.maxInflight} appends in flight is full: sending waits for acknowledgements.` : '';
      return `${peer} is in replicate: its log matches up to ${r.match} and appends stream from ${r.next} (${r.inflight} in flight); ${peer} ${contact}.${full}${failed}`;
    }
    case 'snapshot':
      return `${peer} is in snapshot: it needs entries this leader has compacted away, so it receives a snapshot before appends resume; ${peer} ${contact}.${failed}`;
  }
}

/**
 * Answers in words, from the node's current state and what it remembered: why
 * it is or is not the leader, why its last (pre-)vote was refused, what it
 * last answered to a candidate, and — on a leader — why each replica is in
 * probe, replicate or snapshot.
 *
 * @remarks {@link RaftNode.explain} gathers the facts from the running node
 * and calls it; call it directly only with facts of your own (a recorded
 * status, a simulation).
 *
 * @example
 * ```ts
 * const { text } = node.explain() // explain() over the node's current facts
 * console.log(text)
 * ```
 */
export function explain(f: ExplainFacts): Explanation {
  const replicas: Record<ServerId, string> = {};
  for (const peer of Object.keys(f.replicas).sort()) replicas[peer] = replica(f, peer);
  const lastVoteRefused = f.lastRefusalReceived === null ? null : answer(f.lastRefusalReceived, f.now, true);
  const lastVoteGiven = f.lastAnswerGiven === null ? null : answer(f.lastAnswerGiven, f.now, false);
  const lead = leadership(f);
  const text = [lead, lastVoteRefused, lastVoteGiven, ...Object.values(replicas)].filter((s): s is string => s !== null).join('\n');
  return { leadership: lead, lastVoteRefused, lastVoteGiven, replicas, text };
}
