/**
 * glance-download between two real Imago instances ("regions"), found
 * through a real Keystone's catalog (test/support/keystone.ts).
 *
 * IMAGO_TEST_SKIP_KEYSTONE=1 skips it on machines without Keystone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.js';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../support/keystone.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { md5, serveFiles, sha512, type FileServer } from './helpers.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';

const skip = process.env.IMAGO_TEST_SKIP_KEYSTONE === '1' ? 'IMAGO_TEST_SKIP_KEYSTONE=1' : keystoneUnavailableReason() ?? false;
type Json = Record<string, any>;

describe('glance-download from another region', { skip }, () => {
  let ks: Keystone;
  let here: TestServer; // RegionOne, imports
  let there: TestServer; // RegionTwo, holds the source image
  let token: string;
  const data = pattern(2 * 1024 * 1024 + 3, 51);

  const call = async (s: TestServer, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
    const h: Record<string, string> = { 'x-auth-token': token, ...headers };
    let b: BodyInit | undefined;
    if (Buffer.isBuffer(body)) b = new Uint8Array(body);
    else if (body !== undefined) {
      h['content-type'] = 'application/json';
      b = JSON.stringify(body);
    }
    return fetch(s.url + p, { method, headers: h, body: b });
  };

  async function keystoneAdmin(method: string, p: string, body: unknown): Promise<Json> {
    const res = await fetch(ks.authUrl + p, { method, headers: { 'x-auth-token': await ks.token('admin'), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as Json;
    assert.ok(res.status < 300, `${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  before(async () => {
    ks = await startKeystone();
    there = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig({ region: 'RegionTwo' }) } } });
    const port = Number(new URL(there.url).port);
    here = await startTestServer({
      config: {
        auth: { mode: 'keystone', keystone: ks.keystoneConfig() },
        // the other region is on loopback here: the operator allows exactly it
        import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [port] }, glanceDownload: { extraProperties: ['hw_', 'os_distro'] } },
      },
    });
    await ks.registerImageEndpoint(here.url);
    await keystoneAdmin('POST', '/regions', { region: { id: 'RegionTwo', description: 'the other region' } });
    const [service] = ((await (await fetch(`${ks.authUrl}/services?type=image`, { headers: { 'x-auth-token': await ks.token('admin') } })).json()) as Json).services;
    for (const iface of ['public', 'internal']) {
      await keystoneAdmin('POST', '/endpoints', { endpoint: { service_id: service.id, interface: iface, url: there.url, region_id: 'RegionTwo', enabled: true } });
    }
    token = await ks.token('demo-member');
  });

  after(async () => {
    await here?.close();
    await there?.close();
    await ks?.stop();
  });

  async function remoteImage(status: 'active' | 'queued'): Promise<string> {
    const res = await call(there, 'POST', '/v2/images', { name: 'source', disk_format: 'raw', container_format: 'bare', hw_disk_bus: 'scsi', os_distro: 'debian', secret_note: 'stays home' });
    assert.equal(res.status, 201);
    const id = ((await res.json()) as Json).id;
    if (status === 'active') assert.equal((await call(there, 'PUT', `/v2/images/${id}/file`, data, { 'content-type': 'application/octet-stream' })).status, 204);
    return id;
  }

  async function importFrom(body: Json): Promise<{ id: string; task: Json; image: Json }> {
    const res = await call(here, 'POST', '/v2/images', { name: 'copy', disk_format: 'qcow2', container_format: 'bare' });
    assert.equal(res.status, 201);
    const id = ((await res.json()) as Json).id;
    const imp = await call(here, 'POST', `/v2/images/${id}/import`, body);
    assert.equal(imp.status, 202, await imp.clone().text());
    const task = await waitFor('the glance-download task to end', async () => {
      const { tasks } = (await (await call(here, 'GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] };
      return tasks[0] && (tasks[0].status === 'success' || tasks[0].status === 'failure') && tasks[0];
    }, 30_000, 50);
    return { id, task, image: (await (await call(here, 'GET', `/v2/images/${id}`)).json()) as Json };
  }

  test('imports the remote image: same bytes, verified; formats and chosen properties copied', async () => {
    const remote = await remoteImage('active');
    const { id, task, image } = await importFrom({ method: { name: 'glance-download', glance_region: 'RegionTwo', glance_image_id: remote } });
    assert.equal(task.status, 'success', task.message);
    assert.equal(task.message, 'Copied 2 MiB');
    assert.equal(task.input.import_req.method.glance_service_interface, 'public');
    assert.equal(image.status, 'active');
    assert.equal(image.disk_format, 'raw');
    assert.equal(image.container_format, 'bare');
    assert.equal(image.size, data.length);
    assert.equal(image.checksum, md5(data));
    assert.equal(image.os_hash_value, sha512(data));
    assert.equal(image.hw_disk_bus, 'scsi');
    assert.equal(image.os_distro, 'debian');
    assert.equal('secret_note' in image, false);
    const dl = await call(here, 'GET', `/v2/images/${id}/file`);
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), data);
    assert.deepEqual(await checkConsistency(here.rt), { missingObjects: [], orphanObjects: [] });
  });

  test('the internal interface can be chosen', async () => {
    const remote = await remoteImage('active');
    const { task } = await importFrom({ method: { name: 'glance-download', glance_region: 'RegionTwo', glance_image_id: remote, glance_service_interface: 'internal' } });
    assert.equal(task.status, 'success', task.message);
  });

  test('failures say why and leave the image queued with its own formats', async () => {
    const queued = await remoteImage('queued');
    const notActive = await importFrom({ method: { name: 'glance-download', glance_region: 'RegionTwo', glance_image_id: queued } });
    assert.equal(notActive.task.status, 'failure');
    assert.match(notActive.task.message, /^Source image status should be active instead of queued\. The image is back in status queued/);
    assert.equal(notActive.image.status, 'queued');
    assert.equal(notActive.image.disk_format, 'qcow2');

    const noRegion = await importFrom({ method: { name: 'glance-download', glance_region: 'RegionNine', glance_image_id: queued } });
    assert.match(noRegion.task.message, /No public image service endpoint in region RegionNine/);

    const missing = await importFrom({ method: { name: 'glance-download', glance_region: 'RegionTwo', glance_image_id: '00000000-0000-4000-8000-000000000000' } });
    assert.match(missing.task.message, /answered HTTP 404/);
    assert.deepEqual(await checkConsistency(here.rt), { missingObjects: [], orphanObjects: [] });
  });

  test('a failure after the metadata was copied puts the image\'s own metadata back', async () => {
    const port = Number(new URL(there.url).port);
    const small = await startTestServer({
      env: { IMAGO_IMAGE_SIZE_CAP: String(1024 * 1024) },
      config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() }, import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [port] } } },
    });
    try {
      const remote = await remoteImage('active');
      const res = await call(small, 'POST', '/v2/images', { name: 'x', disk_format: 'iso', container_format: 'ovf', hw_disk_bus: 'ide' });
      const id = ((await res.json()) as Json).id;
      assert.equal((await call(small, 'POST', `/v2/images/${id}/import`, { method: { name: 'glance-download', glance_region: 'RegionTwo', glance_image_id: remote } })).status, 202);
      const task = await waitFor('the task to end', async () => {
        const t: Json = ((await (await call(small, 'GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] }).tasks[0] ?? {};
        return ['success', 'failure'].includes(t.status) && t;
      }, 20_000, 50);
      assert.equal(task.status, 'failure');
      assert.match(task.message, /image_size_cap/);
      const image = (await (await call(small, 'GET', `/v2/images/${id}`)).json()) as Json;
      assert.equal(image.status, 'queued');
      assert.equal(image.disk_format, 'iso');
      assert.equal(image.container_format, 'ovf');
      assert.equal(image.hw_disk_bus, 'ide');
      assert.equal('os_distro' in image, false);
    } finally {
      await small.close();
    }
  });

  test('the other region must pass the download filter too', async () => {
    const strict = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() } } });
    try {
      const remote = await remoteImage('active');
      const res = await call(strict, 'POST', '/v2/images', { name: 'x', disk_format: 'raw', container_format: 'bare' });
      const id = ((await res.json()) as Json).id;
      assert.equal((await call(strict, 'POST', `/v2/images/${id}/import`, { method: { name: 'glance-download', glance_region: 'RegionTwo', glance_image_id: remote } })).status, 202);
      const task = await waitFor('the task to end', async () => {
        const t: Json = ((await (await call(strict, 'GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] }).tasks[0] ?? {};
        return ['success', 'failure'].includes(t.status) && t;
      }, 20_000, 50);
      assert.equal(task.status, 'failure');
      assert.match(task.message, /does not pass the web-download filter/);
    } finally {
      await strict.close();
    }
  });
});

