import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createImage, startTestServer, uploadBytes, PROJECTS, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { importImage, serveFiles, stage, waitImage, type FileServer } from '../import/helpers.js';
import { busUnavailableReason, notificationConfig, startListener, type Listener, type Received } from './helpers.js';

const skip = await busUnavailableReason();
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** The fields of Glance's format_image_notification, exactly. */
const IMAGE_FIELDS = ['checksum', 'container_format', 'created_at', 'deleted', 'deleted_at', 'disk_format', 'id', 'is_public', 'min_disk', 'min_ram', 'name', 'owner', 'properties', 'protected', 'size', 'status', 'tags', 'updated_at', 'virtual_size', 'visibility'];
const ISO_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

function assertImagePayload(e: Received, want: Record<string, unknown>, extraKeys: string[] = []): void {
  assert.deepEqual(Object.keys(e.payload).sort(), [...IMAGE_FIELDS, ...extraKeys].sort(), `${e.event_type} payload keys`);
  for (const [k, v] of Object.entries(want)) assert.deepEqual(e.payload[k], v, `${e.event_type} payload.${k}`);
  assert.match(e.payload.created_at, ISO_SECONDS);
  assert.match(e.payload.updated_at, ISO_SECONDS);
}

describe('notifications on the message bus, received by an oslo.messaging listener', { skip, timeout: 120_000 }, () => {
  let s: TestServer;
  let l: Listener;

  before(async () => {
    l = await startListener();
    s = await startTestServer({ config: notificationConfig(l) });
  });
  after(async () => {
    await s?.close();
    await l?.stop();
  });

  test('create → upload → update → share → download → deactivate → delete: every event in order with Glance\'s payloads', async () => {
    const start = l.events.length;
    const data = pattern(300_000, 7);
    const img = await createImage(s, { name: 'notified', visibility: 'shared', os_distro: 'debian', tags: ['t1'] }, 'member');
    assert.equal((await uploadBytes(s, img.id, data, 'member')).status, 204);
    assert.equal((await s.req('PATCH', `/v2/images/${img.id}`, { token: 'member', headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, json: [{ op: 'add', path: '/hw_disk_bus', value: 'scsi' }] })).status, 200);
    assert.equal((await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: PROJECTS.other } })).status, 200);
    assert.equal((await s.req('PUT', `/v2/images/${img.id}/members/${PROJECTS.other}`, { token: 'other', json: { status: 'accepted' } })).status, 200);
    const dl = await s.req('GET', `/v2/images/${img.id}/file`, { token: 'other' });
    assert.equal(dl.status, 200);
    assert.ok(Buffer.from(await dl.arrayBuffer()).equals(data));
    assert.equal((await s.req('POST', `/v2/images/${img.id}/actions/deactivate`, { token: 'member' })).status, 204);
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}/members/${PROJECTS.other}`, { token: 'member' })).status, 204);
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'member' })).status, 204);

    const expected = ['image.create', 'image.prepare', 'image.upload', 'image.activate', 'image.update', 'image.member.create', 'image.member.update', 'image.send', 'image.update', 'image.member.delete', 'image.delete'];
    const got = (await l.waitForCount(start + expected.length)).slice(start);
    assert.deepEqual(got.map((e) => e.event_type), expected);
    for (const e of got) {
      assert.equal(e.publisher_id, 'image.imago-test');
      assert.equal(e.priority, 'INFO');
      assert.match(e.message_id, /^[0-9a-f-]{36}$/);
      assert.match(e.timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    }
    assert.equal(new Set(got.map((e) => e.message_id)).size, got.length, 'every event has its own message_id');
    const [create, prepare, upload, activate, update, mCreate, mUpdate, send, deactivate, mDelete, del] = got;
    const base = { id: img.id, name: 'notified', owner: PROJECTS.member, disk_format: 'raw', container_format: 'bare', visibility: 'shared', is_public: false, protected: false, min_disk: 0, min_ram: 0, deleted: false, deleted_at: null };
    assertImagePayload(create, { ...base, status: 'queued', size: null, checksum: null, virtual_size: null, tags: ['t1'], properties: { os_distro: 'debian' } });
    assertImagePayload(prepare, { ...base, status: 'saving', size: null, backend: 'local', os_glance_importing_to_stores: [], os_glance_failed_import: [] }, ['backend', 'os_glance_importing_to_stores', 'os_glance_failed_import']);
    assertImagePayload(upload, { ...base, status: 'active', size: data.length, checksum: md5(data), virtual_size: data.length, backend: 'local' }, ['backend', 'os_glance_importing_to_stores', 'os_glance_failed_import']);
    assertImagePayload(activate, { ...base, status: 'active', size: data.length, checksum: md5(data) });
    assertImagePayload(update, { ...base, status: 'active', properties: { os_distro: 'debian', hw_disk_bus: 'scsi' }, tags: ['t1'] });
    const member = { image_id: img.id, member_id: PROJECTS.other, deleted: false, deleted_at: null };
    assert.deepEqual(Object.keys(mCreate.payload).sort(), ['created_at', 'deleted', 'deleted_at', 'image_id', 'member_id', 'status', 'updated_at']);
    assert.deepEqual({ ...mCreate.payload, created_at: undefined, updated_at: undefined }, { ...member, status: 'pending', created_at: undefined, updated_at: undefined });
    assert.equal(mUpdate.payload.status, 'accepted');
    assert.deepEqual(send.payload, { bytes_sent: data.length, image_id: img.id, owner_id: PROJECTS.member, receiver_tenant_id: PROJECTS.other, receiver_user_id: 'other-user' });
    assertImagePayload(deactivate, { ...base, status: 'deactivated' });
    assert.equal(mDelete.payload.deleted, true);
    assert.match(mDelete.payload.deleted_at, ISO_SECONDS);
    assertImagePayload(del, { ...base, status: 'deleted', deleted: true, deleted_at: del.payload.deleted_at });
    assert.match(del.payload.deleted_at, ISO_SECONDS);
  });

  test('an import: task.create, task.run, task.processing, image.prepare, image.upload, image.activate, task.success', async () => {
    const start = l.events.length;
    const data = pattern(200_000, 9);
    const img = await createImage(s, { name: 'imported' }, 'member');
    assert.equal((await stage(s, img.id, data, 'member')).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token: 'member' })).status, 202);
    await waitImage(s, img.id, (i) => i.status === 'active');
    const expected = ['image.create', 'task.create', 'task.run', 'task.processing', 'image.prepare', 'image.upload', 'image.activate', 'task.success'];
    const got = (await l.waitForCount(start + expected.length)).slice(start);
    assert.deepEqual(got.map((e) => e.event_type), expected);
    const tasks = got.filter((e) => e.event_type.startsWith('task.'));
    for (const t of tasks) {
      assert.deepEqual(Object.keys(t.payload).sort(), ['created_at', 'deleted', 'deleted_at', 'expires_at', 'id', 'message', 'owner', 'result', 'status', 'type', 'updated_at']);
      assert.equal(t.payload.type, 'api_image_import');
      assert.equal(t.payload.owner, PROJECTS.member);
      assert.equal(t.payload.id, tasks[0].payload.id);
      assert.equal(t.payload.result, null, 'as Glance: no result in the payload');
    }
    assert.deepEqual(tasks.map((t) => t.payload.status), ['pending', 'processing', 'processing', 'success']);
    const upload = got[5];
    assert.equal(upload.payload.backend, 'local');
    assert.equal(upload.payload.size, data.length);
    assert.equal(upload.payload.checksum, md5(data));
    assert.equal(got[6].payload.status, 'active');
  });

  test('a failed upload: image.upload at ERROR priority with the reason, and no image.activate', async () => {
    const start = l.events.length;
    const img = await createImage(s, {}, 'member');
    const res = await s.req('PUT', `/v2/images/${img.id}/file`, { token: 'member', headers: { 'content-type': 'application/octet-stream', 'x-openstack-image-size': '10' }, body: pattern(20) });
    assert.equal(res.status, 400);
    const got = (await l.waitForCount(start + 3)).slice(start);
    assert.deepEqual(got.map((e) => `${e.event_type}/${e.priority}`), ['image.create/INFO', 'image.prepare/INFO', 'image.upload/ERROR']);
    assert.equal(typeof got[2].payload, 'string');
    assert.match(got[2].payload, new RegExp(`${img.id}.*x-openstack-image-size`));
    // nothing else follows for this image
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'member' })).status, 204);
    const after = (await l.waitForCount(start + 4)).slice(start + 3);
    assert.deepEqual(after.map((e) => e.event_type), ['image.delete']);
  });

  test('a refused change commits nothing and emits nothing', async () => {
    const img = await createImage(s, {}, 'member');
    await l.waitForCount(l.events.length); // settle
    await waitFor('image.create of the image', () => l.events.some((e) => e.event_type === 'image.create' && e.payload.id === img.id));
    const before = l.events.length;
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'other' })).status, 404);
    assert.equal((await s.req('PATCH', `/v2/images/${img.id}`, { token: 'reader', headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, json: [{ op: 'add', path: '/x', value: 'y' }] })).status, 403);
    // a change after them is the next event: the refusals sent none
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`, { token: 'member' })).status, 204);
    const next = (await l.waitForCount(before + 1)).slice(before);
    assert.deepEqual(next.map((e) => `${e.event_type} ${e.payload.id}`), [`image.delete ${img.id}`]);
  });

  test('metadefs: namespace, object, property, tag and resource type events with Glance\'s payload fields', async () => {
    const start = l.events.length;
    const ns = `IMAGO::Notify::${Date.now()}`;
    const base = `/v2/metadefs/namespaces/${encodeURIComponent(ns)}`;
    assert.equal((await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: ns, display_name: 'Notify', visibility: 'public' } })).status, 201);
    assert.equal((await s.req('POST', `${base}/objects`, { json: { name: 'obj', properties: { speed: { type: 'integer', title: 'Speed' } }, required: ['speed'] } })).status, 201);
    assert.equal((await s.req('POST', `${base}/properties`, { json: { name: 'colour', type: 'string', title: 'Colour' } })).status, 201);
    assert.equal((await s.req('POST', `${base}/tags/blue`)).status, 201);
    assert.equal((await s.req('PUT', `${base}/tags/blue`, { json: { name: 'green' } })).status, 200);
    assert.equal((await s.req('POST', `${base}/resource_types`, { json: { name: 'OS::Glance::Image', prefix: 'x_' } })).status, 201);
    assert.equal((await s.req('DELETE', `${base}/resource_types/OS::Glance::Image`)).status, 204);
    assert.equal((await s.req('DELETE', base)).status, 204);
    const expected = ['metadef_namespace.create', 'metadef_object.create', 'metadef_property.create', 'metadef_tag.create', 'metadef_tag.update', 'metadef_resource_type.create', 'metadef_resource_type.delete', 'metadef_namespace.delete'];
    const got = (await l.waitForCount(start + expected.length)).slice(start);
    assert.deepEqual(got.map((e) => e.event_type), expected);
    const [nsCreate, obj, prop, tag, tagUpdate, rtCreate, rtDelete, nsDelete] = got;
    assert.deepEqual(Object.keys(nsCreate.payload).sort(), ['created_at', 'deleted', 'deleted_at', 'description', 'display_name', 'namespace', 'namespace_old', 'owner', 'protected', 'updated_at', 'visibility']);
    assert.equal(nsCreate.payload.display_name, 'Notify');
    assert.equal(obj.payload.namespace, ns);
    assert.deepEqual(obj.payload.required, ['speed']);
    assert.equal(obj.payload.properties[0].name, 'speed');
    assert.equal(obj.payload.properties[0].type, 'integer');
    assert.equal(obj.payload.properties[0].pattern, null);
    assert.equal(prop.payload.name, 'colour');
    assert.equal(prop.payload.title, 'Colour');
    assert.equal(tag.payload.name, 'blue');
    assert.deepEqual([tagUpdate.payload.name, tagUpdate.payload.name_old], ['green', 'blue']);
    assert.deepEqual([rtCreate.payload.name, rtCreate.payload.prefix], ['OS::Glance::Image', 'x_']);
    assert.equal(rtDelete.payload.deleted, true);
    assert.equal(nsDelete.payload.deleted, true);
  });
});

describe('notifications of a location added through the 2.17 API (a location_import task)', { skip, timeout: 120_000 }, () => {
  let s: TestServer;
  let l: Listener;
  let web: FileServer;
  const disk = pattern(100_000, 61);

  before(async () => {
    web = await serveFiles({ '/images/disk.raw': (_req, res) => res.writeHead(200, { 'content-length': String(disk.length) }).end(disk) });
    l = await startListener();
    s = await startTestServer({
      config: {
        ...notificationConfig(l),
        stores: [
          { id: 'local', type: 'filesystem', path: 'images', description: 'default' },
          { id: 'web', type: 'http', description: 'a web mirror', http: { allowedPrefixes: [`${web.url}/images/`] } },
        ],
      },
    });
  });
  after(async () => {
    await s?.close();
    await l?.stop();
    await web?.close();
  });

  test('task.create, task.run, task.processing, image.prepare, image.upload, image.activate, task.success', async () => {
    const img = await createImage(s, {}, 'member');
    assert.equal((await s.req('POST', `/v2/images/${img.id}/locations`, { token: 'member', json: { url: `${web.url}/images/disk.raw` } })).status, 202);
    await waitImage(s, img.id, (i) => i.status === 'active');
    const expected = ['image.create', 'task.create', 'task.run', 'task.processing', 'image.prepare', 'image.upload', 'image.activate', 'task.success'];
    const got = await l.waitForCount(expected.length);
    assert.deepEqual(got.map((e) => e.event_type), expected);
    assert.equal(got[1].payload.type, 'location_import');
    assert.equal(got[5].payload.backend, 'web');
    assert.equal(got[5].payload.checksum, md5(disk));
  });
});
