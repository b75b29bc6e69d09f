/**
 * The invariant checker (Raft paper, Figure 3): every property has a scenario
 * that breaks it and must throw, and legal histories that must not.
 */
import tap from 'tap';
import type { EntryType, LogEntry, Role } from '../../machines/types.js';
import {
  InvariantChecker,
  InvariantViolation,
  entryDigest,
  type CheckedLog,
  type CheckedNode,
  type SafetyProperty,
} from './harness/invariants.js';

const encoder = new TextEncoder();

function entry(index: number, term: number, data = `e${index}t${term}`, type: EntryType = 'normal'): LogEntry {
  return { index, term, type, data: encoder.encode(data) };
}

/** An array-backed log; index `first - 1` is the compaction boundary. */
class ArrayLog implements CheckedLog {
  first = 1;
  boundaryTerm: number | undefined = 0;
  entries: LogEntry[] = [];
  firstIndex(): number {
    return this.first;
  }
  lastIndex(): number {
    return this.first + this.entries.length - 1;
  }
  term(index: number): number | undefined {
    if (index === this.first - 1) return index === 0 ? 0 : this.boundaryTerm;
    return this.entries[index - this.first]?.term;
  }
  entry(index: number): LogEntry | undefined {
    return this.entries[index - this.first];
  }
}

/** A fake node whose every mutation reports to the checker the way the simulator will. */
class FakeNode implements CheckedNode {
  incarnation = 1;
  role: Role = 'follower';
  term = 0;
  commitIndex = 0;
  live = true;
  applied = 0;
  readonly log = new ArrayLog();
  constructor(
    readonly id: string,
    private readonly checker: InvariantChecker,
  ) {}

  /** Appends entries of `term` after the last one; a storage-style no-op truncate first. */
  append(term: number, count = 1, tag = ''): this {
    for (let k = 0; k < count; k++) {
      const index = this.log.lastIndex() + 1;
      this.checker.noteTruncate(this.id, this.incarnation, index); // deletes nothing
      this.log.entries.push(entry(index, term, `e${index}t${term}${tag}`));
    }
    return this;
  }

  truncate(from: number): this {
    this.log.entries.length = Math.max(0, from - this.log.first);
    this.checker.noteTruncate(this.id, this.incarnation, from);
    return this;
  }

  /** AppendEntries from `leader`: overwrite from the first conflict, copy up to `upTo`. */
  copyFrom(leader: FakeNode, upTo = leader.log.lastIndex()): this {
    let i = Math.max(this.log.first, leader.log.first);
    while (i <= Math.min(this.log.lastIndex(), upTo) && this.log.term(i) === leader.log.term(i)) i++;
    if (i <= this.log.lastIndex()) this.truncate(i);
    for (; i <= upTo; i++) {
      const e = leader.log.entry(i);
      if (e === undefined) throw new Error(`leader has no ${i}`);
      this.log.entries.push(e);
    }
    this.term = Math.max(this.term, leader.term);
    return this;
  }

  commit(index: number): this {
    this.commitIndex = index;
    return this;
  }

  applyTo(index: number): this {
    for (let i = this.applied + 1; i <= index; i++) {
      const e = this.log.entry(i);
      if (e === undefined) throw new Error(`${this.id} has no ${i} to apply`);
      this.checker.noteApply(this.id, this.incarnation, e);
      this.applied = i;
    }
    return this;
  }

  lead(term: number): this {
    this.role = 'leader';
    this.term = term;
    return this;
  }

  follow(term = this.term): this {
    this.role = 'follower';
    this.term = term;
    return this;
  }

  /** Crash and restart over the same storage, keeping `keep` entries (the synced ones). */
  restart(keep = this.log.lastIndex()): this {
    this.incarnation++;
    this.role = 'follower';
    this.commitIndex = 0;
    this.applied = 0;
    this.log.entries.length = Math.max(0, keep - this.log.first + 1);
    return this;
  }

  /** Replace the log by a snapshot at `index`/`term` (compaction of everything, or an installed snapshot). */
  snapshot(index: number, term: number | undefined, keepAfter = false): this {
    const rest = keepAfter ? this.log.entries.filter((e) => e.index > index) : [];
    this.log.first = index + 1;
    this.log.boundaryTerm = term;
    this.log.entries = rest;
    return this;
  }
}

class Cluster {
  readonly checker = new InvariantChecker();
  readonly nodes: FakeNode[];
  constructor(...ids: string[]) {
    this.nodes = ids.map((id) => new FakeNode(id, this.checker));
  }
  get(id: string): FakeNode {
    const node = this.nodes.find((x) => x.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }
  check(): void {
    this.checker.check(this.nodes.filter((x) => x.live));
  }
}

/** Asserts that `fn` throws an {@link InvariantViolation} of `property` whose message mentions each of `mentions`. */
function violation(t: Pick<typeof tap, 'equal' | 'match' | 'fail'>, property: SafetyProperty, fn: () => void, mentions: readonly (string | RegExp)[]): void {
  let caught: unknown = null;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  if (!(caught instanceof InvariantViolation)) {
    t.fail(`expected an InvariantViolation(${property}), got ${String(caught)}`);
    return;
  }
  t.equal(caught.property, property, caught.message);
  t.match(caught.message, new RegExp(`^${property} \\(§`));
  for (const m of mentions) t.match(caught.message, m);
}

/** n1 leads term 1 with entries 1..3 on all three nodes, all committed and applied. */
function committedPrefix(): Cluster {
  const c = new Cluster('n1', 'n2', 'n3');
  const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
  n1.lead(1).append(1, 3);
  c.check();
  n2.copyFrom(n1);
  n3.copyFrom(n1);
  n1.commit(3).applyTo(3);
  c.check();
  n2.commit(3).applyTo(3);
  n3.commit(3).applyTo(3);
  c.check();
  return c;
}

tap.test('entryDigest', async (t) => {
  const a = entryDigest(entry(1, 1, 'x'));
  t.ok(Number.isSafeInteger(a) && a >= 0, 'a non-negative safe integer');
  t.equal(entryDigest(entry(9, 1, 'x')), a, 'independent of the index');
  t.not(entryDigest(entry(1, 2, 'x')), a, 'depends on the term');
  t.not(entryDigest(entry(1, 1, 'y')), a, 'depends on the data');
  t.not(entryDigest(entry(1, 1, 'x', 'noop')), a, 'depends on the type');
  t.not(entryDigest(entry(1, 1, 'x\0')), a, 'depends on the length');
  const seen = new Set<number>();
  for (let i = 0; i < 20000; i++) seen.add(entryDigest(entry(1, 1 + (i % 7), `k${i}`)));
  t.equal(seen.size, 20000, 'no collisions over 20k payloads');
});

tap.test('legal histories do not throw', async (t) => {
  t.test('one leader seen across many checks; followers lag; stats', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
    n1.lead(1);
    for (let step = 1; step <= 300; step++) {
      n1.append(1);
      n2.copyFrom(n1, Math.max(0, step - 1));
      n3.copyFrom(n1, Math.max(0, step - 5));
      n1.commit(Math.max(0, step - 1)).applyTo(n1.commitIndex);
      n2.commit(Math.max(0, step - 2)).applyTo(n2.commitIndex);
      n3.commit(Math.max(0, step - 6)).applyTo(n3.commitIndex);
      c.check();
    }
    const stats = c.checker.stats();
    t.equal(stats.checks, 300);
    t.equal(stats.leaders, 1);
    t.equal(stats.maxTerm, 1);
    t.equal(stats.maxCommitIndex, 299);
    t.equal(stats.entries, 300);
    t.equal(stats.hashed, 300 + 299 + 295, 'each entry hashed once per log: cost follows change, not steps');
    t.equal(stats.pendingApplies, 0);
    const committed = c.checker.committed();
    t.equal(committed.size, 299);
    t.same(committed.get(7), { ...committed.get(7), term: 1, digest: entryDigest(entry(7, 1)) });
  });

  t.test("a follower's uncommitted suffix is overwritten by a new leader", async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
    n1.lead(1).append(1, 3);
    n2.copyFrom(n1);
    n3.copyFrom(n1, 1);
    n1.commit(1);
    c.check();
    n1.follow(2);
    n3.lead(2).append(2, 2); // n3: 1(t1) 2(t2) 3(t2)
    c.check();
    n2.copyFrom(n3); // truncates n2's 2..3 of term 1
    n3.commit(3).applyTo(3);
    c.check();
    n1.copyFrom(n3).commit(3).applyTo(3);
    n2.commit(3).applyTo(3);
    c.check();
    t.equal(c.checker.committed().get(2)?.term, 2);
    t.equal(c.checker.stats().leaders, 2);
  });

  t.test('restart: new incarnation re-applies from 1 and may lose its unsynced tail', async (t) => {
    const c = committedPrefix();
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.append(1, 2); // 4, 5 not yet on n2
    c.check();
    n1.live = false;
    c.check();
    n1.restart(3).live = true; // entries 4, 5 were never synced
    c.check();
    n1.commit(3).applyTo(3);
    c.check();
    n2.lead(2).append(2);
    n1.copyFrom(n2).follow(2);
    n2.commit(4).applyTo(4);
    n1.commit(4).applyTo(4);
    c.check();
    t.equal(c.checker.stats().applies, 3 * 3 + 3 + 2);
  });

  t.test('the same node may lead the same term again after a restart, and later terms', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const n1 = c.get('n1');
    n1.lead(1).append(1);
    c.check();
    n1.restart();
    c.check();
    n1.lead(1); // same id, same term: not two leaders
    c.check();
    n1.lead(2).append(2);
    c.check();
    t.equal(c.checker.stats().leaders, 2);
  });

  t.test('truncation in the step that makes a leader, or that deposes one', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
    n1.lead(1).append(1, 3);
    n2.copyFrom(n1, 1);
    n3.copyFrom(n1, 1);
    n1.commit(1);
    c.check();
    // n1 is deposed and overwritten in one step
    n2.lead(2).append(2, 2);
    n1.copyFrom(n2).follow(2);
    c.check();
    // n3 wins term 3 without n2's entries; in one step n1 is overwritten by n3 and then wins term 4
    n2.follow(3);
    n3.lead(3).append(3);
    c.check();
    n3.follow(4);
    n1.copyFrom(n3).lead(4).append(4);
    c.check();
    t.equal(n1.log.term(2), 3);
    t.equal(c.checker.stats().leaders, 4);
  });

  t.test('a stale leader of an older term may lack entries committed in a newer one', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3', 'n4', 'n5');
    const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
    n1.lead(1).append(1);
    for (const x of c.nodes) x.copyFrom(n1);
    c.check();
    // n2 campaigns in term 2; its vote grants are delayed in the network while n3 wins term 3
    n2.term = 2;
    n3.lead(3).append(3, 2);
    for (const x of [c.get('n4'), c.get('n5')]) x.copyFrom(n3).follow(3);
    n3.commit(3);
    c.get('n4').commit(3);
    c.check();
    n2.lead(2); // the delayed grants arrive: leader of term 2 without entries 2..3
    c.check();
    n2.append(2);
    c.check();
    t.pass('no violation');
  });

  t.test('compaction: logs with firstIndex > 1, snapshots installed, leaders that compact', async (t) => {
    t.test('checker starts on already-compacted logs', async (t) => {
      const c = new Cluster('n1', 'n2', 'n3');
      const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
      n1.lead(2).append(1, 4).append(2, 4); // 1..4 term 1, 5..8 term 2
      n2.copyFrom(n1);
      n3.copyFrom(n1, 6);
      n1.snapshot(6, 2, true); // first = 7
      n2.snapshot(3, 1, true); // first = 4
      n3.snapshot(5, 2, true); // first = 6
      n1.commit(8);
      n2.commit(7);
      n3.commit(6);
      c.check();
      n1.append(2, 3);
      n2.copyFrom(n1);
      n3.copyFrom(n1);
      for (const x of c.nodes) x.commit(11);
      c.check();
      t.equal(c.checker.committed().get(11)?.term, 2);
      t.notOk(c.checker.committed().has(3), 'nothing recorded below what any log held');
    });

    t.test('a log whose boundary the checker cannot place is checked on its own', async (t) => {
      const c = new Cluster('n1', 'n2', 'n3');
      const [n1, n2] = [c.get('n1'), c.get('n2')];
      n2.live = false;
      n1.lead(1).append(1, 6).commit(2);
      c.check();
      n2.copyFrom(n1).snapshot(4, undefined, true).live = true; // first = 5, term(4) unknown, 4 not seen committed
      c.check();
      n1.follow(2).commit(6);
      n2.lead(2).append(2);
      c.check();
      t.equal(c.checker.committed().get(6)?.term, 1);
    });

    t.test('such a log still gets a term check when it leads', async (t) => {
      const c = new Cluster('n1', 'n2', 'n3');
      const [n1, n2] = [c.get('n1'), c.get('n2')];
      n2.live = false;
      n1.lead(1).append(1, 6).commit(2);
      c.check();
      n2.snapshot(4, undefined).append(2, 2).live = true; // 5..6 of term 2, unlike n1's
      c.check();
      n1.follow(2).commit(6);
      n2.lead(2);
      violation(t, 'leaderCompleteness', () => c.check(), [/n2#1, leader of term 2, holds term 2 at index 5 where term 1/]);
    });

    t.test("a snapshot replaces a follower's uncommitted tail (boundary term changes)", async (t) => {
      const c = new Cluster('n1', 'n2', 'n3');
      const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
      n1.lead(1).append(1, 4);
      n3.copyFrom(n1);
      n1.commit(2);
      c.check();
      n1.follow(2);
      n2.copyFrom(n1, 2).lead(2).append(2, 3); // 3..5 of term 2
      n2.commit(5);
      c.check();
      n3.truncate(5).snapshot(4, 2).follow(2); // boundary 4 is now term 2, not term 1
      n3.commitIndex = 4;
      c.check();
      n3.copyFrom(n2).commit(5);
      c.check();
      t.equal(c.checker.committed().get(4)?.term, 2);
    });

    t.test('a follower gets a snapshot; the leader compacts while leading', async (t) => {
      const c = committedPrefix();
      const [n1, n2, n3] = [c.get('n1'), c.get('n2'), c.get('n3')];
      n3.live = false;
      n1.append(1, 5);
      n2.copyFrom(n1);
      n1.commit(8).applyTo(8);
      n2.commit(8).applyTo(8);
      c.check();
      n1.snapshot(6, 1, true); // leader compacts 1..6: not a truncation
      c.check();
      n3.live = true;
      n3.restart();
      n3.snapshot(6, 1); // installed: log is now just the boundary
      c.checker.noteRestore('n3', n3.incarnation, 6);
      n3.applied = 6;
      n3.commitIndex = 6;
      c.check();
      n3.copyFrom(n1).commit(8).applyTo(8);
      c.check();
      t.equal(c.checker.stats().pendingApplies, 0);
    });
  });

  t.test('applies skip noop and config entries', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const n1 = c.get('n1');
    n1.lead(1);
    n1.log.entries.push(entry(1, 1, 'members', 'config'), entry(2, 1, '', 'noop'), entry(3, 1), entry(4, 1, '', 'noop'), entry(5, 1));
    c.check();
    n1.commit(5);
    c.checker.noteApply('n1', 1, entry(3, 1)); // before the commit is observed: settled at the check
    c.check();
    c.checker.noteApply('n1', 1, entry(5, 1)); // after: the skip of 4 settles at the next check
    c.check();
    t.equal(c.checker.stats().pendingApplies, 0);
  });

  t.test('an applied entry not yet committed at apply time is settled at the next check', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const n1 = c.get('n1');
    n1.lead(1).append(1, 2);
    c.check();
    n1.commit(2).applyTo(2); // applies happen before the check that records the commit
    t.equal(c.checker.stats().pendingApplies, 2);
    c.check();
    t.equal(c.checker.stats().pendingApplies, 0);
  });

  t.test('an apply whose node dies before the check waits for someone to commit it', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.lead(1).append(1, 2);
    n2.copyFrom(n1);
    c.check();
    n1.commit(2).applyTo(2);
    n1.live = false;
    c.check();
    t.equal(c.checker.stats().pendingApplies, 2);
    n2.lead(2).append(2).commit(3);
    c.check();
    t.equal(c.checker.stats().pendingApplies, 0);
  });
});

tap.test('election safety (§5.2)', async (t) => {
  t.test('two leaders of one term in one check', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    c.get('n1').lead(2);
    c.get('n2').lead(2);
    violation(t, 'electionSafety', () => c.check(), [/n2#1/, /n1/, /term 2/]);
  });
  t.test('a second leader of a term, long after the first stepped down', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    c.get('n1').lead(2);
    c.check();
    c.get('n1').follow(3);
    c.check();
    c.get('n1').live = false;
    c.check();
    c.get('n2').lead(2);
    violation(t, 'electionSafety', () => c.check(), [/n2/, /n1 already led/, /term 2/]);
  });
});

tap.test('leader append-only (§5.3)', async (t) => {
  t.test('a leader truncates its log and stays leader', async (t) => {
    const c = committedPrefix();
    const n1 = c.get('n1');
    n1.append(1, 3);
    c.check();
    n1.truncate(5).append(1, 1, 'rewritten'); // same length, same term, new content
    violation(t, 'leaderAppendOnly', () => c.check(), [/n1#1/, /term 1/, /index 5/]);
  });
  t.test("a leader's last index decreases (no truncation reported)", async (t) => {
    const c = committedPrefix();
    const n1 = c.get('n1');
    n1.append(1, 3);
    c.check();
    n1.log.entries.length = 4;
    violation(t, 'leaderAppendOnly', () => c.check(), [/n1#1/, /index 5/, /last index was 6, now 4/]);
  });
  t.test("a leader's entry changes term in place (found by walking back)", async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const n1 = c.get('n1');
    n1.lead(3).append(2, 2);
    c.check();
    n1.log.entries[1] = entry(2, 3);
    violation(t, 'leaderAppendOnly', () => c.check(), [/n1#1/, /term 3/, /index 2/]);
  });
});

tap.test('log matching (§5.3)', async (t) => {
  t.test('same index and term, different prefix', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.append(1).append(2, 2);
    n2.append(2, 3);
    violation(t, 'logMatching', () => c.check(), [/n2#1 and n1/, /index 2 term 2/, /first at index 1/]);
  });
  t.test('same index and term, different content, seen in different checks', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.append(1, 2);
    c.check();
    n1.live = false;
    c.check();
    n2.append(1, 1).append(1, 1, 'other');
    violation(t, 'logMatching', () => c.check(), [/n2#1 and n1/, /index 2 term 1/]);
  });
  t.test('terms decrease along a log', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    c.get('n1').append(2).append(1);
    violation(t, 'logMatching', () => c.check(), [/n1#1/, /term 1 at index 2 after term 2/]);
  });
});

tap.test('leader completeness (§5.4)', async (t) => {
  t.test('a leader of a later term lacks a committed entry', async (t) => {
    const c = committedPrefix();
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.follow(2);
    c.check();
    n2.truncate(3).lead(2); // only 1..2 now
    violation(t, 'leaderCompleteness', () => c.check(), [/n2#1, leader of term 2/, /committed index 3 term 1/, /ends at 2/]);
  });
  t.test('a leader of a later term holds a different entry at a committed index', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.lead(1).append(1, 3).commit(3);
    n2.append(1, 1);
    c.check();
    n1.follow(2);
    c.check();
    n2.lead(2).append(2, 2); // 1(t1) 2(t2) 3(t2): committed 2..3 were term 1
    violation(t, 'leaderCompleteness', () => c.check(), [/n2#1, leader of term 2/, /holds term 2 at index 2 where term 1 was committed/]);
  });
  t.test('a sitting leader turns out to lack an entry committed in an earlier term', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.lead(1).append(1, 2);
    c.check();
    n1.live = false; // its commit of 1..2 in term 1 is not observed yet
    n2.lead(2);
    c.check();
    n1.live = true;
    n1.follow(2).commit(2); // now n1 shows 1..2 committed, seen in term 2
    violation(t, 'leaderCompleteness', () => c.check(), [/n2#1, leader of term 2/, /index 2/]);
  });
});

tap.test('state machine safety (§5.4.3)', async (t) => {
  t.test('two nodes commit different entries at one index', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    c.get('n1').append(1, 2).commit(2);
    c.get('n2').append(1).append(2).commit(2);
    violation(t, 'stateMachineSafety', () => c.check(), [/n2#1/, /index 2 term 2 committed/, /n1 committed term 1/]);
  });
  t.test('a committed entry is overwritten on a follower that still counts it committed', async (t) => {
    const c = committedPrefix();
    c.get('n3').truncate(3).append(2);
    violation(t, 'stateMachineSafety', () => c.check(), [/n3#1 \(commitIndex 3\)/, /index 3 term 2 committed/, /n1 committed term 1/]);
  });
  t.test('a committed entry is rewritten with its own term (only the truncation reveals it)', async (t) => {
    const c = committedPrefix();
    c.get('n3').truncate(3).append(1, 1, 'evil');
    violation(t, 'logMatching', () => c.check(), [/n3#1 and n1/, /index 3 term 1/, /first at index 3/]);
  });
  t.test('two nodes apply different entries at one index', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.append(1).applyTo(1);
    n2.append(2).applyTo(1);
    t.doesNotThrow(() => c.checker.noteApply('n3', 1, entry(9, 9)), 'note* never throw');
    violation(t, 'stateMachineSafety', () => c.check(), [/n2#1 applied index 1 term 2/, /n1 applied term 1/]);
  });
  t.test('applies skip an index', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const n1 = c.get('n1').append(1, 3).commit(3);
    c.check();
    c.checker.noteApply('n1', 1, entry(1, 1));
    c.checker.noteApply('n1', 1, entry(3, 1));
    void n1;
    violation(t, 'stateMachineSafety', () => c.check(), [/n1#1 applied index 3/, /after index 1/]);
  });
  t.test('applies go backwards', async (t) => {
    const c = committedPrefix();
    c.checker.noteApply('n1', 1, entry(2, 1));
    violation(t, 'stateMachineSafety', () => c.check(), [/n1#1 applied index 2 \(term 1\) after index 3/]);
  });
  t.test('a skip over a normal entry is found once the entry is committed', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const [n1, n2] = [c.get('n1'), c.get('n2')];
    n1.lead(1).append(1, 3);
    n2.copyFrom(n1);
    c.check();
    c.checker.noteApply('n1', 1, entry(2, 1)); // skips 1
    n1.commit(2).live = false; // and dies before anyone sees the commit
    c.check();
    t.equal(c.checker.stats().pendingApplies, 2, 'the skip and the apply wait');
    n2.lead(2).commit(2);
    violation(t, 'stateMachineSafety', () => c.check(), [/n1#1 applied index 2 after index 0/, /skipping committed normal entry 1 \(term 1\)/]);
  });
  t.test('a restarted incarnation must start again from 1', async (t) => {
    const c = committedPrefix();
    c.get('n1').restart();
    c.checker.noteApply('n1', 2, entry(2, 1));
    violation(t, 'stateMachineSafety', () => c.check(), [/n1#2 applied index 2/, /after index 0/]);
  });
  t.test('an entry is applied that its node has not committed', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    const n1 = c.get('n1').lead(1).append(1, 3).commit(1);
    c.check();
    n1.applyTo(2);
    violation(t, 'stateMachineSafety', () => c.check(), [/n1#1 applied index 2 term 1/, /commitIndex is 1/]);
  });
  t.test('an applied entry differs from the committed one', async (t) => {
    const c = committedPrefix();
    c.get('n1').restart();
    c.checker.noteApply('n1', 2, entry(1, 1));
    c.checker.noteApply('n1', 2, { ...entry(2, 1), data: encoder.encode('tampered') });
    violation(t, 'stateMachineSafety', () => c.check(), [/n1#2 applied index 2 term 1/, /different content/]);
  });
  t.test('a restore goes back behind what was applied', async (t) => {
    const c = committedPrefix();
    c.checker.noteRestore('n2', 1, 2);
    violation(t, 'stateMachineSafety', () => c.check(), [/n2#1 restored a snapshot at index 2 after applying up to 3/]);
  });
});

tap.test('the checker after a violation, and contract errors', async (t) => {
  t.test('a violation is sticky', async (t) => {
    const c = new Cluster('n1', 'n2', 'n3');
    c.get('n1').lead(1);
    c.get('n2').lead(1);
    let first: unknown = null;
    try {
      c.check();
    } catch (error) {
      first = error;
    }
    t.ok(first instanceof InvariantViolation);
    c.get('n2').follow(1);
    t.throws(() => c.check(), first as Error, 'the same violation again');
    if (first instanceof InvariantViolation) {
      t.equal(first.code, 'INVARIANT');
      t.same(first.nodes, ['n2', 'n1']);
      t.equal(first.term, 1);
      t.equal(first.index, null);
      t.equal(first.check, 1);
    }
  });
  t.test('a node passed twice', async (t) => {
    const c = new Cluster('n1');
    const n1 = c.get('n1');
    t.throws(() => c.checker.check([n1, n1]), { message: /n1 passed twice/ });
  });
  t.test('a log with a hole', async (t) => {
    const c = new Cluster('n1');
    const log = c.get('n1').log;
    log.entries.push(entry(1, 1), entry(3, 1));
    t.throws(() => c.check(), { message: /index 2 answers/ });
  });
});
