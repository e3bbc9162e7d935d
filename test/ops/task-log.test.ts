import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKENS } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { startLoggedServer } from './helpers.js';

type Server = Awaited<ReturnType<typeof startLoggedServer>>;

describe('task event log lines and task metrics', () => {
  let s: Server;
  before(async () => {
    s = await startLoggedServer({ metrics: { enabled: true, port: 0 } });
  });
  after(() => s.close());

  const call = (method: string, path: string, body?: unknown, type = 'application/json') =>
    fetch(s.url + path, {
      method,
      headers: { 'x-auth-token': TOKENS.admin, 'content-type': type },
      body: body === undefined ? undefined : Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body),
    });

  /** Creates an image, stages `data` and imports it with glance-direct; resolves with the image id once the task ended. */
  async function importStaged(diskFormat: string, data: Buffer): Promise<string> {
    const created = await call('POST', '/v2/images', { disk_format: diskFormat, container_format: 'bare' });
    const { id } = (await created.json()) as { id: string };
    assert.equal((await call('PUT', `/v2/images/${id}/stage`, data, 'application/octet-stream')).status, 204);
    assert.equal((await call('POST', `/v2/images/${id}/import`, { method: { name: 'glance-direct' } })).status, 202);
    await waitFor('the import task to end', async () => {
      const tasks = ((await (await call('GET', `/v2/images/${id}/tasks`)).json()) as { tasks: { status: string }[] }).tasks;
      return tasks.length > 0 && tasks.every((t) => t.status === 'success' || t.status === 'failure');
    }, 20_000);
    return id;
  }

  const linesFor = (image: string) => s.logs.json().filter((l) => l.image === image && l.task);

  test('an import logs its start and its success; the task counter and duration moved', async () => {
    const id = await importStaged('raw', pattern(300 * 1024));
    const lines = await waitFor('the success line', () => {
      const l = linesFor(id);
      return l.some((x) => x.msg === 'import task succeeded') && l;
    });
    const started = lines.find((l) => l.msg === 'import task started')!;
    assert.equal(started.method, 'glance-direct');
    assert.deepEqual(started.stores, ['local']);
    const done = lines.find((l) => l.msg === 'import task succeeded')!;
    assert.equal(typeof done.durationMs, 'number');
    assert.equal(done.level, 30);

    const text = await (await fetch(`${s.metricsUrl}/metrics`)).text();
    assert.match(text, /^imago_import_tasks_total\{method="glance-direct",outcome="success"\} 1$/m);
    assert.match(text, /^imago_import_task_duration_seconds_count\{method="glance-direct",outcome="success"\} 1$/m);
  });

  test('a failed import logs the reason', async () => {
    // raw bytes declared qcow2: format inspection refuses them
    const id = await importStaged('qcow2', pattern(64 * 1024));
    const failed = await waitFor('the failure line', () => linesFor(id).find((l) => l.msg === 'import task failed'));
    assert.equal(failed.level, 40);
    assert.equal(failed.method, 'glance-direct');
    assert.match(failed.reason, /qcow2/i);
    const text = await (await fetch(`${s.metricsUrl}/metrics`)).text();
    assert.match(text, /^imago_import_tasks_total\{method="glance-direct",outcome="failure"\} 1$/m);
  });
});
