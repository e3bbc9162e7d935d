import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, startTestServer, type TestServer } from '../support/server.js';

/**
 * Issue 14 item 1: a body nesting objects or arrays thousands of levels deep
 * was a 500 (stack overflow in a recursive check). Every JSON route now
 * answers 400 with the spec's body at any depth, and stays healthy after.
 */

const PATCH = 'application/openstack-images-v2.1-json-patch';

/** `{"a":{"a":...1...}}`, `depth` objects deep, built without recursion. */
const nestedObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
/** `[[[...]]]`, `depth` arrays deep. */
const nestedArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('deeply nested JSON bodies', () => {
  let s: TestServer;
  let imageId: string;
  let namespace: string;
  before(async () => {
    s = await startTestServer();
    imageId = (await createImage(s, { name: 'deep' })).id;
    namespace = `Deep::NS::${process.pid}`;
    const res = await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace } });
    assert.equal(res.status, 201, await res.text());
  });
  after(async () => { await s.close(); });

  /** Each route with a body builder nesting `depth` levels where that route takes its input. */
  const routes: Array<[string, string, string | (() => string), (depth: number) => string, string?]> = [
    ['create: an extra property', 'POST', '/v2/images', (d) => `{"name":"d","x":${nestedObject(d)}}`],
    ['create: tags', 'POST', '/v2/images', (d) => `{"name":"d","tags":${nestedArray(d)}}`],
    ['patch: a value', 'PATCH', () => `/v2/images/${imageId}`, (d) => `[{"op":"add","path":"/x","value":${nestedObject(d)}}]`, PATCH],
    ['patch: tags', 'PATCH', () => `/v2/images/${imageId}`, (d) => `[{"op":"replace","path":"/tags","value":${nestedArray(d)}}]`, PATCH],
    ['patch: the whole document', 'PATCH', () => `/v2/images/${imageId}`, (d) => nestedArray(d), PATCH],
    ['members', 'POST', () => `/v2/images/${imageId}/members`, (d) => `{"member":${nestedObject(d)}}`],
    ['metadefs: namespace', 'POST', '/v2/metadefs/namespaces', (d) => `{"namespace":"Deep::X","description":${nestedObject(d)}}`],
    ['metadefs: namespace update', 'PUT', () => `/v2/metadefs/namespaces/${namespace}`, (d) => `{"namespace":"${namespace}","x":${nestedArray(d)}}`],
    ['metadefs: object', 'POST', () => `/v2/metadefs/namespaces/${namespace}/objects`, (d) => `{"name":"o","properties":${nestedObject(d)}}`],
    ['metadefs: property', 'POST', () => `/v2/metadefs/namespaces/${namespace}/properties`, (d) => `{"name":"p","title":"P","type":"string","default":${nestedObject(d)}}`],
    ['metadefs: tags', 'POST', () => `/v2/metadefs/namespaces/${namespace}/tags`, (d) => `{"tags":${nestedArray(d)}}`],
  ];

  for (const depth of [5_000, 100_000]) {
    for (const [what, method, url, body, type] of routes) {
      test(`${what}: ${depth} levels deep is 400 with the JSON error body`, async () => {
        const path = typeof url === 'string' ? url : url();
        const res = await s.req(method, path, { body: body(depth), headers: { 'content-type': type ?? 'application/json' } });
        const text = await res.text();
        assert.equal(res.status, 400, `${method} ${path}: ${text.slice(0, 300)}`);
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
        const error = JSON.parse(text).error;
        assert.equal(error.code, 400);
        assert.match(error.message, /nests .* more than 32 levels/);
      });
    }
  }

  test('brackets inside strings do not count; 32 levels are accepted', async () => {
    const deepInString = await s.req('POST', '/v2/images', { json: { name: 'in string', x: '['.repeat(10_000) } });
    assert.equal(deepInString.status, 201, await deepInString.text());
    // 31 nested arrays inside the patch array: 32 levels in all, refused by the schema (tags are strings), not by depth.
    const res = await s.req('PATCH', `/v2/images/${imageId}`, { body: `[{"op":"replace","path":"/tags","value":${nestedArray(30)}}]`, headers: { 'content-type': PATCH } });
    const error = (await res.json()).error;
    assert.equal(res.status, 400);
    assert.match(error.message, /'tags\[0\]' must be a string/);
  });

  test('the server is healthy after', async () => {
    const res = await s.req('GET', `/v2/images/${imageId}`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).name, 'deep');
  });
});
