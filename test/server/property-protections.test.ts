import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/server.js';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../support/keystone.js';

/**
 * Glance's own sample property protection files, applied as shipped, to
 * Keystone tokens of an admin, a member and a reader of one project,
 * property by property and operation by operation.
 *
 *   roles:    [^x_.*] admin,member,_member_ for everything;  [.*] admin only
 *   policies: [^x_.*] rule "default" (everyone);             [.*] rule "context_is_admin"
 */
const SAMPLE_DIRS = ['/etc/glance', '/usr/share/glance-common'];
const sample = (format: string) => SAMPLE_DIRS.map((d) => path.join(d, `property-protections-${format}.conf`)).find((f) => existsSync(f));
const skip = keystoneUnavailableReason() ?? (sample('roles') && sample('policies') ? undefined : 'Glance\'s sample property-protections-*.conf not found (apt-get install glance-api)');

const PATCH = { 'content-type': 'application/openstack-images-v2.1-json-patch' };
type User = 'admin' | 'demo-member' | 'demo-reader';
const X = 'x_billing_code'; // matches [^x_.*]
const OS = 'os_licence'; // matches only [.*]

describe('property protections with Glance\'s sample files, against Keystone tokens', { skip, timeout: 240_000 }, () => {
  let ks: Keystone;
  let dir: string;
  const tokens = new Map<User, string>();
  const servers: Record<'roles' | 'policies', TestServer | undefined> = { roles: undefined, policies: undefined };

  before(async () => {
    ks = await startKeystone();
    dir = mkdtempSync(path.join(os.tmpdir(), 'imago-pp-'));
    for (const u of ['admin', 'demo-member', 'demo-reader'] as User[]) tokens.set(u, await ks.token(u));
    for (const format of ['roles', 'policies'] as const) {
      const file = path.join(dir, `${format}.conf`);
      copyFileSync(sample(format)!, file);
      servers[format] = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() }, propertyProtection: { file, ruleFormat: format } } });
    }
  });
  after(async () => {
    await servers.roles?.close();
    await servers.policies?.close();
    await ks?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const req = (s: TestServer, user: User, method: string, url: string, json?: unknown, headers: Record<string, string> = {}) =>
    fetch(s.url + url, { method, headers: { 'x-auth-token': tokens.get(user)!, ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, body: json === undefined ? undefined : JSON.stringify(json) });

  /** An image of the demo project holding both properties, made by the admin. */
  async function demoImage(s: TestServer): Promise<string> {
    const res = await req(s, 'admin', 'POST', '/v2/images', { name: 'pp', owner: ks.projects.demo, [X]: 'b1', [OS]: 'l1' });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { id: string }).id;
  }

  async function seen(s: TestServer, user: User, id: string): Promise<Record<string, unknown>> {
    const res = await req(s, user, 'GET', `/v2/images/${id}`);
    assert.equal(res.status, 200);
    return (await res.json()) as Record<string, unknown>;
  }

  async function assertForbidden(res: Response, name: string): Promise<void> {
    assert.equal(res.status, 403);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, 403);
    assert.match(body.error.message, new RegExp(name));
  }

  for (const format of ['roles', 'policies'] as const) {
    describe(`ruleFormat ${format}`, () => {
      test('read: properties the caller may not read are absent from show and list', async () => {
        const s = servers[format]!;
        const id = await demoImage(s);
        const admin = await seen(s, 'admin', id);
        assert.deepEqual([admin[X], admin[OS]], ['b1', 'l1']);
        const member = await seen(s, 'demo-member', id);
        assert.equal(member[X], 'b1');
        assert.equal(OS in member, false);
        const reader = await seen(s, 'demo-reader', id);
        // roles: the reader role is not listed for x_*; policies: "default" lets everyone read x_*
        assert.equal(X in reader, format === 'policies');
        assert.equal(OS in reader, false);
        const list = (await (await req(s, 'demo-member', 'GET', '/v2/images')).json()) as { images: Record<string, unknown>[] };
        const inList = list.images.find((i) => i.id === id)!;
        assert.equal(inList[X], 'b1');
        assert.equal(OS in inList, false);
      });

      test('create: the member may create x_* but not other properties; the admin both', async () => {
        const s = servers[format]!;
        assert.equal((await req(s, 'admin', 'POST', '/v2/images', { [OS]: 'a', [X]: 'a' })).status, 201);
        const ok = await req(s, 'demo-member', 'POST', '/v2/images', { [X]: 'm' });
        assert.equal(ok.status, 201);
        assert.equal(((await ok.json()) as Record<string, unknown>)[X], 'm');
        await assertForbidden(await req(s, 'demo-member', 'POST', '/v2/images', { [X]: 'm', [OS]: 'm' }), OS);
        // the reader may create no image at all (add_image), whatever its properties
        assert.equal((await req(s, 'demo-reader', 'POST', '/v2/images', { [X]: 'r' })).status, 403);
      });

      test('update: the member may replace x_*; another property it cannot see does not exist for it, and adding it is a refused create', async () => {
        const s = servers[format]!;
        const id = await demoImage(s);
        const ok = await req(s, 'demo-member', 'PATCH', `/v2/images/${id}`, [{ op: 'replace', path: `/${X}`, value: 'b2' }], PATCH);
        assert.equal(ok.status, 200);
        const body = (await ok.json()) as Record<string, unknown>;
        assert.equal(body[X], 'b2');
        assert.equal(OS in body, false, 'the PATCH answer hides what the member may not read');
        // as Glance: a property the caller cannot read is absent for it (409 on replace)...
        assert.equal((await req(s, 'demo-member', 'PATCH', `/v2/images/${id}`, [{ op: 'replace', path: `/${OS}`, value: 'm' }], PATCH)).status, 409);
        // ...and adding it is a create, which the rules refuse
        await assertForbidden(await req(s, 'demo-member', 'PATCH', `/v2/images/${id}`, [{ op: 'add', path: `/${OS}`, value: 'm' }], PATCH), OS);
        const admin = await seen(s, 'admin', id);
        assert.deepEqual([admin[X], admin[OS]], ['b2', 'l1'], 'the hidden property kept its value through the member\'s PATCH');
        assert.equal((await req(s, 'admin', 'PATCH', `/v2/images/${id}`, [{ op: 'replace', path: `/${OS}`, value: 'l2' }], PATCH)).status, 200);
        assert.equal((await seen(s, 'admin', id))[OS], 'l2');
      });

      test('delete: the member may remove x_* but not a property it cannot see; the admin may remove both', async () => {
        const s = servers[format]!;
        const id = await demoImage(s);
        assert.equal((await req(s, 'demo-member', 'PATCH', `/v2/images/${id}`, [{ op: 'remove', path: `/${X}` }], PATCH)).status, 200);
        assert.equal((await req(s, 'demo-member', 'PATCH', `/v2/images/${id}`, [{ op: 'remove', path: `/${OS}` }], PATCH)).status, 409);
        assert.equal((await seen(s, 'admin', id))[OS], 'l1');
        assert.equal((await req(s, 'admin', 'PATCH', `/v2/images/${id}`, [{ op: 'remove', path: `/${OS}` }], PATCH)).status, 200);
        const admin = await seen(s, 'admin', id);
        assert.equal(X in admin, false);
        assert.equal(OS in admin, false);
        // the reader may modify nothing (modify_image)
        assert.equal((await req(s, 'demo-reader', 'PATCH', `/v2/images/${id}`, [{ op: 'add', path: `/${X}`, value: 'r' }], PATCH)).status, 403);
      });
    });
  }
});
