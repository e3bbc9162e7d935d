/**
 * The one error hierarchy. Every failure the API can report is an ImagoError
 * carrying its HTTP status; src/server/error-mapper.ts turns it into the
 * spec's body `{"error":{"code","message","details"}}` in exactly one place.
 */
export class ImagoError extends Error {
  readonly status: number;
  readonly details: string;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, details = '', headers: Record<string, string> = {}) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.details = details;
    this.headers = headers;
  }
}

export class BadRequest extends ImagoError {
  constructor(message: string, details = '') { super(400, message, details); }
}

export class Unauthorized extends ImagoError {
  constructor(message = 'The request you have made requires authentication.', headers: Record<string, string> = {}) {
    super(401, message, '', headers);
  }
}

export class Forbidden extends ImagoError {
  constructor(message: string, details = '') { super(403, message, details); }
}

export class NotFound extends ImagoError {
  constructor(message: string, details = '') { super(404, message, details); }
}

export class MethodNotAllowed extends ImagoError {
  constructor(method: string, allow: string[]) {
    super(405, `The method ${method} is not allowed for this resource.`, '', { allow: allow.join(', ') });
  }
}

export class Conflict extends ImagoError {
  constructor(message: string, details = '') { super(409, message, details); }
}

export class Gone extends ImagoError {
  constructor(message: string, details = '') { super(410, message, details); }
}

export class PayloadTooLarge extends ImagoError {
  constructor(message: string, details = '') { super(413, message, details); }
}

export class UnsupportedMediaType extends ImagoError {
  constructor(message: string, details = '') { super(415, message, details); }
}

export class RangeNotSatisfiable extends ImagoError {
  constructor(message: string, size?: number) {
    super(416, message, '', size === undefined ? {} : { 'content-range': `bytes */${size}` });
  }
}

export class TooManyRequests extends ImagoError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, message, '', { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) });
  }
}

export class ServiceUnavailable extends ImagoError {
  constructor(message: string, details = '') { super(503, message, details); }
}

export class InternalError extends ImagoError {
  constructor(message = 'The server could not complete the request because of an internal error.', details = '') {
    super(500, message, details);
  }
}

// Errors that several operations raise, worded once.

/** The image does not exist, or the caller may not see it (the same answer, so as not to reveal it). */
export function imageNotFound(id: string): NotFound {
  return new NotFound(`No image found with ID ${id}`);
}

/** A status change the image's state machine (domain/status.ts) does not allow, or a claim lost to another writer. */
export function statusTransition(from: string, to: string): Conflict {
  return new Conflict(`Image status transition from ${from} to ${to} is not allowed`);
}
