import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, createImage, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { errorOf, getImage, importImage, serveFiles, sha512, waitImage, waitTasks, type FileServer } from './helpers.js';
import { pattern } from '../support/bytes.js';

const MiB = 1024 * 1024;

describe('web-download', () => {
  let s: TestServer;
  let web: FileServer;
  let other: FileServer;
  const data = pattern(3 * MiB + 123, 21);

  before(async () => {
    other = await serveFiles({ '/secret': (_q, r) => r.end('internal secret') });
    web = await serveFiles({
      '/image.raw': (_q, r) => {
        r.writeHead(200, { 'content-length': String(data.length) });
        r.end(data);
      },
      '/chunked.raw': (_q, r) => {
        r.writeHead(200);
        for (let i = 0; i < data.length; i += 64 * 1024) r.write(data.subarray(i, i + 64 * 1024));
        r.end();
      },
      '/moved': (_q, r) => r.writeHead(302, { location: '/image.raw' }).end(),
      '/to-other-port': (_q, r) => r.writeHead(301, { location: `${other.url}/secret` }).end(),
      '/to-metadata': (_q, r) => r.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' }).end(),
      '/to-file': (_q, r) => r.writeHead(302, { location: 'file:///etc/passwd' }).end(),
      '/loop': (_q, r) => r.writeHead(302, { location: '/loop' }).end(),
      '/huge': (_q, r) => {
        r.writeHead(200);
        const chunk = pattern(MiB, 3);
        let sent = 0;
        const more = () => {
          while (sent < 64 && r.write(chunk)) sent++;
          if (sent < 64) r.once('drain', more);
          else r.end();
        };
        r.on('error', () => {});
        more();
      },
      '/huge-announced': (_q, r) => {
        r.writeHead(200, { 'content-length': String(64 * MiB) });
        r.write(pattern(MiB));
      },
      '/cut': (req, r) => {
        r.writeHead(200, { 'content-length': String(2 * MiB) });
        r.write(pattern(MiB), () => req.socket.destroy());
      },
      '/gone': (_q, r) => r.writeHead(410).end('gone'),
    });
    s = await startTestServer({
      env: { IMAGO_IMAGE_SIZE_CAP: String(8 * MiB) },
      config: { import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } } },
    });
  });
  after(async () => {
    await s.close();
    await web.close();
    await other.close();
  });

  async function importFrom(url: string, extra: Record<string, unknown> = {}): Promise<{ id: string; task: Record<string, any> }> {
    const img = await createImage(s, extra);
    const res = await importImage(s, img.id, { method: { name: 'web-download', uri: url } });
    assert.equal(res.status, 202, await res.clone().text());
    const [task] = await waitTasks(s, img.id);
    return { id: img.id, task };
  }

  async function assertRolledBack(id: string): Promise<void> {
    const img = await getImage(s, id);
    assert.equal(img.status, 'queued');
    assert.equal(img.size, null);
    assert.equal(img.os_glance_importing_to_stores, '');
    assert.equal(img.os_glance_failed_import, 'local');
    assert.equal('os_glance_import_task' in img, false);
    assert.equal(await s.rt.staging.get(id), undefined);
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  }

  test('streams the URL into the store: bytes, hashes, sizes', async () => {
    for (const path of ['/image.raw', '/chunked.raw', '/moved']) {
      const { id, task } = await importFrom(`${web.url}${path}`);
      assert.equal(task.status, 'success', task.message);
      assert.equal(task.message, 'Copied 3 MiB');
      const img = await getImage(s, id);
      assert.equal(img.status, 'active');
      assert.equal(img.size, data.length);
      assert.equal(img.os_hash_value, sha512(data));
      const dl = await s.req('GET', `/v2/images/${id}/file`);
      assert.deepEqual(Buffer.from(await dl.arrayBuffer()), data);
    }
  });

  test('refused before any connection: 400 with the URI named', async () => {
    const img = await createImage(s);
    const refused = [
      `http://127.0.0.1:${other.port}/secret`, // allowed host, port not allowed
      `http://localhost:${web.port}/image.raw`, // host not in allowedHosts
      'http://169.254.169.254/latest/meta-data/',
      `http://[::1]:${web.port}/image.raw`,
      `ftp://127.0.0.1:${web.port}/image.raw`,
      'file:///etc/passwd',
    ];
    for (const uri of refused) {
      const res = await importImage(s, img.id, { method: { name: 'web-download', uri } });
      assert.equal(res.status, 400, uri);
      const err = await errorOf(res);
      assert.equal(err.message, `URI for web-download does not pass filtering: ${uri}`);
      assert.notEqual(err.details, '');
    }
    assert.equal(other.requests.length, 0);
    assert.equal((await getImage(s, img.id)).status, 'queued');
  });

  test('every redirect is checked again', async () => {
    for (const [path, why] of [['/to-other-port', /port \d+ is not allowed/], ['/to-metadata', /169\.254\.169\.254/], ['/to-file', /scheme "file"/], ['/loop', /redirects more than 5 times/]] as const) {
      const { id, task } = await importFrom(`${web.url}${path}`);
      assert.equal(task.status, 'failure', path);
      assert.match(task.message, why);
      assert.match(task.message, /back in status queued/);
      await assertRolledBack(id);
    }
    assert.equal(other.requests.length, 0, 'a redirect reached a refused server');
  });

  test('the size cap is enforced while streaming, and upfront when announced', async () => {
    const streamed = await importFrom(`${web.url}/huge`);
    assert.equal(streamed.task.status, 'failure');
    assert.match(streamed.task.message, /image_size_cap/);
    await assertRolledBack(streamed.id);
    const announced = await importFrom(`${web.url}/huge-announced`);
    assert.equal(announced.task.status, 'failure');
    assert.match(announced.task.message, /image_size_cap/);
    await assertRolledBack(announced.id);
  });

  test('HTTP errors and cut transfers fail the task with what happened', async () => {
    const gone = await importFrom(`${web.url}/gone`);
    assert.match(gone.task.message, /answered HTTP 410/);
    await assertRolledBack(gone.id);
    const cut = await importFrom(`${web.url}/cut`);
    assert.equal(cut.task.status, 'failure');
    assert.match(cut.task.message, new RegExp(`^Reading ${web.url}/cut failed: .*(length|cut short|terminated|closed)`, 'i'));
    await assertRolledBack(cut.id);
  });

  test('format inspection applies to downloaded data', async () => {
    const { id, task } = await importFrom(`${web.url}/image.raw`, { disk_format: 'qcow2' });
    assert.equal(task.status, 'failure');
    assert.match(task.message, /Image content is raw but disk_format is qcow2/);
    await assertRolledBack(id);
  });
});

describe('web-download: DNS answers are checked and the connection pinned', () => {
  let s: TestServer;
  let web: FileServer;
  const data = pattern(MiB, 5);

  before(async () => {
    web = await serveFiles({ '/image.raw': (_q, r) => r.end(data) });
    s = await startTestServer({ config: { import: { webDownload: { allowedHosts: [], allowedPorts: [web.port] } } } });
  });
  after(async () => {
    await s.close();
    await web.close();
  });

  test('a name that resolves to a private address is refused at connect time', async () => {
    const img = await createImage(s);
    // the name passes the URL check; its address does not
    assert.equal((await importImage(s, img.id, { method: { name: 'web-download', uri: `http://localhost:${web.port}/image.raw` } })).status, 202);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.status, 'failure');
    assert.match(task.message, /localhost resolves to (127\.0\.0\.1|::1): address .* is in a private, loopback, link-local or reserved range/);
    assert.equal(web.requests.length, 0);
  });

  test('a name with one private address among public ones is refused', async () => {
    s.rt.tasks.resolver = async () => [{ address: '93.184.216.34', family: 4 }, { address: '127.0.0.1', family: 4 }];
    try {
      const img = await createImage(s);
      assert.equal((await importImage(s, img.id, { method: { name: 'web-download', uri: `http://mirror.example.test:${web.port}/image.raw` } })).status, 202);
      const [task] = await waitTasks(s, img.id);
      assert.equal(task.status, 'failure');
      assert.match(task.message, /mirror\.example\.test resolves to 127\.0\.0\.1/);
    } finally {
      s.rt.tasks.resolver = undefined;
    }
  });

  test('the connection goes to the address that was checked (no DNS rebinding)', async () => {
    // An operator allows this one address. The name answers it once, then a forbidden one:
    // a client that resolved again after the check would be refused or reach the wrong host.
    await s.close();
    s = await startTestServer({ config: { import: { webDownload: { allowedHosts: ['rebind.example.test', '127.0.0.1'], allowedPorts: [web.port] } } } });
    const asked: string[] = [];
    s.rt.tasks.resolver = async (host) => {
      asked.push(host);
      return [{ address: asked.length === 1 ? '127.0.0.1' : '10.66.66.66', family: 4 }];
    };
    const img = await createImage(s);
    assert.equal((await importImage(s, img.id, { method: { name: 'web-download', uri: `http://rebind.example.test:${web.port}/image.raw` } })).status, 202);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.status, 'success', task.message);
    assert.deepEqual(asked, ['rebind.example.test']);
    assert.equal((await getImage(s, img.id)).os_hash_value, sha512(data));
  });
});

describe('web-download: private networks by configuration', () => {
  test('allowPrivateNetworks opens loopback; the default refuses it', async () => {
    const web = await serveFiles({ '/i': (_q, r) => r.end(pattern(1000)) });
    const open = await startTestServer({ config: { import: { webDownload: { allowPrivateNetworks: true, allowedPorts: [web.port] } } } });
    const closed = await startTestServer({ config: { import: { webDownload: { allowedPorts: [web.port] } } } });
    try {
      const a = await createImage(open);
      assert.equal((await importImage(open, a.id, { method: { name: 'web-download', uri: `${web.url}/i` } })).status, 202);
      assert.equal((await waitImage(open, a.id, (i) => i.status === 'active')).size, 1000);
      const b = await createImage(closed);
      const res = await importImage(closed, b.id, { method: { name: 'web-download', uri: `${web.url}/i` } });
      assert.equal(res.status, 400);
      assert.match((await errorOf(res)).details, /private, loopback/);
    } finally {
      await open.close();
      await closed.close();
      await web.close();
    }
  });
});
