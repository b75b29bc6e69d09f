/**
 * Membership configurations: validation and their encoding in `config` log entries.
 *
 * @module
 */
import { ConfigurationError } from '../errors.js';
import type { Configuration, LogEntry, Server, ServerId } from '../machines/types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Checks a server list: non-empty, unique ids, string addresses, known suffrage, at least one voter.
 *
 * @throws {@link ConfigurationError} naming the offending server.
 */
export function validateServers(servers: unknown, what = 'servers'): Server[] {
  if (!Array.isArray(servers) || servers.length === 0) throw new ConfigurationError(what, 'must be a non-empty array of { id, address }');
  const seen = new Set<string>();
  const out: Server[] = [];
  for (const [i, s] of servers.entries()) {
    if (typeof s !== 'object' || s === null) throw new ConfigurationError(`${what}[${i}]`, 'must be an object { id, address }');
    const { id, address, suffrage, autoPromote } = s as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new ConfigurationError(`${what}[${i}].id`, 'must be a non-empty string');
    if (typeof address !== 'string') throw new ConfigurationError(`${what}[${i}].address`, 'must be a string');
    if (suffrage !== undefined && suffrage !== 'voter' && suffrage !== 'learner') {
      throw new ConfigurationError(`${what}[${i}].suffrage`, "must be 'voter' or 'learner'");
    }
    if (autoPromote !== undefined && typeof autoPromote !== 'boolean') throw new ConfigurationError(`${what}[${i}].autoPromote`, 'must be a boolean');
    if (seen.has(id)) throw new ConfigurationError(`${what}[${i}].id`, `duplicate id ${id}`);
    seen.add(id);
    out.push(suffrage === 'learner' && autoPromote === true ? { id, address, suffrage, autoPromote } : { id, address, suffrage: suffrage === 'learner' ? 'learner' : 'voter' });
  }
  if (!out.some((s) => s.suffrage === 'voter')) throw new ConfigurationError(what, 'needs at least one voter');
  return out;
}

/**
 * Encodes a configuration as the payload of a `config` entry: UTF-8 JSON
 * `{"servers":[...]}`, plus `"old":[...]` for a joint configuration.
 */
export function encodeConfig(config: Configuration): Uint8Array {
  return encoder.encode(JSON.stringify(config.old === undefined ? { servers: config.servers } : { servers: config.servers, old: config.old }));
}

/** Decodes a `config` entry payload; `null` if it is not a valid configuration. */
export function decodeConfig(data: Uint8Array): Configuration | null {
  try {
    const parsed: unknown = JSON.parse(decoder.decode(data));
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { servers, old } = parsed as { servers?: unknown; old?: unknown };
    const config = { servers: validateServers(servers) };
    return old === undefined ? config : { ...config, old: validateServers(old) };
  } catch {
    return null;
  }
}

/** Whether two configurations hold the same servers, roles, addresses and joint half (in the same order). */
export function sameConfig(a: Configuration | null, b: Configuration | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Every server of a configuration, those of the outgoing half of a joint one included, once each. */
export function serversOf(config: Configuration | null): Server[] {
  if (config === null) return [];
  const out = [...config.servers];
  for (const s of config.old ?? []) if (!out.some((x) => x.id === s.id)) out.push(s);
  return out;
}

/** Voter and learner ids of a configuration. */
export function rolesOf(config: Configuration | null): { voters: ServerId[]; learners: ServerId[] } {
  const voters: ServerId[] = [];
  const learners: ServerId[] = [];
  for (const s of config?.servers ?? []) (s.suffrage === 'learner' ? learners : voters).push(s.id);
  return { voters, learners };
}

/** The latest configuration entry at or below `upTo`, scanning back from there. */
export function latestConfig(entryAt: (index: number) => LogEntry | undefined, upTo: number, floor: number): { index: number; config: Configuration } | null {
  for (let i = upTo; i >= floor; i--) {
    const e = entryAt(i);
    if (e?.type !== 'config') continue;
    const config = decodeConfig(e.data);
    if (config !== null) return { index: i, config };
  }
  return null;
}
