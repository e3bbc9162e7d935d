/**
 * Behaviours tempest relies on that need Keystone, found while running it
 * against Imago (docs/tempest.md). Real Keystone (test/support/keystone.ts),
 * Imago in keystone mode with its endpoint in the catalog.
 *
 *   npx tsx --test test/tempest/keystone-mode.test.ts
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../support/keystone.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const skip = process.env.IMAGO_TEST_SKIP_KEYSTONE === '1' ? 'IMAGO_TEST_SKIP_KEYSTONE=1' : keystoneUnavailableReason() ?? false;

// glance_tempest_plugin RBAC tests (`[enforce_scope] glance = true`): every
// Glance rule is project-scoped, so a system- or domain-scoped token, even an
// admin's, may do nothing with images: create and list answer 403, anything
// on one image 404 (as for an image it cannot see).
describe('keystone mode, as tempest uses it', { skip }, () => {
  let ks: Keystone;
  let s: TestServer;
  let project: string;
  let system: string;
  let domain: string;

  before(async () => {
    ks = await startKeystone();
    s = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() } } });
    await ks.registerImageEndpoint(s.url);
    [project, system, domain] = await Promise.all([ks.token('admin'), ks.systemToken('admin'), ks.domainToken('admin')]);
  });
  after(async () => {
    await s?.close();
    await ks?.stop();
  });

  const call = (token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    let payload: BodyInit | undefined;
    if (typeof body === 'string') payload = body;
    else if (Buffer.isBuffer(body)) payload = new Blob([new Uint8Array(body)]);
    else if (body !== undefined) payload = JSON.stringify(body);
    return fetch(s.url + path, {
      method,
      headers: { 'x-auth-token': token, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: payload,
    });
  };

  async function expectError(res: Response, status: number): Promise<void> {
    assert.equal(res.status, status);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, status);
    assert.ok(body.error.message.length > 0);
  }

  test('a project-scoped admin works as usual', async () => {
    const res = await call(project, 'POST', '/v2/images', { name: 'scoped', disk_format: 'raw', container_format: 'bare' });
    assert.equal(res.status, 201);
    const image = (await res.json()) as { id: string };
    assert.equal((await call(project, 'GET', `/v2/images/${image.id}`)).status, 200);
    assert.equal((await call(project, 'DELETE', `/v2/images/${image.id}`)).status, 204);
  });

  for (const [name, token] of [['system', () => system], ['domain', () => domain]] as const) {
    test(`a ${name}-scoped admin token can neither create, list nor touch images`, async () => {
      const created = await call(project, 'POST', '/v2/images', { name: `target-${name}`, disk_format: 'raw', container_format: 'bare', visibility: 'public' });
      assert.equal(created.status, 201);
      const { id } = (await created.json()) as { id: string };
      try {
        await expectError(await call(token(), 'POST', '/v2/images', { name: 'x', disk_format: 'raw', container_format: 'bare' }), 403);
        await expectError(await call(token(), 'GET', '/v2/images'), 403);
        await expectError(await call(token(), 'GET', `/v2/images/${id}`), 404);
        await expectError(await call(token(), 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'replace', path: '/name', value: 'y' }]), { 'content-type': 'application/openstack-images-v2.1-json-patch' }), 404);
        await expectError(await call(token(), 'PUT', `/v2/images/${id}/file`, Buffer.alloc(16), { 'content-type': 'application/octet-stream' }), 404);
        await expectError(await call(token(), 'POST', `/v2/images/${id}/actions/deactivate`), 404);
        await expectError(await call(token(), 'DELETE', `/v2/images/${id}`), 404);
        const still = await call(project, 'GET', `/v2/images/${id}`);
        assert.equal(still.status, 200);
        const image = (await still.json()) as { status: string; name: string };
        assert.equal(image.status, 'queued');
        assert.equal(image.name, `target-${name}`);
      } finally {
        await call(project, 'DELETE', `/v2/images/${id}`);
      }
    });
  }

  // tempest ImportImagesTest.test_image_glance_download_import_bad_endpoint / _bad_missing_image
  async function failedGlanceDownload(method: Record<string, string>): Promise<void> {
    const created = await call(project, 'POST', '/v2/images', { name: 'gd', disk_format: 'raw', container_format: 'bare', hw_cpu_cores: '1' });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as { id: string };
    try {
      const res = await call(project, 'POST', `/v2/images/${id}/import`, { method: { name: 'glance-download', ...method } });
      assert.equal(res.status, 202, await res.text());
      type Task = { status: string; message: string };
      const tasks = await waitFor('the import task to end', async () => {
        const ts = ((await (await call(project, 'GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Task[] }).tasks;
        return ts.length > 0 && ['success', 'failure'].includes(ts[0].status) && ts;
      }, 15_000, 100);
      assert.equal(tasks.length, 1);
      assert.equal(tasks[0].status, 'failure');
      assert.ok(tasks[0].message.length > 0);
      const image = (await (await call(project, 'GET', `/v2/images/${id}`)).json()) as Record<string, unknown>;
      assert.equal(image.status, 'queued');
      assert.equal(image.hw_cpu_cores, '1');
    } finally {
      await call(project, 'DELETE', `/v2/images/${id}`);
    }
  }

  test('glance-download from a region or interface the catalog lacks: 202, then the task fails and the image is queued again', async () => {
    await failedGlanceDownload({ glance_image_id: '36d4b546-64a2-4bb9-bdd0-ba676aa48f2c', glance_region: 'not a region', glance_service_interface: 'not an interface' });
  });

  test('glance-download of an image the remote region does not have: the task fails', async () => {
    await failedGlanceDownload({ glance_image_id: '36d4b546-64a2-4bb9-bdd0-ba676aa48f2c', glance_region: 'RegionOne', glance_service_interface: 'public' });
  });

  test('glance-download with an image id that is no UUID: 400 at once', async () => {
    const created = await call(project, 'POST', '/v2/images', { name: 'gd', disk_format: 'raw', container_format: 'bare' });
    const { id } = (await created.json()) as { id: string };
    try {
      const res = await call(project, 'POST', `/v2/images/${id}/import`, { method: { name: 'glance-download', glance_image_id: 'foo', glance_region: 'RegionOne', glance_service_interface: 'public' } });
      await expectError(res, 400);
    } finally {
      await call(project, 'DELETE', `/v2/images/${id}`);
    }
  });
});
