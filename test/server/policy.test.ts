import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startTestServer, createImage, uploadBytes, makeDataDir, type TestServer } from '../support/server.js';
import { ConfigError } from '../../src/config.js';
import { waitFor } from '../support/wait.js';

/** An operator's policy file, in oslo.policy's YAML, changing Glance's defaults. */
const POLICY = `
# members may publish; only admins download; a "locked" image resists deletion;
# other projects see only public images and what they own
publicize_image: "role:member"
download_image: "rule:context_is_admin"
delete_image: "rule:context_is_admin or (role:member and project_id:%(project_id)s and not 'yes':%(locked)s)"
get_image: "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))"
owner_reader: "role:reader and project_id:%(project_id)s"
modify_image: "rule:owner_reader or rule:context_is_admin"
`;

let s: TestServer;
let policyFile: string;
before(async () => {
  policyFile = path.join(makeDataDir(), 'policy.yaml');
  writeFileSync(policyFile, POLICY);
  s = await startTestServer({ config: { policyFile } });
});
after(async () => {
  await s.close();
});

async function status(res: Response): Promise<number> {
  await res.arrayBuffer();
  return res.status;
}

test('an operator policy file overrides the defaults it names', async () => {
  // publicize_image: a member may now create public images
  assert.equal(await status(await s.req('POST', '/v2/images', { token: 'member', json: { name: 'pub', visibility: 'public' } })), 201);

  // download_image: only admins
  const img = await createImage(s, { name: 'dl' }, 'member');
  assert.equal((await uploadBytes(s, img.id, Buffer.from('hello'), 'member')).status, 204);
  const refused = await s.req('GET', `/v2/images/${img.id}/file`, { token: 'member' });
  assert.equal(refused.status, 403);
  assert.equal(((await refused.json()) as any).error.code, 403);
  assert.equal(await status(await s.req('GET', `/v2/images/${img.id}/file`, { token: 'admin' })), 200);

  // delete_image reads an extra property of the target
  const locked = await createImage(s, { name: 'locked', locked: 'yes' }, 'member');
  const open = await createImage(s, { name: 'open', locked: 'no' }, 'member');
  assert.equal(await status(await s.req('DELETE', `/v2/images/${locked.id}`, { token: 'member' })), 403);
  assert.equal(await status(await s.req('DELETE', `/v2/images/${open.id}`, { token: 'member' })), 204);
  assert.equal(await status(await s.req('DELETE', `/v2/images/${locked.id}`, { token: 'admin' })), 204);

  // modify_image through a custom rule: readers of the owner project may now edit
  const patch = (token: 'reader' | 'other') =>
    s.req('PATCH', `/v2/images/${img.id}`, {
      token,
      headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
      body: JSON.stringify([{ op: 'replace', path: '/name', value: `by-${token}` }]),
    });
  assert.equal(await status(await patch('reader')), 200);
});

test('a rule that hides an image answers 404, not 403 (as Glance)', async () => {
  // shared with p2 and accepted: visible by default, hidden by this get_image
  const img = await createImage(s, { name: 'hidden-by-policy' }, 'member');
  assert.equal(await status(await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } })), 200);
  assert.equal(await status(await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'other', json: { status: 'accepted' } })), 404);
  for (const [method, url] of [
    ['GET', `/v2/images/${img.id}`],
    ['GET', `/v2/images/${img.id}/file`],
    ['GET', `/v2/images/${img.id}/members`],
    ['PUT', `/v2/images/${img.id}/tags/x`],
  ] as const) {
    const res = await s.req(method, url, { token: 'other' });
    assert.equal(res.status, 404, `${method} ${url}`);
    assert.match(((await res.json()) as any).error.message, new RegExp(img.id));
  }
  // p2 still sees public images
  const pub = await createImage(s, { name: 'pub-2', visibility: 'public' }, 'member');
  assert.equal(await status(await s.req('GET', `/v2/images/${pub.id}`, { token: 'other' })), 200);
});

test('the file is re-read when it changes; a broken edit keeps the last good rules', async () => {
  const create = () => s.req('POST', '/v2/images', { token: 'member', json: { name: 'pub-reload', visibility: 'public' } });
  assert.equal(await status(await create()), 201);
  // each probe creates an image: the answer to a real request is what shows the rules in force
  const answers = (want: number) => waitFor(`the policy change to be picked up (${want} on create)`, async () => (await status(await create())) === want, 15_000, 200);
  writeFileSync(policyFile, POLICY.replace('publicize_image: "role:member"', 'publicize_image: "rule:context_is_admin"'));
  await answers(403);
  writeFileSync(policyFile, POLICY.replace('publicize_image: "role:member"', 'publicize_image: "role:member or"'));
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await status(await create()), 403, 'the broken file was ignored');
  writeFileSync(policyFile, POLICY);
  await answers(201);
});

test('a policy file with a mistake stops the start, naming the rule', async () => {
  const dir = makeDataDir();
  const cases: [string, RegExp][] = [
    ['get_image: "role:reader or"\n', /get_image/],
    ['get_image: "rule:nowhere"\n', /undefined rule "nowhere"/],
    ['a: "rule:b"\nb: "rule:a"\n', /loop/],
    ['get_image: "http://example.com"\n', /http/],
    ['- not a mapping\n', /mapping/],
    ['get_image: [1, 2]\n', /list of lists of strings/],
  ];
  for (const [text, re] of cases) {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, text);
    await assert.rejects(startTestServer({ config: { policyFile: file } }), (e: Error) => e instanceof ConfigError && re.test(e.message), text);
  }
  await assert.rejects(startTestServer({ config: { policyFile: path.join(dir, 'missing.yaml') } }), /cannot read policy file/);
});
