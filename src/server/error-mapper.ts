import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BadRequest, ImagoError, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized } from '../domain/errors.js';
import { StoreError } from '../stores/errors.js';
import { databaseUnavailable } from './database-errors.js';

/** The JSON error body of our spec. */
export function errorBody(status: number, message: string, details = ''): string {
  return JSON.stringify({ error: { code: status, message, details } });
}

/** The raw answer to a request Node cannot even parse (headers too large, not HTTP), in the spec's shape. */
export function clientErrorResponse(code: string | undefined): string {
  const [status, message] =
    code === 'HPE_HEADER_OVERFLOW' ? [431, 'The request line or headers are too large (the limit is 16 KiB); shorten the URL or the headers.']
    : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'The request took too long to arrive.']
    : [400, 'The request is not valid HTTP/1.1.'];
  const body = errorBody(status, message);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `x-openstack-request-id: req-${randomUUID()}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * The one place a failure becomes an HTTP response. Typed errors carry their
 * status; the framework's own client errors (bad JSON, body too large...) keep
 * theirs; anything else is a bug, logged with the request id, and answered
 * 500 without internals.
 */
export function toImagoError(err: unknown): ImagoError {
  if (err instanceof ImagoError) return err;
  if (err instanceof StoreError) return fromStoreError(err);
  const fe = err as FastifyError;
  const status = fe?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ImagoError(status, clientMessage(fe), fe.code ?? '');
  }
  return databaseUnavailable(err) ?? new InternalError();
}

/**
 * Store errors carry no HTTP status (src/stores/errors.ts); this is where
 * they get one. The message and details are the store error's own.
 *
 * | kind          | status | when                                                        |
 * | ------------- | ------ | ----------------------------------------------------------- |
 * | full          | 413    | the backend has no room for the image                       |
 * | unavailable   | 503    | the backend is unreachable or refuses (any untyped failure) |
 * | read-only     | 503    | a write to a store configured read-only                     |
 * | not-found     | 404    | a location whose object is not there                        |
 * | unknown-store | 400    | a store id no store has (the import route makes it 409)     |
 * | invalid-key   | 500    | a key that is not a plain name: a bug, never the client's   |
 */
export function fromStoreError(err: StoreError): ImagoError {
  switch (err.kind) {
    case 'full': return new PayloadTooLarge(err.message, err.details);
    case 'unavailable':
    case 'read-only': return new ServiceUnavailable(err.message, err.details);
    case 'not-found': return new NotFound(err.message, err.details);
    case 'unknown-store': return new BadRequest(err.message, err.details);
    case 'invalid-key': return new InternalError(err.message, err.details);
  }
}

function clientMessage(fe: FastifyError): string {
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return `The request body is not valid JSON: ${fe.message}`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'The request body is too large.';
    case 'FST_ERR_BAD_URL':
      return `The URL is not valid: ${fe.message}`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `The request media type is not supported by this server.`;
    default:
      return fe.message || 'The request could not be understood.';
  }
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown, wwwAuthenticate?: string): FastifyReply {
  const e = toImagoError(err);
  if (e.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ status: e.status, reason: e.message }, 'request refused');
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return reply;
  }
  // Errors raised before the onRequest hook (the router's own) still carry the request id.
  if (!reply.hasHeader('x-openstack-request-id')) reply.header('x-openstack-request-id', request.id);
  for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
  if (e instanceof Unauthorized && wwwAuthenticate) reply.header('www-authenticate', wwwAuthenticate);
  return reply.code(e.status).type('application/json').send(errorBody(e.status, e.message, e.details));
}
