import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { ManualUpload, md5 } from '../server/image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { spawnImago } from '../recovery/child.js';
import { runImago } from './helpers.js';
import { DataDirInUse, lockDataDir } from '../../src/db/data-dir-lock.js';

describe('data dir lock (SQLite mode)', () => {
  test('a second process on a data dir in use refuses to start, names the holder, and the first one\'s upload survives', async () => {
    const dataDir = makeDataDir();
    const first = await spawnImago(dataDir);
    try {
      const headers = { 'x-auth-token': TOKENS.admin, 'content-type': 'application/json' };
      const created = await fetch(`${first.url}/v2/images`, { method: 'POST', headers, body: JSON.stringify({ name: 'in-flight', disk_format: 'raw', container_format: 'bare' }) });
      assert.equal(created.status, 201);
      const { id } = (await created.json()) as { id: string };

      // half an upload is in the first process when the second one starts
      const data = pattern(4 * 1024 * 1024);
      const upload = new ManualUpload(first.url, id, { contentLength: data.length });
      await upload.write(data.subarray(0, 2 * 1024 * 1024));
      await waitFor('the upload to be saving', async () => {
        const r = await fetch(`${first.url}/v2/images/${id}`, { headers });
        // ...and its temporary object is on disk (the store creates its directory with it)
        return ((await r.json()) as { status: string }).status === 'saving' && existsSync(path.join(dataDir, 'images'));
      });
      const before = readdirSync(dataDir).sort();

      const second = await runImago([], { IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: path.join(dataDir, 'child-config.json'), IMAGO_PORT: '0' });
      assert.equal(second.code, 3, second.stderr);
      assert.match(second.stderr, new RegExp(`data dir ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by process ${first.proc.pid}`));
      assert.doesNotMatch(second.stdout, /Imago is listening/);
      assert.deepEqual(readdirSync(dataDir).sort(), before, 'the refused process created or removed nothing');

      const res = await upload.end(data.subarray(2 * 1024 * 1024));
      assert.equal(res.status, 204);
      const shown = (await (await fetch(`${first.url}/v2/images/${id}`, { headers })).json()) as { status: string; checksum: string; size: number };
      assert.equal(shown.status, 'active');
      assert.equal(shown.size, data.length);
      assert.equal(shown.checksum, md5(data));
    } finally {
      await first.terminate();
    }
    // once the holder is gone (here: stopped; after kill -9 the kernel releases it too) the dir is free again
    const again = lockDataDir(dataDir);
    again.release();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the kernel releases the lock of a process killed with SIGKILL', async () => {
    const dataDir = makeDataDir();
    const first = await spawnImago(dataDir);
    assert.throws(() => lockDataDir(dataDir), (err: unknown) => err instanceof DataDirInUse && err.holderPid === first.proc.pid);
    await first.kill9();
    assert.ok(existsSync(path.join(dataDir, 'imago.lock.pid')), 'a killed holder leaves its pid file behind');
    const lock = lockDataDir(dataDir);
    lock.release();
    rmSync(dataDir, { recursive: true, force: true });
  });
});
