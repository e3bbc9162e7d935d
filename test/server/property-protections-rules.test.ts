import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createImage, makeDataDir, startTestServer, testConfig, writeTokens, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { importImage, stage, waitImage, waitTasks } from '../import/helpers.js';
import { runImago } from '../ops/helpers.js';
import { startServer } from '../../src/server/start.js';
import { ConfigError } from '../../src/config.js';

/**
 * The example, with static tokens: only admins touch x_billing_code_*
 * (members do not even see it); members and readers may read the licence
 * properties but only admins change them; everything else is open.
 */
const RULES = `
[^x_billing_code_.*]
create = admin
read = admin
update = admin
delete = admin

[^os_licen[cs]e]
create = admin
read = admin,member,reader
update = admin
delete = !

[.*]
create = @
read = @
update = @
delete = @
`;
const PATCH = { 'content-type': 'application/openstack-images-v2.1-json-patch' };

describe('property protections: readable but not writable properties, and imports', { timeout: 120_000 }, () => {
  let s: TestServer;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'imago-ppr-'));
    writeFileSync(path.join(dir, 'protections.conf'), RULES);
    s = await startTestServer({
      config: {
        propertyProtection: { file: path.join(dir, 'protections.conf') },
        import: { plugins: { injectMetadata: { enabled: true, properties: { os_licence: 'injected' }, ignoreUserRoles: ['admin'] } } },
      },
    });
  });
  after(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const patch = (id: string, ops: unknown[], token: 'admin' | 'member' | 'reader' = 'member') => s.req('PATCH', `/v2/images/${id}`, { token, headers: PATCH, json: ops });

  test('a property the member reads but may not change: 403 on replace and remove, the value stays', async () => {
    const img = await createImage(s, { owner: 'p1', os_licence: 'gpl', x_billing_code_1: 'B', free: 'f' });
    const asMember = await s.req('GET', `/v2/images/${img.id}`, { token: 'member' });
    const body = (await asMember.json()) as Record<string, unknown>;
    assert.equal(body.os_licence, 'gpl');
    assert.equal('x_billing_code_1' in body, false);
    assert.equal(((await (await s.req('GET', `/v2/images/${img.id}`, { token: 'reader' })).json()) as Record<string, unknown>).os_licence, 'gpl');

    for (const ops of [[{ op: 'replace', path: '/os_licence', value: 'mit' }], [{ op: 'remove', path: '/os_licence' }], [{ op: 'add', path: '/os_licence', value: 'mit' }]]) {
      const res = await patch(img.id, ops);
      assert.equal(res.status, 403, JSON.stringify(ops));
      const err = (await res.json()) as { error: { code: number; message: string } };
      assert.equal(err.error.code, 403);
      assert.match(err.error.message, /os_licence.*(update|delete)/);
    }
    // `delete = !`: not even the admin
    assert.equal((await patch(img.id, [{ op: 'remove', path: '/os_licence' }], 'admin')).status, 403);
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/os_licence', value: 'mit' }], 'admin')).status, 200);
    // open properties stay open, in the same PATCH as nothing protected
    assert.equal((await patch(img.id, [{ op: 'replace', path: '/free', value: 'g' }, { op: 'add', path: '/another', value: 'a' }])).status, 200);
    const admin = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, unknown>;
    assert.deepEqual([admin.os_licence, admin.x_billing_code_1, admin.free, admin.another], ['mit', 'B', 'g', 'a']);
  });

  test('a PATCH refused half-way changes nothing', async () => {
    const img = await createImage(s, { owner: 'p1', os_licence: 'gpl' });
    assert.equal((await patch(img.id, [{ op: 'add', path: '/ok', value: '1' }, { op: 'replace', path: '/os_licence', value: 'x' }])).status, 403);
    const now = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, unknown>;
    assert.equal('ok' in now, false);
    assert.equal(now.os_licence, 'gpl');
  });

  test('create: the member may not set x_billing_code_*, nor (create = admin) a licence property', async () => {
    for (const prop of ['x_billing_code_7', 'os_license']) {
      const res = await s.req('POST', '/v2/images', { token: 'member', json: { [prop]: 'v' } });
      assert.equal(res.status, 403, prop);
    }
    assert.equal((await s.req('POST', '/v2/images', { token: 'member', json: { anything: 'v' } })).status, 201);
  });

  test('an import whose injected metadata the requester may not create fails, and the image is back in queued without it', async () => {
    const img = await createImage(s, { name: 'inject' }, 'member');
    assert.equal((await stage(s, img.id, pattern(4096), 'member')).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token: 'member' })).status, 202);
    const [task] = await waitTasks(s, img.id);
    assert.equal(task.status, 'failure');
    assert.match(task.message, /os_licence.*create/);
    const image = await waitImage(s, img.id, (i) => i.status === 'queued');
    assert.equal('os_licence' in image, false);
  });

  test('the admin\'s import gets no injected metadata (ignoreUserRoles) and succeeds', async () => {
    const img = await createImage(s, { name: 'inject-admin' });
    assert.equal((await stage(s, img.id, pattern(4096))).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
    const image = await waitImage(s, img.id, (i) => i.status === 'active');
    assert.equal('os_licence' in image, false);
  });
});

describe('a property protection file that cannot be used stops the start', () => {
  const cases: [string, string, string | undefined, RegExp][] = [
    ['bad regular expression', '[x_(]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n', undefined, /\[x_\(\].*not a valid regular expression/],
    ['unknown operation', '[x_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\nmodify = admin\n', undefined, /unknown operation "modify"/],
    ['missing operation', '[x_]\ncreate = admin\nread = admin\nupdate = admin\n', undefined, /no "delete" operation/],
    ['policy rule the policy lacks', '[x_]\ncreate = no_such_rule\nread = @\nupdate = @\ndelete = @\n', 'policies', /policy rule "no_such_rule"/],
  ];
  for (const [what, text, ruleFormat, message] of cases) {
    test(what, async () => {
      const dataDir = makeDataDir();
      writeTokens(dataDir);
      const file = path.join(dataDir, 'pp.conf');
      writeFileSync(file, text);
      try {
        await assert.rejects(startServer(testConfig(dataDir, { propertyProtection: { file, ...(ruleFormat ? { ruleFormat } : {}) } })), (err: Error) => {
          assert.ok(err instanceof ConfigError, `${err.constructor.name}: ${err.message}`);
          assert.match(err.message, message);
          assert.match(err.message, /property protection file/);
          return true;
        });
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }

  test('the imago command exits with status 2 and says why', async () => {
    const dataDir = makeDataDir();
    writeTokens(dataDir);
    const file = path.join(dataDir, 'pp.conf');
    writeFileSync(file, '[(]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n');
    const config = path.join(dataDir, 'config.json');
    writeFileSync(config, JSON.stringify({ port: 0, propertyProtection: { file } }));
    try {
      const run = await runImago([], { IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: config });
      assert.equal(run.code, 2, run.stderr + run.stdout);
      assert.match(run.stderr + run.stdout, /not a valid regular expression/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a missing file stops the start', async () => {
    const dataDir = makeDataDir();
    writeTokens(dataDir);
    try {
      await assert.rejects(startServer(testConfig(dataDir, { propertyProtection: { file: 'nowhere.conf' } })), (err: Error) => err instanceof ConfigError && /cannot read property protection file .*nowhere\.conf/.test(err.message));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
