import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { TOKENS, createImage, uploadBytes, type TestServer } from '../support/server.js';
import { assertErrorShape, databases, serverOn, type DatabaseKind } from './helpers.js';

/**
 * Property-based fuzzing of every route (issue 14), on SQLite and PostgreSQL:
 * random and malformed JSON (types, sizes, unicode, NUL, nesting), JSON-patch
 * documents, headers (Range, Content-Type, sizes), query strings, ids,
 * property names, tokens; and, over raw sockets, Content-Length lies, broken
 * chunked encoding, huge headers and bad request lines.
 * Asserts: no 5xx, no hang (every answer within 15 s), every error in the
 * spec's JSON shape, and a healthy server afterwards.
 *
 * Seeds: the fixed list below plus one random seed per run; a failure prints
 * the seed and the shrunk counterexample (rerun with IMAGO_FUZZ_SEED=<seed>).
 * IMAGO_FUZZ_REQUESTS is the total number of requests (default 100,000, split
 * between the databases).
 */
const TOTAL = Number(process.env.IMAGO_FUZZ_REQUESTS ?? 100_000);
const FIXED_SEEDS = [1, 14, 20261203];
const SEEDS = process.env.IMAGO_FUZZ_SEED ? [Number(process.env.IMAGO_FUZZ_SEED)] : [...FIXED_SEEDS, Date.now() % 2 ** 31];
const BATCH = 32; // requests per property run, sent at once

interface Fixture {
  image: string; // an active image (admin)
  queued: string; // a queued image (member)
  shared: string; // member's image shared with p2
  namespace: string;
}

interface FuzzRequest {
  method: string;
  path: string;
  token: keyof typeof TOKENS | null | 'bogus';
  headers: Record<string, string>;
  body?: string;
}

const uuid = fc.uuid();
/** encodeURIComponent, which throws on a lone surrogate: that becomes its (invalid) UTF-8 bytes. */
function enc(v: string): string {
  try {
    return encodeURIComponent(v);
  } catch {
    return encodeURIComponent(v.replace(/[\ud800-\udfff]/g, '')) + '%ED%A0%80';
  }
}
const weird = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '..', '%2e%2e', 'a/b', '\u0000', 'null', 'true', '-1', '0', '1e400', 'ÿ', '\ud800', '🙂', 'x'.repeat(300), '%', '%zz', '%00'),
);
const segment = (fx: Fixture) => fc.oneof(fc.constantFrom(fx.image, fx.queued, fx.shared), uuid, weird.map((w) => enc(w)), fc.constantFrom('%zz', '%', '%00', 'a%2Fb'));

const jsonLeaf = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 10 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('\u0000', 'x'.repeat(70_000), 'y'.repeat(300), 'private', 'public', 'shared', 'community', 'raw', 'qcow2', 'bare'));
const deep = fc.integer({ min: 1, max: 200 }).map((d) => {
  let v: unknown = 'x';
  for (let i = 0; i < d; i++) v = i % 2 ? [v] : { a: v };
  return v;
});
const anyJson = fc.oneof({ weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, jsonLeaf, deep);
const imageKeys = fc.constantFrom('name', 'id', 'visibility', 'disk_format', 'container_format', 'tags', 'min_disk', 'min_ram', 'protected', 'os_hidden', 'owner', 'status', 'size', 'locations', 'checksum', 'self', 'file', 'schema', 'os_distro', 'hw_x', 'os_glance_x', 'a'.repeat(300), '', ' ', 'x\u0000');
const imageBody = fc.dictionary(fc.oneof(imageKeys, fc.string({ maxLength: 12 })), anyJson, { maxKeys: 6 });
const patchOp = fc.record({
  op: fc.oneof(fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test'), fc.string({ maxLength: 8 })),
  path: fc.oneof(imageKeys.map((k) => `/${k}`), fc.constantFrom('/tags/-', '/tags/0', '/locations/-', '/locations/0', '/', '', 'name', '/a~1b', '/a~2', '/x/y/z'), fc.string({ maxLength: 20 })),
  value: anyJson,
  from: fc.option(fc.constantFrom('/name', '/x', ''), { nil: undefined }),
}, { requiredKeys: ['op'] });
const patchBody = fc.oneof(fc.array(patchOp, { maxLength: 5 }), anyJson);
const importBody = fc.oneof(
  fc.record({ method: fc.record({ name: fc.oneof(fc.constantFrom('glance-direct', 'web-download', 'copy-image', 'glance-download', 'x'), weird), uri: fc.option(fc.oneof(fc.webUrl(), weird), { nil: undefined }), glance_image_id: fc.option(fc.oneof(uuid, weird), { nil: undefined }), glance_region: fc.option(weird, { nil: undefined }) }, { requiredKeys: [] }), stores: fc.option(fc.oneof(fc.array(weird, { maxLength: 3 }), anyJson), { nil: undefined }), all_stores: fc.option(anyJson, { nil: undefined }), all_stores_must_succeed: fc.option(anyJson, { nil: undefined }) }, { requiredKeys: [] }),
  anyJson,
);
const metadefBody = fc.oneof(fc.dictionary(fc.constantFrom('namespace', 'display_name', 'description', 'visibility', 'protected', 'resource_type_associations', 'properties', 'objects', 'tags', 'name', 'title', 'type', 'enum', 'minimum', 'items', 'prefix'), anyJson, { maxKeys: 6 }), anyJson);
const queryValue = fc.oneof(weird, fc.integer({ min: -5, max: 2000 }).map(String), fc.constantFrom('gte:2020-01-01T00:00:00Z', 'lt:x', 'in:a,b', 'in:"a,b"', 'name:asc', 'name:asc,created_at:desc', 'desc', 'asc', 'active', 'queued', 'true', 'false', 'accepted', 'all'));
const queryKey = fc.oneof(fc.constantFrom('limit', 'marker', 'sort_key', 'sort_dir', 'sort', 'name', 'status', 'visibility', 'member_status', 'tag', 'size_min', 'size_max', 'created_at', 'updated_at', 'os_hidden', 'owner', 'protected', 'disk_format', 'resource_types', 'type', 'id'), fc.string({ maxLength: 8 }));
const query = fc.array(fc.tuple(queryKey, queryValue, fc.boolean()), { maxLength: 4 }).map((pairs) =>
  pairs.length ? '?' + pairs.map(([k, v, raw]) => `${enc(k)}=${raw ? v.replace(/[#\s]/g, '') : enc(v)}`).join('&') : '',
);
const contentType = fc.constantFrom('application/json', 'application/openstack-images-v2.1-json-patch', 'application/octet-stream', 'text/plain', '', 'json', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x');
const range = fc.oneof(fc.constantFrom('bytes=0-0', 'bytes=0-', 'bytes=-1', 'bytes=5-2', 'bytes=0-999999999999', 'bytes=1-2,3-4', 'bytes=', 'items=0-1', 'bytes=-0', 'bytes=99999999999999999999-'), fc.string({ maxLength: 20 }));

function requests(fx: Fixture): fc.Arbitrary<FuzzRequest> {
  const id = segment(fx);
  const text = (a: fc.Arbitrary<unknown>) => a.map((v) => JSON.stringify(v));
  const rawBody = fc.oneof(fc.constantFrom('{', '[', '{"a":', 'nul', '"\\u0000"', '{"name":"\\ud800"}', '\u0000', '{}{}', ' ', '[1,2', '{"a":1,"a":2}'), fc.string({ maxLength: 60 }));
  const route: fc.Arbitrary<[string, string, string | undefined]> = fc.oneof<fc.Arbitrary<[string, string, string | undefined]>[]>(
    fc.tuple(fc.constantFrom('GET', 'HEAD'), query.map((q) => `/v2/images${q}`), fc.constant(undefined)),
    fc.tuple(fc.constant('POST'), fc.constant('/v2/images'), fc.oneof(text(imageBody), rawBody)),
    fc.tuple(fc.constantFrom('GET', 'HEAD', 'DELETE', 'PUT', 'POST'), id.map((i) => `/v2/images/${i}`), fc.constant(undefined)),
    fc.tuple(fc.constant('PATCH'), id.map((i) => `/v2/images/${i}`), fc.oneof(text(patchBody), rawBody)),
    fc.tuple(fc.constantFrom('GET', 'HEAD', 'PUT'), id.map((i) => `/v2/images/${i}/file`), fc.option(fc.string({ maxLength: 100 }), { nil: undefined })),
    fc.tuple(fc.constantFrom('PUT', 'DELETE'), id.map((i) => `/v2/images/${i}/stage`), fc.option(fc.string({ maxLength: 100 }), { nil: undefined })),
    fc.tuple(fc.constant('POST'), id.map((i) => `/v2/images/${i}/import`), fc.oneof(text(importBody), rawBody)),
    fc.tuple(fc.constantFrom('GET', 'POST'), id.map((i) => `/v2/images/${i}/members`), fc.oneof(text(fc.oneof(fc.record({ member: fc.oneof(weird, fc.constantFrom('p2', 'p3', 'admin')) }), anyJson)), rawBody)),
    fc.tuple(fc.constantFrom('GET', 'PUT', 'DELETE'), fc.tuple(id, fc.oneof(fc.constantFrom('p2', 'p3', 'p1'), segment(fx))).map(([i, m]) => `/v2/images/${i}/members/${m}`), text(fc.oneof(fc.record({ status: fc.oneof(fc.constantFrom('accepted', 'rejected', 'pending'), weird) }), anyJson))),
    fc.tuple(fc.constantFrom('PUT', 'DELETE'), fc.tuple(id, weird).map(([i, t]) => `/v2/images/${i}/tags/${enc(t)}`), fc.constant(undefined)),
    fc.tuple(fc.constant('POST'), fc.tuple(id, fc.constantFrom('deactivate', 'reactivate')).map(([i, a]) => `/v2/images/${i}/actions/${a}`), fc.constant(undefined)),
    fc.tuple(fc.constant('GET'), fc.oneof(id.map((i) => `/v2/images/${i}/tasks`), id.map((i) => `/v2/tasks/${i}`), query.map((q) => `/v2/tasks${q}`)), fc.constant(undefined)),
    fc.tuple(fc.constant('GET'), fc.constantFrom('/', '/versions', '/v2', '/v2/', '/healthcheck', '/v2/schemas/image', '/v2/schemas/images', '/v2/schemas/member', '/v2/schemas/members', '/v2/schemas/task', '/v2/schemas/tasks', '/v2/schemas/metadefs/namespace', '/v2/info/import', '/v2/info/stores', '/v2/info/stores/detail', '/v2/info/usage', '/v2/metadefs/resource_types', '/v2/nope', '/v3/images'), fc.constant(undefined)),
    fc.tuple(fc.constant('DELETE'), fc.tuple(fc.oneof(fc.constantFrom('default', 'x'), segment(fx)), id).map(([st, i]) => `/v2/stores/${st}/${i}`), fc.constant(undefined)),
    fc.tuple(fc.constantFrom('GET', 'POST'), query.map((q) => `/v2/metadefs/namespaces${q}`), fc.oneof(text(metadefBody), rawBody)),
    fc.tuple(
      fc.constantFrom('GET', 'PUT', 'DELETE', 'POST'),
      fc.tuple(fc.oneof(fc.constant(fx.namespace), weird.map(enc)), fc.constantFrom('', '/objects', '/properties', '/tags', '/resource_types', '/objects/o', '/properties/p', '/tags/t', '/resource_types/OS::Glance::Image')).map(([n, sub]) => `/v2/metadefs/namespaces/${n}${sub}`),
      fc.oneof(text(metadefBody), rawBody),
    ),
  );
  return fc.record({
    r: route,
    token: fc.constantFrom('admin', 'member', 'other', 'reader', 'third', null, 'bogus') as fc.Arbitrary<FuzzRequest['token']>,
    ct: fc.option(contentType, { nil: undefined }),
    range: fc.option(range, { nil: undefined }),
    size: fc.option(fc.oneof(fc.nat().map(String), weird), { nil: undefined }),
    store: fc.option(fc.oneof(fc.constantFrom('default', 'nope'), weird), { nil: undefined }),
  }).map(({ r: [method, path, body], token, ct, range: rg, size, store }) => {
    const headers: Record<string, string> = {};
    if (ct !== undefined) headers['content-type'] = ct;
    else if (body !== undefined) headers['content-type'] = method === 'PATCH' ? 'application/openstack-images-v2.1-json-patch' : path.endsWith('/file') || path.endsWith('/stage') ? 'application/octet-stream' : 'application/json';
    if (rg !== undefined) headers.range = rg;
    if (size !== undefined) headers['x-openstack-image-size'] = size;
    if (store !== undefined) headers['x-image-meta-store'] = store;
    // header values must be latin-1 without control characters for fetch to send them
    for (const [k, v] of Object.entries(headers)) if (!/^[\x20-\x7e]*$/.test(v)) delete headers[k];
    return { method, path, token, headers, body: method === 'GET' || method === 'HEAD' ? undefined : body };
  });
}

let sent = 0;

async function send(s: TestServer, r: FuzzRequest): Promise<void> {
  const headers = { ...r.headers };
  if (r.token === 'bogus') headers['x-auth-token'] = 'not-a-token';
  else if (r.token) headers['x-auth-token'] = TOKENS[r.token];
  sent++;
  let res: Response;
  try {
    res = await fetch(s.url + r.path, { method: r.method, headers, body: r.body, signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    // fetch itself refuses some URLs (it never reached the server); anything else is a hang or a crash
    if ((err as Error).name === 'TypeError' && /Invalid URL|URI/.test(String((err as { cause?: unknown }).cause ?? (err as Error).message))) return;
    throw new Error(`${r.method} ${r.path}: ${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`);
  }
  const text = await res.text();
  const what = `${r.method} ${r.path} ${JSON.stringify(r.headers)} ${r.body?.slice(0, 300) ?? ''}`;
  assert.ok(res.status < 500, `${what} → ${res.status} ${text.slice(0, 300)}`);
  if (res.status >= 400 && r.method !== 'HEAD') assertErrorShape(res.status, res.headers.get('content-type'), text, what);
}

/** Raw requests fetch cannot send: lies, broken framing, huge heads. Each must be answered (not 5xx) or closed. */
const rawRequests = (fx: Fixture) =>
  fc.oneof(
    fc.tuple(fc.nat({ max: 5000 }), fc.nat({ max: 5000 })).map(([announced, actual]) => `PUT /v2/images/${fx.queued}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKENS.member}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${announced}\r\n\r\n${'z'.repeat(actual)}`),
    fc.tuple(fc.nat({ max: 300 }), fc.constantFrom('zz', '-1', '1;ext=1', 'ffffffffffffffff', '', '10')).map(([n, bad]) => `POST /v2/images HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKENS.member}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${bad}\r\n${'{'.repeat(n)}\r\n`),
    fc.nat({ max: 40_000 }).map((n) => `GET /v2/images HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKENS.member}\r\nX-Big: ${'b'.repeat(n)}\r\n\r\n`),
    fc.constantFrom('GARBAGE\r\n\r\n', 'GET /v2/images HTTP/9.9\r\n\r\n', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /v2/images HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'POST /v2/images HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n', 'GET /v2/images HTTP/1.1\r\nHost: x\r\nX-Auth-Token: a\u0000b\r\n\r\n'),
  );

function sendRaw(s: TestServer, raw: string): Promise<void> {
  const u = new URL(s.url);
  sent++;
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      // an incomplete body the server is still waiting for is not a hang of the server
      resolve();
    }, 200);
    sock.on('data', (d) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m && Number(m[1]) >= 500) {
        clearTimeout(timer);
        sock.destroy();
        reject(new Error(`${raw.slice(0, 200)} → ${got.slice(0, 300)}`));
      } else if (m && got.includes('\r\n\r\n')) {
        clearTimeout(timer);
        sock.destroy();
        resolve();
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    sock.end(raw, 'latin1');
  });
}

async function fixture(s: TestServer): Promise<Fixture> {
  const image = await createImage(s, { name: 'fuzz-active' });
  assert.equal((await uploadBytes(s, image.id, Buffer.alloc(5000, 5))).status, 204);
  const queued = await createImage(s, { name: 'fuzz-queued' }, 'member');
  const shared = await createImage(s, { name: 'fuzz-shared', visibility: 'shared' }, 'member');
  await s.req('POST', `/v2/images/${shared.id}/members`, { token: 'member', json: { member: 'p2' } });
  const ns = await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: 'Fuzz::Target', visibility: 'public' } });
  assert.equal(ns.status, 201);
  return { image: image.id, queued: queued.id, shared: shared.id, namespace: 'Fuzz::Target' };
}

async function healthy(s: TestServer, fx: Fixture): Promise<void> {
  assert.equal((await s.req('GET', '/versions', { token: null })).status, 200);
  const img = await createImage(s, { name: 'after-fuzz' });
  const data = Buffer.from('still healthy');
  assert.equal((await uploadBytes(s, img.id, data)).status, 204);
  const got = Buffer.from(await (await s.req('GET', `/v2/images/${img.id}/file`)).arrayBuffer());
  assert.ok(got.equals(data));
  // the fixture's images may have been deleted by the fuzzing itself: only "answers" matters
  assert.ok((await s.req('GET', `/v2/images/${fx.image}`)).status < 500);
}

const kinds = await databases();
const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

for (const kind of kinds) {
  test(`fuzz every route on ${kind}`, { timeout: 900_000 }, async () => {
    const s = await serverOn(kind as DatabaseKind, { config: { logLevel: 'silent' } });
    servers.push(s);
    const fx = await fixture(s);
    const target = Math.ceil(TOTAL / kinds.length);
    const start = sent;
    const t0 = Date.now();
    const rawShare = Math.ceil(target * 0.02);
    const perSeed = Math.ceil((target - rawShare) / SEEDS.length / BATCH);
    for (const seed of SEEDS) {
      try {
        await fc.assert(fc.asyncProperty(fc.array(requests(fx), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
          await Promise.all(batch.map((r) => send(s, r)));
        }), { seed, numRuns: perSeed, endOnFailure: true });
      } catch (err) {
        console.log(`# fuzz failure on ${kind} with seed ${seed} (rerun: IMAGO_FUZZ_SEED=${seed})`);
        throw err;
      }
    }
    const seed = SEEDS[SEEDS.length - 1];
    try {
      await fc.assert(fc.asyncProperty(fc.array(rawRequests(fx), { minLength: 8, maxLength: 8 }), async (batch) => {
        await Promise.all(batch.map((r) => sendRaw(s, r)));
      }), { seed, numRuns: Math.ceil(rawShare / 8), endOnFailure: true });
    } catch (err) {
      console.log(`# raw fuzz failure on ${kind} with seed ${seed} (rerun: IMAGO_FUZZ_SEED=${seed})`);
      throw err;
    }
    const n = sent - start;
    console.log(`# fuzz ${kind}: ${n} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s, seeds ${SEEDS.join(', ')}`);
    assert.ok(n >= target, `${n} requests sent, ${target} wanted`);
    await healthy(s, fx);
  });
}
