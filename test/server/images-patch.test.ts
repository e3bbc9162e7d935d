import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestServer, createImage, uploadBytes, data1k, PROJECTS, type TestServer, type TOKENS } from '../support/server.js';

type Json = Record<string, any>;
type Who = keyof typeof TOKENS;

const V21 = 'application/openstack-images-v2.1-json-patch';
const V20 = 'application/openstack-images-v2.0-json-patch';

describe('PATCH /v2/images/{id}', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  const patch = (id: string, body: unknown, opts: { token?: Who; type?: string } = {}) =>
    s.req('PATCH', `/v2/images/${id}`, { token: opts.token ?? 'admin', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': opts.type ?? V21 } });

  async function ok(id: string, body: unknown, opts: { token?: Who; type?: string } = {}): Promise<Json> {
    const res = await patch(id, body, opts);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    return JSON.parse(text);
  }

  async function fails(id: string, body: unknown, status: number, pattern?: RegExp, opts: { token?: Who; type?: string } = {}): Promise<Json> {
    const res = await patch(id, body, opts);
    const text = await res.text();
    assert.equal(res.status, status, `${JSON.stringify(body)}: ${text}`);
    const e = JSON.parse(text).error;
    assert.equal(e.code, status);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }

  test('replace, add and remove base attributes and extra properties', async () => {
    const img = await createImage(s, { name: 'before', extra: 'x' }, 'member');
    const out = await ok(img.id, [
      { op: 'replace', path: '/name', value: 'after' },
      { op: 'replace', path: '/min_ram', value: 256 },
      { op: 'add', path: '/min_disk', value: 3 },
      { op: 'replace', path: '/protected', value: true },
      { op: 'replace', path: '/os_hidden', value: true },
      { op: 'replace', path: '/visibility', value: 'private' },
      { op: 'replace', path: '/tags', value: ['t1', 't2', 't1'] },
      { op: 'add', path: '/hw_disk_bus', value: 'scsi' },
      { op: 'replace', path: '/extra', value: 'y' },
      { op: 'add', path: '/os_distro', value: 'ubuntu' },
    ], { token: 'member' });
    assert.equal(out.name, 'after');
    assert.equal(out.min_ram, 256);
    assert.equal(out.min_disk, 3);
    assert.equal(out.protected, true);
    assert.equal(out.os_hidden, true);
    assert.equal(out.visibility, 'private');
    assert.deepEqual(out.tags.sort(), ['t1', 't2']);
    assert.equal(out.hw_disk_bus, 'scsi');
    assert.equal(out.extra, 'y');
    assert.equal(out.os_distro, 'ubuntu');
    assert.equal(out.id, img.id);
    const shown = (await (await s.req('GET', `/v2/images/${img.id}`, { token: 'member' })).json()) as Json;
    assert.deepEqual(shown, out);
    const removed = await ok(img.id, [{ op: 'remove', path: '/extra' }, { op: 'remove', path: '/hw_disk_bus' }], { token: 'member' });
    assert.equal(Object.hasOwn(removed, 'extra'), false);
    assert.equal(Object.hasOwn(removed, 'hw_disk_bus'), false);
    const renamed = await ok(img.id, [{ op: 'replace', path: '/name', value: null }], { token: 'member' });
    assert.equal(renamed.name, null);
  });

  test('add replaces an existing value (v2.1); v2.0 add of something present is 409', async () => {
    const img = await createImage(s, { k: 'one' });
    assert.equal((await ok(img.id, [{ op: 'add', path: '/k', value: 'two' }])).k, 'two');
    assert.equal((await ok(img.id, [{ op: 'add', path: '/name', value: 'n' }])).name, 'n');
    await fails(img.id, [{ add: '/k', value: 'three' }], 409, /already present/, { type: V20 });
    await fails(img.id, [{ add: '/name', value: 'x' }], 409, /already present/, { type: V20 });
    const d4 = await ok(img.id, [{ add: '/new', value: 'v' }, { replace: '/k', value: 'four' }, { remove: '/new' }], { type: V20 });
    assert.equal(d4.k, 'four');
    assert.equal(d4.new, undefined);
    await fails(img.id, [{ add: '/a', replace: '/b', value: 'x' }], 400, /only one member/, { type: V20 });
    await fails(img.id, [{ path: '/a', value: 'x' }], 400, /exactly one member/, { type: V20 });
  });

  test('JSON-pointer escapes: ~1 is "/", ~0 is "~"', async () => {
    const img = await createImage(s);
    const out = await ok(img.id, [{ op: 'add', path: '/a~1b', value: 'slash' }, { op: 'add', path: '/c~0d', value: 'tilde' }, { op: 'add', path: '/e~01', value: 'both' }]);
    assert.equal(out['a/b'], 'slash');
    assert.equal(out['c~d'], 'tilde');
    assert.equal(out['e~1'], 'both');
    assert.equal((await ok(img.id, [{ op: 'remove', path: '/a~1b' }]))['a/b'], undefined);
    for (const path of ['noslash', '/a//b', '/a/', '/bad~2', '/bad~', '/a/b', '//']) await fails(img.id, [{ op: 'add', path, value: 'x' }], 400);
  });

  test('malformed bodies and operations are 400', async () => {
    const img = await createImage(s);
    const cases: unknown[] = [
      {}, { op: 'add' }, 'null', '"x"', '{bad', [1], [[]], [null],
      [{ path: '/name', value: 'x' }], [{ op: 'move', path: '/name', value: 'x' }], [{ op: 'add', value: 'x' }],
      [{ op: 'add', path: '/name' }], [{ op: 'replace', path: 5, value: 'x' }],
      [{ op: 'replace', path: '/name', value: 5 }], [{ op: 'replace', path: '/name', value: 'n'.repeat(256) }],
      [{ op: 'replace', path: '/visibility', value: 'world' }], [{ op: 'replace', path: '/protected', value: 'true' }],
      [{ op: 'replace', path: '/min_ram', value: -5 }], [{ op: 'replace', path: '/min_disk', value: 'big' }],
      [{ op: 'replace', path: '/tags', value: 'a,b' }], [{ op: 'replace', path: '/tags', value: [1] }],
      [{ op: 'add', path: '/extra', value: 5 }], [{ op: 'add', path: '/extra', value: null }], [{ op: 'add', path: '/extra', value: { a: 1 } }],
      [{ op: 'add', path: '/kernel_id', value: 'nope' }], [{ op: 'add', path: `/${'k'.repeat(256)}`, value: 'x' }],
      [{ op: 'replace', path: '/status', value: 5 }].map((c) => ({ ...c, op: 'bogus' })),
    ];
    for (const body of cases) await fails(img.id, body, 400);
    await fails(img.id, '', 400, /[Bb]ody expected/);
    const after = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Json;
    assert.equal(after.updated_at, img.updated_at);
  });

  test('read-only and reserved attributes are 403; so is removing a base attribute', async () => {
    const img = await createImage(s);
    for (const key of ['id', 'status', 'checksum', 'size', 'virtual_size', 'created_at', 'updated_at', 'os_hash_algo', 'os_hash_value', 'self', 'file', 'schema', 'direct_url', 'stores']) {
      await fails(img.id, [{ op: 'replace', path: `/${key}`, value: 'x' }], 403, /read-only/);
    }
    for (const key of ['location', 'deleted', 'deleted_at', 'os_glance_import_task', 'os_glance_x']) {
      await fails(img.id, [{ op: 'add', path: `/${key}`, value: 'x' }], 403, /reserved/);
    }
    await fails(img.id, [{ op: 'replace', path: '/locations', value: [{ url: 'file:///etc/passwd', metadata: {} }] }], 403);
    await fails(img.id, [{ op: 'add', path: '/locations/-', value: { url: 'file:///etc/passwd', metadata: {} } }], 403);
    for (const key of ['name', 'visibility', 'tags', 'min_ram']) await fails(img.id, [{ op: 'remove', path: `/${key}` }], 403, /may not be removed/);
  });

  test('replace or remove of a property that does not exist is 409; nothing is applied', async () => {
    const img = await createImage(s, { name: 'atomic', keep: 'k' });
    await fails(img.id, [{ op: 'replace', path: '/missing', value: 'x' }], 409, /missing does not exist/);
    await fails(img.id, [{ op: 'remove', path: '/missing' }], 409, /does not exist/);
    for (const inherited of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      await fails(img.id, [{ op: 'replace', path: `/${inherited}`, value: 'x' }], 409, /does not exist/);
    }
    await fails(img.id, [{ op: 'replace', path: '/name', value: 'changed' }, { op: 'remove', path: '/nope' }], 409);
    const shown = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Json;
    assert.equal(shown.name, 'atomic');
    assert.equal(shown.keep, 'k');
  });

  test('Content-Type must be a JSON-patch media type (415 with Accept-Patch)', async () => {
    const img = await createImage(s);
    for (const type of ['application/json', 'application/json-patch+json', 'text/plain', 'garbage']) {
      const res = await patch(img.id, [{ op: 'replace', path: '/name', value: 'x' }], { type });
      assert.equal(res.status, 415, type);
      assert.equal(res.headers.get('accept-patch'), `${V20}, ${V21}`);
      const e = ((await res.json()) as Json).error;
      assert.equal(e.code, 415);
      assert.match(e.message, /openstack-images-v2\.1-json-patch/);
    }
    assert.equal((await ok(img.id, [{ op: 'replace', path: '/name', value: 'p' }], { type: `${V21}; charset=UTF-8` })).name, 'p');
  });

  test('disk_format and container_format change only while queued', async () => {
    const img = await createImage(s, { disk_format: 'raw', container_format: 'bare' });
    const q = await ok(img.id, [{ op: 'replace', path: '/disk_format', value: 'iso' }, { op: 'replace', path: '/container_format', value: 'ovf' }]);
    assert.equal(q.disk_format, 'iso');
    await ok(img.id, [{ op: 'replace', path: '/disk_format', value: 'raw' }, { op: 'replace', path: '/container_format', value: 'bare' }]);
    assert.equal((await uploadBytes(s, img.id, data1k())).status, 204);
    await fails(img.id, [{ op: 'replace', path: '/disk_format', value: 'qcow2' }], 403, /queued/);
    await fails(img.id, [{ op: 'replace', path: '/container_format', value: 'ovf' }], 403, /queued/);
    await fails(img.id, [{ op: 'replace', path: '/disk_format', value: 'raw' }], 403, /queued/);
    assert.equal((await ok(img.id, [{ op: 'replace', path: '/name', value: 'active-rename' }])).name, 'active-rename');
  });

  test('who may change what: owner, visibility, other projects and readers', async () => {
    const img = await createImage(s, { name: 'p1-img' }, 'member');
    await fails(img.id, [{ op: 'replace', path: '/owner', value: PROJECTS.other }], 403, /[Oo]wner/, { token: 'member' });
    await fails(img.id, [{ op: 'replace', path: '/visibility', value: 'public' }], 403, /public/, { token: 'member' });
    assert.equal((await ok(img.id, [{ op: 'replace', path: '/visibility', value: 'community' }], { token: 'member' })).visibility, 'community');
    await fails(img.id, [{ op: 'replace', path: '/name', value: 'x' }], 403, undefined, { token: 'reader' });
    await fails(img.id, [{ op: 'replace', path: '/name', value: 'x' }], 403, undefined, { token: 'other' });
    assert.equal((await ok(img.id, [{ op: 'replace', path: '/visibility', value: 'public' }])).visibility, 'public');
    const moved = await ok(img.id, [{ op: 'replace', path: '/owner', value: PROJECTS.other }]);
    assert.equal(moved.owner, PROJECTS.other);
    const priv = await createImage(s, { visibility: 'private' }, 'member');
    await fails(priv.id, [{ op: 'replace', path: '/name', value: 'x' }], 404, undefined, { token: 'other' });
  });

  test('unknown or malformed ids are 404; an empty change list changes nothing', async () => {
    await fails(randomUUID(), [{ op: 'replace', path: '/name', value: 'x' }], 404, /No image found/);
    await fails('not-a-uuid', [{ op: 'replace', path: '/name', value: 'x' }], 404);
    const img = await createImage(s, { name: 'same' });
    const out = await ok(img.id, []);
    assert.equal(out.updated_at, img.updated_at);
  });

  test('more than 128 properties or tags through PATCH is 413', async () => {
    const props: Json = {};
    for (let i = 0; i < 128; i++) props[`p${i}`] = 'v';
    const img = await createImage(s, props);
    await fails(img.id, [{ op: 'add', path: '/p128', value: 'v' }], 413, /128/);
    assert.equal((await ok(img.id, [{ op: 'replace', path: '/p0', value: 'w' }])).p0, 'w');
    await fails(img.id, [{ op: 'replace', path: '/tags', value: Array.from({ length: 129 }, (_, i) => `t${i}`) }], 413, /128/);
  });

  test('kernel_id set to null goes away', async () => {
    const id = randomUUID();
    const img = await createImage(s, { kernel_id: id });
    assert.equal(img.kernel_id, id);
    const out = await ok(img.id, [{ op: 'replace', path: '/kernel_id', value: null }]);
    assert.equal(Object.hasOwn(out, 'kernel_id'), false);
  });
});
