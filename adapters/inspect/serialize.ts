/**
 * XState inspection events as plain JSON, for sending over a wire.
 *
 * An {@link InspectionEvent} holds live actor references, and a node's
 * snapshots hold maps, byte arrays and references to child actors; none of
 * that survives `JSON.stringify`. {@link toInspectionRecord} keeps what a
 * viewer needs — which actor, which event, which state, which context — and
 * turns the rest into small descriptions, bounded in depth and size.
 *
 * @module
 */
import type { InspectionEvent } from 'xstate';

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The inspection event kinds forwarded by default (`@xstate.microstep` carries internal transition objects and is left out). */
export const DEFAULT_INSPECTION_TYPES: readonly InspectionEvent['type'][] = [
  '@xstate.actor',
  '@xstate.event',
  '@xstate.snapshot',
  '@xstate.action',
];

/** One XState inspection event, as JSON. */
export interface InspectionRecord {
  /** Position in the publishing endpoint's stream, from 1; replayed state carries the sequence number it was current at. */
  readonly seq: number;
  /** The XState inspection event type. */
  readonly type: InspectionEvent['type'];
  /** Session id of the root actor (the node's role machine for a raftchart node). */
  readonly rootId: string;
  /** Session id of the actor the event is about. */
  readonly sessionId: string;
  /** The actor's id in its parent (`'replica:n2'`, ...), or its session id for a root. */
  readonly actorId: string;
  /** Session id of the sending actor, for `@xstate.event` from another actor. */
  readonly sourceId?: string;
  /** The event, for `@xstate.event`, `@xstate.snapshot`, `@xstate.transition`, `@xstate.microstep`. */
  readonly event?: JsonValue;
  /** The snapshot after the event: status, state value and context. */
  readonly snapshot?: { readonly status: string; readonly value?: JsonValue; readonly context?: JsonValue };
  /** The action, for `@xstate.action`. */
  readonly action?: { readonly type: string; readonly params: JsonValue };
  /** `true` on records replayed to a subscriber that connected late (the latest snapshot of each live actor). */
  readonly replayed?: true;
}

/** Bounds on what {@link toJsonValue} writes. */
export interface JsonLimits {
  /** Deepest nesting kept; deeper values become `'[…]'`. */
  readonly depth: number;
  /** Most elements kept of an array, map or set; the rest are counted in a trailing string. */
  readonly items: number;
  /** Longest string kept, in characters. */
  readonly chars: number;
}

/** Default {@link JsonLimits}: depth 8, 256 items, 1024 characters. */
export const DEFAULT_JSON_LIMITS: JsonLimits = { depth: 8, items: 256, chars: 1024 };

interface ActorLike {
  readonly sessionId?: unknown;
  readonly id?: unknown;
  readonly send?: unknown;
}

const isActorRef = (v: object): v is ActorLike => typeof (v as ActorLike).send === 'function' && typeof (v as ActorLike).sessionId === 'string';

/**
 * Any value as JSON: maps become objects (or `[key, value]` pairs when a key is
 * not a string), sets and iterables arrays, byte arrays `{ bytes: length }`,
 * actor references `{ actor: sessionId }`, functions and symbols are dropped,
 * non-finite numbers and bigints become strings, cycles `'[cycle]'`.
 *
 * @example
 * ```ts
 * toJsonValue(new Map([['a', new Uint8Array(3)]])) // { a: { bytes: 3 } }
 * toJsonValue({ n: Infinity, f: () => 1 })         // { n: 'Infinity' }
 * ```
 */
export function toJsonValue(value: unknown, limits: JsonLimits = DEFAULT_JSON_LIMITS): JsonValue {
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number): JsonValue | undefined => {
    switch (typeof v) {
      case 'string':
        return v.length > limits.chars ? `${v.slice(0, limits.chars)}…(${v.length} chars)` : v;
      case 'number':
        return Number.isFinite(v) ? v : String(v);
      case 'boolean':
        return v;
      case 'bigint':
        return v.toString();
      case 'undefined':
      case 'function':
      case 'symbol':
        return undefined;
    }
    if (v === null) return null;
    const obj = v as object;
    if (isActorRef(obj)) return { actor: obj.sessionId as string };
    if (ArrayBuffer.isView(obj)) return { bytes: obj.byteLength };
    if (obj instanceof Error) return { error: obj.name, message: obj.message };
    if (seen.has(obj)) return '[cycle]';
    if (depth >= limits.depth) return '[…]';
    seen.add(obj);
    try {
      if (obj instanceof Map) {
        const stringKeys = [...obj.keys()].every((k) => typeof k === 'string');
        const entries = [...obj.entries()];
        if (stringKeys) return object(entries as Array<[string, unknown]>, depth);
        return list(entries, depth);
      }
      if (Array.isArray(obj) || obj instanceof Set) return list([...obj], depth);
      return object(Object.entries(obj), depth);
    } finally {
      seen.delete(obj);
    }
  };
  const list = (items: unknown[], depth: number): JsonValue[] => {
    const out: JsonValue[] = [];
    for (const item of items.slice(0, limits.items)) out.push(walk(item, depth + 1) ?? null);
    if (items.length > limits.items) out.push(`…(${items.length - limits.items} more)`);
    return out;
  };
  const object = (entries: Array<[string, unknown]>, depth: number): { [key: string]: JsonValue } => {
    const out: { [key: string]: JsonValue } = {};
    let kept = 0;
    for (const [k, item] of entries) {
      if (kept === limits.items) {
        out['…'] = `${entries.length - kept} more keys`;
        break;
      }
      const j = walk(item, depth + 1);
      if (j !== undefined) {
        out[k] = j;
        kept++;
      }
    }
    return out;
  };
  return walk(value, 0) ?? null;
}

const actorOf = (ref: unknown): { sessionId: string; id: string } => {
  const r = (ref ?? {}) as ActorLike;
  const sessionId = typeof r.sessionId === 'string' ? r.sessionId : '?';
  return { sessionId, id: typeof r.id === 'string' ? r.id : sessionId };
};

/**
 * The JSON record of one inspection event (see {@link InspectionRecord}).
 *
 * @example
 * ```ts
 * let seq = 0
 * const node = createRaftNode({ ...options, inspect: (e) => console.log(JSON.stringify(toInspectionRecord(e, ++seq))) })
 * ```
 */
export function toInspectionRecord(event: InspectionEvent, seq: number, limits: JsonLimits = DEFAULT_JSON_LIMITS): InspectionRecord {
  const actor = actorOf(event.actorRef);
  const base = { seq, type: event.type, rootId: event.rootId, sessionId: actor.sessionId, actorId: actor.id };
  switch (event.type) {
    case '@xstate.actor':
      return base;
    case '@xstate.event':
      return {
        ...base,
        ...(event.sourceRef === undefined ? {} : { sourceId: actorOf(event.sourceRef).sessionId }),
        event: toJsonValue(event.event, limits),
      };
    case '@xstate.action':
      return { ...base, action: { type: String(event.action.type), params: toJsonValue(event.action.params, limits) } };
    default: {
      const snap = event.snapshot as { status?: unknown; value?: unknown; context?: unknown };
      return {
        ...base,
        event: toJsonValue(event.event, limits),
        snapshot: {
          status: typeof snap.status === 'string' ? snap.status : 'active',
          ...('value' in snap ? { value: toJsonValue(snap.value, limits) } : {}),
          ...('context' in snap ? { context: toJsonValue(snap.context, limits) } : {}),
        },
      };
    }
  }
}
