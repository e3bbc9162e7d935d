import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TestServer, TOKENS } from '../support/server.js';

export type Who = keyof typeof TOKENS;
export type Body = Record<string, any>;

/** Asserts the status, a JSON content type and returns the parsed body. */
export async function expectJson(res: Response, status: number): Promise<Body> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return JSON.parse(text) as Body;
}

/** Asserts an error answer in the spec's body, its message matching `message` when given. */
export async function expectError(res: Response, status: number, message?: RegExp): Promise<string> {
  const body = await expectJson(res, status);
  assert.equal(body.error?.code, status);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.details, 'string');
  if (message) assert.match(body.error.message, message);
  return body.error.message;
}

export async function expectNoContent(res: Response): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 204, `expected 204, got ${res.status}: ${text}`);
  assert.equal(text, '');
}

let counter = 0;
/** A namespace name no other test uses. */
export function uniqueName(prefix = 'Test::NS'): string {
  return `${prefix}::${process.pid}-${Date.now().toString(36)}-${++counter}`;
}

export async function createNamespace(s: TestServer, body: Body = {}, who: Who = 'admin'): Promise<Body> {
  const res = await s.req('POST', '/v2/metadefs/namespaces', { token: who, json: { namespace: uniqueName(), ...body } });
  return expectJson(res, 201);
}

export const nsPath = (name: string, rest = '') => `/v2/metadefs/namespaces/${encodeURIComponent(name)}${rest}`;

/** The repository root, from test/metadefs or from its compiled copy in dist/test/metadefs. */
export const REPO_ROOT = (() => {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above the tests');
    dir = up;
  }
  return dir;
})();

/** The definition files shipped with Imago. */
export const SAMPLES = path.join(REPO_ROOT, 'metadefs');
