import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createImage, startTestServer, uploadBytes, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';

type Json = Record<string, any>;
const PATCH = { 'content-type': 'application/openstack-images-v2.1-json-patch' };

/** A web server holding image files: HEAD, GET and Range, and a log of what it was asked. */
async function webServer(files: Record<string, Buffer>) {
  const asked: string[] = [];
  const srv = http.createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    const data = files[req.url ?? ''];
    if (!data) return res.writeHead(404).end();
    if (req.method !== 'GET' && req.method !== 'HEAD') return res.writeHead(405).end();
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (range) {
      const [start, end] = [Number(range[1]), Math.min(Number(range[2]), data.length - 1)];
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${data.length}` });
      return res.end(req.method === 'HEAD' ? undefined : data.subarray(start, end + 1));
    }
    res.writeHead(200, { 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return { url, asked, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

describe('the locations API (locations.showMultiple)', () => {
  let s: TestServer;
  let web: Awaited<ReturnType<typeof webServer>>;
  const disk = pattern(300_000, 41);
  const other = pattern(1000, 42);
  const patch = (id: string, ops: unknown[], token: 'admin' | 'member' | 'other' | 'reader' = 'admin') => s.req('PATCH', `/v2/images/${id}`, { token, headers: PATCH, body: JSON.stringify(ops) });
  const show = async (id: string, token: 'admin' | 'member' | 'other' | 'reader' = 'admin') => (await (await s.req('GET', `/v2/images/${id}`, { token })).json()) as Json;
  const errorOf = async (res: Response) => ((await res.json()) as Json).error;

  before(async () => {
    web = await webServer({ '/images/disk.raw': disk, '/images/other.raw': other, '/images/empty.raw': Buffer.alloc(0), '/private/secret.raw': other });
    s = await startTestServer({
      config: {
        locations: { showMultiple: true, showDirectUrl: true },
        stores: [
          { id: 'local', type: 'filesystem', path: 'images', description: 'default' },
          { id: 'web', type: 'http', description: 'a web mirror', http: { allowedPrefixes: [`${web.url}/images/`] } },
        ],
      },
    });
  });
  after(async () => {
    await s.close();
    await web.close();
  });

  test('a queued image shows an empty list; adding an http location makes it active with the size from HEAD and no digests', async () => {
    const img = await createImage(s, {}, 'member');
    assert.deepEqual(img.locations, []);
    const url = `${web.url}/images/disk.raw`;
    const res = await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: { foo: 'bar' } } }], 'member');
    assert.equal(res.status, 200);
    const shown = await show(img.id, 'member');
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, disk.length);
    assert.deepEqual(shown.locations, [{ url, metadata: { foo: 'bar' } }]);
    assert.equal(shown.direct_url, url);
    assert.equal(shown.stores, 'web');
    assert.equal(shown.checksum, null);
    assert.equal(shown.os_hash_value, null);
    // the data streams from the web server, whole and in ranges
    const full = await s.req('GET', `/v2/images/${img.id}/file`, { token: 'member' });
    assert.equal(full.status, 200);
    assert.equal(full.headers.get('content-length'), String(disk.length));
    assert.deepEqual(Buffer.from(await full.arrayBuffer()), disk);
    const part = await s.req('GET', `/v2/images/${img.id}/file`, { token: 'member', headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), disk.subarray(1000, 2000));
    // a reader of the project sees the locations too (get_image_location); another project sees none of the image
    assert.deepEqual((await show(img.id, 'reader')).locations, [{ url, metadata: { foo: 'bar' } }]);
    assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 404);
  });

  test('a second location (URL#fragment), replace changes metadata only, remove needs admin and keeps the last one', async () => {
    const img = await createImage(s);
    const url = `${web.url}/images/disk.raw`;
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }])).status, 200);
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url: `${url}#new`, metadata: { speed: '88mph' } } }])).status, 200);
    let shown = await show(img.id);
    assert.deepEqual(shown.locations.map((l: Json) => l.url), [url, `${url}#new`]);
    assert.equal(shown.direct_url, url);
    // the same URL with the same metadata is a duplicate
    const dup = await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]);
    assert.equal(dup.status, 400);
    assert.match((await errorOf(dup)).message, /already has the location/);
    // replace: the same list works, metadata may change, the URLs may not
    const locs = shown.locations as Json[];
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/locations', value: locs }])).status, 200);
    locs[0].metadata.date = '2015-10-15';
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/locations', value: locs }])).status, 200);
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/locations', value: [locs[0]] }])).status, 400);
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/locations', value: [locs[0], { url: `${url}#new3`, metadata: {} }] }])).status, 400);
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/locations', value: [] }])).status, 403);
    shown = await show(img.id);
    assert.deepEqual(shown.locations, locs);
    // inserting at a position
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/0', value: { url: `${url}#first`, metadata: {} } }])).status, 200);
    assert.deepEqual((await show(img.id)).locations.map((l: Json) => l.url), [`${url}#first`, url, `${url}#new`]);
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/7', value: { url: `${url}#far`, metadata: {} } }])).status, 400);
    // remove: delete_image_location is admin's by default
    assert.equal((await patch(img.id, [{ op: 'remove', path: '/locations/0' }], 'member')).status, 404, 'the admin-owned image is not even visible to p1');
    assert.equal((await patch(img.id, [{ op: 'remove', path: '/locations/0' }])).status, 200);
    assert.equal((await patch(img.id, [{ op: 'remove', path: '/locations/0' }])).status, 200);
    shown = await show(img.id);
    assert.deepEqual(shown.locations.map((l: Json) => l.url), [`${url}#new`]);
    assert.equal(shown.direct_url, `${url}#new`);
    const last = await patch(img.id, [{ op: 'remove', path: '/locations/0' }]);
    assert.equal(last.status, 403);
    assert.match((await errorOf(last)).message, /last location/);
    // nothing was ever asked to delete anything on the web server
    assert.equal(web.asked.filter((a) => !a.startsWith('HEAD ') && !a.startsWith('GET ')).length, 0);
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`)).status, 204);
  });

  test('the member of the owning project may not remove locations (admin only by default)', async () => {
    const img = await createImage(s, {}, 'member');
    const url = `${web.url}/images/other.raw`;
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }, { op: 'add', path: '/locations/-', value: { url: `${url}#2`, metadata: {} } }], 'member')).status, 200);
    const res = await patch(img.id, [{ op: 'remove', path: '/locations/0' }], 'member');
    assert.equal(res.status, 403);
    assert.equal((await show(img.id, 'member')).locations.length, 2);
    // a reader may not set one either
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url: `${url}#3`, metadata: {} } }], 'reader')).status, 403);
  });

  test('URLs that name no object of a configured store are refused with 400 before any request leaves', async () => {
    const img = await createImage(s);
    const before = web.asked.length;
    for (const url of ['gopher://info.cern.ch', 'file:///etc/passwd', `${web.url}/private/secret.raw`, 'http://169.254.169.254/latest/meta-data/', `http://user:pw@${web.url.slice(7)}/images/disk.raw`, 'not a url']) {
      const res = await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]);
      assert.equal(res.status, 400, url);
      assert.match((await errorOf(res)).message, /Invalid location/, url);
    }
    assert.equal(web.asked.length, before, 'no request for refused URLs');
    // in an allowed prefix but absent, or empty: 400 too
    for (const url of [`${web.url}/images/missing.raw`, `${web.url}/images/empty.raw`]) {
      const res = await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]);
      assert.equal(res.status, 400, url);
    }
    // malformed location objects
    for (const value of [{ url: `${web.url}/images/disk.raw` }, { url: 5, metadata: {} }, { url: `${web.url}/images/disk.raw`, metadata: {}, extra: 1 }, 'x']) {
      assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value }])).status, 400, JSON.stringify(value));
    }
    assert.equal((await show(img.id)).status, 'queued');
  });

  test('validation_data on a queued image is taken as given; a different value later answers 409 and changes nothing', async () => {
    const img = await createImage(s);
    const url = `${web.url}/images/disk.raw`;
    const vd = { checksum: '1'.repeat(32), os_hash_algo: 'sha512', os_hash_value: 'deadbeef'.repeat(16) };
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {}, validation_data: vd } }])).status, 200);
    let shown = await show(img.id);
    assert.equal(shown.status, 'active');
    assert.equal(shown.checksum, vd.checksum);
    assert.equal(shown.os_hash_algo, 'sha512');
    assert.equal(shown.os_hash_value, vd.os_hash_value);
    assert.equal('validation_data' in shown.locations[0], false);
    // the same values on a second location: fine
    assert.equal((await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url: `${url}#same`, metadata: {}, validation_data: vd } }])).status, 200);
    for (const change of [{ checksum: '2'.repeat(32) }, { os_hash_value: 'beefdead'.repeat(16) }, { os_hash_algo: 'sha256' }]) {
      const res = await patch(img.id, [{ op: 'add', path: '/locations/-', value: { url: `${url}#new`, metadata: {}, validation_data: { ...vd, ...change } } }]);
      assert.equal(res.status, 409, JSON.stringify(change));
    }
    shown = await show(img.id);
    assert.equal(shown.locations.length, 2);
    assert.equal(shown.checksum, vd.checksum);
    // digests of the wrong form on a queued image: 409 as well
    const fresh = await createImage(s);
    const bad = await patch(fresh.id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {}, validation_data: { ...vd, checksum: 'xyz' } } }]);
    assert.equal(bad.status, 409);
    assert.equal((await show(fresh.id)).status, 'queued');
  });

  test('filesystem locations: an image may not point at another image\'s object; removing a location removes its object', async () => {
    const a = await createImage(s);
    assert.equal((await uploadBytes(s, a.id, other)).status, 204);
    const aShown = await show(a.id);
    const fileUrl = aShown.locations[0].url as string;
    assert.match(fileUrl, /^file:\/\//);
    assert.deepEqual(aShown.locations, [{ url: fileUrl, metadata: {} }]);
    const b = await createImage(s);
    const stolen = await patch(b.id, [{ op: 'add', path: '/locations/-', value: { url: fileUrl, metadata: {} } }]);
    assert.equal(stolen.status, 409);
    assert.equal((await show(b.id)).status, 'queued');
    // a has its file and a web copy; removing the file location removes the file
    assert.equal((await patch(a.id, [{ op: 'add', path: '/locations/-', value: { url: `${web.url}/images/other.raw`, metadata: {} } }])).status, 200);
    assert.equal((await patch(a.id, [{ op: 'remove', path: '/locations/0' }])).status, 200);
    assert.equal(existsSync(fileURLToPath(fileUrl)), false);
    const left = await show(a.id);
    assert.equal(left.stores, 'web');
    const data = Buffer.from(await (await s.req('GET', `/v2/images/${a.id}/file`)).arrayBuffer());
    assert.equal(createHash('md5').update(data).digest('hex'), aShown.checksum);
  });
});

describe('the location APIs of 2.17 (POST and GET /v2/images/{id}/locations)', () => {
  let s: TestServer;
  let web: Awaited<ReturnType<typeof webServer>>;
  const disk = pattern(200_000, 51);
  const md5 = createHash('md5').update(disk).digest('hex');
  const sha512 = createHash('sha512').update(disk).digest('hex');

  before(async () => {
    web = await webServer({ '/images/disk.raw': disk });
    s = await startTestServer({
      config: { stores: [
        { id: 'local', type: 'filesystem', path: 'images', description: 'default' },
        { id: 'web', type: 'http', description: 'a web mirror', http: { allowedPrefixes: [`${web.url}/images/`] } },
      ] },
    });
  });
  after(async () => {
    await s.close();
    await web.close();
  });

  const add = (id: string, body: unknown, token: 'admin' | 'member' | 'reader' = 'member') => s.req('POST', `/v2/images/${id}/locations`, { token, json: body });
  const waitTask = async (id: string) => {
    for (let i = 0; i < 200; i++) {
      const [t] = ((await (await s.req('GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] }).tasks;
      if (t && (t.status === 'success' || t.status === 'failure')) return t;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the location_import task did not end');
  };

  test('202, then a location_import task hashes the object once and activates the image (the data stays on the web server)', async () => {
    const img = await createImage(s, {}, 'member');
    const url = `${web.url}/images/disk.raw`;
    const res = await add(img.id, { url });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
    const task = await waitTask(img.id);
    assert.equal(task.type, 'location_import');
    assert.equal(task.status, 'success', task.message);
    const shown = (await (await s.req('GET', `/v2/images/${img.id}`, { token: 'member' })).json()) as Json;
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, disk.length);
    assert.equal(shown.checksum, md5);
    assert.equal(shown.os_hash_value, sha512);
    assert.equal(shown.stores, 'web');
    assert.deepEqual(Buffer.from(await (await s.req('GET', `/v2/images/${img.id}/file`, { token: 'member' })).arrayBuffer()), disk);
    // GET: services (and admins) only
    const listed = await s.req('GET', `/v2/images/${img.id}/locations`);
    assert.equal(listed.status, 200);
    assert.deepEqual(await listed.json(), [{ url, metadata: { store: 'web' } }]);
    assert.equal((await s.req('GET', `/v2/images/${img.id}/locations`, { token: 'member' })).status, 403);
    // only queued images
    assert.equal((await add(img.id, { url })).status, 409);
  });

  test('validation_data: a match activates, a mismatch fails the task and leaves the image queued', async () => {
    const url = `${web.url}/images/disk.raw`;
    const good = await createImage(s, {}, 'member');
    assert.equal((await add(good.id, { url, validation_data: { os_hash_algo: 'sha512', os_hash_value: sha512 } })).status, 202);
    assert.equal((await waitTask(good.id)).status, 'success');
    const bad = await createImage(s, {}, 'member');
    assert.equal((await add(bad.id, { url, validation_data: { os_hash_algo: 'sha512', os_hash_value: 'ab'.repeat(64) } })).status, 202);
    const task = await waitTask(bad.id);
    assert.equal(task.status, 'failure');
    assert.match(task.message, /does not match its validation_data/);
    assert.match(task.message, /back in status queued/);
    const shown = (await (await s.req('GET', `/v2/images/${bad.id}`, { token: 'member' })).json()) as Json;
    assert.equal(shown.status, 'queued');
    assert.equal(shown.checksum, null);
    assert.equal('stores' in shown, false);
  });

  test('refusals: bad bodies and URLs 400, readers 403, non-http stores for services only', async () => {
    const img = await createImage(s, {}, 'member');
    for (const body of [{}, { url: 5 }, { url: `${web.url}/images/disk.raw`, extra: 1 }, { url: 'file:///etc/passwd' }, { url: 'http://169.254.169.254/' }, [], { url: `${web.url}/images/disk.raw`, validation_data: { checksum: md5 } }]) {
      const res = await add(img.id, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.ok(((await res.json()) as Json).error.message);
    }
    assert.equal((await add(img.id, { url: `${web.url}/images/disk.raw` }, 'reader')).status, 403);
    // a file of the filesystem store: only a service may point an image at it
    const other = await createImage(s);
    assert.equal((await uploadBytes(s, other.id, pattern(10))).status, 204);
    const owned = (await (await s.req('GET', `/v2/images/${other.id}/locations`)).json()) as Json[];
    assert.equal((await add(img.id, { url: owned[0].url })).status, 403);
    assert.equal((await (await s.req('GET', `/v2/images/${img.id}`, { token: 'member' })).json() as Json).status, 'queued');
  });
});

describe('locations hidden (the default)', () => {
  test('no locations or direct_url in representations; changes are refused with 403', async () => {
    const s = await startTestServer();
    try {
      const img = await createImage(s);
      assert.equal((await uploadBytes(s, img.id, pattern(100))).status, 204);
      const shown = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Json;
      assert.equal('locations' in shown, false);
      assert.equal('direct_url' in shown, false);
      const res = await s.req('PATCH', `/v2/images/${img.id}`, { headers: PATCH, body: JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://x/y', metadata: {} } }]) });
      assert.equal(res.status, 403);
    } finally {
      await s.close();
    }
  });
});
