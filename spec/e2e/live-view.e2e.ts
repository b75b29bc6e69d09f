/**
 * End to end (issue 7, "The live cluster view"): `raftchart demo` — three kv
 * nodes on LevelStorage and WebSocketTransport over 127.0.0.1 — serves the
 * live view; headless Chromium (Debian's, driven by playwright-core) opens it,
 * sees exactly one leader, clicks that leader's kill button, and sees the
 * killed node go down and a different node lead.
 *
 * Run by `npm run test:e2e` (which installs chromium when missing). Every wait
 * polls the DOM or the demo's output with a bound; nothing sleeps.
 * With LIVE_VIEW_SCREENSHOT=path it also saves a screenshot there.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { runCli } from '../../examples/kv/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const BOUND_MS = 60_000;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `n` consecutive free ports on 127.0.0.1 (bounded attempts). */
async function consecutivePorts(n: number): Promise<number> {
  const listen = (port: number): Promise<ReturnType<typeof createServer> | null> =>
    new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(null));
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = await listen(0);
    if (probe === null) continue;
    const base = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    if (base + n > 65535) continue;
    const held: ReturnType<typeof createServer>[] = [];
    for (let i = 0; i < n; i++) {
      const s = await listen(base + i);
      if (s === null) break;
      held.push(s);
    }
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    if (held.length === n) return base;
  }
  throw new Error(`no ${n} consecutive free ports after 50 attempts`);
}

/** Rejects with `what` if `p` has not settled within `ms`. */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const LEADERS = 'section.node[data-up="true"][data-role="leader"]';

/** Ids of the nodes the page shows as up leaders. */
const shownLeaders = (page: Page): Promise<string[]> =>
  page.$$eval(LEADERS, (els) => els.map((e) => (e as HTMLElement).dataset.nodeId ?? ''));

t.test('the live view shows a leader; killing it there brings a different leader', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'raftchart-live-e2e-'));
  const profile = await mkdtemp(join(tmpdir(), 'raftchart-chromium-'));
  t.teardown(() => rm(profile, { recursive: true, force: true }));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const raft = await consecutivePorts(3);
  const http = await consecutivePorts(3);
  const controller = new AbortController();
  let out = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const done = runCli(['demo', '--data', dir, '--port', String(raft), '--http-port', String(http), '--live', '127.0.0.1:0'], {
    stdout: (s) => {
      out += s;
      for (const w of waiters.splice(0)) {
        const m = w.re.exec(out);
        if (m !== null) w.resolve(m);
        else waiters.push(w);
      }
    },
    stderr: (s) => (out += s),
    signal: controller.signal,
    env: {},
  });
  let demoStopped = false;
  const stopDemo = async (): Promise<number> => {
    controller.abort();
    const code = await deadline(done, BOUND_MS, 'the demo to stop');
    demoStopped = true;
    return code;
  };
  t.teardown(async () => {
    if (!demoStopped) await stopDemo().catch(() => undefined);
  });
  const waitOutput = (re: RegExp): Promise<RegExpExecArray> =>
    deadline(
      new Promise<RegExpExecArray>((resolve) => {
        const m = re.exec(out);
        if (m !== null) resolve(m);
        else waiters.push({ re, resolve });
      }),
      BOUND_MS,
      `demo output ${re} (output so far:\n${out})`,
    );

  const [, url] = (await waitOutput(/Live cluster view[^\n]*: (http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]+)\n/)) as unknown as [string, string];

  let context: BrowserContext | null = null;
  t.teardown(async () => {
    await context?.close().catch(() => undefined);
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1600, height: 760 },
    timeout: BOUND_MS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  await page.goto(url, { timeout: BOUND_MS });
  t.equal(await page.title(), 'raftchart live cluster view');

  // Three nodes, all up, exactly one of them shown as leader.
  await page.waitForFunction(
    (sel) => document.querySelectorAll('section.node[data-up="true"]').length === 3 && document.querySelectorAll(sel).length === 1,
    LEADERS,
    { timeout: BOUND_MS },
  );
  const [first] = await shownLeaders(page);
  t.ok(first !== undefined && /^n[123]$/.test(first), `one leader shown: ${String(first)}`);
  const leaderCard = page.locator(`section.node[data-node-id="${first}"]`);

  // The leader's card: its numbers, its two peers' progress, its diagram with the leader state lit.
  await page.waitForFunction(
    (id) => {
      const card = document.querySelector(`section.node[data-node-id="${id}"]`);
      return card?.querySelectorAll('table.replicas tbody tr').length === 2 && /^[1-9]\d*$/.test(card.querySelector('[data-field="commitIndex"]')?.textContent ?? '');
    },
    first,
    { timeout: BOUND_MS },
  );
  t.equal(await leaderCard.locator('[data-field="leaderId"]').textContent(), first, 'the leader names itself as leader');
  t.match(await leaderCard.locator('[data-field="term"]').textContent(), /^[1-9]\d*$/, 'a term is shown');
  t.match(await leaderCard.locator('[data-field="commitIndex"]').textContent(), /^[1-9]\d*$/, 'a commit index is shown');
  const peerStates = await leaderCard.locator('table.replicas tbody tr td:nth-child(2)').allTextContents();
  t.same(peerStates.filter((s) => s === 'probe' || s === 'replicate' || s === 'snapshot').length, 2, `each peer's progress state shown: ${peerStates.join(', ')}`);
  t.equal(await leaderCard.locator('figure.states g[data-state="leader"].active').count(), 1, 'the leader state is highlighted in its diagram');
  t.equal(await leaderCard.locator('figure.states g[data-state="follower"].active').count(), 0, 'the follower state is not');
  // With the inspect hook, nested states light up too (the leader's parallel regions).
  await page.waitForFunction(
    (id) => document.querySelector(`section.node[data-node-id="${id}"]`)?.getAttribute('data-active-from') === 'inspect',
    first,
    { timeout: BOUND_MS },
  );
  t.ok((await leaderCard.locator('figure.states g.active[data-state^="leader."]').count()) >= 2, 'nested leader states are highlighted');
  const follower = page.locator(`section.node[data-up="true"][data-role="follower"]`).first();
  t.equal(await follower.locator('figure.states g[data-state="follower"].active').count(), 1, 'a follower card highlights the follower state');

  // Kill the leader from the page: it is shown as down (the demo restarts it 5 s after it
  // stopped), and a different node is shown as the one leader.
  await leaderCard.locator('button.kill').click();
  const shownDown = page.waitForFunction(
    (old) => document.querySelector(`section.node[data-node-id="${old}"]`)?.getAttribute('data-up') === 'false',
    first,
    { timeout: BOUND_MS },
  );
  const newLeader = page.waitForFunction(
    (old) => {
      const leaders = Array.from(document.querySelectorAll('section.node[data-up="true"][data-role="leader"]'));
      return leaders.length === 1 && (leaders[0] as HTMLElement).dataset.nodeId !== old;
    },
    first,
    { timeout: BOUND_MS },
  );
  await Promise.all([shownDown, newLeader]);
  const [second] = await shownLeaders(page);
  t.ok(second !== undefined && second !== first, `a different node leads: ${String(second)} (was ${String(first)})`);
  t.match(out, new RegExp(`live view: stopping ${first}`), 'the demo stopped the killed node');
  const screenshot = process.env.LIVE_VIEW_SCREENSHOT;
  if (screenshot !== undefined && screenshot !== '') await page.screenshot({ path: screenshot, fullPage: true });
  t.same(pageErrors, [], 'no script errors on the page');

  await context.close();
  context = null;
  t.equal(await stopDemo(), 0, 'the demo stops cleanly');
});
