import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { request } from 'node:http';
import { TOKENS, makeDataDir } from '../support/server.js';
import { inspectDataDir, spawnImago, type ChildImago } from '../recovery/child.js';
import { serveFiles, sha512, type FileServer } from './helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';

/**
 * kill -9 of a real Imago process at several points of stage and import,
 * then a restart on the same data: the image never stays uploading or
 * importing, the import lock is released, staged and partial data are gone
 * (or the import resumes and finishes), the task says what happened, and
 * the consistency check finds nothing.
 */

const MiB = 1024 * 1024;
type Json = Record<string, any>;

function client(child: ChildImago) {
  return async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> => {
    const h: Record<string, string> = { 'x-auth-token': TOKENS.admin, ...headers };
    let b: BodyInit | undefined;
    if (body !== undefined && !(body instanceof Buffer)) {
      h['content-type'] = 'application/json';
      b = JSON.stringify(body);
    } else if (body instanceof Buffer) {
      b = body;
    }
    return fetch(child.url + p, { method, headers: h, body: b });
  };
}

/** A child process on a busy machine: waits are long. */
const WAIT_MS = 30_000;

/**
 * The task events once `last` is among them: the task's row can say success a moment before the
 * process's log line reaches the test through its stdout pipe.
 */
async function taskEventsThrough(child: ChildImago, id: string, last: string): Promise<string[]> {
  for (let i = 0; i < 100 && !taskEvents(child, id).includes(last); i++) await new Promise((r) => setTimeout(r, 50));
  return taskEvents(child, id);
}

/** The task event lines (messages) a process logged for image `id`, in order. */
function taskEvents(child: ChildImago, id: string): string[] {
  return child.logs.flatMap((line) => {
    try {
      const entry = JSON.parse(line);
      return entry.image === id && entry.task && !String(entry.msg).startsWith('import task progress') ? [entry.msg as string] : [];
    } catch {
      return [];
    }
  });
}

async function image(child: ChildImago, id: string): Promise<Json> {
  return (await (await client(child)('GET', `/v2/images/${id}`)).json()) as Json;
}

async function create(child: ChildImago, body: Json = {}): Promise<string> {
  const res = await client(child)('POST', '/v2/images', { disk_format: 'raw', container_format: 'bare', ...body });
  assert.equal(res.status, 201);
  return ((await res.json()) as Json).id;
}

async function finishedTask(child: ChildImago, id: string): Promise<Json> {
  return waitFor(`the task of ${id} to end`, async () => {
    const { tasks } = (await (await client(child)('GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] };
    const last = tasks[tasks.length - 1];
    return last && (last.status === 'success' || last.status === 'failure') ? last : undefined;
  }, WAIT_MS);
}

/** Stops the child cleanly and proves the data dir consistent. */
async function stopAndCheck(child: ChildImago, dataDir: string, config: Json): Promise<void> {
  const { code } = await child.terminate();
  assert.equal(code, 0);
  const { rt, report } = await inspectDataDir(dataDir, config);
  try {
    assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
    const stuck = await rt.db.selectFrom('images').select(['id', 'status']).where('status', 'in', ['uploading', 'importing', 'saving']).execute();
    assert.deepEqual(stuck.filter((i) => i.status !== 'uploading'), []);
    const locks = await rt.db.selectFrom('image_properties').selectAll().where('name', '=', 'os_glance_import_task').execute();
    assert.deepEqual(locks, []);
    const running = await rt.db.selectFrom('tasks').select(['id', 'status']).where('status', 'in', ['pending', 'processing']).execute();
    assert.deepEqual(running, []);
  } finally {
    await rt.close();
  }
  assert.deepEqual(filesUnder(path.join(dataDir, 'import-work')), []);
}

describe('crash recovery of stage and import (kill -9)', () => {
  let web: FileServer;
  let hold = true;
  let serveMissing = false;
  const data = pattern(6 * MiB, 41);
  const waiting: (() => void)[] = [];

  before(async () => {
    web = await serveFiles({
      '/image.raw': (_req, res) => {
        if (serveMissing) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-length': String(data.length) });
        res.on('error', () => {});
        res.write(data.subarray(0, 3 * MiB));
        const rest = () => res.end(data.subarray(3 * MiB));
        if (hold) waiting.push(rest);
        else rest();
      },
    });
  });
  after(async () => {
    for (const w of waiting.splice(0)) w();
    await web.close();
  });

  const config = () => ({
    stores: [
      { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast' },
      { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'Cheap' },
    ],
    defaultStore: 'fast',
    import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } },
  });

  test('killed while staging: the image is queued again and nothing is staged', async () => {
    const dataDir = makeDataDir();
    try {
      let child = await spawnImago(dataDir, { config: config() });
      const id = await create(child);
      const req = request(`${child.url}/v2/images/${id}/stage`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream', 'content-length': String(8 * MiB) } });
      req.on('error', () => {});
      req.write(pattern(2 * MiB));
      await waitFor('uploading', async () => (await image(child, id)).status === 'uploading', WAIT_MS);
      await new Promise((r) => setTimeout(r, 100));
      await child.kill9();
      req.destroy();
      child = await spawnImago(dataDir, { config: config() });
      const img = await image(child, id);
      assert.equal(img.status, 'queued');
      assert.equal(img.size, null);
      assert.deepEqual(filesUnder(path.join(dataDir, 'staging')), []);
      await stopAndCheck(child, dataDir, config());
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed during web-download: the import resumes after the restart and finishes', async () => {
    const dataDir = makeDataDir();
    hold = true;
    serveMissing = false;
    try {
      let child = await spawnImago(dataDir, { config: config() });
      const id = await create(child);
      assert.equal((await client(child)('POST', `/v2/images/${id}/import`, { method: { name: 'web-download', uri: `${web.url}/image.raw` }, stores: ['fast', 'cheap'] })).status, 202);
      await waitFor('3 MiB downloaded', () => waiting.length > 0, WAIT_MS);
      await child.kill9();
      for (const w of waiting.splice(0)) w();
      hold = false;
      child = await spawnImago(dataDir, { config: config() });
      const task = await finishedTask(child, id);
      assert.equal(task.status, 'success', task.message);
      assert.equal(task.message, 'Copied 6 MiB (resumed after an interruption)');
      // the restarted process says what it found and what it did (docs/operations.md, task events)
      assert.deepEqual(await taskEventsThrough(child, id, 'import task succeeded'), ['import task interrupted by a stop; it resumes', 'import task resumed', 'import task succeeded']);
      const img = await image(child, id);
      assert.equal(img.status, 'active');
      assert.equal(img.stores, 'cheap,fast');
      assert.equal(img.os_hash_value, sha512(data));
      assert.equal(img.os_glance_importing_to_stores, '');
      assert.equal('os_glance_import_task' in img, false);
      await stopAndCheck(child, dataDir, config());
    } finally {
      hold = true;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed during web-download, source gone at restart: rolled back, with a message saying why', async () => {
    const dataDir = makeDataDir();
    hold = true;
    serveMissing = false;
    try {
      let child = await spawnImago(dataDir, { config: config() });
      const id = await create(child);
      assert.equal((await client(child)('POST', `/v2/images/${id}/import`, { method: { name: 'web-download', uri: `${web.url}/image.raw` } })).status, 202);
      await waitFor('3 MiB downloaded', () => waiting.length > 0, WAIT_MS);
      await child.kill9();
      for (const w of waiting.splice(0)) w();
      serveMissing = true;
      child = await spawnImago(dataDir, { config: config() });
      const task = await finishedTask(child, id);
      assert.equal(task.status, 'failure');
      assert.match(task.message, /answered HTTP 404\. The image is back in status queued/);
      const img = await image(child, id);
      assert.equal(img.status, 'queued');
      assert.equal(img.os_glance_failed_import, 'fast');
      assert.equal('os_glance_import_task' in img, false);
      assert.deepEqual(filesUnder(path.join(dataDir, 'staging')), []);
      await stopAndCheck(child, dataDir, config());
    } finally {
      serveMissing = false;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed again and again: after three interrupted runs the import is rolled back', async () => {
    const dataDir = makeDataDir();
    hold = true;
    serveMissing = false;
    try {
      let child = await spawnImago(dataDir, { config: config() });
      const id = await create(child);
      assert.equal((await client(child)('POST', `/v2/images/${id}/import`, { method: { name: 'web-download', uri: `${web.url}/image.raw` } })).status, 202);
      for (let run = 1; run <= 3; run++) {
        await waitFor(`run ${run} downloading`, () => waiting.length > 0, WAIT_MS);
        await child.kill9();
        for (const w of waiting.splice(0)) w();
        child = await spawnImago(dataDir, { config: config() });
      }
      const task = await finishedTask(child, id);
      assert.equal(task.status, 'failure');
      assert.match(task.message, /^Imago stopped 3 times while running this import, so it was rolled back instead of being tried again\. The image is back in status queued/);
      assert.equal((await image(child, id)).status, 'queued');
      await stopAndCheck(child, dataDir, config());
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed at several points of a glance-direct import to two stores: it always ends active in both', async () => {
    const big = pattern(48 * MiB, 43);
    for (const delay of [0, 40, 150, 400]) {
      const dataDir = makeDataDir();
      try {
        let child = await spawnImago(dataDir, { config: config() });
        const id = await create(child);
        assert.equal((await client(child)('PUT', `/v2/images/${id}/stage`, big, { 'content-type': 'application/octet-stream' })).status, 204);
        assert.equal((await client(child)('POST', `/v2/images/${id}/import`, { method: { name: 'glance-direct' }, stores: ['fast', 'cheap'] })).status, 202);
        await new Promise((r) => setTimeout(r, delay));
        await child.kill9();
        child = await spawnImago(dataDir, { config: config() });
        const task = await finishedTask(child, id);
        assert.equal(task.status, 'success', `delay ${delay}: ${task.message}`);
        const img = await image(child, id);
        assert.equal(img.status, 'active', `delay ${delay}`);
        assert.equal(img.stores, 'cheap,fast', `delay ${delay}`);
        assert.equal(img.os_hash_value, sha512(big));
        const dl = await client(child)('GET', `/v2/images/${id}/file`);
        assert.equal(sha512(Buffer.from(await dl.arrayBuffer())), sha512(big));
        await stopAndCheck(child, dataDir, config());
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  });

  test('a graceful stop (SIGTERM) during an import requeues it; the next start finishes it', async () => {
    const dataDir = makeDataDir();
    hold = true;
    serveMissing = false;
    try {
      let child = await spawnImago(dataDir, { config: config() });
      const id = await create(child);
      assert.equal((await client(child)('POST', `/v2/images/${id}/import`, { method: { name: 'web-download', uri: `${web.url}/image.raw` } })).status, 202);
      await waitFor('downloading', () => waiting.length > 0, WAIT_MS);
      const stopped = child.terminate();
      const { code } = await stopped;
      assert.equal(code, 0);
      assert.deepEqual(taskEvents(child, id), ['import task started', 'import task paused: Imago is stopping; it goes on at the next start']);
      for (const w of waiting.splice(0)) w();
      hold = false;
      const { rt } = await inspectDataDir(dataDir, config());
      try {
        const tasks = await rt.db.selectFrom('tasks').select(['status', 'message']).execute();
        assert.deepEqual(tasks, [{ status: 'pending', message: 'Imago is stopping; this import will go on when it starts again.' }]);
        assert.deepEqual(filesUnder(path.join(dataDir, 'staging')), []);
      } finally {
        await rt.close();
      }
      child = await spawnImago(dataDir, { config: config() });
      const task = await finishedTask(child, id);
      assert.equal(task.status, 'success', task.message);
      assert.equal(task.message, 'Copied 6 MiB (resumed after an interruption)');
      assert.equal((await image(child, id)).os_hash_value, sha512(data));
      assert.deepEqual(await taskEventsThrough(child, id, 'import task succeeded'), ['import task resumed', 'import task succeeded']);
      const { rt: after } = await inspectDataDir(dataDir, config());
      try {
        // a graceful stop is not one of the attempts that lead to a rollback
        assert.equal((await after.db.selectFrom('tasks').select('attempts').executeTakeFirstOrThrow()).attempts, 1);
      } finally {
        await after.close();
      }
      await stopAndCheck(child, dataDir, config());
    } finally {
      hold = true;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
