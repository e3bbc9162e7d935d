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
 * Partial objects, for resumable uploads (docs/api.md#resumable-uploads):
 * bytes appended across requests under a key of their own, outside what
 * list() and removeTemporary() see (a live upload row owns them, not a
 * process); one becomes an object only through completePartial().
 */
export interface PartialObjects {
  /**
   * Writes `source` at `offset` of the partial object `key` (created when
   * `offset` is 0). Whatever lies past `offset` is cut off first: bytes a
   * killed process wrote after the last recorded offset. Resolves once the
   * bytes are durable, with the partial object's size; on failure the
   * partial object is cut back to `offset` (an append lands whole or not at
   * all), and ObjectNotFound when there is no partial object to append to.
   */
  appendPartial(key: string, offset: number, source: Readable, opts?: PutOptions): Promise<number>;
  /** the first `end` bytes of the partial object `key` (a resume's hash states are computed from them) */
  readPartial(key: string, end: number): Promise<Readable>;
  /** makes the partial object `key` the complete object `finalKey` (durable, as put) */
  completePartial(key: string, finalKey: string): Promise<PutResult>;
  /** removes the partial object `key` (idempotent) */
  removePartial(key: string): Promise<void>;
}

/**
 * A driver: one backend (a directory, an S3 bucket, memory). Drivers are small
 * on purpose: every policy (hashing, size caps, status changes) lives above
 * them, and the rules every store keeps whatever its backend (read-only, key
 * validation, error typing) are enforced once by the wrapper every driver sits
 * behind (GuardedStore, ./guarded-store.ts); one conformance suite
 * (test/stores/conformance.ts) holds every driver, through the wrapper, to the
 * same rules.
 *
 * Rules every driver keeps:
 * - put() streams with backpressure and never holds the whole object in memory
 *   (the memory driver, a test aid, excepted);
 *   the object becomes visible under its location only once complete and
 *   durable; on failure or abort nothing is left behind and `source` is
 *   destroyed; an abort rejects with the signal's reason. A put to an
 *   existing key replaces the object whole.
 * - get() reads only the requested range.
 * - delete() is idempotent.
 * - errors are the typed errors of ./errors.ts where the driver knows what
 *   went wrong; anything else the wrapper types as StoreUnavailable.
 * A driver may assume the wrapper's checks ran: the key is plain, the store
 * is writable, `other` in adopt() is a driver whose medium() equals its own.
 */
export interface StoreDriver {
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
  /**
   * Adoption, the capability of taking over another store's object without
   * copying bytes through Imago: `medium()` names what the driver can adopt
   * from (two drivers with the same medium can), `adopt()` moves the object.
   */
  medium?(): string | undefined;
  /** moves an object of `other` (same medium) into this store as `key` */
  adopt?(other: StoreDriver, location: string, key: string): Promise<PutResult>;
  /** resumable uploads: the driver keeps partial objects (filesystem); absent when it cannot */
  readonly partial?: PartialObjects;
  /** checks the backend at start: rejects with a plain Error when the store cannot work as configured, with StoreUnavailable when it is only unreachable now */
  open?(): Promise<void>;
  /** health: resolves when the store can serve reads (and writes, unless read-only); throws saying why not */
  probe?(): Promise<void>;
  close?(): Promise<void>;
}

/**
 * A store as the rest of Imago sees it: a driver behind the wrapper
 * (./guarded-store.ts). Errors are the StoreErrors of ./errors.ts (or the
 * error the caller's source or abort signal carried), never untyped.
 */
export interface Store {
  readonly info: StoreInfo;
  /** the driver behind the wrapper, for its own specifics (tests, metrics) */
  readonly driver: StoreDriver;
  /** throws StoreReadOnly unless the store takes writes: for refusing a write before any byte is read */
  assertWritable(): void;
  put(key: string, source: Readable, opts?: PutOptions): Promise<PutResult>;
  get(location: string, range?: ByteRange): Promise<Readable>;
  delete(location: string): Promise<void>;
  exists(location: string): Promise<boolean>;
  /** true when `location` names an object of this store by its form alone (no I/O); false when the driver cannot tell */
  owns(location: string): boolean;
  /** the size of the complete object at `location` (ObjectNotFound when there is none); absent when the driver cannot tell */
  readonly size?: (location: string) => Promise<number>;
  list(): AsyncIterable<string>;
  removeTemporary(key?: string): Promise<number>;
  /** partial objects for resumable uploads, when the driver keeps them (read-only, keys and error typing as put) */
  readonly partial?: PartialObjects;
  /** true when this store can take over an object of `other` without copying bytes */
  canAdopt(other: Store): boolean;
  /** moves an object of `other` into this store as `key`; only when canAdopt(other) */
  adopt(other: Store, location: string, key: string): Promise<PutResult>;
  open(): Promise<void>;
  /** health: resolves when the store can serve reads (and writes, unless read-only); throws saying why not */
  probe?(): Promise<void>;
  close(): Promise<void>;
}
