/**
 * The shared-secret proofs of the network adapters: the
 * {@link WebSocketTransport} handshake and the {@link InspectionServer}
 * handshake both authenticate with HMAC-SHA256 over a JSON array of strings
 * (a protocol label, the role, the nonces of both sides, ...), compared in
 * constant time.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ConfigurationError } from '../errors.js';

/** Smallest accepted secret, in bytes. */
export const MIN_SECRET_BYTES = 16;

/**
 * Validates a `secret` / `insecure` option pair and returns the key: the
 * secret's bytes, or an empty key when `insecure` is `true`.
 *
 * @throws A {@link ConfigurationError} naming the option: neither or both
 *   given, a secret that is not a string or bytes, or shorter than 16 bytes.
 */
export function secretKey(secret: unknown, insecure: unknown = false): Buffer {
  if (typeof insecure !== 'boolean') throw new ConfigurationError('insecure', 'must be a boolean');
  if (insecure) {
    if (secret !== undefined) throw new ConfigurationError('insecure', 'cannot be combined with secret; drop one of them');
    return Buffer.alloc(0);
  }
  if (secret === undefined) {
    throw new ConfigurationError(
      'secret',
      `required: a shared secret (string or bytes, at least ${MIN_SECRET_BYTES} bytes), or insecure: true to run unauthenticated`,
    );
  }
  if (typeof secret !== 'string' && !(secret instanceof Uint8Array)) throw new ConfigurationError('secret', 'must be a string or a Uint8Array');
  const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (key.length < MIN_SECRET_BYTES) throw new ConfigurationError('secret', `must be at least ${MIN_SECRET_BYTES} bytes, got ${key.length}`);
  return key;
}

/** HMAC-SHA256 of the UTF-8 JSON text of `parts` under `key`. */
export function proof(key: Buffer, parts: readonly string[]): Buffer {
  return createHmac('sha256', key).update(JSON.stringify(parts)).digest();
}

/** Whether `claimed` (base64, as sent; anything else fails) is the proof of `parts` under `key`, in constant time. */
export function proofMatches(key: Buffer, parts: readonly string[], claimed: unknown): boolean {
  const given = typeof claimed === 'string' ? Buffer.from(claimed, 'base64') : Buffer.alloc(0);
  const expected = proof(key, parts);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
