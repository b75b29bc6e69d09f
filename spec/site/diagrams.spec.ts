/**
 * The machine diagrams are generated from the machine objects (issue 7,
 * "Machines as data"). Checked here against an independent walk of those
 * objects, so a state or an event the generator misses fails the build.
 */
import t from 'tap';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, assign, createMachine, fromPromise, not, or, setup, stateIn, type AnyStateMachine, type AnyStateNode } from 'xstate';
import { nodeMachine } from '../../machines/node.machine.js';
import { replicaMachine } from '../../machines/replica.machine.js';
import { snapshotSenderMachine } from '../../machines/snapshot-sender.machine.js';
import { DRAWN, GUIDE, MEDIA, renderDiagrams, writeDiagrams } from '../../site/scripts/diagrams.js';
import {
  actionName,
  allStates,
  describeMachine,
  guardName,
  stateTable,
  toMermaid,
  toSvg,
  transitionTable,
} from '../../adapters/inspect/statechart.js';

/** What the machine object itself declares, walked without the generator's code. */
interface Walk {
  /** Dotted paths of every state below the root. */
  readonly states: string[];
  /** Event types with at least one transition anywhere. */
  readonly events: Set<string>;
  /** Event types with a transition that has a target. */
  readonly targetedEvents: Set<string>;
  /** Names of the delays of `after` transitions. */
  readonly delays: Set<string>;
}

function walk(machine: AnyStateMachine): Walk {
  const out: Walk = { states: [], events: new Set(), targetedEvents: new Set(), delays: new Set() };
  const visit = (node: AnyStateNode): void => {
    for (const [type, list] of node.transitions) {
      for (const tr of list) {
        if (type.startsWith('xstate.after.')) out.delays.add(String((tr as { delay?: unknown }).delay));
        else {
          out.events.add(type);
          if (tr.target !== undefined && tr.target.length > 0) out.targetedEvents.add(type);
        }
      }
    }
    for (const child of Object.values(node.states as Record<string, AnyStateNode>)) {
      out.states.push(child.path.join('.'));
      visit(child);
    }
  };
  visit(machine.root);
  return out;
}

/**
 * Minimal XML check: one root `<svg>`, every tag closed in order, attribute values
 * quoted, text free of raw `<` and of `&` outside an entity.
 */
function checkXml(doc: string): string[] {
  const problems: string[] = [];
  const body = doc.trim();
  if (!body.startsWith('<svg ')) problems.push('does not start with <svg');
  if (!body.endsWith('</svg>')) problems.push('does not end with </svg>');
  const stack: string[] = [];
  const TAG = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  let roots = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const text = body.slice(i, lt === -1 ? body.length : lt);
    if (/&(?!(?:amp|lt|gt|quot|apos|#\d+);)/.test(text)) problems.push(`bare & in text near ${JSON.stringify(text.slice(0, 40))}`);
    if (text.includes('>')) problems.push(`bare > in text near ${JSON.stringify(text.slice(0, 40))}`);
    if (lt === -1) break;
    TAG.lastIndex = lt;
    const m = TAG.exec(body);
    if (m === null) {
      problems.push(`malformed tag at ${lt}: ${JSON.stringify(body.slice(lt, lt + 40))}`);
      break;
    }
    const [all, close, name, , selfClose] = m;
    if (close === '/') {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}>`);
    } else if (selfClose !== '/') {
      if (stack.length === 0) roots += 1;
      stack.push(name as string);
    } else if (stack.length === 0) roots += 1;
    i = lt + all.length;
  }
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(' > ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}

t.test('the XML check itself catches what it must', async (t) => {
  t.same(checkXml('<svg a="1"><g><text>x &amp; y</text></g><rect/></svg>'), []);
  t.not(checkXml('<svg><g></svg>').length, 0, 'unbalanced');
  t.not(checkXml('<svg><text>a & b</text></svg>').length, 0, 'bare ampersand');
  t.not(checkXml('<svg><text a=1>x</text></svg>').length, 0, 'unquoted attribute');
  t.not(checkXml('<g></g>').length, 0, 'not an svg');
  t.not(checkXml('<svg></svg><svg></svg>').length, 0, 'two roots');
});

t.test('core states exist, so the walk below is not vacuous', async (t) => {
  const node = walk(nodeMachine).states;
  for (const s of ['follower', 'preCandidate', 'candidate', 'leader']) t.ok(node.includes(s), `node machine has ${s}`);
  const replica = walk(replicaMachine).states;
  for (const s of ['probe', 'replicate', 'snapshot']) t.ok(replica.includes(s), `replica machine has ${s}`);
  const sender = walk(snapshotSenderMachine).states;
  for (const s of ['streaming', 'sent', 'aborted']) t.ok(sender.includes(s), `snapshot sender machine has ${s}`);
  t.same(DRAWN.map((d) => d.exportName), ['nodeMachine', 'replicaMachine', 'snapshotSenderMachine'], 'every machine kind of the design is drawn');
  t.ok(walk(nodeMachine).delays.has('electionTimeout'));
  t.ok(walk(nodeMachine).delays.has('heartbeatInterval'));
});

const files = renderDiagrams();
const byPath = new Map(files.map((f) => [f.path, f.content]));
const guide = byPath.get(GUIDE) ?? '';

for (const d of DRAWN) {
  t.test(`${d.machine.id} machine: every state, event and delay of the object is drawn`, async (t) => {
    const w = walk(d.machine);
    const svg = byPath.get(`${MEDIA}/${d.file}.svg`) ?? '';
    const mermaid = byPath.get(`${MEDIA}/${d.file}.mmd`) ?? '';
    t.not(svg, '', 'svg generated');
    t.not(mermaid, '', 'mermaid generated');
    t.ok(guide.includes(`](./machines/${d.file}.svg)`), 'guide embeds the svg');
    t.ok(guide.includes(`](./machines/${d.file}.mmd)`), 'guide links the mermaid source');
    t.ok(guide.includes(mermaid.trimEnd()), 'guide holds the mermaid source');

    for (const path of w.states) {
      const key = path.split('.').at(-1) as string;
      t.ok(svg.includes(`data-state="${path}"`), `svg has a box for ${path}`);
      t.match(mermaid, new RegExp(`state "${key}( \\(\\w+\\))?" as s_${path.replace(/\./g, '_')}\\b`), `mermaid declares ${path}`);
      t.ok(guide.includes(`| \`${path}\` |`), `guide tables list ${path}`);
    }
    for (const event of w.events) {
      t.ok(svg.includes(`>${event}</tspan>`), `svg lists ${event}`);
      t.ok(guide.includes(`| \`${event}\` |`), `guide table lists ${event}`);
    }
    for (const event of w.targetedEvents) t.ok(mermaid.includes(` : ${event}`), `mermaid has an edge for ${event}`);
    for (const delay of w.delays) {
      t.ok(svg.includes(`>after(${delay})</tspan>`), `svg lists after(${delay})`);
      t.ok(mermaid.includes(`after(${delay})`), `mermaid has after(${delay})`);
    }
    t.same(checkXml(svg), [], 'svg is well-formed');
    t.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), 'svg is self-contained with its namespace');
    t.notMatch(svg, /(?:href|src)=/, 'svg references nothing outside itself');
  });
}

t.test('the generator is deterministic: same machines, byte-identical files', async (t) => {
  t.same(renderDiagrams(), files, 'two renders are equal');
  const a = await mkdtemp(join(tmpdir(), 'diagrams-a-'));
  const b = await mkdtemp(join(tmpdir(), 'diagrams-b-'));
  t.teardown(() => Promise.all([rm(a, { recursive: true, force: true }), rm(b, { recursive: true, force: true })]));
  await mkdir(join(b, MEDIA), { recursive: true });
  await writeFile(join(b, MEDIA, 'stale.svg'), 'from a machine that is gone');
  const written = await writeDiagrams(a);
  await writeDiagrams(b);
  t.same(written.sort(), files.map((f) => f.path).sort());
  t.same((await readdir(join(b, MEDIA))).sort(), (await readdir(join(a, MEDIA))).sort(), 'a stale file is removed');
  for (const f of files) {
    const x = await readFile(join(a, f.path));
    const y = await readFile(join(b, f.path));
    t.ok(x.equals(y), `${f.path} is byte-identical`);
    t.equal(x.toString('utf8'), f.content);
  }
});

t.test('the walk reads every construct XState offers, not only those the Raft machines use', async (t) => {
  const machine = setup({
    guards: { ready: () => true, open: () => true },
    delays: { tick: 5 },
    actions: { log: () => {} },
    actors: { work: fromPromise(async () => 1) },
  }).createMachine({
    id: 'm',
    initial: 'idle',
    on: { 'reset&<go>': { target: '.idle', actions: assign({}) }, '*': { actions: 'log' } },
    states: {
      idle: {
        entry: ['log', () => {}],
        exit: { type: 'log' },
        after: { tick: 'busy', 250: { target: 'done', guard: or(['ready', { type: 'open' }]) } },
        on: {
          go: [
            { guard: and(['ready', not('open'), stateIn('#m.busy')]), target: 'busy' },
            { guard: () => false, target: ['#m.busy.left.a', '#m.busy.right.b'] },
            { guard: stateIn({ busy: 'left' }) },
          ],
        },
      },
      busy: {
        type: 'parallel',
        invoke: [{ id: 'worker', src: 'work' }],
        states: {
          left: { initial: 'a', states: { a: {}, h: { type: 'history' } } },
          right: { initial: 'b', states: { b: { always: { target: '#m', guard: 'ready' } } } },
        },
      },
      done: { type: 'final' },
    },
  });
  const info = describeMachine(machine);
  t.same(
    allStates(info).map((s) => `${s.path}:${s.kind}`),
    ['idle:atomic', 'busy:parallel', 'busy.left:compound', 'busy.left.a:atomic', 'busy.left.h:history', 'busy.right:compound', 'busy.right.b:atomic', 'done:final'],
  );
  const idle = info.root.children[0];
  t.same(idle?.entry, ['log', 'inline'], 'after() bookkeeping is not listed as entry');
  t.same(idle?.exit, ['log']);
  t.same(
    idle?.transitions.map((tr) => [tr.trigger, tr.guard, tr.targets]),
    [
      [{ kind: 'event', event: 'go' }, 'and(ready, not(open), in(busy))', ['busy']],
      [{ kind: 'event', event: 'go' }, 'inline', ['busy.left.a', 'busy.right.b']],
      [{ kind: 'event', event: 'go' }, 'in({"busy":"left"})', []],
      [{ kind: 'after', delay: '250ms' }, 'or(ready, open)', ['done']],
      [{ kind: 'after', delay: 'tick' }, null, ['busy']],
    ],
  );
  t.same(info.root.children[1]?.invoke, ['worker']);
  t.same(info.root.children[1]?.children[1]?.children[0]?.transitions[0]?.trigger, { kind: 'always' });

  const svg = toSvg(info);
  t.same(checkXml(svg), [], 'escaped event names keep the svg well-formed');
  t.ok(svg.includes('reset&amp;&lt;go&gt;'));
  t.ok(svg.includes('after(250ms)') && svg.includes('invoke') && svg.includes(' parallel') && svg.includes(' (no action)'));
  t.ok(svg.includes('class="st d2 region"'), 'regions of a parallel state are dashed');
  const mermaid = toMermaid(info);
  t.ok(mermaid.includes('state "busy (parallel)" as s_busy {'));
  t.ok(mermaid.includes('state "h (history)" as s_busy_left_h'));
  t.ok(mermaid.includes('s_done --> [*]'));
  t.ok(mermaid.includes('s__machine --> s_idle : reset go'), 'mermaid syntax characters are dropped from labels');
  t.ok(mermaid.includes('s_busy_right_b --> s__machine : always [ready]'), 'a transition to the root targets the machine');
  t.ok(transitionTable(info).includes('| `busy.right.b` | `always` | `ready` | `m` | — |'));
  t.ok(stateTable(info).includes('| `busy` | parallel | — | — | — | `worker` |'));

  const plain = createMachine({ id: 'p', initial: 'a', states: { a: { on: { x: 'b' } }, b: {} } });
  t.notOk(toMermaid(describeMachine(plain)).includes('(any state)'), 'no pseudo-state without root transitions');
});

t.test('names of guards and actions', async (t) => {
  t.equal(guardName('m', undefined), null);
  t.equal(guardName('m', 'g'), 'g');
  t.equal(guardName('m', 42), 'inline');
  t.equal(guardName('m', stateIn('#m')), 'in(m)');
  t.equal(guardName('m', stateIn('#other.x')), 'in(#other.x)');
  t.equal(guardName('m', Object.assign(() => true, { guards: [() => true] })), 'combine(inline)');
  t.equal(actionName('a'), 'a');
  t.equal(actionName({ type: 'xstate.raise' }), 'raise');
  t.equal(actionName({ type: 'custom', params: 1 }), 'custom');
  t.equal(actionName(null), 'inline');
});
