import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { ManualUpload, md5 } from '../server/image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';
import { inspectDataDir, spawnImago, type ChildImago } from './child.js';

const MiB = 1024 * 1024;

async function api(s: ChildImago, method: string, p: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { 'x-auth-token': TOKENS.admin };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(s.url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function create(s: ChildImago): Promise<string> {
  const r = await api(s, 'POST', '/v2/images', { disk_format: 'raw', container_format: 'bare', name: 'crash' });
  assert.equal(r.status, 201);
  return ((await r.json()) as { id: string }).id;
}

async function show(s: ChildImago, id: string): Promise<Record<string, any>> {
  const r = await api(s, 'GET', `/v2/images/${id}`);
  assert.equal(r.status, 200);
  return (await r.json()) as Record<string, any>;
}

async function uploadWhole(s: ChildImago, id: string, data: Buffer): Promise<number> {
  const r = await fetch(`${s.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
  return r.status;
}

/**
 * After a restart: the restarted server recovered; stop it cleanly, then open
 * the data dir in this process and prove invariant 6 (database and store
 * agree) and that no temporary file survived.
 */
async function assertCleanAfter(s: ChildImago, dataDir: string): Promise<void> {
  const { code } = await s.terminate();
  assert.equal(code, 0);
  const { rt, report } = await inspectDataDir(dataDir);
  try {
    assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
    const claims = await rt.db.selectFrom('images').select(['id', 'status']).where('writer_id', 'is not', null).execute();
    assert.deepEqual(claims, [], 'no image is still claimed by a writer');
    const pending = (await rt.images.allLocations()).filter((l) => l.status !== 'active');
    assert.deepEqual(pending, [], 'no half-done delete is left');
  } finally {
    await rt.close();
  }
  for (const dir of ['images', 'staging']) {
    assert.deepEqual(filesUnder(path.join(dataDir, dir)).filter((f) => f.startsWith('.tmp/')), [], `no temporary file in ${dir}`);
  }
}

async function assertQueuedAndEmpty(s: ChildImago, id: string, dataDir: string): Promise<void> {
  const img = await show(s, id);
  assert.equal(img.status, 'queued');
  assert.equal(img.size, null);
  assert.equal(img.checksum, null);
  assert.equal(img.os_hash_value, null);
  assert.equal(img.stores, undefined);
  assert.deepEqual(filesUnder(path.join(dataDir, 'images')).filter((f) => f.includes(id)), []);
  // and the image takes an upload again
  const data = pattern(300_000, 4);
  assert.equal(await uploadWhole(s, id, data), 204);
  assert.equal((await show(s, id)).checksum, md5(data));
}

/**
 * Invariant 5: kill -9 at several instants of an upload or a delete, restart
 * on the same data dir, and check what the next start made of it.
 */
describe('crash recovery (kill -9, restart on the same data dir)', { concurrency: false, timeout: 180_000 }, () => {
  test('killed after the claim, before the first byte: queued again', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir);
      const id = await create(s);
      const up = new ManualUpload(s.url, id, { contentLength: 10 * MiB });
      await waitFor('saving', async () => (await show(s, id)).status === 'saving');
      await s.kill9();
      up.abort();
      s = await spawnImago(dataDir);
      await assertQueuedAndEmpty(s, id, dataDir);
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed mid-stream, with a partial temporary file on disk: queued again, the temporary file removed', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir);
      const keep = await create(s);
      const kept = pattern(2 * MiB, 9);
      assert.equal(await uploadWhole(s, keep, kept), 204);
      const id = await create(s);
      const up = new ManualUpload(s.url, id, { contentLength: 64 * MiB });
      for (let i = 0; i < 6; i++) await up.write(pattern(MiB, i + 1));
      const tmpDir = path.join(dataDir, 'images', '.tmp');
      await waitFor('a partial temporary file', () => filesUnder(tmpDir).some((f) => f.startsWith(id) && statSync(path.join(tmpDir, f)).size >= MiB));
      await s.kill9();
      up.abort();
      assert.ok(filesUnder(tmpDir).length > 0, 'the crash left a temporary file behind');
      s = await spawnImago(dataDir);
      assert.deepEqual(filesUnder(tmpDir), [], 'the start removed it');
      await assertQueuedAndEmpty(s, id, dataDir);
      // the image that was complete before the crash is untouched
      const r = await fetch(`${s.url}/v2/images/${keep}/file`, { headers: { 'x-auth-token': TOKENS.admin } });
      assert.equal(r.status, 200);
      assert.equal(md5(Buffer.from(await r.arrayBuffer())), md5(kept));
      assert.equal((await show(s, keep)).status, 'active');
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed after the object is complete in the store, before the database commit: queued, the orphan object removed', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir, { env: { IMAGO_CRASH_AT: 'upload:before-commit' } });
      const id = await create(s);
      const status = await uploadWhole(s, id, pattern(3 * MiB)).catch(() => 'connection lost');
      assert.equal(status, 'connection lost');
      assert.equal((await s.exited).signal, 'SIGKILL');
      assert.ok(filesUnder(path.join(dataDir, 'images')).includes(id), 'the crash left a complete object no location owns');
      s = await spawnImago(dataDir);
      await assertQueuedAndEmpty(s, id, dataDir);
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed after the commit, before the 204: the image is active with its data intact', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir, { env: { IMAGO_CRASH_AT: 'upload:after-commit' } });
      const id = await create(s);
      const data = pattern(3 * MiB, 5);
      assert.equal(await uploadWhole(s, id, data).catch(() => 'connection lost'), 'connection lost');
      assert.equal((await s.exited).signal, 'SIGKILL');
      s = await spawnImago(dataDir);
      const img = await show(s, id);
      assert.equal(img.status, 'active');
      assert.equal(img.size, data.length);
      assert.equal(img.checksum, md5(data));
      const r = await fetch(`${s.url}/v2/images/${id}/file`, { headers: { 'x-auth-token': TOKENS.admin } });
      assert.equal(md5(Buffer.from(await r.arrayBuffer())), md5(data));
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed during DELETE, after the database forgot the image, before its data was removed: the start finishes the delete', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir, { env: { IMAGO_CRASH_AT: 'delete:before-remove' } });
      const id = await create(s);
      assert.equal(await uploadWhole(s, id, pattern(MiB)), 204);
      assert.equal(await api(s, 'DELETE', `/v2/images/${id}`).then((r) => r.status).catch(() => 'connection lost'), 'connection lost');
      assert.equal((await s.exited).signal, 'SIGKILL');
      assert.ok(filesUnder(path.join(dataDir, 'images')).includes(id), 'the object outlived the crash');
      s = await spawnImago(dataDir);
      assert.equal((await api(s, 'GET', `/v2/images/${id}`)).status, 404);
      assert.deepEqual(filesUnder(path.join(dataDir, 'images')), []);
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed during DELETE of an image with staged data only, before the staged data was removed: the start removes it', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir, { env: { IMAGO_CRASH_AT: 'delete:before-staged-remove' } });
      const id = await create(s);
      const stage = await fetch(`${s.url}/v2/images/${id}/stage`, {
        method: 'PUT',
        headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(pattern(MiB)),
      });
      assert.equal(stage.status, 204);
      assert.equal(await api(s, 'DELETE', `/v2/images/${id}`).then((r) => r.status).catch(() => 'connection lost'), 'connection lost');
      assert.equal((await s.exited).signal, 'SIGKILL');
      assert.ok(filesUnder(path.join(dataDir, 'staging')).includes(id), 'the staged data outlived the crash');
      s = await spawnImago(dataDir);
      assert.equal((await api(s, 'GET', `/v2/images/${id}`)).status, 404);
      assert.deepEqual(filesUnder(path.join(dataDir, 'staging')), []);
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('killed with several uploads in flight at different stages: each is queued, nothing is left', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir);
      const ids = [await create(s), await create(s), await create(s)];
      const ups = ids.map((id) => new ManualUpload(s.url, id, {}));
      await ups[1].write(pattern(MiB));
      await ups[2].write(pattern(4 * MiB));
      for (const id of ids) await waitFor('saving', async () => (await show(s, id)).status === 'saving');
      await s.kill9();
      for (const u of ups) u.abort();
      s = await spawnImago(dataDir);
      for (const id of ids) await assertQueuedAndEmpty(s, id, dataDir);
      await assertCleanAfter(s, dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
