/**
 * Configuration of one kv node, from command-line flags, `RAFTCHART_*`
 * environment variables and a JSON cluster file, with a DNS join mode for
 * Kubernetes StatefulSets.
 *
 * Precedence: **flags > environment > file > defaults**. Every flag `--foo-bar`
 * has the environment variable `RAFTCHART_FOO_BAR` and the file key `fooBar`.
 *
 * | flag | meaning |
 * | --- | --- |
 * | `--id ID` | this node's id (unique for all time). DNS mode: defaults to the host name's first label |
 * | `--raft HOST:PORT` | where Raft listens. Default: this node's address in the peer list (`0.0.0.0:<raft-port>` in DNS mode) |
 * | `--http HOST:PORT` | where the HTTP API listens. Default: this node's HTTP address in the peer list |
 * | `--data DIR` | Level data directory. Default `data/<id>` |
 * | `--peers LIST` | `id=RAFT[/HTTP],…`, e.g. `n1=10.0.0.1:7001/10.0.0.1:8001`. A peer without `/HTTP` serves HTTP on its Raft host at Raft port + 1000 |
 * | `--http-peers LIST` | `id=HOST:PORT,…`: HTTP addresses, overriding those in `--peers` |
 * | `--config FILE` | JSON: a list of `{ "id", "raft", "http" }` (static join) or an object of settings with a `peers` list |
 * | `--dns PATTERN` | DNS join: peer names from a pattern such as `kv-{0..2}.kv.default.svc`; ids are the first labels |
 * | `--raft-port N`, `--http-port N` | ports of the peers found by `--dns` (default 7000, 8000) |
 * | `--dns-timeout-ms N` | how long to wait for every name to resolve at start (default 60000) |
 * | `--secret S` | cluster secret, ≥ 16 bytes (or `RAFTCHART_SECRET`); required unless `--insecure` |
 * | `--insecure` | run without a secret (loopback experiments only) |
 * | `--cluster-id NAME` | peers of another cluster are refused (default `raftchart-kv`) |
 * | `--bootstrap auto\|never` | `auto` (default): a node with fresh data writes the initial configuration (the full peer list; every initial member does the same). `never`: wait to be added |
 * | `--max-value-bytes N` | largest value or request body (default 1048576); larger → 413 |
 * | `--request-timeout-ms N` | bound on one request, forwarding and retries included (default 10000) |
 *
 * @module
 */
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigurationError } from '../../index.js';

/** One member of the cluster as the kv service sees it. */
export interface KvPeer {
  /** Raft id. */
  readonly id: string;
  /** Raft address other nodes dial: `host:port`, `ws://host:port` or `wss://host:port`. */
  readonly raft: string;
  /** HTTP address (`host:port`) requests are forwarded to when this peer leads. */
  readonly http: string;
}

/** A fully resolved kv node configuration. */
export interface KvConfig {
  /** This node's Raft id. */
  readonly id: string;
  /** Raft listen address, `host:port`. */
  readonly raftListen: string;
  /** HTTP listen address, `host:port`. */
  readonly httpListen: string;
  /** Level data directory. */
  readonly data: string;
  /** Every initial member, this node included. */
  readonly peers: readonly KvPeer[];
  /** Cluster secret of the WebSocket transport, or `null` with `insecure`. */
  readonly secret: string | null;
  /** Run the transport without authentication. */
  readonly insecure: boolean;
  /** Peers of another cluster id are refused. */
  readonly clusterId: string;
  /** Whether a node with fresh data writes the initial configuration. */
  readonly bootstrap: 'auto' | 'never';
  /** Largest value / request body; larger is 413. */
  readonly maxValueBytes: number;
  /** Bound on one request, forwarding and retries included. */
  readonly requestTimeoutMs: number;
  /** Where to serve the live view of this node (`host:port`, loopback), or `null` (the default: off). */
  readonly live: string | null;
  /** DNS mode: the addresses each name resolved to at start (diagnostics only; peers are dialed by name). */
  readonly resolved: Readonly<Record<string, readonly string[]>>;
}

/** Resolves a host name to its addresses (`[]` or a rejection when it does not resolve). */
export type HostResolver = (host: string) => Promise<readonly string[]>;

/** Where {@link loadKvConfig} reads the outside world; every field is injectable for tests. */
export interface KvConfigSources {
  /** Environment variables. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads the `--config` file. Default: `fs.readFile` as UTF-8. */
  readonly readFile?: (path: string) => Promise<string>;
  /** DNS lookups of the DNS join mode. Default: `dns.lookup(host, { all: true })`. */
  readonly resolve?: HostResolver;
  /** This machine's host name (default id in DNS mode). Default `os.hostname()`. */
  readonly hostname?: string;
  /** Clock of the DNS retry loop. Defaults: `Date.now` and a real `setTimeout`. */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

type FlagKind = 'string' | 'int' | 'bool';

/** Every kv flag, its kind and a one-line help. */
export const KV_FLAGS: Readonly<Record<string, { readonly kind: FlagKind; readonly arg: string; readonly help: string }>> = {
  id: { kind: 'string', arg: 'ID', help: "this node's id (unique for all time)" },
  raft: { kind: 'string', arg: 'HOST:PORT', help: 'Raft listen address (default: own entry in --peers)' },
  http: { kind: 'string', arg: 'HOST:PORT', help: 'HTTP listen address (default: own entry in --peers)' },
  data: { kind: 'string', arg: 'DIR', help: 'Level data directory (default data/<id>)' },
  peers: { kind: 'string', arg: 'LIST', help: 'id=RAFT[/HTTP],... (HTTP defaults to Raft port + 1000)' },
  'http-peers': { kind: 'string', arg: 'LIST', help: 'id=HOST:PORT,... HTTP addresses of the peers' },
  config: { kind: 'string', arg: 'FILE', help: 'JSON cluster file: [{"id","raft","http"},...] or {settings, "peers":[...]}' },
  dns: { kind: 'string', arg: 'PATTERN', help: 'DNS join, e.g. kv-{0..2}.kv.default.svc (ids = first labels)' },
  'raft-port': { kind: 'int', arg: 'N', help: 'Raft port of DNS peers (default 7000)' },
  'http-port': { kind: 'int', arg: 'N', help: 'HTTP port of DNS peers (default 8000)' },
  'dns-timeout-ms': { kind: 'int', arg: 'N', help: 'wait this long for every DNS name to resolve (default 60000)' },
  secret: { kind: 'string', arg: 'S', help: 'cluster secret, at least 16 bytes (prefer RAFTCHART_SECRET)' },
  insecure: { kind: 'bool', arg: '', help: 'no secret: unauthenticated peers (loopback experiments only)' },
  'cluster-id': { kind: 'string', arg: 'NAME', help: 'cluster name; peers of another are refused (default raftchart-kv)' },
  bootstrap: { kind: 'string', arg: 'auto|never', help: 'auto: fresh data writes the initial peer list (default)' },
  'max-value-bytes': { kind: 'int', arg: 'N', help: 'largest value / request body in bytes (default 1048576)' },
  'request-timeout-ms': { kind: 'int', arg: 'N', help: 'bound on one request incl. forwarding (default 10000)' },
  live: { kind: 'string', arg: 'HOST:PORT', help: 'serve the live view of this node there (loopback only; off by default)' },
};

type Settings = Partial<Record<string, string | number | boolean | readonly KvPeer[]>>;

const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const envName = (flag: string): string => `RAFTCHART_${flag.toUpperCase().replace(/-/g, '_')}`;

function parseInt10(option: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigurationError(option, `must be an integer in [${min}, ${max}], got ${JSON.stringify(text)}`);
  return n;
}

function parseBool(option: string, text: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on', ''].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  throw new ConfigurationError(option, `must be true or false, got ${JSON.stringify(text)}`);
}

/**
 * Parses `--flag value` / `--flag=value` arguments of `raftchart kv`.
 *
 * @throws `ConfigurationError` for an unknown flag, a missing value or a bad number.
 */
export function parseKvFlags(argv: readonly string[]): Settings {
  const out: Settings = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new ConfigurationError(arg, 'unexpected argument (flags are --name value)');
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = KV_FLAGS[name];
    if (spec === undefined) throw new ConfigurationError(`--${name}`, 'unknown flag (see raftchart kv --help)');
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigurationError(`--${name}`, `needs a value (${spec.arg})`);
      value = next;
      i++;
    }
    out[camel(name)] = spec.kind === 'int' ? parseInt10(`--${name}`, value, 0, Number.MAX_SAFE_INTEGER) : spec.kind === 'bool' ? parseBool(`--${name}`, value) : value;
  }
  return out;
}

/** Reads the `RAFTCHART_*` variables that name kv flags; other variables are ignored. */
export function parseKvEnv(env: Readonly<Record<string, string | undefined>>): Settings {
  const out: Settings = {};
  for (const [flag, spec] of Object.entries(KV_FLAGS)) {
    const name = envName(flag);
    const value = env[name];
    if (value === undefined || flag === 'config') continue;
    out[camel(flag)] = spec.kind === 'int' ? parseInt10(name, value, 0, Number.MAX_SAFE_INTEGER) : spec.kind === 'bool' ? parseBool(name, value) : value;
  }
  return out;
}

/**
 * Parses the JSON of a `--config` file: a list of peers `{ "id", "raft", "http"? }` (the static
 * join), or an object whose keys are the camel-cased flags (`id`, `raft`, `httpPeers`, …) with
 * `peers` as such a list.
 *
 * @throws `ConfigurationError` naming the file and the field at fault.
 */
export function parseKvFile(text: string, file = 'config file'): Settings {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigurationError(file, `is not valid JSON (${(error as Error).message})`);
  }
  const out: Settings = {};
  if (Array.isArray(json)) {
    out['peers'] = peersFromJson(json, `${file}`);
    return out;
  }
  if (typeof json !== 'object' || json === null) throw new ConfigurationError(file, 'must hold a JSON list of peers or an object');
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    const flag = Object.keys(KV_FLAGS).find((f) => camel(f) === key);
    if (flag === undefined || flag === 'config') throw new ConfigurationError(`${file}: ${key}`, 'unknown setting');
    const spec = KV_FLAGS[flag] as { kind: FlagKind };
    if (key === 'peers' && Array.isArray(value)) out[key] = peersFromJson(value, `${file}: peers`);
    else if (spec.kind === 'int' && typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) out[key] = value;
    else if (spec.kind === 'bool' && typeof value === 'boolean') out[key] = value;
    else if (spec.kind === 'string' && typeof value === 'string') out[key] = value;
    else throw new ConfigurationError(`${file}: ${key}`, `must be ${spec.kind === 'int' ? 'a non-negative integer' : spec.kind === 'bool' ? 'true or false' : key === 'peers' ? 'a list or a string' : 'a string'}`);
  }
  return out;
}

function peersFromJson(list: readonly unknown[], where: string): KvPeer[] {
  return list.map((item, i) => {
    const p = item as Record<string, unknown> | null;
    if (typeof p !== 'object' || p === null || typeof p['id'] !== 'string' || typeof p['raft'] !== 'string' || (p['http'] !== undefined && typeof p['http'] !== 'string')) {
      throw new ConfigurationError(`${where}[${i}]`, 'must be {"id": string, "raft": "host:port", "http"?: "host:port"}');
    }
    const raft = checkAddress(`${where}[${i}].raft`, p['raft'], true);
    return { id: p['id'], raft, http: p['http'] === undefined ? defaultHttp(raft) : checkAddress(`${where}[${i}].http`, p['http'] as string, false) };
  });
}

/** Splits `host:port` (IPv6 in brackets); `null` when it is not one. */
export function splitHostPort(address: string): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  if (m === null) return null;
  const port = Number(m[2]);
  return port <= 65535 ? { host: m[1] as string, port } : null;
}

function checkAddress(option: string, address: string, allowScheme: boolean): string {
  const bare = allowScheme ? address.replace(/^wss?:\/\//, '') : address;
  if (splitHostPort(bare) === null) throw new ConfigurationError(option, `must be host:port${allowScheme ? ' (or ws://host:port)' : ''}, got ${JSON.stringify(address)}`);
  return address;
}

function defaultHttp(raft: string): string {
  const hp = splitHostPort(raft.replace(/^wss?:\/\//, '')) as { host: string; port: number };
  return `${hp.host}:${hp.port + 1000}`;
}

/**
 * Parses `--peers`: `id=RAFT[/HTTP],…`.
 *
 * @throws `ConfigurationError` naming the bad item.
 */
export function parsePeerList(text: string, option = '--peers'): KvPeer[] {
  const peers = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((item) => {
    const m = /^([^=\s]+)=([^/\s]+(?:\/\/[^/\s]+)?)(?:\/([^/\s]+))?$/.exec(item);
    if (m === null) throw new ConfigurationError(option, `item ${JSON.stringify(item)} must be id=host:port or id=host:port/httphost:port`);
    const raft = checkAddress(`${option} ${m[1]}`, m[2] as string, true);
    return { id: m[1] as string, raft, http: m[3] === undefined ? defaultHttp(raft) : checkAddress(`${option} ${m[1]} http`, m[3], false) };
  });
  if (peers.length === 0) throw new ConfigurationError(option, 'is empty');
  return peers;
}

/**
 * Expands a DNS name pattern: `{a..b}` is a numeric range, `{x,y}` a choice; several groups
 * multiply; several patterns may be joined by commas outside braces.
 *
 * @throws `ConfigurationError` for an unclosed or nested brace, an empty or reversed range, or
 * more than 1000 names.
 *
 * @example
 * ```ts
 * expandDnsPattern('kv-{0..2}.kv.default.svc')
 * // ['kv-0.kv.default.svc', 'kv-1.kv.default.svc', 'kv-2.kv.default.svc']
 * ```
 */
export function expandDnsPattern(pattern: string, option = '--dns'): string[] {
  const tops: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '{') {
      if (depth > 0) throw new ConfigurationError(option, `nested braces are not supported in ${JSON.stringify(pattern)}`);
      depth++;
    } else if (c === '}') {
      if (depth === 0) throw new ConfigurationError(option, `unmatched } in ${JSON.stringify(pattern)}`);
      depth--;
    } else if (c === ',' && depth === 0) {
      tops.push(pattern.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new ConfigurationError(option, `unclosed { in ${JSON.stringify(pattern)}`);
  tops.push(pattern.slice(start));
  const names: string[] = [];
  for (const top of tops.map((s) => s.trim())) {
    if (top === '') throw new ConfigurationError(option, `empty name in ${JSON.stringify(pattern)}`);
    let partial = [''];
    for (const piece of top.split(/(\{[^}]*\})/)) {
      let choices: string[];
      if (piece.startsWith('{')) {
        const body = piece.slice(1, -1);
        const range = /^(\d+)\.\.(\d+)$/.exec(body);
        if (range !== null) {
          const lo = Number(range[1]);
          const hi = Number(range[2]);
          if (hi < lo) throw new ConfigurationError(option, `range {${body}} runs backwards`);
          if (hi - lo >= 1000) throw new ConfigurationError(option, `range {${body}} is too large (at most 1000 names)`);
          choices = Array.from({ length: hi - lo + 1 }, (_, k) => String(lo + k));
        } else {
          choices = body.split(',');
          if (body === '' || choices.some((c) => c === '')) throw new ConfigurationError(option, `empty choice in {${body}}`);
        }
      } else choices = [piece];
      partial = partial.flatMap((p) => choices.map((c) => p + c));
      if (partial.length > 1000) throw new ConfigurationError(option, `${JSON.stringify(pattern)} expands to more than 1000 names`);
    }
    names.push(...partial);
  }
  for (const name of names) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(name)) {
      throw new ConfigurationError(option, `${JSON.stringify(name)} is not a DNS name`);
    }
  }
  if (new Set(names).size !== names.length) throw new ConfigurationError(option, `${JSON.stringify(pattern)} names a host twice`);
  return names;
}

/**
 * Resolves every name, retrying the ones that do not resolve yet (a StatefulSet's pods appear one
 * by one) until all do or `timeoutMs` passes.
 *
 * @throws `ConfigurationError` naming the names still unresolved at the deadline.
 */
export async function resolveAll(
  names: readonly string[],
  timeoutMs: number,
  sources: Pick<KvConfigSources, 'resolve' | 'now' | 'sleep'> = {},
): Promise<Record<string, readonly string[]>> {
  const resolve = sources.resolve ?? defaultResolve;
  const now = sources.now ?? Date.now;
  const sleep = sources.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const end = now() + timeoutMs;
  const out: Record<string, readonly string[]> = {};
  let delay = 250;
  const errors = new Map<string, string>();
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const missing = names.filter((n) => out[n] === undefined);
    await Promise.all(missing.map(async (name) => {
      try {
        const addresses = await resolve(name);
        if (addresses.length > 0) out[name] = [...addresses];
        else errors.set(name, 'no addresses');
      } catch (error) {
        errors.set(name, (error as { code?: string }).code ?? (error as Error).message);
      }
    }));
    const left = names.filter((n) => out[n] === undefined);
    if (left.length === 0) return out;
    if (now() >= end) break;
    await sleep(Math.min(delay, Math.max(0, end - now())));
    delay = Math.min(delay * 2, 2000);
  }
  const left = names.filter((n) => out[n] === undefined);
  throw new ConfigurationError('--dns', `${left.map((n) => `${n} (${errors.get(n) ?? 'unresolved'})`).join(', ')} did not resolve within ${timeoutMs} ms`);
}

async function defaultResolve(host: string): Promise<readonly string[]> {
  const found = await lookup(host, { all: true });
  return found.map((a) => a.address);
}

function str(s: Settings, key: string): string | undefined {
  const v = s[key];
  return typeof v === 'string' ? v : undefined;
}

function num(s: Settings, key: string, fallback: number): number {
  const v = s[key];
  return typeof v === 'number' ? v : fallback;
}

/**
 * Builds a node's configuration from flags, environment and the `--config` file (precedence in
 * that order), resolving DNS names in DNS mode.
 *
 * @throws `ConfigurationError` (code `CONFIGURATION`) naming the flag, variable or file field at fault.
 *
 * @example
 * ```ts
 * const config = await loadKvConfig(['--id', 'n1', '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003'], { env: { RAFTCHART_SECRET: 'a-secret-of-16-bytes+' } })
 * config.httpListen // '127.0.0.1:8001'
 * ```
 */
export async function loadKvConfig(argv: readonly string[], sources: KvConfigSources = {}): Promise<KvConfig> {
  const env = sources.env ?? process.env;
  const flags = parseKvFlags(argv);
  const fromEnv = parseKvEnv(env);
  const file = str(flags, 'config') ?? env['RAFTCHART_CONFIG'];
  let fromFile: Settings = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await (sources.readFile ?? ((p: string) => readFile(p, 'utf8')))(file);
    } catch (error) {
      throw new ConfigurationError('--config', `cannot read ${file}: ${(error as Error).message}`);
    }
    fromFile = parseKvFile(text, file);
  }
  const s: Settings = { ...fromFile, ...fromEnv, ...flags };
  // --peers given as a string (flag/env) replaces the file's list.
  let peers: KvPeer[] = [];
  const rawPeers = s['peers'];
  if (typeof rawPeers === 'string') peers = parsePeerList(rawPeers, flags['peers'] !== undefined ? '--peers' : fromEnv['peers'] !== undefined ? 'RAFTCHART_PEERS' : `${file}: peers`);
  else if (Array.isArray(rawPeers)) peers = [...(rawPeers as readonly KvPeer[])];

  const dns = str(s, 'dns');
  const raftPort = num(s, 'raftPort', 7000);
  const httpPort = num(s, 'httpPort', 8000);
  let resolved: Record<string, readonly string[]> = {};
  let id = str(s, 'id');
  if (dns !== undefined) {
    if (peers.length > 0) throw new ConfigurationError('--dns', 'cannot be combined with --peers or a peer list in --config');
    for (const [name, port] of [['--raft-port', raftPort], ['--http-port', httpPort]] as const) {
      if (port < 1 || port > 65535) throw new ConfigurationError(name, `must be a port in [1, 65535], got ${port}`);
    }
    const names = expandDnsPattern(dns);
    peers = names.map((name) => ({ id: name.split('.')[0] as string, raft: `${name}:${raftPort}`, http: `${name}:${httpPort}` }));
    id ??= (sources.hostname ?? hostname()).split('.')[0];
    resolved = await resolveAll(names, num(s, 'dnsTimeoutMs', 60_000), sources);
  }
  if (id === undefined || id === '') throw new ConfigurationError('--id', 'is required (or RAFTCHART_ID, or "id" in the config file)');
  if (id.length > 256) throw new ConfigurationError('--id', 'must be at most 256 characters');

  const httpPeers = str(s, 'httpPeers');
  if (httpPeers !== undefined) {
    const overrides = new Map<string, string>();
    for (const item of httpPeers.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
      const m = /^([^=\s]+)=(\S+)$/.exec(item);
      if (m === null) throw new ConfigurationError('--http-peers', `item ${JSON.stringify(item)} must be id=host:port`);
      overrides.set(m[1] as string, checkAddress(`--http-peers ${m[1]}`, m[2] as string, false));
    }
    for (const peerId of overrides.keys()) {
      if (!peers.some((p) => p.id === peerId)) throw new ConfigurationError('--http-peers', `names ${peerId}, which is not a peer`);
    }
    peers = peers.map((p) => ({ ...p, http: overrides.get(p.id) ?? p.http }));
  }
  const ids = new Set<string>();
  for (const p of peers) {
    if (ids.has(p.id)) throw new ConfigurationError('--peers', `names ${p.id} twice`);
    ids.add(p.id);
  }

  let raftListen = str(s, 'raft');
  let httpListen = str(s, 'http');
  const self = peers.find((p) => p.id === id);
  if (dns !== undefined) {
    if (self === undefined) throw new ConfigurationError('--id', `${id} is not one of the DNS peers (${peers.map((p) => p.id).join(', ')})`);
    raftListen ??= `0.0.0.0:${raftPort}`;
    httpListen ??= `0.0.0.0:${httpPort}`;
  } else if (peers.length > 0) {
    if (self === undefined) throw new ConfigurationError('--id', `${id} is not in the peer list (${peers.map((p) => p.id).join(', ')})`);
    raftListen ??= self.raft.replace(/^wss?:\/\//, '');
    httpListen ??= self.http;
  } else {
    // A cluster of one: this node alone.
    if (raftListen === undefined) throw new ConfigurationError('--raft', 'is required without --peers, --config or --dns');
    checkAddress('--raft', raftListen, false);
    peers = [{ id, raft: raftListen, http: httpListen ?? defaultHttp(raftListen) }];
    httpListen ??= (peers[0] as KvPeer).http;
  }
  checkAddress('--raft', raftListen, false);
  checkAddress('--http', httpListen, false);

  const insecure = s['insecure'] === true;
  const secret = str(s, 'secret') ?? null;
  if (insecure && secret !== null) throw new ConfigurationError('--insecure', 'cannot be combined with a secret');
  if (!insecure && secret === null) throw new ConfigurationError('--secret', 'is required (or RAFTCHART_SECRET; --insecure for loopback experiments)');
  if (secret !== null && new TextEncoder().encode(secret).byteLength < 16) throw new ConfigurationError('--secret', 'must be at least 16 bytes');
  const bootstrap = str(s, 'bootstrap') ?? 'auto';
  if (bootstrap !== 'auto' && bootstrap !== 'never') throw new ConfigurationError('--bootstrap', `must be auto or never, got ${JSON.stringify(bootstrap)}`);
  const maxValueBytes = num(s, 'maxValueBytes', 1024 * 1024);
  if (maxValueBytes < 1 || maxValueBytes > 64 * 1024 * 1024) throw new ConfigurationError('--max-value-bytes', `must be in [1, 67108864], got ${maxValueBytes}`);
  const requestTimeoutMs = num(s, 'requestTimeoutMs', 10_000);
  if (requestTimeoutMs < 100) throw new ConfigurationError('--request-timeout-ms', `must be at least 100, got ${requestTimeoutMs}`);
  return {
    id,
    raftListen,
    httpListen,
    data: str(s, 'data') ?? join('data', id),
    peers,
    secret,
    insecure,
    clusterId: str(s, 'clusterId') ?? 'raftchart-kv',
    bootstrap,
    maxValueBytes,
    requestTimeoutMs,
    live: str(s, 'live') ?? null,
    resolved,
  };
}
