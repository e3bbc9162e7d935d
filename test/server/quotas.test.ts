import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { startTestServer, createImage, uploadBytes, testConfig, makeDataDir, TOKENS, type TestServer } from '../support/server.js';
import { ConfigError } from '../../src/config.js';
import { postgresAvailable, createTestDatabase } from '../support/postgres.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;
let s: TestServer;

// p1: 2 MiB stored, 5 images; p2: roomy; p3: 3 MiB for the races, 3 images; admin: one upload at a time.
const QUOTAS = {
  enabled: true,
  defaults: { image_size_total: 2, image_stage_total: 1, image_count_total: 5, image_count_uploading: 2 },
  projects: {
    p2: { image_size_total: 100, image_count_total: -1 },
    p3: { image_size_total: 3, image_count_total: 20, image_count_uploading: 10 },
    admin: { image_size_total: 50, image_count_total: -1, image_count_uploading: 1 },
  },
};

before(async () => {
  s = await startTestServer({ config: { quotas: QUOTAS } });
});
after(async () => {
  await s.close();
});

async function body(res: Response): Promise<any> {
  const t = await res.text();
  return t ? JSON.parse(t) : undefined;
}

async function usage(token: keyof typeof TOKENS): Promise<Record<string, { limit: number; usage: number }>> {
  const res = await s.req('GET', '/v2/info/usage', { token });
  assert.equal(res.status, 200);
  return (await body(res)).usage;
}

async function expect413(res: Response, name: string): Promise<string> {
  const b = await body(res);
  assert.equal(res.status, 413, JSON.stringify(b));
  assert.equal(b.error.code, 413);
  assert.match(b.error.message, new RegExp(name));
  assert.match(b.error.message, /limit is/);
  assert.match(b.error.message, /in use|exist/);
  return b.error.message;
}

/** A chunked upload (no Content-Length) of `size` bytes, sent in 64 KiB pieces. */
function chunked(size: number, fill = 7): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= size) return c.close();
      const n = Math.min(64 * 1024, size - sent);
      sent += n;
      c.enqueue(new Uint8Array(n).fill(fill));
    },
  });
}

const put = (id: string, data: BodyInit, token: keyof typeof TOKENS, headers: Record<string, string> = {}) =>
  s.req('PUT', `/v2/images/${id}/file`, { token, headers: { 'content-type': 'application/octet-stream', ...headers }, body: data });

async function status(id: string): Promise<string> {
  return (await body(await s.req('GET', `/v2/images/${id}`))).status;
}

function storeFiles(): string[] {
  return filesUnder(path.join(s.dataDir, 'images'));
}

test('GET /v2/info/usage: Glance shape, limits from defaults and overrides', async () => {
  const u = await usage('reader');
  assert.deepEqual(Object.keys(u), ['image_size_total', 'image_stage_total', 'image_count_total', 'image_count_uploading']);
  assert.deepEqual(u.image_size_total, { limit: 2, usage: 0 });
  assert.deepEqual(u.image_stage_total, { limit: 1, usage: 0 });
  assert.deepEqual(u.image_count_total, { limit: 5, usage: 0 });
  assert.deepEqual(u.image_count_uploading, { limit: 2, usage: 0 });
  const u2 = await usage('other');
  assert.equal(u2.image_size_total.limit, 100);
  assert.equal(u2.image_count_total.limit, -1);
  assert.equal(u2.image_stage_total.limit, 1);
  const r = await s.req('GET', '/v2/info/usage', { token: null });
  assert.equal(r.status, 401);
  const r2 = await s.req('POST', '/v2/info/usage', { token: 'member', json: {} });
  assert.equal(r2.status, 405);
});

test('image_size_total: upfront by Content-Length, while streaming without it, exact at the limit', async () => {
  const a = await createImage(s, { name: 'q-a' }, 'member');
  assert.equal((await uploadBytes(s, a.id, Buffer.alloc(1.5 * MiB, 1), 'member')).status, 204);
  assert.deepEqual((await usage('member')).image_size_total, { limit: 2, usage: 1 }, 'usage in whole MiB, rounded down');

  const b = await createImage(s, { name: 'q-b' }, 'member');
  const files = storeFiles().length;
  // Content-Length says 1 MiB: refused before any byte is stored
  const msg = await expect413(await uploadBytes(s, b.id, Buffer.alloc(MiB, 2), 'member'), 'image_size_total');
  assert.match(msg, /p1/);
  assert.match(msg, /2 MiB/);
  assert.equal(await status(b.id), 'queued');
  // chunked 1 MiB: refused while streaming, rolled back
  await expect413(await put(b.id, chunked(MiB), 'member'), 'image_size_total');
  assert.equal(await status(b.id), 'queued');
  assert.equal(storeFiles().length, files, 'nothing left in the store');
  // exactly what is left fits, chunked too
  assert.equal((await put(b.id, chunked(0.5 * MiB), 'member')).status, 204);
  assert.deepEqual((await usage('member')).image_size_total, { limit: 2, usage: 2 });
  // a full project still accepts an empty image, not one byte more
  const c = await createImage(s, { name: 'q-c' }, 'member');
  await expect413(await uploadBytes(s, c.id, Buffer.alloc(1), 'member'), 'image_size_total');
  assert.equal((await uploadBytes(s, c.id, Buffer.alloc(0), 'member')).status, 204);
  // deleting frees the room
  assert.equal((await s.req('DELETE', `/v2/images/${a.id}`, { token: 'member' })).status, 204);
  assert.deepEqual((await usage('member')).image_size_total, { limit: 2, usage: 0 });
  for (const id of [b.id, c.id]) assert.equal((await s.req('DELETE', `/v2/images/${id}`, { token: 'member' })).status, 204);
});

test('image_count_total: the 413 names the limit; deleting makes room; the owner is charged', async () => {
  const made: string[] = [];
  for (let i = 0; i < 5; i++) made.push((await createImage(s, { name: `count-${i}` }, 'member')).id);
  const msg = await expect413(await s.req('POST', '/v2/images', { token: 'member', json: { name: 'one-too-many' } }), 'image_count_total');
  assert.match(msg, /5 images/);
  // an admin creating for p1 is held to p1's limit
  await expect413(await s.req('POST', '/v2/images', { token: 'admin', json: { name: 'for-p1', owner: 'p1' } }), 'image_count_total');
  assert.deepEqual((await usage('member')).image_count_total, { limit: 5, usage: 5 });
  assert.equal((await s.req('DELETE', `/v2/images/${made.pop()}`, { token: 'member' })).status, 204);
  assert.equal((await s.req('POST', '/v2/images', { token: 'admin', json: { name: 'for-p1', owner: 'p1' } })).status, 201);
  const list = await body(await s.req('GET', '/v2/images?limit=100', { token: 'member' }));
  for (const img of list.images) if (img.owner === 'p1') assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'admin' })).status, 204);
  assert.equal((await usage('member')).image_count_total.usage, 0);
});

test('races: concurrent creations never pass image_count_total', async () => {
  // p3 may have 20 images; 30 racing creations, exactly 20 win
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => s.req('POST', '/v2/images', { token: 'third', json: { name: `race-${i}` } })));
  const codes = results.map((r) => r.status);
  assert.equal(codes.filter((c) => c === 201).length, 20, codes.join(','));
  assert.equal(codes.filter((c) => c === 413).length, 10);
  await Promise.all(results.map((r) => r.text()));
  assert.equal((await usage('third')).image_count_total.usage, 20);
  const list = await body(await s.req('GET', '/v2/images?limit=100', { token: 'third' }));
  for (const img of list.images) if (img.owner === 'p3') await s.req('DELETE', `/v2/images/${img.id}`, { token: 'third' });
  assert.equal((await usage('third')).image_count_total.usage, 0);
});

test('races: two uploads that fit one limit only once — exactly one wins, with and without Content-Length', async () => {
  for (const mode of ['content-length', 'chunked'] as const) {
    const [x, y] = [await createImage(s, { name: `race-x-${mode}` }, 'third'), await createImage(s, { name: `race-y-${mode}` }, 'third')];
    const data = (fill: number) => (mode === 'chunked' ? chunked(2 * MiB, fill) : Buffer.alloc(2 * MiB, fill));
    const [rx, ry] = await Promise.all([put(x.id, data(1), 'third'), put(y.id, data(2), 'third')]);
    const codes = [rx.status, ry.status].sort();
    await Promise.all([rx.text(), ry.text()]);
    assert.deepEqual(codes, [204, 413], mode);
    const statuses = [await status(x.id), await status(y.id)].sort();
    assert.deepEqual(statuses, ['active', 'queued'], mode);
    assert.equal((await usage('third')).image_size_total.usage, 2);
    for (const img of [x, y]) await s.req('DELETE', `/v2/images/${img.id}`, { token: 'third' });
  }
  // and two that both fit both pass, however they interleave (no room hoarded)
  const [x, y] = [await createImage(s, { name: 'fit-x' }, 'third'), await createImage(s, { name: 'fit-y' }, 'third')];
  const [rx, ry] = await Promise.all([put(x.id, chunked(1.5 * MiB, 1), 'third'), put(y.id, chunked(1.5 * MiB, 2), 'third')]);
  assert.deepEqual([rx.status, ry.status], [204, 204], `${await rx.text()} ${await ry.text()}`);
  assert.equal((await usage('third')).image_size_total.usage, 3);
  for (const img of [x, y]) await s.req('DELETE', `/v2/images/${img.id}`, { token: 'third' });
});

test('races: a chunked upload cannot take room another upload is still streaming into', async () => {
  const [x, y] = [await createImage(s, { name: 'held-x' }, 'third'), await createImage(s, { name: 'held-y' }, 'third')];
  const held = heldUpload(x.id, 'third');
  for (let i = 0; i < 31; i++) held.req.write(Buffer.alloc(64 * 1024, 4)); // 2 MiB of 3 streamed, not finished
  await waitFor('the first upload to hold 2 MiB', async () => (await usage('third')).image_size_total.usage >= 2);
  await expect413(await put(y.id, chunked(1.5 * MiB), 'third'), 'image_size_total');
  assert.equal(await status(y.id), 'queued');
  held.req.end();
  assert.equal(await held.response, 204);
  assert.equal((await usage('third')).image_size_total.usage, 2);
  assert.equal((await put(y.id, chunked(MiB), 'third')).status, 204, 'what is left still fits');
  for (const img of [x, y]) await s.req('DELETE', `/v2/images/${img.id}`, { token: 'third' });
});

/** An upload held open mid-stream. */
function heldUpload(id: string, token: keyof typeof TOKENS): { req: http.ClientRequest; response: Promise<number> } {
  const req = http.request(new URL(`/v2/images/${id}/file`, s.url), {
    method: 'PUT',
    headers: { 'x-auth-token': TOKENS[token], 'content-type': 'application/octet-stream' },
    agent: new http.Agent({ keepAlive: false }),
  });
  const response = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
  });
  response.catch(() => {});
  req.write(Buffer.alloc(64 * 1024, 3));
  return { req, response };
}


test('image_count_uploading: a second concurrent upload is refused until the first ends; a client gone frees it', async () => {
  // the admin project may upload one image at a time
  const a = await createImage(s, { name: 'up-a' }, 'admin');
  const b = await createImage(s, { name: 'up-b' }, 'admin');
  const first = heldUpload(a.id, 'admin');
  await waitFor('the first upload to start', async () => (await status(a.id)) === 'saving');
  assert.equal((await usage('admin')).image_count_uploading.usage, 1);
  const msg = await expect413(await uploadBytes(s, b.id, Buffer.alloc(10), 'admin'), 'image_count_uploading');
  assert.match(msg, /1 image/);
  assert.equal(await status(b.id), 'queued');
  first.req.end(Buffer.alloc(10));
  assert.equal(await first.response, 204);
  assert.equal((await uploadBytes(s, b.id, Buffer.alloc(10), 'admin')).status, 204);

  // a client that disconnects mid-upload gives its slot (and its bytes) back
  const c = await createImage(s, { name: 'up-c' }, 'admin');
  const d = await createImage(s, { name: 'up-d' }, 'admin');
  const gone = heldUpload(c.id, 'admin');
  await waitFor('the upload to start', async () => (await status(c.id)) === 'saving');
  gone.req.destroy();
  await waitFor('the rollback', async () => (await status(c.id)) === 'queued');
  assert.equal((await usage('admin')).image_count_uploading.usage, 0);
  assert.equal((await uploadBytes(s, d.id, Buffer.alloc(10), 'admin')).status, 204);
  for (const img of [a, b, c, d]) await s.req('DELETE', `/v2/images/${img.id}`, { token: 'admin' });
});

test('stage and glance-direct import: staged bytes count against image_stage_total, then move to image_size_total', async () => {
  const img = await createImage(s, { name: 'staged' }, 'member');
  const st = (id: string, data: BodyInit) => s.req('PUT', `/v2/images/${id}/stage`, { token: 'member', headers: { 'content-type': 'application/octet-stream' }, body: data });
  assert.equal((await st(img.id, Buffer.alloc(MiB, 5))).status, 204);
  let u = await usage('member');
  assert.deepEqual(u.image_stage_total, { limit: 1, usage: 1 });
  assert.equal(u.image_count_uploading.usage, 1, 'a staged image counts as uploading, as in Glance');
  // staging is full: another stage is refused, upfront and while streaming
  const other = await createImage(s, { name: 'staged-2' }, 'member');
  await expect413(await st(other.id, Buffer.alloc(10)), 'image_stage_total');
  await expect413(await st(other.id, chunked(10)), 'image_stage_total');
  assert.equal(await status(other.id), 'queued');
  // the import moves the bytes into a store
  const imp = await s.req('POST', `/v2/images/${img.id}/import`, { token: 'member', json: { method: { name: 'glance-direct' } } });
  assert.equal(imp.status, 202, await imp.text());
  await waitFor('the import', async () => (await status(img.id)) === 'active');
  u = await usage('member');
  assert.deepEqual(u.image_stage_total, { limit: 1, usage: 0 });
  assert.deepEqual(u.image_size_total, { limit: 2, usage: 1 });
  assert.equal(u.image_count_uploading.usage, 0);
  assert.equal((await st(other.id, Buffer.alloc(10))).status, 204, 'staging has room again');
  for (const i of [img, other]) assert.equal((await s.req('DELETE', `/v2/images/${i.id}`, { token: 'member' })).status, 204);
  u = await usage('member');
  assert.equal(u.image_stage_total.usage + u.image_size_total.usage + u.image_count_total.usage, 0);
});

test('quotas off: usage is empty and nothing is limited', async () => {
  const off = await startTestServer();
  try {
    const res = await off.req('GET', '/v2/info/usage', { token: 'member' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { usage: {} });
    for (let i = 0; i < 7; i++) assert.equal((await off.req('POST', '/v2/images', { token: 'member', json: { name: `free-${i}` } })).status, 201);
  } finally {
    await off.close();
  }
});

test('config: bad quota settings stop the start with a clear message', () => {
  const dir = makeDataDir();
  assert.throws(() => testConfig(dir, { quotas: { enabled: true, defaults: { image_size_total: 'lots' } } }), (e: Error) => e instanceof ConfigError && /quotas.defaults.image_size_total/.test(e.message));
  assert.throws(() => testConfig(dir, { quotas: { enabled: true, projects: { p1: { image_count: 3 } } } }), /quotas.projects.p1.image_count is not a quota/);
  assert.throws(() => testConfig(dir, { quotas: { enabled: true, defaults: { image_count_total: -2 } } }), /-1 for unlimited/);
  assert.equal(testConfig(dir, { quotas: { enabled: true, defaults: { image_count_total: -1 } } }).quotas.defaults.image_count_total, -1);
});

test('races on PostgreSQL: the advisory lock serializes quota decisions across connections', async (t) => {
  if (!(await postgresAvailable())) return t.skip('no PostgreSQL at IMAGO_TEST_PG_URL');
  const db = await createTestDatabase();
  const pgServer = await startTestServer({ config: { quotas: QUOTAS, database: { url: db.url } } });
  try {
    const creations = await Promise.all(Array.from({ length: 30 }, (_, i) => pgServer.req('POST', '/v2/images', { token: 'third', json: { name: `pg-race-${i}`, disk_format: 'raw', container_format: 'bare' } })));
    const codes = creations.map((r) => r.status);
    await Promise.all(creations.map((r) => r.text()));
    assert.equal(codes.filter((c) => c === 201).length, 20, codes.join(','));
    const list = ((await (await pgServer.req('GET', '/v2/images?limit=100', { token: 'third' })).json()) as any).images;
    for (const img of list.slice(0, 18)) await pgServer.req('DELETE', `/v2/images/${img.id}`, { token: 'third' });
    const [x, y] = list.slice(18);
    const up = (id: string, fill: number) =>
      pgServer.req('PUT', `/v2/images/${id}/file`, { token: 'third', headers: { 'content-type': 'application/octet-stream' }, body: chunked(2 * MiB, fill) });
    const [rx, ry] = await Promise.all([up(x.id, 1), up(y.id, 2)]);
    const bodies = await Promise.all([rx.text(), ry.text()]);
    assert.deepEqual([rx.status, ry.status].sort(), [204, 413], bodies.join('\n'));
    const u = ((await (await pgServer.req('GET', '/v2/info/usage', { token: 'third' })).json()) as any).usage;
    assert.deepEqual(u.image_size_total, { limit: 3, usage: 2 });
    assert.deepEqual(u.image_count_total, { limit: 20, usage: 2 });
  } finally {
    await pgServer.close();
    await db.drop();
  }
});
