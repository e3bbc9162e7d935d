import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';
import { ManualUpload, md5 } from '../server/image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';
import { inspectDataDir, spawnImago, type ChildImago } from './child.js';

const MiB = 1024 * 1024;

async function create(s: ChildImago): Promise<string> {
  const r = await fetch(`${s.url}/v2/images`, { method: 'POST', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/json' }, body: JSON.stringify({ disk_format: 'raw', container_format: 'bare' }) });
  assert.equal(r.status, 201);
  return ((await r.json()) as { id: string }).id;
}

async function status(s: ChildImago, id: string): Promise<string> {
  const r = await fetch(`${s.url}/v2/images/${id}`, { headers: { 'x-auth-token': TOKENS.admin } });
  return ((await r.json()) as { status: string }).status;
}

/**
 * Two Imago processes on one PostgreSQL database and one shared store
 * directory. When one is killed, the other releases its uploads once its
 * heartbeat is older than IMAGO_NODE_TIMEOUT_SECONDS, without a restart,
 * and never touches the uploads of a node that is alive.
 */
describe('a shared database: a surviving node cleans up after a dead one', { concurrency: false, timeout: 180_000 }, async () => {
  const available = await postgresAvailable();

  test('kill -9 of node A mid-upload and before a commit: node B releases both images and removes their files', async (t) => {
    if (!available) return t.skip('no PostgreSQL server (IMAGO_TEST_PG_URL)');
    const db = await createTestDatabase();
    const shared = makeDataDir();
    const dirA = makeDataDir();
    const dirB = makeDataDir();
    mkdirSync(path.join(shared, 'images'), { recursive: true });
    const config = {
      database: { url: db.url },
      stores: [{ id: 'local', type: 'filesystem', path: path.join(shared, 'images'), description: 'shared' }],
      staging: { id: 'os_glance_staging_store', type: 'filesystem', path: path.join(shared, 'staging'), description: 'shared staging' },
    };
    const env = { IMAGO_NODE_TIMEOUT_SECONDS: '2' };
    let a: ChildImago | undefined;
    let b: ChildImago | undefined;
    let a2: ChildImago | undefined;
    try {
      a = await spawnImago(dirA, { config, env });
      b = await spawnImago(dirB, { config, env });
      const images = path.join(shared, 'images');

      // 1. mid-stream on A
      const midStream = await create(b);
      const up = new ManualUpload(a.url, midStream, {});
      for (let i = 0; i < 3; i++) await up.write(pattern(MiB, i + 1));
      await waitFor('temporary file', () => filesUnder(images).some((f) => f.startsWith(`.tmp/${midStream}`)));

      // 2. a live, slow upload on B that outlasts the node timeout
      const slow = await create(b);
      const slowUp = new ManualUpload(b.url, slow, {});
      const slowData: Buffer[] = [];
      const slowWriting = (async () => {
        for (let i = 0; i < 12; i++) {
          const c = pattern(100_000, 50 + i);
          slowData.push(c);
          await slowUp.write(c);
          await new Promise((r) => setTimeout(r, 500));
        }
        return slowUp.end();
      })();

      await a.kill9();
      up.abort();
      assert.equal(await status(b, midStream), 'saving', 'A still looks alive right after the kill');

      // 3. a node that dies after its object is complete, before the commit
      a2 = await spawnImago(dirA, { config, env: { ...env, IMAGO_CRASH_AT: 'upload:before-commit' } });
      const beforeCommit = await create(b);
      const crashed = await fetch(`${a2.url}/v2/images/${beforeCommit}/file`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' }, body: new Uint8Array(pattern(MiB)) }).catch(() => 'connection lost');
      assert.equal(crashed, 'connection lost');
      await a2.exited;
      assert.ok(filesUnder(images).includes(beforeCommit), 'the dead node left a complete, unowned object');

      await waitFor('B released both', async () => (await status(b!, midStream)) === 'queued' && (await status(b!, beforeCommit)) === 'queued', 20_000);
      await waitFor('their files removed', () => !filesUnder(images).some((f) => f.includes(midStream) || f.includes(beforeCommit)), 5000);

      const slowDone = await slowWriting;
      assert.equal(slowDone.status, 204, "B's own long upload was never taken for dead");
      const shown = await fetch(`${b.url}/v2/images/${slow}`, { headers: { 'x-auth-token': TOKENS.admin } }).then((r) => r.json() as Promise<Record<string, any>>);
      assert.equal(shown.checksum, md5(Buffer.concat(slowData)));

      for (const id of [midStream, beforeCommit]) {
        const res: Response = await fetch(`${b.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' }, body: new Uint8Array(pattern(1000)) });
        assert.equal(res.status, 204);
      }
      assert.deepEqual(await b.terminate(), { code: 0, signal: null });
      b = undefined;
      const { rt, report } = await inspectDataDir(dirB, config);
      try {
        assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
      } finally {
        await rt.close();
      }
    } finally {
      for (const n of [a, a2, b]) if (n && n.proc.exitCode === null && n.proc.signalCode === null) await n.kill9();
      await db.drop();
      for (const d of [shared, dirA, dirB]) rmSync(d, { recursive: true, force: true });
    }
  });
});
