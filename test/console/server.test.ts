import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { clientFor } from './helpers.js';
import { ApiError } from '../../console/src/api/client.js';

/** The console's static files and sign-in endpoints over plain HTTP (src/server/console.ts). */

async function assertErrorBody(res: Response, status: number, fragment: RegExp): Promise<void> {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = await res.json() as { error: { code: number; message: string; details: string } };
  assert.equal(body.error.code, status);
  assert.equal(typeof body.error.details, 'string');
  assert.match(body.error.message, fragment);
}

describe('console: static files', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer({ config: { console: { loginsPerMinute: 10 } } }); });
  after(() => s.close());

  test('/console redirects to /console/, which is the page with a strict CSP and no-cache', async () => {
    const r = await fetch(`${s.url}/console`, { redirect: 'manual' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), '/console/');
    const res = await fetch(`${s.url}/console/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/html/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const csp = res.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const html = await res.text();
    assert.match(html, /<meta name="imago-auth-mode" content="static">/);
    assert.match(html, /<script type="module" crossorigin src="\/console\/assets\/index-[\w-]+\.js"><\/script>/);
    // nothing inline, nothing from elsewhere
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
    assert.doesNotMatch(html, /https?:\/\//);
  });

  test('hashed assets are cached for a year, gzip on request; the JS ships in < 150 KB gzipped', async () => {
    const html = await (await fetch(`${s.url}/console/`)).text();
    const assets = [...html.matchAll(/\/console\/assets\/[\w.-]+\.(?:js|css)/g)].map((m) => m[0]);
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), `assets: ${assets}`);
    let jsGzip = 0;
    let jsRaw = 0;
    for (const a of assets) {
      const plain = await fetch(s.url + a, { headers: { 'accept-encoding': 'identity' } });
      assert.equal(plain.status, 200);
      assert.equal(plain.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.ok(plain.headers.get('content-security-policy'));
      const raw = Buffer.from(await plain.arrayBuffer());
      // fetch decodes the gzip body; Content-Length is the compressed length
      const gz = await fetch(s.url + a, { headers: { 'accept-encoding': 'gzip' } });
      assert.equal(gz.headers.get('content-encoding'), 'gzip');
      assert.equal(gz.headers.get('vary'), 'accept-encoding');
      const gzLength = Number(gz.headers.get('content-length'));
      assert.deepEqual(Buffer.from(await gz.arrayBuffer()), raw);
      if (a.endsWith('.js')) {
        jsRaw += raw.length;
        jsGzip += gzLength;
      }
    }
    console.log(`# console JavaScript: ${(jsRaw / 1024).toFixed(1)} KiB, ${(jsGzip / 1024).toFixed(1)} KiB gzipped`);
    assert.ok(jsGzip > 0 && jsGzip < 150 * 1024, `gzipped JS is ${jsGzip} bytes`);
    const sw = await fetch(`${s.url}/console/sw.js`);
    assert.equal(sw.status, 200);
    assert.match(sw.headers.get('content-type')!, /^text\/javascript/);
    assert.equal(sw.headers.get('cache-control'), 'no-cache');
  });

  test('unknown console paths answer 404 with the JSON error body; other methods 405', async () => {
    await assertErrorBody(await fetch(`${s.url}/console/assets/nope.js`), 404, /could not be found/);
    await assertErrorBody(await fetch(`${s.url}/console/api/nope`), 404, /could not be found/);
    const del = await fetch(`${s.url}/console/`, { method: 'DELETE' });
    await assertErrorBody(del, 405, /./);
  });

  test('login with a static token answers who it is; a wrong one 401; a bad body 400', async () => {
    const c = clientFor(s);
    c.token = null;
    const session = await c.login({ token: TOKENS.member });
    assert.equal(session.token, TOKENS.member);
    assert.equal(session.mode, 'static');
    assert.deepEqual(session.project, { id: 'p1', name: 'p1' });
    assert.equal(session.user.id, 'member-user');
    assert.equal(session.is_admin, false);
    assert.equal((await c.login({ token: TOKENS.admin })).is_admin, true);
    await assertErrorBody(await fetch(`${s.url}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'nope' }) }), 401, /not valid/);
    await assertErrorBody(await fetch(`${s.url}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[1]' }), 400, /JSON object/);
    await assertErrorBody(await fetch(`${s.url}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'a', password: 'b' }) }), 400, /static tokens/);
    await assertErrorBody(await fetch(`${s.url}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 5 }) }), 400, /"token" must be a string/);
  });

  test('the projects endpoint needs a token and lists the token\'s project', async () => {
    await assertErrorBody(await fetch(`${s.url}/console/api/projects`), 401, /X-Auth-Token/);
    const r = await clientFor(s, 'other').projects();
    assert.deepEqual(r, { projects: [{ id: 'p2', name: 'p2', domain_id: null }], current: 'p2' });
  });

  test('sign-in is rate-limited per address: the 11th attempt in a minute gets 429 with Retry-After', async () => {
    // a fresh server: the attempts above must not count
    const t = await startTestServer({ config: { console: { loginsPerMinute: 10 } } });
    try {
      const attempt = () => fetch(`${t.url}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'guess' }) });
      for (let i = 0; i < 10; i++) assert.equal((await attempt()).status, 401, `attempt ${i + 1}`);
      const res = await attempt();
      const retry = Number(res.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
      await assertErrorBody(res, 429, /Too many sign-in attempts/);
      // even a right token waits: the limit counts attempts, not failures
      await assert.rejects(clientFor(t).login({ token: TOKENS.admin }), (e: ApiError) => e.status === 429);
      // the API itself is not limited
      assert.equal((await t.req('GET', '/v2/images')).status, 200);
    } finally {
      await t.close();
    }
  });
});

describe('console: disabled', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer({ config: { console: { enabled: false } } }); });
  after(() => s.close());

  test('console.enabled=false: /console/ and its API answer 404, the image API works', async () => {
    await assertErrorBody(await fetch(`${s.url}/console/`), 404, /console is disabled/);
    await assertErrorBody(await fetch(`${s.url}/console/api/login`, { method: 'POST', body: '{}' }), 404, /console is disabled/);
    assert.equal((await s.req('GET', '/v2/images')).status, 200);
  });
});
