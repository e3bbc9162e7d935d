import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { createImage, data1k, startTestServer, type TestServer } from '../support/server.js';
import { ManualUpload, assertErrorBody, imageOf, md5, put, sha512 } from './image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';

const CAP = 4 * 1024 * 1024;

describe('PUT /v2/images/{id}/file', () => {
  let s: TestServer;
  let imagesDir: string;

  before(async () => {
    s = await startTestServer({
      config: {
        imageSizeCap: CAP,
        stores: [
          { id: 'local', type: 'filesystem', path: 'images', description: 'default' },
          { id: 'second', type: 'filesystem', path: 'images2', description: 'another' },
          { id: 'archive', type: 'filesystem', path: 'archive', description: 'read-only', readOnly: true },
        ],
      },
    });
    imagesDir = path.join(s.dataDir, 'images');
  });
  after(() => s.close());

  test('with Content-Length: 204, then active with size, md5, sha512, virtual_size, stores', async () => {
    const img = await createImage(s);
    const r = await put(s, img.id, data1k());
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
    // The 204 is sent after the commit: the very next read sees everything.
    const shown = await imageOf(s, img.id);
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, 1000);
    assert.equal(shown.virtual_size, 1000);
    assert.equal(shown.checksum, 'cbecbdb0fdd5cec1e242493b6008cc79');
    assert.equal(shown.os_hash_algo, 'sha512');
    assert.equal(shown.os_hash_value, sha512(data1k()));
    assert.equal(shown.stores, 'local');
    assert.deepEqual(filesUnder(imagesDir).filter((f) => f === img.id), [img.id]);
  });

  test('chunked (no Content-Length): size is counted', async () => {
    const img = await createImage(s);
    const data = pattern(3 * 1024 * 1024 + 17, 7);
    const r = await put(s, img.id, data, { chunked: true, piece: 100_000 });
    assert.equal(r.status, 204);
    const shown = await imageOf(s, img.id);
    assert.equal(shown.size, data.length);
    assert.equal(shown.checksum, md5(data));
    assert.equal(shown.os_hash_value, sha512(data));
    const dl = await s.req('GET', `/v2/images/${img.id}/file`);
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), data);
  });

  test('through fetch with a streamed body works too', async () => {
    const img = await createImage(s);
    const data = pattern(200_000, 3);
    const body = new ReadableStream({
      start(c) {
        c.enqueue(data.subarray(0, 100_000));
        c.enqueue(data.subarray(100_000));
        c.close();
      },
    });
    const r = await s.req('PUT', `/v2/images/${img.id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body });
    assert.equal(r.status, 204);
    assert.equal((await imageOf(s, img.id)).checksum, md5(data));
  });

  test('an empty body makes a 0-byte active image', async () => {
    const img = await createImage(s);
    const r = await put(s, img.id, Buffer.alloc(0));
    assert.equal(r.status, 204);
    const shown = await imageOf(s, img.id);
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, 0);
    assert.equal(shown.checksum, 'd41d8cd98f00b204e9800998ecf8427e');
  });

  test('status is saving while bytes flow, queued -> saving -> active', async () => {
    const img = await createImage(s);
    assert.equal(img.status, 'queued');
    const up = new ManualUpload(s.url, img.id, { contentLength: 2000 });
    await up.write(data1k());
    await waitFor('saving', async () => (await imageOf(s, img.id)).status === 'saving');
    const r = await up.end(data1k());
    assert.equal(r.status, 204);
    assert.equal((await imageOf(s, img.id)).status, 'active');
  });

  test('while saving, imago_received_bytes says how far the upload has come (about once a second); gone once active', async () => {
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, { contentLength: 3 * 65536 });
    await up.write(pattern(65536, 1));
    const early = await waitFor('saving', async () => { const i = await imageOf(s, img.id); return i.status === 'saving' && i; });
    assert.equal(early.imago_received_bytes, '0');
    // the count is recorded at most once a second, when bytes arrive
    let sent = 65536;
    const shown = await waitFor(() => `imago_received_bytes ≥ 64 KiB (sent ${sent})`, async () => {
      if (sent < 2 * 65536) {
        await new Promise((r) => setTimeout(r, 1100));
        await up.write(pattern(65536, 2));
        sent += 65536;
      }
      const i = await imageOf(s, img.id);
      return Number(i.imago_received_bytes) >= 65536 && i;
    }, 10_000, 100);
    assert.equal(shown.status, 'saving');
    assert.match(shown.imago_received_bytes, /^\d+$/);
    assert.ok(Number(shown.imago_received_bytes) <= sent, `received ${shown.imago_received_bytes} of ${sent} sent`);
    // read-only for clients
    const patch = await s.req('PATCH', `/v2/images/${img.id}`, { body: JSON.stringify([{ op: 'add', path: '/imago_received_bytes', value: '5' }]), headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' } });
    assert.equal(patch.status, 403);
    const r = await up.end(pattern(65536, 3));
    assert.equal(r.status, 204);
    const done = await imageOf(s, img.id);
    assert.equal(done.status, 'active');
    assert.equal('imago_received_bytes' in done, false);
  });

  test('415 unless application/octet-stream, with the JSON error body', async () => {
    const img = await createImage(s);
    for (const ct of ['application/json', 'text/plain', 'application/octet-streamx']) {
      const r = await put(s, img.id, data1k(), { headers: { 'content-type': ct } });
      const e = assertErrorBody(r, 415);
      assert.match(e.message, /octet-stream/);
    }
    // an empty or missing Content-Type too
    assertErrorBody(await put(s, img.id, data1k(), { headers: { 'content-type': '' } }), 415);
    const bare = await fetch(`${s.url}/v2/images/${img.id}/file`, { method: 'PUT', headers: { 'x-auth-token': 'admin-token' }, body: new Uint8Array(data1k()) });
    assert.equal(bare.status, 415);
    assert.equal((await bare.json()).error.code, 415);
    assert.equal((await imageOf(s, img.id)).status, 'queued');
    const r = await put(s, img.id, data1k(), { headers: { 'content-type': 'Application/Octet-Stream; charset=binary' } });
    assert.equal(r.status, 204);
  });

  test('409 unless queued', async () => {
    const img = await createImage(s);
    assert.equal((await put(s, img.id, data1k())).status, 204);
    const e = assertErrorBody(await put(s, img.id, data1k()), 409);
    assert.equal(e.message, 'Image status transition from active to saving is not allowed');
    const d = await s.req('POST', `/v2/images/${img.id}/actions/deactivate`);
    assert.equal(d.status, 204);
    assertErrorBody(await put(s, img.id, data1k()), 409);
  });

  test('400 until disk_format and container_format are set (as Glance)', async () => {
    const none = await createImage(s, { disk_format: undefined, container_format: undefined });
    let e = assertErrorBody(await put(s, none.id, data1k()), 400);
    assert.equal(e.message, 'Properties disk_format, container_format must be set prior to saving data.');
    const half = await createImage(s, { container_format: undefined });
    e = assertErrorBody(await put(s, half.id, data1k()), 400);
    assert.equal(e.message, 'Property container_format must be set prior to saving data.');
    assert.equal((await imageOf(s, half.id)).status, 'queued');
    const patched = await s.req('PATCH', `/v2/images/${half.id}`, {
      headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
      body: JSON.stringify([{ op: 'add', path: '/container_format', value: 'bare' }]),
    });
    assert.equal(patched.status, 200);
    assert.equal((await put(s, half.id, data1k())).status, 204);
  });

  test('two concurrent uploads: the second gets 409 before any of its bytes are stored', async () => {
    const img = await createImage(s);
    const first = new ManualUpload(s.url, img.id, { contentLength: 2000 });
    await first.write(data1k());
    await waitFor('first upload claimed', async () => (await imageOf(s, img.id)).status === 'saving');
    // The second upload announces its length but sends nothing yet: the 409 must not wait for its body.
    const second = new ManualUpload(s.url, img.id, { contentLength: 1000 });
    const r2 = await second.response;
    assertErrorBody(r2, 409);
    second.abort();
    const r1 = await first.end(data1k());
    assert.equal(r1.status, 204);
    const shown = await imageOf(s, img.id);
    assert.equal(shown.size, 2000);
    assert.equal(shown.checksum, md5(Buffer.concat([data1k(), data1k()])));
  });

  test('two uploads racing from the first byte: exactly one wins', async () => {
    for (let round = 0; round < 5; round++) {
      const img = await createImage(s);
      const a = pattern(50_000, 11);
      const b = pattern(60_000, 12);
      const [ra, rb] = await Promise.all([put(s, img.id, a), put(s, img.id, b)]);
      const codes = [ra.status, rb.status].sort();
      assert.deepEqual(codes, [204, 409]);
      const winner = ra.status === 204 ? a : b;
      const shown = await imageOf(s, img.id);
      assert.equal(shown.size, winner.length);
      assert.equal(shown.os_hash_value, sha512(winner));
    }
  });

  test('over imageSizeCap while streaming (chunked): 413, image queued again, nothing left in the store', async () => {
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, {});
    const piece = Buffer.alloc(256 * 1024, 1);
    // Keep sending until the server answers; it must answer while we are still sending. What the
    // client has written includes what the loopback socket buffers hold (several MiB on a busy
    // machine), so the bound is the cap plus those buffers, far below everything we would send.
    const pieces = 256; // 64 MiB
    let r;
    for (let i = 0; i < pieces && !r; i++) {
      await up.write(piece).catch(() => {});
      r = await Promise.race([up.response, new Promise<undefined>((res) => setTimeout(res, 5))]).catch(() => undefined);
    }
    r ??= await up.response;
    assert.ok(up.sent <= CAP + 16 * 1024 * 1024, `server answered only after ${up.sent} bytes`);
    assert.ok(up.sent < pieces * piece.length, 'the server answered before the client finished sending');
    const e = assertErrorBody(r, 413);
    assert.match(e.message, new RegExp(String(CAP)));
    up.abort();
    const shown = await imageOf(s, img.id);
    assert.equal(shown.status, 'queued');
    assert.equal(shown.size, null);
    assert.equal(shown.checksum, null);
    assert.deepEqual(filesUnder(imagesDir).filter((f) => f.includes(img.id)), []);
    // and the image can be uploaded again
    assert.equal((await put(s, img.id, data1k())).status, 204);
  });

  test('over imageSizeCap with Content-Length: 413 upfront, before the body', async () => {
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, { contentLength: CAP + 1 });
    const r = await up.response; // nothing sent yet
    assertErrorBody(r, 413);
    up.abort();
    assert.equal((await imageOf(s, img.id)).status, 'queued');
    // x-openstack-image-size also counts
    const up2 = new ManualUpload(s.url, img.id, { headers: { 'x-openstack-image-size': String(CAP + 1) } });
    assertErrorBody(await up2.response, 413);
    up2.abort();
  });

  test('exactly imageSizeCap bytes are accepted', async () => {
    const img = await createImage(s);
    const data = pattern(CAP, 5);
    const r = await put(s, img.id, data, { chunked: true });
    assert.equal(r.status, 204);
    assert.equal((await imageOf(s, img.id)).size, CAP);
  });

  test('x-openstack-image-size: checked against the bytes received', async () => {
    const img = await createImage(s);
    for (const declared of ['999', '1001']) {
      const r = await put(s, img.id, data1k(), { headers: { 'x-openstack-image-size': declared } });
      const e = assertErrorBody(r, 400);
      assert.match(e.message, /x-openstack-image-size/);
      const shown = await imageOf(s, img.id);
      assert.equal(shown.status, 'queued');
      assert.deepEqual(filesUnder(imagesDir).filter((f) => f.includes(img.id)), []);
    }
    assertErrorBody(await put(s, img.id, data1k(), { headers: { 'x-openstack-image-size': 'lots' } }), 400);
    assert.equal((await put(s, img.id, data1k(), { headers: { 'x-openstack-image-size': '1000' } })).status, 204);
  });

  test('X-Image-Meta-Store picks the store; unknown store 400; read-only store 503', async () => {
    const img = await createImage(s);
    const e = assertErrorBody(await put(s, img.id, data1k(), { headers: { 'x-image-meta-store': 'nope' } }), 400);
    assert.match(e.message, /nope/);
    assertErrorBody(await put(s, img.id, data1k(), { headers: { 'x-image-meta-store': 'archive' } }), 503);
    assert.equal((await imageOf(s, img.id)).status, 'queued');
    assert.deepEqual(filesUnder(path.join(s.dataDir, 'archive')), []);
    assert.equal((await put(s, img.id, data1k(), { headers: { 'x-image-meta-store': 'second' } })).status, 204);
    const shown = await imageOf(s, img.id);
    assert.equal(shown.stores, 'second');
    assert.deepEqual(filesUnder(path.join(s.dataDir, 'images2')), [img.id]);
    const dl = await s.req('GET', `/v2/images/${img.id}/file`);
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), data1k());
  });

  test('404 for an unknown image, 401 without a token, 403 for a reader', async () => {
    assertErrorBody(await put(s, '00000000-0000-4000-8000-000000000000', data1k()), 404);
    const img = await createImage(s, {}, 'member');
    assertErrorBody(await put(s, img.id, data1k(), { token: 'reader' }), 403);
    const r = await s.req('PUT', `/v2/images/${img.id}/file`, { token: null, headers: { 'content-type': 'application/octet-stream' }, body: data1k() });
    assert.equal(r.status, 401);
    assert.equal((await imageOf(s, img.id)).status, 'queued');
    assert.equal((await put(s, img.id, data1k(), { token: 'member' })).status, 204);
  });

  test('DELETE during an upload: the upload answers 410 and nothing is left', async () => {
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, {});
    await up.write(pattern(300_000));
    await waitFor('saving', async () => (await imageOf(s, img.id)).status === 'saving');
    const del = await s.req('DELETE', `/v2/images/${img.id}`);
    assert.equal(del.status, 204);
    const r = await Promise.race([up.response, up.write(data1k()).then(() => up.end())]);
    const e = assertErrorBody(r, 410);
    assert.match(e.message, /deleted/);
    assert.equal((await s.req('GET', `/v2/images/${img.id}`)).status, 404);
    await waitFor('store clean', () => filesUnder(imagesDir).every((f) => !f.includes(img.id)));
    const report = await import('../../src/services/recovery.js').then((m) => m.checkConsistency(s.rt));
    assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
  });

  test('client disconnect mid-upload: image back to queued, no partial data anywhere', async () => {
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, { contentLength: 2_000_000 });
    await up.write(pattern(700_000));
    await waitFor('saving', async () => (await imageOf(s, img.id)).status === 'saving');
    await waitFor('temporary file', () => filesUnder(imagesDir).some((f) => f.startsWith('.tmp/') && f.includes(img.id)));
    up.abort();
    await waitFor('queued again', async () => (await imageOf(s, img.id)).status === 'queued');
    const shown = await imageOf(s, img.id);
    assert.equal(shown.size, null);
    assert.equal(shown.checksum, null);
    assert.equal(shown.stores, undefined);
    assert.deepEqual(filesUnder(imagesDir).filter((f) => f.includes(img.id)), []);
    assert.equal(s.rt.writers.size, 0);
    assert.equal((await put(s, img.id, data1k())).status, 204);
  });

  test('refused uploads keep the connection: 409, 415, 413 and 400 answers, then a 204, on one socket', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let connections = 0;
    const count = () => connections++;
    try {
      const active = await createImage(s);
      assert.equal((await put(s, active.id, data1k())).status, 204);
      const fresh = await createImage(s);
      s.app.server.on('connection', count);
      const send = async (id: string, data: Buffer, headers: Record<string, string> = {}, chunked = false) => {
        const up = new ManualUpload(s.url, id, { agent, headers, contentLength: chunked ? undefined : data.length });
        for (let i = 0; i < data.length; i += 64 * 1024) await up.write(data.subarray(i, i + 64 * 1024));
        const r = await up.end();
        return { status: r.status, socket: up.req.socket };
      };
      const results = [
        await send(active.id, pattern(2 * 1024 * 1024)), // 409 before reading: the body is discarded
        await send(fresh.id, data1k(), { 'content-type': 'text/plain' }), // 415
        await send(fresh.id, pattern(CAP + 300_000), {}, true), // 413 while streaming
        await send(fresh.id, data1k(), { 'x-openstack-image-size': '10' }), // 400
        await send(fresh.id, data1k()), // 204
      ];
      assert.deepEqual(results.map((r) => r.status), [409, 415, 413, 400, 204]);
      for (const r of results) assert.equal(r.socket, results[0].socket, 'a new connection was opened');
      assert.equal(connections, 1);
      s.app.server.off('connection', count);
      assert.equal((await imageOf(s, fresh.id)).checksum, md5(data1k()));
    } finally {
      s.app.server.off('connection', count);
      agent.destroy();
    }
  });

  test('a refused body announced larger than the discard bound: Connection: close; one that goes past it is cut', async () => {
    const active = await createImage(s);
    assert.equal((await put(s, active.id, data1k())).status, 204);
    const big = new ManualUpload(s.url, active.id, { contentLength: 100 * 1024 * 1024 });
    const r = await big.response;
    assertErrorBody(r, 409);
    assert.equal(r.headers.connection, 'close');
    big.abort();

    // chunked, so the server cannot know: it reads and discards up to 64 MiB, then cuts
    const agent = new http.Agent({ keepAlive: true });
    const endless = new ManualUpload(s.url, active.id, { agent });
    assertErrorBody(await endless.response, 409);
    const piece = Buffer.alloc(1024 * 1024);
    let cut = false;
    endless.req.socket!.on('close', () => (cut = true));
    for (let i = 0; i < 200 && !cut; i++) await Promise.race([endless.write(piece), new Promise((r) => setTimeout(r, 1000))]);
    assert.ok(cut, 'the connection was cut');
    assert.ok(endless.sent > 60 * 1024 * 1024 && endless.sent < 100 * 1024 * 1024, `cut after ${endless.sent} bytes`);
    assert.equal((await imageOf(s, active.id)).status, 'active');
    agent.destroy();
  });
});
