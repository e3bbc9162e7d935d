import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, createImage, type TestServer, type TOKENS } from '../support/server.js';

type Who = keyof typeof TOKENS;
let s: TestServer;
/** name → id */
const ids: Record<string, string> = {};

async function make(name: string, who: Who, body: Record<string, unknown> = {}): Promise<void> {
  ids[name] = (await createImage(s, { name, ...body }, who)).id;
}

async function share(name: string, owner: Who, member: string, status?: string): Promise<void> {
  const add = await s.req('POST', `/v2/images/${ids[name]}/members`, { token: owner, json: { member } });
  assert.equal(add.status, 200);
  if (status) {
    const token: Who = member === 'p2' ? 'other' : 'third';
    assert.equal((await s.req('PUT', `/v2/images/${ids[name]}/members/${member}`, { token, json: { status } })).status, 200);
  }
}

before(async () => {
  s = await startTestServer();
  await make('p1-private', 'member', { visibility: 'private' });
  await make('p1-shared', 'member', { visibility: 'shared' });
  await make('p1-shared-nobody', 'member');
  await make('p1-community', 'member', { visibility: 'community' });
  await make('p1-public', 'admin', { visibility: 'public', owner: 'p1' });
  await make('admin-public', 'admin', { visibility: 'public' });
  await make('admin-private', 'admin', { visibility: 'private' });
  await make('p2-private', 'other', { visibility: 'private' });
  await make('p2-community', 'other', { visibility: 'community' });
  await make('p3-shared', 'third');
  await share('p1-shared', 'member', 'p2', 'accepted');
  await share('p1-shared', 'member', 'p3'); // pending
  await share('p3-shared', 'third', 'p2', 'rejected');
});
after(async () => {
  await s.close();
});

async function listNames(who: Who, query = ''): Promise<string[]> {
  const res = await s.req('GET', `/v2/images${query}`, { token: who });
  assert.equal(res.status, 200, `${who} GET /v2/images${query}: ${res.status}`);
  const body = (await res.json()) as { images: { id: string; name: string }[] };
  const mine = new Set(Object.values(ids));
  return body.images.filter((i) => mine.has(i.id)).map((i) => i.name).sort();
}

const sorted = (...names: string[]) => names.sort();

test('default listing: public, own, and accepted shared; community only when own', async () => {
  const own1 = ['p1-private', 'p1-shared', 'p1-shared-nobody', 'p1-community', 'p1-public'];
  assert.deepEqual(await listNames('member'), sorted(...own1, 'admin-public'));
  assert.deepEqual(await listNames('reader'), sorted(...own1, 'admin-public'));
  assert.deepEqual(await listNames('other'), sorted('p1-shared', 'p1-public', 'admin-public', 'p2-private', 'p2-community'));
  assert.deepEqual(await listNames('third'), sorted('p1-public', 'admin-public', 'p3-shared'));
  // the admin sees everything but other projects' community images, as Glance does
  assert.deepEqual(
    await listNames('admin'),
    sorted('p1-private', 'p1-shared', 'p1-shared-nobody', 'p1-public', 'admin-public', 'admin-private', 'p2-private', 'p3-shared'),
  );
});

test('visibility= filter', async () => {
  assert.deepEqual(await listNames('other', '?visibility=community'), sorted('p1-community', 'p2-community'));
  assert.deepEqual(await listNames('other', '?visibility=private'), ['p2-private']);
  assert.deepEqual(await listNames('other', '?visibility=public'), sorted('p1-public', 'admin-public'));
  assert.deepEqual(await listNames('other', '?visibility=shared'), ['p1-shared']);
  assert.deepEqual(await listNames('third', '?visibility=shared'), ['p3-shared'], 'own shared images whatever their members say');
  assert.deepEqual(
    await listNames('other', '?visibility=all'),
    sorted('p1-shared', 'p1-public', 'admin-public', 'p2-private', 'p1-community', 'p2-community'),
  );
  assert.deepEqual(await listNames('member', '?visibility=private'), ['p1-private']);
  assert.deepEqual(await listNames('admin', '?visibility=private'), sorted('p1-private', 'admin-private', 'p2-private'));
  assert.deepEqual(await listNames('admin', '?visibility=community'), sorted('p1-community', 'p2-community'));
  assert.deepEqual(await listNames('admin', '?visibility=shared'), sorted('p1-shared', 'p1-shared-nobody', 'p3-shared'));
  assert.equal((await listNames('admin', '?visibility=all')).length, Object.keys(ids).length);
  const bad = await s.req('GET', '/v2/images?visibility=secret', { token: 'member' });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as any).error.code, 400);
});

test('member_status= filter applies to images shared with the caller', async () => {
  assert.deepEqual(await listNames('third', '?member_status=pending'), sorted('p1-shared', 'p1-public', 'admin-public', 'p3-shared'));
  assert.deepEqual(await listNames('third', '?member_status=all&visibility=shared'), sorted('p1-shared', 'p3-shared'));
  assert.deepEqual(await listNames('other', '?member_status=rejected&visibility=shared'), ['p3-shared']);
  assert.deepEqual(await listNames('other', '?member_status=all&visibility=shared'), sorted('p1-shared', 'p3-shared'));
  assert.deepEqual(await listNames('other', '?member_status=pending&visibility=shared'), []);
  const bad = await s.req('GET', '/v2/images?member_status=maybe', { token: 'member' });
  assert.equal(bad.status, 400);
});

test('show: invisible images answer 404, never 403', async () => {
  const expect: Record<string, Partial<Record<Who, number>>> = {
    'p1-private': { admin: 200, member: 200, reader: 200, other: 404, third: 404 },
    'p1-shared': { admin: 200, member: 200, reader: 200, other: 200, third: 200 },
    'p1-shared-nobody': { admin: 200, member: 200, reader: 200, other: 404, third: 404 },
    'p1-community': { admin: 200, member: 200, reader: 200, other: 200, third: 200 },
    'p1-public': { admin: 200, member: 200, reader: 200, other: 200, third: 200 },
    'p2-private': { admin: 200, member: 404, reader: 404, other: 200, third: 404 },
    'p3-shared': { admin: 200, member: 404, reader: 404, other: 200, third: 200 },
  };
  for (const [name, byWho] of Object.entries(expect)) {
    for (const [who, status] of Object.entries(byWho)) {
      const res = await s.req('GET', `/v2/images/${ids[name]}`, { token: who as Who });
      assert.equal(res.status, status, `${who} GET ${name}`);
      const body = (await res.json()) as any;
      if (status === 404) {
        assert.equal(body.error.code, 404);
        assert.match(body.error.message, new RegExp(ids[name]));
      } else {
        assert.equal(body.id, ids[name]);
      }
    }
  }
  // and the same 404 for writes and data on images the caller cannot see
  const hidden = ids['p2-private'];
  const checks: [string, string, Record<string, unknown>][] = [
    ['DELETE', `/v2/images/${hidden}`, {}],
    ['PATCH', `/v2/images/${hidden}`, { headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: '[]' }],
    ['GET', `/v2/images/${hidden}/file`, {}],
    ['PUT', `/v2/images/${hidden}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: 'x' }],
    ['PUT', `/v2/images/${hidden}/tags/t`, {}],
    ['DELETE', `/v2/images/${hidden}/tags/t`, {}],
    ['POST', `/v2/images/${hidden}/actions/deactivate`, {}],
    ['GET', `/v2/images/${hidden}/members`, {}],
    ['POST', `/v2/images/${hidden}/members`, { json: { member: 'p1' } }],
  ];
  for (const [method, url, opts] of checks) {
    const res = await s.req(method, url, { token: 'member', ...opts });
    assert.equal(res.status, 404, `${method} ${url}`);
  }
});

test('no token: 401 everywhere', async () => {
  for (const url of ['/v2/images', `/v2/images/${ids['p1-public']}`, `/v2/images/${ids['p1-public']}/members`]) {
    const res = await s.req('GET', url, { token: null });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as any).error.code, 401);
  }
});
