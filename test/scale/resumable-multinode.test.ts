import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';
import { makeDataDir, TOKENS } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';
import { spawnImago, type ChildImago } from '../recovery/child.js';
import { pattern } from '../support/bytes.js';
import { startRelay, type Relay } from '../support/relay.js';

const MiB = 1024 * 1024;
type Json = Record<string, any>;

/**
 * Two Imago processes on one PostgreSQL database and one filesystem store:
 * a tus-js-client upload starts on A, A is killed (kill -9) mid-PATCH, the
 * balancer sends the client to B, which resumes the upload from the offset A
 * recorded (the partial file may be longer: it is cut back), once A's lock
 * lease has run out, and completes it with the right digests.
 */
describe('resumable uploads across two nodes', { timeout: Number(process.env.IMAGO_TUS_MULTINODE_TIMEOUT ?? 240_000) }, async () => {
  const available = await postgresAvailable();

  test('start on A, kill -9 A mid-PATCH, resume on B: active with the right digests', async (t) => {
    if (!available) return t.skip('no PostgreSQL server (IMAGO_TEST_PG_URL)');
    const data = pattern(96 * MiB, 31);
    const db = await createTestDatabase();
    const shared = makeDataDir();
    const dirs = [makeDataDir(), makeDataDir()];
    mkdirSync(path.join(shared, 'images'), { recursive: true });
    const file = path.join(shared, 'disk.raw');
    writeFileSync(file, data);
    const config = {
      database: { url: db.url },
      stores: [{ id: 'local', type: 'filesystem', path: path.join(shared, 'images'), description: 'shared' }],
      staging: { id: 'os_glance_staging_store', type: 'filesystem', path: path.join(shared, 'staging'), description: 'shared staging' },
      uploads: { lockSeconds: 5 },
    };
    const env = { IMAGO_NODE_TIMEOUT_SECONDS: '2' };
    let a: ChildImago | undefined;
    let b: ChildImago | undefined;
    let relay: Relay | undefined;
    try {
      [a, b] = await Promise.all([spawnImago(dirs[0], { config, env }), spawnImago(dirs[1], { config, env })]);
      const created = await fetch(`${a.url}/v2/images`, { method: 'POST', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/json' }, body: JSON.stringify({ disk_format: 'raw', container_format: 'bare' }) });
      const id = ((await created.json()) as Json).id;
      let killing: Promise<void> | undefined;
      relay = await startRelay('127.0.0.1', Number(new URL(a.url).port), {
        onClientBytes: (total) => {
          if (killing || total < 40 * MiB) return;
          // A dies in the middle of its PATCH; the balancer sends everything to B from now on.
          killing = a!.kill9().then(() => {
            relay!.retarget(Number(new URL(b!.url).port));
            relay!.drop();
          });
        },
      });
      const { createReadStream } = await import('node:fs');
      if (process.env.IMAGO_TUS_DEBUG) setTimeout(() => console.error('A:\n' + a?.logs.slice(-30).join('\n') + '\nB:\n' + b?.logs.slice(-60).join('\n')), 60_000).unref();
      await new Promise<void>((resolve, reject) => {
        new tus.Upload(createReadStream(file), {
          endpoint: `http://127.0.0.1:${relay!.port}/v2/uploads`,
          headers: { 'X-Auth-Token': TOKENS.admin },
          metadata: { image_id: id },
          // A's lock lease (5 s) has to run out before B may append: the client retries 423 meanwhile.
          retryDelays: Array(80).fill(250),
          onError: reject,
          onSuccess: () => resolve(),
          ...(process.env.IMAGO_TUS_DEBUG ? { onShouldRetry: (e: Error, n: number) => (console.error('retry', n, e.message.slice(0, 200)), true) } : {}),
        }).start();
      });
      assert.ok(killing, 'A was killed during the upload');
      const shown = (await (await fetch(`${b.url}/v2/images/${id}`, { headers: { 'x-auth-token': TOKENS.admin } })).json()) as Json;
      assert.equal(shown.status, 'active');
      assert.equal(shown.size, data.length);
      assert.equal(shown.checksum, createHash('md5').update(data).digest('hex'));
      assert.equal(shown.os_hash_value, createHash('sha512').update(data).digest('hex'));
      assert.ok(b.logs.some((l) => l.includes('"method":"PATCH"') || l.includes('PATCH')), 'B served PATCHes');
    } catch (err) {
      if (process.env.IMAGO_TUS_DEBUG) console.error('A:\n' + a?.logs.slice(-40).join('\n') + '\nB:\n' + b?.logs.slice(-60).join('\n'));
      throw err;
    } finally {
      relay?.stop();
      await a?.kill9().catch(() => {});
      await b?.terminate().catch(() => {});
      await db.drop();
      for (const d of [shared, ...dirs]) rmSync(d, { recursive: true, force: true });
    }
  });
});
