import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, makeDataDir, type TestServer } from '../support/server.js';
import { createTestDatabase } from '../support/postgres.js';
import { expectJson, nsPath, REPO_ROOT, SAMPLES, type Body } from './helpers.js';

const ROOT = REPO_ROOT;

/**
 * The database of each data dir whose server runs on PostgreSQL (IMAGO_TEST_PG=1): imago-manage
 * must be pointed at it, as an operator would, or it would write to the data dir's SQLite file.
 */
const databaseOf = new Map<string, string>();

/** Runs the real imago-manage (from source) against a data dir (and its server's database). */
function manage(dataDir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const db = databaseOf.get(dataDir);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src/manage.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: '', ...(db ? { IMAGO_DATABASE_URL: db } : {}) }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('imago-manage metadefs commands', () => {
  let dataDir: string;
  let s: TestServer;
  let work: string;
  before(async () => {
    dataDir = makeDataDir();
    work = mkdtempSync(path.join(tmpdir(), 'imago-metadefs-'));
    // the server keeps running while imago-manage writes to the same database
    s = await startTestServer({ dataDir });
    if (s.rt.dialect === 'postgres') databaseOf.set(dataDir, s.rt.config.database.url);
  });
  after(async () => {
    await s.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  const shipped = readdirSync(SAMPLES).filter((f) => f.endsWith('.json'));
  const namespaceOf = (file: string) => JSON.parse(readFileSync(path.join(SAMPLES, file), 'utf8')).namespace as string;

  it('loads the shipped definitions by default, then leaves them alone', async () => {
    const first = await manage(dataDir, 'db-load-metadefs');
    assert.equal(first.code, 0, first.stderr);
    for (const f of shipped) assert.match(first.stdout, new RegExp(`${f}: namespace ${namespaceOf(f)} created`));

    const list = await expectJson(await s.req('GET', '/v2/metadefs/namespaces?limit=100', { token: 'reader' }), 200);
    const names = list.namespaces.map((n: Body) => n.namespace);
    for (const f of shipped) assert.ok(names.includes(namespaceOf(f)), f);

    const boot = await expectJson(await s.req('GET', nsPath('Imago::Boot::Firmware', '?resource_type=OS::Nova::Flavor')), 200);
    assert.equal(boot.owner, 'admin');
    assert.equal(boot.protected, true);
    assert.ok('hw:firmware_type' in boot.properties);
    assert.deepEqual(boot.objects[0].required, ['hw:secure_boot']);
    assert.deepEqual(boot.tags.map((t: Body) => t.name).sort(), ['secure-boot', 'uefi']);

    const again = await manage(dataDir, 'db_load_metadefs', SAMPLES);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already exists, left as it is/);
  });

  it('merges: adds what is missing, replaces what differs only with --prefer-new, reloads with --overwrite', async () => {
    const folder = path.join(work, 'changed');
    cpSync(SAMPLES, folder, { recursive: true });
    const file = path.join(folder, 'Imago-Image-Provenance.json');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.description = 'Changed description';
    doc.properties.maintainer.title = 'Changed title';
    doc.properties.license = { title: 'License', type: 'string' };
    writeFileSync(file, JSON.stringify(doc));
    const ns = doc.namespace as string;
    // something added through the API, to see what --overwrite does with it
    await expectJson(await s.req('POST', nsPath(ns, '/tags/api-added')), 201);

    const merged = await manage(dataDir, 'db-load-metadefs', '--merge', folder);
    assert.equal(merged.code, 0, merged.stderr);
    let shown = await expectJson(await s.req('GET', nsPath(ns)), 200);
    assert.ok('license' in shown.properties);
    assert.equal(shown.properties.maintainer.title, 'Maintainer');
    assert.notEqual(shown.description, 'Changed description');

    const preferNew = await manage(dataDir, 'db-load-metadefs', '--merge', '--prefer_new', folder);
    assert.equal(preferNew.code, 0, preferNew.stderr);
    shown = await expectJson(await s.req('GET', nsPath(ns)), 200);
    assert.equal(shown.properties.maintainer.title, 'Changed title');
    assert.equal(shown.description, 'Changed description');
    assert.ok(shown.tags.some((t: Body) => t.name === 'api-added'));

    const overwrite = await manage(dataDir, 'db-load-metadefs', '--merge', '--overwrite', file);
    assert.equal(overwrite.code, 0, overwrite.stderr);
    assert.match(overwrite.stdout, /replaced/);
    shown = await expectJson(await s.req('GET', nsPath(ns)), 200);
    assert.ok(!shown.tags.some((t: Body) => t.name === 'api-added'));
  });

  it('reports bad files and still loads the good ones (exit 1)', async () => {
    const folder = path.join(work, 'mixed');
    cpSync(path.join(SAMPLES, 'Imago-Boot-Firmware.json'), path.join(folder, 'a-good.json'));
    const good = JSON.parse(readFileSync(path.join(folder, 'a-good.json'), 'utf8'));
    good.namespace = `Loaded::Good::${process.pid}`;
    writeFileSync(path.join(folder, 'a-good.json'), JSON.stringify(good));
    writeFileSync(path.join(folder, 'b-broken.json'), '{"namespace": ');
    writeFileSync(path.join(folder, 'c-invalid.json'), JSON.stringify({ namespace: 'Loaded::Invalid', visibility: 'everyone' }));
    writeFileSync(path.join(folder, 'notes.txt'), 'not a definition');
    const res = await manage(dataDir, 'db-load-metadefs', folder);
    assert.equal(res.code, 1);
    assert.match(res.stdout, /a-good\.json: namespace Loaded::Good::\d+ created/);
    assert.match(res.stderr, /b-broken\.json: not loaded: not valid JSON/);
    assert.match(res.stderr, /c-invalid\.json: not loaded: .*visibility/);
    assert.doesNotMatch(res.stdout + res.stderr, /notes\.txt/);
    await expectJson(await s.req('GET', nsPath(good.namespace)), 200);
    assert.equal((await s.req('GET', nsPath('Loaded::Invalid'))).status, 404);
  });

  it('exports the catalog to files that load into another database unchanged', async () => {
    const folder = path.join(work, 'export');
    const res = await manage(dataDir, 'db-export-metadefs', folder);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(readdirSync(folder).includes('Imago-Boot-Firmware.json'));

    const other = makeDataDir();
    const otherDb = process.env.IMAGO_TEST_PG === '1' ? await createTestDatabase() : undefined;
    if (otherDb) databaseOf.set(other, otherDb.url);
    try {
      const loaded = await manage(other, 'db-load-metadefs', folder);
      assert.equal(loaded.code, 0, loaded.stderr);
      const copy = await startTestServer({ dataDir: other, env: otherDb ? { IMAGO_DATABASE_URL: otherDb.url } : {} });
      try {
        for (const ns of ['Imago::Boot::Firmware', 'Imago::Compute::CPUTopology']) {
          const a = await expectJson(await s.req('GET', nsPath(ns)), 200);
          const b = await expectJson(await copy.req('GET', nsPath(ns)), 200);
          const strip = (x: Body) => JSON.parse(JSON.stringify(x, (k, v) => (k === 'created_at' || k === 'updated_at' ? undefined : v)));
          assert.deepEqual(strip(b), strip(a), ns);
        }
      } finally {
        await copy.close();
      }
    } finally {
      await otherDb?.drop();
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('unloads every namespace but keeps the built-in resource types', async () => {
    const res = await manage(dataDir, 'db-unload-metadefs');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /removed \d+ namespace/);
    const list = await expectJson(await s.req('GET', '/v2/metadefs/namespaces'), 200);
    assert.deepEqual(list.namespaces, []);
    const types = (await expectJson(await s.req('GET', '/v2/metadefs/resource_types'), 200)).resource_types.map((t: Body) => t.name);
    assert.deepEqual(types.sort(), ['OS::Cinder::Volume', 'OS::Glance::Image', 'OS::Nova::Aggregate', 'OS::Nova::Flavor', 'OS::Nova::Server']);
  });

  it('explains its usage (exit 2) and help (exit 0)', async () => {
    for (const args of [['bogus'], ['db-load-metadefs', '--overwrite'], ['db-load-metadefs', '--merge', '--prefer-new', '--overwrite'], ['db-export-metadefs'], ['db-load-metadefs', '--colour']]) {
      const res = await manage(dataDir, ...args);
      assert.equal(res.code, 2, args.join(' '));
      assert.match(res.stderr, /usage: imago-manage/);
    }
    const missing = await manage(dataDir, 'db-load-metadefs', path.join(work, 'no-such-folder'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /does not exist/);
    const help = await manage(dataDir, '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /db-load-metadefs/);
  });
});
