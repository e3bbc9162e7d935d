import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { startTestServer, createImage, type TestServer } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';

type Json = Record<string, any>;

const REQUEST_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every error: the status, JSON with the spec's body, a message a person can act on, a request id. */
async function assertSpecError(res: Response, status?: number): Promise<Json> {
  const text = await res.text();
  if (status !== undefined) assert.equal(res.status, status, text);
  assert.ok(res.status >= 400 && res.status < 500, `${res.status}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, text);
  assert.match(res.headers.get('x-openstack-request-id') ?? '', REQUEST_ID);
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'details', 'message']);
  assert.equal(body.error.code, res.status);
  assert.equal(typeof body.error.details, 'string');
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length >= 15, `message too terse: ${body.error.message}`);
  return body.error;
}

/** A raw HTTP exchange, for requests fetch will not send. */
function raw(url: string, request: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => sock.end(request));
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => resolve(Buffer.concat(chunks).toString()));
    sock.on('error', reject);
    sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
  });
}

/** Deterministic pseudo-random numbers, so a failing case can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

describe('errors', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  test('the framework\'s own errors carry the spec body: 400, 404, 405, 413, 415, 401', async () => {
    const badUrl = await assertSpecError(await s.req('GET', '/v2/images/%zz'), 400);
    assert.match(badUrl.message, /URL/);
    const badJson = await assertSpecError(await s.req('POST', '/v2/images', { body: '{"name": ', headers: { 'content-type': 'application/json' } }), 400);
    assert.match(badJson.message, /JSON/);
    const notFound = await assertSpecError(await s.req('GET', '/v2/nothing/here'), 404);
    assert.match(notFound.message, /\/v2\/nothing\/here/);
    const notAllowed = await s.req('PUT', '/v2/images');
    await assertSpecError(notAllowed, 405);
    assert.equal(notAllowed.headers.get('allow'), 'GET, HEAD, POST');
    const options = await s.req('OPTIONS', `/v2/images/${randomUUID()}`);
    await assertSpecError(options, 405);
    assert.equal(options.headers.get('allow'), 'GET, HEAD, PATCH, DELETE');
    await assertSpecError(await s.req('POST', '/v2/images', { body: `{"name":"${'x'.repeat(2 * 1024 * 1024)}"}` }), 413);
    const img = await createImage(s);
    await assertSpecError(await s.req('PUT', `/v2/images/${img.id}/file`, { body: 'data', headers: { 'content-type': 'application/json' } }), 415);
    const anon = await assertSpecError(await s.req('GET', '/v2/images', { token: null }), 401);
    assert.match(anon.message, /X-Auth-Token/);
    await assertSpecError(await s.req('GET', '/v2/images', { token: null, headers: { 'x-auth-token': 'wrong' } }), 401);
  });

  test('requests Node cannot parse get the spec body too (431, 400)', async () => {
    const long = await raw(s.url, `GET /v2/images?name=${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: admin-token\r\n\r\n`);
    assert.match(long, /^HTTP\/1\.1 431 /);
    assert.match(long, /x-openstack-request-id: req-/i);
    assert.equal(JSON.parse(long.slice(long.indexOf('\r\n\r\n') + 4)).error.code, 431);
    const garbage = await raw(s.url, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    assert.equal(JSON.parse(garbage.slice(garbage.indexOf('\r\n\r\n') + 4)).error.code, 400);
  });

  test('an empty body sent as application/json is no body on DELETE and actions', async () => {
    const img = await createImage(s);
    const tag = await s.req('PUT', `/v2/images/${img.id}/tags/t`, { body: '', headers: { 'content-type': 'application/json' } });
    assert.equal(tag.status, 204);
    const untag = await s.req('DELETE', `/v2/images/${img.id}/tags/t`, { body: '', headers: { 'content-type': 'application/json' } });
    assert.equal(untag.status, 204);
    const deact = await s.req('POST', `/v2/images/${img.id}/actions/deactivate`, { body: '', headers: { 'content-type': 'application/json' } });
    await assertSpecError(deact, 403); // the image is queued: Glance's domain refuses with Forbidden
    const del = await s.req('DELETE', `/v2/images/${img.id}`, { body: '  \n', headers: { 'content-type': 'application/json' } });
    assert.equal(del.status, 204);
  });

  test('every response has a fresh x-openstack-request-id', async () => {
    const seen = new Set<string>();
    for (const [method, path, token] of [['GET', '/', null], ['GET', '/v2/images', 'admin'], ['GET', '/v2/images', null], ['GET', '/nope', 'admin'], ['GET', '/healthcheck', null], ['DELETE', `/v2/images/${randomUUID()}`, 'admin']] as const) {
      const res = await s.req(method, path, { token });
      await res.arrayBuffer();
      const id = res.headers.get('x-openstack-request-id') ?? '';
      assert.match(id, REQUEST_ID, `${method} ${path}`);
      assert.ok(!seen.has(id));
      seen.add(id);
    }
  });
});

const pgUp = await postgresAvailable();

/** The fuzz runs on SQLite and PostgreSQL: what one database stores, the other may refuse (NUL, lone surrogates). */
for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`fuzz (${dialect})`, { skip: dialect === 'postgres' && !pgUp ? 'no PostgreSQL at IMAGO_TEST_PG_URL' : false }, () => {
    let s: TestServer;
    let drop: (() => Promise<void>) | undefined;
    before(async () => {
      const db = dialect === 'postgres' ? await createTestDatabase() : undefined;
      drop = db?.drop;
      s = await startTestServer(db ? { config: { database: { url: db.url } } } : {});
    });
    after(async () => {
      await s?.close();
      await drop?.();
    });

    test('fuzz: random JSON shapes to create and PATCH never give a 500', async () => {
      const rnd = prng(20241126);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
      const keys = ['name', 'id', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'min_ram', 'min_disk', 'tags', 'owner', 'status', 'size', 'locations', 'kernel_id', 'os_glance_x', '__proto__', 'constructor', '', '🐧', 'a.b', 'x'.repeat(300), 'self', 'stores', 'k\u0000', '\udc00'];
      const value = (depth: number): unknown => {
        switch (Math.floor(rnd() * (depth > 2 ? 7 : 9))) {
          case 0: return null;
          case 1: return rnd() < 0.5;
          case 2: return pick([0, -1, 1.5, 2 ** 31, 2 ** 53, 1e308, -0, 42]);
          case 3: return pick(['', 'raw', 'public', 'x'.repeat(70000), '\u0000', 'a\u0000b', '\ud800', 'ü🐧', randomUUID(), '../../etc/passwd', '%00', '<script>']);
          case 4: return pick(['a', 'b']);
          case 5: return 'plain';
          case 6: return String(rnd());
          case 7: return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
          default: return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [pick(keys), value(depth + 1)]));
        }
      };
      const target = await createImage(s);
      for (let i = 0; i < 150; i++) {
        const body = rnd() < 0.8 ? Object.fromEntries(Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => [pick(keys), value(0)])) : value(0);
        const res = await s.req('POST', '/v2/images', { json: body });
        if (res.status !== 201) await assertSpecError(res);
        else await res.arrayBuffer();
        const ops = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => {
          const op: Record<string, unknown> = { op: pick(['add', 'replace', 'remove', 'move', undefined]), path: pick([`/${pick(keys)}`, '/', 'name', '/a/b', '/~2', 5]) };
          if (rnd() < 0.8) op.value = value(0);
          return rnd() < 0.1 ? value(0) : op;
        });
        const p = await s.req('PATCH', `/v2/images/${target.id}`, { body: JSON.stringify(rnd() < 0.9 ? ops : value(0)), headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' } });
        if (p.status !== 200) await assertSpecError(p);
        else await p.arrayBuffer();
      }
      assert.equal((await s.req('GET', `/v2/images/${target.id}`)).status, 200);
    });

    test('fuzz: weird query strings and paths never give a 500', async () => {
      const rnd = prng(7);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
      const keys = ['limit', 'marker', 'sort', 'sort_key', 'sort_dir', 'name', 'status', 'created_at', 'updated_at', 'size_min', 'size_max', 'tag', 'visibility', 'member_status', 'os_hidden', 'protected', 'id', 'owner', 'min_ram', 'x_min', 'foo', 'changes-since', '__proto__', 'constructor', 'deleted', 'checksum', '🐧', ''];
      const values = ['', '\u0000', 'a\u0000', 'in:', 'in:a,"b', 'in:"a","b"', 'gt:', 'gt:2020-01-01', 'eq:', 'a:b:c', '-1', '1e3', '99999999999999999999', 'NaN', 'true', 'TRUE', 'asc', 'name:asc,id', 'name:', ':asc', ',', '%00', '\u0000', 'ü🐧', '2020-02-30T00:00:00Z', '9999-99-99', randomUUID(), 'x'.repeat(2000), 'all', 'shared'];
      for (let i = 0; i < 200; i++) {
        const params = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => `${encodeURIComponent(pick(keys))}=${encodeURIComponent(pick(values))}`).join('&');
        const res = await s.req('GET', `/v2/images?${params}`);
        if (res.status === 200) {
          const body = (await res.json()) as Json;
          assert.ok(Array.isArray(body.images), params);
        } else {
          await assertSpecError(res, 400);
        }
      }
      const img = await createImage(s);
    for (const path of [`/v2/images/${img.id}/tags/%00`, `/v2/images/${img.id}/tags/a%00b`, '/v2/images/%2e%2e%2f', '/v2/images/a%2Fb', '/v2/images/' + 'x'.repeat(2000), '/v2/images/%F0%9F%90%A7/tags/%F0%9F%90%A7', '/v2//images', '/v2/images/?limit=1', '/v2/images#frag', '/V2/IMAGES', '/v2/images/%00/file', '/v2/images/ /actions/deactivate']) {
        for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'POST']) {
          const res = await s.req(method, path, method === 'GET' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } });
          if (res.status >= 400) await assertSpecError(res);
          else await res.arrayBuffer();
        }
      }
    });
  });
}
