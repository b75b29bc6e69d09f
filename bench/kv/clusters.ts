/**
 * Three-member clusters on 127.0.0.1 as child processes, for the kv benchmark
 * and the chaos tests: raftchart kv nodes (`raftchart kv`, Level storage and
 * the WebSocket transport) here, etcd members in etcd-cluster.ts. Each member can be killed (SIGKILL), stopped (SIGSTOP),
 * continued and restarted on the same data. Every wait has a deadline.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request, Agent } from 'node:http';
import { cp, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Run from sources (under tap's TypeScript loader) or compiled (`npm run bench:kv`): the CLI runs the same way. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const CLI = fileURLToPath(new URL(FROM_SOURCE ? '../../bin/raftchart.ts' : '../../bin/raftchart.js', import.meta.url));
const LOADER = FROM_SOURCE ? process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node')) : [];

/** Every member process alive, killed when this process exits so none outlives a crashed test or benchmark. */
const LIVE = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of LIVE) child.kill('SIGKILL');
});

import { freePorts } from '../cluster/harness.js';

/** Ports the OS reports free on 127.0.0.1 (shared with the node-process harness). */
export { freePorts };

/** Resolves after `ms` (used only between polls of something with its own deadline). */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One small HTTP request with a deadline; resolves `{ status, body }` or rejects. */
export function httpJson(
  url: string,
  options: { method?: string; body?: string | Buffer; timeoutMs?: number; agent?: Agent } = {},
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', agent: options.agent, timeout: options.timeoutMs ?? 2000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${options.timeoutMs ?? 2000} ms: ${url}`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A cluster member process. */
export interface Member {
  readonly id: string;
  /** `http://127.0.0.1:PORT` of the client API. */
  readonly url: string;
  /** The running process, or null when stopped or killed. */
  readonly child: ChildProcess | null;
  /** Output collected from the process (last 64 KiB). */
  readonly log: string;
}

/** What both kinds of cluster offer. */
export interface Cluster {
  readonly name: string;
  readonly members: readonly Member[];
  /** Starts every member and waits until a leader is elected. */
  start(timeoutMs?: number): Promise<void>;
  /** The current leader's id (polling members), or rejects after `timeoutMs`. */
  leader(timeoutMs?: number): Promise<Member>;
  /** SIGKILL of one member; resolves when it exited. */
  kill(id: string): Promise<void>;
  /** Starts a stopped or killed member again on its data. */
  restart(id: string, timeoutMs?: number): Promise<void>;
  /** SIGSTOP / SIGCONT of one member. */
  freeze(id: string): void;
  thaw(id: string): void;
  /** Stops every member (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
}

/** Members as child processes: spawn, readiness from their output, leader polling, kill/freeze/thaw/restart. */
export abstract class ProcessCluster implements Cluster {
  abstract readonly name: string;
  protected readonly procs = new Map<string, { child: ChildProcess | null; log: string; exited: Promise<void> }>();
  constructor(protected readonly specs: readonly { id: string; url: string }[]) {}

  get members(): Member[] {
    return this.specs.map((s) => {
      const p = this.procs.get(s.id);
      return { id: s.id, url: s.url, child: p?.child ?? null, log: p?.log ?? '' };
    });
  }

  protected abstract command(id: string): { cmd: string; args: string[]; env?: NodeJS.ProcessEnv; cwd?: string };
  protected abstract ready(id: string, log: string): boolean;
  protected abstract leaderOf(member: Member): Promise<string | null>;

  /** Spawns member `id`; resolves when its output says it is ready. */
  protected async spawnMember(id: string, timeoutMs: number): Promise<void> {
    const { cmd, args, env, cwd } = this.command(id);
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd === undefined ? {} : { cwd }) });
    const entry = { child: child as ChildProcess | null, log: '', exited: Promise.resolve() };
    LIVE.add(child);
    entry.exited = new Promise<void>((resolve) => child.once('exit', () => {
      LIVE.delete(child);
      if (entry.child === child) entry.child = null;
      resolve();
    }));
    this.procs.set(id, entry);
    let onOutput: () => void = () => undefined;
    const append = (chunk: Buffer): void => {
      entry.log = (entry.log + chunk.toString('utf8')).slice(-65536);
      onOutput();
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} ${id} not ready after ${timeoutMs} ms:\n${entry.log.slice(-2000)}`)), timeoutMs);
      const done = (error?: Error): void => {
        clearTimeout(timer);
        onOutput = () => undefined;
        child.off('exit', exited);
        if (error) reject(error);
        else resolve();
      };
      const exited = (code: number | null, signal: string | null): void =>
        done(new Error(`${this.name} ${id} exited (${code ?? signal}) before it was ready:\n${entry.log.slice(-2000)}`));
      child.once('exit', exited);
      onOutput = () => {
        if (this.ready(id, entry.log)) done();
      };
      onOutput();
    });
  }

  async start(timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.specs.map((s) => this.spawnMember(s.id, timeoutMs)));
    await this.leader(timeoutMs);
  }

  async leader(timeoutMs = 20_000): Promise<Member> {
    const until = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < until) {
      const live = this.members.filter((m) => m.child !== null);
      const answers = await Promise.all(live.map((m) => this.leaderOf(m).catch((e: unknown) => {
        last = String(e);
        return null;
      })));
      const leader = live.find((m, i) => answers[i] === m.id && answers.filter((a) => a === m.id).length > live.length / 2);
      if (leader !== undefined) return leader;
      const claimed = live.find((m, i) => answers[i] === m.id);
      if (claimed !== undefined && live.length < this.specs.length) return claimed;
      await pause(100);
    }
    throw new Error(`${this.name}: no leader within ${timeoutMs} ms (${last})`);
  }

  async kill(id: string): Promise<void> {
    const p = this.procs.get(id);
    if (p?.child == null) return;
    p.child.kill('SIGCONT');
    p.child.kill('SIGKILL');
    await p.exited;
  }

  async restart(id: string, timeoutMs = 30_000): Promise<void> {
    await this.kill(id);
    await this.spawnMember(id, timeoutMs);
  }

  freeze(id: string): void {
    this.procs.get(id)?.child?.kill('SIGSTOP');
  }

  thaw(id: string): void {
    this.procs.get(id)?.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.values()].map(async (p) => {
      const child = p.child;
      if (child === null) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await p.exited;
      clearTimeout(timer);
    }));
  }
}

/**
 * Copies the TypeScript sources the `raftchart` CLI runs from (and links `node_modules`) into
 * `dir`, and returns the path of its `bin/raftchart.ts`. Members started from the copy all run
 * the code as it was when the copy was made, even if the checkout changes meanwhile (another
 * edit half-written when a member restarts would otherwise make it fail to load).
 */
export async function copySources(dir: string): Promise<string> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  await mkdir(dir, { recursive: true });
  for (const entry of ['index.ts', 'errors.ts', 'machines', 'actors', 'adapters', 'examples', 'bin', 'tsconfig.json', 'package.json']) {
    await cp(join(root, entry), join(dir, entry), { recursive: true, filter: (src) => !src.includes('node_modules') });
  }
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return join(dir, 'bin', 'raftchart.ts');
}

/** Addresses of one raftchart kv node: where it listens, and where its peers reach it (a proxy, in chaos tests). */
export interface KvNodeSpec {
  readonly id: string;
  /** Raft listen port. */
  readonly raftPort: number;
  /** HTTP listen port (clients talk to it). */
  readonly httpPort: number;
  /** Port the other nodes dial for Raft (default `raftPort`). */
  readonly peerRaftPort?: number;
  /** Port the other nodes forward HTTP to (default `httpPort`). */
  readonly peerHttpPort?: number;
}

/** Three (or more) `raftchart kv` processes on Level storage and the WebSocket transport. */
export class RaftchartCluster extends ProcessCluster {
  readonly name = 'raftchart';
  readonly #peers: string;
  /** Extra arguments of `node` for every member started from now on (e.g. `--cpu-prof`). */
  nodeArgs: readonly string[] = [];
  /**
   * The `raftchart` entry point members run, and their working directory. Default: this
   * checkout's (`bin/raftchart.ts` from sources, `dist/bin/raftchart.js` compiled). A test may
   * point them at a copy of the sources taken when it starts (see {@link copySources}).
   */
  cli: string = CLI;
  cwd: string | undefined = undefined;

  constructor(
    readonly nodes: readonly KvNodeSpec[],
    readonly dataDir: string,
    readonly extraArgs: readonly string[] = [],
  ) {
    super(nodes.map((n) => ({ id: n.id, url: `http://127.0.0.1:${n.httpPort}` })));
    this.#peers = nodes
      .map((n) => `${n.id}=127.0.0.1:${n.peerRaftPort ?? n.raftPort}/127.0.0.1:${n.peerHttpPort ?? n.httpPort}`)
      .join(',');
  }

  /** Three nodes on free ports. */
  static async onFreePorts(dataDir: string, extraArgs: readonly string[] = []): Promise<RaftchartCluster> {
    const ports = await freePorts(6);
    const nodes = ['n1', 'n2', 'n3'].map((id, i) => ({ id, raftPort: ports[2 * i] as number, httpPort: ports[2 * i + 1] as number }));
    return new RaftchartCluster(nodes, dataDir, extraArgs);
  }

  protected command(id: string): { cmd: string; args: string[]; env: NodeJS.ProcessEnv; cwd?: string } {
    const n = this.nodes.find((x) => x.id === id) as KvNodeSpec;
    return {
      cmd: process.execPath,
      args: [
        ...LOADER,
        ...this.nodeArgs,
        this.cli,
        'kv',
        '--id', id,
        '--peers', this.#peers,
        '--raft', `127.0.0.1:${n.raftPort}`,
        '--http', `127.0.0.1:${n.httpPort}`,
        '--data', `${this.dataDir}/${id}`,
        ...this.extraArgs,
      ],
      env: { RAFTCHART_SECRET: 'raftchart-bench-and-chaos-secret' },
      ...(this.cwd === undefined ? {} : { cwd: this.cwd }),
    };
  }

  protected ready(_id: string, log: string): boolean {
    return log.includes('"event":"ready"');
  }

  protected async leaderOf(member: Member): Promise<string | null> {
    const r = await httpJson(`${member.url}/status`, { timeoutMs: 1000 });
    if (r.status !== 200) return null;
    const s = JSON.parse(r.body.toString('utf8')) as { role?: string; leaderId?: string | null };
    return s.role === 'leader' ? member.id : (s.leaderId ?? null);
  }
}
