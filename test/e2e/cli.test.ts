/**
 * End-to-end: the real `openstack` (python3-openstackclient) and `glance`
 * (python3-glanceclient) command-line clients against a running Imago, in
 * static-token mode and behind a real Keystone. The exact configuration used
 * here is what docs/cli.md documents.
 *
 * Needs the Debian packages python3-openstackclient, python3-glanceclient and
 * qemu-utils (scripts/test-all.sh installs them); keystone, uwsgi-core and
 * uwsgi-plugin-python3 for the Keystone part. IMAGO_TEST_SKIP_KEYSTONE=1 skips
 * the Keystone part.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../support/keystone.js';

const OPENSTACK = '/usr/bin/openstack';
const GLANCE = '/usr/bin/glance';
const QEMU_IMG = '/usr/bin/qemu-img';

/**
 * glance with a token: --os-image-api-version 2 as docs/cli.md says. Without it glanceclient 4.x caches
 * /v2/schemas/image in ~/.glanceclient, builds options from it on the next run and dies on the schema's
 * `stores` property ("conflicting option string: --stores"), against Glance too.
 */
const GLANCE_TOKEN_ARGS = (url: string, token: string) => ['--os-image-api-version', '2', '--os-image-url', url, '--os-auth-token', token];

const missing = [OPENSTACK, GLANCE, QEMU_IMG].filter((f) => !existsSync(f));
const skipCli = missing.length ? `needs ${missing.join(', ')} (apt-get install python3-openstackclient python3-glanceclient qemu-utils)` : false;
const skipKeystone = skipCli || (process.env.IMAGO_TEST_SKIP_KEYSTONE === '1' ? 'IMAGO_TEST_SKIP_KEYSTONE=1' : keystoneUnavailableReason() ?? false);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client with only the environment given (plus PATH/HOME/LANG): nothing from the caller's OS_* leaks in. */
function run(cmd: string, args: string[], env: Record<string, string>, home: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', ...env },
      cwd: home,
      timeout: 120_000,
      maxBuffer: 16 << 20,
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? ((err as NodeJS.ErrnoException).code as unknown as number) : 1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
    // glance and openstack read image data from a stdin that is no terminal: give them an empty one
    child.stdin?.end();
  });
}

function ok(r: Run, what: string): string {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function md5(file: string): string {
  return createHash('md5').update(readFileSync(file)).digest('hex');
}

/** glance's `| Property | Value |` tables; wrapped values are joined. */
function glanceTable(out: string): Record<string, string> {
  const rows: Record<string, string> = {};
  let last = '';
  for (const line of out.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length < 2) continue;
    const [key, value] = cells;
    if (key === 'Property' && value === 'Value') continue;
    if (key === '') rows[last] += value;
    else rows[(last = key)] = value;
  }
  return rows;
}

/** Test disks: a qcow2 made by qemu-img and a raw file of random bytes. */
async function createDisks(dir: string): Promise<{ qcow2: string; raw: string }> {
  const disks = { qcow2: path.join(dir, 'some.qcow2'), raw: path.join(dir, 'some.raw') };
  ok(await run(QEMU_IMG, ['create', '-f', 'qcow2', disks.qcow2, '1G'], {}, dir), 'qemu-img create');
  writeFileSync(disks.raw, randomBytes(3 * 1024 * 1024 + 17));
  return disks;
}

type Cli = (args: string[]) => Promise<Run>;

/**
 * The openstack scenario of docs/cli.md: create with --file, list, show by
 * name, set a property, save and compare bytes, delete.
 */
async function openstackScenario(os: Cli, file: string, diskFormat: 'qcow2' | 'raw', name: string, dir: string, expectOwner?: string): Promise<void> {
  const created = JSON.parse(ok(await os(['image', 'create', '--disk-format', diskFormat, '--container-format', 'bare', '--file', file, '--property', 'os_distro=cirros', name, '-f', 'json']), 'image create'));
  assert.equal(created.name, name);
  assert.equal(created.disk_format, diskFormat);
  const id = created.id as string;

  const listed = JSON.parse(ok(await os(['image', 'list', '-f', 'json']), 'image list')) as Array<Record<string, string>>;
  const row = listed.find((r) => r.ID === id);
  assert.ok(row, `${id} is listed`);
  assert.equal(row.Name, name);
  assert.equal(row.Status, 'active');

  const shown = JSON.parse(ok(await os(['image', 'show', name, '-f', 'json']), 'image show'));
  assert.equal(shown.id, id);
  assert.equal(shown.status, 'active');
  assert.equal(shown.disk_format, diskFormat);
  assert.equal(shown.container_format, 'bare');
  assert.equal(shown.size, readFileSync(file).length);
  assert.equal(shown.checksum, md5(file));
  assert.equal(shown.visibility, 'shared');
  if (expectOwner) assert.equal(shown.owner, expectOwner);
  assert.equal(shown.properties.os_distro, 'cirros');
  assert.equal(shown.properties.os_hash_algo, 'sha512');
  assert.equal(shown.properties.os_hash_value, createHash('sha512').update(readFileSync(file)).digest('hex'));
  assert.equal(shown.properties.stores, 'local');
  if (diskFormat === 'raw') assert.equal(shown.virtual_size, shown.size);
  else assert.ok(shown.virtual_size === null || shown.virtual_size === 1024 ** 3, `virtual_size ${shown.virtual_size}`);

  ok(await os(['image', 'set', '--property', 'hw_disk_bus=scsi', '--property', 'owner_specified.note=dotted', '--tag', 'e2e', name]), 'image set');
  const updated = JSON.parse(ok(await os(['image', 'show', id, '-f', 'json']), 'image show by id'));
  assert.equal(updated.properties.hw_disk_bus, 'scsi');
  assert.equal(updated.properties['owner_specified.note'], 'dotted');
  assert.deepEqual(updated.tags, ['e2e']);

  const out = path.join(dir, `${name}.out`);
  ok(await os(['image', 'save', '--file', out, name]), 'image save');
  assert.equal(sha256(out), sha256(file), 'downloaded bytes are the uploaded bytes');

  ok(await os(['image', 'delete', name]), 'image delete');
  const gone = await os(['image', 'show', name]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr + gone.stdout, /No Image found/i);
  const after = JSON.parse(ok(await os(['image', 'list', '-f', 'json']), 'image list after delete')) as Array<Record<string, string>>;
  assert.equal(after.some((r) => r.ID === id), false);
}

describe('openstack and glance CLIs against Imago with static tokens', { skip: skipCli }, () => {
  let s: TestServer;
  let dir: string;
  let disks: { qcow2: string; raw: string };
  before(async () => {
    s = await startTestServer();
    dir = mkdtempSync(path.join(tmpdir(), 'imago-e2e-'));
    disks = await createDisks(dir);
  });
  after(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('openstack with clouds.yaml (admin_token + image_endpoint_override): qcow2 create/list/show/set/save/delete', async () => {
    const cloudsYaml = path.join(dir, 'clouds.yaml');
    writeFileSync(cloudsYaml, [
      'clouds:',
      '  imago:',
      '    auth_type: admin_token',
      '    auth:',
      `      token: ${TOKENS.admin}`,
      `      endpoint: ${s.url}`,
      `    image_endpoint_override: ${s.url}`,
      "    image_api_version: '2'",
      '',
    ].join('\n'));
    const os: Cli = (args) => run(OPENSTACK, ['--os-cloud', 'imago', ...args], { OS_CLIENT_CONFIG_FILE: cloudsYaml }, dir);
    await openstackScenario(os, disks.qcow2, 'qcow2', 'e2e-qcow2', dir, 'admin');
  });

  test('openstack with environment variables (OS_AUTH_TYPE=admin_token): raw create/list/show/set/save/delete', async () => {
    const env = { OS_AUTH_TYPE: 'admin_token', OS_TOKEN: TOKENS.member, OS_ENDPOINT: `${s.url}/v2`, OS_IMAGE_API_VERSION: '2' };
    const os: Cli = (args) => run(OPENSTACK, args, env, dir);
    await openstackScenario(os, disks.raw, 'raw', 'e2e-raw', dir, 'p1');
  });

  test('openstack reports errors from Imago: unknown image, forbidden visibility', async () => {
    const env = { OS_AUTH_TYPE: 'admin_token', OS_TOKEN: TOKENS.member, OS_ENDPOINT: `${s.url}/v2` };
    const missingImage = await run(OPENSTACK, ['image', 'show', 'no-such-image'], env, dir);
    assert.notEqual(missingImage.code, 0);
    assert.match(missingImage.stderr, /No Image found for no-such-image/);
    const pub = await run(OPENSTACK, ['image', 'create', '--public', '--disk-format', 'raw', '--container-format', 'bare', 'not-allowed'], env, dir);
    assert.notEqual(pub.code, 0);
    assert.match(pub.stderr, /403|public/i);
  });

  test('glance: image-create --file, image-list, image-show, image-update --property, image-download, image-delete', async () => {
    const g: Cli = (args) => run(GLANCE, [...GLANCE_TOKEN_ARGS(s.url, TOKENS.admin), ...args], {}, dir);
    for (const [file, fmt] of [[disks.raw, 'raw'], [disks.qcow2, 'qcow2']] as const) {
      const name = `glance-${fmt}`;
      const created = glanceTable(ok(await g(['image-create', '--name', name, '--disk-format', fmt, '--container-format', 'bare', '--architecture', 'x86_64', '--file', file]), 'glance image-create'));
      assert.equal(created.name, name);
      assert.equal(created.status, 'active');
      assert.equal(created.checksum, md5(file));
      assert.equal(created.size, String(readFileSync(file).length));
      assert.equal(created.architecture, 'x86_64');
      assert.equal(created.stores, 'local');
      const id = created.id;

      const list = ok(await g(['image-list']), 'glance image-list');
      assert.match(list, new RegExp(`\\| ${id} \\| ${name}\\s+\\|`));

      const shown = glanceTable(ok(await g(['image-show', id]), 'glance image-show'));
      assert.equal(shown.id, id);
      assert.equal(shown.disk_format, fmt);
      assert.equal(shown.os_hash_algo, 'sha512');
      assert.equal(shown.os_hash_value, createHash('sha512').update(readFileSync(file)).digest('hex'));
      assert.equal(shown.visibility, 'shared');

      const updated = glanceTable(ok(await g(['image-update', id, '--property', 'hw_qemu_guest_agent=yes', '--min-ram', '128', '--os-distro', 'debian']), 'glance image-update'));
      assert.equal(updated.hw_qemu_guest_agent, 'yes');
      assert.equal(updated.min_ram, '128');
      assert.equal(updated.os_distro, 'debian');
      const removed = glanceTable(ok(await g(['image-update', id, '--remove-property', 'hw_qemu_guest_agent']), 'glance image-update --remove-property'));
      assert.equal(removed.hw_qemu_guest_agent, undefined);

      const tagged = await g(['image-tag-update', id, 'from-glance']);
      ok(tagged, 'glance image-tag-update');
      assert.match(glanceTable(ok(await g(['image-show', id]), 'glance image-show')).tags, /from-glance/);

      const out = path.join(dir, `${name}.out`);
      ok(await g(['image-download', '--file', out, id]), 'glance image-download');
      assert.equal(sha256(out), sha256(file));

      ok(await g(['image-delete', id]), 'glance image-delete');
      const gone = await g(['image-show', id]);
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /No image found with ID/);
    }
  });

  test('glance image-list filters and sorting go through Imago\'s query parameters', async () => {
    const g: Cli = (args) => run(GLANCE, [...GLANCE_TOKEN_ARGS(s.url, TOKENS.admin), ...args], {}, dir);
    // no --file and an empty stdin: glance uploads zero bytes
    for (const name of ['flt-b', 'flt-a', 'flt-c']) {
      const made = glanceTable(ok(await g(['image-create', '--name', name, '--disk-format', 'raw', '--container-format', 'bare', '--tags', 'flt', '--os-distro', name === 'flt-b' ? 'b-os' : 'other-os']), 'image-create'));
      assert.equal(made.size, '0');
      assert.equal(made.checksum, 'd41d8cd98f00b204e9800998ecf8427e');
    }
    const out = ok(await g(['image-list', '--tag', 'flt', '--sort-key', 'name', '--sort-dir', 'asc', '--page-size', '1']), 'image-list');
    const names = [...out.matchAll(/\| [0-9a-f-]{36} \| (flt-\w)/g)].map((m) => m[1]);
    assert.deepEqual(names, ['flt-a', 'flt-b', 'flt-c'], 'one image per page, in order, following next links');
    const filtered = ok(await g(['image-list', '--property-filter', 'os_distro=b-os', '--tag', 'flt']), 'image-list --property-filter');
    assert.deepEqual([...filtered.matchAll(/flt-\w/g)].map((m) => m[0]), ['flt-b']);
  });
});

describe('openstack CLI against Imago behind a real Keystone', { skip: skipKeystone }, () => {
  let ks: Keystone;
  let s: TestServer;
  let dir: string;
  let disks: { qcow2: string; raw: string };
  before(async () => {
    ks = await startKeystone();
    s = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() } } });
    await ks.registerImageEndpoint(s.url);
    dir = mkdtempSync(path.join(tmpdir(), 'imago-e2e-ks-'));
    disks = await createDisks(dir);
  });
  after(async () => {
    await s?.close();
    await ks?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cli = (user: string): Cli => (args) => {
    const u = ks.users[user];
    return run(OPENSTACK, [
      '--os-auth-url', ks.authUrl, '--os-identity-api-version', '3',
      '--os-username', u.name, '--os-password', u.password, '--os-project-name', u.projectName,
      '--os-user-domain-name', 'Default', '--os-project-domain-name', 'Default',
      ...args,
    ], {}, dir);
  };

  test('as admin: the catalog leads to Imago; qcow2 create/list/show/set/save/delete', async () => {
    await openstackScenario(cli('admin'), disks.qcow2, 'qcow2', 'ks-admin-qcow2', dir, ks.projects.admin);
  });

  test('as demo-member: raw create/list/show/set/save/delete, owned by the demo project', async () => {
    await openstackScenario(cli('demo-member'), disks.raw, 'raw', 'ks-member-raw', dir, ks.projects.demo);
  });

  test('OS_* environment variables and the glance CLI find Imago through the catalog too', async () => {
    const u = ks.users['demo-member'];
    const created = JSON.parse(ok(await run(OPENSTACK, ['image', 'create', '--disk-format', 'raw', '--container-format', 'bare', '--file', disks.raw, 'ks-env', '-f', 'json'], ks.openstackEnv('demo-member'), dir), 'image create (env)'));
    const g: Cli = (args) => run(GLANCE, [
      '--os-auth-url', ks.authUrl, '--os-username', u.name, '--os-password', u.password, '--os-project-name', u.projectName,
      '--os-user-domain-name', 'Default', '--os-project-domain-name', 'Default', ...args,
    ], {}, dir);
    assert.match(ok(await g(['image-list']), 'glance image-list'), new RegExp(`\\| ${created.id} \\| ks-env`));
    const shown = glanceTable(ok(await g(['image-show', created.id]), 'glance image-show'));
    assert.equal(shown.owner, ks.projects.demo);
    assert.equal(shown.checksum, md5(disks.raw));
    ok(await g(['image-delete', created.id]), 'glance image-delete');
  });

  test('project boundaries hold through the CLI', async () => {
    const member = cli('demo-member');
    const created = JSON.parse(ok(await member(['image', 'create', '--private', '--disk-format', 'raw', '--container-format', 'bare', 'ks-private', '-f', 'json']), 'image create'));
    const alt = await cli('alt-member')(['image', 'show', created.id]);
    assert.notEqual(alt.code, 0, 'another project cannot see a private image');
    const reader = await cli('demo-reader')(['image', 'delete', created.id]);
    assert.notEqual(reader.code, 0, 'a reader cannot delete');
    assert.match(reader.stderr, /403|Forbidden|not permitted/i);
    const shown = JSON.parse(ok(await cli('demo-reader')(['image', 'show', created.id, '-f', 'json']), 'reader show'));
    assert.equal(shown.owner, ks.projects.demo);
    // The core scenario as a reader: listing and showing work, every write and the download are refused.
    assert.match(ok(await cli('demo-reader')(['image', 'list', '-f', 'value', '-c', 'ID']), 'reader list'), new RegExp(created.id));
    const readerCreate = await cli('demo-reader')(['image', 'create', '--disk-format', 'raw', '--container-format', 'bare', 'ks-reader']);
    assert.notEqual(readerCreate.code, 0, 'a reader cannot create');
    assert.match(readerCreate.stderr, /403|Forbidden|not authorized|not permitted/i);
    const readerSet = await cli('demo-reader')(['image', 'set', '--property', 'k=v', created.id]);
    assert.notEqual(readerSet.code, 0, 'a reader cannot change an image');
    ok(await member(['image', 'delete', created.id]), 'member delete');
  });
});
