import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startTestServer, createImage, uploadBytes, makeDataDir, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { errorOf, getImage, importImage, md5, serveFiles, sha512, stage, waitImage, waitTasks, type FileServer } from '../import/helpers.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;

function twoStores(extra: Record<string, unknown> = {}) {
  return {
    stores: [
      { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast store' },
      { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'Cheap store' },
    ],
    defaultStore: 'fast',
    ...extra,
  };
}

async function consistent(s: TestServer): Promise<void> {
  assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
}

async function download(s: TestServer, id: string): Promise<Buffer> {
  const res = await s.req('GET', `/v2/images/${id}/file`);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

function storeFile(s: TestServer, store: string, id: string): string {
  return path.join(s.dataDir, store, id);
}

/** A qcow2 image made by qemu-img, optionally with a backing file (unsafe). */
function qcow2(dir: string, opts: { backing?: boolean } = {}): Buffer {
  const file = path.join(dir, `img-${Math.random().toString(16).slice(2)}.qcow2`);
  if (opts.backing) {
    const base = path.join(dir, 'base.raw');
    writeFileSync(base, Buffer.alloc(1024 * 1024));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', file]);
  } else {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '1G']);
  }
  return readFileSync(file);
}

/** A server whose /slow route sends part of the data, then waits for release(). */
async function slowServer(data: Buffer) {
  let release!: () => void;
  let released = new Promise<void>((r) => (release = r));
  const srv = await serveFiles({
    '/slow': (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 2 * MiB));
      released.then(() => res.end(data.subarray(2 * MiB)));
    },
    // the same without a Content-Length: the total is unknown until the end
    '/slow-chunked': (_req, res) => {
      res.writeHead(200);
      res.write(data.subarray(0, 2 * MiB));
      released.then(() => res.end(data.subarray(2 * MiB)));
    },
    '/fast': (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
    },
  });
  return {
    srv,
    release: () => release(),
    rearm: () => {
      released = new Promise<void>((r) => (release = r));
    },
  };
}

describe('POST /v2/images/{id}/import', () => {
  let s: TestServer;
  let web: Awaited<ReturnType<typeof slowServer>>;
  let fixtures: string;
  const webData = pattern(3 * MiB, 7);

  before(async () => {
    fixtures = mkdtempSync(path.join(tmpdir(), 'imago-import-fixtures-'));
    web = await slowServer(webData);
    s = await startTestServer({
      config: twoStores({ import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.srv.port] } } }),
    });
  });
  after(async () => {
    web.release();
    await s.close();
    await web.srv.close();
    rmSync(fixtures, { recursive: true, force: true });
  });

  test('glance-direct into the default store: active, hashes of the staged bytes, task success', async () => {
    const img = await createImage(s, { name: 'gd' }, 'member');
    const data = pattern(1500 * 1024, 2);
    assert.equal((await stage(s, img.id, data, 'member')).status, 204);
    const res = await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token: 'member' });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
    const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
    assert.equal(done.stores, 'fast');
    assert.equal(done.size, data.length);
    assert.equal(done.virtual_size, data.length);
    assert.equal(done.checksum, md5(data));
    assert.equal(done.os_hash_algo, 'sha512');
    assert.equal(done.os_hash_value, sha512(data));
    assert.equal(done.os_glance_importing_to_stores, '');
    assert.equal(done.os_glance_failed_import, '');
    assert.deepEqual(await download(s, img.id), data);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.status, 'success');
    assert.equal(task.message, 'Copied 1 MiB');
    assert.equal(task.type, 'api_image_import');
    assert.deepEqual(task.input, { image_id: img.id, import_req: { method: { name: 'glance-direct' } }, backend: ['fast'] });
    assert.deepEqual(task.result, { image_id: img.id });
    assert.equal(task.owner, 'p1');
    assert.equal(task.user_id, 'member-user');
    assert.match(task.request_id, /^req-/);
    await consistent(s);
  });

  test('glance-direct adopts the staged file by rename, with no second hashing pass', async () => {
    const img = await createImage(s);
    const data = pattern(2 * MiB, 3);
    assert.equal((await stage(s, img.id, data)).status, 204);
    const staged = statSync(path.join(s.dataDir, 'staging', img.id));
    const pool = s.rt.hashPool;
    const open = pool.open.bind(pool);
    let sessions = 0;
    pool.open = () => {
      sessions++;
      return open();
    };
    try {
      assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['cheap'] })).status, 202);
      const done = await waitImage(s, img.id, (i) => i.status === 'active');
      assert.equal(done.stores, 'cheap');
      assert.equal(done.os_hash_value, sha512(data));
    } finally {
      pool.open = open;
    }
    assert.equal(sessions, 0, 'the import hashed the data again');
    const stored = statSync(storeFile(s, 'cheap', img.id));
    assert.equal(stored.ino, staged.ino, 'the staged file was copied, not renamed');
    assert.deepEqual(await download(s, img.id), data);
    await consistent(s);
  });

  test('glance-direct to several stores, by list, header and all_stores; each copy verified', async () => {
    const data = pattern(MiB + 17, 4);
    const cases: [unknown, Record<string, string>, string][] = [
      [{ method: { name: 'glance-direct' }, stores: ['fast', 'cheap'] }, {}, 'cheap,fast'],
      [{ method: { name: 'glance-direct' } }, { 'x-image-meta-store': 'cheap' }, 'cheap'],
      [{ method: { name: 'glance-direct' }, all_stores: true }, {}, 'cheap,fast'],
    ];
    for (const [body, headers, stores] of cases) {
      const img = await createImage(s);
      assert.equal((await stage(s, img.id, data)).status, 204);
      assert.equal((await importImage(s, img.id, body, { headers })).status, 202);
      const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
      assert.equal(done.stores, stores, JSON.stringify(body));
      for (const st of stores.split(',')) assert.deepEqual(readFileSync(storeFile(s, st, img.id)), data);
      const [task] = await waitTasks(s, img.id);
      assert.deepEqual(task.input.backend.slice().sort(), stores.split(','));
    }
    await consistent(s);
  });

  test('preconditions and errors, as Glance answers them', async () => {
    const queued = await createImage(s);
    const staged = await createImage(s);
    assert.equal((await stage(s, staged.id, pattern(100))).status, 204);
    const active = await createImage(s);
    assert.equal((await uploadBytes(s, active.id, pattern(100))).status, 204);
    const noDisk = await createImage(s, { disk_format: null });
    const noContainer = await createImage(s, { container_format: null });
    const gd = { method: { name: 'glance-direct' } };
    const cases: [string, unknown, number, RegExp, Record<string, string>?][] = [
      [staged.id, { method: { name: 'bogus' } }, 400, /^Unknown import method name 'bogus'\.$/],
      [staged.id, [1, 2], 400, /JSON object/],
      [staged.id, {}, 400, /requires a 'method'/],
      [staged.id, { method: {} }, 400, /requires a 'name'/],
      [staged.id, { method: 'glance-direct' }, 400, /method/],
      [staged.id, { ...gd, all_stores: 'yes' }, 400, /'all_stores' must be boolean/],
      [staged.id, { ...gd, all_stores_must_succeed: 1 }, 400, /'all_stores_must_succeed' must be boolean/],
      [staged.id, { ...gd, all_stores: true, stores: ['fast'] }, 400, /All_stores parameter can't be used/],
      [staged.id, { ...gd, stores: ['fast'] }, 400, /can't be both specified/, { 'x-image-meta-store': 'cheap' }],
      [staged.id, { ...gd, stores: 'fast' }, 400, /list of store/],
      [staged.id, { ...gd, stores: [] }, 400, /at least one store/],
      [staged.id, { ...gd, stores: ['nope'] }, 409, /^Store for identifier nope not found$/],
      [staged.id, gd, 409, /^Store for identifier nope not found$/, { 'x-image-meta-store': 'nope' }],
      [queued.id, gd, 409, /^Image needs to be staged before 'glance-direct' method can be used$/],
      [active.id, gd, 409, /^Image with status active cannot be target for import$/],
      [staged.id, { method: { name: 'web-download', uri: `${web.srv.url}/fast` } }, 409, /needs to be in 'queued' state to use 'web-download'/],
      [queued.id, { method: { name: 'copy-image' }, stores: ['cheap'] }, 409, /^Only images with status active can be targeted for copying$/],
      [active.id, { method: { name: 'copy-image' }, stores: ['fast'] }, 400, /^Image is already present at store 'fast'$/],
      [noDisk.id, { method: { name: 'web-download', uri: `${web.srv.url}/fast` } }, 409, /'disk_format' needs to be set before import/],
      [noContainer.id, { method: { name: 'web-download', uri: `${web.srv.url}/fast` } }, 409, /'container_format' needs to be set before import/],
      [queued.id, { method: { name: 'web-download' } }, 400, /needs the image's 'uri'/],
      [queued.id, { method: { name: 'web-download', uri: 'http://169.254.169.254/latest/meta-data' } }, 400, /^URI for web-download does not pass filtering: http:\/\/169\.254\.169\.254/],
      [queued.id, { method: { name: 'web-download', uri: 'file:///etc/passwd' } }, 400, /does not pass filtering/],
      [queued.id, { method: { name: 'glance-download', glance_image_id: queued.id } }, 400, /'glance_region' needs to be set/],
      [queued.id, { method: { name: 'glance-download', glance_region: 'R2' } }, 400, /'glance_image_id' needs to be set/],
      [queued.id, { method: { name: 'glance-download', glance_region: 'R2', glance_image_id: 'xyz' } }, 400, /does not look like a UUID/],
      ['00000000-0000-0000-0000-000000000000', gd, 404, /No image found/],
      ['not-a-uuid', gd, 404, /No image found/],
    ];
    for (const [id, body, status, message, headers] of cases) {
      const res = await importImage(s, id, body, { headers });
      assert.equal(res.status, status, `${JSON.stringify(body)} ${JSON.stringify(headers ?? {})}`);
      assert.match((await errorOf(res)).message, message, JSON.stringify(body));
    }
    // nothing changed
    assert.equal((await getImage(s, staged.id)).status, 'uploading');
    assert.equal((await getImage(s, queued.id)).status, 'queued');
    assert.equal('os_glance_import_task' in (await getImage(s, staged.id)), false);
    // an empty body
    const empty = await s.req('POST', `/v2/images/${staged.id}/import`, { headers: { 'content-type': 'application/json' } });
    assert.equal(empty.status, 400);
    await errorOf(empty);
  });

  test('policy: readers 403, other projects 404, copy-image is for admins', async () => {
    const img = await createImage(s, {}, 'member');
    assert.equal((await stage(s, img.id, pattern(10), 'member')).status, 204);
    const reader = await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token: 'reader' });
    assert.equal(reader.status, 403);
    await errorOf(reader);
    const other = await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token: 'other' });
    assert.equal(other.status, 404);
    await errorOf(other);
    const active = await createImage(s, {}, 'member');
    assert.equal((await uploadBytes(s, active.id, pattern(10), 'member')).status, 204);
    const copy = await importImage(s, active.id, { method: { name: 'copy-image' }, stores: ['cheap'] }, { token: 'member' });
    assert.equal(copy.status, 403);
    await errorOf(copy);
  });

  test('the import lock: a running task holds it (409), an expired or finished one is taken over', async () => {
    const img = await createImage(s);
    assert.equal((await uploadBytes(s, img.id, pattern(1000))).status, 204);
    const fake = '11111111-2222-4333-8444-555555555555';
    const ts = new Date().toISOString();
    await s.rt.db.insertInto('tasks').values({ id: fake, type: 'api_image_import', status: 'processing', owner: 'admin', user_id: null, request_id: null, image_id: img.id, input: '{}', result: null, message: '', expires_at: null, created_at: ts, updated_at: ts, runner_node: s.rt.nodeId, heartbeat_at: ts, attempts: 1, state: null }).execute();
    await s.rt.db.insertInto('image_properties').values({ image_id: img.id, name: 'os_glance_import_task', value: fake }).execute();
    const held = await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['cheap'] });
    assert.equal(held.status, 409);
    assert.equal((await errorOf(held)).message, 'Image has active task');
    // no progress for over an hour: Glance's rule lets the next import take the lock
    const old = new Date(Date.now() - 61 * 60_000).toISOString();
    await s.rt.db.updateTable('tasks').set({ updated_at: old }).where('id', '=', fake).execute();
    assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['cheap'] })).status, 202);
    const done = await waitImage(s, img.id, (i) => i.stores === 'cheap,fast' && !('os_glance_import_task' in i));
    assert.equal(done.status, 'active');
    const stale = (await s.rt.tasks.repo.get(fake))!;
    assert.equal(stale.status, 'failure');
    assert.match(stale.message, /Expired lock preempted/);
    await s.rt.db.deleteFrom('tasks').where('id', '=', fake).execute();
  });

  test('web-download: store lists are accurate while running and after; the message follows the bytes', async () => {
    web.rearm();
    const img = await createImage(s);
    const res = await importImage(s, img.id, { method: { name: 'web-download', uri: `${web.srv.url}/slow` }, stores: ['cheap', 'fast'] });
    assert.equal(res.status, 202);
    const running = await getImage(s, img.id);
    assert.equal(running.status, 'importing');
    assert.equal(running.os_glance_importing_to_stores, 'cheap,fast');
    assert.equal(running.os_glance_failed_import, '');
    assert.match(running.os_glance_import_task, /^[0-9a-f-]{36}$/);
    const taskId = running.os_glance_import_task;
    // while bytes flow, the task says how many
    const task = await waitFor('the task to report 2 MiB copied', async () => {
      const t = (await (await s.req('GET', `/v2/tasks/${taskId}`)).json()) as Record<string, any>;
      return t.progress?.bytes_done === 2 * MiB && t;
    }, 10_000, 50);
    assert.equal(task.status, 'processing');
    // the total comes from the remote Content-Length: people read the message, scripts the progress field
    assert.equal(task.message, 'Copied 2 MiB of 3 MiB (66 %)');
    assert.deepEqual(task.progress, { bytes_done: 2 * MiB, bytes_expected: 3 * MiB });
    const [listed] = (await (await s.req('GET', `/v2/images/${img.id}/tasks`)).json()).tasks as Record<string, any>[];
    assert.deepEqual(listed.progress, { bytes_done: 2 * MiB, bytes_expected: 3 * MiB });
    web.release();
    const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
    assert.equal(done.stores, 'cheap,fast');
    assert.equal(done.os_glance_importing_to_stores, '');
    assert.equal(done.os_glance_failed_import, '');
    assert.equal(done.os_hash_value, sha512(webData));
    assert.deepEqual(await download(s, img.id), webData);
    const [t] = await waitTasks(s, img.id);
    // the end keeps Glance's wording; the progress field says all bytes moved
    assert.equal(t.message, 'Copied 3 MiB');
    assert.equal(t.progress.bytes_done, 3 * MiB);
    await consistent(s);
  });

  test('web-download without Content-Length: progress counts bytes and says the total is unknown', async () => {
    web.rearm();
    const img = await createImage(s);
    assert.equal((await importImage(s, img.id, { method: { name: 'web-download', uri: `${web.srv.url}/slow-chunked` } })).status, 202);
    const taskId = (await getImage(s, img.id)).os_glance_import_task;
    const task = await waitFor('the task to report 2 MiB copied', async () => {
      const t = (await (await s.req('GET', `/v2/tasks/${taskId}`)).json()) as Record<string, any>;
      return t.progress?.bytes_done === 2 * MiB && t;
    }, 10_000, 50);
    assert.equal(task.message, 'Copied 2 MiB');
    assert.deepEqual(task.progress, { bytes_done: 2 * MiB, bytes_expected: null });
    web.release();
    const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
    assert.equal(done.size, 3 * MiB);
    assert.equal((await waitTasks(s, img.id))[0].message, 'Copied 3 MiB');
    await consistent(s);
  });

  test('deleting the image during an import stops it; nothing is left', async () => {
    web.rearm();
    const img = await createImage(s);
    assert.equal((await importImage(s, img.id, { method: { name: 'web-download', uri: `${web.srv.url}/slow` } })).status, 202);
    const taskId = (await getImage(s, img.id)).os_glance_import_task;
    await waitFor('the task to report 2 MiB copied', async () => ((await (await s.req('GET', `/v2/tasks/${taskId}`)).json()) as { message: string }).message.startsWith('Copied 2 MiB'));
    assert.equal((await s.req('DELETE', `/v2/images/${img.id}`)).status, 204);
    web.release();
    await waitFor('the task to fail', async () => (await s.rt.tasks.repo.get(taskId))!.status === 'failure');
    const task = (await s.rt.tasks.repo.get(taskId))!;
    assert.match(task.message, /deleted while it was being imported/);
    await consistent(s);
  });

  test('copy-image copies to other stores in parallel, each verified; all_stores skips present ones', async () => {
    const img = await createImage(s);
    const data = pattern(2 * MiB + 5, 9);
    assert.equal((await uploadBytes(s, img.id, data)).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['cheap'] })).status, 202);
    const done = await waitImage(s, img.id, (i) => i.stores === 'cheap,fast' && !('os_glance_import_task' in i));
    assert.equal(done.status, 'active');
    assert.equal(done.os_glance_importing_to_stores, '');
    assert.deepEqual(readFileSync(storeFile(s, 'cheap', img.id)), data);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.message, 'Copied 2 MiB');
    // everything already there: 202, no new task
    assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, all_stores: true })).status, 202);
    assert.equal((await waitTasks(s, img.id)).length, 1);
    await consistent(s);
  });

  test('copy-image refuses a copy that does not match the recorded hash; the image is unchanged', async () => {
    const img = await createImage(s);
    const data = pattern(MiB, 10);
    assert.equal((await uploadBytes(s, img.id, data)).status, 204);
    const corrupted = Buffer.from(data);
    corrupted[1000] ^= 0xff;
    writeFileSync(storeFile(s, 'fast', img.id), corrupted);
    assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['cheap'] })).status, 202);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.status, 'failure');
    assert.match(task.message, /cheap/);
    assert.match(task.message, /does not match/);
    assert.match(task.message, /unchanged/);
    const after = await getImage(s, img.id);
    assert.equal(after.status, 'active');
    assert.equal(after.stores, 'fast');
    assert.equal(after.os_glance_failed_import, 'cheap');
    assert.equal(after.os_glance_importing_to_stores, '');
    assert.equal('os_glance_import_task' in after, false);
    await consistent(s);
  });

  test('format inspection: content that is not the declared disk_format, or unsafe, fails the import', async () => {
    const cases: [Buffer, string, RegExp][] = [
      [qcow2(fixtures), 'raw', /Image content is qcow2 but disk_format is raw/],
      [qcow2(fixtures, { backing: true }), 'qcow2', /not safe.*backing/i],
      [pattern(4096), 'qcow2', /Image content is raw but disk_format is qcow2/],
    ];
    for (const [data, diskFormat, message] of cases) {
      const img = await createImage(s, { disk_format: diskFormat });
      assert.equal((await stage(s, img.id, data)).status, 204);
      assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
      const [task] = await waitTasks(s, img.id);
      assert.equal(task.status, 'failure');
      assert.match(task.message, message);
      assert.match(task.message, /back in status queued; stage the data again/);
      const after = await getImage(s, img.id);
      assert.equal(after.status, 'queued');
      assert.equal(after.size, null);
      assert.equal(after.os_glance_failed_import, 'fast');
      assert.equal(after.os_glance_importing_to_stores, '');
      assert.equal('os_glance_import_task' in after, false);
      assert.equal(await s.rt.staging.get(img.id), undefined);
    }
    // a real qcow2 declared qcow2 passes, with its virtual size
    const good = await createImage(s, { disk_format: 'qcow2' });
    assert.equal((await stage(s, good.id, qcow2(fixtures))).status, 204);
    assert.equal((await importImage(s, good.id, { method: { name: 'glance-direct' } })).status, 202);
    const done = await waitImage(s, good.id, (i) => i.status === 'active');
    assert.equal(done.virtual_size, 1024 ** 3);
    await consistent(s);
  });

  test('format inspection on direct upload: 415 for a mismatch, 400 for unsafe data, virtual_size from the bytes', async () => {
    const mismatch = await createImage(s, { disk_format: 'raw' });
    const r1 = await uploadBytes(s, mismatch.id, qcow2(fixtures));
    assert.equal(r1.status, 415);
    assert.match((await errorOf(r1)).message, /Image content is qcow2 but disk_format is raw/);
    assert.equal((await getImage(s, mismatch.id)).status, 'queued');
    const unsafe = await createImage(s, { disk_format: 'qcow2' });
    const r2 = await uploadBytes(s, unsafe.id, qcow2(fixtures, { backing: true }));
    assert.equal(r2.status, 400);
    assert.match((await errorOf(r2)).message, /backing/);
    assert.equal((await getImage(s, unsafe.id)).status, 'queued');
    const good = await createImage(s, { disk_format: 'qcow2' });
    assert.equal((await uploadBytes(s, good.id, qcow2(fixtures))).status, 204);
    assert.equal((await getImage(s, good.id)).virtual_size, 1024 ** 3);
    // a container wraps the disk: its bytes need not be the disk format (as Glance), but unsafe data is refused
    const ova = await createImage(s, { disk_format: 'vmdk', container_format: 'ova' });
    assert.equal((await uploadBytes(s, ova.id, pattern(8192))).status, 204);
    assert.equal((await getImage(s, ova.id)).virtual_size, null);
    const wrapped = await createImage(s, { disk_format: 'qcow2', container_format: 'ovf' });
    assert.equal((await uploadBytes(s, wrapped.id, qcow2(fixtures, { backing: true }))).status, 400);
    await consistent(s);
  });
});

describe('import with a failing store', () => {
  let s: TestServer;
  let dataDir: string;
  before(async () => {
    dataDir = makeDataDir();
    s = await startTestServer({
      dataDir,
      config: twoStores({
        stores: [
          { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast store' },
          { id: 'broken', type: 'filesystem', path: 'broken', description: 'Broken store' },
        ],
      }),
    });
  });
  after(async () => {
    await s.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** The store's directory is a file while `fn` runs: every write to it fails. */
  async function withBrokenStore(fn: () => Promise<void>): Promise<void> {
    const where = path.join(dataDir, 'broken');
    writeFileSync(where, 'not a directory');
    try {
      await fn();
    } finally {
      rmSync(where, { force: true });
    }
  }

  test('all_stores_must_succeed (default): one failure rolls back every store; the image is queued again', async () => {
    const img = await createImage(s);
    const data = pattern(MiB, 11);
    assert.equal((await stage(s, img.id, data)).status, 204);
    let task: Record<string, any> = {};
    await withBrokenStore(async () => {
      assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['fast', 'broken'] })).status, 202);
      [task] = await waitTasks(s, img.id);
    });
    assert.equal(task.status, 'failure');
    assert.match(task.message, /^Import to store broken failed: /);
    assert.match(task.message, /back in status queued/);
    const after = await getImage(s, img.id);
    assert.equal(after.status, 'queued');
    assert.equal('stores' in after, false);
    assert.equal(after.checksum, null);
    assert.equal(after.os_glance_importing_to_stores, '');
    assert.equal(after.os_glance_failed_import, 'broken,fast');
    assert.equal('os_glance_import_task' in after, false);
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
    // it can be staged and imported again, to a working store
    assert.equal((await stage(s, img.id, data)).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['fast'] })).status, 202);
    const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
    assert.equal(done.os_glance_failed_import, 'broken');
  });

  test('all_stores_must_succeed false: the image becomes active where it could; the failed store is listed', async () => {
    const img = await createImage(s);
    const data = pattern(MiB, 12);
    assert.equal((await stage(s, img.id, data)).status, 204);
    let task: Record<string, any> = {};
    await withBrokenStore(async () => {
      assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['broken', 'fast'], all_stores_must_succeed: false })).status, 202);
      [task] = await waitTasks(s, img.id);
    });
    assert.equal(task.status, 'success');
    const after = await getImage(s, img.id);
    assert.equal(after.status, 'active');
    assert.equal(after.stores, 'fast');
    assert.equal(after.os_glance_failed_import, 'broken');
    assert.equal(after.os_glance_importing_to_stores, '');
    assert.equal(after.os_hash_value, sha512(data));
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  });
});

describe('import quotas', () => {
  test('413 when the owner has no image_size_total left; copy-image counts every copy', async () => {
    const s = await startTestServer({ config: twoStores({ quotas: { enabled: true, defaults: { image_size_total: 3, image_stage_total: 100, image_count_total: 100, image_count_uploading: 10 } } }) });
    try {
      const img = await createImage(s, {}, 'member');
      assert.equal((await uploadBytes(s, img.id, pattern(2 * MiB), 'member')).status, 204);
      const copy = await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['cheap'] });
      assert.equal(copy.status, 413);
      assert.match((await errorOf(copy)).message, /image_size_total/);
      const staged = await createImage(s, {}, 'member');
      assert.equal((await stage(s, staged.id, pattern(2 * MiB), 'member')).status, 204);
      assert.equal((await importImage(s, staged.id, { method: { name: 'glance-direct' } }, { token: 'member' })).status, 202);
      const [task] = await waitTasks(s, staged.id);
      assert.equal(task.status, 'failure');
      assert.match(task.message, /image_size_total/);
      assert.equal((await getImage(s, staged.id)).status, 'queued');
    } finally {
      await s.close();
    }
  });
});


