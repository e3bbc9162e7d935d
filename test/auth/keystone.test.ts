/**
 * KeystoneAuthenticator against a real Keystone (Debian's `keystone` package,
 * served by uwsgi from test/support/keystone.ts). No mocks.
 *
 *   npx tsx --test test/auth/keystone.test.ts
 *
 * IMAGO_TEST_SKIP_KEYSTONE=1 skips it on machines without Keystone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KeystoneAuthenticator } from '../../src/auth/keystone.js';
import { createAuthenticator } from '../../src/auth/index.js';
import { StaticAuthenticator } from '../../src/auth/static.js';
import { defaultConfig, type Config } from '../../src/config.js';
import { ServiceUnavailable, Unauthorized } from '../../src/domain/errors.js';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../support/keystone.js';

const skip = process.env.IMAGO_TEST_SKIP_KEYSTONE === '1' ? 'IMAGO_TEST_SKIP_KEYSTONE=1' : false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How many token validations Keystone has served so far (from uwsgi's request log). */
async function validationsServed(ks: Keystone): Promise<number> {
  await sleep(150); // uwsgi writes the log line just after sending the response
  return readFileSync(ks.uwsgiLogFile, 'utf8').split('\n').filter((l) => l.includes('GET /v3/auth/tokens')).length;
}

async function rejects401(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof Unauthorized, `expected Unauthorized, got ${String(err)}`);
    assert.equal(err.status, 401);
    return true;
  });
}

async function rejects503(p: Promise<unknown>, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ServiceUnavailable, `expected ServiceUnavailable, got ${String(err)}`);
    assert.equal(err.status, 503);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('KeystoneAuthenticator with a real Keystone', { skip }, () => {
  let ks: Keystone; // tokens live an hour
  let shortKs: Keystone; // tokens live 3 s
  const authenticators: KeystoneAuthenticator[] = [];
  const make = (k: Keystone, overrides: Parameters<Keystone['keystoneConfig']>[0] = {}, opts: ConstructorParameters<typeof KeystoneAuthenticator>[1] = {}) => {
    const a = new KeystoneAuthenticator(k.keystoneConfig(overrides), opts);
    authenticators.push(a);
    return a;
  };

  before(async () => {
    const reason = keystoneUnavailableReason();
    if (reason) throw new Error(reason);
    const [a, b] = await Promise.allSettled([startKeystone(), startKeystone({ tokenExpirationSeconds: 3 })]);
    if (a.status === 'fulfilled') ks = a.value;
    if (b.status === 'fulfilled') shortKs = b.value;
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
  }, { timeout: 180_000 });

  after(async () => {
    await Promise.all(authenticators.map((a) => a.close()));
    await Promise.all([ks?.stop(), shortKs?.stop()]);
  });

  describe('valid tokens', () => {
    test('a member token gives the user, the project and the effective roles', async () => {
      const auth = make(ks);
      const token = await ks.token('demo-member');
      const creds = await auth.authenticate({ 'x-auth-token': token });
      assert.equal(creds.userId, ks.users['demo-member'].id);
      assert.equal(creds.projectId, ks.projects.demo);
      // member implies reader in Keystone's bootstrap role hierarchy
      assert.deepEqual([...creds.roles].sort(), ['member', 'reader']);
      assert.equal(creds.systemScope, undefined);
      assert.equal(creds.serviceRoles, undefined);
      assert.ok(creds.expiresAt instanceof Date);
      const left = creds.expiresAt!.getTime() - Date.now();
      assert.ok(left > 3500_000 && left <= 3600_000, `token lifetime ${left} ms`);
    });

    test('a reader token has only the reader role; another project is another project', async () => {
      const auth = make(ks);
      const reader = await auth.authenticate({ 'x-auth-token': await ks.token('demo-reader') });
      assert.equal(reader.userId, ks.users['demo-reader'].id);
      assert.equal(reader.projectId, ks.projects.demo);
      assert.deepEqual(reader.roles, ['reader']);
      const alt = await auth.authenticate({ 'x-auth-token': await ks.token('alt-member') });
      assert.equal(alt.projectId, ks.projects.alt);
      assert.notEqual(alt.projectId, reader.projectId);
    });

    test('the admin token carries admin, member and reader', async () => {
      const auth = make(ks);
      const creds = await auth.authenticate({ 'x-auth-token': await ks.token('admin') });
      assert.equal(creds.projectId, ks.projects.admin);
      assert.deepEqual([...creds.roles].sort(), ['admin', 'member', 'reader']);
    });

    test('a system-scoped token has no project and systemScope "all"', async () => {
      const auth = make(ks);
      const creds = await auth.authenticate({ 'x-auth-token': await ks.systemToken('admin') });
      assert.equal(creds.projectId, null);
      assert.equal(creds.systemScope, 'all');
      assert.ok(creds.roles.includes('admin'));
    });

    test('a domain-scoped token has the domain and no project', async () => {
      const auth = make(ks);
      const creds = await auth.authenticate({ 'x-auth-token': await ks.domainToken('admin') });
      assert.equal(creds.projectId, null);
      assert.equal(creds.domainId, 'default');
      assert.equal(creds.systemScope, undefined);
    });

    test('header values may be arrays and carry surrounding whitespace', async () => {
      const auth = make(ks);
      const token = await ks.token('demo-member');
      const creds = await auth.authenticate({ 'x-auth-token': [` ${token} `] });
      assert.equal(creds.userId, ks.users['demo-member'].id);
    });

    test('wwwAuthenticate names the Keystone endpoint', () => {
      assert.equal(make(ks).wwwAuthenticate, `Keystone uri="${ks.url}"`);
      assert.equal(make(ks, { wwwAuthenticateUri: 'https://keystone.example.com:5000' }).wwwAuthenticate,
        'Keystone uri="https://keystone.example.com:5000"');
    });
  });

  describe('invalid tokens', () => {
    test('no token → 401', async () => {
      const auth = make(ks);
      await rejects401(auth.authenticate({}));
      await rejects401(auth.authenticate({ 'x-auth-token': '' }));
      await rejects401(auth.authenticate({ 'x-auth-token': '   ' }));
    });

    test('garbage tokens → 401, and are not sent to Keystone again for a while', async () => {
      const auth = make(ks, { cacheSeconds: 60 });
      const before = await validationsServed(ks);
      await rejects401(auth.authenticate({ 'x-auth-token': 'garbage' }));
      await rejects401(auth.authenticate({ 'x-auth-token': 'gAAAAABpretend' + 'x'.repeat(170) }));
      assert.equal(await validationsServed(ks), before + 2);
      await rejects401(auth.authenticate({ 'x-auth-token': 'garbage' }));
      assert.equal(await validationsServed(ks), before + 2, 'a rejected token is remembered');
    });

    test('tokens that cannot be Keystone tokens → 401 without asking Keystone', async () => {
      const auth = make(ks);
      const before = await validationsServed(ks);
      await rejects401(auth.authenticate({ 'x-auth-token': 'tök€n' }));
      await rejects401(auth.authenticate({ 'x-auth-token': 'a b' }));
      await rejects401(auth.authenticate({ 'x-auth-token': 'x'.repeat(10_000) }));
      assert.equal(await validationsServed(ks), before);
    });

    test('a valid token of another Keystone → 401', async () => {
      const auth = make(ks);
      await rejects401(auth.authenticate({ 'x-auth-token': await shortKs.token('demo-member') }));
    });
  });

  describe('caching', () => {
    test('a validated token is asked about once, even by concurrent requests', async () => {
      const auth = make(ks, { cacheSeconds: 60 });
      const token = await ks.token('demo-member');
      const before = await validationsServed(ks);
      const all = await Promise.all(Array.from({ length: 8 }, () => auth.authenticate({ 'x-auth-token': token })));
      for (const c of all) assert.equal(c.projectId, ks.projects.demo);
      await auth.authenticate({ 'x-auth-token': token });
      assert.equal(await validationsServed(ks), before + 1);
    });

    test('callers cannot alter cached credentials', async () => {
      const auth = make(ks, { cacheSeconds: 60 });
      const token = await ks.token('demo-reader');
      const first = await auth.authenticate({ 'x-auth-token': token });
      first.roles.push('admin');
      first.projectId = 'someone-else';
      const second = await auth.authenticate({ 'x-auth-token': token });
      assert.deepEqual(second.roles, ['reader']);
      assert.equal(second.projectId, ks.projects.demo);
    });

    test('the cache is bounded (least recently used go first)', async () => {
      const auth = make(ks, { cacheSeconds: 60 }, { maxCacheEntries: 2 });
      const tokens = await Promise.all(['demo-member', 'demo-reader', 'alt-member'].map((u) => ks.token(u)));
      for (const t of tokens) await auth.authenticate({ 'x-auth-token': t });
      assert.equal(auth.cacheSize, 2);
      const before = await validationsServed(ks);
      await auth.authenticate({ 'x-auth-token': tokens[2] }); // cached
      await auth.authenticate({ 'x-auth-token': tokens[0] }); // evicted: asks again
      assert.equal(await validationsServed(ks), before + 1);
    });

    test('a revoked token is refused once its cache entry lapses', async () => {
      const cacheSeconds = 2;
      const auth = make(ks, { cacheSeconds });
      const token = await ks.token('demo-member');
      const validatedAt = Date.now();
      await auth.authenticate({ 'x-auth-token': token });
      await ks.revoke(token);
      if (Date.now() - validatedAt < cacheSeconds * 1000 - 300) {
        // still trusted from the cache, exactly like keystonemiddleware
        const cached = await auth.authenticate({ 'x-auth-token': token });
        assert.equal(cached.userId, ks.users['demo-member'].id);
      }
      await sleep(Math.max(0, validatedAt + cacheSeconds * 1000 + 200 - Date.now()));
      await rejects401(auth.authenticate({ 'x-auth-token': token }));
      // a fresh authenticator (no cache) refuses it at once
      await rejects401(make(ks).authenticate({ 'x-auth-token': token }));
    });

    test('cacheSeconds 0 asks Keystone every time', async () => {
      const auth = make(ks, { cacheSeconds: 0 });
      const token = await ks.token('alt-member');
      const before = await validationsServed(ks);
      await auth.authenticate({ 'x-auth-token': token });
      await auth.authenticate({ 'x-auth-token': token });
      assert.equal(await validationsServed(ks), before + 2);
      await ks.revoke(token);
      await rejects401(auth.authenticate({ 'x-auth-token': token }));
    });
  });

  describe('X-Service-Token', () => {
    test('a valid service token adds its roles as serviceRoles', async () => {
      const auth = make(ks);
      const creds = await auth.authenticate({
        'x-auth-token': await ks.token('demo-member'),
        'x-service-token': await ks.token('glance'),
      });
      assert.equal(creds.userId, ks.users['demo-member'].id);
      assert.equal(creds.projectId, ks.projects.demo);
      assert.deepEqual([...creds.roles].sort(), ['member', 'reader']);
      assert.deepEqual([...creds.serviceRoles!].sort(), ['admin', 'member', 'reader', 'service']);
    });

    test('an invalid or revoked service token → 401 even with a valid user token', async () => {
      const auth = make(ks, { cacheSeconds: 0 });
      const user = await ks.token('demo-member');
      await rejects401(auth.authenticate({ 'x-auth-token': user, 'x-service-token': 'garbage' }));
      const svc = await ks.token('glance');
      await ks.revoke(svc);
      await rejects401(auth.authenticate({ 'x-auth-token': user, 'x-service-token': svc }));
    });

    test('a valid service token does not rescue an invalid user token', async () => {
      const auth = make(ks);
      await rejects401(auth.authenticate({ 'x-auth-token': 'garbage', 'x-service-token': await ks.token('glance') }));
    });
  });

  describe("Imago's service token", () => {
    test('is renewed when Keystone stops accepting it (revoked)', async () => {
      const auth = make(ks, { cacheSeconds: 0 });
      await auth.authenticate({ 'x-auth-token': await ks.token('demo-member') });
      // peek at the private service token: revoking it is the only way to make Keystone answer 401
      const svc = (auth as unknown as { service?: { token: string } }).service?.token;
      assert.ok(svc, 'the authenticator holds a service token');
      await ks.revoke(svc);
      const creds = await auth.authenticate({ 'x-auth-token': await ks.token('demo-reader') });
      assert.equal(creds.userId, ks.users['demo-reader'].id);
      assert.notEqual((auth as unknown as { service?: { token: string } }).service?.token, svc);
    });

    test('wrong service credentials → 503, not 401', async () => {
      const auth = make(ks, { password: 'not-the-password' });
      await rejects503(auth.authenticate({ 'x-auth-token': await ks.token('demo-member') }), /service credentials/);
      const noProject = make(ks, { projectName: 'no-such-project' });
      await rejects503(noProject.authenticate({ 'x-auth-token': await ks.token('demo-member') }));
    });

    test('a service user without admin/service role → 503 (Keystone answers 403)', async () => {
      // demo-reader may only validate its own tokens
      const u = ks.users['demo-reader'];
      const auth = make(ks, { username: u.name, password: u.password, projectName: u.projectName });
      await rejects503(auth.authenticate({ 'x-auth-token': await ks.token('demo-member') }), /lacks permission/);
    });
  });

  describe('short-lived tokens (3 s)', () => {
    test('an expired token → 401, even though it was cached; the service token is renewed', async () => {
      const auth = make(shortKs, { cacheSeconds: 60 });
      const token = await shortKs.token('demo-member');
      const creds = await auth.authenticate({ 'x-auth-token': token });
      assert.equal(creds.projectId, shortKs.projects.demo);
      const expiresAt = creds.expiresAt!.getTime();
      assert.ok(expiresAt - Date.now() <= 3000);
      await sleep(Math.max(0, expiresAt - Date.now() + 1100));
      await rejects401(auth.authenticate({ 'x-auth-token': token }));
      // by now Imago's own 3-second service token has expired as well: a new user token still works
      const fresh = await auth.authenticate({ 'x-auth-token': await shortKs.token('alt-member') });
      assert.equal(fresh.projectId, shortKs.projects.alt);
    });

    test('Keystone going away → 503 for tokens not in the cache, not a crash or a 401', async () => {
      const auth = make(shortKs, { cacheSeconds: 60 }, { timeoutMs: 3000 });
      const token = await shortKs.token('demo-member');
      await auth.authenticate({ 'x-auth-token': token });
      await shortKs.stop();
      await rejects503(auth.authenticate({ 'x-auth-token': 'some-other-token' }), /Keystone at http:\/\/127\.0\.0\.1:\d+\/v3 cannot be reached/);
    });
  });

  describe('Keystone unavailable', () => {
    test('nothing listening → 503 with a clear message', async () => {
      const port = await freePort();
      const auth = make(ks, { authUrl: `http://127.0.0.1:${port}/v3`, wwwAuthenticateUri: `http://127.0.0.1:${port}` });
      await rejects503(auth.authenticate({ 'x-auth-token': 'whatever' }), /cannot be reached \(ECONNREFUSED\)/);
    });

    test('Keystone hanging → 503 after the timeout', async () => {
      const sockets: Socket[] = [];
      const hang: Server = createServer((s) => { sockets.push(s); });
      await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
      const port = (hang.address() as { port: number }).port;
      try {
        const auth = make(ks, { authUrl: `http://127.0.0.1:${port}/v3` }, { timeoutMs: 500 });
        const t0 = Date.now();
        await rejects503(auth.authenticate({ 'x-auth-token': 'whatever' }), /did not answer within 500 ms/);
        assert.ok(Date.now() - t0 < 3000);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((r) => hang.close(r));
      }
    });
  });

  describe('harness', () => {
    const openstack = '/usr/bin/openstack';
    test('registerImageEndpoint lets the openstack CLI find Imago through the catalog', { skip: !existsSync(openstack) && 'no openstack CLI' }, async () => {
      await ks.registerImageEndpoint('http://127.0.0.1:9292');
      await ks.registerImageEndpoint('http://127.0.0.1:19292'); // re-pointing replaces the endpoints
      const { stdout } = await promisify(execFile)(openstack, ['catalog', 'show', 'image', '-f', 'json'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: ks.dir, ...ks.openstackEnv('demo-member') },
        timeout: 60_000,
      });
      const entry = JSON.parse(stdout) as { type: string; endpoints: Array<{ interface: string; url: string; region_id: string }> };
      assert.equal(entry.type, 'image');
      assert.deepEqual(entry.endpoints.map((e) => e.interface).sort(), ['admin', 'internal', 'public']);
      for (const e of entry.endpoints) {
        assert.equal(e.url, 'http://127.0.0.1:19292');
        assert.equal(e.region_id, 'RegionOne');
      }
    });
  });

  describe('createAuthenticator', () => {
    test('builds a KeystoneAuthenticator or a StaticAuthenticator from the config', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'imago-auth-'));
      try {
        const cfg: Config = defaultConfig(dir);
        cfg.auth = { mode: 'keystone', tokensFile: path.join(dir, 'tokens.json'), keystone: ks.keystoneConfig() };
        const auth = createAuthenticator(cfg);
        assert.ok(auth instanceof KeystoneAuthenticator);
        authenticators.push(auth);
        const creds = await auth.authenticate({ 'x-auth-token': await ks.token('alt-member') });
        assert.equal(creds.projectId, ks.projects.alt);
        cfg.auth = { mode: 'static', tokensFile: path.join(dir, 'tokens.json') };
        assert.ok(createAuthenticator(cfg) instanceof StaticAuthenticator);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
