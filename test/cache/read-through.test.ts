/**
 * The read-through cache in front of the store (docs/cache.md): a hit never
 * touches the store, concurrent misses read it once, Range on a miss goes to
 * the store, LRU eviction, partial or unverified files never become entries,
 * deleted images leave the cache, authorization comes before a hit, the
 * prefetcher, and what a restart finds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, startTestServer, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { activeImage, cacheDir, cachedIds, cacheFiles, cacheState, download, startCachingServer, storeFile, storeReads } from './helpers.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('read-through cache', () => {
  let s: TestServer;
  before(async () => {
    // 8 MiB of cache; metrics on, to count the store's reads.
    s = await startCachingServer({ maxSizeGiB: 8 / 1024 }, { config: { metrics: { enabled: true, port: 0 } } });
  });
  after(async () => { await s.close(); });

  test('a miss streams the image and caches it; a hit is served with the store file gone', async () => {
    const data = pattern(3 * MiB + 17, 31);
    const id = await activeImage(s, data);
    const r0 = await storeReads(s);
    const first = await download(s, id);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-length'), String(data.length));
    assert.equal(first.headers.get('content-md5'), md5(data));
    assert.ok(first.body.equals(data));
    await waitFor('the image to be cached', async () => (await cachedIds(s)).includes(id));
    const r1 = await storeReads(s);
    assert.deepEqual([r1.gets - r0.gets, r1.bytes - r0.bytes], [1, data.length], 'the miss read the store once');

    unlinkSync(storeFile(s, id));
    const hit = await download(s, id);
    assert.equal(hit.status, 200);
    assert.equal(hit.headers.get('content-md5'), md5(data));
    assert.ok(hit.body.equals(data));
    const ranged = await download(s, id, { range: 'bytes=1000-2999' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes 1000-2999/${data.length}`);
    assert.ok(ranged.body.equals(data.subarray(1000, 3000)));
    const r2 = await storeReads(s);
    assert.deepEqual([r2.gets, r2.bytes], [r1.gets, r1.bytes], 'hits read nothing from the store');
    assert.equal((await cacheState(s)).cached_images.find((e) => e.image_id === id)!.hits, 2);
  });

  test('8 concurrent downloads of an uncached image read the store once, and all get every byte', async () => {
    const data = pattern(6 * MiB + 5, 32);
    const id = await activeImage(s, data);
    const r0 = await storeReads(s);
    const results = await Promise.all(Array.from({ length: 8 }, () => download(s, id)));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(data));
    }
    await waitFor('the image to be cached', async () => (await cachedIds(s)).includes(id));
    const r1 = await storeReads(s);
    assert.deepEqual([r1.gets - r0.gets, r1.bytes - r0.bytes], [1, data.length]);
    assert.equal(s.rt.cache!.filling, 0);
  });

  test('a Range request on a miss is served from the store and caches nothing', async () => {
    const data = pattern(MiB, 33);
    const id = await activeImage(s, data);
    const r = await download(s, id, { range: 'bytes=10-19' });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(data.subarray(10, 20)));
    assert.equal(s.rt.cache!.filling, 0);
    assert.ok(!(await cachedIds(s)).includes(id));
  });

  test('least recently used images are evicted to stay within maxSizeGiB', async () => {
    assert.equal((await s.req('DELETE', '/v2/cache')).status, 204);
    const datas = [1, 2, 3, 4].map((i) => pattern(2 * MiB + i, 40 + i));
    const ids: string[] = [];
    for (const d of datas) ids.push(await activeImage(s, d));
    const cache = async (id: string) => {
      assert.equal((await download(s, id)).status, 200);
      await waitFor(`image ${id} to be cached`, async () => (await cachedIds(s)).includes(id));
    };
    for (const id of ids.slice(0, 3)) await cache(id);
    // Touch the first: the second is now the least recently used.
    assert.ok((await download(s, ids[0])).body.equals(datas[0]));
    await cache(ids[3]);
    const cached = await cachedIds(s);
    assert.deepEqual([...cached].sort(), [ids[0], ids[2], ids[3]].sort());
    const st = await cacheState(s);
    assert.ok(st.cached_images.reduce((n, e) => n + e.size, 0) <= 8 * MiB);
    await waitFor('the evicted file to be removed', () => cacheFiles(s).filter((f) => !f.startsWith('.tmp')).length === 3);
    // The evicted image is still served, from the store.
    assert.ok((await download(s, ids[1])).body.equals(datas[1]));
  });

  test('an image larger than the cache is served from the store and not cached', async () => {
    const data = pattern(9 * MiB, 50);
    const id = await activeImage(s, data);
    assert.ok((await download(s, id)).body.equals(data));
    assert.equal(s.rt.cache!.filling, 0);
    assert.ok(!(await cachedIds(s)).includes(id));
  });

  test('bytes that do not match the image digests never become an entry, and nothing is left behind', async () => {
    const data = pattern(2 * MiB, 51);
    const id = await activeImage(s, data);
    const file = storeFile(s, id);
    const bad = Buffer.from(readFileSync(file));
    bad[12345] ^= 0xff;
    writeFileSync(file, bad);
    const r0 = await storeReads(s);
    assert.equal((await download(s, id)).status, 200);
    await waitFor('the fill to end', () => s.rt.cache!.filling === 0);
    assert.ok(!(await cachedIds(s)).includes(id));
    assert.deepEqual(cacheFiles(s).filter((f) => f.includes(id)), []);
    // The next download reads the store again.
    await download(s, id);
    await waitFor('the fill to end', () => s.rt.cache!.filling === 0);
    assert.equal((await storeReads(s)).gets - r0.gets, 2);
  });

  test('a store object shorter than the image: the download is cut, no entry, no partial file', async () => {
    const data = pattern(3 * MiB, 52);
    const id = await activeImage(s, data);
    truncateSync(storeFile(s, id), MiB);
    const res = await s.req('GET', `/v2/images/${id}/file`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer());
    await waitFor('the fill to end', () => s.rt.cache!.filling === 0);
    assert.ok(!(await cachedIds(s)).includes(id));
    assert.deepEqual(cacheFiles(s).filter((f) => f.includes(id)), []);
  });

  test('deleting an image removes its entry and its file', async () => {
    const data = pattern(MiB + 3, 53);
    const id = await activeImage(s, data);
    await download(s, id);
    await waitFor('the image to be cached', async () => (await cachedIds(s)).includes(id));
    assert.equal(cacheFiles(s).filter((f) => f.startsWith(id)).length, 1);
    assert.equal((await s.req('DELETE', `/v2/images/${id}`)).status, 204);
    assert.ok(!(await cachedIds(s)).includes(id));
    await waitFor('the cache file to be removed', () => cacheFiles(s).filter((f) => f.includes(id)).length === 0);
  });

  test('the sweep removes entries of images deleted elsewhere', async () => {
    const id = await activeImage(s, pattern(MiB, 54));
    await download(s, id);
    await waitFor('the image to be cached', async () => (await cachedIds(s)).includes(id));
    // Deleted behind this node's back, as another node sharing the database would.
    await s.rt.images.delete(id);
    assert.ok((await cachedIds(s)).includes(id));
    assert.equal(await s.rt.prefetcher!.sweep(), 1);
    assert.ok(!(await cachedIds(s)).includes(id));
    await waitFor('the cache file to be removed', () => cacheFiles(s).filter((f) => f.includes(id)).length === 0);
  });

  test('a hit is served only to whom the image row allows: other projects get 404, a deactivated image 403', async () => {
    const data = pattern(MiB, 55);
    const id = await activeImage(s, data, { visibility: 'private' }, 'member');
    assert.ok((await download(s, id, {}, 'member')).body.equals(data));
    await waitFor('the image to be cached', async () => (await cachedIds(s)).includes(id));
    assert.equal((await download(s, id, {}, 'other')).status, 404);
    assert.equal((await s.req('POST', `/v2/images/${id}/actions/deactivate`, { token: 'member' })).status, 204);
    assert.equal((await download(s, id, {}, 'member')).status, 403);
    // An admin may still download a deactivated image: from the cache.
    unlinkSync(storeFile(s, id));
    assert.ok((await download(s, id)).body.equals(data));
  });
});

describe('prefetcher', () => {
  let s: TestServer;
  before(async () => {
    s = await startCachingServer({ prefetchIntervalSeconds: 0.2 });
  });
  after(async () => { await s.close(); });

  test('a queued image stays queued until its entry is complete, then a download is a hit', async () => {
    const data = pattern(2 * MiB, 60);
    const id = await activeImage(s, data);
    assert.equal((await s.req('PUT', `/v2/cache/${id}`)).status, 202);
    assert.deepEqual((await cacheState(s)).queued_images, [id]);
    const st = await waitFor('the prefetcher to cache the image', async () => {
      const state = await cacheState(s);
      return state.cached_images.some((e) => e.image_id === id) && state;
    });
    assert.deepEqual(st.queued_images, []);
    unlinkSync(storeFile(s, id));
    assert.ok((await download(s, id)).body.equals(data));
  });

  test('a queued image deleted before the prefetcher runs leaves the queue', async () => {
    const id = await activeImage(s, pattern(1000, 61));
    assert.equal((await s.req('PUT', `/v2/cache/${id}`)).status, 202);
    await s.rt.images.delete(id);
    await waitFor('the queue to be empty', async () => (await cacheState(s)).queued_images.length === 0);
    assert.ok(!(await cachedIds(s)).includes(id));
  });
});

describe('cache directory across restarts', () => {
  test('temporary and unknown files are removed at start, entries without files forgotten, the queue kept', async () => {
    const dataDir = makeDataDir();
    let s = await startCachingServer({}, { dataDir });
    const data = pattern(MiB, 70);
    const cached = await activeImage(s, data);
    const queued = await activeImage(s, pattern(1000, 71));
    await download(s, cached);
    await waitFor('the image to be cached', async () => (await cachedIds(s)).includes(cached));
    assert.equal((await s.req('PUT', `/v2/cache/${queued}`)).status, 202);
    await s.close();

    const dir = path.join(dataDir, 'cache');
    const [file] = cacheFiles({ dataDir } as TestServer).filter((f) => f.startsWith(cached));
    unlinkSync(path.join(dir, file));
    mkdirSync(path.join(dir, '.tmp'), { recursive: true });
    writeFileSync(path.join(dir, '.tmp', `${cached}.partial`), 'half an image');
    writeFileSync(path.join(dir, 'stray'), 'no entry names me');
    s = await startCachingServer({}, { dataDir });
    try {
      assert.deepEqual(await cacheState(s), { cached_images: [], queued_images: [queued] });
      assert.deepEqual(cacheFiles(s), []);
      // The cache works after the clean-up. (A new image: under IMAGO_TEST_PG each start gets a fresh database.)
      const fresh = pattern(MiB, 72);
      const id = await activeImage(s, fresh);
      assert.ok((await download(s, id)).body.equals(fresh));
      await waitFor('the new image to be cached', async () => (await cachedIds(s)).includes(id));
      assert.equal(cacheFiles(s).length, 1);
    } finally {
      await s.close();
    }
  });

  test('a second process on the same cache directory is refused at start', async () => {
    const s = await startCachingServer();
    try {
      await assert.rejects(startCachingServer({ dir: cacheDir(s) }), /cache dir .* is in use/);
      assert.ok(existsSync(path.join(cacheDir(s), 'cache.sqlite')));
      assert.equal((await s.req('GET', '/v2/cache')).status, 200);
    } finally {
      await s.close();
    }
  });

  test('unknown keys under cache are refused', async () => {
    await assert.rejects(startTestServer({ config: { cache: { enabled: true, maxSize: 1 } } }), /cache\.maxSize is not a configuration key; did you mean cache\.maxSizeGiB/);
  });
});
