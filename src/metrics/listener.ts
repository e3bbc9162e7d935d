import http from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { Runtime } from '../runtime.js';
import { healthAnswer } from '../health/answer.js';

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

/**
 * The metrics listener: GET /metrics (Prometheus text format) and a detailed
 * GET /healthcheck, on `metrics.host:metrics.port`, apart from the API port so
 * the public network never sees them. `metrics.allow` narrows who may ask.
 */
export async function startMetricsListener(rt: Runtime): Promise<MetricsListener> {
  const { host, port, allow } = rt.config.metrics;
  const allowed = allowList(allow);
  const server = http.createServer((req, res) => {
    serve(rt, allowed, req, res).catch((err) => {
      rt.log.error({ err }, 'metrics listener failed to answer');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

async function serve(rt: Runtime, allowed: BlockList | undefined, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const remote = req.socket.remoteAddress ?? '';
  if (allowed && !allowed.check(remote.replace(/^::ffff:/, ''), isIP(remote.replace(/^::ffff:/, '')) === 6 ? 'ipv6' : 'ipv4')) {
    res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  if (path === '/metrics') {
    const body = await rt.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': rt.metrics.registry.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  if (path === '/healthcheck') {
    const a = healthAnswer(await rt.health.check(), req.method, req.headers.accept, true);
    res.writeHead(a.status, { 'content-type': a.type, 'cache-control': 'no-store' }).end(a.body || undefined);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthcheck\n');
}

function allowList(allow: string[]): BlockList | undefined {
  if (!allow.length) return undefined;
  const list = new BlockList();
  for (const entry of allow) {
    const [address, bits] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(bits), type);
  }
  return list;
}
