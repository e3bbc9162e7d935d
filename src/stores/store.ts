import type { Readable } from 'node:stream';

/** An inclusive byte range, as HTTP ranges are. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface PutResult {
  /** the URL recorded as the image location, e.g. file:///var/lib/imago/images/<id> */
  location: string;
  size: number;
}

export interface PutOptions {
  /** aborting rejects put() and removes whatever was written */
  signal?: AbortSignal;
  /** bytes expected, when known; lets object stores choose part sizes */
  expectedSize?: number;
}

export interface StoreInfo {
  id: string;
  type: string;
  description: string;
  readOnly: boolean;
  /** shown to admins by GET /v2/info/stores/detail */
  properties: Record<string, unknown>;
}

/**
 * A place image data lives. Drivers are small on purpose: every policy
 * (hashing, size caps, status changes) lives above them, so one conformance
 * suite (test/stores/conformance.ts) can hold every driver to the same rules.
 *
 * Rules every driver keeps:
 * - put() streams with backpressure and never holds the whole object in memory;
 *   the object becomes visible under its location only once complete and
 *   durable; on failure or abort nothing is left behind and `source` is
 *   destroyed; an abort rejects with the signal's reason. A put to an
 *   existing key replaces the object whole.
 * - get() reads only the requested range.
 * - delete() is idempotent.
 * - errors are the typed errors of ./errors.ts.
 */
export interface Store {
  readonly info: StoreInfo;
  put(key: string, source: Readable, opts?: PutOptions): Promise<PutResult>;
  get(location: string, range?: ByteRange): Promise<Readable>;
  delete(location: string): Promise<void>;
  exists(location: string): Promise<boolean>;
  /**
   * True when `location` names an object of this store by its form alone (no
   * I/O): the locations API uses it to find the store a client's URL belongs to.
   */
  owns?(location: string): boolean;
  /** the size of the complete object at `location`; ObjectNotFound when there is none */
  size?(location: string): Promise<number>;
  /** every complete object's location, for the consistency check */
  list(): AsyncIterable<string>;
  /** removes temporary objects left by writers that died (only those of `key` when given); returns how many */
  removeTemporary(key?: string): Promise<number>;
  /** true when this store can take over an object from `other` without copying bytes */
  canAdopt?(other: Store): boolean;
  /** moves an object of `other` (same medium) into this store as `key` */
  adopt?(other: Store, location: string, key: string): Promise<PutResult>;
  /** checks the backend at start: rejects with a plain Error when the store cannot work as configured, with StoreUnavailable when it is only unreachable now */
  open?(): Promise<void>;
  /** health: resolves when the store can serve reads (and writes, unless read-only); throws saying why not */
  probe?(): Promise<void>;
  close?(): Promise<void>;
}
