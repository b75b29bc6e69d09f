/**
 * The live view's one page: plain HTML, a stylesheet, the role machine's SVG
 * in a `<template>`, and one small ES module script (written below as a
 * type-checked function and inlined as its source text; no bundler, no
 * framework) that listens to `/events` and updates the DOM.
 *
 * What the page exposes for people and tests: each node is a
 * `section.node[data-node-id][data-role][data-up]` (`data-role` is the role,
 * or `down`), with a `button.kill`; `#summary[data-leaders]` lists the ids
 * of the up nodes that are leaders.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { ClusterView, LiveNodeView } from './server.js';

/* c8 ignore start -- runs in the browser; spec/e2e/live-view.e2e.ts drives it in Chromium */
/**
 * The browser side. Runs in the page: it must not reference anything outside
 * its own body (it is inlined as source text), and uses only DOM APIs.
 */
function client(): void {
  const token = new URLSearchParams(location.search).get('token');
  const query = token === null ? '' : `?token=${encodeURIComponent(token)}`;
  const nodesEl = document.getElementById('nodes') as HTMLElement;
  const summary = document.getElementById('summary') as HTMLElement;
  const connection = document.getElementById('connection') as HTMLElement;
  const statesTemplate = document.getElementById('diagram-states') as HTMLTemplateElement;
  const fullTemplate = document.getElementById('diagram-full') as HTMLTemplateElement;

  interface Card {
    readonly root: HTMLElement;
    readonly fields: Map<string, HTMLElement>;
    readonly replicas: HTMLTableSectionElement;
    readonly events: HTMLOListElement;
    readonly states: SVGGElement[];
    readonly kill: HTMLButtonElement;
    readonly note: HTMLElement;
    readonly state: HTMLElement;
  }
  const cards = new Map<string, Card>();

  const el = <K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text = ''): HTMLElementTagNameMap[K] => {
    const e = document.createElement(tag);
    if (cls !== '') e.className = cls;
    if (text !== '') e.textContent = text;
    return e;
  };

  const FIELDS: readonly [string, string][] = [
    ['term', 'term'],
    ['leaderId', 'leader'],
    ['commitIndex', 'commit'],
    ['appliedIndex', 'applied'],
    ['lastLogIndex', 'last log'],
    ['members', 'members'],
  ];

  const kill = async (card: Card, id: string): Promise<void> => {
    card.kill.disabled = true;
    card.note.textContent = `killing ${id}…`;
    try {
      const res = await fetch(`nodes/${encodeURIComponent(id)}/kill${query}`, { method: 'POST', headers: { 'x-live-view': 'kill' } });
      const body = (await res.json()) as { error?: string };
      card.note.textContent = res.ok ? `${id} killed` : `kill failed: ${body.error ?? res.status}`;
    } catch (error) {
      card.note.textContent = `kill failed: ${String(error)}`;
    }
  };

  const cardFor = (id: string): Card => {
    const existing = cards.get(id);
    if (existing !== undefined) return existing;
    const root = el('section', 'node');
    root.dataset.nodeId = id;
    const head = el('header');
    const title = el('h2', '', id);
    const role = el('span', 'role');
    const killButton = el('button', 'kill', 'kill');
    killButton.type = 'button';
    killButton.title = `stop ${id} (the demo restarts it after a while)`;
    head.append(title, role, killButton);
    const dl = el('dl');
    const fields = new Map<string, HTMLElement>([['role', role]]);
    for (const [key, label] of FIELDS) {
      const dd = el('dd');
      dd.dataset.field = key;
      dl.append(el('dt', '', label), dd);
      fields.set(key, dd);
    }
    const table = el('table', 'replicas');
    const thead = el('thead');
    const hr = el('tr');
    for (const h of ['peer', 'state', 'match', 'next', 'inflight', 'paused', 'last contact']) hr.append(el('th', '', h));
    thead.append(hr);
    const tbody = el('tbody');
    table.append(thead, tbody);
    const diagram = (template: HTMLTemplateElement, kind: string): HTMLElement => {
      const figure = el('figure', `diagram ${kind}`);
      const svg = (template.content.firstElementChild as SVGSVGElement).cloneNode(true) as SVGSVGElement;
      const svgTitle = svg.querySelector('title');
      if (svgTitle !== null) {
        svgTitle.id = `diagram-${kind}-${id}`;
        svg.setAttribute('aria-labelledby', svgTitle.id);
      }
      figure.append(svg);
      return figure;
    };
    const states = diagram(statesTemplate, 'states');
    const full = diagram(fullTemplate, 'full');
    full.hidden = true;
    const toggle = el('button', 'toggle', 'show transitions');
    toggle.type = 'button';
    toggle.addEventListener('click', () => {
      full.hidden = !full.hidden;
      toggle.textContent = full.hidden ? 'show transitions' : 'hide transitions';
    });
    const stateLine = el('p', 'state');
    const events = el('ol', 'events');
    const note = el('p', 'note');
    root.append(head, dl, note, table, stateLine, states, toggle, full, events);
    const card: Card = {
      root,
      fields,
      replicas: tbody,
      events,
      states: Array.from(root.querySelectorAll<SVGGElement>('g[data-state]')),
      kill: killButton,
      note,
      state: stateLine,
    };
    killButton.addEventListener('click', () => void kill(card, id));
    cards.set(id, card);
    nodesEl.append(root);
    return card;
  };

  const ago = (ms: number | null): string => (ms === null ? '—' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
  const clock = (at: number): string => new Date(at).toLocaleTimeString([], { hour12: false });

  const renderNode = (n: LiveNodeView, killable: boolean): void => {
    const card = cardFor(n.id);
    card.root.dataset.role = n.up ? (n.role ?? 'follower') : 'down';
    card.root.dataset.up = String(n.up);
    card.root.dataset.activeFrom = n.activeFrom;
    const set = (key: string, text: string): void => {
      const f = card.fields.get(key);
      if (f !== undefined && f.textContent !== text) f.textContent = text;
    };
    set('role', n.up ? (n.role ?? '') : 'down');
    set('term', n.up ? String(n.term) : '—');
    set('leaderId', n.up ? (n.leaderId ?? 'none') : '—');
    set('commitIndex', n.up ? String(n.commitIndex) : '—');
    set('appliedIndex', n.up ? String(n.appliedIndex) : '—');
    set('lastLogIndex', n.up ? String(n.lastLogIndex) : '—');
    set('members', n.up ? n.members.join(', ') : '—');
    card.kill.hidden = !killable;
    if (!n.up) card.kill.disabled = true;
    else if (card.kill.disabled && n.up) {
      card.kill.disabled = false;
      card.note.textContent = '';
    }
    card.replicas.replaceChildren(
      ...n.replicas.map((r) => {
        const tr = el('tr');
        tr.dataset.peer = r.id;
        for (const v of [r.id, r.state, String(r.match), String(r.next), String(r.inflight), r.paused ? 'yes' : 'no', ago(r.lastContactMs)]) tr.append(el('td', '', v));
        return tr;
      }),
    );
    card.replicas.parentElement?.classList.toggle('empty', n.replicas.length === 0);
    const active = new Set(n.active);
    const leaves = n.active.filter((path) => !n.active.some((p) => p.startsWith(`${path}.`)));
    for (const g of card.states) {
      const path = g.dataset.state ?? '';
      const on = active.has(path);
      g.classList.toggle('active', on);
      g.classList.toggle('leaf', on && leaves.includes(path));
    }
    const stateText = n.up ? `state: ${leaves.join(' · ')}${n.activeFrom === 'role' ? ' (role only: no inspect hook)' : ''}` : '';
    if (card.state.textContent !== stateText) card.state.textContent = stateText;
    card.events.replaceChildren(...n.events.slice().reverse().map((e) => el('li', '', `${clock(e.at)}  ${e.text}`)));
  };

  const render = (view: ClusterView): void => {
    for (const n of view.nodes) renderNode(n, view.killable);
    const leaders = view.nodes.filter((n) => n.up && n.role === 'leader');
    summary.dataset.leaders = leaders.map((n) => n.id).join(',');
    const up = view.nodes.filter((n) => n.up).length;
    const who =
      leaders.length === 0
        ? 'no leader'
        : leaders.length === 1
          ? `leader ${leaders[0]?.id ?? ''} (term ${leaders[0]?.term ?? 0})`
          : `${leaders.length} nodes think they lead: ${leaders.map((n) => `${n.id} (term ${n.term})`).join(', ')}`;
    summary.textContent = `${who} · ${up} of ${view.nodes.length} nodes up`;
  };

  const source = new EventSource(`events${query}`);
  source.addEventListener('open', () => {
    connection.textContent = 'live';
    connection.dataset.state = 'live';
  });
  source.addEventListener('error', () => {
    connection.textContent = 'reconnecting…';
    connection.dataset.state = 'reconnecting';
  });
  source.addEventListener('state', (m) => {
    try {
      render(JSON.parse((m as MessageEvent<string>).data) as ClusterView);
    } catch (error) {
      connection.textContent = `bad update: ${String(error)}`;
    }
  });
}
/* c8 ignore stop */

const STYLE = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; background: #f5f7fa; }
body { margin: 0; padding: 16px 20px; }
h1 { font-size: 20px; margin: 0; }
.top { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; margin-bottom: 12px; }
#summary { font-weight: 600; }
#connection { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e4e7eb; }
#connection[data-state="live"] { background: #d1fae5; color: #065f46; }
#connection[data-state="reconnecting"] { background: #fee2e2; color: #991b1b; }
#nodes { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }
section.node { background: #fff; border: 1px solid #cbd2d9; border-top: 6px solid #9aa5b1; border-radius: 8px; padding: 10px 12px; min-width: 0; }
section.node[data-role="leader"] { border-top-color: #16a34a; }
section.node[data-role="candidate"] { border-top-color: #ea580c; }
section.node[data-role="preCandidate"] { border-top-color: #ca8a04; }
section.node[data-role="follower"] { border-top-color: #2563eb; }
section.node[data-up="false"] { background: #eceff1; color: #7b8794; }
section.node header { display: flex; align-items: center; gap: 10px; }
section.node h2 { margin: 0; font-size: 18px; }
.role { font-weight: 600; text-transform: uppercase; font-size: 12px; letter-spacing: .05em; padding: 2px 8px; border-radius: 10px; background: #e4e7eb; }
[data-role="leader"] .role { background: #dcfce7; color: #166534; }
[data-role="candidate"] .role, [data-role="preCandidate"] .role { background: #ffedd5; color: #9a3412; }
[data-role="follower"] .role { background: #dbeafe; color: #1e40af; }
[data-role="down"] .role { background: #52606d; color: #fff; }
button.kill { margin-left: auto; border: 1px solid #b91c1c; color: #b91c1c; background: #fff; border-radius: 6px; padding: 3px 12px; cursor: pointer; font-weight: 600; }
button.kill:disabled { opacity: .4; cursor: default; }
dl { display: grid; grid-template-columns: repeat(6, auto); gap: 2px 10px; margin: 10px 0 4px; font-size: 13px; }
dt { color: #616e7c; font-size: 11px; grid-row: 1; }
dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; grid-row: 2; }
.note { min-height: 1em; margin: 2px 0; font-size: 12px; color: #b91c1c; }
table.replicas { width: 100%; border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; margin: 4px 0 8px; }
table.replicas th { text-align: left; color: #616e7c; font-weight: 500; border-bottom: 1px solid #cbd2d9; }
table.replicas td, table.replicas th { padding: 2px 6px 2px 0; }
table.replicas.empty thead { display: none; }
table.replicas.empty::after { content: "no replicas tracked (only a leader tracks its peers)"; font-size: 12px; color: #9aa5b1; }
figure.diagram { margin: 0; border: 1px solid #e4e7eb; border-radius: 6px; background: #fff; }
figure.diagram.states svg { display: block; width: 100%; max-width: 640px; height: auto; margin: 0 auto; }
figure.diagram.full { overflow: auto; max-height: 70vh; margin-top: 6px; }
figure.diagram.full svg { display: block; }
p.state { margin: 4px 0; font: 12px ui-monospace, Menlo, Consolas, monospace; color: #52606d; }
button.toggle { margin-top: 6px; border: 1px solid #9aa5b1; background: #fff; border-radius: 6px; padding: 2px 10px; cursor: pointer; font-size: 12px; }
figure.diagram g.active > rect { fill: #fef3c7; stroke: #d97706; stroke-width: 3; }
figure.diagram g.active.leaf > rect { fill: #fcd34d; stroke: #b45309; stroke-width: 5; }
[data-up="false"] figure.diagram { opacity: .35; }
ol.events { list-style: none; padding: 0; margin: 8px 0 0; font: 12px ui-monospace, Menlo, Consolas, monospace; color: #52606d; max-height: 9em; overflow: auto; }
ol.events li { white-space: pre; overflow: hidden; text-overflow: ellipsis; }
`;

/** The page's HTML and the Content-Security-Policy that lets exactly its script run. */
export interface LivePage {
  /** The whole document. */
  readonly html: string;
  /** A policy allowing only the inline script (by hash), inline styles and requests to the same origin. */
  readonly csp: string;
}

/**
 * Builds the page around the role machine's diagrams (SVGs from `toSvg`, whose boxes carry
 * `data-state`): `states`, shown on every node's card, and `full`, with every transition, shown
 * on request.
 *
 * @example
 * ```ts
 * import { describeMachine, nodeMachine, toSvg } from 'raftchart'
 * const info = describeMachine(nodeMachine)
 * const { html, csp } = livePage({ states: toSvg(info, { legend: false, details: false }), full: toSvg(info) })
 * ```
 */
export function livePage(svg: { readonly states: string; readonly full: string }): LivePage {
  const script = `(${client.toString()})();\n`;
  const hash = createHash('sha256').update(script, 'utf8').digest('base64');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftchart live cluster view</title>
<style>${STYLE}</style>
</head>
<body>
<div class="top">
<h1>raftchart · live cluster view</h1>
<span id="summary" data-leaders="">waiting for the cluster…</span>
<span id="connection">connecting…</span>
</div>
<main id="nodes"></main>
<template id="diagram-states">${svg.states.trim()}</template>
<template id="diagram-full">${svg.full.trim()}</template>
<script type="module">${script}</script>
</body>
</html>
`;
  const csp = [
    "default-src 'none'",
    `script-src 'sha256-${hash}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}
