/**
 * What the network adapters ({@link WebSocketTransport}, {@link InspectionServer})
 * share: option checks, each failure a {@link ConfigurationError} naming the
 * option, and binding a server.
 *
 * @module
 */
import type { Server } from 'node:net';
import { ConfigurationError } from '../errors.js';

/**
 * Binds `server` to `host:port`; resolves once it listens.
 *
 * @throws Rejects with the listen error (a busy port, a bad address); the server is closed.
 */
export async function listen(server: Server, host: string, port: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    server.close();
    throw err;
  }
}

function fail(option: string, why: string): never {
  throw new ConfigurationError(option, why);
}

/** Refuses keys of `value` not in `known`, naming the first one as `option.key`. */
export function checkKeys(option: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(option === '' ? key : `${option}.${key}`, `unknown option; known options are ${known.join(', ')}`);
  }
}

/** An integer of at least `min`. */
export function checkInt(option: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    fail(option, `must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Splits `'host:port'` / `'[v6]:port'`. */
export function parseListen(listen: unknown): { host: string; port: number } {
  if (typeof listen !== 'string') fail('listen', `must be a 'host:port' string, got ${typeof listen}`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (m === null || host === undefined || !(port >= 0 && port <= 65535)) {
    fail('listen', `must be 'host:port' (IPv6 as '[::1]:port') with a port in 0..65535, got '${listen}'`);
  }
  return { host, port };
}
