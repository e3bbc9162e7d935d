import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../recovery/child.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { ImagesRepo } from '../../src/db/images-repo.js';
import pg from 'pg';
import { glanceDbSync, glanceSkipReason, startGlance, type Glance } from '../support/glance.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';
import { makeDataDir, startTestServer, testConfig, type TestServer } from '../support/server.js';

/**
 * imago-manage import-glance against a real Glance (Debian's glance-api on
 * MariaDB): images are made through Glance's API, imported (dry run, data
 * adopted in place, data copied), and read back through Imago's API field by
 * field and byte by byte. One Glance start serves every scenario.
 */

const skip = await glanceSkipReason();
const pgSkip = skip ? true : (await postgresAvailable()) ? undefined : 'no PostgreSQL at 127.0.0.1:5432 to hold a Glance database';

interface Made {
  id: string;
  data?: Buffer;
}

/** Imago's answers may carry these on top of Glance's (the store list of a located image). */
const IMAGO_ONLY = new Set(['stores']);

describe('imago-manage import-glance from a real Glance', { skip }, () => {
  let glance: Glance;
  const made: Record<string, Made> = {};
  const cleanup: (() => Promise<void> | void)[] = [];

  async function ok(res: Promise<Response>, status: number, what: string): Promise<Response> {
    const r = await res;
    if (r.status !== status) throw new Error(`${what}: Glance answered ${r.status} ${await r.text()}`);
    return r;
  }

  async function create(key: string, project: string, body: Record<string, unknown>, data?: Buffer): Promise<void> {
    const roles = project === 'admin' ? 'admin,member,reader' : 'member,reader';
    const r = await ok(glance.req('POST', '/v2/images', { project, roles, json: { disk_format: 'raw', container_format: 'bare', name: key, ...body } }), 201, `create ${key}`);
    const id = ((await r.json()) as { id: string }).id;
    if (data) await ok(glance.req('PUT', `/v2/images/${id}/file`, { project, roles, body: data }), 204, `upload ${key}`);
    made[key] = { id, data };
  }

  before(async () => {
    glance = await startGlance();
    await create('shared', 'p1', { visibility: 'shared', tags: ['beta', 'alpha'], os_distro: 'debian', hw_disk_bus: 'virtio', min_ram: 256 }, randomBytes(300_000));
    await create('public', 'admin', { visibility: 'public', protected: true, min_disk: 2, min_ram: 512, owner: 'p1', description: 'from Glance' }, randomBytes(70_001));
    await create('community', 'p2', { visibility: 'community', tags: ['c'], os_hidden: true });
    await create('deleted', 'p1', { visibility: 'private' }, randomBytes(1000));
    await create('deactivated', 'p1', { visibility: 'private' }, randomBytes(5000));
    await create('private', 'p2', { visibility: 'private', disk_format: 'qcow2', container_format: 'ovf' }, randomBytes(1000));
    const shared = made.shared.id;
    for (const m of ['p2', 'p3', 'p4']) await ok(glance.req('POST', `/v2/images/${shared}/members`, { project: 'p1', roles: 'member,reader', json: { member: m } }), 200, `add member ${m}`);
    await ok(glance.req('PUT', `/v2/images/${shared}/members/p2`, { project: 'p2', roles: 'member,reader', json: { status: 'accepted' } }), 200, 'accept');
    await ok(glance.req('PUT', `/v2/images/${shared}/members/p4`, { project: 'p4', roles: 'member,reader', json: { status: 'rejected' } }), 200, 'reject');
    await ok(glance.req('DELETE', `/v2/images/${made.deleted.id}`), 204, 'delete');
    await ok(glance.req('POST', `/v2/images/${made.deactivated.id}/actions/deactivate`), 204, 'deactivate');
    made.deleted.data = undefined;
  });

  after(async () => {
    for (const c of cleanup.reverse()) await c();
    await glance?.stop();
  });

  /** A data dir whose configuration holds `stores`, and on PostgreSQL runs its own database. */
  async function imagoDir(storesOf: (dataDir: string) => Record<string, unknown>[]): Promise<{ dataDir: string; config: Record<string, unknown>; env: Record<string, string> }> {
    const dataDir = makeDataDir();
    const env: Record<string, string> = {};
    if (process.env.IMAGO_TEST_PG === '1') {
      const pg = await createTestDatabase();
      env.IMAGO_DATABASE_URL = pg.url;
      cleanup.push(() => pg.drop());
    }
    const config = { stores: storesOf(dataDir), defaultStore: 'local' };
    testConfig(dataDir, config, env);
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    return { dataDir, config, env };
  }

  function manage(dataDir: string, env: Record<string, string>, args: string[], dbUrl = glance.dbUrl): Promise<{ code: number | null; out: string }> {
    const proc = spawn(process.execPath, [path.join(REPO, 'dist/src/manage.js'), 'import-glance', ...args, dbUrl], {
      cwd: REPO,
      env: { ...process.env, IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: path.join(dataDir, 'test-config.json'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    return new Promise((resolve) => proc.on('close', (code) => resolve({ code, out })));
  }

  async function withImagoDb<T>(dataDir: string, env: Record<string, string>, fn: (db: Db) => Promise<T>): Promise<T> {
    const { db, close } = await openDatabase(env.IMAGO_DATABASE_URL ?? `sqlite:${path.join(dataDir, 'imago.sqlite')}`);
    try {
      return await fn(db);
    } finally {
      await close();
    }
  }

  async function imagoImageCount(dataDir: string, env: Record<string, string>): Promise<number> {
    return withImagoDb(dataDir, env, async (db) => {
      const row = await db.selectFrom('images').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return Number(row.n);
    });
  }

  const localOnly = (d: string) => [{ id: 'local', type: 'filesystem', description: 'Imago', path: path.join(d, 'images') }];
  const live = () => Object.entries(made).filter(([k]) => k !== 'deleted');
  const files = (dir: string) => (existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort() : []);

  /** Every live Glance image read back through Imago: the same JSON, members, and bytes. */
  async function compareAll(s: TestServer, keys = live().map(([k]) => k)): Promise<void> {
    for (const key of keys) {
      const { id, data } = made[key];
      const theirs = (await (await ok(glance.req('GET', `/v2/images/${id}`), 200, `get ${key}`)).json()) as Record<string, unknown>;
      const res = await s.req('GET', `/v2/images/${id}`);
      assert.equal(res.status, 200, `${key}: Imago has the image`);
      const ours = (await res.json()) as Record<string, unknown>;
      for (const [field, value] of Object.entries(theirs)) {
        const norm = (v: unknown) => (field === 'tags' ? [...(v as string[])].sort() : v);
        assert.deepEqual(norm(ours[field]), norm(value), `${key}: ${field}`);
      }
      for (const field of Object.keys(ours)) assert.ok(field in theirs || IMAGO_ONLY.has(field), `${key}: Imago shows ${field} where Glance does not`);

      const byMember = (list: Record<string, unknown>[]) => [...list].sort((a, b) => String(a.member_id).localeCompare(String(b.member_id)));
      if (theirs.visibility === 'shared') {
        const gm = (await (await ok(glance.req('GET', `/v2/images/${id}/members`), 200, 'members')).json()) as { members: Record<string, unknown>[] };
        const im = (await (await s.req('GET', `/v2/images/${id}/members`)).json()) as { members: Record<string, unknown>[] };
        assert.deepEqual(byMember(im.members), byMember(gm.members), `${key}: members`);
      }

      const gDown = await glance.req('GET', `/v2/images/${id}/file`);
      const iDown = await s.req('GET', `/v2/images/${id}/file`);
      assert.equal(iDown.status, gDown.status, `${key}: download status`);
      if (gDown.status === 200) {
        const bytes = Buffer.from(await iDown.arrayBuffer());
        assert.ok(data && bytes.equals(data), `${key}: the bytes Imago serves are the ones uploaded to Glance`);
        assert.deepEqual(Buffer.from(await gDown.arrayBuffer()), bytes);
      } else {
        await gDown.arrayBuffer();
        await iDown.arrayBuffer();
      }
    }
    // Sharing works as it did: p2 accepted the shared image, p3 has it pending, p4 rejected it.
    const listed = async (token: 'other' | 'third', q: string) => ((await (await s.req('GET', `/v2/images${q}`, { token })).json()) as { images: { id: string }[] }).images.map((i) => i.id);
    assert.ok((await listed('other', '')).includes(made.shared.id));
    assert.ok(!(await listed('third', '')).includes(made.shared.id));
    assert.ok((await listed('third', '?member_status=pending')).includes(made.shared.id));
    assert.ok(!(await s.req('GET', `/v2/images/${made.deleted.id}`)).ok, 'the image deleted in Glance is not imported');
  }

  it('dry run, then data adopted in place from the Glance store directory; a second run changes nothing', async () => {
    const local = (d: string) => path.join(d, 'images');
    const { dataDir, config, env } = await imagoDir((d) => [
      { id: 'local', type: 'filesystem', description: 'Imago', path: local(d) },
      { id: 'glance', type: 'filesystem', description: 'Glance store, adopted', path: glance.imagesDir },
    ]);
    const glanceFiles = files(glance.imagesDir);

    const dry = await manage(dataDir, env, ['--dry-run']);
    assert.equal(dry.code, 0, dry.out);
    for (const [key, { id }] of live()) assert.match(dry.out, new RegExp(`${id} \\(${key}\\): would create`), dry.out);
    assert.doesNotMatch(dry.out, new RegExp(made.deleted.id));
    assert.match(dry.out, /dry run: nothing was written/);
    assert.equal(await imagoImageCount(dataDir, env), 0, 'a dry run writes no image');
    assert.deepEqual(files(local(dataDir)), []);

    const first = await manage(dataDir, env, []);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /created:\s+5\n\s+data adopted in place:\s+4\n\s+data copied and checked:\s+0 \(0 bytes\)\n\s+without data:\s+1/, first.out);
    assert.match(first.out, /1 deleted rows skipped/);
    assert.deepEqual(files(local(dataDir)), [], 'adopted data is not copied');
    assert.deepEqual(files(glance.imagesDir), glanceFiles, 'the Glance files stay where they are');

    const again = await manage(dataDir, env, []);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /created:\s+0\n[\s\S]*already in Imago:\s+5/, again.out);
    assert.equal(await imagoImageCount(dataDir, env), 5);

    const s = await startTestServer({ dataDir, config: config, env });
    try {
      await compareAll(s);
    } finally {
      await s.close();
    }
  });

  it('data copied into a separate store and verified against the checksum and multihash', async () => {
    const { dataDir, config, env } = await imagoDir(localOnly);
    const run = await manage(dataDir, env, []);
    assert.equal(run.code, 0, run.out);
    const bytes = live().reduce((n, [, m]) => n + (m.data?.length ?? 0), 0);
    assert.match(run.out, new RegExp(`data copied and checked:\\s+4 \\(${bytes} bytes\\)`), run.out);
    const withData = live().filter(([, m]) => m.data).map(([, m]) => m.id).sort();
    assert.deepEqual(files(path.join(dataDir, 'images')), withData);
    for (const id of withData) assert.ok(readFileSync(path.join(dataDir, 'images', id)).equals(Object.values(made).find((m) => m.id === id)!.data!));

    // A run that stopped before one image (its rows never written, its copy perhaps half done) is finished by the next.
    await withImagoDb(dataDir, env, async (db) => {
      await new ImagesRepo(db).delete(made.shared.id);
      await db.deleteFrom('image_locations').where('image_id', '=', made.shared.id).execute();
    });
    writeFileSync(path.join(dataDir, 'images', made.shared.id), 'partial');
    const resumed = await manage(dataDir, env, []);
    assert.equal(resumed.code, 0, resumed.out);
    assert.match(resumed.out, new RegExp(`created:\\s+1\\n\\s+data adopted in place:\\s+0\\n\\s+data copied and checked:\\s+1 \\(${made.shared.data!.length} bytes\\)[\\s\\S]*already in Imago:\\s+4`), resumed.out);

    const s = await startTestServer({ dataDir, config: config, env });
    try {
      await compareAll(s);
    } finally {
      await s.close();
    }
  });

  it('reads a Glance database on PostgreSQL the same way', { skip: pgSkip }, async () => {
    // Glance's own schema on PostgreSQL (db_sync), holding the rows the Glance above wrote to MariaDB.
    const pgdb = await createTestDatabase();
    cleanup.push(() => pgdb.drop());
    await glanceDbSync(pgdb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'));
    const client = new pg.Client({ connectionString: pgdb.url });
    await client.connect();
    try {
      for (const table of ['images', 'image_properties', 'image_tags', 'image_members', 'image_locations']) {
        for (const row of (await glance.sql(`SELECT * FROM ${table}`)) as Record<string, unknown>[]) {
          const cols = Object.keys(row);
          // MariaDB's 0/1 booleans go in as text, which PostgreSQL's boolean input takes.
          const values = cols.map((c) => (typeof row[c] === 'number' && ['deleted', 'protected', 'os_hidden', 'can_share'].includes(c) ? String(row[c]) : row[c]));
          await client.query(`INSERT INTO ${table} (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, values);
        }
      }
    } finally {
      await client.end();
    }
    const { dataDir, config, env } = await imagoDir(localOnly);
    const run = await manage(dataDir, env, [], pgdb.url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:'));
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /created:\s+5\n\s+data adopted in place:\s+0\n\s+data copied and checked:\s+4/, run.out);
    const s = await startTestServer({ dataDir, config, env });
    try {
      await compareAll(s);
    } finally {
      await s.close();
    }
  });

  it('a copy that does not match is left out and reported; sha256 multihash is verified; images without digests are listed', async () => {
    // Glance's rows altered after the other scenarios: a wrong checksum, a sha256 deployment, digests lost.
    await glance.sql('UPDATE images SET checksum = ? WHERE id = ?', ['0'.repeat(32), made.public.id]);
    await glance.sql('UPDATE images SET os_hash_algo = ?, os_hash_value = ? WHERE id = ?', ['sha256', createHash('sha256').update(made.deactivated.data!).digest('hex'), made.deactivated.id]);
    await glance.sql('UPDATE images SET checksum = NULL, os_hash_algo = NULL, os_hash_value = NULL WHERE id = ?', [made.private.id]);
    const { dataDir, config, env } = await imagoDir(localOnly);
    const run = await manage(dataDir, env, []);
    assert.equal(run.code, 1, `an image left out fails the run\n${run.out}`);
    assert.match(run.out, new RegExp(`${made.public.id} \\(public\\) \\[not imported\\] the copied bytes do not match what Glance recorded: checksum`), run.out);
    assert.match(run.out, new RegExp(`without a checksum or multihash[^\\n]*\\n\\s+${made.private.id} private`), run.out);
    assert.ok(!files(path.join(dataDir, 'images')).includes(made.public.id), 'the bad copy is removed');
    assert.equal(await imagoImageCount(dataDir, env), 4);

    const s = await startTestServer({ dataDir, config: config, env });
    try {
      const img = (await (await s.req('GET', `/v2/images/${made.deactivated.id}`)).json()) as Record<string, unknown>;
      assert.equal(img.os_hash_algo, 'sha256');
      await compareAll(s, ['shared', 'community', 'deactivated', 'private']);
    } finally {
      await s.close();
    }
  });
});
