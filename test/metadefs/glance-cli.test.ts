import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { expectJson, nsPath, SAMPLES } from './helpers.js';


/**
 * The real glance CLI (python3-glanceclient) driving the catalog in
 * static-token mode. glanceclient builds its models from
 * /v2/schemas/metadefs/* and validates every response against them, so a
 * shape mistake fails here even where the HTTP tests pass.
 */
describe('glance md-* commands against Imago', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  const glance = (...args: string[]): Promise<{ code: number; out: string; err: string }> =>
    new Promise((resolve) => {
      // --os-image-api-version 2: glanceclient then neither caches nor reads a cached image schema (docs/cli.md).
      execFile('glance', ['--os-image-api-version', '2', '--os-image-url', s.url, '--os-auth-token', TOKENS.admin, ...args], { timeout: 60_000 }, (e, out, err) =>
        resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await glance(...args);
    assert.equal(r.code, 0, `glance ${args.join(' ')}: ${r.err}${r.out}`);
    return r.out;
  };
  /** The value column of a `| Property | Value |` table row. */
  const field = (out: string, name: string) => new RegExp(`^\\|\\s*${name}\\s*\\|\\s*(.*?)\\s*\\|$`, 'm').exec(out)?.[1];

  it('lists resource types, creates, imports, shows and lists namespaces', async () => {
    const types = await ok('md-resource-type-list');
    assert.match(types, /OS::Glance::Image/);
    assert.match(types, /OS::Nova::Flavor/);

    const created = await ok('md-namespace-create', 'CLI::Test', '--display-name', 'CLI test', '--visibility', 'public');
    assert.equal(field(created, 'namespace'), 'CLI::Test');
    assert.equal(field(created, 'visibility'), 'public');

    const imported = await ok('md-namespace-import', '--file', path.join(SAMPLES, 'Imago-Boot-Firmware.json'));
    assert.equal(field(imported, 'namespace'), 'Imago::Boot::Firmware');
    assert.match(field(imported, 'properties') ?? '', /firmware_type/);

    const shown = await ok('md-namespace-show', 'Imago::Boot::Firmware', '--resource-type', 'OS::Nova::Flavor');
    assert.match(field(shown, 'properties') ?? '', /"hw:firmware_type"/);
    assert.equal(field(shown, 'objects'), '["Secure Boot"]');

    const list = await ok('md-namespace-list');
    assert.match(list, /CLI::Test/);
    assert.match(list, /Imago::Boot::Firmware/);
    const filtered = await ok('md-namespace-list', '--resource-types', 'OS::Nova::Flavor');
    assert.doesNotMatch(filtered, /CLI::Test/);
    assert.match(filtered, /Imago::Boot::Firmware/);
  });

  it('manages objects, properties, tags and resource type associations', async () => {
    const obj = await ok('md-object-create', 'CLI::Test', '--name', 'Obj1', '--schema', '{"description":"d","properties":{"x":{"title":"X","type":"integer"}},"required":["x"]}');
    assert.equal(field(obj, 'required'), '["x"]');
    assert.match(await ok('md-object-list', 'CLI::Test'), /Obj1/);
    assert.equal(field(await ok('md-object-property-show', 'CLI::Test', 'Obj1', 'x'), 'type'), 'integer');
    assert.equal(field(await ok('md-object-update', 'CLI::Test', 'Obj1', '--name', 'Obj2'), 'name'), 'Obj2');

    const prop = await ok('md-property-create', 'CLI::Test', '--name', 'p1', '--title', 'P1', '--schema', '{"type":"string","enum":["a","b"]}');
    assert.equal(field(prop, 'enum'), '["a", "b"]');
    assert.match(await ok('md-property-list', 'CLI::Test'), /p1\s*\|\s*P1/);
    assert.equal(field(await ok('md-property-update', 'CLI::Test', 'p1', '--title', 'P1b'), 'title'), 'P1b');
    assert.equal(field(await ok('md-property-show', 'CLI::Test', 'p1'), 'title'), 'P1b');

    assert.equal(field(await ok('md-tag-create', 'CLI::Test', '--name', 't1'), 'name'), 't1');
    // (glanceclient's --append sends a boolean header and fails before any request: a client bug)
    await ok('md-tag-create-multiple', 'CLI::Test', '--names', 'a,b,c');
    const tags = await ok('md-tag-list', 'CLI::Test');
    assert.match(tags, /\| a /);
    assert.doesNotMatch(tags, /t1/, 'a bulk create without append replaces the tags');
    assert.equal(field(await ok('md-tag-update', 'CLI::Test', 'a', '--name', 'a2'), 'name'), 'a2');
    await ok('md-tag-delete', 'CLI::Test', 'a2');

    assert.equal(field(await ok('md-resource-type-associate', 'CLI::Test', '--name', 'OS::Nova::Flavor', '--prefix', 'hw:'), 'prefix'), 'hw:');
    assert.match(await ok('md-namespace-resource-type-list', 'CLI::Test'), /OS::Nova::Flavor\s*\|\s*hw:/);
    await ok('md-resource-type-deassociate', 'CLI::Test', 'OS::Nova::Flavor');
  });

  it('updates, protects, empties and deletes a namespace; errors reach the user', async () => {
    const updated = await ok('md-namespace-update', 'CLI::Test', '--description', 'new desc', '--protected', 'True');
    assert.equal(field(updated, 'description'), 'new desc');
    assert.equal(field(updated, 'protected'), 'True');
    const refused = await glance('md-namespace-delete', 'CLI::Test');
    assert.notEqual(refused.code, 0);
    assert.match(refused.err + refused.out, /protected/);
    await ok('md-namespace-update', 'CLI::Test', '--protected', 'False');
    await ok('md-namespace-tags-delete', 'CLI::Test');
    await ok('md-namespace-objects-delete', 'CLI::Test');
    await ok('md-namespace-properties-delete', 'CLI::Test');
    const emptied = await expectJson(await s.req('GET', nsPath('CLI::Test')), 200);
    for (const k of ['tags', 'objects', 'properties']) assert.ok(!(k in emptied), k);
    const missing = await glance('md-property-delete', 'CLI::Test', 'nope');
    assert.notEqual(missing.code, 0);
    assert.match(missing.err + missing.out, /Property "nope" was not found/);
    await ok('md-namespace-delete', 'CLI::Test');
    assert.equal((await s.req('GET', nsPath('CLI::Test'))).status, 404);
  });
});
