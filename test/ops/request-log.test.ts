import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKENS } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { LogCapture, startLoggedServer } from './helpers.js';
import { createLogger, effectiveLogFormat } from '../../src/logging.js';
import { waitFor } from '../support/wait.js';

type Server = Awaited<ReturnType<typeof startLoggedServer>>;

function requestLines(logs: LogCapture): Record<string, any>[] {
  return logs.json().filter((l) => l.requestId && l.route);
}

/** The request line of `requestId`; it is written when the connection is done with the answer, so wait a moment. */
async function lineOf(logs: LogCapture, requestId: string | null): Promise<Record<string, any>> {
  return waitFor(`the request log line of ${requestId}`, () => requestLines(logs).find((l) => l.requestId === requestId), 5_000);
}

describe('request logs', () => {
  let s: Server;
  before(async () => {
    s = await startLoggedServer();
  });
  after(() => s.close());

  const call = (method: string, path: string, opts: { token?: string | null; headers?: Record<string, string>; body?: BodyInit } = {}) =>
    fetch(s.url + path, {
      method,
      headers: { ...(opts.token === null ? {} : { 'x-auth-token': opts.token ?? TOKENS.member }), ...(opts.headers ?? {}) },
      body: opts.body,
    });

  test('one line per request: who, what, how much, how long; uploads and hijacked downloads included; no tokens', async () => {
    const created = await call('POST', '/v2/images', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'logged', disk_format: 'raw', container_format: 'bare' }) });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as { id: string };
    const createLine = await lineOf(s.logs, created.headers.get('x-openstack-request-id'));
    assert.equal(createLine.method, 'POST');
    assert.equal(createLine.route, '/v2/images');
    assert.equal(createLine.status, 201);
    assert.ok(createLine.bytesIn > 0 && createLine.bytesOut > 0);
    assert.equal(createLine.user, 'member-user');
    assert.equal(createLine.project, 'p1');
    assert.equal(createLine.remoteAddress, '127.0.0.1');
    assert.match(createLine.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO timestamps');

    const data = pattern(3 * 1024 * 1024 + 17);
    const put = await call('PUT', `/v2/images/${id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
    assert.equal(put.status, 204);
    const putLine = await lineOf(s.logs, put.headers.get('x-openstack-request-id'));
    assert.equal(putLine.route, '/v2/images/:id/file');
    assert.equal(putLine.path, `/v2/images/${id}/file`);
    assert.equal(putLine.status, 204);
    assert.equal(putLine.bytesIn, data.length);
    assert.equal(putLine.incomplete, undefined);
    assert.equal(typeof putLine.durationMs, 'number');

    // the download is written after reply.hijack(): Fastify's own response hooks never see it
    const get = await call('GET', `/v2/images/${id}/file`);
    assert.equal(get.status, 200);
    assert.equal(Buffer.from(await get.arrayBuffer()).length, data.length);
    const getLine = await lineOf(s.logs, get.headers.get('x-openstack-request-id'));
    assert.equal(getLine.status, 200);
    assert.equal(getLine.bytesOut, data.length);
    assert.equal(getLine.user, 'member-user');

    const range = await call('GET', `/v2/images/${id}/file`, { headers: { range: 'bytes=10-1033' } });
    assert.equal(range.status, 206);
    await range.arrayBuffer();
    assert.equal((await lineOf(s.logs, range.headers.get('x-openstack-request-id'))).bytesOut, 1024);

    const all = s.logs.lines.join('\n');
    for (const token of Object.values(TOKENS)) assert.ok(!all.includes(token), `token ${token} must never be logged`);
  });

  test('refusals are logged with what was asked, unmatched paths under one route label', async () => {
    const denied = await call('GET', '/v2/images', { token: null });
    assert.equal(denied.status, 401);
    const line = await lineOf(s.logs, denied.headers.get('x-openstack-request-id'));
    assert.equal(line.method, 'GET');
    assert.equal(line.route, '/v2/images');
    assert.equal(line.status, 401);
    assert.equal(line.user, null);

    const bad = await call('GET', '/v2/images', { token: 'not-a-token' });
    assert.equal(bad.status, 401);
    assert.ok(!s.logs.lines.join('\n').includes('not-a-token'));

    const lost = await call('GET', '/v2/no/such/thing');
    assert.equal(lost.status, 404);
    const lostLine = await lineOf(s.logs, lost.headers.get('x-openstack-request-id'));
    assert.equal(lostLine.route, 'unmatched');
    assert.equal(lostLine.path, '/v2/no/such/thing');

    // refused by the router itself, before any hook runs
    const garbled = await call('GET', '/v2/images/%zz');
    assert.equal(garbled.status, 400);
    const garbledLine = await lineOf(s.logs, garbled.headers.get('x-openstack-request-id'));
    assert.equal(garbledLine.status, 400);
    assert.equal(garbledLine.path, '/v2/images/%zz');
  });

  test('a download the client abandons is logged as incomplete', async () => {
    const created = await call('POST', '/v2/images', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ disk_format: 'raw', container_format: 'bare' }) });
    const { id } = (await created.json()) as { id: string };
    const big = pattern(64 * 1024 * 1024, 3);
    assert.equal((await call('PUT', `/v2/images/${id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(big) })).status, 204);
    const controller = new AbortController();
    const get = await fetch(`${s.url}/v2/images/${id}/file`, { headers: { 'x-auth-token': TOKENS.member }, signal: controller.signal });
    const reader = get.body!.getReader();
    await reader.read();
    controller.abort();
    const line = await lineOf(s.logs, get.headers.get('x-openstack-request-id'));
    assert.equal(line.status, 200);
    assert.equal(line.incomplete, true);
    assert.ok(line.bytesOut < big.length);
  });
});

describe('log formats', () => {
  test('pretty by default on a terminal, json otherwise; logFormat wins', () => {
    assert.equal(effectiveLogFormat({}, true), 'pretty');
    assert.equal(effectiveLogFormat({}, false), 'json');
    assert.equal(effectiveLogFormat({ logFormat: 'json' }, true), 'json');
    assert.equal(effectiveLogFormat({ logFormat: 'pretty' }, false), 'pretty');
  });

  test('pretty is pino-pretty: one readable line, ISO time, no JSON', () => {
    const out = new LogCapture();
    const log = createLogger({ logLevel: 'info', logFormat: 'pretty' }, out);
    log.info({ requestId: 'req-1', status: 200, password: 'hunter2' }, 'GET /v2/images 200');
    const text = out.lines.join('\n');
    assert.match(text, /INFO.*GET \/v2\/images 200/);
    assert.match(text, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}/);
    assert.doesNotMatch(text, /hunter2/);
    assert.throws(() => JSON.parse(out.lines[0]));
  });

  test('json lines carry ISO timestamps and redact passwords', () => {
    const out = new LogCapture();
    createLogger({ logLevel: 'info', logFormat: 'json' }, out).info({ auth: { password: 'hunter2' } }, 'hello');
    const line = out.json()[0];
    assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(line.auth.password, '***');
  });
});
