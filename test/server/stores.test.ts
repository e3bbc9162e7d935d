import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { startTestServer, createImage, makeDataDir, uploadBytes, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { errorOf, getImage, importImage, stage, waitImage } from '../import/helpers.js';
import { pattern } from '../support/bytes.js';

describe('multiple stores', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({
      config: {
        stores: [
          { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast store' },
          { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'Cheap store' },
          { id: 'archive', type: 'filesystem', path: 'archive', description: '', readOnly: true },
        ],
        defaultStore: 'cheap',
        import: { methods: ['glance-direct', 'copy-image'] },
      },
    });
  });
  after(() => s.close());

  test('GET /v2/info/stores lists the configured stores as Glance does; staging is not one of them', async () => {
    const res = await s.req('GET', '/v2/info/stores', { token: 'member' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      stores: [
        { id: 'fast', description: 'Fast store' },
        { id: 'cheap', description: 'Cheap store', default: 'true' },
        { id: 'archive', 'read-only': 'true' },
      ],
    });
    assert.equal((await s.req('GET', '/v2/info/stores', { token: null })).status, 401);
  });

  test('GET /v2/info/stores/detail is for admins and adds type and properties', async () => {
    const res = await s.req('GET', '/v2/info/stores/detail');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { stores: Record<string, any>[] };
    assert.deepEqual(body.stores.map((x) => x.id), ['fast', 'cheap', 'archive']);
    assert.equal(body.stores[0].type, 'file');
    assert.equal(body.stores[0].properties.data_dir, path.join(s.dataDir, 'fast'));
    assert.equal(typeof body.stores[0].properties.chunk_size, 'number');
    const member = await s.req('GET', '/v2/info/stores/detail', { token: 'member' });
    assert.equal(member.status, 403);
    await errorOf(member);
  });

  test('GET /v2/info/import lists only the enabled methods', async () => {
    const res = await s.req('GET', '/v2/info/import', { token: 'reader' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { 'import-methods': { description: 'Import methods available.', type: 'array', value: ['glance-direct', 'copy-image'] } });
  });

  test('POST /v2/images announces import methods and the real store ids', async () => {
    const res = await s.req('POST', '/v2/images', { json: { name: 'h', disk_format: 'raw', container_format: 'bare' } });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('openstack-image-import-methods'), 'glance-direct,copy-image');
    assert.equal(res.headers.get('openstack-image-store-ids'), 'fast,cheap,archive');
  });

  test('uploads go to the default store or X-Image-Meta-Store; the stores property lists them sorted', async () => {
    const a = await createImage(s);
    assert.equal((await uploadBytes(s, a.id, pattern(100))).status, 204);
    assert.equal((await getImage(s, a.id)).stores, 'cheap');
    const b = await createImage(s);
    const res = await s.req('PUT', `/v2/images/${b.id}/file`, { headers: { 'content-type': 'application/octet-stream', 'x-image-meta-store': 'fast' }, body: pattern(100) });
    assert.equal(res.status, 204);
    assert.equal((await getImage(s, b.id)).stores, 'fast');
    // all_stores leaves read-only stores out; naming one is a conflict
    const c = await createImage(s);
    assert.equal((await stage(s, c.id, pattern(100))).status, 204);
    const ro = await importImage(s, c.id, { method: { name: 'glance-direct' }, stores: ['archive'] });
    assert.equal(ro.status, 409);
    assert.match((await errorOf(ro)).message, /read-only/);
    assert.equal((await importImage(s, c.id, { method: { name: 'glance-direct' }, all_stores: true })).status, 202);
    assert.equal((await waitImage(s, c.id, (i) => i.status === 'active')).stores, 'cheap,fast');
  });

  test('copy-image of an image whose multihash is not sha512 (or that has no digests, as migrated from Glance) checks what it has', async () => {
    for (const [algo, value, checksum] of [['sha256', 'x', 'y'], [null, null, null]] as const) {
      const img = await createImage(s);
      const data = pattern(8192, 5);
      assert.equal((await uploadBytes(s, img.id, data)).status, 204);
      const sha256 = createHash('sha256').update(data).digest('hex');
      const md5 = createHash('md5').update(data).digest('hex');
      await s.rt.db.updateTable('images').set({ os_hash_algo: algo, os_hash_value: value === null ? null : sha256, checksum: checksum === null ? null : md5 }).where('id', '=', img.id).execute();
      assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['fast'] })).status, 202);
      const done = await waitImage(s, img.id, (i) => !('os_glance_import_task' in i) && i.stores === 'cheap,fast', 20_000);
      assert.equal(done.os_hash_algo, algo, 'the recorded digests stay as they were');
      assert.equal(done.os_hash_value, value === null ? null : sha256);
      const copy = await s.req('GET', `/v2/images/${img.id}/file`);
      assert.ok(Buffer.from(await copy.arrayBuffer()).equals(data));
    }
  });

  test('DELETE /v2/stores/{store}/{image} removes one copy; never the last one', async () => {
    const img = await createImage(s, {}, 'member');
    assert.equal((await uploadBytes(s, img.id, pattern(4096), 'member')).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['fast'] })).status, 202);
    await waitImage(s, img.id, (i) => i.stores === 'cheap,fast' && !('os_glance_import_task' in i));

    const member = await s.req('DELETE', `/v2/stores/fast/${img.id}`, { token: 'member' });
    assert.equal(member.status, 403);
    await errorOf(member);
    const other = await s.req('DELETE', `/v2/stores/fast/${img.id}`, { token: 'other' });
    assert.equal(other.status, 404);
    const unknown = await s.req('DELETE', `/v2/stores/nope/${img.id}`);
    assert.equal(unknown.status, 409);
    assert.match((await errorOf(unknown)).message, /The selected store nope is not available/);
    const absent = await s.req('DELETE', `/v2/stores/archive/${img.id}`);
    assert.equal(absent.status, 404);
    assert.match((await errorOf(absent)).message, /is not stored in store archive/);
    assert.equal((await s.req('DELETE', '/v2/stores/fast/00000000-0000-0000-0000-000000000000')).status, 404);
    assert.equal((await s.req('GET', `/v2/stores/fast/${img.id}`)).status, 405);

    const ok = await s.req('DELETE', `/v2/stores/fast/${img.id}`);
    assert.equal(ok.status, 204);
    assert.equal(await ok.text(), '');
    const after = await getImage(s, img.id);
    assert.equal(after.stores, 'cheap');
    assert.equal(after.status, 'active');
    assert.equal(existsSync(path.join(s.dataDir, 'fast', img.id)), false);

    const last = await s.req('DELETE', `/v2/stores/cheap/${img.id}`);
    assert.equal(last.status, 403);
    assert.match((await errorOf(last)).message, /only copy of image .*delete the image instead/);
    assert.equal((await getImage(s, img.id)).stores, 'cheap');

    const queued = await createImage(s);
    const notActive = await s.req('DELETE', `/v2/stores/cheap/${queued.id}`);
    assert.equal(notActive.status, 409);
    await errorOf(notActive);
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  });

  test('two concurrent removals cannot take both copies', async () => {
    const img = await createImage(s);
    assert.equal((await uploadBytes(s, img.id, pattern(4096))).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['fast'] })).status, 202);
    await waitImage(s, img.id, (i) => i.stores === 'cheap,fast' && !('os_glance_import_task' in i));
    const [a, b] = await Promise.all([s.req('DELETE', `/v2/stores/fast/${img.id}`), s.req('DELETE', `/v2/stores/cheap/${img.id}`)]);
    assert.deepEqual([a.status, b.status].sort(), [204, 403]);
    const after = await getImage(s, img.id);
    assert.equal(after.status, 'active');
    assert.ok(after.stores === 'fast' || after.stores === 'cheap');
    const dl = await s.req('GET', `/v2/images/${img.id}/file`);
    assert.equal(dl.status, 200);
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), pattern(4096));
  });
});

describe('the start-up sweep and read-only stores', () => {
  test('files no image owns are removed from writable stores only: a read-only store may be another service\'s data', async () => {
    const dataDir = makeDataDir();
    const stray = randomUUID();
    for (const dir of ['archive', 'cheap']) {
      mkdirSync(path.join(dataDir, dir), { recursive: true });
      writeFileSync(path.join(dataDir, dir, stray), 'not an image of this server');
    }
    const s = await startTestServer({
      dataDir,
      config: {
        stores: [
          { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'writable' },
          { id: 'archive', type: 'filesystem', path: 'archive', description: 'read-only', readOnly: true },
        ],
        defaultStore: 'cheap',
      },
    });
    try {
      // SQLite mode sweeps at start; a PostgreSQL node never does (other nodes may own the files)
      if (s.rt.dialect === 'sqlite') assert.equal(existsSync(path.join(dataDir, 'cheap', stray)), false, 'the writable store was swept');
      assert.equal(existsSync(path.join(dataDir, 'archive', stray)), true, 'the read-only store was left alone');
    } finally {
      await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a memory store (type: memory, for tests and trials)', () => {
  test('upload, ranged download, glance-direct through a memory staging area, delete; a read-only one answers 503', async () => {
    const s = await startTestServer({
      config: {
        stores: [
          { id: 'mem', type: 'memory', description: 'in memory' },
          { id: 'mem-ro', type: 'memory', readOnly: true },
        ],
        defaultStore: 'mem',
        staging: { id: 'os_glance_staging_store', type: 'memory' },
        import: { methods: ['glance-direct'] },
      },
    });
    try {
      const data = pattern(3 * 1024 * 1024 + 7, 4);
      const a = await createImage(s);
      assert.equal((await uploadBytes(s, a.id, data)).status, 204);
      const img = await getImage(s, a.id);
      assert.equal(img.stores, 'mem');
      assert.equal(img.checksum, createHash('md5').update(data).digest('hex'));
      const whole = await s.req('GET', `/v2/images/${a.id}/file`);
      assert.equal(whole.status, 200);
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(data));
      const part = await s.req('GET', `/v2/images/${a.id}/file`, { headers: { range: 'bytes=1000-1999' } });
      assert.equal(part.status, 206);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(1000, 2000)));

      const b = await createImage(s);
      assert.equal((await stage(s, b.id, data)).status, 204);
      assert.equal((await importImage(s, b.id, { method: { name: 'glance-direct' } })).status, 202);
      assert.equal((await waitImage(s, b.id, (i) => i.status === 'active')).stores, 'mem');
      const imported = await s.req('GET', `/v2/images/${b.id}/file`);
      assert.ok(Buffer.from(await imported.arrayBuffer()).equals(data));

      const c = await createImage(s);
      const ro = await s.req('PUT', `/v2/images/${c.id}/file`, { headers: { 'content-type': 'application/octet-stream', 'x-image-meta-store': 'mem-ro' }, body: pattern(100) });
      assert.equal(ro.status, 503);
      assert.match((await errorOf(ro)).message, /read-only/);
      assert.equal((await getImage(s, c.id)).status, 'queued');

      assert.equal((await s.req('DELETE', `/v2/images/${a.id}`)).status, 204);
      assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
    } finally {
      await s.close();
    }
  });
});
