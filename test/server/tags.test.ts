import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestServer, createImage, type TestServer, type TOKENS } from '../support/server.js';

type Json = Record<string, any>;
type Who = keyof typeof TOKENS;

describe('PUT/DELETE /v2/images/{id}/tags/{tag}', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  const tagUrl = (id: string, tag: string) => `/v2/images/${id}/tags/${encodeURIComponent(tag)}`;
  const put = (id: string, tag: string, token: Who = 'admin') => s.req('PUT', tagUrl(id, tag), { token });
  const del = (id: string, tag: string, token: Who = 'admin') => s.req('DELETE', tagUrl(id, tag), { token });
  const tagsOf = async (id: string) => (((await (await s.req('GET', `/v2/images/${id}`)).json()) as Json).tags as string[]).sort();

  async function expectError(res: Response, status: number, pattern?: RegExp): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, status, text);
    const e = JSON.parse(text).error;
    assert.equal(e.code, status);
    if (pattern) assert.match(e.message, pattern);
  }

  test('PUT adds a tag (204, no body) and is idempotent; DELETE removes it', async () => {
    const img = await createImage(s, { tags: ['old'] }, 'member');
    for (let i = 0; i < 2; i++) {
      const res = await put(img.id, 'new one', 'member');
      assert.equal(res.status, 204);
      assert.equal(await res.text(), '');
      assert.deepEqual(await tagsOf(img.id), ['new one', 'old']);
    }
    const res = await del(img.id, 'old', 'member');
    assert.equal(res.status, 204);
    assert.deepEqual(await tagsOf(img.id), ['new one']);
    await expectError(await del(img.id, 'old', 'member'), 404, /old/);
  });

  test('tags with unicode, dots, spaces and escaped slashes', async () => {
    const img = await createImage(s);
    for (const tag of ['ünïcødé 🐧', 'a.b.c', 'with space', 'a/b', '%41']) assert.equal((await put(img.id, tag)).status, 204, tag);
    assert.deepEqual(await tagsOf(img.id), ['%41', 'a.b.c', 'a/b', 'with space', 'ünïcødé 🐧'].sort());
    assert.equal((await del(img.id, 'a/b')).status, 204);
    assert.equal((await tagsOf(img.id)).includes('a/b'), false);
  });

  test('a tag over 255 characters is 400; the 129th tag is 413', async () => {
    const img = await createImage(s, { tags: Array.from({ length: 127 }, (_, i) => `t${i}`) });
    await expectError(await put(img.id, 'x'.repeat(256)), 400, /255/);
    assert.equal((await put(img.id, 'x'.repeat(255))).status, 204);
    await expectError(await put(img.id, 'one-too-many'), 413, /128/);
    assert.equal((await put(img.id, 't0')).status, 204, 'an existing tag is not one more');
  });

  test('unknown images, other projects and readers', async () => {
    await expectError(await put(randomUUID(), 'x'), 404);
    await expectError(await put('not-a-uuid', 'x'), 404);
    await expectError(await del(randomUUID(), 'x'), 404);
    const priv = await createImage(s, { visibility: 'private' }, 'member');
    await expectError(await put(priv.id, 'x', 'other'), 404);
    await expectError(await put(priv.id, 'x', 'reader'), 403, /tags/);
    const pub = await createImage(s, { visibility: 'public', tags: ['keep'] });
    await expectError(await put(pub.id, 'x', 'member'), 403);
    await expectError(await del(pub.id, 'keep', 'member'), 403);
    assert.deepEqual(await tagsOf(pub.id), ['keep']);
  });

  test('other methods are 405 with Allow; a missing tag name is 404', async () => {
    const img = await createImage(s);
    const res = await s.req('GET', tagUrl(img.id, 'x'));
    await expectError(res, 405);
    assert.equal(res.headers.get('allow'), 'PUT, DELETE');
    await expectError(await s.req('PUT', `/v2/images/${img.id}/tags/`), 404);
  });
});
