import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/server.js';
import { validate } from '../../src/metadefs/json-schema.js';
import { createNamespace, expectJson, nsPath, SAMPLES, type Body } from './helpers.js';


describe('metadefs schemas', () => {
  let s: TestServer;
  const schemas: Record<string, Body> = {};
  before(async () => {
    s = await startTestServer();
    for (const name of ['namespace', 'namespaces', 'resource_type', 'resource_types', 'object', 'objects', 'property', 'properties', 'tag', 'tags']) {
      schemas[name] = await expectJson(await s.req('GET', `/v2/schemas/metadefs/${name}`), 200);
    }
  });
  after(async () => {
    await s.close();
  });

  it('are served under the names tempest expects', () => {
    const names = Object.fromEntries(Object.entries(schemas).map(([k, v]) => [k, v.name]));
    assert.deepEqual(names, {
      namespace: 'namespace',
      namespaces: 'namespaces',
      resource_type: 'resource_type_association',
      resource_types: 'resource_type_associations',
      object: 'object',
      objects: 'objects',
      property: 'property',
      properties: 'properties',
      tag: 'tag',
      tags: 'tags',
    });
  });

  it('have Glance\'s structure', () => {
    const ns = schemas.namespace;
    assert.equal(ns.additionalProperties, false);
    assert.deepEqual(ns.required, ['namespace']);
    assert.deepEqual(Object.keys(ns.properties).sort(), [
      'created_at', 'description', 'display_name', 'namespace', 'objects', 'owner', 'properties', 'protected', 'resource_type_associations', 'schema', 'self', 'tags', 'updated_at', 'visibility',
    ]);
    assert.deepEqual(ns.properties.visibility.enum, ['public', 'private']);
    assert.deepEqual(Object.keys(ns.definitions).sort(), ['positiveInteger', 'positiveIntegerDefault0', 'property', 'stringArray']);
    assert.deepEqual(ns.definitions.property.additionalProperties.required, ['title', 'type']);
    assert.deepEqual(ns.definitions.property.additionalProperties.properties.type.enum, ['array', 'boolean', 'integer', 'number', 'object', 'string', null]);

    for (const [collection, item, key] of [
      ['namespaces', 'namespace', 'namespaces'],
      ['objects', 'object', 'objects'],
      ['tags', 'tag', 'tags'],
      ['resource_types', 'resource_type', 'resource_type_associations'],
    ]) {
      const c = schemas[collection];
      assert.equal(c.properties[key].type, 'array');
      const { definitions, ...itemWithoutDefinitions } = schemas[item];
      assert.deepEqual(c.properties[key].items, itemWithoutDefinitions, collection);
      assert.deepEqual(c.definitions, definitions, collection);
      assert.deepEqual(c.links.map((l: Body) => l.rel), ['first', 'next', 'describedby']);
      assert.deepEqual(Object.keys(c.properties).sort(), ['first', key, 'next', 'schema'].sort());
    }
    assert.equal(schemas.properties.properties.properties.type, 'object');
    assert.deepEqual(schemas.properties.properties.properties.additionalProperties.required, ['title', 'type']);
    assert.deepEqual(schemas.property.required, ['title', 'type', 'name']);
    assert.equal(schemas.property.definitions.stringArray.minItems, 1);
    assert.deepEqual(schemas.resource_type.required, ['name']);
    assert.equal(schemas.tag.properties.name.maxLength, 80);
  });

  it('answer 405 to anything but GET', async () => {
    const res = await s.req('POST', '/v2/schemas/metadefs/namespace', { json: {} });
    assert.equal(res.status, 405);
    assert.equal((await res.json()).error.code, 405);
  });

  it('describe every response, as glanceclient checks them', async () => {
    const conforms = (body: unknown, schema: string) => assert.equal(validate(body, schemas[schema]), undefined, `${schema}: ${JSON.stringify(body)}`);
    const full = await createNamespace(s, {
      display_name: 'Everything',
      description: 'd',
      visibility: 'public',
      resource_type_associations: [{ name: 'OS::Glance::Image', prefix: 'p_', properties_target: 'image' }],
      properties: { a: { title: 'A', type: 'array', items: { type: 'string', enum: ['x'] }, minItems: 0, uniqueItems: true, default: ['x'] } },
      objects: [{ name: 'O', required: ['b'], properties: { b: { title: 'B', type: 'number', minimum: 0.5, readonly: true } } }],
      tags: [{ name: 't' }],
    });
    conforms(full, 'namespace');
    const ns = full.namespace;
    conforms(await expectJson(await s.req('GET', nsPath(ns)), 200), 'namespace');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '?resource_type=OS::Glance::Image')), 200), 'namespace');
    conforms(await expectJson(await s.req('GET', '/v2/metadefs/namespaces?limit=1'), 200), 'namespaces');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/objects')), 200), 'objects');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/objects/O')), 200), 'object');
    conforms(await expectJson(await s.req('POST', nsPath(ns, '/objects'), { json: { name: 'O2' } }), 201), 'object');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/properties')), 200), 'properties');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/properties/a')), 200), 'property');
    conforms(await expectJson(await s.req('POST', nsPath(ns, '/properties'), { json: { name: 'c', title: 'C', type: 'boolean' } }), 201), 'property');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/tags')), 200), 'tags');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/tags/t')), 200), 'tag');
    conforms(await expectJson(await s.req('POST', nsPath(ns, '/tags'), { json: { tags: [{ name: 'u' }] } }), 201), 'tags');
    conforms(await expectJson(await s.req('GET', nsPath(ns, '/resource_types')), 200), 'resource_types');
    conforms(await expectJson(await s.req('POST', nsPath(ns, '/resource_types'), { json: { name: 'OS::Nova::Flavor' } }), 201), 'resource_type');
    const types = await expectJson(await s.req('GET', '/v2/metadefs/resource_types'), 200);
    for (const t of types.resource_types) conforms(t, 'resource_type');
    conforms(await expectJson(await s.req('PUT', nsPath(ns), { json: { namespace: ns, visibility: 'public' } }), 200), 'namespace');
  });

  it('accept the shipped definition files as namespace bodies (as Horizon imports them)', async () => {
    const files = readdirSync(SAMPLES).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 4);
    for (const f of files) {
      const doc = JSON.parse(readFileSync(path.join(SAMPLES, f), 'utf8'));
      assert.equal(validate(doc, schemas.namespace), undefined, f);
      const created = await expectJson(await s.req('POST', '/v2/metadefs/namespaces', { json: doc }), 201);
      const shown = await expectJson(await s.req('GET', nsPath(created.namespace)), 200);
      assert.equal(validate(shown, schemas.namespace), undefined, f);
      assert.deepEqual(shown.properties ?? {}, doc.properties ?? {}, f);
      assert.deepEqual((shown.objects ?? []).map((o: Body) => o.name), (doc.objects ?? []).map((o: Body) => o.name), f);
    }
  });
});
