import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.js';
import { createNamespace, expectError, expectJson, expectNoContent, nsPath, type Body } from './helpers.js';

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

describe('metadefs namespace contents', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  describe('objects', () => {
    it('creates, shows, lists, renames and deletes an object', async () => {
      const ns = (await createNamespace(s)).namespace;
      const sent = {
        name: 'CPU Limits',
        description: 'Quota on CPU time',
        required: ['period'],
        properties: { period: { title: 'Period', type: 'integer', minimum: 1000, maximum: 1000000, description: 'microseconds' } },
      };
      const created = await expectJson(await s.req('POST', nsPath(ns, '/objects'), { json: sent }), 201);
      assert.equal(created.name, 'CPU Limits');
      assert.deepEqual(created.required, ['period']);
      assert.deepEqual(created.properties, { period: { title: 'Period', description: 'microseconds', type: 'integer', minimum: 1000, maximum: 1000000 } });
      assert.equal(created.self, `/v2/metadefs/namespaces/${ns}/objects/CPU Limits`);
      assert.equal(created.schema, '/v2/schemas/metadefs/object');
      assert.match(created.created_at, TIMESTAMP);
      assert.match(created.updated_at, TIMESTAMP);

      const shown = await expectJson(await s.req('GET', nsPath(ns, '/objects/CPU%20Limits')), 200);
      assert.deepEqual(shown, created);

      const list = await expectJson(await s.req('GET', nsPath(ns, '/objects')), 200);
      assert.deepEqual(list.objects.map((o: Body) => o.name), ['CPU Limits']);
      assert.equal(list.schema, '/v2/schemas/metadefs/objects');

      const renamed = await expectJson(await s.req('PUT', nsPath(ns, '/objects/CPU%20Limits'), { json: { name: 'CPU Quota' } }), 200);
      assert.equal(renamed.name, 'CPU Quota');
      // PUT replaces: what is left out is gone
      assert.deepEqual(renamed.required, []);
      assert.deepEqual(renamed.properties, {});
      assert.ok(!('description' in renamed));
      await expectError(await s.req('GET', nsPath(ns, '/objects/CPU%20Limits')), 404, /Object "CPU Limits" was not found in namespace/);

      await expectNoContent(await s.req('DELETE', nsPath(ns, '/objects/CPU%20Quota')));
      await expectError(await s.req('DELETE', nsPath(ns, '/objects/CPU%20Quota')), 404, /not found/);
      assert.deepEqual((await expectJson(await s.req('GET', nsPath(ns, '/objects')), 200)).objects, []);
    });

    it('an object with no properties shows empty ones', async () => {
      const ns = (await createNamespace(s)).namespace;
      const created = await expectJson(await s.req('POST', nsPath(ns, '/objects'), { json: { name: 'Bare' } }), 201);
      assert.deepEqual(created.required, []);
      assert.deepEqual(created.properties, {});
    });

    it('refuses duplicates (409), bad bodies (400), read-only attributes (403), unknown namespaces (404)', async () => {
      const ns = (await createNamespace(s)).namespace;
      await expectJson(await s.req('POST', nsPath(ns, '/objects'), { json: { name: 'A' } }), 201);
      await expectJson(await s.req('POST', nsPath(ns, '/objects'), { json: { name: 'B' } }), 201);
      await expectError(await s.req('POST', nsPath(ns, '/objects'), { json: { name: 'A' } }), 409, /already exists/);
      await expectError(await s.req('PUT', nsPath(ns, '/objects/B'), { json: { name: 'A' } }), 409, /already exists/);
      for (const json of [
        {},
        { name: 'n'.repeat(81) },
        { name: 'X', bogus: true },
        { name: 'X', required: 'a' },
        { name: 'X', properties: { p: { title: 'P', type: 'integer', 'test-key': 'v' } } },
        { name: 'X', properties: { p: { type: 'integer' } } },
        { name: 'X', properties: { p: { title: 'P', type: 'string', items: { type: 'string', color: 'red' } } } },
        { name: 'X \u{1F600}' },
      ]) {
        await expectError(await s.req('POST', nsPath(ns, '/objects'), { json }), 400);
      }
      await expectError(await s.req('POST', nsPath(ns, '/objects'), { json: { name: 'X', self: '/x' } }), 403, /read-only/);
      await expectError(await s.req('PUT', nsPath(ns, '/objects/A'), { json: { name: 'A', updated_at: 'now' } }), 403, /read-only/);
      await expectError(await s.req('POST', nsPath(ns, '/objects')), 400, /body/);
      await expectError(await s.req('PUT', nsPath(ns, '/objects/Nope'), { json: { name: 'Nope' } }), 404, /Object "Nope" was not found/);
      await expectError(await s.req('POST', nsPath('No::Such', '/objects'), { json: { name: 'A' } }), 404, /namespace "No::Such" was not found/);
      await expectError(await s.req('GET', nsPath('No::Such', '/objects')), 404);
      await expectError(await s.req('GET', nsPath(ns, '/objects?limit=0')), 400, /limit/);
      await expectError(await s.req('GET', nsPath(ns, '/objects?sort_dir=up')), 400, /sort direction/);
    });

    it('deletes all objects at once; not in a protected namespace', async () => {
      const ns = (await createNamespace(s, { objects: [{ name: 'A' }, { name: 'B' }] })).namespace;
      await expectNoContent(await s.req('DELETE', nsPath(ns, '/objects')));
      assert.deepEqual((await expectJson(await s.req('GET', nsPath(ns, '/objects')), 200)).objects, []);
      const locked = (await createNamespace(s, { protected: true, objects: [{ name: 'A' }] })).namespace;
      await expectError(await s.req('DELETE', nsPath(locked, '/objects')), 403, /protected/);
      await expectError(await s.req('DELETE', nsPath(locked, '/objects/A')), 403, /protected/);
      assert.equal((await expectJson(await s.req('GET', nsPath(locked, '/objects')), 200)).objects.length, 1);
      // a protected namespace's objects can still be changed
      await expectJson(await s.req('PUT', nsPath(locked, '/objects/A'), { json: { name: 'A2' } }), 200);
    });
  });

  describe('properties', () => {
    it('creates, shows, lists, updates and deletes a property', async () => {
      const ns = (await createNamespace(s)).namespace;
      const sent = { name: 'hypervisor_type', title: 'Hypervisor', type: 'string', enum: ['kvm', 'qemu'], description: 'Which hypervisor', operators: ['<or>'] };
      const created = await expectJson(await s.req('POST', nsPath(ns, '/properties'), { json: sent }), 201);
      assert.deepEqual(created, { name: 'hypervisor_type', title: 'Hypervisor', description: 'Which hypervisor', operators: ['<or>'], type: 'string', enum: ['kvm', 'qemu'] });
      assert.deepEqual(await expectJson(await s.req('GET', nsPath(ns, '/properties/hypervisor_type')), 200), created);

      const list = await expectJson(await s.req('GET', nsPath(ns, '/properties')), 200);
      assert.deepEqual(Object.keys(list), ['properties']);
      assert.deepEqual(list.properties, { hypervisor_type: { title: 'Hypervisor', description: 'Which hypervisor', operators: ['<or>'], type: 'string', enum: ['kvm', 'qemu'] } });

      const updated = await expectJson(
        await s.req('PUT', nsPath(ns, '/properties/hypervisor_type'), { json: { name: 'hv_type', title: 'HV', type: 'array', items: { type: 'string', enum: ['kvm'] }, minItems: 1, uniqueItems: true } }),
        200,
      );
      assert.deepEqual(updated, { name: 'hv_type', title: 'HV', type: 'array', items: { type: 'string', enum: ['kvm'] }, minItems: 1, uniqueItems: true });
      await expectError(await s.req('GET', nsPath(ns, '/properties/hypervisor_type')), 404, /Property "hypervisor_type" was not found/);

      await expectNoContent(await s.req('DELETE', nsPath(ns, '/properties/hv_type')));
      await expectError(await s.req('DELETE', nsPath(ns, '/properties/hv_type')), 404);
      assert.deepEqual((await expectJson(await s.req('GET', nsPath(ns, '/properties')), 200)).properties, {});
    });

    it('refuses duplicates (409), bad bodies (400), read-only attributes (403)', async () => {
      const ns = (await createNamespace(s)).namespace;
      await expectJson(await s.req('POST', nsPath(ns, '/properties'), { json: { name: 'a', title: 'A', type: 'string' } }), 201);
      await expectJson(await s.req('POST', nsPath(ns, '/properties'), { json: { name: 'b', title: 'B', type: 'string' } }), 201);
      await expectError(await s.req('POST', nsPath(ns, '/properties'), { json: { name: 'a', title: 'A', type: 'string' } }), 409, /already exists/);
      await expectError(await s.req('PUT', nsPath(ns, '/properties/b'), { json: { name: 'a', title: 'A', type: 'string' } }), 409, /already exists/);
      for (const json of [
        { title: 'No name', type: 'string' },
        { name: 'x', type: 'string' },
        { name: 'x', title: 'X' },
        { name: 'a'.repeat(81), title: 'X', type: 'string' },
        { name: 'x', title: 'X', type: 'string', required: [] },
        { name: 'x', title: 'X', type: 'string', confidential: true },
        { name: 'x', title: 'X', type: 'integer', minimum: 'one' },
        { name: 'x', title: 'X', type: 'string', readonly: 'no' },
        { name: '\u{1F693}', title: 'X', type: 'string' },
      ]) {
        await expectError(await s.req('POST', nsPath(ns, '/properties'), { json }), 400);
      }
      await expectError(await s.req('POST', nsPath(ns, '/properties'), { json: { name: 'x', title: 'X', type: 'string', created_at: 'x' } }), 403, /read-only/);
      await expectError(await s.req('PUT', nsPath(ns, '/properties/zzz'), { json: { name: 'zzz', title: 'Z', type: 'string' } }), 404);
    });

    it('shows a property under the name a resource type gives it', async () => {
      const ns = (
        await createNamespace(s, {
          resource_type_associations: [{ name: 'OS::Nova::Flavor', prefix: 'hw:' }, { name: 'OS::Glance::Image' }],
          properties: { cpu_policy: { title: 'CPU Policy', type: 'string' } },
        })
      ).namespace;
      const shown = await expectJson(await s.req('GET', nsPath(ns, '/properties/hw:cpu_policy?resource_type=OS::Nova::Flavor')), 200);
      assert.equal(shown.name, 'cpu_policy');
      await expectError(await s.req('GET', nsPath(ns, '/properties/cpu_policy?resource_type=OS::Nova::Flavor')), 404, /prefix "hw:"/);
      await expectError(await s.req('GET', nsPath(ns, '/properties/cpu_policy?resource_type=OS::Glance::Image')), 404, /prefix/);
      await expectError(await s.req('GET', nsPath(ns, '/properties/hw:cpu_policy?resource_type=OS::Nova::Server')), 404, /not associated/);
    });

    it('deletes all properties at once; not in a protected namespace', async () => {
      const ns = (await createNamespace(s, { properties: { a: { title: 'A', type: 'string' }, b: { title: 'B', type: 'string' } } })).namespace;
      await expectNoContent(await s.req('DELETE', nsPath(ns, '/properties')));
      assert.deepEqual((await expectJson(await s.req('GET', nsPath(ns, '/properties')), 200)).properties, {});
      const locked = (await createNamespace(s, { protected: true, properties: { a: { title: 'A', type: 'string' } } })).namespace;
      await expectError(await s.req('DELETE', nsPath(locked, '/properties')), 403, /protected/);
      await expectError(await s.req('DELETE', nsPath(locked, '/properties/a')), 403, /protected/);
    });
  });

  describe('tags', () => {
    it('creates one tag by name, shows, renames and deletes it', async () => {
      const ns = (await createNamespace(s)).namespace;
      await expectError(await s.req('GET', nsPath(ns, '/tags/tag1')), 404, /Tag "tag1" was not found/);
      // tempest posts with a JSON content type and no body
      const created = await expectJson(await s.req('POST', nsPath(ns, '/tags/tag1'), { headers: { 'content-type': 'application/json' } }), 201);
      assert.deepEqual(Object.keys(created), ['name', 'created_at', 'updated_at']);
      assert.equal(created.name, 'tag1');
      await expectError(await s.req('POST', nsPath(ns, '/tags/tag1')), 409, /already exists/);
      assert.equal((await expectJson(await s.req('GET', nsPath(ns, '/tags/tag1')), 200)).name, 'tag1');
      const renamed = await expectJson(await s.req('PUT', nsPath(ns, '/tags/tag1'), { json: { name: 'tag1-UPDATED' } }), 200);
      assert.equal(renamed.name, 'tag1-UPDATED');
      await expectError(await s.req('GET', nsPath(ns, '/tags/tag1')), 404);
      await expectNoContent(await s.req('DELETE', nsPath(ns, '/tags/tag1-UPDATED')));
      await expectError(await s.req('DELETE', nsPath(ns, '/tags/tag1-UPDATED')), 404);
    });

    it('bulk-creates tags: replaces by default, appends with X-Openstack-Append, all or nothing', async () => {
      const ns = (await createNamespace(s)).namespace;
      const names = async () => (await expectJson(await s.req('GET', nsPath(ns, '/tags?sort_dir=asc')), 200)).tags.map((t: Body) => t.name);
      const post = (tags: string[], append?: string) =>
        s.req('POST', nsPath(ns, '/tags'), { json: { tags: tags.map((name) => ({ name })) }, headers: append === undefined ? {} : { 'x-openstack-append': append } });

      const created = await expectJson(await post(['tag1', 'tag2', 'tag3']), 201);
      assert.deepEqual(created, { tags: [{ name: 'tag1' }, { name: 'tag2' }, { name: 'tag3' }] });
      assert.deepEqual(await names(), ['tag1', 'tag2', 'tag3']);

      await expectError(await post(['tag4', 'tag5', 'tag4']), 409, /tag named "tag4"/);
      assert.deepEqual(await names(), ['tag1', 'tag2', 'tag3'], 'a refused bulk create changes nothing');

      await expectJson(await post(['tag4', 'tag5', 'tag6'], 'True'), 201);
      assert.deepEqual(await names(), ['tag1', 'tag2', 'tag3', 'tag4', 'tag5', 'tag6']);

      await expectError(await post(['tag6', 'tag7'], 'yes'), 409, /tag6/);
      assert.equal((await names()).length, 6);

      await expectJson(await post(['only'], 'false'), 201);
      assert.deepEqual(await names(), ['only']);

      // an empty list changes nothing
      assert.deepEqual(await expectJson(await post([]), 201), { tags: [] });
      assert.deepEqual(await names(), ['only']);
    });

    it('lists tags newest first by default, with sort, limit and marker', async () => {
      const ns = (await createNamespace(s)).namespace;
      await expectJson(await s.req('POST', nsPath(ns, '/tags'), { json: { tags: ['a', 'b', 'c', 'd'].map((name) => ({ name })) } }), 201);
      const get = async (q: string) => (await expectJson(await s.req('GET', nsPath(ns, `/tags${q}`)), 200)).tags.map((t: Body) => t.name);
      assert.deepEqual(await get(''), ['d', 'c', 'b', 'a']);
      assert.deepEqual(await get('?sort_key=name&sort_dir=asc&limit=2'), ['a', 'b']);
      assert.deepEqual(await get('?sort_key=name&sort_dir=asc&limit=2&marker=b'), ['c', 'd']);
      await expectError(await s.req('GET', nsPath(ns, '/tags?marker=zzz')), 404, /Tag "zzz"/);
      await expectError(await s.req('GET', nsPath(ns, '/tags?limit=-2')), 400, /limit/);
      await expectError(await s.req('GET', nsPath(ns, '/tags?sort_key=colour')), 400, /sort key/);
    });

    it('refuses bad tag bodies and names', async () => {
      const ns = (await createNamespace(s, { tags: [{ name: 'x' }, { name: 'y' }] })).namespace;
      for (const json of [{}, { tags: 'a' }, { tags: [{ name: 'a', extra: 1 }] }, { tags: [{}] }, { tags: [{ name: 'n'.repeat(81) }] }, { tags: [], other: 1 }]) {
        await expectError(await s.req('POST', nsPath(ns, '/tags'), { json }), 400);
      }
      await expectError(await s.req('POST', nsPath(ns, '/tags'), { json: { tags: [], created_at: 'x' } }), 403);
      await expectError(await s.req('POST', nsPath(ns, `/tags/${'n'.repeat(81)}`)), 400);
      await expectError(await s.req('PUT', nsPath(ns, '/tags/x'), { json: { name: 'y' } }), 409, /already exists/);
      await expectError(await s.req('PUT', nsPath(ns, '/tags/x'), { json: {} }), 400);
      await expectError(await s.req('PUT', nsPath(ns, '/tags/x'), { json: { name: 'z', updated_at: 'x' } }), 403);
      await expectError(await s.req('PUT', nsPath(ns, '/tags/nope'), { json: { name: 'z' } }), 404);
    });

    it('deletes all tags at once; not in a protected namespace', async () => {
      const ns = (await createNamespace(s, { tags: [{ name: 'a' }, { name: 'b' }] })).namespace;
      await expectNoContent(await s.req('DELETE', nsPath(ns, '/tags')));
      assert.deepEqual((await expectJson(await s.req('GET', nsPath(ns, '/tags')), 200)).tags, []);
      const locked = (await createNamespace(s, { protected: true, tags: [{ name: 'a' }] })).namespace;
      await expectError(await s.req('DELETE', nsPath(locked, '/tags')), 403, /protected/);
      await expectError(await s.req('DELETE', nsPath(locked, '/tags/a')), 403, /protected/);
      await expectJson(await s.req('PUT', nsPath(locked, '/tags/a'), { json: { name: 'b' } }), 200);
    });
  });

  describe('resource types', () => {
    it('lists the built-in resource types', async () => {
      const body = await expectJson(await s.req('GET', '/v2/metadefs/resource_types'), 200);
      const names = body.resource_types.map((t: Body) => t.name);
      for (const n of ['OS::Glance::Image', 'OS::Cinder::Volume', 'OS::Nova::Flavor', 'OS::Nova::Aggregate', 'OS::Nova::Server']) assert.ok(names.includes(n), n);
      assert.deepEqual(Object.keys(body.resource_types[0]), ['name', 'created_at', 'updated_at']);
      assert.equal(names[0], 'OS::Glance::Image');
    });

    it('associates, lists and dissociates resource types; a new type is created on first use', async () => {
      const ns = (await createNamespace(s)).namespace;
      assert.deepEqual(await expectJson(await s.req('GET', nsPath(ns, '/resource_types')), 200), { resource_type_associations: [] });
      const typeName = `Test::Type::${process.pid}`;
      const created = await expectJson(
        await s.req('POST', nsPath(ns, '/resource_types'), { json: { name: typeName, prefix: 'hw_', properties_target: 'image' } }),
        201,
      );
      assert.deepEqual(Object.keys(created), ['name', 'prefix', 'properties_target', 'created_at', 'updated_at']);
      assert.equal(created.prefix, 'hw_');
      await expectError(await s.req('POST', nsPath(ns, '/resource_types'), { json: { name: typeName } }), 409, /already associated/);
      await expectJson(await s.req('POST', nsPath(ns, '/resource_types'), { json: { name: 'OS::Nova::Flavor' } }), 201);

      const listed = await expectJson(await s.req('GET', nsPath(ns, '/resource_types')), 200);
      assert.deepEqual(listed.resource_type_associations.map((a: Body) => a.name), [typeName, 'OS::Nova::Flavor']);
      assert.ok(!('prefix' in listed.resource_type_associations[1]));
      const all = await expectJson(await s.req('GET', '/v2/metadefs/resource_types'), 200);
      assert.ok(all.resource_types.some((t: Body) => t.name === typeName));

      await expectNoContent(await s.req('DELETE', nsPath(ns, `/resource_types/${typeName}`)));
      await expectError(await s.req('DELETE', nsPath(ns, `/resource_types/${typeName}`)), 404, /not associated/);
      const after = await expectJson(await s.req('GET', nsPath(ns, '/resource_types')), 200);
      assert.deepEqual(after.resource_type_associations.map((a: Body) => a.name), ['OS::Nova::Flavor']);
    });

    it('refuses bad association bodies and protects a protected namespace', async () => {
      const ns = (await createNamespace(s, { protected: true, resource_type_associations: [{ name: 'OS::Glance::Image' }] })).namespace;
      for (const json of [{}, { name: '' }, { name: 'x'.repeat(81) }, { name: 'A', prefix: 5 }, { name: 'A', other: 'x' }]) {
        await expectError(await s.req('POST', nsPath(ns, '/resource_types'), { json }), 400);
      }
      await expectError(await s.req('POST', nsPath(ns, '/resource_types'), { json: { name: 'A', created_at: 'x' } }), 403);
      await expectError(await s.req('POST', nsPath('No::Such', '/resource_types'), { json: { name: 'A' } }), 404);
      await expectError(await s.req('DELETE', nsPath(ns, '/resource_types/OS::Glance::Image')), 403, /protected/);
      const res = await s.req('GET', nsPath(ns, '/resource_types/OS::Glance::Image'));
      await expectError(res, 405);
      assert.equal(res.headers.get('allow'), 'DELETE');
    });
  });
});
