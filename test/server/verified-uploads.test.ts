import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createImage, startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { importImage, serveFiles, stage, waitImage, waitTasks, type FileServer } from '../import/helpers.js';

type Json = Record<string, any>;
const run = promisify(execFile);
const hash = (algo: string, data: Buffer) => createHash(algo).update(data).digest('hex');

/**
 * Verified uploads (issue 16): the digests a client declares — openstacksdk's
 * owner_specified.openstack.* properties, the X-Image-Meta-Expected-* headers,
 * web-download's expected_digest — are checked against the bytes received
 * before the image becomes active; a mismatch stores nothing.
 */
describe('verified uploads: declared digests are checked before anything is kept', () => {
  let s: TestServer;
  let web: FileServer;
  const data = pattern(300_000, 71);
  const other = pattern(300_000, 72);

  before(async () => {
    web = await serveFiles({ '/disk.raw': (_q, r) => r.end(data) });
    s = await startTestServer({ config: { import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } } } });
  });
  after(async () => {
    await s.close();
    await web.close();
  });

  const put = (id: string, body: Buffer, headers: Record<string, string> = {}) =>
    s.req('PUT', `/v2/images/${id}/file`, { headers: { 'content-type': 'application/octet-stream', ...headers }, body });
  const show = async (id: string) => (await (await s.req('GET', `/v2/images/${id}`)).json()) as Json;
  const stored = (id: string) => filesUnder(path.join(s.dataDir, 'images')).filter((f) => f.includes(id));
  const staged = (id: string) => filesUnder(path.join(s.dataDir, 'staging')).filter((f) => f.includes(id));

  test('owner_specified.openstack.md5 and .sha256: matching bytes activate the image', async () => {
    const img = await createImage(s, { 'owner_specified.openstack.md5': hash('md5', data), 'owner_specified.openstack.sha256': hash('sha256', data) });
    assert.equal((await put(img.id, data)).status, 204);
    assert.equal((await show(img.id)).status, 'active');
  });

  test('a different md5 or sha256 property: 400 naming the property and both digests; the image stays queued, nothing stored', async () => {
    for (const [prop, algo] of [['owner_specified.openstack.md5', 'md5'], ['owner_specified.openstack.sha256', 'sha256'], ['owner_specified.shade.sha256', 'sha256']]) {
      const img = await createImage(s, { [prop]: hash(algo, other) });
      const res = await put(img.id, data);
      assert.equal(res.status, 400, prop);
      const { error } = (await res.json()) as Json;
      assert.equal(error.code, 400);
      assert.ok(error.message.includes(prop), error.message);
      assert.ok(error.message.includes(hash(algo, other)) && error.message.includes(hash(algo, data)), error.message);
      const shown = await show(img.id);
      assert.equal(shown.status, 'queued');
      assert.equal(shown.checksum, null);
      assert.deepEqual(stored(img.id), []);
      // the client may fix its data and upload again
      assert.equal((await put(img.id, other)).status, 204);
    }
  });

  test('empty values mean absent (openstacksdk sends them when it computed nothing)', async () => {
    const img = await createImage(s, { 'owner_specified.openstack.md5': '', 'owner_specified.openstack.sha256': '' });
    assert.equal((await put(img.id, data)).status, 204);
  });

  test('X-Image-Meta-Expected-Sha256 / -Sha512 / -Md5 on PUT /file: a mismatch is 400, a malformed value 400 before any byte', async () => {
    const ok = await createImage(s);
    assert.equal((await put(ok.id, data, { 'x-image-meta-expected-sha256': hash('sha256', data), 'x-image-meta-expected-sha512': hash('sha512', data), 'x-image-meta-expected-md5': hash('md5', data) })).status, 204);
    for (const [header, algo] of [['x-image-meta-expected-sha256', 'sha256'], ['x-image-meta-expected-sha512', 'sha512'], ['x-image-meta-expected-md5', 'md5']]) {
      const img = await createImage(s);
      const res = await put(img.id, data, { [header]: hash(algo, other).toUpperCase() });
      assert.equal(res.status, 400, header);
      assert.match(((await res.json()) as Json).error.message, /X-Image-Meta-Expected/);
      assert.equal((await show(img.id)).status, 'queued');
      assert.deepEqual(stored(img.id), []);
    }
    const img = await createImage(s);
    const bad = await put(img.id, data, { 'x-image-meta-expected-sha256': 'abc' });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as Json).error.message, /64 hexadecimal digits/);
  });

  test('PUT /stage checks the declared digests too; the import of matching staged data works', async () => {
    const img = await createImage(s, { 'owner_specified.openstack.sha256': hash('sha256', other) });
    const res = await stage(s, img.id, data);
    assert.equal(res.status, 400);
    assert.equal((await show(img.id)).status, 'queued');
    assert.deepEqual(staged(img.id), []);
    assert.equal((await stage(s, img.id, other)).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
    assert.equal((await waitImage(s, img.id, (i) => i.status === 'active')).checksum, hash('md5', other));
    const byHeader = await createImage(s);
    const r2 = await s.req('PUT', `/v2/images/${byHeader.id}/stage`, { headers: { 'content-type': 'application/octet-stream', 'x-image-meta-expected-sha512': hash('sha512', other) }, body: data });
    assert.equal(r2.status, 400);
  });

  test('web-download with expected_digest: a match activates, a mismatch fails the task and leaves the image queued', async () => {
    const uri = `${web.url}/disk.raw`;
    const good = await createImage(s);
    assert.equal((await importImage(s, good.id, { method: { name: 'web-download', uri }, expected_digest: { algo: 'sha256', value: hash('sha256', data) } })).status, 202);
    assert.equal((await waitImage(s, good.id, (i) => i.status === 'active')).os_hash_value, hash('sha512', data));
    const bad = await createImage(s);
    assert.equal((await importImage(s, bad.id, { method: { name: 'web-download', uri }, expected_digest: { algo: 'sha256', value: hash('sha256', other) } })).status, 202);
    const [task] = await waitTasks(s, bad.id);
    assert.equal(task.status, 'failure');
    assert.match(task.message, /does not match the sha256 digest/);
    assert.equal((await waitImage(s, bad.id, (i) => i.status === 'queued')).checksum, null);
    assert.deepEqual(staged(bad.id), []);
    // the owner_specified properties hold for web-download too
    const prop = await createImage(s, { 'owner_specified.openstack.md5': hash('md5', other) });
    assert.equal((await importImage(s, prop.id, { method: { name: 'web-download', uri } })).status, 202);
    assert.equal((await waitTasks(s, prop.id))[0].status, 'failure');
    // bad requests
    const img = await createImage(s);
    assert.equal((await importImage(s, img.id, { method: { name: 'web-download', uri }, expected_digest: { algo: 'crc32', value: '00' } })).status, 400);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, expected_digest: { algo: 'sha256', value: hash('sha256', data) } })).status, 400);
  });

  test('openstacksdk create_image(validate_checksum=True) with a file changed after its digests: refused, the SDK raises and deletes the image', { skip: !existsSync('/usr/lib/python3/dist-packages/openstack') && 'python3-openstacksdk is not installed' }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'imago-sdk-'));
    try {
      const file = path.join(dir, 'disk.raw');
      writeFileSync(file, other);
      // the digests of `data`, as the SDK would have computed them before the file changed
      const script = [
        'import sys, openstack',
        'url, token, path, md5, sha256 = sys.argv[1:6]',
        "conn = openstack.connect(auth_type='admin_token', auth={'token': token, 'endpoint': url + '/v2'})",
        'try:',
        "    conn.image.create_image(name='sdk-verified', filename=path, disk_format='raw', container_format='bare', md5=md5, sha256=sha256, validate_checksum=True, allow_duplicates=True)",
        "    print('CREATED')",
        'except Exception as e:',
        "    print('RAISED', type(e).__name__, e)",
      ].join('\n');
      const script2 = path.join(dir, 'sdk.py');
      writeFileSync(script2, script);
      const { stdout } = await run('/usr/bin/python3', [script2, s.url, TOKENS.admin, file, hash('md5', data), hash('sha256', data)], { timeout: 60_000 });
      assert.match(stdout, /^RAISED/m, stdout);
      assert.match(stdout, /does not match the (md5|sha256) digest/, stdout);
      const images = ((await (await s.req('GET', '/v2/images?name=sdk-verified')).json()) as Json).images;
      assert.deepEqual(images, [], 'the SDK deleted the image it had created');
      // unchanged file: the SDK's own digests match and the image is active
      writeFileSync(file, data);
      const ok = await run('/usr/bin/python3', ['-c', [
        'import sys, openstack',
        "conn = openstack.connect(auth_type='admin_token', auth={'token': sys.argv[2], 'endpoint': sys.argv[1] + '/v2'})",
        "img = conn.image.create_image(name='sdk-ok', filename=sys.argv[3], disk_format='raw', container_format='bare', validate_checksum=True, allow_duplicates=True)",
        'print(img.id)',
      ].join('\n'), s.url, TOKENS.admin, file], { timeout: 60_000 });
      const id = ok.stdout.trim().split('\n').pop()!;
      const shown = await show(id);
      assert.equal(shown.status, 'active');
      assert.equal(shown['owner_specified.openstack.sha256'], hash('sha256', data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
