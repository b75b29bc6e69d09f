/**
 * Runs raftchart nodes as real child processes (see node-process.ts) and
 * drives them like a client would: proposals go to the believed leader,
 * follow NotLeaderError hints, and every acknowledgement is recorded.
 * Every wait has a deadline; nothing sleeps.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FixtureConfig, FromChild, ToChild } from './node-process.js';

/** Run from sources (under tap's TypeScript loader) or compiled (`npm run bench`): the child runs the same way. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const FIXTURE = fileURLToPath(new URL(FROM_SOURCE ? './node-process.ts' : './node-process.js', import.meta.url));
const LOADER = FROM_SOURCE ? process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node')) : [];

/** Ports the OS reports free on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Rejects after `ms` with a message naming what was awaited. */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Dump of a node's applied values. */
export interface Dump {
  readonly applied: readonly string[];
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

/** One node process. */
export class NodeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  leaderId: string | null = null;
  term = 0;
  stderr = '';
  readonly up: Promise<void>;
  #pending = new Map<number, (m: FromChild) => void>();
  #dumps: ((d: Dump) => void)[] = [];
  #alive = true;

  constructor(readonly config: FixtureConfig) {
    this.child = fork(FIXTURE, [], {
      execArgv: LOADER,
      env: { ...process.env, RAFT_NODE: JSON.stringify(config) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      this.#alive = false;
      for (const done of this.#pending.values()) done({ t: 'nack', req: -1, code: 'EXITED', leaderId: null });
      this.#pending.clear();
      resolve(code);
    }));
    this.up = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`node ${config.id} exited with ${code} before it was up: ${this.stderr}`)));
      this.child.on('message', (m: FromChild) => {
        if (m.t === 'up') resolve();
        else if (m.t === 'leader') {
          this.leaderId = m.leaderId;
          this.term = m.term;
        } else if (m.t === 'dump') this.#dumps.shift()?.(m);
        else {
          const done = this.#pending.get(m.req);
          this.#pending.delete(m.req);
          done?.(m);
        }
      });
    });
    this.up.catch(() => {});
  }

  get alive(): boolean {
    return this.#alive;
  }

  #send(m: ToChild): boolean {
    if (!this.#alive || !this.child.connected) return false;
    try {
      this.child.send(m);
      return true;
    } catch {
      return false;
    }
  }

  propose(req: number, value: string): Promise<FromChild> {
    return new Promise((resolve) => {
      this.#pending.set(req, resolve);
      if (!this.#send({ t: 'propose', req, value })) {
        this.#pending.delete(req);
        resolve({ t: 'nack', req, code: 'EXITED', leaderId: null });
      }
    });
  }

  dump(): Promise<Dump> {
    return deadline(new Promise<Dump>((resolve, reject) => {
      this.#dumps.push(resolve);
      if (!this.#send({ t: 'dump' })) reject(new Error(`node ${this.config.id} is not running`));
    }), 5000, `a dump of ${this.config.id}`);
  }

  kill9(): Promise<number | null> {
    this.child.kill('SIGKILL');
    return this.exited;
  }

  async stop(): Promise<void> {
    if (!this.#alive) return;
    this.#send({ t: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** An acknowledged proposal. */
export interface Ack {
  readonly value: string;
  readonly index: number;
}

/** A cluster of node processes plus clients that keep proposing. */
export class ProcessCluster {
  readonly nodes = new Map<string, NodeProcess>();
  readonly acks: Ack[] = [];
  /** Proposal round-trip times in ms, as the client saw them (IPC hop included), when `recordLatency` is on. */
  readonly latencies: number[] = [];
  recordLatency = false;
  #req = 0;
  #stopLoad = false;
  #loops: Promise<void>[] = [];

  constructor(readonly configs: readonly FixtureConfig[]) {}

  start(id: string): NodeProcess {
    const config = this.configs.find((c) => c.id === id);
    if (config === undefined) throw new Error(`no node ${id}`);
    const proc = new NodeProcess(config);
    this.nodes.set(id, proc);
    return proc;
  }

  /** The leader most live nodes agree on, if any. */
  leader(): NodeProcess | undefined {
    let best: NodeProcess | undefined;
    let term = -1;
    for (const p of this.nodes.values()) {
      if (!p.alive || p.leaderId === null) continue;
      const l = this.nodes.get(p.leaderId);
      if (l?.alive && l.leaderId === l.config.id && p.term > term) {
        best = l;
        term = p.term;
      }
    }
    return best;
  }

  /** Resolves once a live node says it leads, and another agrees; polls IPC state on a short interval. */
  async waitLeader(ms: number): Promise<NodeProcess> {
    return deadline(new Promise<NodeProcess>((resolve) => {
      const check = (): void => {
        const l = this.leader();
        if (l !== undefined) resolve(l);
        else setTimeout(check, 20);
      };
      check();
    }), ms, 'a leader');
  }

  /** Starts `n` client loops; each proposes unique values, one at a time, to the believed leader. */
  load(n: number): void {
    this.#stopLoad = false;
    for (let c = 0; c < n; c++) this.#loops.push(this.#client(c));
  }

  async #client(c: number): Promise<void> {
    let target: string | null = null;
    while (!this.#stopLoad) {
      const node: NodeProcess | undefined = (target !== null ? this.nodes.get(target) : undefined) ?? this.leader();
      if (node === undefined || !node.alive) {
        target = null;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const req = ++this.#req;
      const value = `c${c}-${req}`; // unique across load() calls
      const t0 = performance.now();
      const reply = await node.propose(req, value);
      if (reply.t === 'ack') {
        this.acks.push({ value, index: reply.index });
        if (this.recordLatency) this.latencies.push(performance.now() - t0);
        target = node.config.id;
      } else if (reply.t === 'nack' && reply.leaderId !== null && reply.leaderId !== node.config.id) {
        target = reply.leaderId;
      } else {
        target = null;
        if (reply.t === 'nack' && reply.code !== 'TIMEOUT') await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Resolves once `count` more proposals were acknowledged. */
  async acked(count: number, ms: number): Promise<void> {
    const goal = this.acks.length + count;
    await deadline(new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.acks.length >= goal) resolve();
        else setTimeout(check, 20);
      };
      check();
    }), ms, `${count} acknowledged proposals (had ${this.acks.length} of ${goal})`);
  }

  async stopLoad(): Promise<void> {
    this.#stopLoad = true;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  /** Waits until every live node has applied at least `index`, then returns their dumps. */
  async converged(index: number, ms: number): Promise<Map<string, Dump>> {
    const start = Date.now();
    for (;;) {
      const dumps = new Map<string, Dump>();
      for (const [id, p] of this.nodes) if (p.alive) dumps.set(id, await p.dump());
      if ([...dumps.values()].every((d) => d.appliedIndex >= index)) return dumps;
      if (Date.now() - start > ms) {
        throw new Error(`nodes did not apply index ${index} within ${ms} ms: ${JSON.stringify([...dumps].map(([id, d]) => [id, d.appliedIndex]))}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stopAll(): Promise<void> {
    await this.stopLoad();
    await Promise.all([...this.nodes.values()].map((p) => p.stop()));
  }
}
