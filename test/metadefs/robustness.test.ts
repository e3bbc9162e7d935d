import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.js';
import { createNamespace, expectJson, nsPath } from './helpers.js';

/** Whatever arrives, the answer is a 4xx with the JSON error body, never a 500. */
describe('metadefs robustness', () => {
  let s: TestServer;
  let ns = '';
  before(async () => {
    s = await startTestServer();
    ns = (await createNamespace(s, { objects: [{ name: 'o' }], properties: { p: { title: 'P', type: 'string' } }, tags: [{ name: 't' }] })).namespace;
  });
  after(async () => {
    await s.close();
  });

  const shapes: unknown[] = [
    null,
    0,
    -1.5,
    true,
    'text',
    '',
    [],
    [null],
    [{ name: 'x' }],
    {},
    { name: null },
    { name: 0 },
    { name: ['a'] },
    { name: { nested: true } },
    { name: 'x'.repeat(100_000) },
    { name: 'ok', properties: [] },
    { name: 'ok', properties: { a: null } },
    { name: 'ok', properties: { a: [] } },
    { name: 'ok', properties: { '': { title: 'T', type: 'string' } } },
    { name: 'ok', properties: { a: { title: 'T', type: 'string', items: [] } } },
    { name: 'ok', properties: { a: { title: 'T', type: 'string', enum: 'x' } } },
    { name: 'ok', required: [1, 2] },
    { namespace: null },
    { namespace: 'n', properties: null, objects: null, tags: null, resource_type_associations: null },
    { namespace: 'n', objects: [null] },
    { namespace: 'n', objects: ['x'] },
    { namespace: 'n', tags: [null] },
    { namespace: 'n', resource_type_associations: [[]] },
    { tags: null },
    { tags: [null] },
    { tags: [['a']] },
    { title: 'T', type: 'string' },
    { name: '\u0000\uFFFF\u202E', title: 'T', type: 'string' },
    { name: '\uD800', title: 'T', type: 'string' },
  ];
  const targets: [string, string][] = [
    ['POST', '/v2/metadefs/namespaces'],
    ['PUT', '/NS'],
    ['POST', '/NS/objects'],
    ['PUT', '/NS/objects/o'],
    ['POST', '/NS/properties'],
    ['PUT', '/NS/properties/p'],
    ['POST', '/NS/tags'],
    ['PUT', '/NS/tags/t'],
    ['POST', '/NS/resource_types'],
  ];

  it('answers every odd body with a 4xx JSON error (or success), never a 5xx', async () => {
    for (const [method, target] of targets) {
      const url = target.startsWith('/NS') ? nsPath(ns, target.slice(3)) : target;
      for (const json of shapes) {
        const res = await s.req(method, url, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
        const text = await res.text();
        assert.ok(res.status < 500, `${method} ${target} ${JSON.stringify(json).slice(0, 80)} → ${res.status} ${text.slice(0, 200)}`);
        if (res.status >= 400) assert.equal(JSON.parse(text).error.code, res.status);
      }
    }
  });

  it('copes with odd names and query strings in URLs', async () => {
    const names = ['%2F', 'a%2Fb', '%00', '%E2%80%AE', encodeURIComponent('\u{1F693}'), 'x'.repeat(2000), '%', '%zz', "'; DROP TABLE metadef_namespaces; --"];
    for (const name of names) {
      for (const suffix of ['', '/objects', '/objects/x', '/properties/x', '/tags/x', '/resource_types']) {
        const res = await s.req('GET', `/v2/metadefs/namespaces/${name}${suffix}`);
        const text = await res.text();
        assert.ok(res.status >= 400 && res.status < 500, `${name}${suffix} → ${res.status} ${text.slice(0, 200)}`);
        assert.equal(JSON.parse(text).error.code, res.status);
      }
    }
    for (const q of ['limit=1e3', 'limit=%00', 'limit=99999999999999999999', 'sort_key=&sort_dir=', 'marker=&limit=', 'resource_types=,,,', 'visibility=', 'limit=1&limit=2', 'sort_key[]=x']) {
      const res = await s.req('GET', `/v2/metadefs/namespaces?${q}`);
      assert.ok(res.status < 500, `${q} → ${res.status}`);
      await res.text();
    }
    const tags = await s.req('GET', nsPath(ns, '/tags?limit=0'));
    assert.equal(tags.status, 200);
    assert.deepEqual((await tags.json()).tags, [], 'limit=0 lists nothing, as Glance');
    await expectJson(await s.req('GET', nsPath(ns, "/tags/'; DROP TABLE metadef_tags; --")), 404);
  });
});
