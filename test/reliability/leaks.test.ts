import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { filesUnder } from '../support/files.js';
import path from 'node:path';
import { TOKENS } from '../support/server.js';
import { startChildServer, type ChildServer } from './child-server.js';
import { sleep } from './helpers.js';

/**
 * Leak tests (issue 14): abandoned uploads and stages (Content-Length and
 * chunked), aborted downloads and failed imports leave no fds, temporary
 * files, database rows or memory behind. The server is a child process
 * started with --expose-gc, so memory is measured after a full GC and only
 * the server's. LEAK_COUNT scales every loop (default 1000).
 */
const N = Number(process.env.IMAGO_LEAK_COUNT ?? 1000);
const MB = 1024 * 1024;
/** new keep-alive connections of the test's own parallel clients (at most one or two per lane) */
const SOCKET_SLACK = 16;

let s: ChildServer;
/** a loopback port nothing listens on: every web-download from it fails at once */
let closedPort = 0;
before(async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  s = await startChildServer({ config: { import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [closedPort] } } } });
});
after(async () => {
  await s.stop();
});

/** Every file under the data dir but the database's own. */
function files(): string[] {
  return filesUnder(s.dataDir).filter((f) => !/\.(db|sqlite)(-wal|-shm)?$|imago\.db/.test(path.basename(f)));
}

/**
 * The server closes a cut connection's socket and file a moment after the client goes; on a busy
 * machine that moment can be long. Waits (up to 15 s) for fds and sockets to come back, then asserts.
 */
async function assertSettled(fds: number, sockets: number): Promise<void> {
  for (let i = 0; i < 150 && (s.fds() > fds + 2 || s.sockets() > sockets + SOCKET_SLACK); i++) await sleep(100);
  assert.ok(s.fds() <= fds + 2, `fds ${fds} → ${s.fds()}`);
  assert.ok(s.sockets() <= sockets + SOCKET_SLACK, `sockets ${sockets} → ${s.sockets()}`);
}

/** Sends the head and part of a body, then cuts the connection. */
function abandon(urlPath: string, chunked: boolean, sent = 300_000): Promise<void> {
  const u = new URL(s.url);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname, () => {
      const head = `PUT ${urlPath} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKENS.admin}\r\nContent-Type: application/octet-stream\r\n`;
      sock.write(head + (chunked ? 'Transfer-Encoding: chunked\r\n\r\n' : 'Content-Length: 10000000\r\n\r\n'));
      const body = Buffer.alloc(sent, 7);
      if (chunked) sock.write(`${body.length.toString(16)}\r\n`);
      sock.write(body, () => setTimeout(() => sock.destroy(), 5));
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
  });
}

/** Starts a download, reads a little of it, cuts the connection. */
function abortDownload(id: string): Promise<void> {
  const u = new URL(s.url);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname, () => {
      sock.write(`GET /v2/images/${id}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKENS.admin}\r\n\r\n`);
    });
    let got = 0;
    sock.on('data', (d) => {
      got += d.length;
      if (got > 100_000) sock.destroy();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
  });
}

async function image(id: string): Promise<Record<string, any>> {
  return (await (await s.req('GET', `/v2/images/${id}`)).json()) as Record<string, any>;
}

async function waitStatus(id: string, status: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if ((await image(id)).status === status) return;
    await sleep(5);
  }
  assert.fail(`image ${id} did not return to ${status}`);
}

async function create(body: Record<string, unknown> = {}): Promise<string> {
  const res = await s.req('POST', '/v2/images', { json: { disk_format: 'raw', container_format: 'bare', ...body } });
  assert.equal(res.status, 201);
  return ((await res.json()) as { id: string }).id;
}

/** Runs `count` iterations of `fn` over `lanes` parallel lanes (lane index, iteration index). */
async function lanes(count: number, width: number, fn: (lane: number, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async (_, lane) => {
    for (let i = next++; i < count; i = next++) await fn(lane, i);
  }));
}

/** RSS after forced GCs, the lowest of five samples: one sample swings by ±20 MB as V8 and malloc resize. */
async function settledRss(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    await s.measure();
    samples.push(s.rssMB());
    await sleep(100);
  }
  return Math.min(...samples);
}

const usage = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external + m.arrayBuffers;

test(`${N} abandoned uploads (Content-Length and chunked): memory, fds, files and rows come back (item 2)`, { timeout: 600_000 }, async () => {
  // One at a time, as the issue measured it: RSS is compared between 200 and N uploads.
  const WIDTH = 1;
  const ids = await Promise.all(Array.from({ length: WIDTH }, (_, i) => create({ name: `abandoned-${i}` })));
  const once = async (lane: number, i: number) => {
    await abandon(`/v2/images/${ids[lane]}/file`, i % 5 === 0);
    await waitStatus(ids[lane], 'queued');
  };
  await lanes(20, WIDTH, once); // warm-up: the hash pool keeps the rings it needed from here on
  const start = await s.measure();
  const fds = s.fds();
  const sockets = s.sockets();
  const before = files();
  const rows = await s.rows();
  const first = Math.min(200, N);
  await lanes(first, WIDTH, once);
  const rss200 = await settledRss();
  await lanes(N - first, WIDTH, once);
  const end = await s.measure();
  const rssEnd = await settledRss();
  console.log(`# abandoned uploads: heap+external+arrayBuffers ${((usage(start)) / MB).toFixed(1)} → ${(usage(end) / MB).toFixed(1)} MB; RSS after 200 ${rss200.toFixed(1)} MB, after ${N} ${rssEnd.toFixed(1)} MB`);
  assert.ok(usage(end) - usage(start) < 5 * MB, `heap+external+arrayBuffers grew ${((usage(end) - usage(start)) / MB).toFixed(1)} MB`);
  if (N >= 1000) assert.ok(rssEnd - rss200 < 10, `RSS grew ${(rssEnd - rss200).toFixed(1)} MB from 200 to ${N} abandoned uploads`);
  await assertSettled(fds, sockets);
  assert.deepEqual(files(), before);
  assert.deepEqual(await s.rows(), rows);
  for (const id of ids) assert.equal((await image(id)).status, 'queued');
});

test(`${N / 2} abandoned stages (Content-Length and chunked) leave nothing behind`, { timeout: 600_000 }, async () => {
  const id = await create({ name: 'stage' });
  const fds = s.fds();
  const sockets = s.sockets();
  const before = files();
  const rows = await s.rows();
  const start = await s.measure();
  for (let i = 0; i < N / 2; i++) {
    await abandon(`/v2/images/${id}/stage`, i % 2 === 0);
    await waitStatus(id, 'queued');
  }
  const end = await s.measure();
  assert.ok(usage(end) - usage(start) < 5 * MB, `memory grew ${((usage(end) - usage(start)) / MB).toFixed(1)} MB`);
  await assertSettled(fds, sockets);
  assert.deepEqual(files(), before);
  assert.deepEqual(await s.rows(), rows);
});

test(`${N} aborted downloads leave no fds or memory behind`, { timeout: 600_000 }, async () => {
  const id = await create({ name: 'download' });
  const data = Buffer.alloc(4 * MB, 9);
  assert.equal((await s.req('PUT', `/v2/images/${id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: data })).status, 204);
  // warm up at the width the test runs (8 lanes), so that what 8 downloads at once keep (socket and
  // read buffers) is in the starting figure and only growth with the number of downloads counts
  await lanes(8, 8, () => abortDownload(id));
  await sleep(50);
  const fds = s.fds();
  const sockets = s.sockets();
  const start = await s.measure();
  await lanes(N, 8, () => abortDownload(id));
  await assertSettled(fds, sockets);
  const end = await s.measure();
  // Downloads leave 0-9 MB more after the loop whatever their number (1,000: 0-8.8 MB; 3,000: under 5.2 MB):
  // socket and read buffers V8 and libuv keep, not a leak. A leak of 16 KB or more per download fails this.
  assert.ok(usage(end) - usage(start) < 16 * MB, `memory grew ${((usage(end) - usage(start)) / MB).toFixed(1)} MB`);
  await assertSettled(fds, sockets);
  const res = await s.req('GET', `/v2/images/${id}/file`);
  assert.equal(Buffer.from(await res.arrayBuffer()).equals(data), true);
});

test(`${N} failed imports leave only their task records`, { timeout: 600_000 }, async () => {
  const WIDTH = 8;
  const ids = await Promise.all(Array.from({ length: WIDTH }, (_, i) => create({ name: `import-${i}` })));
  const fds = s.fds();
  const sockets = s.sockets();
  const before = files();
  const rows = await s.rows();
  const start = await s.measure();
  await lanes(N, WIDTH, async (lane) => {
    const id = ids[lane];
    const res = await s.req('POST', `/v2/images/${id}/import`, { json: { method: { name: 'web-download', uri: `http://127.0.0.1:${closedPort}/x` } } });
    assert.equal(res.status, 202, await res.text());
    for (let j = 0; j < 2000; j++) {
      const img = await image(id);
      if (img.status === 'queued' && img.os_glance_import_task === undefined) return;
      await sleep(5);
    }
    assert.fail(`import of ${id} did not end`);
  });
  const end = await s.measure();
  assert.ok(usage(end) - usage(start) < 5 * MB, `memory grew ${((usage(end) - usage(start)) / MB).toFixed(1)} MB`);
  await assertSettled(fds, sockets);
  assert.deepEqual(files(), before);
  const after = await s.rows();
  // each image keeps its store lists (os_glance_failed_import, as Glance): a bounded number per image, not per import
  assert.deepEqual({ ...after, tasks: 0, image_properties: 0 }, { ...rows, tasks: 0, image_properties: 0 });
  assert.ok(after.image_properties <= rows.image_properties + 2 * WIDTH, `image_properties ${rows.image_properties} → ${after.image_properties}`);
  assert.equal(after.tasks, rows.tasks + N, 'one task record per import, kept for its time to live');
  for (const id of ids) {
    const tasks = (await (await s.req('GET', `/v2/images/${id}/tasks`)).json()) as { tasks: { status: string }[] };
    assert.ok(tasks.tasks.every((t) => t.status === 'failure'));
  }
});
