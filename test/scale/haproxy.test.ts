import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { makeDataDir, TOKENS } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';
import { startSwift, swiftSkipReason, type Swift } from '../support/swift.js';
import { inspectDataDir, spawnImago, type ChildImago } from '../recovery/child.js';
import { md5, serveFiles, sha512, type FileServer } from '../import/helpers.js';
import { pattern as payload } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { haproxySkipReason, startHaproxy, type Haproxy } from '../support/haproxy.js';

/** Waits as the shared helper does, with room for a cluster on a busy machine (30 s unless told). */
const settle = <T>(what: string, probe: () => Promise<T | undefined | false>, ms = 30_000) => waitFor(what, probe, ms);
import { ManualUpload } from '../server/image-data-helpers.js';

const MiB = 1024 * 1024;
type Json = Record<string, any>;
const skip = swiftSkipReason() ?? haproxySkipReason();

/**
 * Three stateless Imago nodes behind Debian's haproxy (round robin, checked
 * through /healthcheck), sharing PostgreSQL and Swift's S3 for the stores and
 * for staging: nothing a request needs is on one node's disk. A request
 * header `x-test-node: a|b|c` pins a request to one node where the test must
 * know which node serves it; everything else is balanced.
 */
describe('three nodes behind haproxy on PostgreSQL and S3', { skip, concurrency: false, timeout: 600_000 }, async () => {
  const pg = await postgresAvailable();
  let swift: Swift;
  let s3: S3Client;
  let db: { url: string; drop(): Promise<void> };
  let web: FileServer;
  let proxy: Haproxy | undefined;
  let lb = '';
  const buckets: Record<'fast' | 'cheap' | 'staging', string> = { fast: '', cheap: '', staging: '' };
  const dirs: Record<string, string> = {};
  const nodes: Record<string, ChildImago | undefined> = {};
  let config: Json = {};
  const haproxyDir = mkdtempSync(path.join(tmpdir(), 'imago-haproxy-'));
  /** the web-download source: holds the second half of /slow.raw until released */
  const webData = payload(6 * MiB, 91);
  let holdWeb = true;
  const heldWeb: (() => void)[] = [];
  const env = { IMAGO_NODE_TIMEOUT_SECONDS: '3' };

  const ports: Record<string, number> = {};

  /** Starts (or restarts, on the same data dir and port) node `name`. */
  async function startNode(name: string): Promise<ChildImago> {
    const port = ports[name] ? { port: ports[name] } : {};
    nodes[name] = await spawnImago(dirs[name], { config: { ...config, ...port }, env: { ...env, IMAGO_PORT: String(ports[name] ?? 0) } });
    ports[name] = Number(new URL(nodes[name]!.url).port);
    return nodes[name]!;
  }

  async function waitState(name: string, state: RegExp): Promise<void> {
    await proxy!.waitState(name, state, 30_000);
  }

  function call(method: string, p: string, opts: { json?: unknown; body?: Buffer; node?: string; headers?: Record<string, string>; base?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'x-auth-token': TOKENS.admin, ...(opts.headers ?? {}) };
    if (opts.node) headers['x-test-node'] = opts.node;
    let body: BodyInit | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body) {
      headers['content-type'] ??= 'application/octet-stream';
      body = new Uint8Array(opts.body);
    }
    return fetch((opts.base ?? lb) + p, { method, headers, body });
  }

  async function create(name: string): Promise<string> {
    const res = await call('POST', '/v2/images', { json: { name, disk_format: 'raw', container_format: 'bare' } });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as Json).id;
  }

  async function image(id: string, base?: string): Promise<Json> {
    const res = await call('GET', `/v2/images/${id}`, { base });
    assert.equal(res.status, 200);
    return (await res.json()) as Json;
  }

  async function assertHolds(id: string, data: Buffer, base?: string): Promise<void> {
    const img = await image(id, base);
    assert.equal(img.status, 'active');
    assert.equal(img.size, data.length);
    assert.equal(img.checksum, md5(data));
    assert.equal(img.os_hash_value, sha512(data));
    const res = await call('GET', `/v2/images/${id}/file`, { base });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(data), `bytes of ${id} through ${base ?? 'the balancer'}`);
  }

  async function multipartUploads(bucket: string): Promise<string[]> {
    const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return (r.Uploads ?? []).map((u) => `${u.Key}/${u.UploadId}`);
  }

  async function tasksOf(id: string): Promise<Json[]> {
    return ((await (await call('GET', `/v2/images/${id}/tasks`)).json()) as { tasks: Json[] }).tasks;
  }

  function logged(name: string, pattern: RegExp): Json[] {
    return (nodes[name]?.logs ?? []).flatMap((l) => {
      try {
        const e = JSON.parse(l) as Json;
        return pattern.test(String(e.msg)) ? [e] : [];
      } catch {
        return [];
      }
    });
  }

  before(async () => {
    if (!pg) return;
    swift = await startSwift();
    for (const k of Object.keys(buckets) as (keyof typeof buckets)[]) buckets[k] = await swift.createBucket();
    s3 = new S3Client({ ...swift.s3Config(buckets.fast), requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey } });
    db = await createTestDatabase();
    web = await serveFiles({
      '/slow.raw': (_q, res) => {
        res.writeHead(200, { 'content-length': String(webData.length) });
        res.on('error', () => {});
        res.write(webData.subarray(0, 2 * MiB));
        const rest = () => res.end(webData.subarray(2 * MiB));
        if (holdWeb) heldWeb.push(rest);
        else rest();
      },
    });
    const small = { partSizeMiB: 5, minPartSizeMiB: 5, queueSize: 2 };
    config = {
      database: { url: db.url },
      stores: [
        { id: 'fast', type: 's3', s3: { ...swift.s3Config(buckets.fast), prefix: 'images/', ...small }, description: 'S3, first bucket' },
        { id: 'cheap', type: 's3', s3: { ...swift.s3Config(buckets.cheap), prefix: 'images/', ...small }, description: 'S3, second bucket' },
      ],
      defaultStore: 'fast',
      staging: { id: 'os_glance_staging_store', type: 's3', s3: { ...swift.s3Config(buckets.staging), prefix: 'staging/', ...small } },
      import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port] } },
      health: { disableByFile: 'drain', cacheSeconds: 0 },
    };
    for (const n of ['a', 'b', 'c']) dirs[n] = makeDataDir();
    for (const n of ['a', 'b', 'c']) await startNode(n);
    proxy = await startHaproxy(ports, haproxyDir);
    lb = proxy.url;
  });

  after(async () => {
    if (process.env.IMAGO_TEST_KEEP_LOGS) for (const [n, c] of Object.entries(nodes)) writeFileSync(path.join(process.env.IMAGO_TEST_KEEP_LOGS, `node-${n}.log`), (c?.logs ?? []).join('\n'));
    for (const w of heldWeb.splice(0)) w();
    await proxy?.stop();
    for (const n of Object.values(nodes)) await n?.kill9().catch(() => {});
    await web?.close();
    await db?.drop();
    await swift?.stop();
    for (const d of [...Object.values(dirs), haproxyDir]) rmSync(d, { recursive: true, force: true });
  });

  test('concurrent uploads through the balancer land on every node; every node serves every image whole and by range', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server');
    const images = await Promise.all(Array.from({ length: 6 }, async (_, i) => ({ id: await create(`lb-${i}`), data: payload(3 * MiB + i * 4099, 10 + i) })));
    const answers = await Promise.all(images.map(({ id, data }, i) => {
      // half with Content-Length, half chunked (length unknown to the server)
      const body = i % 2 ? new Blob([new Uint8Array(data)]).stream() : new Uint8Array(data);
      return fetch(`${lb}/v2/images/${id}/file`, { method: 'PUT', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/octet-stream' }, body, duplex: 'half' } as RequestInit);
    }));
    for (const a of answers) assert.equal(a.status, 204, await a.text());
    for (const n of ['a', 'b', 'c']) await settle(`node ${n} to log an upload it served`, async () => logged(n, /^PUT \/v2\/images\/[^/]+\/file 204$/).length > 0, 10_000);
    for (const { id, data } of images) {
      for (const n of ['a', 'b', 'c']) await assertHolds(id, data, nodes[n]!.url);
      for (let r = 0; r < 4; r++) {
        const start = (r * 777_777 + id.charCodeAt(0)) % (data.length - 1000);
        const end = Math.min(data.length - 1, start + 300_000);
        const res = await call('GET', `/v2/images/${id}/file`, { headers: { range: `bytes=${start}-${end}` } });
        assert.equal(res.status, 206);
        assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${data.length}`);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(data.subarray(start, end + 1)));
      }
    }
  });

  test('stage on one node, import on a second, copy-image on the third: no shared disk needed', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server');
    const id = await create('staged');
    const data = payload(7 * MiB + 5, 33);
    assert.equal((await call('PUT', `/v2/images/${id}/stage`, { node: 'a', body: data })).status, 204);
    assert.equal((await call('POST', `/v2/images/${id}/import`, { node: 'b', json: { method: { name: 'glance-direct' }, stores: ['fast'] } })).status, 202);
    await settle('the import to end', async () => {
      const img = await image(id);
      return img.status === 'active' && !('os_glance_import_task' in img);
    });
    assert.equal((await image(id)).stores, 'fast');
    assert.equal((await call('POST', `/v2/images/${id}/import`, { node: 'c', json: { method: { name: 'copy-image' }, stores: ['cheap'] } })).status, 202);
    await settle('the copy to end', async () => {
      const img = await image(id);
      return img.stores === 'cheap,fast' && !('os_glance_import_task' in img);
    });
    assert.deepEqual((await tasksOf(id)).map((k) => k.status), ['success', 'success']);
    for (const n of ['a', 'b', 'c']) await assertHolds(id, data, nodes[n]!.url);
    assert.deepEqual(await multipartUploads(buckets.staging), []);
  });

  test('SIGKILL of a node mid-upload: haproxy drops it, a survivor releases the image and aborts its multipart upload; a retry succeeds', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server');
    const id = await create('killed-upload');
    const up = new ManualUpload(lb, id, { headers: { 'x-test-node': 'c' } });
    for (let i = 0; i < 4; i++) await up.write(payload(3 * MiB, 40 + i));
    await settle('a multipart upload in S3', async () => (await multipartUploads(buckets.fast)).some((u) => u.includes(id)));
    assert.equal((await image(id)).status, 'saving');
    await nodes.c!.kill9();
    up.abort();
    await waitState('c', /^DOWN/);
    const released = await settle('a survivor to release the upload', async () => {
      const img = await image(id);
      return img.status === 'queued' && img;
    });
    assert.equal(released.size, null);
    await settle('the multipart upload to be aborted', async () => (await multipartUploads(buckets.fast)).length === 0);
    await settle('a survivor to log the release', async () => ['a', 'b'].some((n) => logged(n, /released the uploads of a node that stopped/).length > 0), 10_000);
    const data = payload(4 * MiB + 1, 44);
    assert.equal((await call('PUT', `/v2/images/${id}/file`, { body: data })).status, 204);
    await assertHolds(id, data);
    // the node comes back on its own data dir and rejoins the pool
    await startNode('c');
    await waitState('c', /^UP/);
    await assertHolds(id, data, nodes.c!.url);
  });

  test('SIGKILL of the node running an import: another node takes the task over and finishes it', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server');
    const id = await create('killed-import');
    assert.equal((await call('POST', `/v2/images/${id}/import`, { json: { method: { name: 'web-download', uri: `${web.url}/slow.raw` } } })).status, 202);
    await settle('the download to start', async () => heldWeb.length > 0);
    const runner = await settle('the runner to say so', async () => ['a', 'b', 'c'].find((n) => logged(n, /^import task started$/).some((e) => e.image === id)));
    await nodes[runner]!.kill9();
    for (const w of heldWeb.splice(0)) w();
    holdWeb = false;
    await waitState(runner, /^DOWN/);
    const done = await settle('the import to end', async () => {
      const [task] = await tasksOf(id);
      return (task?.status === 'success' || task?.status === 'failure') && task;
    }, 90_000);
    assert.equal(done.status, 'success', done.message);
    assert.match(done.message, /resumed after an interruption/);
    const survivors = ['a', 'b', 'c'].filter((n) => n !== runner);
    await settle('a survivor to log the takeover', async () => survivors.some((n) => logged(n, /taken over; it resumes/).some((e) => e.image === id)), 10_000);
    await assertHolds(id, webData);
    await startNode(runner);
    await waitState(runner, /^UP/);
  });

  test('draining a node: its health check fails, haproxy stops sending it work, requests still succeed', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server');
    const drain = path.join(dirs.a, 'drain');
    writeFileSync(drain, '');
    await waitState('a', /^DOWN/);
    const before = logged('a', /^GET \/v2\/images /).length;
    for (let i = 0; i < 9; i++) assert.equal((await call('GET', '/v2/images?limit=1')).status, 200);
    assert.equal(logged('a', /^GET \/v2\/images /).length, before, 'the drained node got no new work');
    unlinkSync(drain);
    await waitState('a', /^UP/);
  });

  test('afterwards: no image is left saving or importing; the database and the buckets agree exactly', async (t) => {
    if (!pg) return t.skip('no PostgreSQL server');
    const list = ((await (await call('GET', '/v2/images?limit=100')).json()) as { images: Json[] }).images;
    assert.ok(list.length >= 9);
    for (const img of list) assert.ok(['active', 'queued'].includes(img.status), `${img.name}: ${img.status}`);
    for (const b of Object.values(buckets)) assert.deepEqual(await multipartUploads(b), [], `multipart uploads left in ${b}`);
    for (const n of ['a', 'b', 'c']) {
      const { code } = await nodes[n]!.terminate();
      assert.equal(code, 0, `node ${n} stopped cleanly`);
      nodes[n] = undefined;
    }
    const { rt, report } = await inspectDataDir(dirs.a, config);
    try {
      assert.deepEqual(report, { missingObjects: [], orphanObjects: [] });
    } finally {
      await rt.close();
    }
  });
});
