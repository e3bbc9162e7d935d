import http from 'node:http';
import { createHash } from 'node:crypto';
import { TOKENS, type TestServer } from '../support/server.js';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** The response of a raw request, read whole (tests only see small error bodies and small images). */
export function readResponse(res: http.IncomingMessage): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    res.on('error', reject);
  });
}

export function json(r: RawResponse): any {
  return JSON.parse(r.body.toString('utf8'));
}

/**
 * An upload the test drives chunk by chunk over node:http, so it can pause
 * mid-stream, race another upload, disconnect, or watch the response arrive
 * while it is still sending.
 */
export class ManualUpload {
  readonly req: http.ClientRequest;
  readonly response: Promise<RawResponse>;
  /** set when the socket failed (e.g. the server closed it); the response may still have arrived */
  socketError: Error | undefined;
  sent = 0;

  constructor(baseUrl: string, imageId: string, opts: { token?: keyof typeof TOKENS; headers?: Record<string, string>; contentLength?: number; path?: string; agent?: http.Agent } = {}) {
    const headers: Record<string, string> = {
      'x-auth-token': TOKENS[opts.token ?? 'admin'],
      'content-type': 'application/octet-stream',
      ...(opts.headers ?? {}),
    };
    if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
    const url = new URL(opts.path ?? `/v2/images/${imageId}/file`, baseUrl);
    this.req = http.request(url, { method: 'PUT', headers, agent: opts.agent ?? new http.Agent({ keepAlive: false }) });
    this.response = new Promise((resolve, reject) => {
      this.req.on('response', (res) => readResponse(res).then(resolve, reject));
      this.req.on('error', (err) => {
        this.socketError = err;
        // the response may already be on its way; give it a moment before failing
        setTimeout(() => reject(err), 200);
      });
    });
    this.response.catch(() => {});
    this.req.flushHeaders();
  }

  /** Writes a chunk and resolves once the socket took it (or failed). */
  write(chunk: Buffer): Promise<void> {
    this.sent += chunk.length;
    return new Promise((resolve) => {
      if (this.req.destroyed) return resolve();
      const ok = this.req.write(chunk, () => resolve());
      if (!ok) this.req.once('drain', () => resolve());
    });
  }

  end(chunk?: Buffer): Promise<RawResponse> {
    if (!this.req.destroyed) this.req.end(chunk);
    return this.response;
  }

  /** Cuts the connection as a client that crashed would. */
  abort(): void {
    this.req.destroy();
  }
}

/** Sends `data` as one PUT with Content-Length (or chunked when `chunked`), in pieces of `piece` bytes. */
export async function put(s: TestServer, imageId: string, data: Buffer, opts: { token?: keyof typeof TOKENS; headers?: Record<string, string>; chunked?: boolean; piece?: number; path?: string } = {}): Promise<RawResponse> {
  const up = new ManualUpload(s.url, imageId, { ...opts, contentLength: opts.chunked ? undefined : data.length });
  const piece = opts.piece ?? 256 * 1024;
  for (let i = 0; i < data.length; i += piece) await up.write(data.subarray(i, i + piece));
  return up.end();
}

export function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

export function sha512(b: Buffer): string {
  return createHash('sha512').update(b).digest('hex');
}

export async function imageOf(s: TestServer, id: string): Promise<Record<string, any>> {
  const res = await s.req('GET', `/v2/images/${id}`);
  if (res.status !== 200) throw new Error(`show ${id}: ${res.status}`);
  return (await res.json()) as Record<string, any>;
}

export function assertErrorBody(r: RawResponse, code: number): { message: string; details: string } {
  if (r.status !== code) throw new Error(`expected ${code}, got ${r.status}: ${r.body.toString()}`);
  const ct = String(r.headers['content-type'] ?? '');
  if (!ct.startsWith('application/json')) throw new Error(`error content-type ${ct}`);
  const b = json(r);
  if (!b.error || b.error.code !== code || typeof b.error.message !== 'string' || typeof b.error.details !== 'string') {
    throw new Error(`bad error body: ${r.body.toString()}`);
  }
  return b.error;
}
