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
    const { id, address, suffrage } = s as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new ConfigurationError(`${what}[${i}].id`, 'must be a non-empty string');
    if (typeof address !== 'string') throw new ConfigurationError(`${what}[${i}].address`, 'must be a string');
    if (suffrage !== undefined && suffrage !== 'voter' && suffrage !== 'learner') {
      throw new ConfigurationError(`${what}[${i}].suffrage`, "must be 'voter' or 'learner'");
    }
    if (seen.has(id)) throw new ConfigurationError(`${what}[${i}].id`, `duplicate id ${id}`);
    seen.add(id);
    out.push({ id, address, suffrage: suffrage === 'learner' ? 'learner' : 'voter' });
  }
  if (!out.some((s) => s.suffrage === 'voter')) throw new ConfigurationError(what, 'needs at least one voter');
  return out;
}

/** Encodes a configuration as the payload of a `config` entry. */
export function encodeConfig(config: Configuration): Uint8Array {
  return encoder.encode(JSON.stringify({ servers: config.servers }));
}

/** Decodes a `config` entry payload; `null` if it is not a valid configuration. */
export function decodeConfig(data: Uint8Array): Configuration | null {
  try {
    const parsed: unknown = JSON.parse(decoder.decode(data));
    if (typeof parsed !== 'object' || parsed === null) return null;
    return { servers: validateServers((parsed as { servers?: unknown }).servers) };
  } catch {
    return null;
  }
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
