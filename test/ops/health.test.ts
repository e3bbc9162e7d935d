import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/server.js';
import { createTestDatabase, postgresAvailable, PG_ADMIN_URL } from '../support/postgres.js';
import { keystoneUnavailableReason, startKeystone } from '../support/keystone.js';
import { waitFor } from '../support/wait.js';
import { startRelay } from '../support/relay.js';
import { ConfigError } from '../../src/config.js';

async function health(base: string, opts: { method?: string; accept?: string } = {}): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`${base}/healthcheck`, { method: opts.method ?? 'GET', headers: opts.accept ? { accept: opts.accept } : {} });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}


describe('healthcheck', () => {
  let s: TestServer;
  const drainFile = () => path.join(s.dataDir, 'drain');
  before(async () => {
    s = await startTestServer({ config: { health: { cacheSeconds: 0, disableByFile: 'drain' }, metrics: { enabled: true, port: 0 } } });
  });
  after(() => s.close());

  test('healthy: GET 200 OK as text, HEAD 204, JSON reasons on request, no token needed', async () => {
    const plain = await health(s.url);
    assert.equal(plain.status, 200);
    assert.match(plain.type!, /^text\/plain/);
    assert.equal(plain.body, 'OK');
    const head = await health(s.url, { method: 'HEAD' });
    assert.equal(head.status, 204);
    assert.equal(head.body, '');
    const json = await health(s.url, { accept: 'application/json' });
    assert.equal(json.status, 200);
    assert.match(json.type!, /^application\/json/);
    assert.deepEqual(JSON.parse(json.body), { detailed: false, reasons: ['OK'] });
    assert.equal((await health(s.url, { accept: '*/*' })).body, 'OK', 'a client that takes anything gets text');
  });

  test('the drain file answers 503 DISABLED BY FILE while it exists', async () => {
    writeFileSync(drainFile(), '');
    try {
      const plain = await health(s.url);
      assert.equal(plain.status, 503);
      assert.equal(plain.body, 'DISABLED BY FILE');
      assert.equal((await health(s.url, { method: 'HEAD' })).status, 503);
      assert.deepEqual(JSON.parse((await health(s.url, { accept: 'application/json' })).body), { detailed: false, reasons: ['DISABLED BY FILE'] });
      // requests are still served: in-flight and new work finish while the balancer moves away
      assert.equal((await s.req('GET', '/v2/images')).status, 200);
    } finally {
      unlinkSync(drainFile());
    }
    assert.equal((await health(s.url)).status, 200);
  });

  test('a store directory that disappears makes the node unhealthy, naming the store; details only on the metrics listener', async () => {
    const storeDir = path.join(s.dataDir, 'images');
    assert.equal((await health(s.url)).status, 200);
    rmSync(storeDir, { recursive: true, force: true });
    const plain = await health(s.url);
    assert.equal(plain.status, 503);
    assert.equal(plain.body, 'store local unavailable');
    const json = JSON.parse((await health(s.url, { accept: 'application/json' })).body);
    assert.deepEqual(json, { detailed: false, reasons: ['store local unavailable'] });
    assert.ok(!plain.body.includes(storeDir), 'the public answer does not show paths');

    const detailed = await health(s.metricsUrl!, { accept: 'application/json' });
    assert.equal(detailed.status, 503);
    const body = JSON.parse(detailed.body);
    assert.equal(body.detailed, true);
    const store = body.reasons.find((r: { class: string }) => r.class === 'store local');
    assert.equal(store.reason, 'store local unavailable');
    assert.match(store.details, /ENOENT/);
    assert.equal(body.reasons.find((r: { class: string }) => r.class === 'database').reason, 'OK');
  });
});

describe('healthcheck of the identity service', () => {
  test('Keystone unreachable: 503 naming the identity service, and the result is cached', async () => {
    const port = await closedPort();
    const s = await startTestServer({
      config: {
        auth: { mode: 'keystone', keystone: { authUrl: `http://127.0.0.1:${port}/v3`, username: 'glance', password: 'pw', projectName: 'service' } },
        health: { cacheSeconds: 30 },
      },
    });
    try {
      const started = Date.now();
      const r = await health(s.url);
      assert.equal(r.status, 503);
      assert.equal(r.body, 'identity service unavailable');
      // cached: the second probe does not ask Keystone again
      const t = Date.now();
      assert.equal((await health(s.url)).status, 503);
      assert.ok(Date.now() - t < Math.max(50, (t - started) / 2));
    } finally {
      await s.close();
    }
  });
});

describe('healthcheck with a real Keystone', { skip: process.env.IMAGO_TEST_SKIP_KEYSTONE === '1' ? 'IMAGO_TEST_SKIP_KEYSTONE=1' : keystoneUnavailableReason() ?? false }, () => {
  test('wrong service credentials: 503 identity service unavailable (every request would fail); right ones: 200', async () => {
    const ks = await startKeystone();
    try {
      const wrong = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig({ password: 'not-the-password' }) } } });
      try {
        const r = await health(wrong.url);
        assert.equal(r.status, 503);
        assert.equal(r.body, 'identity service unavailable');
      } finally {
        await wrong.close();
      }
      // checkAtStart: fail turns the same mistake into a refusal to start, naming Keystone and the user
      await assert.rejects(
        startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig({ password: 'not-the-password', checkAtStart: 'fail' }) } } }),
        (err: Error) => err instanceof ConfigError && /Keystone at http:\/\/127\.0\.0\.1:\d+\/v3 does not accept Imago's own credentials \(user glance, project service\)/.test(err.message) && !err.message.includes('not-the-password'),
      );
      const right = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() } } });
      try {
        const r = await health(right.url);
        assert.equal(r.status, 200, r.body);
        assert.equal(r.body, 'OK');
      } finally {
        await right.close();
      }
    } finally {
      await ks.stop();
    }
  });

  test('Keystone going away and coming back: 503 naming it while gone (cached tokens still work); requests and health recover without a restart', async () => {
    const ks = await startKeystone();
    const target = new URL(ks.url);
    const relay = await startRelay(target.hostname, Number(target.port));
    const via = `http://127.0.0.1:${relay.port}`;
    const s = await startTestServer({ config: { health: { cacheSeconds: 0 }, auth: { mode: 'keystone', keystone: ks.keystoneConfig({ authUrl: `${via}/v3`, wwwAuthenticateUri: via }) } } });
    const list = (token: string) => fetch(`${s.url}/v2/images`, { headers: { 'x-auth-token': token } });
    try {
      const before = await ks.token('demo-member');
      assert.equal((await list(before)).status, 200);
      assert.equal((await health(s.url)).status, 200);

      relay.cut();
      const during = await ks.token('alt-member'); // from Keystone directly: Imago has never seen it
      const refused = await list(during);
      assert.equal(refused.status, 503);
      const body = (await refused.json()) as { error: { code: number; message: string } };
      assert.equal(body.error.code, 503);
      assert.match(body.error.message, /Keystone .* cannot be reached/);
      assert.equal((await list(before)).status, 200, 'a token validated before the outage is served from the cache');
      const down = await health(s.url);
      assert.equal(down.status, 503);
      assert.equal(down.body, 'identity service unavailable');

      relay.restore();
      assert.equal((await list(during)).status, 200, 'the token refused during the outage is accepted now');
      assert.equal((await list(await ks.token('demo-reader'))).status, 200);
      await waitFor('health to answer 200 again', async () => (await health(s.url)).status === 200, 10_000, 100);
    } finally {
      await s.close();
      relay.stop();
      await ks.stop();
    }
  });
});

describe('healthcheck of the database (PostgreSQL)', async () => {
  const pgUp = await postgresAvailable();
  test('PostgreSQL unreachable: 503 database unavailable; back to 200 when it returns', { skip: !pgUp && 'PostgreSQL is not running at ' + PG_ADMIN_URL }, async () => {
    // Imago reaches the shared PostgreSQL through a TCP relay this test owns: closing the relay
    // makes the database unreachable for Imago without stopping the server other tests use.
    const db = await createTestDatabase();
    const target = new URL(db.url);
    const relay = await startRelay(target.hostname, Number(target.port || 5432));
    const relayed = new URL(db.url);
    relayed.host = `127.0.0.1:${relay.port}`;
    const s = await startTestServer({ env: { IMAGO_DATABASE_URL: relayed.toString() }, config: { health: { cacheSeconds: 0 } } });
    try {
      assert.equal((await health(s.url)).status, 200);
      relay.cut();
      const down = await health(s.url);
      assert.equal(down.status, 503);
      assert.equal(down.body, 'database unavailable');
      relay.restore();
      await waitFor('health to answer 200 again', async () => (await health(s.url)).status === 200, 10_000, 100);
    } finally {
      await s.close();
      relay.stop();
      await db.drop();
    }
  });
});
