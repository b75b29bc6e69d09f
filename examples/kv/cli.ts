/**
 * The `raftchart` command line: `kv` (one node of the key-value service),
 * `demo` (three kv nodes in one process), `status <url>` (a node's status as a
 * table). `bin/raftchart.ts` only calls {@link runCli}.
 *
 * Exit codes: 0 done, 1 a runtime failure (a port in use, unusable data), 2 a
 * usage error (unknown command or flag, bad value) — always one line on
 * stderr, never a stack trace.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { ConfigurationError, RaftError } from '../../index.js';
import { startLiveView, type LiveView } from '../live-view/index.js';
import { KV_FLAGS, loadKvConfig, type KvPeer } from './config.js';
import { startKvNode, type KvEvent, type KvNode } from './server.js';

/** How the CLI reaches the outside world; injectable for tests. */
export interface CliIo {
  /** Default: `process.stdout.write`. */
  readonly stdout?: (text: string) => void;
  /** Default: `process.stderr.write`. */
  readonly stderr?: (text: string) => void;
  /** Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Aborting it stops `kv` and `demo`. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal;
}

const HELP = `raftchart — Raft consensus as explicit state machines

Usage:
  raftchart kv [flags]        run one node of the replicated key-value service
  raftchart demo [flags]      three kv nodes in this process on 127.0.0.1
  raftchart status <url>      a node's status and replica progress as a table
  raftchart <command> --help  the flags of a command
`;

function kvHelp(): string {
  const rows = Object.entries(KV_FLAGS).map(([flag, spec]) => `  --${`${flag} ${spec.arg}`.padEnd(28)} ${spec.help}`);
  return `raftchart kv — one node of the replicated key-value service

Usage:
  raftchart kv --id n1 --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 \\
               --data data/n1        (with RAFTCHART_SECRET set; HTTP on Raft port + 1000)
  raftchart kv --config cluster.json --id n2
  raftchart kv --dns 'kv-{0..2}.kv.default.svc'     (Kubernetes StatefulSet; id = host name)

Flags (each also RAFTCHART_<FLAG> in the environment, e.g. RAFTCHART_HTTP_PEERS;
precedence: flags > environment > --config file):
${rows.join('\n')}
  --help                       this text

HTTP: PUT/GET/DELETE /kv/:key, GET /kv/:key?stale, POST /kv/:key/cas
{"expect":v|null,"value":v}, GET /status, GET /healthz.
Stdout: one JSON line per event; the first is {"event":"ready","id":...,"http":"HOST:PORT",...}
once the node listens. SIGTERM or SIGINT stops it cleanly (a leader hands over first).
`;
}

const DEMO_HELP = `raftchart demo — three kv nodes in this process on 127.0.0.1

Usage:
  raftchart demo [--seconds N] [--data DIR] [--port P] [--http-port H] [--restart-leader S]
                 [--live HOST:PORT|off]

  --seconds N          stop after N seconds (default: run until Ctrl-C)
  --data DIR           Level data of node <id> in DIR/<id> (default ./data/demo); a second
                       run resumes it
  --port P             Raft ports P..P+2 (default 7001)
  --http-port H        HTTP ports H..H+2 (default 8001)
  --restart-leader S   every S seconds, stop the leader and restart it 1 s later
  --live HOST:PORT     serve the live cluster view there (loopback only; default
                       127.0.0.1:0, a free port; the URL is printed); 'off': don't
  --help               this text

It prints the URLs to try, and every leader change. Ctrl-C stops all three cleanly.
`;

const STATUS_HELP = `raftchart status — a kv node's status as a table

Usage:
  raftchart status <url> [--json] [--timeout-ms N]

  <url>            the node's HTTP address, e.g. http://127.0.0.1:8001 or 127.0.0.1:8001
  --json           print the raw /status JSON
  --timeout-ms N   give up after N ms (default 5000)
  --help           this text
`;

/** The demo's cluster secret. It only ever listens on 127.0.0.1; a real cluster takes its secret from the environment. */
const DEMO_SECRET = 'raftchart-demo-loopback-only';

/** Small flag parser for demo and status: `--name value` / `--name=value` / bare booleans. */
function parseFlags(args: readonly string[], known: Readonly<Record<string, 'value' | 'bool'>>, command: string): { flags: Map<string, string>; positional: string[] } {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const kind = known[name];
    if (kind === undefined) throw new ConfigurationError(`--${name}`, `unknown flag (see raftchart ${command} --help)`);
    if (eq >= 0) flags.set(name, arg.slice(eq + 1));
    else if (kind === 'bool') flags.set(name, 'true');
    else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigurationError(`--${name}`, 'needs a value');
      flags.set(name, next);
      i++;
    }
  }
  return { flags, positional };
}

function intFlag(flags: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const text = flags.get(name);
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigurationError(`--${name}`, `must be an integer in [${min}, ${max}], got ${JSON.stringify(text)}`);
  return n;
}

/** Resolves when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

async function runKv(args: readonly string[], io: Required<CliIo>): Promise<number> {
  const line = (event: Record<string, unknown> | KvEvent): void => io.stdout(`${JSON.stringify(event)}\n`);
  // A signal while DNS names are still being resolved stops at once.
  const config = await Promise.race([loadKvConfig(args, { env: io.env }), aborted(io.signal).then(() => null)]);
  if (config === null) {
    line({ event: 'stopped', reason: 'signal before the node started' });
    return 0;
  }
  // The live view (--live) shows this node alone; it is created first so the node's inspect hook can feed it.
  let kv: KvNode | null = null;
  const view: LiveView | null = config.live === null ? null : await startLiveView({
    listen: config.live,
    nodes: () => [{ id: config.id, node: kv?.node ?? null }],
    secret: randomBytes(18).toString('base64url'),
  }).catch((error: unknown) => {
    throw error instanceof ConfigurationError && error.option === 'listen' ? new ConfigurationError('--live', error.message.replace(/^listen: /, '')) : error;
  });
  try {
    kv = await startKvNode({ ...config, onEvent: line, ...(view === null ? {} : { raftOptions: { inspect: view.inspect(config.id) } }) });
  } catch (error) {
    await view?.close();
    throw error;
  }
  line({ event: 'ready', id: config.id, http: kv.httpAddress, raft: config.raftListen, data: resolve(config.data), peers: config.peers, ...(view === null ? {} : { live: view.url }) });
  await aborted(io.signal);
  line({ event: 'stopping', id: config.id });
  await kv.close();
  await view?.close();
  line({ event: 'stopped', id: config.id });
  return 0;
}

async function runDemo(args: readonly string[], io: Required<CliIo>): Promise<number> {
  const { flags, positional } = parseFlags(args, { seconds: 'value', data: 'value', port: 'value', 'http-port': 'value', 'restart-leader': 'value', live: 'value' }, 'demo');
  if (positional.length > 0) throw new ConfigurationError(positional[0] as string, 'unexpected argument');
  const seconds = flags.has('seconds') ? intFlag(flags, 'seconds', 0, 1, 31_536_000) : null;
  const port = intFlag(flags, 'port', 7001, 1, 65533);
  const httpPort = intFlag(flags, 'http-port', 8001, 1, 65533);
  const restartEvery = flags.has('restart-leader') ? intFlag(flags, 'restart-leader', 0, 1, 86_400) : null;
  const dataFlag = flags.get('data');
  if (dataFlag === '') throw new ConfigurationError('--data', 'needs a directory');
  const dataDir = resolve(dataFlag ?? join('data', 'demo'));
  const ids = ['n1', 'n2', 'n3'];
  const peers: KvPeer[] = ids.map((id, i) => ({ id, raft: `127.0.0.1:${port + i}`, http: `127.0.0.1:${httpPort + i}` }));
  const t0 = Date.now();
  const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(2).padStart(7)}s`;
  // Lines said while the nodes start wait until the banner is out.
  let held: string[] | null = [];
  const say = (text: string): void => {
    const line = `${stamp()}  ${text}\n`;
    if (held === null) io.stdout(line);
    else held.push(line);
  };
  let lastLeader = '';
  let fresh = 0;
  const onEvent = (e: KvEvent): void => {
    if (e.event === 'leader' && e.leaderId !== null) {
      const key = `${e.term}:${e.leaderId}`;
      if (key !== lastLeader) {
        lastLeader = key;
        say(`term ${e.term}: leader is ${e.leaderId} (http://${peers.find((p) => p.id === e.leaderId)?.http ?? '?'})`);
      }
    } else if (e.event === 'bootstrapped') fresh++;
  };
  const nodes = new Map<string, KvNode>();
  const launching = new Set<Promise<unknown>>();
  let stopping = false;
  const launch = async (id: string): Promise<void> => {
    const starting = startKvNode({
      id,
      peers,
      data: join(dataDir, id),
      secret: DEMO_SECRET,
      clusterId: 'raftchart-demo',
      requestTimeoutMs: 5000,
      onEvent,
      ...(view === null ? {} : { raftOptions: { inspect: view.inspect(id) } }),
    });
    launching.add(starting);
    try {
      const kv = await starting;
      // A restart that finishes while the demo stops is closed at once.
      if (stopping) await kv.close();
      else nodes.set(id, kv);
    } finally {
      launching.delete(starting);
    }
  };
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled([...launching]);
    const all = [...nodes.values()];
    nodes.clear();
    await Promise.all(all.map((n) => n.close()));
  };
  // ---- live cluster view (examples/live-view): the page's kill button stops a node, which restarts 5 s later
  const liveRestarts: NodeJS.Timeout[] = [];
  let liveClosed = false;
  const liveFlag = flags.get('live') ?? '127.0.0.1:0';
  const view: LiveView | null = liveFlag === 'off' ? null : await startLiveView({
    listen: liveFlag,
    nodes: () => ids.map((id) => ({ id, node: nodes.get(id)?.node ?? null })),
    secret: randomBytes(18).toString('base64url'),
    onKill: async (id) => {
      const kv = nodes.get(id);
      if (kv === undefined) throw new Error(`${id} is already down`);
      nodes.delete(id);
      say(`live view: stopping ${id}; it restarts in 5 s`);
      await kv.close();
      liveRestarts.push(setTimeout(() => {
        if (liveClosed || nodes.has(id)) return;
        launch(id).then(() => say(`restarted ${id}`), (error: unknown) => say(`could not restart ${id}: ${(error as Error).message}`));
      }, 5000));
    },
  }).catch((error: unknown) => {
    // name the flag, not the option of startLiveView
    throw error instanceof ConfigurationError && error.option === 'listen' ? new ConfigurationError('--live', error.message.replace(/^listen: /, '')) : error;
  });
  const closeLive = async (): Promise<void> => {
    liveClosed = true;
    for (const t of liveRestarts) clearTimeout(t);
    await view?.close();
  };
  // ---- end of the live view's setup

  try {
    for (const id of ids) await launch(id);
  } catch (error) {
    stopping = true;
    await closeLive();
    await stopAll();
    throw error;
  }
  const first = peers[0] as KvPeer;
  io.stdout(`
raftchart demo: three kv nodes on 127.0.0.1, Level data in ${dataDir} (${fresh === ids.length ? 'new cluster' : 'resumed'})
${peers.map((p) => `  ${p.id}  raft ws://${p.raft}  http://${p.http}`).join('\n')}

Try (any node answers; followers forward writes to the leader):
  curl -X PUT --data world http://${first.http}/kv/hello
  curl http://${peers[1]?.http}/kv/hello
  curl 'http://${peers[2]?.http}/kv/hello?stale'
  curl -X POST --data '{"expect":"world","value":"raft"}' http://${peers[2]?.http}/kv/hello/cas
  curl -X DELETE http://${first.http}/kv/hello
  npx raftchart status http://${first.http}
${view === null ? '' : `Live cluster view (kill a node there and watch the election): ${view.url}\n`}Ctrl-C stops the cluster; running the demo again resumes the same data.

`);
  for (const line of held) io.stdout(line);
  held = null;
  const timers: NodeJS.Timeout[] = [];
  const stop = new Promise<void>((resolveStop) => {
    void aborted(io.signal).then(resolveStop);
    if (seconds !== null) timers.push(setTimeout(resolveStop, seconds * 1000));
  });
  if (restartEvery !== null) {
    const restart = async (): Promise<void> => {
      const leader = [...nodes.values()].find((n) => n.node.status().role === 'leader');
      if (leader === undefined || stopping) return;
      const id = leader.node.id;
      say(`stopping the leader ${id}; it restarts in 1 s`);
      nodes.delete(id);
      await leader.close();
      timers.push(setTimeout(() => {
        if (stopping) return;
        launch(id).then(() => say(`restarted ${id}`), (error: unknown) => say(`could not restart ${id}: ${(error as Error).message}`));
      }, 1000));
    };
    const tick = (): void => {
      timers.push(setTimeout(() => {
        void restart().finally(() => {
          if (!stopping) tick();
        });
      }, restartEvery * 1000));
    };
    tick();
  }
  await stop;
  stopping = true;
  for (const t of timers) clearTimeout(t);
  say('stopping');
  await closeLive();
  await stopAll();
  say(`stopped; data kept in ${dataDir}`);
  return 0;
}

/** Renders `/status` JSON as a table. Exported for tests. */
export function formatStatus(status: Record<string, unknown>): string {
  const s = status as {
    id?: string; role?: string; term?: number; leaderId?: string | null; leaderHttp?: string | null; http?: string;
    commitIndex?: number; appliedIndex?: number; lastLogIndex?: number; keys?: number;
    members?: { id: string; address: string; http?: string | null; suffrage?: string }[];
    replicas?: Record<string, { match: number; next: number; state: string; inflight: number; paused: boolean; lastContactMs: number | null; down?: boolean }>;
  };
  const lines = [
    `node      ${s.id ?? '?'} (${s.role ?? '?'}, term ${s.term ?? '?'})  http ${s.http ?? '?'}`,
    `leader    ${s.leaderId ?? 'none known'}${s.leaderHttp ? ` (http ${s.leaderHttp})` : ''}`,
    `log       commit ${s.commitIndex ?? '?'}  applied ${s.appliedIndex ?? '?'}  last ${s.lastLogIndex ?? '?'}  keys ${s.keys ?? '?'}`,
    '',
  ];
  const header = ['member', 'suffrage', 'raft', 'http', 'match', 'next', 'state', 'inflight', 'paused', 'contact'];
  const rows = (s.members ?? []).map((m) => {
    const r = s.replicas?.[m.id];
    const self = m.id === s.id;
    return [
      m.id + (m.id === s.leaderId ? ' *' : ''),
      m.suffrage ?? 'voter',
      m.address,
      m.http ?? '-',
      r ? String(r.match) : self ? String(s.lastLogIndex ?? '-') : '-',
      r ? String(r.next) : '-',
      r ? r.state : self ? '(self)' : '-',
      r ? String(r.inflight) : '-',
      r ? (r.paused ? 'yes' : 'no') : '-',
      r ? (r.lastContactMs === null ? 'never' : `${Math.round(r.lastContactMs)} ms`) + (r.down === true ? ' (down)' : '') : '-',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  lines.push(fmt(header), ...rows.map(fmt));
  lines.push('', s.role === 'leader' ? '* leader' : '* leader; replica progress is known by the leader only');
  return `${lines.join('\n')}\n`;
}

async function runStatus(args: readonly string[], io: Required<CliIo>): Promise<number> {
  const { flags, positional } = parseFlags(args, { json: 'bool', 'timeout-ms': 'value' }, 'status');
  if (positional.length !== 1) throw new ConfigurationError('status', 'needs exactly one <url> (see raftchart status --help)');
  const raw = positional[0] as string;
  const base = /^https?:\/\//.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL('/status', base);
  } catch {
    throw new ConfigurationError('<url>', `${JSON.stringify(raw)} is not a URL`);
  }
  const timeoutMs = intFlag(flags, 'timeout-ms', 5000, 1, 600_000);
  const fetchStatus = async (target: URL): Promise<Record<string, unknown>> => {
    const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  let body: Record<string, unknown>;
  try {
    body = await fetchStatus(url);
  } catch (error) {
    io.stderr(`raftchart status: cannot read ${url.href}: ${(error as Error).message}\n`);
    return 1;
  }
  if (flags.get('json') === 'true') {
    io.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  io.stdout(formatStatus(body));
  // Replica progress lives on the leader: show its table too.
  const leaderHttp = body['leaderHttp'];
  if (body['role'] !== 'leader' && typeof leaderHttp === 'string') {
    const leaderUrl = new URL('/status', `${url.protocol}//${leaderHttp.replace(/^0\.0\.0\.0:|^\[::\]:/, `${url.hostname}:`)}`);
    try {
      io.stdout(`\nas the leader sees it (${leaderUrl.href}):\n\n${formatStatus(await fetchStatus(leaderUrl))}`);
    } catch (error) {
      io.stdout(`\n(cannot read the leader's status at ${leaderUrl.href}: ${(error as Error).message})\n`);
    }
  }
  return 0;
}

/**
 * Runs the `raftchart` command line and resolves with the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(process.argv.slice(2))
 * ```
 */
export async function runCli(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const out = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = io.stderr ?? ((s: string) => void process.stderr.write(s));
  let cleanup = (): void => undefined;
  let signal = io.signal;
  if (signal === undefined) {
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    cleanup = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    signal = controller.signal;
  }
  const full: Required<CliIo> = { stdout: out, stderr: err, env: io.env ?? process.env, signal };
  const [command, ...rest] = argv;
  const help: Record<string, () => string> = { kv: kvHelp, demo: () => DEMO_HELP, status: () => STATUS_HELP };
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      out(HELP);
      return 0;
    }
    const commandHelp = help[command];
    if (commandHelp === undefined) {
      err(`raftchart: unknown command '${command}'\n\n${HELP}`);
      return 2;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      out(commandHelp());
      return 0;
    }
    if (command === 'kv') return await runKv(rest, full);
    if (command === 'demo') return await runDemo(rest, full);
    return await runStatus(rest, full);
  } catch (error) {
    if (error instanceof ConfigurationError) {
      err(`raftchart ${command}: ${error.message}\n`);
      return 2;
    }
    err(`raftchart ${command}: ${error instanceof RaftError ? `${error.code}: ` : ''}${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    cleanup();
  }
}
