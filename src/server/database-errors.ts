import { ServiceUnavailable } from '../domain/errors.js';

/** SQLite result codes that mean "the database cannot be used right now", not "the request is wrong". */
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL)/;
/** PostgreSQL SQLSTATEs of the same kind: connection exceptions (08), insufficient resources (53), operator intervention (57). */
const PG_UNAVAILABLE = /^(08|53|57)/;
/** Socket-level failures of the PostgreSQL connection. */
const NET_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * A database that is locked beyond the busy timeout, restarting, unreachable
 * or full answers 503 with the reason (issue 14: faults), never a 500: the
 * request did not happen and may be retried. Undefined for anything else.
 */
export function databaseUnavailable(err: unknown): ServiceUnavailable | undefined {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return undefined;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  let reason: string | undefined;
  if (SQLITE_UNAVAILABLE.test(code)) reason = code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' ? 'the database is locked by another process beyond the busy timeout' : `the database cannot be written (${code})`;
  else if (/^[0-9A-Z]{5}$/.test(code) && PG_UNAVAILABLE.test(code)) reason = `the database refused the connection or the statement (SQLSTATE ${code})`;
  else if (NET_UNAVAILABLE.has(code)) reason = `the database cannot be reached (${code})`;
  else if (/Connection terminated|connection timeout|Client has encountered a connection error|Cannot use a pool after calling end/i.test(message)) reason = 'the connection to the database was lost';
  return reason ? new ServiceUnavailable(`The image service cannot reach its database right now; retry shortly (${reason}).`) : undefined;
}
