import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, createImage, type TestServer } from '../support/server.js';

let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(async () => {
  await s.close();
});

async function json(res: Response): Promise<any> {
  const text = await res.text();
  return text ? JSON.parse(text) : undefined;
}

async function expectError(res: Response, status: number, re?: RegExp): Promise<void> {
  const body = await json(res);
  assert.equal(res.status, status, JSON.stringify(body));
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(body.error.code, status);
  assert.equal(typeof body.error.message, 'string');
  if (re) assert.match(body.error.message, re);
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

test('owner shares, member sees pending, accepts, lists, owner removes', async () => {
  const img = await createImage(s, { name: 'shared-1' }, 'member');
  assert.equal(img.visibility, 'shared');

  // p2 cannot see the image before it is shared
  assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 404);

  const add = await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } });
  assert.equal(add.status, 200);
  const m = await json(add);
  assert.deepEqual(Object.keys(m).sort(), ['created_at', 'image_id', 'member_id', 'schema', 'status', 'updated_at']);
  assert.equal(m.member_id, 'p2');
  assert.equal(m.image_id, img.id);
  assert.equal(m.status, 'pending');
  assert.equal(m.schema, '/v2/schemas/member');
  assert.match(m.created_at, ISO);
  assert.match(m.updated_at, ISO);

  // a pending member can show the image, but it is not in its default list
  assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 200);
  const listed = async (q: string) => (await json(await s.req('GET', `/v2/images${q}`, { token: 'other' }))).images.map((i: any) => i.id);
  assert.ok(!(await listed('')).includes(img.id));
  assert.ok((await listed('?member_status=pending')).includes(img.id));
  assert.ok((await listed('?member_status=all')).includes(img.id));
  assert.ok(!(await listed('?member_status=accepted')).includes(img.id));

  // duplicate → 409
  await expectError(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } }), 409, /p2/);

  // the member accepts
  const acc = await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'other', json: { status: 'accepted' } });
  assert.equal(acc.status, 200);
  const accepted = await json(acc);
  assert.equal(accepted.status, 'accepted');
  assert.equal(accepted.member_id, 'p2');
  assert.ok((await listed('')).includes(img.id));
  assert.ok(!(await listed('?member_status=pending')).includes(img.id));

  // show one
  const one = await s.req('GET', `/v2/images/${img.id}/members/p2`, { token: 'other' });
  assert.equal(one.status, 200);
  assert.equal((await json(one)).status, 'accepted');

  // rejected: still visible by id, gone from the default list
  assert.equal((await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'other', json: { status: 'rejected' } })).status, 200);
  assert.ok(!(await listed('')).includes(img.id));
  assert.ok((await listed('?member_status=rejected')).includes(img.id));
  assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 200);

  // back to pending is allowed
  assert.equal((await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'other', json: { status: 'pending' } })).status, 200);

  // owner removes → 204 and p2 loses sight of it
  const del = await s.req('DELETE', `/v2/images/${img.id}/members/p2`, { token: 'member' });
  assert.equal(del.status, 204);
  assert.equal(await del.text(), '');
  assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 404);
  await expectError(await s.req('GET', `/v2/images/${img.id}/members/p2`, { token: 'member' }), 404, /p2 not found/);
});

test('who sees which members', async () => {
  const img = await createImage(s, { name: 'shared-2' }, 'member');
  for (const p of ['p2', 'p3']) {
    assert.equal((await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: p } })).status, 200);
  }
  const ids = async (token: 'member' | 'reader' | 'other' | 'third' | 'admin') => {
    const res = await s.req('GET', `/v2/images/${img.id}/members`, { token });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.schema, '/v2/schemas/members');
    return body.members.map((m: any) => m.member_id).sort();
  };
  assert.deepEqual(await ids('member'), ['p2', 'p3']);
  assert.deepEqual(await ids('reader'), ['p2', 'p3'], 'a reader of the owner project reads the member list');
  assert.deepEqual(await ids('admin'), ['p2', 'p3']);
  assert.deepEqual(await ids('other'), ['p2'], 'a member sees only itself');
  assert.deepEqual(await ids('third'), ['p3']);

  // a member cannot look at another member, nor change it
  await expectError(await s.req('GET', `/v2/images/${img.id}/members/p3`, { token: 'other' }), 404);
  await expectError(await s.req('PUT', `/v2/images/${img.id}/members/p3`, { token: 'other', json: { status: 'accepted' } }), 404);
  // the owner cannot answer for its members (tempest: 403)
  await expectError(await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'member', json: { status: 'accepted' } }), 403);
  // readers never write
  await expectError(await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'reader', json: { status: 'accepted' } }), 403);
  await expectError(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'reader', json: { member: 'p9' } }), 403);
  await expectError(await s.req('DELETE', `/v2/images/${img.id}/members/p2`, { token: 'reader' }), 403);
  // a member can neither add members nor remove itself
  await expectError(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'other', json: { member: 'p9' } }), 403);
  await expectError(await s.req('DELETE', `/v2/images/${img.id}/members/p2`, { token: 'other' }), 403);
  // the admin may do everything, including answering for a member
  assert.equal((await s.req('PUT', `/v2/images/${img.id}/members/p3`, { token: 'admin', json: { status: 'rejected' } })).status, 200);
  assert.equal((await s.req('DELETE', `/v2/images/${img.id}/members/p3`, { token: 'admin' })).status, 204);
  assert.deepEqual(await ids('member'), ['p2']);
  // p3 no longer sees the image at all
  await expectError(await s.req('GET', `/v2/images/${img.id}/members`, { token: 'third' }), 404);
});

test('only shared images have members', async () => {
  for (const visibility of ['private', 'public', 'community'] as const) {
    const img = await createImage(s, { name: `not-shared-${visibility}`, visibility }, 'admin');
    await expectError(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'admin', json: { member: 'p2' } }), 403, /Only shared images have members/);
    await expectError(await s.req('GET', `/v2/images/${img.id}/members`, { token: 'admin' }), 403, /Only shared images/);
    await expectError(await s.req('GET', `/v2/images/${img.id}/members/p2`, { token: 'admin' }), 404);
  }
  // members stay but are dormant while the image is private, and come back with shared
  const img = await createImage(s, { name: 'toggle' }, 'member');
  assert.equal((await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } })).status, 200);
  const patch = (visibility: string) =>
    s.req('PATCH', `/v2/images/${img.id}`, {
      token: 'member',
      headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
      body: JSON.stringify([{ op: 'replace', path: '/visibility', value: visibility }]),
    });
  assert.equal((await patch('private')).status, 200);
  assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 404);
  assert.equal((await patch('shared')).status, 200);
  assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'other' })).status, 200);
});

test('bad bodies and unknown things', async () => {
  const img = await createImage(s, { name: 'bad-bodies' }, 'member');
  const post = (body: unknown) => s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  await expectError(await post({}), 400, /Member to be added not specified/);
  await expectError(await post({ member: '' }), 400, /empty/);
  await expectError(await post({ member: 42 }), 400);
  await expectError(await post({ member: null }), 400);
  await expectError(await post(['p2']), 400);
  await expectError(await post('"p2"'), 400);
  await expectError(await post('{"member": '), 400);
  await expectError(await post({ member: 'x'.repeat(256) }), 400);
  await expectError(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member' }), 400, /Body expected/);

  assert.equal((await post({ member: 'p2' })).status, 200);
  const put = (body: unknown) => s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'other', json: body });
  await expectError(await put({ status: 'maybe' }), 400, /pending, accepted, rejected/);
  await expectError(await put({ status: 1 }), 400);
  await expectError(await put({}), 400, /Status not specified/);
  await expectError(await put([]), 400);

  // unknown image, non-UUID image id, unknown member
  await expectError(await s.req('GET', '/v2/images/00000000-0000-0000-0000-000000000000/members', { token: 'member' }), 404);
  await expectError(await s.req('POST', '/v2/images/not-a-uuid/members', { token: 'member', json: { member: 'p2' } }), 404);
  await expectError(await s.req('GET', `/v2/images/${img.id}/members/nobody`, { token: 'member' }), 404, /nobody not found/);
  await expectError(await s.req('DELETE', `/v2/images/${img.id}/members/nobody`, { token: 'member' }), 404);
  await expectError(await s.req('PUT', `/v2/images/${img.id}/members/nobody`, { token: 'admin', json: { status: 'accepted' } }), 404);

  // methods the resource does not have
  const r = await s.req('PATCH', `/v2/images/${img.id}/members`, { token: 'member', json: {} });
  await expectError(r, 405);
  assert.match(r.headers.get('allow') ?? '', /GET/);
  await expectError(await s.req('POST', `/v2/images/${img.id}/members/p2`, { token: 'member', json: {} }), 405);
  // no token
  await expectError(await s.req('GET', `/v2/images/${img.id}/members`, { token: null }), 401);
});

test('member ids are opaque strings, unicode included; deleting the image drops its members', async () => {
  const img = await createImage(s, { name: 'opaque' }, 'member');
  const id = 'proj/ünï code';
  const add = await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: id } });
  assert.equal(add.status, 200);
  const shown = await s.req('GET', `/v2/images/${img.id}/members/${encodeURIComponent(id)}`, { token: 'member' });
  assert.equal(shown.status, 200);
  assert.equal((await json(shown)).member_id, id);
  assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'member' })).status, 204);
  await expectError(await s.req('GET', `/v2/images/${img.id}/members`, { token: 'member' }), 404);
});

test('at most 128 members per image (413)', async () => {
  const img = await createImage(s, { name: 'crowded' }, 'admin');
  for (let i = 0; i < 128; i++) {
    const r = await s.req('POST', `/v2/images/${img.id}/members`, { token: 'admin', json: { member: `proj-${i}` } });
    assert.equal(r.status, 200);
  }
  await expectError(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'admin', json: { member: 'one-too-many' } }), 413, /128/);
});

test('no input makes the member API answer 500', async () => {
  const img = await createImage(s, { name: 'fuzz' }, 'member');
  assert.equal((await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } })).status, 200);
  const bodies: unknown[] = [null, true, 0, -1, 'x', [], [{}], {}, { member: {} }, { member: [] }, { member: true }, { member: '\u0000' }, { member: '💥'.repeat(100) },
    { status: null }, { status: ['accepted'] }, { status: { accepted: true } }, { status: 'ACCEPTED' }, { status: 'accepted', extra: 1 }, { member: 'p2', status: 'accepted' }];
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const randomJson = (depth: number): unknown => {
    const k = Math.floor(rnd() * 6);
    if (depth > 3 || k === 0) return Math.floor(rnd() * 1e6) - 5e5;
    if (k === 1) return String.fromCodePoint(...Array.from({ length: Math.floor(rnd() * 20) }, () => Math.floor(rnd() * 0x2fff)));
    if (k === 2) return rnd() < 0.5;
    if (k === 3) return null;
    if (k === 4) return Array.from({ length: Math.floor(rnd() * 4) }, () => randomJson(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, (_, i) => [['member', 'status', 'x', `k${i}`][Math.floor(rnd() * 4)], randomJson(depth + 1)]));
  };
  for (let i = 0; i < 60; i++) bodies.push(randomJson(0));
  const raw = ['', '{', '{"member":', 'null', '\uFEFF{}', '{"member":"p9"}garbage', 'x'.repeat(2 * 1024 * 1024)];
  const urls = [`/v2/images/${img.id}/members`, `/v2/images/${img.id}/members/p2`, `/v2/images/${img.id}/members/${'%F0%9F%92%A5'.repeat(10)}`, `/v2/images/${img.id}/members/${'m'.repeat(1500)}`, `/v2/images/${img.id}/members/%00`, `/v2/images/${img.id}/members/a%2Fb`, `/v2/images/${img.id}/members?x=${'%'.repeat(3)}`];
  const seen = new Set<number>();
  for (const [token, url] of (['other', 'member'] as const).flatMap((t) => urls.map((u) => [t, u] as const))) {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
      for (const b of [...bodies.map((x) => JSON.stringify(x)), ...raw].slice(0, method === 'GET' || method === 'DELETE' ? 3 : undefined)) {
        const res = await s.req(method, url, { token, body: method === 'GET' ? undefined : b, headers: { 'content-type': 'application/json' } });
        const text = await res.text();
        seen.add(res.status);
        assert.ok(res.status < 500, `${method} ${url.slice(0, 80)} ${String(b).slice(0, 60)} → ${res.status} ${text.slice(0, 200)}`);
        if (res.status >= 400) assert.equal(JSON.parse(text).error.code, res.status, `${method} ${url.slice(0, 80)}: ${text.slice(0, 200)}`);
      }
    }
  }
  assert.ok(seen.has(400) && seen.has(404) && seen.has(405), [...seen].join(','));
});
