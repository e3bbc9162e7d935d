import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { startTestServer, PROJECTS, TOKENS, type TestServer } from '../support/server.js';

type Json = Record<string, any>;

/** Every base attribute Glance always shows, in Glance's order. */
const BASE_KEYS = ['name', 'disk_format', 'container_format', 'visibility', 'size', 'virtual_size', 'status', 'checksum', 'protected', 'min_ram', 'min_disk', 'owner', 'os_hidden', 'os_hash_algo', 'os_hash_value', 'id', 'created_at', 'updated_at', 'tags', 'self', 'file', 'schema'];

async function errorOf(res: Response, status: number): Promise<Json> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text);
  assert.equal(body.error.code, status);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 10, body.error.message);
  assert.equal(typeof body.error.details, 'string');
  return body.error;
}

/** POST /v2/images with a Host header of our choosing (fetch sets its own); resolves the Location header. */
function createWithHost(base: string, token: string, host: string): Promise<string | undefined> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path: '/v2/images', method: 'POST', headers: { host, 'x-auth-token': token, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve(res.headers.location) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end('{"name":"located"}');
  });
}

describe('Location of 201 Created', () => {
  test('the request\'s Host without publicEndpoint; publicEndpoint (its path kept) when configured', async () => {
    const plain = await startTestServer();
    const proxied = await startTestServer({ config: { publicEndpoint: 'https://images.example.org/image/' } });
    try {
      const viaHost = await createWithHost(plain.url, TOKENS.admin, 'images.internal:9292');
      assert.match(viaHost ?? '', /^http:\/\/images\.internal:9292\/v2\/images\/[0-9a-f-]{36}$/);
      const viaEndpoint = await createWithHost(proxied.url, TOKENS.admin, 'images.internal:9292');
      assert.match(viaEndpoint ?? '', /^https:\/\/images\.example\.org\/image\/v2\/images\/[0-9a-f-]{36}$/);
      const id = viaEndpoint!.split('/').pop()!;
      assert.equal((await proxied.req('GET', `/v2/images/${id}`)).status, 200, 'the Location names the image created');
    } finally {
      await plain.close();
      await proxied.close();
    }
  });
});

describe('POST /v2/images', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  const post = (json: unknown, token: 'admin' | 'member' | 'reader' | 'other' = 'admin', headers?: Record<string, string>) => s.req('POST', '/v2/images', { token, json, headers });

  test('201 with Location, Glance headers and the full image representation', async () => {
    const res = await post({ name: 'cirros', disk_format: 'qcow2', container_format: 'bare', min_ram: 64, min_disk: 1, tags: ['a', 'b'], os_distro: 'cirros' }, 'member');
    assert.equal(res.status, 201);
    const img = (await res.json()) as Json;
    assert.equal(res.headers.get('location'), `${s.url}/v2/images/${img.id}`, 'absolute, from the request\'s scheme and Host');
    assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('openstack-image-import-methods'), 'glance-direct,web-download,copy-image,glance-download');
    assert.equal(res.headers.get('openstack-image-store-ids'), 'local');
    assert.deepEqual(Object.keys(img), ['os_distro', ...BASE_KEYS], 'extra properties first, then every base attribute, no stores before data');
    assert.equal(img.name, 'cirros');
    assert.equal(img.status, 'queued');
    assert.equal(img.visibility, 'shared', 'new images default to shared');
    assert.equal(img.owner, PROJECTS.member);
    assert.equal(img.min_ram, 64);
    assert.equal(img.min_disk, 1);
    assert.equal(img.protected, false);
    assert.equal(img.os_hidden, false);
    for (const k of ['size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value']) assert.equal(img[k], null, k);
    assert.deepEqual(img.tags.sort(), ['a', 'b']);
    assert.match(img.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(img.created_at, img.updated_at);
    assert.equal(img.self, `/v2/images/${img.id}`);
    assert.equal(img.file, `/v2/images/${img.id}/file`);
    assert.equal(img.schema, '/v2/schemas/image');
    const shown = (await (await s.req('GET', `/v2/images/${img.id}`, { token: 'member' })).json()) as Json;
    assert.deepEqual(shown, img);
  });

  test('an empty object makes an image with every attribute at its default', async () => {
    const img = (await (await post({})).json()) as Json;
    assert.deepEqual(Object.keys(img), BASE_KEYS);
    assert.equal(img.name, null);
    assert.equal(img.disk_format, null);
    assert.equal(img.container_format, null);
    assert.deepEqual(img.tags, []);
    assert.equal(img.owner, PROJECTS.admin);
  });

  test('the body is JSON whatever Content-Type says (or when it says nothing)', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', '']) {
      const res = await s.req('POST', '/v2/images', { body: JSON.stringify({ name: `ct-${type}` }), headers: { 'content-type': type } });
      assert.equal(res.status, 201, type);
      assert.equal(((await res.json()) as Json).name, `ct-${type}`);
    }
    const none = await fetch(`${s.url}/v2/images`, { method: 'POST', headers: { 'x-auth-token': 'admin-token' }, body: new Uint8Array(Buffer.from('{"name":"no-type"}')) });
    assert.equal(none.status, 201);
  });

  test('extra properties: dotted keys, empty values, unicode; always strings', async () => {
    const props = {
      'owner_specified.openstack.md5': '',
      'owner_specified.openstack.sha256': '',
      'owner_specified.openstack.object': 'images/cirros',
      'hw_disk_bus': 'virtio',
      'ünïcødé ключ 🐧': 'значение 🐧',
      'constructor': 'c',
      'toString': 't',
      '__proto__': 'p',
    };
    const res = await post({ name: 'sdk', ...props });
    assert.equal(res.status, 201);
    const text = await (await s.req('GET', `/v2/images/${((await res.json()) as Json).id}`)).text();
    const shown = JSON.parse(text) as Json;
    for (const [k, v] of Object.entries(props)) {
      assert.ok(Object.hasOwn(shown, k), `${k} present`);
      assert.equal(shown[k], v, k);
    }
  });

  test('a client-chosen id is kept; the same id again is 409', async () => {
    const id = randomUUID();
    const res = await post({ id, name: 'chosen' });
    assert.equal(res.status, 201);
    assert.equal(((await res.json()) as Json).id, id);
    const again = await errorOf(await post({ id, name: 'again' }), 409);
    assert.match(again.message, new RegExp(id));
  });

  test('ids that do not match the schema pattern are 400', async () => {
    for (const id of ['not-a-uuid', '12345678123456781234567812345678', 42, null]) await errorOf(await post({ id }), 400);
  });

  test('server-computed and reserved attributes are 403', async () => {
    for (const [key, value] of [
      ['self', '/x'], ['file', '/x'], ['schema', '/x'], ['direct_url', 'file:///x'], ['stores', 'local'],
      ['status', 'active'], ['checksum', 'abc'], ['size', 5], ['virtual_size', 5], ['os_hash_algo', 'sha512'], ['os_hash_value', 'abc'],
      ['created_at', '2020-01-01T00:00:00Z'], ['updated_at', '2020-01-01T00:00:00Z'],
      ['location', 'http://x'], ['deleted', 'true'], ['deleted_at', 'x'], ['locations', []],
      ['os_glance_import_task', 'x'], ['os_glance_anything', 'y'],
    ] as [string, unknown][]) {
      const e = await errorOf(await post({ name: 'x', [key]: value }), 403);
      assert.match(e.message, new RegExp(`'${key}' is (read-only|reserved)`), key);
    }
  });

  test('schema violations are 400 with a message naming the attribute', async () => {
    const cases: [string, unknown][] = [
      ['name', 5], ['name', 'x'.repeat(256)], ['visibility', 'everyone'], ['visibility', null], ['protected', 'yes'], ['os_hidden', 1],
      ['disk_format', 'floppy'], ['container_format', 'zip'], ['min_ram', -1], ['min_ram', 1.5], ['min_ram', '1'], ['min_disk', 2 ** 31],
      ['min_disk', true], ['tags', 'a'], ['tags', [1]], ['tags', ['x'.repeat(256)]], ['owner', 5], ['owner', 'o'.repeat(256)],
      ['extra', 5], ['extra', null], ['extra', ['a']], ['extra', { a: 1 }], ['extra', true],
      ['kernel_id', 'not-a-uuid'], ['ramdisk_id', 7], ['architecture', 64], ['cinder_encryption_key_deletion_policy', 'sometimes'],
      ['size', 'big'], ['locations', 'nowhere'],
      ['name', 'nul\u0000inside'], ['extra', 'lone \ud800 surrogate'], ['tags', ['ok', 'n\u0000']],
    ];
    for (const [key, value] of cases) {
      const e = await errorOf(await post({ [key]: value }), 400);
      assert.match(e.message, new RegExp(key), `${key}=${JSON.stringify(value)}: ${e.message}`);
    }
    const longKey = await errorOf(await post({ ['k'.repeat(256)]: 'v' }), 400);
    assert.match(longKey.message, /255/);
  });

  test('a name of 255 characters (counted as characters, not UTF-16 units) is fine', async () => {
    const name = '🐧'.repeat(255);
    const res = await post({ name });
    assert.equal(res.status, 201);
    assert.equal(((await res.json()) as Json).name, name);
  });

  test('duplicate tags are folded; kernel_id may be null', async () => {
    const res = await post({ tags: ['x', 'x', 'y'], kernel_id: null, ramdisk_id: randomUUID() });
    assert.equal(res.status, 201);
    const img = (await res.json()) as Json;
    assert.deepEqual(img.tags.sort(), ['x', 'y']);
    assert.equal(img.kernel_id, undefined);
  });

  test('bodies that are not a JSON object are 400, never 500', async () => {
    for (const body of ['[]', '[1,2]', '"name"', '42', 'null', 'true', '{"name":', '{bad json}', '\u0000']) {
      await errorOf(await s.req('POST', '/v2/images', { body, headers: { 'content-type': 'application/json' } }), 400);
    }
    const empty = await errorOf(await s.req('POST', '/v2/images', { body: '', headers: { 'content-type': 'application/json' } }), 400);
    assert.match(empty.message, /[Bb]ody expected/);
  });

  test('more than 128 extra properties or tags is 413', async () => {
    const props: Json = {};
    for (let i = 0; i < 128; i++) props[`p${i}`] = String(i);
    assert.equal((await post(props)).status, 201, 'exactly 128 is fine');
    const e = await errorOf(await post({ ...props, one_more: 'x' }), 413);
    assert.match(e.message, /128/);
    const tags = Array.from({ length: 129 }, (_, i) => `t${i}`);
    await errorOf(await post({ tags }), 413);
    assert.equal((await post({ tags: tags.slice(1) })).status, 201);
  });

  test('visibility: public is for admins; community, private and shared for project members', async () => {
    const pub = await errorOf(await post({ visibility: 'public' }, 'member'), 403);
    assert.match(pub.message, /public/);
    for (const v of ['community', 'private', 'shared']) {
      const res = await post({ visibility: v }, 'member');
      assert.equal(res.status, 201, v);
      assert.equal(((await res.json()) as Json).visibility, v);
    }
    const admin = await post({ visibility: 'public' });
    assert.equal(admin.status, 201);
    assert.equal(((await admin.json()) as Json).visibility, 'public');
  });

  test('owner: another project is admin-only; readers cannot create', async () => {
    await errorOf(await post({ owner: PROJECTS.other }, 'member'), 403);
    await errorOf(await post({ owner: null }, 'member'), 403);
    const same = await post({ owner: PROJECTS.member }, 'member');
    assert.equal(same.status, 201);
    const forOther = await post({ owner: PROJECTS.other });
    assert.equal(forOther.status, 201);
    assert.equal(((await forOther.json()) as Json).owner, PROJECTS.other);
    await errorOf(await post({ name: 'r' }, 'reader'), 403);
  });

  test('no token is 401 with the JSON body', async () => {
    const res = await s.req('POST', '/v2/images', { token: null, json: {} });
    const e = await errorOf(res, 401);
    assert.match(e.message, /token|authenticat/i);
    assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-/);
  });
});
