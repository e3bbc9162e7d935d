import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startTestServer, type TestServer } from '../support/server.js';

type Json = Record<string, any>;

/** A GET with a Host header of our choosing (fetch sets its own). */
function getWithHost(base: string, path: string, host: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method: 'GET', headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

function checkVersions(doc: Json, href: string): void {
  assert.ok(Array.isArray(doc.versions));
  assert.equal(doc.versions[0].status, 'CURRENT');
  assert.equal(doc.versions.filter((v: Json) => v.status === 'CURRENT').length, 1);
  const ids = doc.versions.map((v: Json) => v.id);
  for (const id of ['v2.0', 'v2.1', 'v2.3', 'v2.5', 'v2.9', 'v2.12', 'v2.15']) assert.ok(ids.includes(id), id);
  for (const v of doc.versions) {
    assert.deepEqual(Object.keys(v), ['id', 'status', 'links']);
    assert.match(v.id, /^v2\.\d+$/);
    assert.ok(['CURRENT', 'SUPPORTED'].includes(v.status));
    assert.deepEqual(v.links, [{ rel: 'self', href }]);
  }
}

describe('discovery', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  test('GET / without a token: 300 Multiple Choices with absolute hrefs from the Host header', async () => {
    const res = await s.req('GET', '/', { token: null });
    assert.equal(res.status, 300);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-[0-9a-f-]{36}$/);
    checkVersions((await res.json()) as Json, `${s.url}/v2/`);
    const viaProxy = await getWithHost(s.url, '/', 'images.example.com:9292');
    assert.equal(viaProxy.status, 300);
    checkVersions(JSON.parse(viaProxy.body), 'http://images.example.com:9292/v2/');
  });

  test('GET /versions: 200 with the same document; a token is not needed but does no harm', async () => {
    for (const token of [null, 'reader'] as const) {
      const res = await s.req('GET', '/versions', { token });
      assert.equal(res.status, 200);
      checkVersions((await res.json()) as Json, `${s.url}/v2/`);
    }
  });

  test('/v2 and /v2/ are no resource: 401 without a token, 404 with one, whatever the method', async () => {
    for (const url of ['/v2', '/v2/']) {
      const anon = await s.req('GET', url, { token: null });
      assert.equal(anon.status, 401);
      assert.equal(((await anon.json()) as Json).error.code, 401);
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        const res = await s.req(method, url, { body: method === 'GET' ? undefined : '{"x":', headers: { 'content-type': 'application/json' } });
        assert.equal(res.status, 404, `${method} ${url}`);
        const e = ((await res.json()) as Json).error;
        assert.equal(e.code, 404);
        assert.match(e.message, /\/v2\/images/);
      }
    }
  });

  test('a version we do not serve (/v1/..., /v3, /anything) answers 300 with the versions document, any method, no token', async () => {
    const cases: [string, string][] = [['GET', '/v1/images'], ['GET', '/v1/images/detail?limit=20'], ['HEAD', '/v1/images/x'], ['POST', '/v1/images'], ['PUT', '/v1/images/x'],
      ['DELETE', '/v1/images/x'], ['GET', '/v3'], ['GET', '/v2.14/images'], ['GET', '/v2.16/cache'], ['GET', '/v2.99/images'], ['GET', '/images'], ['GET', '/v2x/images'], ['GET', '/healthcheck/x']];
    for (const [method, url] of cases) {
      const res = await s.req(method, url, { token: null, body: ['POST', 'PUT'].includes(method) ? '{"not json' : undefined, headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 300, `${method} ${url}`);
      if (method !== 'HEAD') checkVersions((await res.json()) as Json, `${s.url}/v2/`);
    }
  });

  test('/versions answers 200 whatever the method or the rest of the path, as Glance', async () => {
    for (const [method, url] of [['POST', '/versions'], ['GET', '/versions/'], ['GET', '/versions/v2']]) {
      const res = await s.req(method, url, { token: null });
      assert.equal(res.status, 200, `${method} ${url}`);
      checkVersions((await res.json()) as Json, `${s.url}/v2/`);
    }
  });

  test('/v2.N/... is /v2/... for every version of the document; the token is still checked', async () => {
    const created = (await (await s.req('POST', '/v2.1/images', { json: { name: 'via-v2.1' } })).json()) as Json;
    assert.equal(created.name, 'via-v2.1');
    for (const v of ['v2', 'v2.0', 'v2.1', 'v2.9', 'v2.13', 'v2.15']) {
      const res = await s.req('GET', `/${v}/images/${created.id}`);
      assert.equal(res.status, 200, v);
      assert.equal(((await res.json()) as Json).id, created.id);
      assert.equal((await s.req('GET', `/${v}/images/${created.id}`, { token: null })).status, 401, `${v} without a token`);
    }
    const list = await s.req('GET', '/v2.15/images?limit=1');
    assert.equal(list.status, 200);
    assert.equal(((await list.json()) as Json).images.length, 1);
    assert.equal((await s.req('GET', '/v2.3/schemas/image', { token: 'reader' })).status, 200);
    assert.equal((await s.req('GET', '/v2.1', { token: 'reader' })).status, 404, 'the v2 root is no resource under any version');
    assert.equal((await s.req('DELETE', `/v2.2/images/${created.id}`)).status, 204);
  });

  test('Accept: application/vnd.openstack.images-vX names the version instead of the path', async () => {
    const ok = await s.req('GET', '/schemas/image', { token: 'reader', headers: { accept: 'application/vnd.openstack.images-v2.1' } });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as Json).name, 'image');
    const unknown = await s.req('GET', '/schemas/image', { token: null, headers: { accept: 'application/vnd.openstack.images-v1' } });
    assert.equal(unknown.status, 300);
  });

  test('GET /healthcheck needs no token and says OK', async () => {
    const res = await s.req('GET', '/healthcheck', { token: null });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await res.text(), 'OK');
  });
});

describe('discovery behind a configured public endpoint', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer({ config: { publicEndpoint: 'https://images.example.org/image/' } }); });
  after(async () => { await s.close(); });

  test('hrefs use config.publicEndpoint, not the Host header', async () => {
    for (const path of ['/', '/versions']) {
      const res = await getWithHost(s.url, path, 'internal-name:1234');
      checkVersions(JSON.parse(res.body), 'https://images.example.org/image/v2/');
    }
  });
});
