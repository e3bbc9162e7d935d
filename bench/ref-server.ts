/**
 * The trivial HTTP server the bench measures Imago against: PUT discards the
 * body; GET /<name> streams that file of the directory with 1 MiB reads (the
 * chunk size of Imago's filesystem store), or one `Range: bytes=a-b` of it
 * as a 206. Nothing else, so it shows what HTTP in user-space Node costs on
 * this machine. Usage: node ref-server.js <dir>; prints its port.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';

const dir = process.argv[2];
const CHUNK = 1024 * 1024;

const server = createServer((req, res) => {
  if (req.method === 'PUT' || req.method === 'POST') {
    let received = 0;
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => {
      res.writeHead(204, { 'x-received': String(received) });
      res.end();
    });
    return;
  }
  const file = path.join(dir, path.basename(decodeURIComponent(req.url ?? '')));
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    res.writeHead(404).end();
    return;
  }
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (req.method === 'GET' && range) {
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), size - 1);
    res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${size}` });
    createReadStream(file, { start, end, highWaterMark: CHUNK }).pipe(res);
    return;
  }
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    createReadStream(file, { highWaterMark: CHUNK }).pipe(res);
    return;
  }
  res.writeHead(405).end();
});
server.keepAliveTimeout = 75_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
