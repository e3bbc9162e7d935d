/**
 * Glance's cache management API (/v2/cache), its status codes as
 * glance/api/v2/cached_images.py answers them, its policies, the versions the
 * cache adds, and every route answering 404 when the cache is off.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { activeImage, cachedIds, cacheState, download, startCachingServer } from './helpers.js';

type Json = Record<string, any>;

async function assertError(res: Response, status: number, fragment?: RegExp): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text) as Json;
  assert.equal(body.error.code, status);
  assert.equal(typeof body.error.message, 'string');
  if (fragment) assert.match(body.error.message, fragment);
}

describe('cache API with the cache off', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  test('every cache route answers 404, whoever asks', async () => {
    const id = (await createImage(s)).id;
    for (const [method, url] of [['GET', '/v2/cache'], ['DELETE', '/v2/cache'], ['PUT', `/v2/cache/${id}`], ['DELETE', `/v2/cache/${id}`], ['GET', `/v2/cache/${id}`], ['POST', '/v2/cache']] as const) {
      for (const token of ['admin', 'member'] as const) await assertError(await s.req(method, url, { token }), 404);
    }
  });

  test('the versions document leaves out 2.14 and 2.16, and /v2.14, /v2.16 are not served', async () => {
    const doc = (await (await s.req('GET', '/versions')).json()) as Json;
    const ids = doc.versions.map((v: Json) => v.id);
    assert.deepEqual(ids.slice(0, 3), ['v2.17', 'v2.15', 'v2.13']);
    assert.equal(doc.versions[0].status, 'CURRENT');
    assert.ok(!ids.includes('v2.14') && !ids.includes('v2.16'));
    assert.equal((await s.req('GET', '/v2.16/images')).status, 300);
    assert.equal((await s.req('GET', '/v2.14/cache')).status, 300);
  });
});

describe('cache API with the cache on', () => {
  let s: TestServer;
  let active: string;
  before(async () => {
    s = await startCachingServer();
    active = await activeImage(s, pattern(4096, 7));
  });
  after(async () => { await s.close(); });

  test('versions: 2.16 and 2.14 SUPPORTED beside 2.17 (CURRENT) and 2.15, and the versioned prefixes route', async () => {
    const doc = (await (await s.req('GET', '/versions')).json()) as Json;
    assert.deepEqual(doc.versions.slice(0, 5).map((v: Json) => [v.id, v.status]), [['v2.17', 'CURRENT'], ['v2.16', 'SUPPORTED'], ['v2.15', 'SUPPORTED'], ['v2.14', 'SUPPORTED'], ['v2.13', 'SUPPORTED']]);
    assert.equal(doc.versions.filter((v: Json) => v.status === 'CURRENT').length, 1);
    assert.equal((await s.req('GET', '/v2.16/cache')).status, 200);
    assert.equal((await s.req('GET', '/v2.14/cache')).status, 200);
    assert.equal((await s.req('GET', '/v2.16/images')).status, 200);
    assert.equal((await s.req('GET', '/v2.18/images')).status, 300);
  });

  test('GET /v2/cache: 200 with both lists for admin, 403 for a member (cache_list)', async () => {
    const res = await s.req('GET', '/v2/cache');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as Json;
    assert.deepEqual(Object.keys(body).sort(), ['cached_images', 'queued_images']);
    await assertError(await s.req('GET', '/v2/cache', { token: 'member' }), 403, /not permitted/);
    await assertError(await s.req('GET', '/v2/cache', { token: 'reader' }), 403);
  });

  test('PUT /v2/cache/{id}: 404 unknown, 400 not active, 403 member, 202 queues an active image', async () => {
    await assertError(await s.req('PUT', `/v2/cache/${randomUUID()}`), 404);
    await assertError(await s.req('PUT', '/v2/cache/non-existing-image-id'), 404);
    const queued = (await createImage(s)).id;
    await assertError(await s.req('PUT', `/v2/cache/${queued}`), 400, /active/);
    const own = await activeImage(s, pattern(100, 3), {}, 'member');
    await assertError(await s.req('PUT', `/v2/cache/${own}`, { token: 'member' }), 403);
    // A member of another project does not learn that the image exists.
    await assertError(await s.req('PUT', `/v2/cache/${active}`, { token: 'other' }), 404);
    const res = await s.req('PUT', `/v2/cache/${active}`, { headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
    assert.deepEqual((await cacheState(s)).queued_images, [active]);
    // Queueing twice keeps one entry.
    assert.equal((await s.req('PUT', `/v2/cache/${active}`)).status, 202);
    assert.deepEqual((await cacheState(s)).queued_images, [active]);
    assert.equal((await s.req('DELETE', `/v2/cache/${active}`)).status, 204);
    assert.deepEqual((await cacheState(s)).queued_images, []);
  });

  test('DELETE /v2/cache/{id}: 204 for an existing image even uncached, 404 only for an unknown one, 403 member', async () => {
    assert.equal((await s.req('DELETE', `/v2/cache/${active}`)).status, 204);
    const queued = (await createImage(s)).id;
    assert.equal((await s.req('DELETE', `/v2/cache/${queued}`)).status, 204);
    await assertError(await s.req('DELETE', `/v2/cache/${randomUUID()}`), 404);
    await assertError(await s.req('DELETE', '/v2/cache/not-a-uuid'), 404);
    const own = await activeImage(s, pattern(100, 4), {}, 'member');
    await assertError(await s.req('DELETE', `/v2/cache/${own}`, { token: 'member' }), 403);
    // Glance looks the image up first: a caller who cannot see it learns nothing more than 404.
    await assertError(await s.req('DELETE', `/v2/cache/${active}`, { token: 'member' }), 404);
  });

  test('DELETE /v2/cache/{id} of a deleted image still in the cache or the queue: 204, and it is gone', async () => {
    const id = await activeImage(s, pattern(2000, 11));
    assert.equal((await s.req('PUT', `/v2/cache/${id}`)).status, 202);
    // The image row goes behind the cache's back (as a delete served by another node).
    await s.rt.images.delete(id);
    assert.equal((await s.req('DELETE', `/v2/cache/${id}`)).status, 204);
    assert.ok(!(await cacheState(s)).queued_images.includes(id));
    await assertError(await s.req('DELETE', `/v2/cache/${id}`), 404);
  });

  test('DELETE /v2/cache: the clear-target header picks what is cleared; anything else is 400; a member gets 403', async () => {
    const fill = async () => {
      const a = await activeImage(s, pattern(3000, Math.floor(Math.random() * 1000) + 1));
      assert.equal((await download(s, a)).status, 200);
      await waitFor('the download to be cached', async () => (await cachedIds(s)).includes(a));
      const q = await activeImage(s, pattern(3000, Math.floor(Math.random() * 1000) + 1));
      assert.equal((await s.req('PUT', `/v2/cache/${q}`)).status, 202);
      const st = await cacheState(s);
      assert.ok(st.cached_images.length > 0 && st.queued_images.length > 0);
    };
    await fill();
    await assertError(await s.req('DELETE', '/v2/cache', { headers: { 'x-image-cache-clear-target': 'invalid' } }), 400, /x-image-cache-clear-target/);
    await assertError(await s.req('DELETE', '/v2/cache', { token: 'member' }), 403);
    let st = await cacheState(s);
    assert.ok(st.cached_images.length > 0 && st.queued_images.length > 0, 'a refused clear clears nothing');

    assert.equal((await s.req('DELETE', '/v2/cache', { headers: { 'x-image-cache-clear-target': 'cache' } })).status, 204);
    st = await cacheState(s);
    assert.equal(st.cached_images.length, 0);
    assert.ok(st.queued_images.length > 0);

    assert.equal((await s.req('DELETE', '/v2/cache', { headers: { 'x-image-cache-clear-target': 'QUEUE' } })).status, 204);
    st = await cacheState(s);
    assert.equal(st.queued_images.length, 0);

    await fill();
    assert.equal((await s.req('DELETE', '/v2/cache', { headers: { 'x-image-cache-clear-target': '' } })).status, 204);
    assert.deepEqual(await cacheState(s), { cached_images: [], queued_images: [] });

    await fill();
    assert.equal((await s.req('DELETE', '/v2/cache')).status, 204);
    assert.deepEqual(await cacheState(s), { cached_images: [], queued_images: [] });
  });

  test('a cached image is listed with image_id, hits, last_accessed, last_modified, size', async () => {
    const data = pattern(5000, 21);
    const id = await activeImage(s, data);
    const before = Date.now() / 1000;
    assert.equal((await download(s, id)).status, 200);
    const entry = await waitFor('the entry', async () => (await cacheState(s)).cached_images.find((e) => e.image_id === id));
    assert.deepEqual(Object.keys(entry).sort(), ['hits', 'image_id', 'last_accessed', 'last_modified', 'size']);
    assert.equal(entry.size, data.length);
    assert.equal(entry.hits, 0);
    assert.ok(entry.last_modified >= before - 1 && entry.last_accessed >= entry.last_modified);
    assert.deepEqual((await download(s, id)).body, data);
    const again = (await cacheState(s)).cached_images.find((e) => e.image_id === id)!;
    assert.equal(again.hits, 1);
    assert.ok(again.last_accessed >= entry.last_accessed);
    assert.equal(again.last_modified, entry.last_modified);
  });
});
