import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { Runtime } from '../runtime.js';
import { countPushed } from '../metrics/store-metrics.js';

/** Requests whose path matched no route share one label, so a scanner cannot blow up the metric's cardinality. */
const UNMATCHED = 'unmatched';

/**
 * One log line and one set of metric samples per request, written when the
 * response's connection is done with it ('close'). That point is reached by
 * every answer, including downloads written after reply.hijack(), which skip
 * Fastify's onSend/onResponse hooks, and answers cut short by the client.
 *
 * The line names who asked (user, project, remote address) and what happened
 * (method, route, path, status, body bytes each way, duration), never a
 * header's value: tokens stay out of logs.
 */
export function observeRequests(app: FastifyInstance, rt: Runtime): void {
  if (!observing(rt)) return;
  app.addHook('onRequest', (request, reply, done) => {
    observeRequest(rt, request, reply);
    done();
  });
}

/** Starts watching one request; also called for requests the router refuses before any hook runs. */
export function observeRequest(rt: Runtime, request: FastifyRequest, reply: FastifyReply): void {
  if (!observing(rt) || watched.has(request.raw)) return;
  watched.add(request.raw);
  const started = process.hrtime.bigint();
  let bytesIn = 0;
  countPushed(request.raw, (n) => (bytesIn += n));
  const res = reply.raw;
  let bytesOut = 0;
  countWritten(res, (n) => (bytesOut += n));
  res.once('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    record(rt, request, res, { bytesIn, bytesOut, seconds });
  });
}

const watched = new WeakSet<object>();

/**
 * Whether anything would use the observation: request lines are info (5xx: error, which the error
 * mapper logs anyway) and metrics are off by default. Counting bytes and building labels and a line
 * for nobody cost ~15 % of a metadata request's CPU (docs/benchmarks.md).
 */
function observing(rt: Runtime): boolean {
  return rt.config.metrics.enabled || rt.log.isLevelEnabled('info');
}

function record(rt: Runtime, request: FastifyRequest, res: ServerResponse, m: { bytesIn: number; bytesOut: number; seconds: number }): void {
  const route = request.routeOptions.url ?? UNMATCHED;
  const status = res.statusCode;
  // the answer did not reach its end: the client went away or the server cut the connection
  const completed = res.writableFinished;
  if (rt.config.metrics.enabled) {
    const labels = { method: request.method, route, status: String(status) };
    rt.metrics.httpRequests.inc(labels);
    rt.metrics.httpDuration.observe(labels, m.seconds);
    if (m.bytesIn) rt.metrics.httpBytesIn.inc({ route }, m.bytesIn);
    if (m.bytesOut) rt.metrics.httpBytesOut.inc({ route }, m.bytesOut);
  }
  if (!rt.log.isLevelEnabled(status >= 500 ? 'error' : 'info')) return;
  const path = request.url.split('?')[0];
  const line = {
    requestId: request.id,
    method: request.method,
    route,
    path,
    status,
    ...(completed ? {} : { incomplete: true }),
    bytesIn: m.bytesIn,
    bytesOut: m.bytesOut,
    durationMs: Math.round(m.seconds * 1e6) / 1e3,
    user: request.ctx?.userId ?? null,
    project: request.ctx?.projectId ?? null,
    remoteAddress: request.ip,
  };
  const msg = `${request.method} ${path} ${status}${completed ? '' : ' (incomplete)'}`;
  if (status >= 500) rt.log.error(line, msg);
  else rt.log.info(line, msg);
}

/** Counts body bytes as the response writes them (headers are not counted). */
function countWritten(res: ServerResponse, count: (bytes: number) => void): void {
  const size = (chunk: unknown, encoding?: unknown) =>
    chunk == null || typeof chunk === 'function' ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : (chunk as { length: number }).length;
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    count(size(chunk, rest[0]));
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof res.write;
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    count(size(chunk, rest[0]));
    return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as typeof res.end;
}
