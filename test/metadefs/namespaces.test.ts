import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.js';
import { createNamespace, expectError, expectJson, expectNoContent, nsPath, uniqueName, type Body } from './helpers.js';

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

describe('metadefs namespaces', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  it('creates a namespace with defaults, Location and Glance-shaped body', async () => {
    const name = uniqueName();
    const res = await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: name } });
    const body = await expectJson(res, 201);
    assert.equal(res.headers.get('location'), `/v2/metadefs/namespaces/${name}`);
    assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-/);
    assert.deepEqual(Object.keys(body).sort(), ['created_at', 'namespace', 'owner', 'protected', 'schema', 'self', 'updated_at', 'visibility']);
    assert.equal(body.namespace, name);
    assert.equal(body.visibility, 'private');
    assert.equal(body.protected, false);
    assert.equal(body.owner, 'admin');
    assert.match(body.created_at, TIMESTAMP);
    assert.equal(body.self, `/v2/metadefs/namespaces/${name}`);
    assert.equal(body.schema, '/v2/schemas/metadefs/namespace');
  });

  it('creates a namespace with contents in one request and shows them embedded', async () => {
    const name = uniqueName();
    const sent = {
      namespace: name,
      display_name: 'Firmware',
      description: 'Boot settings',
      visibility: 'public',
      protected: false,
      owner: 'p1',
      resource_type_associations: [{ name: 'OS::Glance::Image', prefix: 'hw_' }, { name: 'OS::Nova::Flavor', prefix: 'hw:' }],
      properties: { firmware: { title: 'Firmware', type: 'string', enum: ['bios', 'uefi'], name: 'ignored' } },
      objects: [{ name: 'Topology', description: 'CPU layout', required: ['sockets'], properties: { sockets: { title: 'Sockets', type: 'integer', minimum: 1 } } }],
      tags: [{ name: 'boot' }, { name: 'uefi' }],
    };
    const created = await expectJson(await s.req('POST', '/v2/metadefs/namespaces', { json: sent }), 201);
    assert.equal(created.owner, 'p1');
    assert.deepEqual(created.resource_type_associations, [{ name: 'OS::Glance::Image', prefix: 'hw_' }, { name: 'OS::Nova::Flavor', prefix: 'hw:' }]);
    assert.deepEqual(created.properties, { firmware: { title: 'Firmware', type: 'string', enum: ['bios', 'uefi'] } });
    assert.deepEqual(created.objects, [sent.objects[0]]);
    assert.deepEqual(created.tags, [{ name: 'boot' }, { name: 'uefi' }]);

    const shown = await expectJson(await s.req('GET', nsPath(name)), 200);
    assert.equal(shown.display_name, 'Firmware');
    assert.equal(shown.description, 'Boot settings');
    assert.deepEqual(shown.properties, { firmware: { title: 'Firmware', type: 'string', enum: ['bios', 'uefi'] } });
    assert.deepEqual(
      shown.resource_type_associations.map((a: Body) => [a.name, a.prefix, TIMESTAMP.test(a.created_at)]),
      [
        ['OS::Glance::Image', 'hw_', true],
        ['OS::Nova::Flavor', 'hw:', true],
      ],
    );
    assert.equal(shown.objects.length, 1);
    const obj = shown.objects[0];
    assert.equal(obj.name, 'Topology');
    assert.deepEqual(obj.required, ['sockets']);
    assert.equal(obj.self, `/v2/metadefs/namespaces/${name}/objects/Topology`);
    assert.equal(obj.schema, '/v2/schemas/metadefs/object');
    assert.deepEqual(shown.tags.map((t: Body) => t.name).sort(), ['boot', 'uefi']);
    assert.deepEqual(Object.keys(shown.tags[0]), ['name']);

    // resource_type= shows property names as that resource type uses them
    const flavor = await expectJson(await s.req('GET', nsPath(name, '?resource_type=OS::Nova::Flavor')), 200);
    assert.deepEqual(Object.keys(flavor.properties), ['hw:firmware']);
    assert.deepEqual(Object.keys(flavor.objects[0].properties), ['hw:sockets']);
    assert.deepEqual(flavor.objects[0].required, ['hw:sockets']);
    const image = await expectJson(await s.req('GET', nsPath(name, '?resource_type=OS::Glance::Image')), 200);
    assert.deepEqual(Object.keys(image.properties), ['hw_firmware']);
    const unrelated = await expectJson(await s.req('GET', nsPath(name, '?resource_type=OS::Nova::Server')), 200);
    assert.deepEqual(Object.keys(unrelated.properties), ['firmware']);
  });

  it('leaves out empty contents when showing a namespace', async () => {
    const ns = await createNamespace(s);
    const shown = await expectJson(await s.req('GET', nsPath(ns.namespace)), 200);
    for (const k of ['properties', 'objects', 'tags', 'resource_type_associations', 'display_name', 'description']) assert.ok(!(k in shown), k);
  });

  it('answers 404 with a clear message for an unknown namespace, on every method', async () => {
    const name = uniqueName('Missing');
    await expectError(await s.req('GET', nsPath(name)), 404, /namespace ".*Missing.*" was not found/);
    await expectError(await s.req('PUT', nsPath(name), { json: { namespace: name } }), 404, /was not found/);
    await expectError(await s.req('DELETE', nsPath(name)), 404, /was not found/);
  });

  it('refuses a duplicate namespace with 409', async () => {
    const ns = await createNamespace(s);
    await expectError(await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: ns.namespace } }), 409, /already exists/);
  });

  it('creates nothing when a request with contents fails half way (409)', async () => {
    const name = uniqueName();
    const res = await s.req('POST', '/v2/metadefs/namespaces', {
      json: { namespace: name, objects: [{ name: 'Same' }, { name: 'Same' }] },
    });
    await expectError(res, 409, /object named "Same" already exists/);
    await expectError(await s.req('GET', nsPath(name)), 404);
  });

  it('refuses read-only attributes with 403', async () => {
    for (const key of ['self', 'schema', 'created_at', 'updated_at']) {
      const res = await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: uniqueName(), [key]: 'x' } });
      await expectError(res, 403, new RegExp(`'${key}' is read-only`));
    }
  });

  it('refuses bodies that do not match the namespace schema with 400', async () => {
    const bad: Body[] = [
      {},
      { namespace: 42 },
      { namespace: '' },
      { namespace: 'x'.repeat(81) },
      { namespace: uniqueName(), display_name: 'y'.repeat(81) },
      { namespace: uniqueName(), description: 'd'.repeat(501) },
      { namespace: uniqueName(), visibility: 'shared' },
      { namespace: uniqueName(), protected: 'yes' },
      { namespace: uniqueName(), unknown: 1 },
      { namespace: uniqueName(), properties: { p: { type: 'string' } } },
      { namespace: uniqueName(), properties: { p: { title: 'P', type: 'text' } } },
      { namespace: uniqueName(), properties: { p: { title: 'P', type: 'string', confidential: true } } },
      { namespace: uniqueName(), properties: { p: { title: 'P', type: 'string', maxLength: -1 } } },
      { namespace: uniqueName(), objects: [{ description: 'no name' }] },
      { namespace: uniqueName(), objects: [{ name: 'o', required: ['a', 'a'] }] },
      { namespace: uniqueName(), tags: [{}] },
      { namespace: uniqueName(), tags: 'a,b' },
      { namespace: uniqueName(), resource_type_associations: [{ prefix: 'hw_' }] },
      { namespace: `Emoji::\u{1F693}` },
      { namespace: uniqueName(), description: 'police car \u{1F693}' },
    ];
    for (const json of bad) {
      await expectError(await s.req('POST', '/v2/metadefs/namespaces', { json }), 400);
    }
  });

  it('refuses a missing, non-object or malformed body with 400', async () => {
    await expectError(await s.req('POST', '/v2/metadefs/namespaces', { headers: { 'content-type': 'application/json' } }), 400, /body/);
    await expectError(await s.req('POST', '/v2/metadefs/namespaces', { json: [{ namespace: 'x' }] }), 400, /JSON object/);
    await expectError(await s.req('POST', '/v2/metadefs/namespaces', { json: 'namespace' }), 400);
    await expectError(await s.req('POST', '/v2/metadefs/namespaces', { headers: { 'content-type': 'application/json' }, body: '{"namespace":' }), 400, /not valid JSON/);
  });

  it('replaces a namespace with PUT: rename, defaults for what is left out, contents untouched', async () => {
    const ns = await createNamespace(s, { display_name: 'Old', description: 'old', visibility: 'public', protected: true, tags: [{ name: 'kept' }] });
    const newName = uniqueName('Renamed');
    const res = await s.req('PUT', nsPath(ns.namespace), { json: { namespace: newName, display_name: 'New', tags: [{ name: 'ignored' }] } });
    const updated = await expectJson(res, 200);
    assert.equal(updated.namespace, newName);
    assert.equal(updated.display_name, 'New');
    assert.ok(!('description' in updated));
    assert.equal(updated.visibility, 'private');
    assert.equal(updated.protected, false);
    assert.equal(updated.owner, 'admin');
    assert.ok(!('tags' in updated));
    assert.equal(updated.self, `/v2/metadefs/namespaces/${newName}`);
    await expectError(await s.req('GET', nsPath(ns.namespace)), 404);
    const shown = await expectJson(await s.req('GET', nsPath(newName)), 200);
    assert.deepEqual(shown.tags, [{ name: 'kept' }]);
  });

  it('refuses a rename onto an existing namespace with 409, and bad PUT bodies', async () => {
    const a = await createNamespace(s);
    const b = await createNamespace(s);
    await expectError(await s.req('PUT', nsPath(a.namespace), { json: { namespace: b.namespace } }), 409, /already exists/);
    await expectError(await s.req('PUT', nsPath(a.namespace), { json: { display_name: 'no namespace' } }), 400, /namespace/);
    await expectError(await s.req('PUT', nsPath(a.namespace), { json: { namespace: a.namespace, created_at: 'now' } }), 403);
    await expectError(await s.req('PUT', nsPath(a.namespace), { headers: { 'content-type': 'application/json' } }), 400);
  });

  it('deletes a namespace with everything in it; a protected one is refused with 403', async () => {
    const ns = await createNamespace(s, {
      protected: true,
      properties: { p: { title: 'P', type: 'string' } },
      objects: [{ name: 'O' }],
      tags: [{ name: 't' }],
      resource_type_associations: [{ name: 'OS::Glance::Image' }],
    });
    await expectError(await s.req('DELETE', nsPath(ns.namespace)), 403, /protected/);
    await expectJson(await s.req('GET', nsPath(ns.namespace)), 200);
    await expectJson(await s.req('PUT', nsPath(ns.namespace), { json: { namespace: ns.namespace, protected: false } }), 200);
    // tempest and glanceclient send an empty JSON body on DELETE
    await expectNoContent(await s.req('DELETE', nsPath(ns.namespace), { headers: { 'content-type': 'application/json' } }));
    await expectError(await s.req('GET', nsPath(ns.namespace)), 404);
    // the name is free again and nothing of the old contents comes back
    await expectJson(await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: ns.namespace } }), 201);
    const again = await expectJson(await s.req('GET', nsPath(ns.namespace)), 200);
    for (const k of ['properties', 'objects', 'tags', 'resource_type_associations']) assert.ok(!(k in again), k);
    const types = await expectJson(await s.req('GET', '/v2/metadefs/resource_types'), 200);
    assert.ok(types.resource_types.some((t: Body) => t.name === 'OS::Glance::Image'), 'resource types outlive namespaces');
  });

  it('answers 405 with Allow for methods a namespace URL does not take', async () => {
    const res = await s.req('PATCH', nsPath('whatever'), { json: {} });
    await expectError(res, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
    const list = await s.req('DELETE', '/v2/metadefs/namespaces');
    await expectError(list, 405);
    assert.equal(list.headers.get('allow'), 'GET, HEAD, POST');
  });

  describe('listing', () => {
    const rt = `Test::Listing::${process.pid}`;
    const names: string[] = [];
    before(async () => {
      for (let i = 0; i < 5; i++) {
        const ns = await createNamespace(s, {
          namespace: `List-${process.pid}-${i}`,
          visibility: i % 2 ? 'private' : 'public',
          resource_type_associations: [{ name: rt }],
        });
        names.push(ns.namespace);
      }
    });

    const list = (query: string) => s.req('GET', `/v2/metadefs/namespaces?resource_types=${encodeURIComponent(rt)}${query}`);

    it('lists with links, newest first by default, resource type associations included', async () => {
      const body = await expectJson(await list(''), 200);
      assert.deepEqual(body.namespaces.map((n: Body) => n.namespace), [...names].reverse());
      assert.equal(body.schema, '/v2/schemas/metadefs/namespaces');
      assert.equal(body.first, `/v2/metadefs/namespaces?resource_types=${encodeURIComponent(rt).replace(/%20/g, '+')}`);
      assert.ok(!('next' in body));
      assert.equal(body.namespaces[0].resource_type_associations[0].name, rt);
      assert.equal(body.namespaces[0].self, `/v2/metadefs/namespaces/${names[4]}`);
    });

    it('filters by visibility and by several resource types', async () => {
      const pub = await expectJson(await list('&visibility=public'), 200);
      assert.deepEqual(pub.namespaces.map((n: Body) => n.namespace).sort(), [names[0], names[2], names[4]]);
      const priv = await expectJson(await list('&visibility=private'), 200);
      assert.deepEqual(priv.namespaces.map((n: Body) => n.namespace).sort(), [names[1], names[3]]);
      const both = await expectJson(await s.req('GET', `/v2/metadefs/namespaces?resource_types=No::Such,${encodeURIComponent(rt)}`), 200);
      assert.equal(both.namespaces.length, 5);
      const none = await expectJson(await s.req('GET', '/v2/metadefs/namespaces?resource_types=No::Such::Type'), 200);
      assert.deepEqual(none.namespaces, []);
    });

    it('sorts by any namespace attribute in either direction', async () => {
      const asc = await expectJson(await list('&sort_key=namespace&sort_dir=asc'), 200);
      assert.deepEqual(asc.namespaces.map((n: Body) => n.namespace), [...names].sort());
      const byVis = await expectJson(await list('&sort_key=visibility&sort_dir=asc'), 200);
      assert.deepEqual(byVis.namespaces.map((n: Body) => n.visibility), ['private', 'private', 'public', 'public', 'public']);
    });

    it('pages with limit, marker and next', async () => {
      const seen: string[] = [];
      let url: string | undefined = `/v2/metadefs/namespaces?resource_types=${encodeURIComponent(rt)}&limit=2&sort_key=namespace&sort_dir=asc`;
      let pages = 0;
      while (url) {
        const body = await expectJson(await s.req('GET', url), 200);
        seen.push(...body.namespaces.map((n: Body) => n.namespace));
        if (body.next) {
          assert.match(body.next, /marker=/);
          assert.match(body.next, /limit=2/);
          assert.ok(!body.first.includes('marker'));
        }
        url = body.next;
        pages++;
      }
      assert.deepEqual(seen, [...names].sort());
      assert.equal(pages, 3);
      const zero = await expectJson(await list('&limit=0'), 200);
      assert.deepEqual(zero.namespaces, []);
    });

    it('refuses bad paging and filter values with 400, an unknown marker with 404', async () => {
      await expectError(await list('&limit=abc'), 400, /limit/);
      await expectError(await list('&limit=-1'), 400, /limit/);
      await expectError(await list('&sort_dir=sideways'), 400, /sort direction/);
      await expectError(await list('&sort_key=color'), 400, /sort key/);
      await expectError(await list('&visibility=shared'), 400, /visibility/);
      await expectError(await list(`&marker=${encodeURIComponent(uniqueName('Nope'))}`), 404);
    });
  });
});
