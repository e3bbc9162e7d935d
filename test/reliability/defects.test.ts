import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { importImage, serveFiles, stage, waitTasks, type FileServer } from '../import/helpers.js';
import { assertErrorShape, databases, serverOn, sleep } from './helpers.js';

/**
 * The defects of issue 14 (items 3, 5, 6, 7), each as it was reported. Item 2
 * (memory per abandoned upload) is in leaks.test.ts, item 4 (cut disk images)
 * in formats.test.ts.
 */

describe('item 3: an import never shows queued while its task runs', () => {
  let s: TestServer;
  let dir: string;
  before(async () => {
    s = await startTestServer();
    dir = mkdtempSync(path.join(tmpdir(), 'imago-defects-'));
  });
  after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a failing glance-direct import: image, lock and task change in one visible step', async () => {
    // A slow data removal (a busy store) widens the window in which a rollback done in two
    // steps showed the image queued, still locked, with its task processing.
    const data = s.rt.data;
    const removeLocations = data.removeLocations.bind(data);
    data.removeLocations = async (locs) => {
      await sleep(300);
      return removeLocations(locs);
    };
    try {
      const base = path.join(dir, 'base.raw');
      writeFileSync(base, Buffer.alloc(64 * 1024));
      const file = path.join(dir, 'backed.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', file]);
      for (let run = 0; run < 3; run++) {
        const img = await createImage(s, { disk_format: 'qcow2', name: `backed-${run}` });
        assert.equal((await stage(s, img.id, readFileSync(file))).status, 204);
        assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
        let polls = 0;
        for (;;) {
          const image = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, any>;
          polls++;
          if (image.status === 'queued') {
            assert.equal(image.os_glance_import_task, undefined, `queued image ${img.id} still holds the import lock (poll ${polls})`);
            const tasks = ((await (await s.req('GET', `/v2/images/${img.id}/tasks`)).json()) as { tasks: Record<string, any>[] }).tasks;
            assert.equal(tasks[0].status, 'failure', 'the task ended with the rollback');
            assert.match(tasks[0].message, /backing file/);
            break;
          }
          assert.equal(image.status, 'importing');
          // Staging again while the import runs is refused; a 204 is only right once the task has ended.
          if (polls % 5 === 0) {
            const again = await stage(s, img.id, Buffer.from('x'));
            if (again.status === 204) {
              const tasks = ((await (await s.req('GET', `/v2/images/${img.id}/tasks`)).json()) as { tasks: Record<string, any>[] }).tasks;
              assert.equal(tasks[0].status, 'failure', 'staged again (204) while the task was still running');
              break;
            }
            assert.equal(again.status, 409);
          }
        }
      }
    } finally {
      data.removeLocations = removeLocations;
    }
  });

  test('a successful import: the image turns active in the same step as its task succeeds', async () => {
    const img = await createImage(s, { name: 'fine' });
    assert.equal((await stage(s, img.id, Buffer.alloc(300_000, 3))).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
    for (;;) {
      const image = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, any>;
      if (image.status === 'active') {
        assert.equal(image.os_glance_import_task, undefined);
        const tasks = ((await (await s.req('GET', `/v2/images/${img.id}/tasks`)).json()) as { tasks: Record<string, any>[] }).tasks;
        assert.equal(tasks[0].status, 'success');
        break;
      }
      assert.equal(image.status, 'importing');
    }
  });
});

describe('item 5: credentials in a web-download URL are never echoed', () => {
  let s: TestServer;
  let web: FileServer;
  before(async () => {
    web = await serveFiles({
      '/image.raw': (_q, r) => r.end(Buffer.alloc(1000, 1)),
      '/to-userinfo': (_q, r) => r.writeHead(302, { location: `http://carol:redirsecret@127.0.0.1:${web.port}/image.raw` }).end(),
    });
    s = await startTestServer({ config: { import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } } } });
  });
  after(async () => {
    await s.close();
    await web.close();
  });

  test('a URL with user:password@ is refused with 400, and neither the answer nor the image shows the secret', async () => {
    const img = await createImage(s, { name: 'creds' }, 'member');
    await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } });
    for (const uri of [`http://alice:s3cr3t@127.0.0.1:${web.port}/image.raw`, `http://alice@127.0.0.1:${web.port}/image.raw`, 'http://alice:s3cr3t with space@127.0.0.1/x', 'http://:s3cr3t@127.0.0.1/x']) {
      const res = await importImage(s, img.id, { method: { name: 'web-download', uri } }, { token: 'member' });
      const text = await res.text();
      assert.equal(res.status, 400, `${uri}: ${text}`);
      assertErrorShape(400, res.headers.get('content-type'), text, uri);
      assert.doesNotMatch(text, /s3cr3t|alice/, uri);
    }
    const tasks = await (await s.req('GET', `/v2/images/${img.id}/tasks`, { token: 'member' })).text();
    assert.doesNotMatch(tasks, /s3cr3t/);
    assert.equal(((await (await s.req('GET', `/v2/images/${img.id}`, { token: 'member' })).json()) as { status: string }).status, 'queued');
  });

  test('a redirect to a URL with credentials fails the task, whose message shows *** instead', async () => {
    const img = await createImage(s, { name: 'redir' });
    const res = await importImage(s, img.id, { method: { name: 'web-download', uri: `${web.url}/to-userinfo` } });
    assert.equal(res.status, 202);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.status, 'failure');
    const text = await (await s.req('GET', `/v2/tasks/${task.id}`)).text();
    assert.doesNotMatch(text, /redirsecret|carol/);
    assert.match(text, /\*\*\*@127\.0\.0\.1/);
  });
});

describe('item 6: a NUL character is a 400 with the JSON body on every database', async () => {
  for (const kind of await databases()) {
    test(`${kind}: every string that reaches the database`, async () => {
      const s = await serverOn(kind);
      try {
        const img = await createImage(s, { name: 'nul' });
        const ns = await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: 'Nul::Test' } });
        assert.equal(ns.status, 201);
        const cases: [string, string, unknown, number?][] = [
          ['POST', '/v2/images', { name: 'a\u0000b' }],
          ['POST', '/v2/images', { disk_format: 'raw', container_format: 'bare', 'x\u0000': 'v' }],
          ['POST', '/v2/images', { tags: ['t\u0000'] }],
          ['POST', '/v2/images', { os_distro: 'deb\u0000ian' }],
          ['PATCH', `/v2/images/${img.id}`, [{ op: 'add', path: '/p', value: '\u0000' }]],
          ['PATCH', `/v2/images/${img.id}`, [{ op: 'add', path: '/p\u0000', value: 'v' }]],
          ['POST', `/v2/images/${img.id}/members`, { member: '\u0000' }],
          ['POST', `/v2/images/${img.id}/import`, { method: { name: 'web-download', uri: 'http://h/\u0000' } }],
          ['POST', '/v2/metadefs/namespaces', { namespace: 'N\u0000' }],
          ['POST', '/v2/metadefs/namespaces/Nul::Test/objects', { name: 'o\u0000' }],
          ['POST', '/v2/metadefs/namespaces/Nul::Test/tags', { tags: [{ name: 't\u0000' }] }],
          ['POST', '/v2/metadefs/namespaces/Nul::Test/properties', { name: 'p', title: 'T\u0000', type: 'string' }],
          ['PUT', `/v2/images/${img.id}/tags/a%00b`, undefined],
          ['GET', '/v2/images?name=a%00b', undefined],
          ['GET', `/v2/images?marker=${img.id}%00`, undefined],
          ['GET', '/v2/tasks?status=%00', undefined],
          // reading or deleting a path that names something with a NUL finds nothing: 404, as for any unknown id
          ['GET', '/v2/images/%00', undefined, 404],
          ['DELETE', `/v2/images/${img.id}/members/p2%00`, undefined, 404],
          ['GET', '/v2/metadefs/namespaces/N%00', undefined, 404],
        ];
        for (const [method, url, body, status = 400] of cases) {
          const res = await s.req(method, url, body === undefined ? {} : { json: body });
          const text = await res.text();
          assert.equal(res.status, status, `${kind} ${method} ${url} ${JSON.stringify(body)}: ${res.status} ${text}`);
          assertErrorShape(status, res.headers.get('content-type'), text, `${method} ${url}`);
          assert.match(text, /NUL/);
        }
        // the escape itself, spelled out, is ordinary text
        assert.equal((await s.req('POST', '/v2/images', { json: { name: 'a\\u0000b' } })).status, 201);
        assert.equal((await s.req('GET', '/healthcheck')).status < 500, true);
        const after = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, unknown>;
        assert.equal(after.p, undefined);
      } finally {
        await s.close();
      }
    });
  }
});

describe('item 7: POST /v2/images with another project\'s id', () => {
  test('answers 409 as Glance does (documented in docs/access.md); the image itself stays invisible', async () => {
    const s = await startTestServer();
    try {
      const theirs = await createImage(s, { name: 'private', visibility: 'private' }, 'other');
      const res = await s.req('POST', '/v2/images', { token: 'member', json: { id: theirs.id, name: 'mine' } });
      assert.equal(res.status, 409);
      const text = await res.text();
      assertErrorShape(409, res.headers.get('content-type'), text);
      assert.doesNotMatch(text, /private/, 'nothing about the image but its existence');
      assert.equal((await s.req('GET', `/v2/images/${theirs.id}`, { token: 'member' })).status, 404);
    } finally {
      await s.close();
    }
  });
});
