/**
 * The `raftchart` command line: help and usage errors in-process and as a
 * child process (exit code 2, one line, no stack trace), `raftchart kv` as a
 * real process on Level + WebSocket (ready line, HTTP, clean SIGTERM), the
 * demo in-process (URLs to try, a second run resumes), and `status`.
 * Real sockets on 127.0.0.1 only; every wait has a deadline.
 */
import t from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, formatStatus } from '../../examples/kv/cli.js';
import { freePorts, deadline } from '../../bench/cluster/harness.js';

const FROM_SOURCE = import.meta.url.endsWith('.ts');
const BIN = fileURLToPath(new URL(FROM_SOURCE ? '../../bin/raftchart.ts' : '../../bin/raftchart.js', import.meta.url));
const LOADER = FROM_SOURCE ? process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node')) : [];
const SECRET = 'cli-test-secret-of-enough-bytes';

/** Runs the CLI in this process, capturing its output. */
async function cli(argv: string[], signal?: AbortSignal, env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s), env, signal: signal ?? new AbortController().signal });
  return { code, out, err };
}

interface Child {
  readonly child: ChildProcess;
  out: string;
  err: string;
  readonly exited: Promise<number | null>;
  /** Resolves with the first stdout line matching `re`. */
  line(re: RegExp, ms: number): Promise<string>;
}

function spawnCli(args: string[], env: Record<string, string> = {}): Child {
  const child = fork(BIN, args, { execArgv: LOADER, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const c: Child = {
    child,
    out: '',
    err: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    line: (re, ms) => deadline(new Promise<string>((resolve, reject) => {
      const check = (): boolean => {
        const found = c.out.split('\n').find((l) => re.test(l));
        if (found !== undefined) resolve(found);
        return found !== undefined;
      };
      if (check()) return;
      child.stdout?.on('data', () => check());
      child.once('exit', (code) => {
        if (!check()) reject(new Error(`exited with ${code} before printing ${re}: ${c.err}`));
      });
    }), ms, `a line matching ${re}`),
  };
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (s: string) => (c.out += s));
  child.stderr?.on('data', (s: string) => (c.err += s));
  return c;
}

/** `n` consecutive ports that are free on 127.0.0.1 (bounded search). */
async function consecutivePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [base] = (await freePorts(1)) as [number];
    if (base + n > 65535) continue;
    const held: ReturnType<typeof createServer>[] = [];
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      const s = createServer();
      ok = await new Promise<boolean>((resolve) => {
        s.once('error', () => resolve(false));
        s.listen(base + i, '127.0.0.1', () => resolve(true));
      });
      if (ok) held.push(s);
    }
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    if (ok) return base;
  }
  throw new Error('no run of free ports found');
}

async function httpText(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, text: await res.text() };
}

t.test('help on every command, usage errors exit 2 with one line', async (t) => {
  for (const argv of [[], ['--help'], ['-h'], ['help']]) {
    const r = await cli(argv);
    t.equal(r.code, 0, `raftchart ${argv.join(' ')}`);
    t.match(r.out, /raftchart kv \[flags\][\s\S]*raftchart demo[\s\S]*raftchart status <url>/);
  }
  for (const [command, what] of [['kv', /--peers LIST[\s\S]*--dns PATTERN[\s\S]*RAFTCHART_/], ['demo', /--restart-leader S/], ['status', /--json/]] as const) {
    const r = await cli([command, '--help']);
    t.equal(r.code, 0, `${command} --help`);
    t.match(r.out, what);
    t.equal(r.err, '');
  }
  const usage: [string[], RegExp][] = [
    [['launch'], /^raftchart: unknown command 'launch'/],
    [['kv', '--bogus'], /^raftchart kv: --bogus: unknown flag \(see raftchart kv --help\)\n$/],
    [['kv', '--id', 'n1'], /^raftchart kv: --raft: is required/],
    [['demo', '--bogus'], /^raftchart demo: --bogus: unknown flag/],
    [['demo', 'extra'], /^raftchart demo: extra: unexpected argument/],
    [['demo', '--port', '0'], /^raftchart demo: --port: must be an integer in \[1, 65533\]/],
    [['demo', '--seconds'], /^raftchart demo: --seconds: needs a value/],
    [['demo', '--data='], /^raftchart demo: --data: needs a directory/],
    [['status'], /^raftchart status: status: needs exactly one <url>/],
    [['status', 'http://[bad'], /^raftchart status: <url>: "http:\/\/\[bad" is not a URL/],
    [['status', '127.0.0.1:1', '--timeout-ms', 'x'], /--timeout-ms: must be an integer/],
  ];
  for (const [argv, message] of usage) {
    const r = await cli(argv);
    t.equal(r.code, 2, `${argv.join(' ')} exits 2`);
    t.match(r.err, message);
    t.notMatch(r.err, /\n\s+at /, 'no stack trace');
  }
  const [closed] = (await freePorts(1)) as [number];
  const down = await cli(['status', `127.0.0.1:${closed}`, '--timeout-ms', '5000']);
  t.equal(down.code, 1, 'an unreachable node exits 1');
  t.match(down.err, new RegExp(`^raftchart status: cannot read http://127.0.0.1:${closed}/status: `));
});

t.test('a signal while DNS names do not resolve yet stops kv at once', async (t) => {
  const controller = new AbortController();
  const running = cli(['kv', '--dns', 'kv-{0..2}.raftchart-test.invalid', '--id', 'kv-0', '--dns-timeout-ms', '2000'], controller.signal, { RAFTCHART_SECRET: SECRET });
  controller.abort();
  const r = await deadline(running, 10_000, 'kv to stop');
  t.equal(r.code, 0);
  t.match(r.out, /"event":"stopped","reason":"signal before the node started"/);
});

t.test('the status table', async (t) => {
  const leader = formatStatus({
    id: 'n1', role: 'leader', term: 3, leaderId: 'n1', leaderHttp: '127.0.0.1:8001', http: '127.0.0.1:8001',
    commitIndex: 9, appliedIndex: 9, lastLogIndex: 9, keys: 2,
    members: [{ id: 'n1', address: 'ws://127.0.0.1:7001', http: '127.0.0.1:8001' }, { id: 'n2', address: 'ws://127.0.0.1:7002', http: '127.0.0.1:8002' }, { id: 'n3', address: 'ws://127.0.0.1:7003', http: null, suffrage: 'learner' }],
    replicas: { n2: { match: 9, next: 10, state: 'replicate', inflight: 0, paused: false, lastContactMs: 12, down: false }, n3: { match: 0, next: 1, state: 'probe', inflight: 1, paused: true, lastContactMs: null, down: true } },
  });
  t.match(leader, /^node {6}n1 \(leader, term 3\)  http 127\.0\.0\.1:8001\n/);
  t.match(leader, /log {7}commit 9  applied 9  last 9  keys 2/);
  t.match(leader, /member\s+suffrage\s+raft\s+http\s+match\s+next\s+state\s+inflight\s+paused\s+contact/);
  t.match(leader, /n1 \*\s+voter\s+ws:\/\/127\.0\.0\.1:7001\s+127\.0\.0\.1:8001\s+9\s+-\s+\(self\)/);
  t.match(leader, /n2\s+voter\s+\S+\s+127\.0\.0\.1:8002\s+9\s+10\s+replicate\s+0\s+no\s+12 ms/);
  t.match(leader, /n3\s+learner\s+\S+\s+-\s+0\s+1\s+probe\s+1\s+yes\s+never \(down\)/);
  const follower = formatStatus({ id: 'n2', role: 'follower', term: 3, leaderId: null, members: [] });
  t.match(follower, /leader {4}none known/);
  t.match(follower, /replica progress is known by the leader only/);
  t.match(formatStatus({}), /node {6}\? \(\?, term \?\)/, 'missing fields print as ?');
});

t.test('raftchart kv as a process: ready line, HTTP, status, bad flags, SIGTERM', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-kv-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const bad = spawnCli(['kv', '--id', 'n1', '--bogus', 'x']);
  t.equal(await deadline(bad.exited, 30_000, 'the bad-flag process to exit'), 2, 'an unknown flag exits 2');
  t.equal(bad.err, 'raftchart kv: --bogus: unknown flag (see raftchart kv --help)\n', 'one clear line, no stack trace');
  t.equal(bad.out, '');

  const help = spawnCli(['kv', '--help']);
  t.equal(await deadline(help.exited, 30_000, 'kv --help to exit'), 0);
  t.match(help.out, /raftchart kv — one node/);

  const [raft] = (await freePorts(1)) as [number];
  const node = spawnCli(['kv', '--id', 'n1', '--raft', `127.0.0.1:${raft}`, '--http', '127.0.0.1:0', '--data', join(dir, 'n1')], { RAFTCHART_SECRET: SECRET });
  t.teardown(() => void node.child.kill('SIGKILL'));
  const ready = JSON.parse(await node.line(/"event":"ready"/, 30_000)) as { event: string; id: string; http: string; raft: string; data: string };
  t.equal(ready.id, 'n1');
  t.match(ready.http, /^127\.0\.0\.1:\d+$/, 'the ready line gives the bound HTTP address');
  t.equal(ready.raft, `127.0.0.1:${raft}`);
  t.equal(ready.data, join(dir, 'n1'));
  await node.line(/"event":"leader","id":"n1","leaderId":"n1"/, 30_000);
  t.equal((await httpText(`http://${ready.http}/kv/a`, { method: 'PUT', body: 'one' })).status, 200);
  t.same(await httpText(`http://${ready.http}/kv/a`), { status: 200, text: 'one' });
  const status = await cli(['status', `http://${ready.http}`]);
  t.equal(status.code, 0);
  t.match(status.out, /node {6}n1 \(leader, term \d+\)/);
  t.notMatch(status.out, /as the leader sees it/, 'a leader prints one table');
  const json = await cli(['status', ready.http, '--json']);
  t.equal((JSON.parse(json.out) as { keys: number }).keys, 1, 'status --json prints the raw JSON');
  node.child.kill('SIGTERM');
  t.equal(await deadline(node.exited, 30_000, 'the node to exit on SIGTERM'), 0, 'SIGTERM exits 0');
  t.match(node.out, /"event":"stopping"[\s\S]*"event":"stopped"/);
  t.equal(node.err, '', 'nothing on stderr');

  // Restart on the same data: the value is still there (no bootstrap the second time).
  const again = spawnCli(['kv', '--id', 'n1', '--raft', `127.0.0.1:${raft}`, '--http', '127.0.0.1:0', '--data', join(dir, 'n1')], { RAFTCHART_SECRET: SECRET });
  t.teardown(() => void again.child.kill('SIGKILL'));
  const ready2 = JSON.parse(await again.line(/"event":"ready"/, 30_000)) as { http: string };
  t.notMatch(again.out, /bootstrapped/, 'existing data is not bootstrapped again');
  t.same(await httpText(`http://${ready2.http}/kv/a`), { status: 200, text: 'one' }, 'the write survived the restart');
  again.child.kill('SIGINT');
  t.equal(await deadline(again.exited, 30_000, 'the node to exit on SIGINT'), 0);

  // A port in use is a runtime failure: exit 1, one line.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((r) => holder.close(r)));
  const taken = (holder.address() as { port: number }).port;
  const busy = await cli(['kv', '--id', 'b1', '--raft', '127.0.0.1:0', '--http', `127.0.0.1:${taken}`, '--data', join(dir, 'b1'), '--insecure']);
  t.equal(busy.code, 1, 'an HTTP port in use exits 1');
  t.match(busy.err, /^raftchart kv: TRANSPORT: cannot listen for HTTP on 127\.0\.0\.1:\d+: .*EADDRINUSE.*\n$/);
});

t.test('demo: three kv nodes, the URLs to try, a second run resumes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-demo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const raft = await consecutivePorts(3);
  const http = await consecutivePorts(3);
  const run = (): { done: Promise<number>; stop: () => void; output: () => string; wait: (re: RegExp) => Promise<void> } => {
    const controller = new AbortController();
    let out = '';
    const waiters: { re: RegExp; resolve: () => void }[] = [];
    const done = runCli(['demo', '--data', dir, '--port', String(raft), '--http-port', String(http)], {
      stdout: (s) => {
        out += s;
        for (const w of waiters.filter((x) => x.re.test(out))) w.resolve();
      },
      stderr: (s) => (out += s),
      signal: controller.signal,
      env: {},
    });
    return {
      done,
      stop: () => controller.abort(),
      output: () => out,
      wait: (re) => deadline(new Promise<void>((resolve) => (re.test(out) ? resolve() : waiters.push({ re, resolve }))), 30_000, `demo output ${re}`),
    };
  };
  const first = run();
  await first.wait(/Ctrl-C stops the cluster/);
  await first.wait(/term \d+: leader is n\d/);
  const leaderLine = /term \d+: leader is (n\d)/.exec(first.output());
  const follower = ['n1', 'n2', 'n3'].find((id) => id !== leaderLine?.[1]) as string;
  const followerStatus = await cli(['status', `127.0.0.1:${http + Number(follower.slice(1)) - 1}`]);
  t.equal(followerStatus.code, 0);
  t.match(followerStatus.out, new RegExp(`node {6}${follower} \\(follower`));
  t.match(followerStatus.out, /as the leader sees it \(http:\/\/127\.0\.0\.1:\d+\/status\):\n\nnode {6}n\d \(leader[\s\S]*(probe|replicate)/, 'a follower\'s status adds the leader\'s table with replica progress');
  t.match(first.output(), /new cluster/);
  t.match(first.output(), new RegExp(`curl -X PUT --data world http://127.0.0.1:${http}/kv/hello`), 'prints the URLs to try');
  t.equal((await httpText(`http://127.0.0.1:${http + 1}/kv/hello`, { method: 'PUT', body: 'world' })).status, 200);
  t.same(await httpText(`http://127.0.0.1:${http + 2}/kv/hello`), { status: 200, text: 'world' });
  first.stop();
  t.equal(await deadline(first.done, 30_000, 'the demo to stop'), 0);
  t.match(first.output(), /stopped; data kept in/);

  const second = run();
  await second.wait(/Ctrl-C stops the cluster/);
  t.match(second.output(), /\(resumed\)/);
  await second.wait(/term \d+: leader is n\d/);
  t.same(await httpText(`http://127.0.0.1:${http}/kv/hello`), { status: 200, text: 'world' }, 'the second run has the first run\'s data');
  second.stop();
  t.equal(await deadline(second.done, 30_000, 'the demo to stop'), 0);

  const chaos = await cli(['demo', '--data', dir, '--port', String(raft), '--http-port', String(http), '--seconds', '5', '--restart-leader', '1']);
  t.equal(chaos.code, 0, '--seconds stops the demo by itself');
  t.match(chaos.out, /stopping the leader n\d; it restarts in 1 s/, '--restart-leader stops the leader');
  t.match(chaos.out, /restarted n\d/, 'and restarts it');
  t.match(chaos.out, /stopped; data kept in/);
  const conflict = await cli(['demo', '--data', dir, '--port', String(raft), '--http-port', String(raft)]);
  t.equal(conflict.code, 1, 'a demo that cannot bind its ports exits 1');
  t.match(conflict.err, /^raftchart demo: TRANSPORT: /);
});

t.test('raftchart kv --live serves the live view of that node', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-kv-live-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [raft, http] = await freePorts(2);
  const stop = new AbortController();
  let out = '';
  const running = runCli(
    ['kv', '--id', 'solo', '--raft', `127.0.0.1:${raft}`, '--http', `127.0.0.1:${http}`, '--data', join(dir, 'solo'), '--insecure', '--live', '127.0.0.1:0'],
    { stdout: (s) => (out += s), stderr: () => undefined, env: {}, signal: stop.signal },
  );
  const ready = await deadline(
    (async () => {
      while (!out.includes('"event":"ready"')) await new Promise((r) => setTimeout(r, 10));
      return JSON.parse(out.split('\n').find((l) => l.includes('"event":"ready"')) as string) as { live?: string };
    })(),
    20_000,
    'the ready line',
  );
  t.match(ready.live, /^http:\/\/127\.0\.0\.1:\d+\/\?token=/, 'the ready line carries the view URL, with its token');
  const page = await fetch(ready.live as string);
  t.equal(page.status, 200);
  t.match(await page.text(), /live cluster view/i);
  const state = await fetch((ready.live as string).replace('/?', '/state?'));
  t.equal(state.status, 200);
  t.match(JSON.stringify(await state.json()), /"solo"/, 'the view shows this node');
  stop.abort();
  t.equal(await deadline(running, 20_000, 'kv stops'), 0);
  t.equal((await cli(['kv', '--id', 'x', '--raft', '127.0.0.1:1', '--insecure', '--live', '10.1.2.3:80'])).code, 2, 'a non-loopback --live is a usage error');
});
