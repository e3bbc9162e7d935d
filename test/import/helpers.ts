import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

export const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');
export const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

export async function stage(s: TestServer, id: string, data: Buffer, token: Parameters<TestServer['req']>[2] extends infer O ? (O extends { token?: infer T } ? T : never) : never = 'admin'): Promise<Response> {
  return s.req('PUT', `/v2/images/${id}/stage`, { token, headers: { 'content-type': 'application/octet-stream' }, body: data });
}

export async function importImage(s: TestServer, id: string, body: unknown, opts: { token?: Parameters<typeof stage>[3]; headers?: Record<string, string> } = {}): Promise<Response> {
  return s.req('POST', `/v2/images/${id}/import`, { token: opts.token ?? 'admin', json: body, headers: opts.headers });
}

export async function getImage(s: TestServer, id: string): Promise<Record<string, any>> {
  const res = await s.req('GET', `/v2/images/${id}`);
  assert.equal(res.status, 200, `GET image ${id}`);
  return res.json() as Promise<Record<string, any>>;
}

/** Polls the image until `done` holds (or fails after `ms`); returns the last image JSON. */
export async function waitImage(s: TestServer, id: string, done: (img: Record<string, any>) => boolean, ms = 20_000): Promise<Record<string, any>> {
  let img: Record<string, any> = {};
  return waitFor(() => `image ${id} to reach the expected state; last: ${JSON.stringify(img)}`, async () => {
    const res = await s.req('GET', `/v2/images/${id}`);
    if (res.status === 404) return { status: 'deleted' };
    img = (await res.json()) as Record<string, any>;
    return done(img) && img;
  }, ms, 25);
}

/** Waits until the image has no import running, and returns its tasks. */
export async function waitTasks(s: TestServer, id: string, ms = 20_000): Promise<Record<string, any>[]> {
  let tasks: Record<string, any>[] = [];
  return waitFor(() => `the tasks of ${id} to finish; last: ${JSON.stringify(tasks)}`, async () => {
    const res = await s.req('GET', `/v2/images/${id}/tasks`);
    assert.equal(res.status, 200);
    tasks = ((await res.json()) as { tasks: Record<string, any>[] }).tasks;
    return tasks.length > 0 && tasks.every((t) => t.status === 'success' || t.status === 'failure') && tasks;
  }, ms, 25);
}

export async function errorOf(res: Response): Promise<{ code: number; message: string; details: string }> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = (await res.json()) as { error: { code: number; message: string; details: string } };
  assert.equal(body.error.code, res.status);
  assert.equal(typeof body.error.message, 'string');
  return body.error;
}

/** A loopback HTTP server serving fixed paths (for web-download). */
export interface FileServer {
  url: string;
  port: number;
  requests: string[];
  close(): Promise<void>;
}

export async function serveFiles(routes: Record<string, (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void>): Promise<FileServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const route = routes[(req.url ?? '').split('?')[0]];
    if (!route) {
      res.writeHead(404).end('not here');
      return;
    }
    route(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
