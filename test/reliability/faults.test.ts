import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createImage, startTestServer, uploadBytes } from '../support/server.js';
import { SKIP_IN_POSTGRES_PASS, assertErrorShape, serverOn } from './helpers.js';
import { waitFor } from '../support/wait.js';

/**
 * Faults in a running server (issue 14): the database locked beyond the busy
 * timeout, PostgreSQL restarted under the server. Each must give clean 503s
 * with the reason, leave nothing half-applied, and recover when the component
 * returns. (Store directory removed mid-upload: test/server/image-data-faults;
 * Keystone down: test/auth/keystone.)
 */

async function expect503(res: Response, reason: RegExp): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 503, text);
  assertErrorShape(503, res.headers.get('content-type'), text);
  assert.match(text, reason);
}

test('SQLite locked by another process beyond the busy timeout: 503 with the reason, nothing applied, then recovery', { timeout: 60_000, skip: SKIP_IN_POSTGRES_PASS }, async () => {
  const s = await serverOn('sqlite');
  try {
    if (s.rt.dialect !== 'sqlite') return;
    const img = await createImage(s, { name: 'before-lock' });
    const other = new Database(path.join(s.dataDir, 'imago.sqlite'));
    other.exec('BEGIN EXCLUSIVE');
    try {
      const t0 = Date.now();
      await expect503(await s.req('POST', '/v2/images', { json: { name: 'during-lock', disk_format: 'raw', container_format: 'bare' } }), /locked/);
      assert.ok(Date.now() - t0 >= 4000, 'the busy timeout was waited out first');
      await expect503(await s.req('PATCH', `/v2/images/${img.id}`, { headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: JSON.stringify([{ op: 'add', path: '/x', value: '1' }]) }), /locked/);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    const list = (await (await s.req('GET', '/v2/images')).json()) as { images: { name: string }[] };
    assert.deepEqual(list.images.map((i) => i.name), ['before-lock'], 'nothing half-applied');
    assert.equal(((await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, unknown>).x, undefined);
    const after = await createImage(s, { name: 'after-lock' });
    assert.equal((await uploadBytes(s, after.id, Buffer.from('recovered'))).status, 204);
  } finally {
    await s.close();
  }
});

/** A private PostgreSQL cluster (Debian's binaries, run as the postgres user) on a free port. */
function privateCluster(): { url: string; start(): void; stop(): void; destroy(): void } | undefined {
  const bin = ['18', '17', '16', '15', '14', '13'].map((v) => `/usr/lib/postgresql/${v}/bin`).find((d) => existsSync(`${d}/initdb`));
  if (!bin) return undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-pg-'));
  chmodSync(dir, 0o777);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const asPostgres = (args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'pipe', timeout: 60_000 });
  asPostgres([`${bin}/initdb`, '-D', `${dir}/data`, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const start = () => asPostgres([`${bin}/pg_ctl`, '-D', `${dir}/data`, '-w', '-l', `${dir}/log`, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  const stop = () => asPostgres([`${bin}/pg_ctl`, '-D', `${dir}/data`, '-w', '-m', 'fast', 'stop']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    destroy: () => {
      try {
        stop();
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canRunAsPostgres(): boolean {
  try {
    execFileSync('id', ['postgres'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

test('PostgreSQL restarted under a running server: 503 while it is down, everything works again after', { timeout: 120_000, skip: SKIP_IN_POSTGRES_PASS || (!canRunAsPostgres() && 'needs root and the postgres user') }, async () => {
  const pg = privateCluster();
  if (!pg) return;
  try {
    pg.start();
    const s = await startTestServer({ env: { IMAGO_DATABASE_URL: pg.url } });
    try {
      const img = await createImage(s, { name: 'before-restart' });
      assert.equal((await uploadBytes(s, img.id, Buffer.from('data before'))).status, 204);
      // an upload streams while the database goes away under it
      const slow = await createImage(s, { name: 'mid-request' });
      const u = new URL(s.url);
      const sock = net.connect(Number(u.port), u.hostname);
      sock.on('error', () => undefined);
      let answer = '';
      sock.on('data', (d) => (answer += d.toString()));
      sock.write(`PUT /v2/images/${slow.id}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: admin-token\r\nContent-Type: application/octet-stream\r\nContent-Length: 2000\r\n\r\n${'a'.repeat(1000)}`);
      await new Promise((r) => setTimeout(r, 300));
      pg.stop();
      sock.write('b'.repeat(1000));
      for (let i = 0; i < 100 && !answer.includes('\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 100));
      sock.destroy();
      assert.match(answer, /^HTTP\/1\.1 503/, `the upload's answer: ${answer.slice(0, 300)}`);
      await expect503(await s.req('GET', '/v2/images'), /database/);
      await expect503(await s.req('POST', '/v2/images', { json: { name: 'while-down' } }), /database/);
      pg.start();
      // the pool reconnects: the next requests work, and nothing was half-applied
      const listed = await waitFor('the server to recover', async () => {
        const res = await s.req('GET', '/v2/images');
        return res.status === 200 && ((await res.json()) as { images: { name: string; status: string }[] });
      }, 15_000, 200);
      assert.deepEqual(listed.images.map((i) => i.name).sort(), ['before-restart', 'mid-request']);
      const data = Buffer.from(await (await s.req('GET', `/v2/images/${img.id}/file`)).arrayBuffer());
      assert.equal(data.toString(), 'data before');
      const after = await createImage(s, { name: 'after-restart' });
      assert.equal((await uploadBytes(s, after.id, Buffer.from('after'))).status, 204);
      // the interrupted upload: its image is queued again (or still being released), never active with partial data
      const mid = (await (await s.req('GET', `/v2/images/${slow.id}`)).json()) as { status: string };
      assert.notEqual(mid.status, 'active');
      const stray = readdirSync(path.join(s.dataDir, 'images', '.tmp'), { withFileTypes: true }).filter((e) => e.isFile());
      assert.deepEqual(stray.map((e) => e.name), [], 'no temporary file left');
    } finally {
      await s.close().catch(() => undefined);
    }
  } finally {
    pg.destroy();
  }
});
