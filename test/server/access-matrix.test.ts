import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startTestServer, type TestServer, type TOKENS } from '../support/server.js';
import { loadMatrix, renderDoc, DOC_FILE } from '../access-matrix.js';

/**
 * Every role × every visibility and membership × every operation, each on
 * an image of its own (operations change what they touch), against a real
 * Imago: the exact status of test/access-matrix.json, the spec's error body
 * on every refusal, and the effect of every success.
 */
const matrix = loadMatrix();
const TOKEN_OF: Record<string, keyof typeof TOKENS | null> = {
  admin: 'admin',
  'owner-member': 'member',
  'owner-reader': 'reader',
  'other-member': 'other',
  anonymous: null,
};
const DATA = Buffer.from('0123456789abcdef');

let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(async () => {
  await s.close();
});

let serial = 0;

async function ok(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) assert.fail(`${what}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/** A fresh image of p1 in `scenario`, in the state `kind`. Built by the admin, so that only the tested call is made as the role. */
async function fixture(scenario: string, kind: 'active' | 'queued' | 'deactivated' | 'protected'): Promise<{ id: string; name: string }> {
  const name = `matrix-${++serial}-${scenario}-${kind}`;
  const visibility = scenario.split('/')[0];
  const res = await s.req('POST', '/v2/images', {
    json: { name, visibility, owner: 'p1', disk_format: 'raw', container_format: 'bare', tags: ['existing'], protected: kind === 'protected' },
  });
  assert.equal(res.status, 201, `fixture ${name}: ${await res.clone().text()}`);
  const { id } = (await res.json()) as { id: string };
  if (scenario.includes('/')) {
    await ok(await s.req('POST', `/v2/images/${id}/members`, { json: { member: 'p2' } }), 200, 'fixture: share with p2');
    const answer = scenario.split('/')[1];
    if (answer !== 'pending') await ok(await s.req('PUT', `/v2/images/${id}/members/p2`, { token: 'other', json: { status: answer } }), 200, `fixture: p2 ${answer}`);
  }
  if (kind !== 'queued') await ok(await s.req('PUT', `/v2/images/${id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: DATA }), 204, 'fixture: upload');
  if (kind === 'deactivated') await ok(await s.req('POST', `/v2/images/${id}/actions/deactivate`), 204, 'fixture: deactivate');
  return { id, name };
}

type Call = { method: string; url: string; opts?: Record<string, unknown> };

function callFor(op: string, img: { id: string; name: string }): Call {
  const base = `/v2/images/${img.id}`;
  switch (op) {
    case 'list':
      return { method: 'GET', url: `/v2/images?name=${encodeURIComponent(img.name)}` };
    case 'show':
      return { method: 'GET', url: base };
    case 'download':
    case 'download deactivated':
      return { method: 'GET', url: `${base}/file` };
    case 'upload':
      return { method: 'PUT', url: `${base}/file`, opts: { headers: { 'content-type': 'application/octet-stream' }, body: DATA } };
    case 'patch':
      return {
        method: 'PATCH',
        url: base,
        opts: { headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: JSON.stringify([{ op: 'replace', path: '/name', value: 'renamed' }]) },
      };
    case 'delete':
    case 'delete protected':
      return { method: 'DELETE', url: base };
    case 'deactivate':
      return { method: 'POST', url: `${base}/actions/deactivate` };
    case 'reactivate':
      return { method: 'POST', url: `${base}/actions/reactivate` };
    case 'add tag':
      return { method: 'PUT', url: `${base}/tags/new-tag` };
    case 'remove tag':
      return { method: 'DELETE', url: `${base}/tags/existing` };
    case 'add member':
      return { method: 'POST', url: `${base}/members`, opts: { json: { member: 'p3' } } };
    case 'list members':
      return { method: 'GET', url: `${base}/members` };
    case 'show member':
      return { method: 'GET', url: `${base}/members/p2` };
    case 'answer for p2':
      return { method: 'PUT', url: `${base}/members/p2`, opts: { json: { status: 'accepted' } } };
    case 'remove member p2':
      return { method: 'DELETE', url: `${base}/members/p2` };
    default:
      throw new Error(`no request for operation "${op}"`);
  }
}

/** What a success must have done, seen by the admin. */
async function checkEffect(op: string, img: { id: string }, res: Response, body: Buffer, role: string): Promise<void> {
  const show = async () => (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, any>;
  switch (op) {
    case 'download':
    case 'download deactivated':
      assert.deepEqual(body, DATA);
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      break;
    case 'upload':
      assert.equal((await show()).status, 'active');
      break;
    case 'patch':
      assert.equal(JSON.parse(body.toString()).name, 'renamed');
      break;
    case 'delete':
      assert.equal((await s.req('GET', `/v2/images/${img.id}`)).status, 404);
      break;
    case 'deactivate':
      assert.equal((await show()).status, 'deactivated');
      break;
    case 'reactivate':
      assert.equal((await show()).status, 'active');
      break;
    case 'add tag':
      assert.deepEqual((await show()).tags.sort(), ['existing', 'new-tag']);
      break;
    case 'remove tag':
      assert.deepEqual((await show()).tags, []);
      break;
    case 'add member':
      assert.equal(JSON.parse(body.toString()).member_id, 'p3');
      break;
    case 'list members': {
      const ids = (JSON.parse(body.toString()).members as { member_id: string }[]).map((m) => m.member_id);
      // the member project sees only itself; the owner's project and admins see all
      if (role === 'other-member') assert.deepEqual(ids, ['p2']);
      break;
    }
    case 'show member':
      assert.equal(JSON.parse(body.toString()).member_id, 'p2');
      break;
    case 'answer for p2':
      assert.equal(JSON.parse(body.toString()).status, 'accepted');
      break;
    case 'remove member p2':
      assert.equal((await s.req('GET', `/v2/images/${img.id}/members/p2`)).status, 404);
      break;
  }
}

async function runCell(op: string, scenario: string, role: string, expected: number | 'in' | 'out', img: { id: string; name: string }): Promise<string | undefined> {
  const { method, url, opts } = callFor(op, img);
  const res = await s.req(method, url, { token: TOKEN_OF[role], ...(opts ?? {}) });
  const body = Buffer.from(await res.arrayBuffer());
  const where = `${op} | ${scenario} | ${role}: ${method} ${url}`;
  if (expected === 'in' || expected === 'out') {
    if (res.status !== 200) return `${where}: expected 200, got ${res.status} ${body}`;
    const listed = (JSON.parse(body.toString()).images as { id: string }[]).some((i) => i.id === img.id);
    if (listed !== (expected === 'in')) return `${where}: expected the image ${expected === 'in' ? 'in' : 'not in'} the list`;
    return undefined;
  }
  if (res.status !== expected) return `${where}: expected ${expected}, got ${res.status} ${body.toString().slice(0, 300)}`;
  if (expected >= 400) {
    assert.match(res.headers.get('content-type') ?? '', /application\/json/, where);
    const err = JSON.parse(body.toString()).error;
    assert.equal(err.code, expected, where);
    assert.ok(err.message.length > 0, where);
    return undefined;
  }
  await checkEffect(op, img, res, body, role);
  return undefined;
}

test('docs/access.md shows the matrix of test/access-matrix.json', () => {
  const doc = readFileSync(DOC_FILE, 'utf8');
  assert.equal(doc, renderDoc(doc, matrix), 'docs/access.md is stale: run `npx tsx test/access-matrix.ts`');
});

test('the matrix covers every role, scenario and operation', () => {
  for (const [op, { expect }] of Object.entries(matrix.operations)) {
    assert.deepEqual(Object.keys(expect).sort(), [...matrix.scenarios].sort(), op);
    for (const s of matrix.scenarios) assert.equal(expect[s].length, matrix.roles.length, `${op} ${s}`);
    callFor(op, { id: 'x', name: 'x' });
  }
  for (const r of matrix.roles) assert.ok(r in TOKEN_OF, r);
});

for (const [op, spec] of Object.entries(matrix.operations)) {
  test(`access matrix: ${op}`, async () => {
    const failures: string[] = [];
    const cells: (() => Promise<void>)[] = [];
    for (const scenario of matrix.scenarios) {
      let anonymousImage: Promise<{ id: string; name: string }> | undefined;
      matrix.roles.forEach((role, i) => {
        const expected = spec.expect[scenario][i];
        cells.push(async () => {
          // the anonymous caller changes nothing, so it shares one image per scenario
          const img = role === 'anonymous' ? await (anonymousImage ??= fixture(scenario, spec.image)) : await fixture(scenario, spec.image);
          const failure = await runCell(op, scenario, role, expected, img);
          if (failure) failures.push(failure);
        });
      });
    }
    // a few cells at a time: quick, and still every cell on its own image
    for (let i = 0; i < cells.length; i += 6) await Promise.all(cells.slice(i, i + 6).map((c) => c()));
    assert.deepEqual(failures, []);
  });
}
