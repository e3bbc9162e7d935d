import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startTestServer, createImage, uploadBytes, data1k, type TestServer } from '../support/server.js';

type Json = Record<string, any>;

const UUID_PATTERN = '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$';

/**
 * Glance 2024.x image properties (glance/api/v2/images.py get_base_properties + etc/schema-image.json),
 * descriptions aside.
 */
const GLANCE_IMAGE_PROPERTIES: Record<string, Json> = {
  id: { type: 'string', pattern: UUID_PATTERN },
  name: { type: ['null', 'string'], maxLength: 255 },
  status: { type: 'string', readOnly: true, enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'] },
  visibility: { type: 'string', enum: ['community', 'public', 'private', 'shared'] },
  protected: { type: 'boolean' },
  os_hidden: { type: 'boolean' },
  checksum: { type: ['null', 'string'], readOnly: true, maxLength: 32 },
  os_hash_algo: { type: ['null', 'string'], readOnly: true, maxLength: 64 },
  os_hash_value: { type: ['null', 'string'], readOnly: true, maxLength: 128 },
  owner: { type: ['null', 'string'], maxLength: 255 },
  size: { type: ['null', 'integer'], readOnly: true },
  virtual_size: { type: ['null', 'integer'], readOnly: true },
  container_format: { type: ['null', 'string'], enum: [null, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'] },
  disk_format: { type: ['null', 'string'], enum: [null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'] },
  created_at: { type: 'string', readOnly: true },
  updated_at: { type: 'string', readOnly: true },
  tags: { type: 'array', items: { type: 'string', maxLength: 255 } },
  direct_url: { type: 'string', readOnly: true },
  min_ram: { type: 'integer' },
  min_disk: { type: 'integer' },
  self: { type: 'string', readOnly: true },
  file: { type: 'string', readOnly: true },
  stores: { type: 'string', readOnly: true },
  schema: { type: 'string', readOnly: true },
  locations: { type: 'array' },
  kernel_id: { type: ['null', 'string'], pattern: UUID_PATTERN, is_base: false },
  ramdisk_id: { type: ['null', 'string'], pattern: UUID_PATTERN, is_base: false },
  instance_uuid: { type: 'string', is_base: false },
  architecture: { type: 'string', is_base: false },
  os_distro: { type: 'string', is_base: false },
  os_version: { type: 'string', is_base: false },
  description: { type: 'string', is_base: false },
  cinder_encryption_key_id: { type: 'string', is_base: false },
  cinder_encryption_key_deletion_policy: { type: 'string', enum: ['on_image_deletion', 'do_not_delete'], is_base: false },
};

const SYSTEM_PYTHON = '/usr/bin/python3';

/** Validates `instance` against `schema` with python-jsonschema, as glanceclient (warlock) does. */
function jsonschemaValidate(schema: unknown, instance: unknown): string {
  const script = 'import json,sys,jsonschema\nd=json.load(sys.stdin)\ntry:\n  jsonschema.validate(d["i"], d["s"]); print("valid")\nexcept jsonschema.ValidationError as e:\n  print("invalid: " + e.message)';
  return execFileSync(SYSTEM_PYTHON, ['-c', script], { input: JSON.stringify({ s: schema, i: instance }) }).toString().trim();
}

function hasJsonschema(): boolean {
  if (!existsSync(SYSTEM_PYTHON)) return false;
  try {
    execFileSync(SYSTEM_PYTHON, ['-c', 'import jsonschema']);
    return true;
  } catch {
    return false;
  }
}

describe('/v2/schemas', () => {
  let s: TestServer;
  const schemas: Record<string, Json> = {};
  before(async () => {
    s = await startTestServer();
    for (const name of ['image', 'images', 'member', 'members', 'task', 'tasks']) {
      const res = await s.req('GET', `/v2/schemas/${name}`, { token: 'reader' });
      assert.equal(res.status, 200, name);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      schemas[name] = (await res.json()) as Json;
    }
  });
  after(async () => { await s.close(); });

  test('image: Glance\'s properties, permissive extra properties, links', () => {
    const image = schemas.image;
    assert.deepEqual(Object.keys(image), ['name', 'properties', 'additionalProperties', 'links']);
    assert.equal(image.name, 'image');
    assert.deepEqual(image.additionalProperties, { type: 'string' });
    assert.deepEqual(image.links, [{ rel: 'self', href: '{self}' }, { rel: 'enclosure', href: '{file}' }, { rel: 'describedby', href: '{schema}' }]);
    assert.deepEqual(Object.keys(image.properties).sort(), Object.keys(GLANCE_IMAGE_PROPERTIES).sort());
    // in Glance's order (glanceclient lists options and table rows in it)
    assert.deepEqual(Object.keys(image.properties), Object.keys(GLANCE_IMAGE_PROPERTIES));
    for (const [key, expected] of Object.entries(GLANCE_IMAGE_PROPERTIES)) {
      const got = image.properties[key];
      for (const [attr, value] of Object.entries(expected)) assert.deepEqual(got[attr], value, `${key}.${attr}`);
      for (const attr of ['readOnly', 'is_base', 'enum', 'pattern', 'maxLength']) {
        if (!(attr in expected)) assert.equal(got[attr], undefined, `${key} has no ${attr}`);
      }
      if (key !== 'locations') assert.equal(typeof got.description, 'string', `${key} is described`);
    }
    const loc = image.properties.locations.items;
    assert.deepEqual(loc.required, ['url', 'metadata']);
    assert.deepEqual(loc.properties.validation_data.required, ['os_hash_algo', 'os_hash_value']);
    assert.equal(loc.properties.validation_data.additionalProperties, false);
  });

  test('images: the collection of full image schemas', () => {
    assert.deepEqual(schemas.images, {
      name: 'images',
      properties: {
        images: { type: 'array', items: schemas.image },
        first: { type: 'string' },
        next: { type: 'string' },
        schema: { type: 'string' },
      },
      links: [{ rel: 'first', href: '{first}' }, { rel: 'next', href: '{next}' }, { rel: 'describedby', href: '{schema}' }],
    });
  });

  test('member and members: minimal schemas', () => {
    const m = schemas.member;
    assert.deepEqual(Object.keys(m), ['name', 'properties']);
    assert.deepEqual(Object.keys(m.properties).sort(), ['created_at', 'image_id', 'member_id', 'schema', 'status', 'updated_at']);
    assert.deepEqual(m.properties.status.enum, ['pending', 'accepted', 'rejected']);
    assert.equal(m.properties.image_id.pattern, UUID_PATTERN);
    assert.equal(m.properties.schema.readOnly, true);
    assert.deepEqual(schemas.members, {
      name: 'members',
      properties: { members: { type: 'array', items: m }, schema: { type: 'string' } },
      links: [{ rel: 'describedby', href: '{schema}' }],
    });
  });

  test('task and tasks: minimal schemas; the list leaves out input, result, message and progress', () => {
    const t = schemas.task;
    assert.deepEqual(Object.keys(t), ['name', 'properties']);
    assert.deepEqual(Object.keys(t.properties).sort(), ['created_at', 'expires_at', 'id', 'image_id', 'input', 'message', 'owner', 'progress', 'request_id', 'result', 'schema', 'self', 'status', 'type', 'updated_at', 'user_id']);
    assert.equal(t.properties.progress.readOnly, true);
    assert.deepEqual(t.properties.type.enum, ['import', 'api_image_import', 'location_import']);
    assert.deepEqual(t.properties.status.enum, ['pending', 'processing', 'success', 'failure']);
    assert.deepEqual(t.properties.input.type, ['null', 'object']);
    const item = schemas.tasks.properties.tasks.items;
    assert.equal(item.name, 'task');
    assert.deepEqual(Object.keys(item.properties).sort(), Object.keys(t.properties).filter((k) => !['input', 'result', 'message', 'progress'].includes(k)).sort());
    assert.deepEqual(Object.keys(schemas.tasks.properties), ['tasks', 'schema']);
  });

  test('our images validate against our schemas with python-jsonschema, as glanceclient checks them', { skip: !hasJsonschema() && 'python3-jsonschema is not installed' }, async () => {
    const queued = await createImage(s, { name: 'v', tags: ['x'], os_distro: 'debian', kernel_id: '0e0ae8bd-7a35-4d5e-a0e1-1ed2ac7fb1d9', 'owner_specified.openstack.md5': '' });
    const active = await createImage(s, { name: null });
    assert.equal((await uploadBytes(s, active.id, data1k())).status, 204);
    for (const id of [queued.id, active.id]) {
      const shown = await (await s.req('GET', `/v2/images/${id}`)).json();
      assert.equal(jsonschemaValidate(schemas.image, shown), 'valid');
    }
    const page = await (await s.req('GET', '/v2/images?limit=1')).json();
    assert.equal(jsonschemaValidate(schemas.images, page), 'valid');
    assert.match(jsonschemaValidate(schemas.image, { ...queued, size: 'big' }), /^invalid/, 'the validator does check');
  });

  test('schemas need a token, take only GET, and unknown ones are 404', async () => {
    const anon = await s.req('GET', '/v2/schemas/image', { token: null });
    assert.equal(anon.status, 401);
    const post = await s.req('POST', '/v2/schemas/image', { json: {} });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(((await post.json()) as Json).error.code, 405);
    const none = await s.req('GET', '/v2/schemas/nothing');
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as Json).error.code, 404);
  });
});
