import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { createImage, data1k, startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { assertErrorBody, md5, put, readResponse, type RawResponse } from './image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';

const BIG = 3 * 1024 * 1024 + 123;

describe('GET /v2/images/{id}/file', () => {
  let s: TestServer;
  let small: string; // the 1000-byte image of observed.md
  let big: string;
  let bigData: Buffer;
  let queued: string;
  let empty: string;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  const get = (id: string, headers: Record<string, string> = {}, opts: { method?: string; token?: keyof typeof TOKENS } = {}): Promise<RawResponse & { socket: unknown }> =>
    new Promise((resolve, reject) => {
      const req = http.request(`${s.url}/v2/images/${id}/file`, { method: opts.method ?? 'GET', agent, headers: { 'x-auth-token': TOKENS[opts.token ?? 'admin'], ...headers } });
      req.on('response', (res) => readResponse(res).then((r) => resolve({ ...r, socket: req.socket }), reject));
      req.on('error', reject);
      req.end();
    });

  before(async () => {
    s = await startTestServer();
    small = (await createImage(s, { name: 'small' })).id;
    assert.equal((await put(s, small, data1k())).status, 204);
    bigData = pattern(BIG, 99);
    big = (await createImage(s, { name: 'big' })).id;
    assert.equal((await put(s, big, bigData)).status, 204);
    queued = (await createImage(s, { name: 'queued' })).id;
    empty = (await createImage(s, { name: 'empty' })).id;
    assert.equal((await put(s, empty, Buffer.alloc(0))).status, 204);
  });
  after(async () => {
    agent.destroy();
    await s.close();
  });

  test('whole image: 200, octet-stream, Content-Length, Content-MD5, exact bytes', async () => {
    const r = await get(small);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.equal(r.headers['content-length'], '1000');
    assert.equal(r.headers['content-md5'], 'cbecbdb0fdd5cec1e242493b6008cc79');
    assert.equal(r.headers['content-range'], undefined);
    assert.deepEqual(r.body, data1k());
    const rb = await get(big);
    assert.equal(rb.headers['content-length'], String(BIG));
    assert.equal(rb.headers['content-md5'], md5(bigData));
    assert.ok(rb.body.equals(bigData));
  });

  const ranges: [string, number, number][] = [
    ['bytes=0-99', 0, 99],
    ['bytes=100-', 100, 999],
    ['bytes=-100', 900, 999],
    ['bytes=990-2000', 990, 999],
    ['bytes=999-999', 999, 999],
    ['bytes=0-', 0, 999],
    ['bytes=0-0', 0, 0],
    ['bytes=-5000', 0, 999],
    ['BYTES = 5-9', 5, 9],
    ['bytes=10-19,', 10, 19],
    ['bytes=, 20-29', 20, 29],
  ];
  for (const [range, start, end] of ranges) {
    test(`Range: ${range} -> 206 bytes ${start}-${end}/1000`, async () => {
      const r = await get(small, { range });
      assert.equal(r.status, 206);
      assert.equal(r.headers['content-range'], `bytes ${start}-${end}/1000`);
      assert.equal(r.headers['content-length'], String(end - start + 1));
      assert.equal(r.headers['content-md5'], 'cbecbdb0fdd5cec1e242493b6008cc79', 'Content-MD5 is the whole image md5, as Glance');
      assert.equal(r.headers['content-type'], 'application/octet-stream');
      assert.deepEqual(r.body, data1k().subarray(start, end + 1));
    });
  }

  test('ranges across read-chunk boundaries of a larger image', async () => {
    const MiB = 1024 * 1024;
    for (const [a, b] of [[MiB - 1, MiB + 1], [0, 2 * MiB], [BIG - 1, BIG - 1], [2 * MiB + 7, BIG + 50]]) {
      const r = await get(big, { range: `bytes=${a}-${b}` });
      assert.equal(r.status, 206);
      const e = Math.min(b, BIG - 1);
      assert.equal(r.headers['content-range'], `bytes ${a}-${e}/${BIG}`);
      assert.ok(r.body.equals(bigData.subarray(a, e + 1)), `bytes ${a}-${b}`);
    }
  });

  for (const range of ['bytes=1000-1100', 'bytes=5000-', 'bytes=50-10', 'items=0-10', 'bytes=abc', 'bytes=', 'bytes=,', 'bytes=-0', 'bytes=-', '0-10', 'bytes=1-2-3']) {
    test(`Range: ${range} -> 416 with Content-Range: bytes */1000`, async () => {
      const r = await get(small, { range });
      assertErrorBody(r, 416);
      assert.equal(r.headers['content-range'], 'bytes */1000');
    });
  }

  test('several ranges -> 400', async () => {
    const e = assertErrorBody(await get(small, { range: 'bytes=0-1,5-6' }), 400);
    assert.match(e.message, /multiple ranges/);
  });

  test('legacy Content-Range request header is honoured; Range wins when both are sent', async () => {
    let r = await get(small, { 'content-range': 'bytes 0-99/1000' });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], 'bytes 0-99/1000');
    assert.deepEqual(r.body, data1k().subarray(0, 100));
    r = await get(small, { 'content-range': 'bytes 10-19/*' });
    assert.equal(r.headers['content-range'], 'bytes 10-19/1000');
    assert.deepEqual(r.body, data1k().subarray(10, 20));
    r = await get(small, { 'content-range': 'bytes 0-99/1000', range: 'bytes=200-209' });
    assert.equal(r.headers['content-range'], 'bytes 200-209/1000');
    assert.deepEqual(r.body, data1k().subarray(200, 210));
    r = await get(small, { 'content-range': 'bytes 990-999/*' });
    assert.equal(r.status, 206);
    assert.deepEqual(r.body, data1k().subarray(990, 1000));
    assertErrorBody(await get(small, { 'content-range': 'bytes 2000-2100/*' }), 416);
    assertErrorBody(await get(small, { 'content-range': 'rubbish' }), 416);
  });

  test('legacy Content-Range reaching past the image -> 416 (not clamped as Range is)', async () => {
    for (const value of ['bytes 990-1000/*', 'bytes 0-1999/*', 'bytes 990-2000/3000', 'bytes 0-1000/1001', 'bytes 1000-1000/*', 'bytes 20-10/*', 'bytes 0-99/50']) {
      const r = await get(small, { 'content-range': value });
      const e = assertErrorBody(r, 416);
      assert.match(e.message, /Content-Range/, value);
      assert.equal(r.headers['content-range'], 'bytes */1000', value);
    }
  });

  test('no data: 204 without body or Content-Type, also with Range', async () => {
    for (const headers of [{}, { range: 'bytes=0-99' }, { range: 'bytes=5000-' }] as Record<string, string>[]) {
      const r = await get(queued, headers);
      assert.equal(r.status, 204);
      assert.equal(r.body.length, 0);
      assert.equal(r.headers['content-type'], undefined);
    }
  });

  test('a 0-byte active image: 200 with an empty body', async () => {
    const r = await get(empty);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '0');
    assert.equal(r.headers['content-md5'], 'd41d8cd98f00b204e9800998ecf8427e');
    assert.equal(r.body.length, 0);
  });

  test('HEAD: the headers GET would send, no body', async () => {
    const cases: [string, Record<string, string>][] = [
      [small, {}],
      [small, { range: 'bytes=0-99' }],
      [big, { range: 'bytes=-10' }],
      [queued, {}],
      [empty, {}],
      [small, { range: 'bytes=5000-' }],
    ];
    for (const [id, headers] of cases) {
      const g = await get(id, headers);
      const h = await get(id, headers, { method: 'HEAD' });
      assert.equal(h.status, g.status);
      assert.equal(h.body.length, 0);
      for (const k of ['content-type', 'content-length', 'content-md5', 'content-range']) assert.equal(h.headers[k], g.headers[k], `${k} of HEAD ${headers.range ?? ''}`);
    }
  });

  test('HEAD does not read the file: it answers even when the object is gone, GET does not', async () => {
    const id = (await createImage(s)).id;
    assert.equal((await put(s, id, data1k())).status, 204);
    unlinkSync(path.join(s.dataDir, 'images', id));
    const h = await get(id, {}, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], '1000');
    const g = await get(id);
    assert.equal(g.status, 404);
    assert.equal(JSON.parse(g.body.toString()).error.code, 404);
  });

  test('deactivated: 403 for non-admins, 200 for admins', async () => {
    const id = (await createImage(s, {}, 'member')).id;
    assert.equal((await put(s, id, data1k(), { token: 'member' })).status, 204);
    assert.equal((await s.req('POST', `/v2/images/${id}/actions/deactivate`)).status, 204);
    const e = assertErrorBody(await get(id, {}, { token: 'member' }), 403);
    assert.match(e.message, /deactivated/);
    assertErrorBody(await get(id, { range: 'bytes=0-9' }, { token: 'member' }), 403);
    const r = await get(id);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, data1k());
  });

  test('404 unknown image, 401 without token', async () => {
    assertErrorBody(await get('00000000-0000-4000-8000-000000000000'), 404);
    assertErrorBody(await get('not-a-uuid'), 404);
    const r = await fetch(`${s.url}/v2/images/${small}/file`);
    assert.equal(r.status, 401);
  });

  test('one kept-alive connection serves 200, 206, 416, 204, HEAD, 400 and 404 in a row', async () => {
    let connections = 0;
    const count = () => connections++;
    s.app.server.on('connection', count);
    try {
      const first = await get(small);
      const seen = [first.status];
      for (const [id, h, m] of [
        [small, { range: 'bytes=0-9' }, 'GET'],
        [small, { range: 'bytes=5000-' }, 'GET'],
        [queued, {}, 'GET'],
        [small, {}, 'HEAD'],
        [queued, { range: 'bytes=0-1' }, 'HEAD'],
        [small, { range: 'bytes=0-1,3-4' }, 'GET'],
        ['00000000-0000-4000-8000-000000000000', {}, 'GET'],
        [big, {}, 'GET'],
        [small, {}, 'GET'],
      ] as [string, Record<string, string>, string][]) {
        const r = await get(id, h, { method: m });
        assert.equal(r.socket, first.socket, `request ${seen.length} used a new connection`);
        seen.push(r.status);
      }
      assert.deepEqual(seen, [200, 206, 416, 204, 200, 204, 400, 404, 200, 200]);
      assert.ok(connections <= 1, `${connections} connections`);
    } finally {
      s.app.server.off('connection', count);
    }
  });

  test('a client leaving mid-download leaks no file descriptor', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    await get(big); // warm
    const before = fds();
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${s.url}/v2/images/${big}/file`, { headers: { 'x-auth-token': TOKENS.admin } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      });
    }
    await waitFor('descriptors released', () => fds() <= before, 5000);
    assert.equal((await get(small)).status, 200);
  });
});
