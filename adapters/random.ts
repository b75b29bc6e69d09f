/**
 * Injected randomness: election timeouts, jitter and the memory network's faults draw from a {@link Random}.
 *
 * @module
 */
import { ConfigurationError } from '../errors.js';

/** A source of uniformly distributed numbers. */
export interface Random {
  /** A number in `[0, 1)`. */
  next(): number;
}

/**
 * A reproducible {@link Random} with helpers, made by {@link seededRandom}.
 *
 * @remarks Same seed, same sequence, on every platform: the generator uses
 * only 32-bit integer arithmetic.
 */
export interface SeededRandom extends Random {
  /** A number in `[0, 1)` with 32 random bits. */
  next(): number;
  /** An unsigned 32-bit integer, uniform in `[0, 2^32)`. */
  nextUint32(): number;
  /**
   * An integer uniform in `[lo, hiExclusive)`.
   *
   * @remarks Uniform (to within 2^-32) for spans up to 2^32.
   * @throws A {@link ConfigurationError} unless both bounds are safe integers and `lo < hiExclusive`.
   */
  int(lo: number, hiExclusive: number): number;
  /** `true` with probability `p` (`p <= 0` never, `p >= 1` always). */
  chance(p: number): boolean;
  /**
   * A uniformly chosen element of `arr`.
   *
   * @throws A {@link ConfigurationError} when `arr` is empty.
   */
  pick<T>(arr: readonly T[]): T;
  /**
   * A new, independent generator seeded from this one's next outputs.
   *
   * @remarks Advances this generator by four draws. Forking in a fixed order
   * (say one fork per node) keeps each stream reproducible while letting the
   * streams evolve independently.
   */
  fork(): SeededRandom;
}

/**
 * The output function of splitmix32 (MurmurHash3's `fmix32` finalizer); the
 * caller advances the state by the golden-ratio increment before each call.
 */
function mix32(z: number): number {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const GOLDEN = 0x9e3779b9;
const TWO_POW_32 = 4294967296;

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, from PractRand), 128-bit state. */
class Sfc32 implements SeededRandom {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(a: number, b: number, c: number, d: number) {
    this.#a = a | 0;
    this.#b = b | 0;
    this.#c = c | 0;
    this.#d = d | 0;
    // Warm up, as PractRand's seeding does, so nearby seeds diverge.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const t = (((a + b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  int(lo: number, hiExclusive: number): number {
    if (!Number.isSafeInteger(lo)) throw new ConfigurationError('lo', `must be a safe integer, got ${lo}`);
    if (!Number.isSafeInteger(hiExclusive) || hiExclusive <= lo) {
      throw new ConfigurationError('hiExclusive', `must be a safe integer greater than lo (${lo}), got ${hiExclusive}`);
    }
    return lo + Math.floor(this.next() * (hiExclusive - lo));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(arr: readonly T[]): T {
    if (arr.length === 0) throw new ConfigurationError('arr', 'cannot pick from an empty array');
    return arr[Math.floor(this.next() * arr.length)] as T;
  }

  fork(): SeededRandom {
    return new Sfc32(this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32());
  }
}

/**
 * A fast, reproducible PRNG: sfc32 seeded through splitmix32.
 *
 * @param seed - Any finite number. Integers up to 2^53 give distinct
 *   streams (both 32-bit halves are mixed in); a fraction is ignored.
 * @remarks Not cryptographic. The simulator prints its seed on failure so a
 * run can be replayed exactly.
 * @throws A {@link ConfigurationError} when `seed` is not finite.
 *
 * @example
 * ```ts
 * const random = seededRandom(42);
 * const timeout = random.int(150, 300);
 * const victim = random.pick(['n1', 'n2', 'n3']);
 * const perNode = ['n1', 'n2', 'n3'].map(() => random.fork());
 * ```
 */
export function seededRandom(seed: number): SeededRandom {
  if (!Number.isFinite(seed)) throw new ConfigurationError('seed', `must be a finite number, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  let state = (lo ^ mix32(hi)) | 0;
  const words: number[] = [];
  for (let i = 0; i < 3; i++) {
    state = (state + GOLDEN) | 0;
    words.push(mix32(state));
  }
  return new Sfc32(words[0] ?? 0, words[1] ?? 0, words[2] ?? 0, 1);
}

/**
 * `Math.random` as a {@link Random}: for production timers, never for tests.
 *
 * @example
 * ```ts
 * const random: Random = process.env.SEED ? seededRandom(Number(process.env.SEED)) : systemRandom;
 * ```
 */
export const systemRandom: Random = {
  next: () => Math.random(),
};
