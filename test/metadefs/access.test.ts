import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.js';
import { createNamespace, expectError, expectJson, nsPath, type Body, type Who } from './helpers.js';

/**
 * Glance's metadef policy defaults: admins manage everything; a reader sees
 * public namespaces and its own project's; a private namespace of another
 * project is 404 whatever the operation; a visible one it may not change is
 * 403.
 */
describe('metadefs access', () => {
  let s: TestServer;
  const rt = `Test::Access::${process.pid}`;
  let pub = '';
  let priv = '';
  before(async () => {
    s = await startTestServer();
    const common = {
      owner: 'p1',
      resource_type_associations: [{ name: rt, prefix: 'x_' }],
      properties: { prop: { title: 'Prop', type: 'string' } },
      objects: [{ name: 'obj' }],
      tags: [{ name: 'tag' }],
    };
    pub = (await createNamespace(s, { ...common, visibility: 'public' })).namespace;
    priv = (await createNamespace(s, { ...common, visibility: 'private' })).namespace;
  });
  after(async () => {
    await s.close();
  });

  type Op = { name: string; method: string; path: (ns: string) => string; json?: Body; ok: number };
  const reads: Op[] = [
    { name: 'show namespace', method: 'GET', path: (ns) => nsPath(ns), ok: 200 },
    { name: 'list objects', method: 'GET', path: (ns) => nsPath(ns, '/objects'), ok: 200 },
    { name: 'show object', method: 'GET', path: (ns) => nsPath(ns, '/objects/obj'), ok: 200 },
    { name: 'list properties', method: 'GET', path: (ns) => nsPath(ns, '/properties'), ok: 200 },
    { name: 'show property', method: 'GET', path: (ns) => nsPath(ns, '/properties/prop'), ok: 200 },
    { name: 'list tags', method: 'GET', path: (ns) => nsPath(ns, '/tags'), ok: 200 },
    { name: 'show tag', method: 'GET', path: (ns) => nsPath(ns, '/tags/tag'), ok: 200 },
    { name: 'list associations', method: 'GET', path: (ns) => nsPath(ns, '/resource_types'), ok: 200 },
  ];
  // Writes that would succeed for an admin; run for the others only (an admin success is covered elsewhere).
  const writes: Op[] = [
    { name: 'update namespace', method: 'PUT', path: (ns) => nsPath(ns), json: { namespace: 'renamed', visibility: 'public' }, ok: 200 },
    { name: 'delete namespace', method: 'DELETE', path: (ns) => nsPath(ns), ok: 204 },
    { name: 'create object', method: 'POST', path: (ns) => nsPath(ns, '/objects'), json: { name: 'new' }, ok: 201 },
    { name: 'update object', method: 'PUT', path: (ns) => nsPath(ns, '/objects/obj'), json: { name: 'obj2' }, ok: 200 },
    { name: 'delete object', method: 'DELETE', path: (ns) => nsPath(ns, '/objects/obj'), ok: 204 },
    { name: 'delete all objects', method: 'DELETE', path: (ns) => nsPath(ns, '/objects'), ok: 204 },
    { name: 'create property', method: 'POST', path: (ns) => nsPath(ns, '/properties'), json: { name: 'p2', title: 'P', type: 'string' }, ok: 201 },
    { name: 'update property', method: 'PUT', path: (ns) => nsPath(ns, '/properties/prop'), json: { name: 'prop', title: 'P', type: 'string' }, ok: 200 },
    { name: 'delete property', method: 'DELETE', path: (ns) => nsPath(ns, '/properties/prop'), ok: 204 },
    { name: 'delete all properties', method: 'DELETE', path: (ns) => nsPath(ns, '/properties'), ok: 204 },
    { name: 'create tag', method: 'POST', path: (ns) => nsPath(ns, '/tags/new'), ok: 201 },
    { name: 'create tags', method: 'POST', path: (ns) => nsPath(ns, '/tags'), json: { tags: [{ name: 'n' }] }, ok: 201 },
    { name: 'rename tag', method: 'PUT', path: (ns) => nsPath(ns, '/tags/tag'), json: { name: 'tag2' }, ok: 200 },
    { name: 'delete tag', method: 'DELETE', path: (ns) => nsPath(ns, '/tags/tag'), ok: 204 },
    { name: 'delete all tags', method: 'DELETE', path: (ns) => nsPath(ns, '/tags'), ok: 204 },
    { name: 'associate', method: 'POST', path: (ns) => nsPath(ns, '/resource_types'), json: { name: 'OS::Nova::Server' }, ok: 201 },
    { name: 'dissociate', method: 'DELETE', path: (ns) => nsPath(ns, `/resource_types/${rt}`), ok: 204 },
  ];

  const expectStatus = async (who: Who | null, op: Op, ns: string, status: number) => {
    const res = await s.req(op.method, op.path(ns), { token: who, json: op.json });
    await expectError(res, status);
  };

  for (const who of ['member', 'reader'] as const) {
    it(`${who} of the owning project reads public and private namespaces, changes nothing (403)`, async () => {
      for (const ns of [pub, priv]) {
        for (const op of reads) assert.equal((await s.req(op.method, op.path(ns), { token: who })).status, op.ok, `${who} ${op.name} ${ns}`);
        for (const op of writes) await expectStatus(who, op, ns, 403);
      }
    });
  }

  it('a member of another project reads public namespaces (403 on changes) and cannot see private ones (404)', async () => {
    for (const op of reads) assert.equal((await s.req(op.method, op.path(pub), { token: 'other' })).status, op.ok, `other ${op.name}`);
    for (const op of writes) await expectStatus('other', op, pub, 403);
    for (const op of [...reads, ...writes]) await expectStatus('other', op, priv, 404);
  });

  it('without a token everything is 401', async () => {
    for (const op of [...reads, ...writes]) await expectStatus(null, op, pub, 401);
    await expectStatus(null, { name: 'list', method: 'GET', path: () => '/v2/metadefs/namespaces', ok: 200 }, '', 401);
    await expectStatus(null, { name: 'types', method: 'GET', path: () => '/v2/metadefs/resource_types', ok: 200 }, '', 401);
  });

  it('only admins create namespaces', async () => {
    for (const who of ['member', 'reader', 'other'] as const) {
      const res = await s.req('POST', '/v2/metadefs/namespaces', { token: who, json: { namespace: `Denied::${who}::${process.pid}` } });
      await expectError(res, 403, /add_metadef_namespace/);
    }
  });

  it('lists what each caller may see', async () => {
    const adminPrivate = (await createNamespace(s, { visibility: 'private', resource_type_associations: [{ name: rt }] })).namespace;
    const names = async (who: Who) =>
      (await expectJson(await s.req('GET', `/v2/metadefs/namespaces?resource_types=${encodeURIComponent(rt)}`, { token: who }), 200)).namespaces
        .map((n: Body) => n.namespace)
        .sort();
    assert.deepEqual(await names('admin'), [pub, priv, adminPrivate].sort());
    assert.deepEqual(await names('member'), [pub, priv].sort());
    assert.deepEqual(await names('reader'), [pub, priv].sort());
    assert.deepEqual(await names('other'), [pub]);
    // a marker the caller cannot see is unknown to it
    await expectError(await s.req('GET', `/v2/metadefs/namespaces?marker=${encodeURIComponent(priv)}`, { token: 'other' }), 404);
    await expectError(await s.req('GET', nsPath(adminPrivate), { token: 'member' }), 404);
  });

  it('everyone with a role lists resource types', async () => {
    for (const who of ['admin', 'member', 'reader', 'other'] as const) {
      const body = await expectJson(await s.req('GET', '/v2/metadefs/resource_types', { token: who }), 200);
      assert.ok(body.resource_types.length >= 5);
    }
  });

  it('an admin changes and deletes namespaces of any project; owner rules hold', async () => {
    const ns = (await createNamespace(s, { owner: 'p2', visibility: 'private', objects: [{ name: 'o' }] })).namespace;
    await expectJson(await s.req('GET', nsPath(ns), { token: 'other' }), 200);
    await expectError(await s.req('GET', nsPath(ns), { token: 'member' }), 404);
    await expectJson(await s.req('POST', nsPath(ns, '/tags/t'), { token: 'admin' }), 201);
    const updated = await expectJson(await s.req('PUT', nsPath(ns), { json: { namespace: ns, owner: 'p3' } }), 200);
    assert.equal(updated.owner, 'p3');
    await expectJson(await s.req('GET', nsPath(ns), { token: 'third' }), 200);
    await expectError(await s.req('GET', nsPath(ns), { token: 'other' }), 404);
    const res = await s.req('DELETE', nsPath(ns));
    assert.equal(res.status, 204);
  });
});
