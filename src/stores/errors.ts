import { ImagoError, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable } from '../domain/errors.js';

export class StoreFull extends PayloadTooLarge {
  constructor(storeId: string, details = '') {
    super(`Image storage media is full: store "${storeId}" has no space left for this image.`, details);
  }
}

export class StoreUnavailable extends ServiceUnavailable {
  constructor(storeId: string, details = '') {
    super(`Store "${storeId}" is unavailable or refuses writes; try again later.`, details);
  }
}

export class StoreReadOnly extends ServiceUnavailable {
  constructor(storeId: string) {
    super(`Store "${storeId}" is read-only and does not accept image data.`);
  }
}

export class ObjectNotFound extends NotFound {
  constructor(location: string) {
    super('Image data was not found in its store.', location);
  }
}

/** A key that is not a plain object name: a bug in the caller, never the client's doing. */
export class InvalidObjectKey extends InternalError {
  constructor(key: string) {
    super(undefined, `invalid object key ${JSON.stringify(key)}`);
  }
}

/** Maps an operating-system error from a filesystem driver to a typed store error. */
export function fsError(storeId: string, err: unknown): ImagoError {
  if (err instanceof ImagoError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const detail = (err as Error)?.message ?? String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return new StoreFull(storeId, detail);
  if (code === 'ENOENT') return new ObjectNotFound(detail);
  return new StoreUnavailable(storeId, detail);
}
