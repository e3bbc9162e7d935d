import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.js';
import { expectError, expectJson, expectNoContent, type Body } from './helpers.js';

/**
 * The requests tempest's image metadefs tests make (tempest 33:
 * tempest/api/image/v2/admin/test_images_metadefs_*.py and
 * test_images_metadefs_schema.py), in the same order and shape: JSON bodies
 * with Content-Type and Accept set, POST without a body for a single tag,
 * DELETE with the JSON content type and no body. Statuses are the ones a
 * real Glance answered (/work/shared/glance/tempest-requests.txt).
 */
describe('tempest metadefs request shapes', () => {
  let s: TestServer;
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  const call = (method: string, url: string, body?: unknown) =>
    s.req(method, `/v2/${url}`, { headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let n = 0;
  const rand = (prefix: string) => `${prefix}-${process.pid}-${++n}`;

  /** BaseV2ImageAdminTest.create_namespace, with its cleanup. */
  const createNamespace = async () => {
    const name = rand('test-ns');
    const body = await expectJson(await call('POST', 'metadefs/namespaces', { namespace: name, visibility: 'public', description: 'Tempest', protected: false, display_name: name }), 201);
    return body;
  };

  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  it('test_basic_metadata_definition_namespaces', async () => {
    const types = await expectJson(await call('GET', 'metadefs/resource_types'), 200);
    const resourceName = types.resource_types[0].name;
    const name = rand('namespace');
    await expectJson(
      await call('POST', 'metadefs/namespaces', {
        namespace: name,
        visibility: 'public',
        description: 'Tempest',
        display_name: name,
        resource_type_associations: [{ name: resourceName }],
        protected: true,
      }),
      201,
    );
    const list = await expectJson(await call('GET', 'metadefs/namespaces'), 200);
    assert.ok(list.namespaces.map((x: Body) => x.namespace).includes(name));
    const shown = await expectJson(await call('GET', `metadefs/namespaces/${name}`), 200);
    assert.equal(shown.namespace, name);
    assert.equal(shown.visibility, 'public');
    await expectError(await call('DELETE', `metadefs/namespaces/${name}`), 403);
    const updated = await expectJson(
      await call('PUT', `metadefs/namespaces/${name}`, { namespace: name, description: 'Tempest', visibility: 'private', display_name: name, protected: false }),
      200,
    );
    assert.equal(updated.visibility, 'private');
    assert.equal(updated.protected, false);
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${name}`));
    // wait_for_resource_deletion polls show until 404
    await expectError(await call('GET', `metadefs/namespaces/${name}`), 404);
  });

  it('test_create_update_delete_meta_namespace_objects, test_list_…, test_show_…', async () => {
    const ns = (await createNamespace()).namespace;
    const objectName = rand('MetadataNamespaceObjectsTest-object');
    const created = await expectJson(await call('POST', `metadefs/namespaces/${ns}/objects`, { name: objectName }), 201);
    const shown = await expectJson(await call('GET', `metadefs/namespaces/${ns}/objects/${created.name}`), 200);
    assert.equal(shown.name, objectName);
    const listed = await expectJson(await call('GET', `metadefs/namespaces/${ns}/objects`), 200);
    assert.ok(listed.objects.map((o: Body) => o.name).includes(objectName));
    const newName = rand('update-object');
    const updated = await expectJson(await call('PUT', `metadefs/namespaces/${ns}/objects/${created.name}`, { name: newName }), 200);
    assert.equal(updated.name, newName);
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}/objects/${newName}`));
    const after = await expectJson(await call('GET', `metadefs/namespaces/${ns}/objects`), 200);
    assert.ok(!after.objects.map((o: Body) => o.name).includes(newName));
    // cleanup: the object is gone already (404 is ignored), then the namespace goes
    await expectError(await call('DELETE', `metadefs/namespaces/${ns}/objects/${objectName}`), 404);
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}`));
  });

  it('test_basic_meta_def_namespace_property', async () => {
    const resourceName = (await expectJson(await call('GET', 'metadefs/resource_types'), 200)).resource_types[0].name;
    const enumValues = ['xen', 'qemu', 'kvm', 'lxc', 'uml', 'vmware', 'hyperv'];
    const ns = (await createNamespace()).namespace;
    await expectJson(await call('POST', `metadefs/namespaces/${ns}/resource_types`, { name: resourceName }), 201);
    const title = rand('property');
    const created = await expectJson(await call('POST', `metadefs/namespaces/${ns}/properties`, { title, name: resourceName, type: 'string', enum: enumValues }), 201);
    assert.equal(created.title, title);
    const shown = await expectJson(await call('GET', `metadefs/namespaces/${ns}/properties/${resourceName}`), 200);
    assert.equal(shown.name, resourceName);
    const newTitle = rand('update-property');
    const updated = await expectJson(
      await call('PUT', `metadefs/namespaces/${ns}/properties/${resourceName}`, { title: newTitle, type: 'string', enum: enumValues, name: resourceName }),
      200,
    );
    assert.equal(updated.title, newTitle);
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}/properties/${resourceName}`));
    const listed = await expectJson(await call('GET', `metadefs/namespaces/${ns}/properties`), 200);
    assert.deepEqual(listed.properties, {});
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}`));
  });

  it('test_create_list_delete_namespace_tags and test_create_update_delete_tag', async () => {
    const tags = [{ name: 'sample-tag1' }, { name: 'sample-tag2' }, { name: 'sample-tag3' }];
    const ns = (await createNamespace()).namespace;
    await expectJson(await call('POST', `metadefs/namespaces/${ns}/tags`, { tags }), 201);
    const listed = await expectJson(await call('GET', `metadefs/namespaces/${ns}/tags`), 200);
    assert.equal(listed.tags.length, 3);
    for (const t of listed.tags) assert.ok(tags.some((x) => x.name === t.name));
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}/tags`));
    assert.deepEqual((await expectJson(await call('GET', `metadefs/namespaces/${ns}/tags`), 200)).tags, []);

    await expectJson(await call('POST', `metadefs/namespaces/${ns}/tags`, { tags }), 201);
    const tagName = rand('tag_name');
    await expectJson(await call('POST', `metadefs/namespaces/${ns}/tags/${tagName}`), 201);
    assert.equal((await expectJson(await call('GET', `metadefs/namespaces/${ns}/tags/${tagName}`), 200)).name, tagName);
    const newName = rand('update-tag');
    assert.equal((await expectJson(await call('PUT', `metadefs/namespaces/${ns}/tags/${tagName}`, { name: newName }), 200)).name, newName);
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}/tags/${newName}`));
    const names = (await expectJson(await call('GET', `metadefs/namespaces/${ns}/tags`), 200)).tags.map((t: Body) => t.name);
    assert.ok(!names.includes(newName));
    // cleanups: delete all tags, then the namespace
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}/tags`));
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}`));
  });

  it('test_basic_meta_def_resource_type_association', async () => {
    const resourceName = (await expectJson(await call('GET', 'metadefs/resource_types'), 200)).resource_types[0].name;
    const ns = (await createNamespace()).namespace;
    const created = await expectJson(await call('POST', `metadefs/namespaces/${ns}/resource_types`, { name: resourceName }), 201);
    assert.equal(created.name, resourceName);
    const listed = await expectJson(await call('GET', `metadefs/namespaces/${ns}/resource_types`), 200);
    assert.ok(listed.resource_type_associations.map((a: Body) => a.name).includes(resourceName));
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}/resource_types/${resourceName}`));
    const after = await expectJson(await call('GET', `metadefs/namespaces/${ns}/resource_types`), 200);
    assert.ok(!after.resource_type_associations.map((a: Body) => a.name).includes(resourceName));
    await expectNoContent(await call('DELETE', `metadefs/namespaces/${ns}`));
  });

  it('MetadataSchemaTest', async () => {
    const expected: Record<string, string> = {
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
    };
    for (const [path, name] of Object.entries(expected)) {
      assert.equal((await expectJson(await call('GET', `schemas/metadefs/${path}`), 200)).name, name);
    }
  });
});
