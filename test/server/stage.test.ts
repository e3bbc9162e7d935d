import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import path from 'node:path';
import { startTestServer, createImage, uploadBytes, TOKENS, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { errorOf, getImage, stage } from '../import/helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';

/** The image's files in the staging area, temporary ones included. */
function stagedFiles(s: TestServer, id: string): string[] {
  return filesUnder(path.join(s.dataDir, 'staging')).filter((f) => path.basename(f).startsWith(id));
}

async function assertNothingStaged(s: TestServer, id: string): Promise<void> {
  assert.deepEqual(stagedFiles(s, id), []);
  const row = await s.rt.db.selectFrom('image_staging').selectAll().where('image_id', '=', id).executeTakeFirst();
  assert.equal(row, undefined);
  const report = await checkConsistency(s.rt);
  assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
}

describe('PUT /v2/images/{id}/stage', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ env: { IMAGO_IMAGE_SIZE_CAP: String(4 * 1024 * 1024) } });
  });
  after(() => s.close());

  test('stages the data: queued → uploading, size set, checksums wait for the import', async () => {
    const img = await createImage(s, { name: 'staged' }, 'member');
    const data = pattern(1024 * 1024);
    const res = await stage(s, img.id, data, 'member');
    assert.equal(res.status, 204);
    assert.equal(await res.text(), '');
    assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-[0-9a-f-]{36}$/);
    const shown = await getImage(s, img.id);
    assert.equal(shown.status, 'uploading');
    assert.equal(shown.size, 1024 * 1024);
    assert.equal(shown.checksum, null);
    assert.equal(shown.os_hash_algo, null);
    assert.equal(shown.os_hash_value, null);
    assert.equal(shown.virtual_size, null);
    assert.equal('stores' in shown, false);
    // staged and released: no transfer in flight, so no received count
    assert.equal('imago_received_bytes' in shown, false);
    const row = await s.rt.db.selectFrom('image_staging').selectAll().where('image_id', '=', img.id).executeTakeFirstOrThrow();
    assert.equal(row.size, 1024 * 1024);
    assert.match(row.os_hash_value ?? '', /^[0-9a-f]{128}$/);
    assert.deepEqual(JSON.parse(row.inspection!).format, 'raw');
    assert.equal(stagedFiles(s, img.id).length, 1);
    // no data to download until the import
    assert.equal((await s.req('GET', `/v2/images/${img.id}/file`)).status, 204);
  });

  test('409 unless queued, as Glance words it', async () => {
    const img = await createImage(s);
    assert.equal((await stage(s, img.id, pattern(10))).status, 204);
    const again = await stage(s, img.id, pattern(10));
    assert.equal(again.status, 409);
    assert.equal((await errorOf(again)).message, 'Image status transition from uploading to uploading is not allowed');

    const active = await createImage(s);
    assert.equal((await uploadBytes(s, active.id, pattern(10))).status, 204);
    const res = await stage(s, active.id, pattern(10));
    assert.equal(res.status, 409);
    assert.equal((await errorOf(res)).message, 'Image status transition from active to uploading is not allowed');
  });

  test('415 unless application/octet-stream', async () => {
    const img = await createImage(s);
    const res = await s.req('PUT', `/v2/images/${img.id}/stage`, { headers: { 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(res.status, 415);
    assert.match((await errorOf(res)).message, /text\/plain/);
    assert.equal((await getImage(s, img.id)).status, 'queued');
  });

  test('404 for unknown or invisible images, 403 for readers', async () => {
    assert.equal((await stage(s, '00000000-0000-0000-0000-000000000000', pattern(1))).status, 404);
    const img = await createImage(s, {}, 'member');
    const other = await stage(s, img.id, pattern(1), 'other');
    assert.equal(other.status, 404);
    await errorOf(other);
    const reader = await stage(s, img.id, pattern(1), 'reader');
    assert.equal(reader.status, 403);
    await errorOf(reader);
    assert.equal((await getImage(s, img.id)).status, 'queued');
  });

  test('413 over the image size cap, while streaming and upfront; nothing staged, image queued', async () => {
    const img = await createImage(s);
    // chunked: the cap is found while streaming
    const big = pattern(5 * 1024 * 1024);
    const chunked = await s.req('PUT', `/v2/images/${img.id}/stage`, {
      headers: { 'content-type': 'application/octet-stream' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < big.length; i += 256 * 1024) c.enqueue(big.subarray(i, i + 256 * 1024));
          c.close();
        },
      }),
    });
    assert.equal(chunked.status, 413);
    assert.match((await errorOf(chunked)).message, /too large/);
    const after = await getImage(s, img.id);
    assert.equal(after.status, 'queued');
    assert.equal(after.size, null);
    await assertNothingStaged(s, img.id);
    // Content-Length says it at once
    const upfront = await stage(s, img.id, big);
    assert.equal(upfront.status, 413);
    await errorOf(upfront);
    await assertNothingStaged(s, img.id);
    assert.equal((await getImage(s, img.id)).status, 'queued');
  });

  test('410 when the image is deleted while staging; nothing left behind', async () => {
    const img = await createImage(s);
    const url = new URL(`${s.url}/v2/images/${img.id}/stage`);
    const result = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(url, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.write(pattern(64 * 1024));
      (async () => {
        await waitFor('the image to be uploading', async () => (await getImage(s, img.id)).status === 'uploading');
        assert.equal((await s.req('DELETE', `/v2/images/${img.id}`)).status, 204);
        req.write(pattern(64 * 1024));
        req.end();
      })().catch(reject);
    });
    const { status, body } = await result;
    assert.equal(status, 410);
    assert.equal(JSON.parse(body).error.code, 410);
    assert.equal((await s.req('GET', `/v2/images/${img.id}`)).status, 404);
    await assertNothingStaged(s, img.id);
  });

  test('a client that goes away mid-stage leaves the image queued and nothing staged', async () => {
    const img = await createImage(s);
    const url = new URL(`${s.url}/v2/images/${img.id}/stage`);
    const req = request(url, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream', 'content-length': String(3 * 1024 * 1024) } });
    req.on('error', () => {});
    req.write(pattern(1024 * 1024));
    const uploading = await waitFor('the image to be uploading', async () => { const i = await getImage(s, img.id); return i.status === 'uploading' && i; });
    assert.match(uploading.imago_received_bytes, /^\d+$/);
    // the count is recorded about once a second while bytes arrive
    await new Promise((r) => setTimeout(r, 1100));
    req.write(pattern(1024 * 1024, 2));
    await waitFor('imago_received_bytes to pass 1 MiB', async () => Number((await getImage(s, img.id)).imago_received_bytes) > 1024 * 1024);
    req.destroy();
    await waitFor('the image to be queued again', async () => (await getImage(s, img.id)).status === 'queued');
    await waitFor('the staging area to be empty', async () => stagedFiles(s, img.id).length === 0);
    await assertNothingStaged(s, img.id);
    // and it can be staged again
    assert.equal((await stage(s, img.id, pattern(100))).status, 204);
  });
});

describe('stage: method disabled, staging quota', () => {
  test('404 when glance-direct is not an enabled import method', async () => {
    const s = await startTestServer({ config: { import: { methods: ['web-download'] } } });
    try {
      const img = await createImage(s);
      const res = await stage(s, img.id, pattern(10));
      assert.equal(res.status, 404);
      assert.match((await errorOf(res)).message, /glance-direct/);
      assert.equal((await getImage(s, img.id)).status, 'queued');
    } finally {
      await s.close();
    }
  });

  test('413 over the image_stage_total quota; image queued, nothing staged', async () => {
    const s = await startTestServer({ config: { quotas: { enabled: true, defaults: { image_size_total: 100, image_stage_total: 1, image_count_total: 100, image_count_uploading: 10 } } } });
    try {
      const img = await createImage(s, {}, 'member');
      const res = await stage(s, img.id, pattern(2 * 1024 * 1024), 'member');
      assert.equal(res.status, 413);
      assert.match((await errorOf(res)).message, /image_stage_total/);
      assert.equal((await getImage(s, img.id)).status, 'queued');
      await assertNothingStaged(s, img.id);
      assert.equal((await stage(s, img.id, pattern(512 * 1024), 'member')).status, 204);
    } finally {
      await s.close();
    }
  });
});
