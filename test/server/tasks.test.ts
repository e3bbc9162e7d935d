import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, createImage, type TestServer } from '../support/server.js';
import { errorOf, importImage, stage, waitTasks } from '../import/helpers.js';
import { pattern } from '../support/bytes.js';

describe('tasks API', () => {
  let s: TestServer;
  const ids: string[] = [];
  let imageId = '';
  before(async () => {
    s = await startTestServer();
    for (let i = 0; i < 3; i++) {
      const img = await createImage(s, { name: `t${i}` }, 'member');
      assert.equal((await stage(s, img.id, pattern(100 + i), 'member')).status, 204);
      assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token: 'member' })).status, 202);
      const [task] = await waitTasks(s, img.id);
      ids.push(task.id);
      imageId = img.id;
    }
  });
  after(() => s.close());

  test('GET /v2/tasks/{id}: Glance\'s task shape', async () => {
    const res = await s.req('GET', `/v2/tasks/${ids[0]}`);
    assert.equal(res.status, 200);
    const t = (await res.json()) as Record<string, any>;
    assert.deepEqual(Object.keys(t).sort(), ['created_at', 'expires_at', 'id', 'image_id', 'input', 'message', 'owner', 'progress', 'request_id', 'result', 'schema', 'self', 'status', 'type', 'updated_at', 'user_id']);
    assert.equal(t.id, ids[0]);
    assert.equal(t.type, 'api_image_import');
    assert.equal(t.status, 'success');
    assert.equal(t.self, `/v2/tasks/${ids[0]}`);
    assert.equal(t.schema, '/v2/schemas/task');
    assert.match(t.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(t.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const hours = (Date.parse(t.expires_at) - Date.parse(t.updated_at)) / 3600_000;
    assert.ok(Math.abs(hours - 48) < 0.01, `expires 48 h after it ended, got ${hours}`);
    assert.equal(t.message, 'Copied 0 MiB');
    // Imago's extension: every byte of the 100-byte staged image moved
    assert.deepEqual(t.progress, { bytes_done: 100, bytes_expected: 100 });
    assert.deepEqual(t.result, { image_id: t.image_id });
  });

  test('a task whose node stopped says so, with its last progress, until another node takes it over', async () => {
    const img = await createImage(s);
    const id = '21111111-2222-4333-8444-555555555555';
    const ts = new Date(Date.now() - 60_000).toISOString();
    // the row a node leaves behind when it dies mid-import (on SQLite only a restart recovers it)
    await s.rt.db.insertInto('tasks').values({
      id, type: 'api_image_import', status: 'processing', owner: 'admin', user_id: null, request_id: null, image_id: img.id,
      input: JSON.stringify({ image_id: img.id, import_req: { method: { name: 'web-download', uri: 'http://x/' } }, backend: ['local'] }),
      result: null, message: 'Copied 120 MiB of 2048 MiB (5 %)', expires_at: null, created_at: ts, updated_at: ts,
      runner_node: 'node-that-died', heartbeat_at: ts, attempts: 1, state: null, bytes_done: 120 * 2 ** 20, bytes_expected: 2048 * 2 ** 20,
    }).execute();
    try {
      const t = (await (await s.req('GET', `/v2/tasks/${id}`)).json()) as Record<string, any>;
      assert.equal(t.status, 'processing');
      assert.equal(t.message, 'Copied 120 MiB of 2048 MiB (5 %). The node running this import (node-that-died) stopped responding; another node will take the task over and go on.');
      assert.deepEqual(t.progress, { bytes_done: 120 * 2 ** 20, bytes_expected: 2048 * 2 ** 20 });
      const [listed] = ((await (await s.req('GET', `/v2/images/${img.id}/tasks`)).json()) as { tasks: Record<string, any>[] }).tasks;
      assert.equal(listed.message, t.message);
      // a task this node runs is not flagged
      await s.rt.db.updateTable('tasks').set({ runner_node: s.rt.nodeId }).where('id', '=', id).execute();
      assert.equal(((await (await s.req('GET', `/v2/tasks/${id}`)).json()) as Record<string, any>).message, 'Copied 120 MiB of 2048 MiB (5 %)');
    } finally {
      await s.rt.db.deleteFrom('tasks').where('id', '=', id).execute();
    }
  });

  test('GET /v2/images/{id}/tasks: database-row shape, for whoever sees the image', async () => {
    const res = await s.req('GET', `/v2/images/${imageId}/tasks`, { token: 'reader' });
    assert.equal(res.status, 200);
    const { tasks } = (await res.json()) as { tasks: Record<string, any>[] };
    assert.equal(tasks.length, 1);
    assert.deepEqual(Object.keys(tasks[0]).sort(), ['created_at', 'deleted', 'deleted_at', 'expires_at', 'id', 'image_id', 'input', 'message', 'owner', 'progress', 'request_id', 'result', 'status', 'type', 'updated_at', 'user_id']);
    assert.match(tasks[0].created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000$/);
    assert.equal(tasks[0].deleted, false);
    assert.equal(tasks[0].deleted_at, null);
    assert.equal((await s.req('GET', `/v2/images/${imageId}/tasks`, { token: 'other' })).status, 404);
    assert.equal((await s.req('GET', '/v2/images/00000000-0000-0000-0000-000000000000/tasks')).status, 404);
    const fresh = await createImage(s);
    assert.deepEqual(await (await s.req('GET', `/v2/images/${fresh.id}/tasks`)).json(), { tasks: [] });
  });

  test('GET /v2/tasks: admins list, filter, sort and page', async () => {
    const res = await s.req('GET', '/v2/tasks');
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, any>;
    assert.equal(body.first, '/v2/tasks');
    assert.equal(body.schema, '/v2/schemas/tasks');
    assert.deepEqual(body.tasks.map((t: any) => t.id), [...ids].reverse());
    assert.deepEqual(Object.keys(body.tasks[0]).sort(), ['created_at', 'expires_at', 'id', 'owner', 'schema', 'self', 'status', 'type', 'updated_at']);

    const page1 = (await (await s.req('GET', '/v2/tasks?limit=2&sort_dir=asc')).json()) as Record<string, any>;
    assert.deepEqual(page1.tasks.map((t: any) => t.id), ids.slice(0, 2));
    assert.equal(page1.next, `/v2/tasks?limit=2&sort_dir=asc&marker=${ids[1]}`);
    const page2 = (await (await s.req('GET', page1.next)).json()) as Record<string, any>;
    assert.deepEqual(page2.tasks.map((t: any) => t.id), ids.slice(2));
    assert.equal(page2.next, undefined);

    assert.equal(((await (await s.req('GET', '/v2/tasks?status=failure')).json()) as any).tasks.length, 0);
    assert.equal(((await (await s.req('GET', '/v2/tasks?status=success&type=api_image_import')).json()) as any).tasks.length, 3);
    for (const q of ['status=done', 'type=nope', 'sort_dir=up', 'sort_key=owner', 'limit=x', 'limit=-1', 'marker=nope', 'marker=00000000-0000-0000-0000-000000000000']) {
      const bad = await s.req('GET', `/v2/tasks?${q}`);
      assert.equal(bad.status, 400, q);
      await errorOf(bad);
    }
  });

  test('the tasks API is for admins; unknown tasks are 404; tasks are not deleted by hand', async () => {
    for (const token of ['member', 'reader', 'other'] as const) {
      assert.equal((await s.req('GET', '/v2/tasks', { token })).status, 403);
      assert.equal((await s.req('GET', `/v2/tasks/${ids[0]}`, { token })).status, 403);
    }
    assert.equal((await s.req('GET', '/v2/tasks', { token: null })).status, 401);
    const missing = await s.req('GET', '/v2/tasks/00000000-0000-0000-0000-000000000000');
    assert.equal(missing.status, 404);
    await errorOf(missing);
    assert.equal((await s.req('GET', '/v2/tasks/not-a-uuid')).status, 404);
    const del = await s.req('DELETE', `/v2/tasks/${ids[0]}`);
    assert.equal(del.status, 405);
    assert.equal(del.headers.get('allow'), 'GET, HEAD');
  });

  test('POST /v2/tasks (the deprecated task-creation API, docs/import.md) is 405 with Allow, even for admins', async () => {
    // What glanceclient's task-create and openstacksdk with image_api_use_tasks send.
    const res = await s.req('POST', '/v2/tasks', { json: { type: 'import', input: { import_from: 'swift://c/o', import_from_format: 'raw', image_properties: { name: 'x' } } } });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assert.equal((await errorOf(res)).code, 405);
  });

  test('expired tasks disappear', async () => {
    const img = await createImage(s);
    assert.equal((await stage(s, img.id, pattern(10))).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
    const [task] = await waitTasks(s, img.id);
    await s.rt.db.updateTable('tasks').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('id', '=', task.id).execute();
    assert.equal((await s.req('GET', `/v2/tasks/${task.id}`)).status, 404);
    assert.deepEqual(await (await s.req('GET', `/v2/images/${img.id}/tasks`)).json(), { tasks: [] });
    assert.equal(await s.rt.tasks.repo.deleteExpired(), 1);
  });
});
