/**
 * End-to-end: the real glance CLI (python3-glanceclient) run in a
 * pseudo-terminal, as a user types it, against Imago with two filesystem
 * stores. glanceclient reads image data from stdin whenever stdin is not a
 * terminal, so `script` gives it one.
 *
 * - `image-create-via-import ... --stores cheap` needs `stores` in
 *   /v2/schemas/image: without it glanceclient stops with KeyError 'stores'
 *   (issue 20).
 * - the v1 API is gone: glanceclient's v1 commands get Glance's 300 version
 *   choices and say the requested version is not available.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const GLANCE = '/usr/bin/glance';
const SCRIPT = '/usr/bin/script';
const missing = [GLANCE, SCRIPT].filter((f) => !existsSync(f));
const skip = missing.length ? `needs ${missing.join(', ')} (apt-get install python3-glanceclient bsdutils)` : false;

interface Run {
  code: number;
  output: string;
}

/** POSIX shell quoting for one argument. */
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs `glance args...` under `script -qec` (a pseudo-terminal; -e: script
 * exits with glance's status) in `home`, with no OS_* variable of the caller.
 */
function glanceInTerminal(args: string[], home: string): Promise<Run> {
  const command = [GLANCE, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, ['-qec', command, '/dev/null'], {
      cwd: home,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', TERM: 'dumb' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output: Buffer.concat(chunks).toString().replace(/\r/g, '') }));
  });
}

/** A value of glanceclient's `| Property | Value |` table. */
function field(table: string, name: string): string | undefined {
  return new RegExp(`^\\|\\s*${name}\\s*\\|\\s*(.*?)\\s*\\|$`, 'm').exec(table)?.[1];
}

describe('glance CLI in a terminal against Imago with stores fast and cheap', { skip }, () => {
  let s: TestServer;
  let home: string;
  const data = randomBytes(2 * 1024 * 1024 + 5);

  before(async () => {
    // A fresh HOME: glanceclient caches the image schema in ~/.glanceclient.
    home = mkdtempSync(path.join(tmpdir(), 'imago-glance-stores-'));
    writeFileSync(path.join(home, 'one.raw'), data);
    s = await startTestServer({
      config: {
        stores: [
          { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast store' },
          { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'Cheap store' },
        ],
        defaultStore: 'fast',
      },
    });
  });
  after(async () => {
    await s?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('image-create-via-import --import-method glance-direct --stores cheap: the image ends active in cheap only', async () => {
    const r = await glanceInTerminal(['--os-image-url', s.url, '--os-auth-token', TOKENS.admin, 'image-create-via-import', '--disk-format', 'raw',
      '--container-format', 'bare', '--name', 'viaimp', '--file', 'one.raw', '--import-method', 'glance-direct', '--stores', 'cheap'], home);
    assert.equal(r.code, 0, `glance image-create-via-import failed (exit ${r.code}):\n${r.output}`);
    const id = field(r.output, 'id');
    assert.match(id ?? '', /^[0-9a-f-]{36}$/, r.output);
    assert.equal(field(r.output, 'name'), 'viaimp');

    // The import runs as a task: wait for it to finish.
    const image = await waitFor('the import to finish', async () => {
      const res = await s.req('GET', `/v2/images/${id}`);
      assert.equal(res.status, 200);
      const img = (await res.json()) as Record<string, any>;
      if (img.status === 'active' && !('os_glance_import_task' in img)) return img;
      assert.ok(['queued', 'uploading', 'importing', 'active'].includes(img.status), `status ${img.status}`);
      return undefined;
    }, 60_000, 100);
    assert.equal(image.status, 'active');
    assert.equal(image.stores, 'cheap');
    assert.equal(image.os_glance_failed_import, '');
    assert.equal(image.os_glance_importing_to_stores, '');
    assert.equal(image.size, data.length);
    assert.equal(image.checksum, createHash('md5').update(data).digest('hex'));

    const download = await s.req('GET', `/v2/images/${id}/file`);
    assert.equal(download.status, 200);
    assert.ok(Buffer.from(await download.arrayBuffer()).equals(data), 'the bytes served are the bytes of one.raw');
    // Only cheap holds a copy: removing it from cheap is refused as removing the last copy.
    const last = await s.req('DELETE', `/v2/stores/cheap/${id}`);
    assert.equal(last.status, 403);
    const notInFast = await s.req('DELETE', `/v2/stores/fast/${id}`);
    assert.equal(notInFast.status, 404);
  });

  test('v1 commands: Imago answers 300 with the versions document, glanceclient says the version is not available', async () => {
    const r = await glanceInTerminal(['--os-image-api-version', '1', '--os-image-url', s.url, '--os-auth-token', TOKENS.admin, 'image-list'], home);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /HTTPMultipleChoices \(HTTP 300\) Requested version of OpenStack Images API is not available/);
  });
});
