import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { ManualUpload, json, md5 } from '../server/image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { waitFor } from '../support/wait.js';
import { inspectDataDir, spawnImago, type ChildImago } from './child.js';

const MiB = 1024 * 1024;

async function create(s: ChildImago): Promise<string> {
  const r = await fetch(`${s.url}/v2/images`, { method: 'POST', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/json' }, body: JSON.stringify({ disk_format: 'raw', container_format: 'bare' }) });
  return ((await r.json()) as { id: string }).id;
}

async function status(s: ChildImago, id: string): Promise<string> {
  const r = await fetch(`${s.url}/v2/images/${id}`, { headers: { 'x-auth-token': TOKENS.admin } });
  return ((await r.json()) as { status: string }).status;
}

describe('graceful shutdown (SIGTERM)', { concurrency: false, timeout: 120_000 }, () => {
  test('mid-upload: the upload is answered 503 and rolled back, the server exits 0, the image is queued after restart', async () => {
    const dataDir = makeDataDir();
    try {
      let s = await spawnImago(dataDir);
      const id = await create(s);
      const up = new ManualUpload(s.url, id, { contentLength: 32 * MiB });
      for (let i = 0; i < 3; i++) await up.write(pattern(MiB, i + 1));
      await waitFor('saving', async () => (await status(s, id)) === 'saving');
      const exit = s.terminate();
      const r = await up.response;
      assert.equal(r.status, 503);
      assert.equal(json(r).error.code, 503);
      assert.match(json(r).error.message, /shutting down/);
      assert.equal(r.headers.connection, 'close');
      up.abort();
      assert.deepEqual(await exit, { code: 0, signal: null });
      assert.ok(s.logs.some((l) => l.includes('shutting down')));
      assert.ok(!s.logs.some((l) => l.includes('recovered from an unclean stop')));

      // Nothing needed recovering: the stop itself rolled the upload back.
      const { rt, report } = await inspectDataDir(dataDir);
      try {
        assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
        const row = await rt.db.selectFrom('images').select(['status', 'writer_id']).where('id', '=', id).executeTakeFirstOrThrow();
        assert.deepEqual(row, { status: 'queued', writer_id: null });
      } finally {
        await rt.close();
      }
      assert.deepEqual(filesUnder(path.join(dataDir, 'images')), []);

      s = await spawnImago(dataDir);
      assert.ok(!s.logs.some((l) => l.includes('recovered from an unclean stop')));
      assert.equal(await status(s, id), 'queued');
      const data = pattern(MiB, 7);
      const put = await fetch(`${s.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
      assert.equal(put.status, 204);
      const got = await fetch(`${s.url}/v2/images/${id}/file`, { headers: { 'x-auth-token': TOKENS.admin } });
      assert.equal(md5(Buffer.from(await got.arrayBuffer())), md5(data));
      assert.deepEqual(await s.terminate(), { code: 0, signal: null });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('an idle kept-alive connection does not hold the exit; a stalled download is cut after the grace period', async () => {
    const dataDir = makeDataDir();
    try {
      const s = await spawnImago(dataDir, { env: { IMAGO_SHUTDOWN_GRACE_SECONDS: '1' } });
      const id = await create(s);
      const data = pattern(64 * MiB, 3);
      const put = await fetch(`${s.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
      assert.equal(put.status, 204);

      const agent = new http.Agent({ keepAlive: true });
      // a download whose reader stops reading: the server's socket fills and the response stalls
      const stalled = await new Promise<http.IncomingMessage>((resolve) => {
        http.get(`${s.url}/v2/images/${id}/file`, { agent, headers: { 'x-auth-token': TOKENS.admin } }, (res) => {
          res.pause();
          resolve(res);
        });
      });
      const ended = new Promise<string>((resolve) => {
        stalled.on('error', () => resolve('cut'));
        stalled.on('close', () => resolve(stalled.complete ? 'complete' : 'cut'));
      });
      const started = Date.now();
      const exit = await s.terminate();
      const took = Date.now() - started;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(took < 10_000, `exit took ${took} ms`);
      stalled.resume();
      assert.equal(await ended, 'cut');
      agent.destroy();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
