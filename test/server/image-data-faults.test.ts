import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createImage, data1k, makeDataDir, startTestServer, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { ManualUpload, assertErrorBody, imageOf, md5, put } from './image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;

/**
 * Store failures with real filesystems: a tiny tmpfs that fills up (ENOSPC),
 * a store directory that is replaced by a file, made immutable (chattr +i),
 * or removed while an upload streams into it.
 */
describe('store faults during PUT /v2/images/{id}/file', () => {
  let s: TestServer;
  let dataDir: string;
  let tinyDir: string;
  let tmpfs = false;

  before(async () => {
    dataDir = makeDataDir();
    tinyDir = path.join(dataDir, 'tiny');
    mkdirSync(tinyDir);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', tinyDir], { stdio: 'pipe' });
      tmpfs = true;
    } catch {
      // not root, or no mount privilege: the full-store test is skipped below
    }
    s = await startTestServer({
      dataDir,
      config: {
        stores: [
          { id: 'local', type: 'filesystem', path: 'images', description: 'default' },
          { id: 'tiny', type: 'filesystem', path: 'tiny', description: '2 MiB tmpfs' },
          { id: 'flaky', type: 'filesystem', path: 'flaky', description: 'broken by the tests' },
          { id: 'vanishing', type: 'filesystem', path: 'vanishing', description: 'removed by a test' },
        ],
      },
    });
  });

  after(async () => {
    await s.close();
    if (tmpfs) execFileSync('umount', [tinyDir]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function assertRolledBack(id: string, storeDir: string): Promise<void> {
    const shown = await imageOf(s, id);
    assert.equal(shown.status, 'queued');
    assert.equal(shown.size, null);
    assert.equal(shown.checksum, null);
    assert.equal(shown.os_hash_value, null);
    assert.deepEqual(filesUnder(storeDir), [], 'the store holds nothing, .tmp included');
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  }

  test('store full (ENOSPC on a 2 MiB tmpfs) -> 413, image queued, no partial file', async (t) => {
    if (!tmpfs) return t.skip('cannot mount a tmpfs here');
    const img = await createImage(s);
    for (const chunked of [false, true]) {
      const r = await put(s, img.id, pattern(3 * MiB), { headers: { 'x-image-meta-store': 'tiny' }, chunked });
      const e = assertErrorBody(r, 413);
      assert.match(e.message, /full/);
      await assertRolledBack(img.id, tinyDir);
    }
    // the space came back: a smaller image fits
    const ok = await put(s, img.id, pattern(MiB), { headers: { 'x-image-meta-store': 'tiny' } });
    assert.equal(ok.status, 204);
    assert.equal((await imageOf(s, img.id)).stores, 'tiny');
    assert.deepEqual(filesUnder(tinyDir), [img.id]);
  });

  test('store directory replaced by a file -> 503; works again once it is back', async () => {
    const flaky = path.join(dataDir, 'flaky');
    const warm = await createImage(s);
    assert.equal((await put(s, warm.id, data1k(), { headers: { 'x-image-meta-store': 'flaky' } })).status, 204);
    renameSync(flaky, flaky + '.away');
    writeFileSync(flaky, 'not a directory');
    try {
      const img = await createImage(s);
      const e = assertErrorBody(await put(s, img.id, data1k(), { headers: { 'x-image-meta-store': 'flaky' } }), 503);
      assert.match(e.message, /flaky/);
      const shown = await imageOf(s, img.id);
      assert.equal(shown.status, 'queued');
    } finally {
      rmSync(flaky);
      renameSync(flaky + '.away', flaky);
    }
    const img = await createImage(s);
    assert.equal((await put(s, img.id, data1k(), { headers: { 'x-image-meta-store': 'flaky' } })).status, 204);
  });

  test('store directory made immutable (chattr +i) -> 503, nothing left in .tmp', async (t) => {
    const flaky = path.join(dataDir, 'flaky');
    try {
      execFileSync('chattr', ['+i', flaky], { stdio: 'pipe' });
    } catch {
      return t.skip('chattr +i is not available here');
    }
    const before = filesUnder(flaky);
    try {
      const img = await createImage(s);
      for (const chunked of [false, true]) {
        assertErrorBody(await put(s, img.id, pattern(2 * MiB), { headers: { 'x-image-meta-store': 'flaky' }, chunked }), 503);
        const shown = await imageOf(s, img.id);
        assert.equal(shown.status, 'queued');
        assert.deepEqual(filesUnder(flaky), before);
      }
    } finally {
      execFileSync('chattr', ['-i', flaky]);
    }
  });

  test('store directory removed while an upload streams into it -> 503, image queued, store usable after', async () => {
    const flaky = path.join(dataDir, 'vanishing');
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, { headers: { 'x-image-meta-store': 'vanishing' } });
    await up.write(pattern(MiB));
    await waitFor('temporary file', () => filesUnder(flaky).some((f) => f.startsWith('.tmp/')));
    rmSync(flaky, { recursive: true });
    await up.write(pattern(MiB, 2));
    const r = await up.end();
    assertErrorBody(r, 503);
    await assertRolledBack(img.id, flaky);
    assert.equal((await put(s, img.id, data1k(), { headers: { 'x-image-meta-store': 'vanishing' } })).status, 204);
    assert.equal((await imageOf(s, img.id)).checksum, md5(data1k()));
  });

  test('a hashing worker that dies mid-upload: 503, image queued, nothing left; the pool replaces it', async () => {
    const img = await createImage(s);
    const up = new ManualUpload(s.url, img.id, {});
    await up.write(pattern(2 * MiB));
    await waitFor('saving', async () => (await imageOf(s, img.id)).status === 'saving');
    const workers = (s.rt.hashPool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    const dead = workers[0];
    await dead.terminate();
    await up.write(pattern(2 * MiB, 3));
    const r = await up.end();
    const e = assertErrorBody(r, 503);
    assert.match(e.message, /hash/);
    await assertRolledBack(img.id, path.join(dataDir, 'images'));
    await waitFor('a new worker', () => workers[0] !== dead);
    const data = pattern(3 * MiB, 8);
    assert.equal((await put(s, img.id, data)).status, 204);
    assert.equal((await imageOf(s, img.id)).checksum, md5(data));
  });
});
