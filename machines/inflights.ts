/**
 * Flow control for one follower: a ring buffer of appends sent but not yet
 * acknowledged, bounded by count and by bytes.
 *
 * @module
 */

/**
 * Appends in flight to one follower.
 *
 * @remarks Invariant: `0 <= count <= capacity`; the recorded last indexes
 * increase from oldest to newest; `bytes` is the sum of the recorded sizes.
 * The window is full when `count === capacity` or `bytes >= maxBytes`
 * (a single oversized message is still let through when the window is empty).
 *
 * This is not part of the Raft paper's protocol, which leaves flow control
 * open; it bounds pipelining (thesis §10.2.2, batching and pipelining) so a slow follower cannot make the leader buffer
 * without limit. The replica machine frees the window on each acknowledged
 * `matchIndex` and resets it when it falls back to probing.
 *
 * @example
 * ```ts
 * const w = new Inflights(256, 1 << 20)
 * w.add(10, 4096); w.add(20, 4096)
 * w.freeTo(10)  // acknowledges the first
 * w.count       // 1
 * ```
 */
export class Inflights {
  readonly #last: Float64Array;
  readonly #size: Float64Array;
  #start = 0;
  #count = 0;
  #bytes = 0;

  constructor(
    /** Maximum messages in flight. */
    readonly capacity: number,
    /** Maximum payload bytes in flight. */
    readonly maxBytes: number,
  ) {
    this.#last = new Float64Array(capacity);
    this.#size = new Float64Array(capacity);
  }

  /** Messages in flight. */
  get count(): number {
    return this.#count;
  }

  /** Payload bytes in flight. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether no more messages may be sent. */
  full(): boolean {
    return this.#count >= this.capacity || (this.#count > 0 && this.#bytes >= this.maxBytes);
  }

  /** Records a message whose last entry is `lastIndex`, carrying `bytes` payload bytes. Ignored when full. */
  add(lastIndex: number, bytes: number): void {
    if (this.full()) return;
    const slot = (this.#start + this.#count) % this.capacity;
    this.#last[slot] = lastIndex;
    this.#size[slot] = bytes;
    this.#count++;
    this.#bytes += bytes;
  }

  /** Frees every message whose last index is `<= index` (they were acknowledged). */
  freeTo(index: number): void {
    while (this.#count > 0 && (this.#last[this.#start] ?? Infinity) <= index) {
      this.#bytes -= this.#size[this.#start] ?? 0;
      this.#start = (this.#start + 1) % this.capacity;
      this.#count--;
    }
    if (this.#count === 0) this.#bytes = 0;
  }

  /** Forgets everything in flight (on entering probe or snapshot). */
  reset(): void {
    this.#start = 0;
    this.#count = 0;
    this.#bytes = 0;
  }
}
