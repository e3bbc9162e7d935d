import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { TOKENS, type TestServer } from '../support/server.js';
import { createTestDatabase } from '../support/postgres.js';
import { importImage, stage } from '../import/helpers.js';
import { databases, sleep } from './helpers.js';
import { startChildServer, type ChildServer } from './child-server.js';
import { pattern } from '../support/bytes.js';

/**
 * Soak (issue 14): 64 concurrent clients mix create, upload, download,
 * ranged reads, list, patch, delete and import for a fixed time. Zero
 * unexpected statuses; the server's memory reported (it runs in a child
 * process, so the clients' buffers do not count); at the end every image is checked
 * (status, size, digests, bytes). IMAGO_SOAK_SECONDS sets the time (CI: 20 s
 * on SQLite; run by hand for hours: IMAGO_SOAK_SECONDS=3600).
 */
const SECONDS = Number(process.env.IMAGO_SOAK_SECONDS ?? 20);
const CLIENTS = 64;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

/** The child server behind the TestServer face the import helpers take (tokens by name). */
function asTestServer(c: ChildServer): TestServer {
  const req: TestServer['req'] = (method, urlPath, o = {}) =>
    c.req(method, urlPath, { json: o.json, body: o.body as BodyInit | undefined, headers: { ...(o.headers ?? {}), 'x-auth-token': TOKENS[o.token ?? 'admin'] } });
  return { url: c.url, dataDir: c.dataDir, req } as unknown as TestServer;
}

interface Kept {
  id: string;
  data: Buffer;
}

function bytesFor(client: number, n: number): Buffer {
  const size = 1 + ((client * 7919 + n * 104729) % (512 * 1024));
  return pattern(size, client * 100_003 + n + 1);
}

async function client(s: TestServer, c: number, end: number, kept: Kept[], counts: Record<string, number>): Promise<void> {
  const token = (['admin', 'member', 'other', 'third'] as const)[c % 4];
  const expect = async (what: string, res: Response, ok: number[]) => {
    counts[what] = (counts[what] ?? 0) + 1;
    if (!ok.includes(res.status)) assert.fail(`client ${c} ${what}: ${res.status} ${await res.text()}`);
    return res;
  };
  let n = 0;
  const mine: Kept[] = [];
  while (Date.now() < end) {
    n++;
    const created = await expect('create', await s.req('POST', '/v2/images', { token, json: { name: `soak-${c}-${n}`, disk_format: 'raw', container_format: 'bare' } }), [201]);
    const id = ((await created.json()) as { id: string }).id;
    const data = bytesFor(c, n);
    if (n % 5 === 0) {
      await expect('stage', await stage(s, id, data, token), [204]);
      await expect('import', await importImage(s, id, { method: { name: 'glance-direct' } }, { token }), [202]);
      for (let i = 0; i < 400; i++) {
        const img = (await (await s.req('GET', `/v2/images/${id}`, { token })).json()) as { status: string };
        if (img.status === 'active') break;
        assert.notEqual(img.status, 'queued', `client ${c}: import of ${id} failed`);
        await sleep(25);
      }
    } else {
      await expect('upload', await s.req('PUT', `/v2/images/${id}/file`, { token, headers: { 'content-type': 'application/octet-stream' }, body: data }), [204]);
    }
    const got = Buffer.from(await (await expect('download', await s.req('GET', `/v2/images/${id}/file`, { token }), [200])).arrayBuffer());
    assert.ok(got.equals(data), `client ${c}: bytes of ${id}`);
    if (data.length > 10) {
      const part = await expect('range', await s.req('GET', `/v2/images/${id}/file`, { token, headers: { range: 'bytes=3-9' } }), [206]);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(3, 10)));
    }
    await expect('patch', await s.req('PATCH', `/v2/images/${id}`, { token, headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: JSON.stringify([{ op: 'add', path: '/soak', value: String(n) }]) }), [200]);
    await expect('list', await s.req('GET', '/v2/images?limit=20', { token }), [200]);
    mine.push({ id, data });
    // keep a few, delete the rest
    if (mine.length > 3) {
      const gone = mine.shift()!;
      await expect('delete', await s.req('DELETE', `/v2/images/${gone.id}`, { token }), [204]);
    }
  }
  kept.push(...mine);
}

for (const kind of (await databases()).slice(0, process.env.IMAGO_SOAK_ALL_DATABASES === '1' ? 2 : 1)) {
  test(`soak on ${kind}: ${CLIENTS} clients for ${SECONDS} s`, { timeout: (SECONDS + 120) * 1000 }, async () => {
    const db = kind === 'postgres' ? await createTestDatabase() : undefined;
    const child = await startChildServer({ config: { quotas: { enabled: false } }, env: db ? { IMAGO_DATABASE_URL: db.url } : {} });
    const s = asTestServer(child);
    try {
      const kept: Kept[] = [];
      const counts: Record<string, number> = {};
      const liveBefore = await child.measure();
      const rss: number[] = [child.rssMB()];
      const sampler = setInterval(() => rss.push(child.rssMB()), 1000);
      const t0 = Date.now();
      try {
        await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(s, c, t0 + SECONDS * 1000, kept, counts)));
      } finally {
        clearInterval(sampler);
      }
      const liveAfter = await child.measure();
      const mb = (n: number) => n.toFixed(0);
      // RSS rises while 64 clients run (V8 and malloc grow their heaps); what the server still holds
      // after a full GC once they stop is the figure that says whether anything leaked.
      console.log(`# soak ${kind}: ${JSON.stringify(counts)} in ${((Date.now() - t0) / 1000).toFixed(0)} s; server RSS first ${mb(rss[0])} MB, mid ${mb(rss[Math.floor(rss.length / 2)])} MB, last ${mb(rss[rss.length - 1])} MB, max ${mb(Math.max(...rss))} MB; after a full GC, heap ${mb(liveBefore.heapUsed / 1e6)} → ${mb(liveAfter.heapUsed / 1e6)} MB, array buffers ${mb(liveBefore.arrayBuffers / 1e6)} → ${mb(liveAfter.arrayBuffers / 1e6)} MB`);
      // Flat memory: what the server holds after the clients stop and a full GC does not grow with the
      // number of requests served (before the hash workers collected themselves: 154 MB of rings after 20 s).
      assert.ok(liveAfter.heapUsed - liveBefore.heapUsed < 20e6, `heap grew by ${mb((liveAfter.heapUsed - liveBefore.heapUsed) / 1e6)} MB`);
      assert.ok(liveAfter.arrayBuffers - liveBefore.arrayBuffers < 64e6, `array buffers grew by ${mb((liveAfter.arrayBuffers - liveBefore.arrayBuffers) / 1e6)} MB`);
      for (const k of kept) {
        const img = (await (await s.req('GET', `/v2/images/${k.id}`)).json()) as Record<string, any>;
        assert.equal(img.status, 'active', k.id);
        assert.equal(img.size, k.data.length);
        assert.equal(img.checksum, md5(k.data));
        assert.equal(img.os_hash_value, sha512(k.data));
        assert.ok(Buffer.from(await (await s.req('GET', `/v2/images/${k.id}/file`)).arrayBuffer()).equals(k.data));
      }
    } finally {
      await child.stop();
      await db?.drop();
    }
  });
}
