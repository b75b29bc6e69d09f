/**
 * Machines as data: reads an XState v5 machine object as plain data, and
 * renders that data as a Mermaid `stateDiagram-v2`, a self-contained SVG and
 * Markdown tables.
 *
 * Nothing here knows the Raft machines: it walks `machine.root` (state nodes,
 * `transitions`, `always`, `after`, `entry`/`exit`, `invoke`, `initial`), so a
 * diagram can never drift from the definition it is drawn from. Every output
 * is a pure function of the machine: same machine, byte-identical text. The
 * docs site draws its Machines guide with it at build time, and the live
 * cluster view (`examples/live-view`) at run time.
 *
 * @module
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * What fires a transition: an event type, a delay (`after`), or nothing (`always`).
 *
 * @remarks Part of {@link MachineInfo}, the plain-data view of a machine that {@link describeMachine} returns.
 */
export type Trigger =
  | { readonly kind: 'event'; readonly event: string }
  | { readonly kind: 'after'; readonly delay: string }
  | { readonly kind: 'always' };

/**
 * One transition, as declared (candidates of one trigger keep their priority order).
 *
 * @remarks Part of {@link MachineInfo}; names are those given in the machine's `setup()`.
 */
export interface TransitionInfo {
  readonly trigger: Trigger;
  /** Guard name; combinators print as `and(a, b)`, `not(a)`, `in(follower.led)`; a function literal is `inline`. */
  readonly guard: string | null;
  /** Target state paths relative to the machine (`follower.led`); empty for a targetless transition. */
  readonly targets: readonly string[];
  /** `reenter: true`: the source state is exited and entered again. */
  readonly reenter: boolean;
  /** Action names in execution order; XState built-ins without their `xstate.` prefix (`raise`, `sendTo`, ...). */
  readonly actions: readonly string[];
}

/** Kinds of state node, as XState names them (`atomic` has no children). */
export type StateKind = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

/**
 * One state node and its subtree.
 *
 * @remarks Part of {@link MachineInfo}. `path` is what an SVG from {@link toSvg} carries as the
 * `data-state` attribute of the state's box, so a viewer can highlight the active states.
 */
export interface StateInfo {
  /** The state's key in its parent (`led`). */
  readonly key: string;
  /** Dotted path from the machine root (`follower.led`); `''` for the root itself. */
  readonly path: string;
  /** Atomic, compound, parallel, final or history. */
  readonly kind: StateKind;
  /** Key of the initial child of a compound state. */
  readonly initial: string | null;
  /** Entry action names. */
  readonly entry: readonly string[];
  /** Exit action names. */
  readonly exit: readonly string[];
  /** Invoked actors, by id. */
  readonly invoke: readonly string[];
  /** Event transitions in declaration order, then delayed (`after`) ones, then eventless (`always`) ones. */
  readonly transitions: readonly TransitionInfo[];
  /** Children in definition order. */
  readonly children: readonly StateInfo[];
}

/**
 * A machine as data: its id and its tree of states, each with its transitions, guards, delays and actions.
 *
 * @remarks Built by {@link describeMachine}; rendered by {@link toSvg} and {@link toMermaid}. Plain
 * JSON-compatible objects: it can be stored, diffed or sent to a browser.
 */
export interface MachineInfo {
  /** The machine's id (`node`, `replica`). */
  readonly id: string;
  /** The root state node; its `path` is `''`. */
  readonly root: StateInfo;
}

// ---------------------------------------------------------------------------
// Walking the machine object

interface Named {
  readonly type?: unknown;
  readonly guards?: unknown;
  readonly stateValue?: unknown;
  readonly id?: unknown;
  readonly sendId?: unknown;
  readonly name?: unknown;
}

function isNamed(x: unknown): x is Named {
  return (typeof x === 'object' || typeof x === 'function') && x !== null;
}

function pathOf(node: AnyStateNode): string {
  return node.path.join('.');
}

/** `#node.follower.led` → `follower.led`; any other state reference is printed as given. */
function stateRef(machineId: string, value: unknown): string {
  if (typeof value === 'string') {
    const prefix = `#${machineId}.`;
    if (value.startsWith(prefix)) return value.slice(prefix.length);
    if (value === `#${machineId}`) return machineId;
    return value;
  }
  return JSON.stringify(value) ?? 'inline';
}

/** Names a guard: its string, its `{ type }`, a combinator over named guards, or `inline`. */
export function guardName(machineId: string, guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (isNamed(guard)) {
    if (typeof guard.type === 'string') return guard.type;
    if (Array.isArray(guard.guards)) {
      const op = typeof guard.name === 'string' && guard.name !== '' ? guard.name : 'combine';
      const parts: string[] = guard.guards.map((g: unknown) => guardName(machineId, g) ?? 'inline');
      return `${op}(${parts.join(', ')})`;
    }
    if ('stateValue' in guard) return `in(${stateRef(machineId, guard.stateValue)})`;
  }
  return 'inline';
}

/** Names an action; XState's built-ins lose their `xstate.` prefix; a function literal is `inline`. */
export function actionName(action: unknown): string {
  if (typeof action === 'string') return action;
  if (isNamed(action) && typeof action.type === 'string') {
    return action.type.startsWith('xstate.') ? action.type.slice('xstate.'.length) : action.type;
  }
  return 'inline';
}

/** XState adds a raise to `entry` and a cancel to `exit` for every `after`; they are not the author's. */
function isDelayBookkeeping(action: unknown): boolean {
  if (!isNamed(action)) return false;
  if (action.type === 'xstate.raise') return typeof action.id === 'string' && action.id.startsWith('xstate.after.');
  if (action.type === 'xstate.cancel') return typeof action.sendId === 'string' && action.sendId.startsWith('xstate.after.');
  return false;
}

interface RawTransition {
  readonly eventType: string;
  readonly delay?: unknown;
  readonly guard?: unknown;
  readonly target?: readonly AnyStateNode[] | undefined;
  readonly reenter?: boolean;
  readonly actions?: readonly unknown[];
}

function transitionInfo(machineId: string, trigger: Trigger, t: RawTransition): TransitionInfo {
  return {
    trigger,
    guard: guardName(machineId, t.guard),
    targets: (t.target ?? []).map(pathOf),
    reenter: t.reenter === true,
    actions: (t.actions ?? []).map(actionName),
  };
}

function kindOf(node: AnyStateNode): StateKind {
  const t: string = node.type;
  return t === 'compound' || t === 'parallel' || t === 'final' || t === 'history' ? t : 'atomic';
}

function describeNode(machineId: string, node: AnyStateNode): StateInfo {
  const events: TransitionInfo[] = [];
  const delayed: TransitionInfo[] = [];
  for (const [eventType, list] of node.transitions as Map<string, readonly RawTransition[]>) {
    for (const t of list) {
      if (t.delay !== undefined && eventType.startsWith('xstate.after.')) {
        const delay = typeof t.delay === 'number' ? `${t.delay}ms` : String(t.delay);
        delayed.push(transitionInfo(machineId, { kind: 'after', delay }, t));
      } else {
        events.push(transitionInfo(machineId, { kind: 'event', event: eventType }, t));
      }
    }
  }
  const always = ((node.always ?? []) as readonly RawTransition[]).map((t) =>
    transitionInfo(machineId, { kind: 'always' }, t),
  );
  const kind = kindOf(node);
  const initialTarget = kind === 'compound' ? (node.initial?.target[0] as AnyStateNode | undefined) : undefined;
  return {
    key: node.key,
    path: pathOf(node),
    kind,
    initial: initialTarget === undefined ? null : initialTarget.key,
    entry: node.entry.filter((a) => !isDelayBookkeeping(a)).map(actionName),
    exit: node.exit.filter((a) => !isDelayBookkeeping(a)).map(actionName),
    invoke: node.invoke.map((i) => (typeof i.id === 'string' && i.id !== '' ? i.id : String(i.src))),
    transitions: [...events, ...delayed, ...always],
    children: Object.values(node.states as Record<string, AnyStateNode>).map((c) => describeNode(machineId, c)),
  };
}

/**
 * Reads a machine object into plain data: every state, and every transition with its trigger,
 * guard, targets and actions.
 *
 * @remarks Walks the definition (`machine.root`), never a running actor, so the result depends on
 * the machine alone: the same machine gives equal data. Guards and actions print by name; a
 * function literal in the definition prints as `inline`. XState's own bookkeeping for `after`
 * (a raise on entry, a cancel on exit) is left out.
 *
 * @example
 * ```ts
 * import { describeMachine, nodeMachine } from 'raftchart'
 * const info = describeMachine(nodeMachine)
 * const roles = info.root.children.map((s) => s.key) // ['follower', 'preCandidate', 'candidate', 'leader']
 * ```
 */
export function describeMachine(machine: AnyStateMachine): MachineInfo {
  return { id: machine.id, root: describeNode(machine.id, machine.root) };
}

/** Every state of a machine, depth first in definition order, root excluded. */
export function allStates(info: MachineInfo): StateInfo[] {
  const out: StateInfo[] = [];
  const visit = (s: StateInfo): void => {
    for (const c of s.children) {
      out.push(c);
      visit(c);
    }
  };
  visit(info.root);
  return out;
}

// ---------------------------------------------------------------------------
// Labels

/** `msg.append`, `after(electionTimeout)`, `always`. */
export function triggerLabel(trigger: Trigger): string {
  if (trigger.kind === 'event') return trigger.event;
  if (trigger.kind === 'after') return `after(${trigger.delay})`;
  return 'always';
}

function targetLabel(info: MachineInfo, t: TransitionInfo): string {
  return t.targets.map((p) => (p === '' ? info.id : p)).join(', ');
}

function stateLabel(info: MachineInfo, s: StateInfo): string {
  return s.path === '' ? `${info.id} (machine)` : s.path;
}

// ---------------------------------------------------------------------------
// Mermaid

function mermaidId(path: string): string {
  return path === '' ? 's__machine' : `s_${path.replace(/[^A-Za-z0-9]/g, '_')}`;
}

/** Mermaid edge labels and state names must not carry its own syntax. */
function mermaidText(text: string): string {
  return text.replace(/[:;#{}"<>|&\\]/g, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * A Mermaid `stateDiagram-v2` of the machine.
 *
 * @remarks Transitions that change state are
 * edges; targetless ones (actions only) are left to the tables. Transitions of
 * the machine root hold in any state and start from an `(any state)` node.
 * Parallel regions are drawn as nested composite states (not `--` separators,
 * which mermaid does not parse when a later region's state has an outside edge).
 * Deterministic: the same data gives byte-identical text.
 *
 * @example
 * ```ts
 * import { describeMachine, replicaMachine, toMermaid } from 'raftchart'
 * const source = toMermaid(describeMachine(replicaMachine)) // 'stateDiagram-v2\n  [*] --> s_probe\n...'
 * ```
 */
export function toMermaid(info: MachineInfo): string {
  const lines: string[] = ['stateDiagram-v2'];
  const declare = (s: StateInfo, indent: string): void => {
    const label = mermaidText(s.kind === 'parallel' ? `${s.key} (parallel)` : s.kind === 'history' ? `${s.key} (history)` : s.key);
    const id = mermaidId(s.path);
    if (s.children.length === 0) {
      lines.push(`${indent}state "${label}" as ${id}`);
      return;
    }
    lines.push(`${indent}state "${label}" as ${id} {`);
    if (s.initial !== null) lines.push(`${indent}  [*] --> ${mermaidId(`${s.path}.${s.initial}`)}`);
    for (const c of s.children) declare(c, `${indent}  `);
    lines.push(`${indent}}`);
  };
  const root = info.root;
  if (root.initial !== null) lines.push(`  [*] --> ${mermaidId(root.initial)}`);
  for (const c of root.children) declare(c, '  ');
  for (const c of root.children) if (c.kind === 'final') lines.push(`  ${mermaidId(c.path)} --> [*]`);

  const edges: string[] = [];
  const visit = (s: StateInfo): void => {
    for (const t of s.transitions) {
      if (t.targets.length === 0) continue;
      const guard = t.guard === null ? '' : ` [${t.guard}]`;
      const label = mermaidText(`${triggerLabel(t.trigger)}${guard}${t.reenter ? ' (reenter)' : ''}`);
      for (const target of t.targets) edges.push(`  ${mermaidId(s.path)} --> ${mermaidId(target)} : ${label}`);
    }
    for (const c of s.children) visit(c);
  };
  visit(root);
  if (root.transitions.some((t) => t.targets.length > 0)) lines.push(`  state "(any state)" as ${mermaidId('')}`);
  lines.push(...edges);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// SVG

const FONT = 12;
const CHAR = 7.25; // advance of a 12px monospace glyph, a little generous
const LINE = 16;
const PAD = 10;
const HEADER = 24;
const GAP = 12;

interface Segment {
  readonly text: string;
  readonly cls: string;
}

interface Laid {
  readonly w: number;
  readonly h: number;
  render(x: number, y: number, out: string[]): void;
}

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function num(n: number): string {
  return String(Math.round(n * 10) / 10);
}

function width(segments: readonly Segment[]): number {
  let chars = 0;
  for (const s of segments) chars += [...s.text].length;
  return chars * CHAR;
}

function textLine(x: number, y: number, segments: readonly Segment[]): string {
  const spans = segments.map((s) => `<tspan class="${s.cls}">${xml(s.text)}</tspan>`).join('');
  return `<text x="${num(x)}" y="${num(y)}">${spans}</text>`;
}

/** The lines listed inside a state's box: entry, exit, invoke, then its transitions in priority order. */
export function stateLines(info: MachineInfo, s: StateInfo): Segment[][] {
  const lines: Segment[][] = [];
  if (s.entry.length > 0) lines.push([{ text: 'entry', cls: 'kw' }, { text: ` / ${s.entry.join(', ')}`, cls: 'ac' }]);
  if (s.exit.length > 0) lines.push([{ text: 'exit', cls: 'kw' }, { text: ` / ${s.exit.join(', ')}`, cls: 'ac' }]);
  for (const id of s.invoke) lines.push([{ text: 'invoke', cls: 'kw' }, { text: ` ${id}`, cls: 'ac' }]);
  for (const t of s.transitions) {
    const line: Segment[] = [{ text: triggerLabel(t.trigger), cls: t.trigger.kind === 'event' ? 'ev' : 'kw' }];
    if (t.guard !== null) line.push({ text: ` [${t.guard}]`, cls: 'gd' });
    if (t.targets.length > 0) line.push({ text: ` → ${targetLabel(info, t)}${t.reenter ? ' (reenter)' : ''}`, cls: 'tg' });
    if (t.actions.length > 0) line.push({ text: ` / ${t.actions.join(', ')}`, cls: 'ac' });
    if (t.targets.length === 0 && t.actions.length === 0) line.push({ text: ' (no action)', cls: 'ac' });
    lines.push(line);
  }
  return lines;
}

function layout(info: MachineInfo, s: StateInfo, depth: number, initial: boolean, region: boolean): Laid {
  const tag = s.path === '' ? ' machine' : s.kind === 'atomic' || s.kind === 'compound' ? '' : ` ${s.kind}`;
  const title = s.path === '' ? info.id : s.key;
  const marker = initial ? 14 : 0;
  const lines = stateLines(info, s);
  const kids = s.children.map((c) => layout(info, c, depth + 1, c.key === s.initial, s.kind === 'parallel'));
  const side = s.kind === 'parallel';
  const kidsW = kids.length === 0 ? 0 : side ? kids.reduce((a, k) => a + k.w, 0) + GAP * (kids.length - 1) : Math.max(...kids.map((k) => k.w));
  const kidsH = kids.length === 0 ? 0 : side ? Math.max(...kids.map((k) => k.h)) : kids.reduce((a, k) => a + k.h, 0) + GAP * (kids.length - 1);
  const headerW = marker + width([{ text: title + tag, cls: '' }]);
  const w = Math.ceil(Math.max(headerW, ...lines.map(width), kidsW, 80) + 2 * PAD);
  const linesH = lines.length * LINE;
  const h = HEADER + linesH + (kids.length > 0 ? GAP + kidsH : 0) + PAD;
  return {
    w,
    h,
    render(x, y, out) {
      const cls = `st d${depth % 4}${region ? ' region' : ''}`;
      out.push(`<g data-state="${xml(s.path === '' ? info.id : s.path)}">`);
      out.push(`<rect class="${cls}" x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" rx="8" ry="8"/>`);
      if (initial) out.push(`<circle class="init" cx="${num(x + PAD + 4)}" cy="${num(y + 15)}" r="4"/>`);
      out.push(
        textLine(x + PAD + marker, y + 17, [
          { text: title, cls: 'name' },
          ...(tag === '' ? [] : [{ text: tag, cls: 'kw' }]),
        ]),
      );
      lines.forEach((line, i) => out.push(textLine(x + PAD, y + HEADER + (i + 1) * LINE - 4, line)));
      let cx = x + PAD;
      let cy = y + HEADER + linesH + (kids.length > 0 ? GAP : 0);
      for (const k of kids) {
        k.render(cx, cy, out);
        if (side) cx += k.w + GAP;
        else cy += k.h + GAP;
      }
      out.push('</g>');
    },
  };
}

const LEGEND = [
  '● initial state · dashed box: region of a parallel state · lines: event [guard] → target / actions',
  'after(delay): delayed transition · always: eventless transition · candidates of one trigger are listed in priority order',
];

/**
 * Options of {@link toSvg}.
 *
 * @remarks The defaults draw the full diagram the docs site shows.
 */
export interface SvgOptions {
  /** Print the two legend lines above the diagram. Default `true`. */
  readonly legend?: boolean;
  /**
   * Print each state's entry, exit, invoke and transition lines. Default `true`; `false` draws the
   * state hierarchy alone, small enough to show beside other things (the live view does).
   */
  readonly details?: boolean;
}

/** The same machine with its states only: no actions, invocations or transitions. */
function statesOnly(s: StateInfo): StateInfo {
  return { ...s, entry: [], exit: [], invoke: [], transitions: [], children: s.children.map(statesOnly) };
}

/**
 * A self-contained SVG: states as nested rounded boxes, each listing its own transitions.
 *
 * @remarks Needs no script, font or stylesheet from elsewhere. Each state's box is a
 * `<g data-state="path">` (the {@link StateInfo.path}, or the machine id for the root), so a page
 * that inlines the SVG can mark the active states with CSS, as the live cluster view does.
 * Deterministic: the same data and options give byte-identical text.
 *
 * @example
 * ```ts
 * import { describeMachine, nodeMachine, toSvg } from 'raftchart'
 * import { writeFile } from 'node:fs/promises'
 * const info = describeMachine(nodeMachine)
 * await writeFile('node.svg', toSvg(info))
 * await writeFile('node-states.svg', toSvg(info, { legend: false, details: false }))
 * ```
 */
export function toSvg(info: MachineInfo, options: SvgOptions = {}): string {
  const drawn = options.details === false ? { ...info, root: statesOnly(info.root) } : info;
  const legend = options.legend === false ? [] : LEGEND;
  const body = layout(drawn, drawn.root, 0, false, false);
  const legendH = legend.length === 0 ? 0 : legend.length * LINE + 8;
  const W = Math.ceil(Math.max(body.w, ...legend.map((l) => width([{ text: l, cls: '' }]))) + 2 * PAD);
  const H = Math.ceil(body.h + legendH + 2 * PAD);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" xml:space="preserve" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="title-${xml(info.id)}">`,
    `<title id="title-${xml(info.id)}">${xml(info.id)} machine: ${options.details === false ? 'states' : 'states and transitions'}</title>`,
    '<style>',
    `text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:${FONT}px;fill:#1f2933;white-space:pre}`,
    '.st{stroke:#52606d;stroke-width:1.2}.d0{fill:#ffffff}.d1{fill:#f0f4f8}.d2{fill:#e4ecf5}.d3{fill:#d9e2ec}',
    '.region{stroke-dasharray:6 4}.init{fill:#1f2933}',
    '.name{font-weight:bold}.kw{fill:#7b4ea3}.ev{fill:#0b4f8a}.gd{fill:#8a5a00}.tg{fill:#1d7a3e}.ac{fill:#616e7c}',
    '.legend{fill:#616e7c}',
    '</style>',
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
  ];
  legend.forEach((l, i) => out.push(`<text class="legend" x="${PAD}" y="${PAD + (i + 1) * LINE - 4}">${xml(l)}</text>`));
  body.render(PAD, PAD + legendH, out);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// Markdown tables

function cell(text: string): string {
  return text === '' ? '—' : `\`${text.replace(/\|/g, '\\|')}\``;
}

/** One row per transition: state, trigger, guard, target, actions. */
export function transitionTable(info: MachineInfo): string {
  const rows = ['| State | Trigger | Guard | Target | Actions |', '| --- | --- | --- | --- | --- |'];
  for (const s of [info.root, ...allStates(info)]) {
    for (const t of s.transitions) {
      const target = t.targets.length === 0 ? '' : `${targetLabel(info, t)}${t.reenter ? ' (reenter)' : ''}`;
      rows.push(
        `| ${cell(stateLabel(info, s))} | ${cell(triggerLabel(t.trigger))} | ${cell(t.guard ?? '')} | ${cell(target)} | ${cell(t.actions.join(', '))} |`,
      );
    }
  }
  return `${rows.join('\n')}\n`;
}

/** One row per state: kind, initial child, entry and exit actions, invoked actors. */
export function stateTable(info: MachineInfo): string {
  const rows = ['| State | Kind | Initial child | Entry | Exit | Invokes |', '| --- | --- | --- | --- | --- | --- |'];
  for (const s of [info.root, ...allStates(info)]) {
    rows.push(
      `| ${cell(stateLabel(info, s))} | ${s.kind} | ${cell(s.initial ?? '')} | ${cell(s.entry.join(', '))} | ${cell(s.exit.join(', '))} | ${cell(s.invoke.join(', '))} |`,
    );
  }
  return `${rows.join('\n')}\n`;
}
