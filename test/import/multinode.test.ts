import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';
import { inspectDataDir, spawnImago, type ChildImago } from '../recovery/child.js';
import { serveFiles, sha512 } from './helpers.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;
type Json = Record<string, any>;

async function call(s: ChildImago, method: string, p: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { 'x-auth-token': TOKENS.admin };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(s.url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/**
 * Two Imago processes on one PostgreSQL database with shared stores and
 * staging: when the node running an import is killed, the other takes the
 * task over once the dead node's heartbeat is older than
 * IMAGO_NODE_TIMEOUT_SECONDS, without any restart, and finishes it.
 */
describe('imports on a shared database', { timeout: 180_000 }, async () => {
  const available = await postgresAvailable();

  test('kill -9 of the node running a web-download: another node resumes and finishes it', async (t) => {
    if (!available) return t.skip('no PostgreSQL server (IMAGO_TEST_PG_URL)');
    const data = pattern(5 * MiB, 71);
    let hold = true;
    const waiting: (() => void)[] = [];
    const web = await serveFiles({
      '/disk.raw': (_q, res) => {
        res.writeHead(200, { 'content-length': String(data.length) });
        res.on('error', () => {});
        res.write(data.subarray(0, 2 * MiB));
        const rest = () => res.end(data.subarray(2 * MiB));
        if (hold) waiting.push(rest);
        else rest();
      },
    });
    const db = await createTestDatabase();
    const shared = makeDataDir();
    const dirs = [makeDataDir(), makeDataDir()];
    mkdirSync(path.join(shared, 'images'), { recursive: true });
    const config = {
      database: { url: db.url },
      stores: [{ id: 'local', type: 'filesystem', path: path.join(shared, 'images'), description: 'shared' }],
      staging: { id: 'os_glance_staging_store', type: 'filesystem', path: path.join(shared, 'staging'), description: 'shared staging' },
      import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } },
    };
    const env = { IMAGO_NODE_TIMEOUT_SECONDS: '2' };
    let a: ChildImago | undefined;
    let b: ChildImago | undefined;
    try {
      a = await spawnImago(dirs[0], { config, env });
      const created = await call(a, 'POST', '/v2/images', { disk_format: 'raw', container_format: 'bare' });
      const id = ((await created.json()) as Json).id;
      // B starts only now, so the task is A's
      assert.equal((await call(a, 'POST', `/v2/images/${id}/import`, { method: { name: 'web-download', uri: `${web.url}/disk.raw` } })).status, 202);
      await waitFor('A to start downloading', () => waiting.length > 0, 20_000);
      assert.equal(waiting.length, 1, 'A started downloading');
      b = await spawnImago(dirs[1], { config, env });
      await a.kill9();
      for (const w of waiting.splice(0)) w();
      hold = false;

      const task = await waitFor('the task to end on B', async () => {
        const t: Json = ((await (await call(b!, 'GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] }).tasks[0] ?? {};
        return (t.status === 'success' || t.status === 'failure') && t;
      }, 60_000, 100);
      assert.equal(task.status, 'success', task.message);
      assert.equal(task.message, 'Copied 5 MiB (resumed after an interruption)');
      // B's log says it took the task over from the dead node A (docs/operations.md, task events)
      const events = b.logs.flatMap((l) => { try { const e = JSON.parse(l); return e.image === id && e.task ? [e] : []; } catch { return []; } });
      const takeover = events.find((e) => e.msg === 'import task of a node that stopped is taken over; it resumes');
      assert.ok(takeover, b.logs.join('\n'));
      assert.equal(typeof takeover.deadNode, 'string');
      assert.ok(events.some((e) => e.msg === 'import task succeeded'));
      const img = (await (await call(b, 'GET', `/v2/images/${id}`)).json()) as Json;
      assert.equal(img.status, 'active');
      assert.equal(img.os_hash_value, sha512(data));
      assert.equal('os_glance_import_task' in img, false);
      const { code } = await b.terminate();
      assert.equal(code, 0);
      b = undefined;
      const { rt, report } = await inspectDataDir(dirs[1], config);
      try {
        assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
      } finally {
        await rt.close();
      }
    } finally {
      for (const w of waiting.splice(0)) w();
      if (a) await a.kill9().catch(() => {});
      if (b) await b.kill9().catch(() => {});
      await web.close();
      await db.drop();
      for (const d of [shared, ...dirs]) rmSync(d, { recursive: true, force: true });
    }
  });
});
