import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startTestServer, createImage, uploadBytes, data1k, type TestServer, type TOKENS } from '../support/server.js';

type Json = Record<string, any>;
type Who = keyof typeof TOKENS;

async function expectError(res: Response, status: number, pattern?: RegExp): Promise<Json> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-[0-9a-f-]{36}$/);
  const e = JSON.parse(text).error;
  assert.equal(e.code, status);
  if (pattern) assert.match(e.message, pattern);
  return e;
}

describe('image show, delete, deactivate and reactivate', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  const get = (id: string, token: Who = 'admin') => s.req('GET', `/v2/images/${id}`, { token });
  const action = (id: string, what: string, token: Who = 'admin', headers?: Record<string, string>) => s.req('POST', `/v2/images/${id}/actions/${what}`, { token, headers });

  test('the representation after an upload is exactly Glance\'s', async () => {
    const img = await createImage(s, { name: 'observe-upload' });
    assert.equal((await uploadBytes(s, img.id, data1k())).status, 204);
    const res = await get(img.id);
    assert.equal(res.status, 200);
    const shown = (await res.json()) as Json;
    // key order and values of the observed Glance response (observed.md, "GET image after upload")
    assert.deepEqual(Object.keys(shown), [
      'name', 'disk_format', 'container_format', 'visibility', 'size', 'virtual_size', 'status', 'checksum', 'protected', 'min_ram', 'min_disk',
      'owner', 'os_hidden', 'os_hash_algo', 'os_hash_value', 'id', 'created_at', 'updated_at', 'tags', 'self', 'file', 'schema', 'stores',
    ]);
    assert.deepEqual({ ...shown, id: 'x', created_at: 'x', updated_at: 'x', self: 'x', file: 'x', owner: 'x' }, {
      name: 'observe-upload', disk_format: 'raw', container_format: 'bare', visibility: 'shared', size: 1000, virtual_size: 1000, status: 'active',
      checksum: 'cbecbdb0fdd5cec1e242493b6008cc79', protected: false, min_ram: 0, min_disk: 0, owner: 'x', os_hidden: false, os_hash_algo: 'sha512',
      os_hash_value: createHash('sha512').update(data1k()).digest('hex'), id: 'x', created_at: 'x', updated_at: 'x', tags: [], self: 'x', file: 'x',
      schema: '/v2/schemas/image', stores: 'local',
    });
  });

  test('ids that are not UUIDs, unknown ids and invisible images answer 404', async () => {
    for (const id of ['cirros', 'not-a-uuid', 'x'.repeat(300), randomUUID(), encodeURIComponent('ü 🐧'), '%00']) {
      await expectError(await get(id), 404, /image/i);
    }
    const priv = await createImage(s, { visibility: 'private' }, 'member');
    await expectError(await get(priv.id, 'other'), 404, new RegExp(priv.id));
    assert.equal((await get(priv.id, 'reader')).status, 200, 'readers of the project see it');
  });

  test('hidden bookkeeping properties are never shown', async () => {
    const img = await createImage(s);
    await s.rt.images.setProperties(img.id, { os_glance_stage_host: 'http://node-a:9292', os_glance_hash_op_host: 'node-a', visible_one: 'v' });
    const shown = (await (await get(img.id)).json()) as Json;
    assert.equal(Object.hasOwn(shown, 'os_glance_stage_host'), false);
    assert.equal(Object.hasOwn(shown, 'os_glance_hash_op_host'), false);
    assert.equal(shown.visible_one, 'v');
    const listed = ((await (await s.req('GET', `/v2/images?id=${img.id}`)).json()) as Json).images[0];
    assert.equal(Object.hasOwn(listed, 'os_glance_stage_host'), false);
  });

  test('DELETE: 204, the data leaves the store, the image is gone', async () => {
    const img = await createImage(s, { name: 'doomed' });
    assert.equal((await uploadBytes(s, img.id, data1k())).status, 204);
    const file = path.join(s.dataDir, 'images', img.id);
    assert.ok(existsSync(file), 'the upload is in the filesystem store');
    const res = await s.req('DELETE', `/v2/images/${img.id}`);
    assert.equal(res.status, 204);
    assert.equal(await res.text(), '');
    assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-/);
    assert.equal(existsSync(file), false, 'the data is removed');
    await expectError(await get(img.id), 404);
    await expectError(await s.req('DELETE', `/v2/images/${img.id}`), 404);
    const rows = await s.rt.db.selectFrom('image_locations').selectAll().where('image_id', '=', img.id).execute();
    assert.deepEqual(rows, []);
  });

  test('DELETE with an empty JSON body (as glanceclient and tempest send) is fine', async () => {
    const img = await createImage(s);
    const res = await s.req('DELETE', `/v2/images/${img.id}`, { body: '', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 204);
  });

  test('DELETE of a protected image is 403 until it is unprotected', async () => {
    const img = await createImage(s, { protected: true });
    await expectError(await s.req('DELETE', `/v2/images/${img.id}`), 403, /protected/);
    assert.equal((await get(img.id)).status, 200);
    const unprotect = await s.req('PATCH', `/v2/images/${img.id}`, {
      body: JSON.stringify([{ op: 'replace', path: '/protected', value: false }]),
      headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
    });
    assert.equal(unprotect.status, 200);
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`)).status, 204);
  });

  test('DELETE by another project, a reader, or of an unknown id', async () => {
    const shared = await createImage(s, { visibility: 'public' });
    await expectError(await s.req('DELETE', `/v2/images/${shared.id}`, { token: 'member' }), 403);
    const mine = await createImage(s, {}, 'member');
    await expectError(await s.req('DELETE', `/v2/images/${mine.id}`, { token: 'reader' }), 403);
    await expectError(await s.req('DELETE', `/v2/images/${mine.id}`, { token: 'other' }), 404);
    await expectError(await s.req('DELETE', `/v2/images/${randomUUID()}`), 404);
    await expectError(await s.req('DELETE', '/v2/images/not-a-uuid'), 404);
    assert.equal((await s.req('DELETE', `/v2/images/${mine.id}`, { token: 'member' })).status, 204);
  });

  test('deactivate and reactivate: 204, idempotent, 403 from the wrong state (Glance\'s domain raises Forbidden)', async () => {
    const img = await createImage(s, {}, 'member');
    await expectError(await action(img.id, 'deactivate', 'member'), 403, /queued/);
    await expectError(await action(img.id, 'reactivate', 'member'), 403, /queued/);
    assert.equal(((await (await get(img.id)).json()) as Json).status, 'queued', 'a refused action changes nothing');
    assert.equal((await uploadBytes(s, img.id, data1k(), 'member')).status, 204);
    for (let i = 0; i < 2; i++) {
      const res = await action(img.id, 'deactivate', 'member', { 'content-type': 'application/json' });
      assert.equal(res.status, 204);
      assert.equal(await res.text(), '');
      assert.equal(((await (await get(img.id)).json()) as Json).status, 'deactivated');
    }
    assert.equal((await s.req('GET', `/v2/images/${img.id}/file`, { token: 'member' })).status, 403, 'no download while deactivated');
    for (let i = 0; i < 2; i++) {
      assert.equal((await action(img.id, 'reactivate', 'member')).status, 204);
      assert.equal(((await (await get(img.id)).json()) as Json).status, 'active');
    }
    await expectError(await action(img.id, 'deactivate', 'reader'), 403);
    await expectError(await action(img.id, 'deactivate', 'other'), 404);
    await expectError(await action(randomUUID(), 'deactivate'), 404);
    await expectError(await action(img.id, 'explode'), 404);
    const get405 = await s.req('GET', `/v2/images/${img.id}/actions/deactivate`);
    await expectError(get405, 405);
    assert.equal(get405.headers.get('allow'), 'POST');
  });
});
