import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { importImage, waitImage } from '../import/helpers.js';

type Json = Record<string, any>;
const hash = (algo: string, data: Buffer) => createHash(algo).update(data).digest('hex');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const TUS = { 'tus-resumable': '1.0.0' };

/**
 * Resumable uploads (tus 1.0 at /v2/uploads, issue 16): the protocol's
 * answers and errors (JSON bodies), the claim, access across projects,
 * termination, expiry, restart, and a stage followed by glance-direct. The
 * interrupted transfers with tus-js-client are in resumable-uploads-client.test.ts.
 */
describe('resumable uploads (tus): protocol, claim, access, termination, expiry', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  const create = (imageId: string, length: number, opts: { token?: 'admin' | 'member' | 'other'; target?: string; headers?: Record<string, string> } = {}) =>
    s.req('POST', '/v2/uploads', {
      token: opts.token ?? 'admin',
      headers: { ...TUS, 'upload-length': String(length), 'upload-metadata': `image_id ${b64(imageId)}${opts.target ? `,target ${b64(opts.target)}` : ''}`, ...opts.headers },
    });
  const patch = (url: string, offset: number, body: Buffer, opts: { token?: 'admin' | 'member' | 'other'; type?: string } = {}) =>
    s.req('PATCH', url, { token: opts.token ?? 'admin', headers: { ...TUS, 'upload-offset': String(offset), 'content-type': opts.type ?? 'application/offset+octet-stream' }, body });
  const head = (url: string, token: 'admin' | 'member' | 'other' = 'admin') => s.req('HEAD', url, { token, headers: TUS });
  const show = async (id: string) => (await (await s.req('GET', `/v2/images/${id}`)).json()) as Json;
  const partials = () => {
    const dir = path.join(s.dataDir, 'images', '.partial');
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  const errorOf = async (res: Response) => ((await res.json()) as Json).error as Json;

  test('OPTIONS names the version, the extensions and the largest upload', async () => {
    const res = await s.req('OPTIONS', '/v2/uploads', { headers: TUS });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('tus-version'), '1.0.0');
    assert.equal(res.headers.get('tus-extension'), 'creation,expiration,termination');
    assert.equal(res.headers.get('tus-max-size'), String(1024 ** 4));
    assert.equal(res.headers.get('tus-resumable'), '1.0.0');
  });

  test('creation, HEAD, PATCH in pieces, 409 with the current offset, then the image is active with its digests', async () => {
    const img = await createImage(s, {}, 'member');
    const data = pattern(3 * 1024 * 1024 + 17, 3);
    const noVersion = await s.req('POST', '/v2/uploads', { token: 'member', headers: { 'upload-length': '10', 'upload-metadata': `image_id ${b64(img.id)}` } });
    assert.equal(noVersion.status, 412);
    assert.equal(noVersion.headers.get('tus-version'), '1.0.0');
    assert.equal((await errorOf(noVersion)).code, 412);
    const noLength = await s.req('POST', '/v2/uploads', { token: 'member', headers: { ...TUS, 'upload-metadata': `image_id ${b64(img.id)}` } });
    assert.equal(noLength.status, 400);
    assert.match((await errorOf(noLength)).message, /Upload-Length/);

    const created = await create(img.id, data.length, { token: 'member' });
    assert.equal(created.status, 201, await created.clone().text());
    const url = created.headers.get('location')!;
    assert.match(url, /^\/v2\/uploads\/[0-9a-f-]{36}$/);
    assert.ok(created.headers.get('upload-expires'));
    assert.equal((await show(img.id)).status, 'saving', 'creating the upload claims the image');
    // a second writer, of either kind, gets 409 while the upload holds the claim
    assert.equal((await create(img.id, data.length, { token: 'member' })).status, 409);
    assert.equal((await s.req('PUT', `/v2/images/${img.id}/file`, { token: 'member', headers: { 'content-type': 'application/octet-stream' }, body: data })).status, 409);

    let h = await head(url, 'member');
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('upload-offset'), '0');
    assert.equal(h.headers.get('upload-length'), String(data.length));
    assert.equal(h.headers.get('cache-control'), 'no-store');

    const wrongType = await patch(url, 0, data.subarray(0, 10), { token: 'member', type: 'application/octet-stream' });
    assert.equal(wrongType.status, 415);
    assert.equal((await errorOf(wrongType)).code, 415);

    const first = 1024 * 1024 + 5;
    const p1 = await patch(url, 0, data.subarray(0, first), { token: 'member' });
    assert.equal(p1.status, 204);
    assert.equal(p1.headers.get('upload-offset'), String(first));
    h = await head(url, 'member');
    assert.equal(h.headers.get('upload-offset'), String(first));

    const stale = await patch(url, 0, data.subarray(0, 100), { token: 'member' });
    assert.equal(stale.status, 409);
    assert.equal(stale.headers.get('upload-offset'), String(first));
    assert.match((await errorOf(stale)).message, new RegExp(`offset ${first}`));

    const beyond = await patch(url, first, Buffer.concat([data.subarray(first), Buffer.alloc(10)]), { token: 'member' });
    assert.equal(beyond.status, 413, 'more bytes than Upload-Length');
    assert.equal((await head(url, 'member')).headers.get('upload-offset'), String(first), 'a refused PATCH keeps nothing');

    const p2 = await patch(url, first, data.subarray(first), { token: 'member' });
    assert.equal(p2.status, 204, await p2.clone().text());
    assert.equal(p2.headers.get('upload-offset'), String(data.length));
    const done = await show(img.id);
    assert.equal(done.status, 'active');
    assert.equal(done.size, data.length);
    assert.equal(done.checksum, hash('md5', data));
    assert.equal(done.os_hash_value, hash('sha512', data));
    const dl = await s.req('GET', `/v2/images/${img.id}/file`, { token: 'member' });
    assert.ok(Buffer.from(await dl.arrayBuffer()).equals(data));
    assert.equal((await head(url, 'member')).status, 404, 'a finished upload is gone');
    assert.deepEqual(partials(), []);
  });

  test('another project gets 404 for the upload, whatever the method; its owner keeps it', async () => {
    const img = await createImage(s, {}, 'member');
    const created = await create(img.id, 100, { token: 'member' });
    const url = created.headers.get('location')!;
    for (const res of [await head(url, 'other'), await patch(url, 0, Buffer.alloc(10), { token: 'other' }), await s.req('DELETE', url, { token: 'other', headers: TUS })]) {
      assert.equal(res.status, 404);
      if (res.headers.get('content-type')?.includes('json') && (await res.clone().text())) assert.equal((await errorOf(res)).code, 404);
    }
    assert.equal((await create(img.id, 100, { token: 'other' })).status, 404, 'nor can it create one for an image it cannot see');
    assert.equal((await head(url, 'member')).status, 200);
    assert.equal((await s.req('DELETE', url, { token: 'member', headers: TUS })).status, 204);
  });

  test('termination removes the partial data and releases the claim', async () => {
    const img = await createImage(s);
    const url = (await create(img.id, 1000)).headers.get('location')!;
    assert.equal((await patch(url, 0, pattern(400, 1))).status, 204);
    assert.equal(partials().length, 1);
    const del = await s.req('DELETE', url, { headers: TUS });
    assert.equal(del.status, 204);
    assert.deepEqual(partials(), []);
    const shown = await show(img.id);
    assert.equal(shown.status, 'queued');
    assert.equal((await head(url)).status, 404);
    assert.equal((await s.req('PUT', `/v2/images/${img.id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: pattern(10, 1) })).status, 204, 'the image takes data again');
  });

  test('two PATCHes of one upload at once: one appends, the other gets 423 or 409', async () => {
    const img = await createImage(s);
    const data = pattern(8 * 1024 * 1024, 5);
    const url = (await create(img.id, data.length)).headers.get('location')!;
    const [a, b] = await Promise.all([patch(url, 0, data.subarray(0, 4 * 1024 * 1024)), patch(url, 0, data.subarray(0, 4 * 1024 * 1024))]);
    const codes = [a.status, b.status].sort();
    assert.equal(codes[0], 204);
    assert.ok(codes[1] === 409 || codes[1] === 423, `second: ${codes[1]}`);
    const loser = a.status === 204 ? b : a;
    assert.ok((await errorOf(loser)).message);
    assert.equal((await head(url)).headers.get('upload-offset'), String(4 * 1024 * 1024));
    assert.equal((await patch(url, 4 * 1024 * 1024, data.subarray(4 * 1024 * 1024))).status, 204);
    assert.equal((await show(img.id)).os_hash_value, hash('sha512', data));
  });

  test('expiry removes the bytes and releases the claim: HEAD says 410, then the upload is gone', async () => {
    const img = await createImage(s);
    const url = (await create(img.id, 1000)).headers.get('location')!;
    assert.equal((await patch(url, 0, pattern(300, 2))).status, 204);
    await s.rt.db.updateTable('uploads').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).execute();
    const h = await s.req('GET', url.replace('/v2/uploads/', '/v2/uploads/'), { headers: TUS });
    assert.equal(h.status, 405, 'GET is not a tus method');
    const gone = await patch(url, 300, pattern(700, 2));
    assert.equal(gone.status, 410);
    assert.match((await errorOf(gone)).message, /expired/);
    assert.deepEqual(partials(), []);
    assert.equal((await show(img.id)).status, 'queued');
    assert.equal((await head(url)).status, 404);
  });

  test('the sweep expires abandoned uploads on its own', async () => {
    const img = await createImage(s);
    const url = (await create(img.id, 1000)).headers.get('location')!;
    assert.equal((await patch(url, 0, pattern(300, 2))).status, 204);
    await s.rt.db.updateTable('uploads').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).execute();
    assert.ok((await s.rt.uploads!.sweep()) >= 1);
    assert.equal((await head(url)).status, 404);
    assert.deepEqual(partials(), []);
    assert.equal((await show(img.id)).status, 'queued');
  });

  test('start-up recovery leaves a live upload alone: its claim and its bytes stay, and it resumes', async () => {
    const img = await createImage(s);
    const data = pattern(5000, 9);
    const url = (await create(img.id, data.length)).headers.get('location')!;
    assert.equal((await patch(url, 0, data.subarray(0, 2000))).status, 204);
    const before = statSync(path.join(s.dataDir, 'images', '.partial', partials()[0])).size;
    await s.rt.recovery.recoverAtStart({ sweepOrphans: true });
    assert.equal((await show(img.id)).status, 'saving');
    assert.equal(statSync(path.join(s.dataDir, 'images', '.partial', partials()[0])).size, before);
    assert.equal((await patch(url, 2000, data.subarray(2000))).status, 204);
    assert.equal((await show(img.id)).checksum, hash('md5', data));
  });

  test('a partial file longer than the recorded offset (a kill -9 mid-PATCH) is cut back on resume', async () => {
    const img = await createImage(s);
    const data = pattern(6000, 11);
    const url = (await create(img.id, data.length)).headers.get('location')!;
    assert.equal((await patch(url, 0, data.subarray(0, 2500))).status, 204);
    const { appendFileSync } = await import('node:fs');
    appendFileSync(path.join(s.dataDir, 'images', '.partial', partials()[0]), Buffer.alloc(999, 0xee));
    assert.equal((await patch(url, 2500, data.subarray(2500))).status, 204);
    const shown = await show(img.id);
    assert.equal(shown.size, data.length);
    assert.equal(shown.os_hash_value, hash('sha512', data));
  });

  test('partial data that vanished from the store: 410, the claim released, the upload gone', async () => {
    const img = await createImage(s);
    const url = (await create(img.id, 1000)).headers.get('location')!;
    assert.equal((await patch(url, 0, pattern(300, 4))).status, 204);
    const { rmSync } = await import('node:fs');
    rmSync(path.join(s.dataDir, 'images', '.partial', partials()[0]));
    const res = await patch(url, 300, pattern(700, 4));
    assert.equal(res.status, 410);
    assert.match((await errorOf(res)).message, /create a new upload/);
    assert.equal((await show(img.id)).status, 'queued');
    assert.equal((await head(url)).status, 404);
  });

  test('target stage, then glance-direct: the image becomes active with the staged bytes', async () => {
    const img = await createImage(s);
    const data = pattern(2 * 1024 * 1024 + 3, 12);
    const created = await create(img.id, data.length, { target: 'stage' });
    assert.equal(created.status, 201, await created.clone().text());
    const url = created.headers.get('location')!;
    assert.equal((await patch(url, 0, data.subarray(0, 1_000_000))).status, 204);
    assert.equal((await patch(url, 1_000_000, data.subarray(1_000_000))).status, 204);
    const staged = await show(img.id);
    assert.equal(staged.status, 'uploading');
    assert.equal(staged.size, data.length);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
    const active = await waitImage(s, img.id, (i) => i.status === 'active');
    assert.equal(active.checksum, hash('md5', data));
    assert.equal(active.os_hash_value, hash('sha512', data));
  });

  test('a declared md5 that the bytes do not match: the completing PATCH gets 400, the image stays queued with nothing stored', async () => {
    const data = pattern(100_000, 13);
    const img = await createImage(s, { 'owner_specified.openstack.md5': hash('md5', pattern(100_000, 14)) });
    const url = (await create(img.id, data.length)).headers.get('location')!;
    assert.equal((await patch(url, 0, data.subarray(0, 50_000))).status, 204);
    const res = await patch(url, 50_000, data.subarray(50_000));
    assert.equal(res.status, 400);
    assert.match((await errorOf(res)).message, /owner_specified\.openstack\.md5/);
    assert.equal((await show(img.id)).status, 'queued');
    assert.ok(!existsSync(path.join(s.dataDir, 'images', img.id)));
    assert.deepEqual(partials(), []);
  });

  test('Upload-Length 0: the creation completes the upload, the image is active and empty', async () => {
    const img = await createImage(s);
    const res = await create(img.id, 0);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('upload-offset'), '0');
    const shown = await show(img.id);
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, 0);
    assert.equal(shown.checksum, hash('md5', Buffer.alloc(0)));
    assert.equal(shown.os_hash_value, hash('sha512', Buffer.alloc(0)));
  });

  test('Upload-Length beyond the size cap: 413 at creation, nothing claimed', async () => {
    const img = await createImage(s);
    const res = await create(img.id, 1024 ** 4 + 1);
    assert.equal(res.status, 413);
    assert.equal((await errorOf(res)).code, 413);
    assert.equal((await show(img.id)).status, 'queued');
  });
});

describe('resumable uploads (tus): quota and deleted images', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ config: { quotas: { enabled: true, defaults: { image_size_total: 2, image_stage_total: 2, image_count_total: 10, image_count_uploading: 5 } } } });
  });
  after(() => s.close());
  const MiB = 1024 * 1024;
  const create = (imageId: string, length: number) =>
    s.req('POST', '/v2/uploads', { token: 'member', headers: { ...TUS, 'upload-length': String(length), 'upload-metadata': `image_id ${b64(imageId)}` } });
  const patch = (url: string, offset: number, body: Buffer) =>
    s.req('PATCH', url, { token: 'member', headers: { ...TUS, 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' }, body });
  const put = (id: string, body: Buffer) => s.req('PUT', `/v2/images/${id}/file`, { token: 'member', headers: { 'content-type': 'application/octet-stream' }, body });

  test('an open upload counts its whole Upload-Length against image_size_total until it ends', async () => {
    const img = await createImage(s, {}, 'member');
    const created = await create(img.id, 1.5 * MiB);
    assert.equal(created.status, 201, await created.clone().text());
    const url = created.headers.get('location')!;
    assert.equal((await patch(url, 0, pattern(100_000, 1))).status, 204);
    const other = await createImage(s, {}, 'member');
    assert.equal((await put(other.id, pattern(MiB, 2))).status, 413, '1.5 MiB reserved + 1 MiB > 2 MiB');
    assert.equal((await create(other.id, MiB)).status, 413, 'a second upload does not fit either');
    assert.equal((await s.req('DELETE', url, { token: 'member', headers: TUS })).status, 204);
    assert.equal((await put(other.id, pattern(MiB, 2))).status, 204, 'terminated: the reservation is gone');
  });

  test('deleting the image ends its upload: 410 for its owner, the partial data removed by the sweep', async () => {
    const img = await createImage(s, {}, 'member');
    const url = (await create(img.id, 1000)).headers.get('location')!;
    assert.equal((await patch(url, 0, pattern(500, 3))).status, 204);
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'member' })).status, 204);
    assert.ok((await s.rt.uploads!.sweep()) >= 1);
    const dir = path.join(s.dataDir, 'images', '.partial');
    assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], []);
    assert.equal((await s.req('HEAD', url, { token: 'member', headers: TUS })).status, 404);
  });
});

describe('resumable uploads (tus): a store without partial objects', () => {
  test('creating an upload for it answers 501 in the JSON body and claims nothing; the filesystem store next to it works', async () => {
    const dir = (await import('../support/server.js')).makeDataDir();
    const s = await startTestServer({
      dataDir: dir,
      config: { stores: [{ id: 'local', type: 'filesystem', path: path.join(dir, 'images'), description: 'disk' }, { id: 'mem', type: 'memory', description: 'in memory' }] },
    });
    try {
      const img = await createImage(s);
      const create = (store: string) =>
        s.req('POST', '/v2/uploads', { headers: { ...TUS, 'upload-length': '10', 'upload-metadata': `image_id ${b64(img.id)},store ${b64(store)}` } });
      const res = await create('mem');
      assert.equal(res.status, 501);
      const { error } = (await res.json()) as Json;
      assert.equal(error.code, 501);
      assert.match(error.message, /PUT \/file/);
      assert.equal(((await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Json).status, 'queued');
      assert.equal((await create('nowhere')).status, 400, 'an unknown store is the client\'s mistake, as X-Image-Meta-Store');
      assert.equal((await create('local')).status, 201);
    } finally {
      await s.close();
      (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
    }
  });
});
