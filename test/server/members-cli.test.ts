import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestServer, makeDataDir, type TestServer } from '../support/server.js';
import { startKeystone, keystoneUnavailableReason, type Keystone } from '../support/keystone.js';

/**
 * Image sharing driven by the real clients: python-openstackclient
 * (`openstack image add project / member list / set --accept|--reject /
 * remove project`) and python-glanceclient (`member-*`), first with static
 * tokens, then with a real Keystone.
 */
const run = promisify(execFile);
const OPENSTACK = '/usr/bin/openstack';
const GLANCE = '/usr/bin/glance';
const missing = [OPENSTACK, GLANCE].filter((f) => !existsSync(f));

// The CLI looks projects up in Keystone unless they look like UUIDs, so the static tokens use UUID projects.
const OWNER = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const THIRD = '33333333-3333-4333-8333-333333333333';
const TOKENS = { owner: 'cli-owner-token', other: 'cli-other-token', third: 'cli-third-token', admin: 'cli-admin-token' } as const;

/** The environment without any OS_* the caller may have set (glanceclient trips over a stray OS_AUTH_TYPE). */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OS_') && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

async function cli(bin: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(bin, args, { env: cleanEnv(env), timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

async function ok(bin: string, args: string[], env: Record<string, string>): Promise<string> {
  const r = await cli(bin, args, env);
  assert.equal(r.code, 0, `${path.basename(bin)} ${args.join(' ')}\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

let s: TestServer;
const osStatic = (who: keyof typeof TOKENS) => ({ OS_AUTH_TYPE: 'admin_token', OS_TOKEN: TOKENS[who], OS_ENDPOINT: `${s.url}/v2`, OS_IMAGE_API_VERSION: '2' });
// --os-image-api-version 2: glanceclient then neither caches nor reads a cached image schema (docs/cli.md).
const glanceArgs = (who: keyof typeof TOKENS) => ['--os-image-api-version', '2', '--os-image-url', s.url, '--os-auth-token', TOKENS[who]];
const glance = (who: keyof typeof TOKENS, args: string[]) => ok(GLANCE, [...glanceArgs(who), ...args], {});

before(async () => {
  if (missing.length) return;
  const tokensFile = path.join(makeDataDir(), 'cli-tokens.json');
  writeFileSync(
    tokensFile,
    JSON.stringify({
      [TOKENS.owner]: { user: 'owner-user', project: OWNER, roles: ['member', 'reader'] },
      [TOKENS.other]: { user: 'other-user', project: OTHER, roles: ['member', 'reader'] },
      [TOKENS.third]: { user: 'third-user', project: THIRD, roles: ['member', 'reader'] },
      [TOKENS.admin]: { user: 'admin-user', project: 'admin', roles: ['admin', 'member', 'reader'] },
    }),
  );
  s = await startTestServer({ config: { auth: { mode: 'static', tokensFile } } });
});
after(async () => {
  await s?.close();
});

test('static tokens: openstack image add project, member list, list --member-status; glance member-*', { skip: missing.length ? `needs ${missing.join(', ')}` : false }, async () => {
  const raw = path.join(s.dataDir, 'cli.raw');
  writeFileSync(raw, Buffer.alloc(4096, 7));
  const id = (await ok(OPENSTACK, ['image', 'create', '--disk-format', 'raw', '--container-format', 'bare', '--file', raw, 'cli-shared', '-f', 'value', '-c', 'id'], osStatic('owner'))).trim();
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal((await ok(OPENSTACK, ['image', 'show', id, '-f', 'value', '-c', 'visibility'], osStatic('owner'))).trim(), 'shared');

  // the other project cannot see it yet
  const hidden = await cli(OPENSTACK, ['image', 'show', id], osStatic('other'));
  assert.notEqual(hidden.code, 0);
  assert.match(hidden.stderr, /No Image found|404|Could not find/i);

  // share it
  const added = JSON.parse(await ok(OPENSTACK, ['image', 'add', 'project', id, OTHER, '-f', 'json'], osStatic('owner')));
  assert.equal(added.member_id, OTHER);
  assert.equal(added.image_id, id);
  assert.equal(added.status, 'pending');
  const members = JSON.parse(await ok(OPENSTACK, ['image', 'member', 'list', id, '-f', 'json'], osStatic('owner')));
  assert.deepEqual(members.map((m: Record<string, string>) => [m['Member ID'], m.Status]), [[OTHER, 'pending']]);

  // pending: visible by id, not in the default list, in --member-status pending
  assert.equal((await ok(OPENSTACK, ['image', 'show', id, '-f', 'value', '-c', 'name'], osStatic('other'))).trim(), 'cli-shared');
  assert.doesNotMatch(await ok(OPENSTACK, ['image', 'list', '-f', 'value', '-c', 'ID'], osStatic('other')), new RegExp(id));
  assert.match(await ok(OPENSTACK, ['image', 'list', '--member-status', 'pending', '-f', 'value', '-c', 'ID'], osStatic('other')), new RegExp(id));

  // static tokens carry no Keystone project, so `image set --accept` (which asks Keystone who "we" are) needs glance here
  const accept = await cli(OPENSTACK, ['image', 'set', '--accept', id], osStatic('other'));
  assert.notEqual(accept.code, 0, 'openstack image set --accept needs Keystone (auth_ref.project_id)');
  assert.match(await glance('other', ['member-update', id, OTHER, 'accepted']), /accepted/);
  assert.match(await ok(OPENSTACK, ['image', 'list', '-f', 'value', '-c', 'ID'], osStatic('other')), new RegExp(id));
  const mine = JSON.parse(await ok(OPENSTACK, ['image', 'member', 'list', id, '-f', 'json'], osStatic('other')));
  assert.deepEqual(mine.map((m: Record<string, string>) => [m['Member ID'], m.Status]), [[OTHER, 'accepted']]);

  // the image's bytes are the member's to use
  const out = path.join(s.dataDir, 'cli.out');
  await ok(OPENSTACK, ['image', 'save', '--file', out, id], osStatic('other'));

  // glance: a second member, listed by the owner; the member sees only itself
  assert.match(await glance('owner', ['member-create', id, THIRD]), /pending/);
  const list = await glance('owner', ['member-list', '--image-id', id]);
  assert.match(list, new RegExp(OTHER));
  assert.match(list, new RegExp(THIRD));
  const third = await glance('third', ['member-list', '--image-id', id]);
  assert.match(third, new RegExp(THIRD));
  assert.doesNotMatch(third, new RegExp(OTHER));
  assert.match(await glance('third', ['member-update', id, THIRD, 'rejected']), /rejected/);
  // the owner cannot answer for a member
  const refused = await cli(GLANCE, [...glanceArgs('owner'), 'member-update', id, THIRD, 'accepted'], {});
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /403|Forbidden|Only the member/i);
  await glance('owner', ['member-delete', id, THIRD]);

  // unshare (`openstack image remove project` looks the project up in Keystone even by id, so: glance)
  await glance('owner', ['member-delete', id, OTHER]);
  assert.deepEqual(JSON.parse(await ok(OPENSTACK, ['image', 'member', 'list', id, '-f', 'json'], osStatic('owner'))), []);
  assert.notEqual((await cli(OPENSTACK, ['image', 'show', id], osStatic('other'))).code, 0);

  // sharing a private image is refused with the reason
  await ok(OPENSTACK, ['image', 'set', '--private', id], osStatic('owner'));
  const priv = await cli(OPENSTACK, ['image', 'add', 'project', id, OTHER], osStatic('owner'));
  assert.notEqual(priv.code, 0);
  assert.match(priv.stderr, /403|Forbidden|Only shared images/i);
});

test('Keystone: openstack image add project, set --accept / --reject as the member project', { skip: missing.length ? `needs ${missing.join(', ')}` : keystoneUnavailableReason() ?? false }, async () => {
  let ks: Keystone | undefined;
  let server: TestServer | undefined;
  try {
    ks = await startKeystone();
    server = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() } } });
    await ks.registerImageEndpoint(server.url);
    const as = (user: string) => ks!.openstackEnv(user);
    const raw = path.join(server.dataDir, 'ks.raw');
    writeFileSync(raw, Buffer.alloc(2048, 3));
    const id = (await ok(OPENSTACK, ['image', 'create', '--disk-format', 'raw', '--container-format', 'bare', '--file', raw, 'ks-shared', '-f', 'value', '-c', 'id'], as('demo-member'))).trim();
    // by project id: a project member may not look other projects up by name in Keystone (the CLI then passes the name through)
    const added = JSON.parse(await ok(OPENSTACK, ['image', 'add', 'project', id, ks.projects.alt, '-f', 'json'], as('demo-member')));
    assert.equal(added.member_id, ks.projects.alt);
    assert.equal(added.status, 'pending');

    await ok(OPENSTACK, ['image', 'set', '--accept', id], as('alt-member'));
    const accepted = JSON.parse(await ok(OPENSTACK, ['image', 'member', 'list', id, '-f', 'json'], as('alt-member')));
    assert.deepEqual(accepted.map((m: Record<string, string>) => [m['Member ID'], m.Status]), [[ks.projects.alt, 'accepted']]);
    assert.match(await ok(OPENSTACK, ['image', 'list', '-f', 'value', '-c', 'ID'], as('alt-member')), new RegExp(id));

    await ok(OPENSTACK, ['image', 'set', '--reject', id], as('alt-member'));
    assert.doesNotMatch(await ok(OPENSTACK, ['image', 'list', '-f', 'value', '-c', 'ID'], as('alt-member')), new RegExp(id));
    const owners = JSON.parse(await ok(OPENSTACK, ['image', 'member', 'list', id, '-f', 'json'], as('demo-member')));
    assert.deepEqual(owners.map((m: Record<string, string>) => m.Status), ['rejected']);

    // a reader of the owner project reads the members but changes nothing
    assert.match(await ok(OPENSTACK, ['image', 'member', 'list', id], as('demo-reader')), new RegExp(ks.projects.alt));
    const r = await cli(OPENSTACK, ['image', 'remove', 'project', id, ks.projects.alt], as('demo-reader'));
    assert.notEqual(r.code, 0);
    await ok(OPENSTACK, ['image', 'remove', 'project', id, ks.projects.alt], as('demo-member'));
  } finally {
    await server?.close();
    await ks?.stop();
  }
});
