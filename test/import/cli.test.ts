/**
 * Interoperable import driven by the real command-line clients (Debian's
 * python3-glanceclient and python3-openstackclient) in static-token mode.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { md5, serveFiles, sha512, waitImage, type FileServer } from './helpers.js';
import { pattern } from '../support/bytes.js';

const run = promisify(execFile);
const skip = !existsSync('/usr/bin/glance') || !existsSync('/usr/bin/openstack') ? 'glance or openstack CLI not installed' : false;
const MiB = 1024 * 1024;

/** A shell command with stdin closed, or fed from `input`: glanceclient reads image data from any stdin that is not a terminal. */
async function sh(cmd: string, env: Record<string, string> = {}, input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run('/bin/sh', ['-c', `${cmd} ${input ? `< '${input}'` : '<&-'}`], { env: { ...process.env, ...env }, maxBuffer: 16 * MiB, timeout: 120_000 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code ?? 1 };
  }
}

/** A value from glanceclient's Property/Value table. */
function field(table: string, name: string): string | undefined {
  const m = table.match(new RegExp(`^\\|\\s*${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*\\|\\s*(.*?)\\s*\\|$`, 'm'));
  return m?.[1];
}

describe('import with the real CLIs', { skip }, () => {
  let s: TestServer;
  let web: FileServer;
  let dir: string;
  let glance: string;
  const data = pattern(3 * MiB + 11, 61);
  let file: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'imago-cli-'));
    file = path.join(dir, 'disk.raw');
    writeFileSync(file, data);
    web = await serveFiles({ '/disk.raw': (_q, r) => r.end(data) });
    s = await startTestServer({
      config: {
        stores: [
          { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast store' },
          { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'Cheap store' },
        ],
        defaultStore: 'fast',
        import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } },
      },
    });
    // --os-image-api-version 2 and a HOME of its own: glanceclient then neither caches nor reads a cached image schema (docs/cli.md).
    glance = `HOME=${dir} glance --os-image-api-version 2 --os-image-url ${s.url} --os-auth-token ${TOKENS.admin}`;
  });
  after(async () => {
    await s.close();
    await web.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function active(id: string): Promise<Record<string, any>> {
    return waitImage(s, id, (i) => i.status === 'active' && !('os_glance_import_task' in i), 60_000);
  }

  test('glance image-create-via-import (glance-direct from stdin, and web-download)', async () => {
    const direct = await sh(`${glance} image-create-via-import --disk-format raw --container-format bare --name via-import`, {}, file);
    assert.equal(direct.code, 0, direct.stderr);
    const id = field(direct.stdout, 'id')!;
    assert.match(id, /^[0-9a-f-]{36}$/);
    const img = await active(id);
    assert.equal(img.checksum, md5(data));
    assert.equal(img.os_hash_value, sha512(data));
    const out = path.join(dir, 'out.raw');
    const dl = await sh(`${glance} image-download --file ${out} ${id}`);
    assert.equal(dl.code, 0, dl.stderr);
    assert.deepEqual(readFileSync(out), data);

    const webImport = await sh(`${glance} image-create-via-import --disk-format raw --container-format bare --name via-web --import-method web-download --uri ${web.url}/disk.raw`);
    assert.equal(webImport.code, 0, webImport.stderr);
    assert.equal((await active(field(webImport.stdout, 'id')!)).os_hash_value, sha512(data));
  });

  test('glance image-stage + image-import: glance-direct to two stores, web-download, copy-image; tasks and stores commands', async () => {
    const created = await sh(`${glance} image-create --disk-format raw --container-format bare --name staged`);
    assert.equal(created.code, 0, created.stderr);
    const id = field(created.stdout, 'id')!;
    assert.equal(field(created.stdout, 'status'), 'queued');
    const staged = await sh(`${glance} image-stage --file ${file} ${id}`);
    assert.equal(staged.code, 0, staged.stderr);
    const shown = await sh(`${glance} image-show ${id}`);
    assert.equal(field(shown.stdout, 'status'), 'uploading');
    assert.equal(field(shown.stdout, 'size'), String(data.length));
    const imported = await sh(`${glance} image-import --import-method glance-direct --stores fast,cheap ${id}`);
    assert.equal(imported.code, 0, imported.stderr);
    assert.equal((await active(id)).stores, 'cheap,fast');

    const tasks = await sh(`${glance} image-tasks ${id}`);
    assert.equal(tasks.code, 0, tasks.stderr);
    assert.match(tasks.stdout, /Copied 3 MiB \| success/);
    const list = await sh(`${glance} task-list`);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /api_image_import \| success/);

    const removed = await sh(`${glance} stores-delete --store cheap ${id}`);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await active(id)).stores, 'fast');
    const copied = await sh(`${glance} image-import --import-method copy-image --stores cheap ${id}`);
    assert.equal(copied.code, 0, copied.stderr);
    await waitImage(s, id, (i) => i.stores === 'cheap,fast', 60_000);

    const webId = field((await sh(`${glance} image-create --disk-format raw --container-format bare --name web`)).stdout, 'id')!;
    const webImport = await sh(`${glance} image-import --import-method web-download --uri ${web.url}/disk.raw ${webId}`);
    assert.equal(webImport.code, 0, webImport.stderr);
    assert.equal((await active(webId)).size, data.length);

    const info = await sh(`${glance} stores-info`);
    assert.match(info.stdout, /"id": "fast", "description": "Fast store", "default": "true"/);
    const methods = await sh(`${glance} import-info`);
    assert.match(methods.stdout, /"web-download", "copy-image"/);
    // errors reach the user as Glance's would
    const again = await sh(`${glance} image-import --import-method glance-direct ${id}`);
    assert.notEqual(again.code, 0);
  });

  test('openstack image create --import (openstacksdk: stage then import, from the OpenStack-image-import-methods header)', async () => {
    const env = { OS_AUTH_TYPE: 'admin_token', OS_TOKEN: TOKENS.admin, OS_ENDPOINT: `${s.url}/v2` };
    const created = await sh(`openstack image create --import --disk-format raw --container-format bare --file ${file} -f json osc-import`, env);
    assert.equal(created.code, 0, created.stderr);
    const id = JSON.parse(created.stdout).id;
    const img = await active(id);
    assert.equal(img.checksum, md5(data));
    const [task] = ((await (await s.req('GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Record<string, any>[] }).tasks;
    assert.equal(task.input.import_req.method.name, 'glance-direct');
    const out = path.join(dir, 'osc.raw');
    const saved = await sh(`openstack image save --file ${out} ${id}`, env);
    assert.equal(saved.code, 0, saved.stderr);
    assert.deepEqual(readFileSync(out), data);
  });
});
