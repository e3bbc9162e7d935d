import { ImagoError } from '../domain/errors.js';

/**
 * Store errors: what went wrong with image data in a store, typed by `kind`,
 * with no HTTP status. The one error mapper (src/server/error-mapper.ts)
 * turns them into responses; a service that needs another meaning (a task
 * message, "the image's data is gone") translates them itself.
 */
export type StoreErrorKind = 'full' | 'unavailable' | 'read-only' | 'not-found' | 'invalid-key' | 'unknown-store';

export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    /** the store, or '' when the error is about a location no store holds */
    readonly storeId: string,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class StoreFull extends StoreError {
  constructor(storeId: string, details = '') {
    super('full', storeId, `Image storage media is full: store "${storeId}" has no space left for this image.`, details);
  }
}

export class StoreUnavailable extends StoreError {
  constructor(storeId: string, details = '') {
    super('unavailable', storeId, `Store "${storeId}" is unavailable or refuses writes; try again later.`, details);
  }
}

export class StoreReadOnly extends StoreError {
  constructor(storeId: string) {
    super('read-only', storeId, `Store "${storeId}" is read-only and does not accept image data.`);
  }
}

export class ObjectNotFound extends StoreError {
  constructor(location: string, storeId = '') {
    super('not-found', storeId, 'Image data was not found in its store.', location);
  }
}

/** A key that is not a plain object name: a bug in the caller, never the client's doing. */
export class InvalidObjectKey extends StoreError {
  constructor(key: string, storeId = '') {
    super('invalid-key', storeId, 'The server could not complete the request because of an internal error.', `invalid object key ${JSON.stringify(key)}`);
  }
}

/**
 * A store id no configured store has (X-Image-Meta-Store, an import's
 * target). Whose mistake that is depends on the request: the error mapper
 * answers 400, the import route 409 (as Glance does).
 */
export class UnknownStore extends StoreError {
  constructor(storeId: string) {
    super('unknown-store', storeId, `Store for identifier ${storeId} not found`);
  }
}

/** The one rule for object keys, whatever the driver: a plain name, not hidden. */
export function isPlainKey(key: string): boolean {
  return /^[A-Za-z0-9_.-]+$/.test(key) && !key.startsWith('.');
}

/**
 * Maps an operating-system error from a filesystem driver to a typed store
 * error. Errors that are already typed pass: a store error, or the error the
 * layer above put into the stream (a size cap, a quota, an abort reason).
 */
export function fsError(storeId: string, err: unknown): Error {
  if (passesThrough(err)) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const detail = (err as Error)?.message ?? String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return new StoreFull(storeId, detail);
  if (code === 'ENOENT') return new ObjectNotFound(detail, storeId);
  return new StoreUnavailable(storeId, detail);
}

/**
 * What travels through a store unchanged: a store error, or an error the layer
 * above typed and put into the stream (domain/errors.ts: the size cap, the
 * quota meter, a writer's abort reason). Everything else a driver meets is
 * typed by the driver, or at the latest by the wrapper (guarded-store.ts).
 */
export function passesThrough(err: unknown): err is Error {
  return err instanceof StoreError || err instanceof ImagoError;
}
