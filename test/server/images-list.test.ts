import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, createImage, uploadBytes, type TestServer, type TOKENS } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';

type Json = Record<string, any>;
type Who = keyof typeof TOKENS;

async function list(s: TestServer, query = '', token: Who = 'admin'): Promise<Json> {
  const res = await s.req('GET', `/v2/images${query}`, { token });
  const text = await res.text();
  assert.equal(res.status, 200, `${query}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return JSON.parse(text);
}

async function names(s: TestServer, query = '', token: Who = 'admin'): Promise<string[]> {
  return (await list(s, query, token)).images.map((i: Json) => i.name);
}

async function bad(s: TestServer, query: string, pattern?: RegExp): Promise<void> {
  const res = await s.req('GET', `/v2/images${query}`);
  const text = await res.text();
  assert.equal(res.status, 400, `${query}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.error.code, 400);
  if (pattern) assert.match(body.error.message, pattern, query);
}

const sorted = (...xs: string[]) => [...xs].sort();

/** Sets timestamps the way the database stores them (ISO 8601 with milliseconds). */
async function setTimes(s: TestServer, id: string, created: string, updated = created): Promise<void> {
  await s.rt.db.updateTable('images').set({ created_at: created, updated_at: updated }).where('id', '=', id).execute();
}

const pgUp = await postgresAvailable();

/** The same tests on SQLite and on PostgreSQL (when one runs at IMAGO_TEST_PG_URL): ordering, NULLs and time filters are SQL. */
for (const dialect of ['sqlite', 'postgres'] as const) {
  const skip = dialect === 'postgres' && !pgUp ? 'no PostgreSQL at IMAGO_TEST_PG_URL' : false;
  const cleanups: (() => Promise<void>)[] = [];
  const start = async (): Promise<TestServer> => {
    const db = dialect === 'postgres' ? await createTestDatabase() : undefined;
    const srv = await startTestServer(db ? { config: { database: { url: db.url } } } : {});
    cleanups.push(async () => {
      await srv.close();
      await db?.drop();
    });
    return srv;
  };
  const stop = async () => {
    for (const c of cleanups.splice(0)) await c();
  };

  describe(`GET /v2/images filters (${dialect})`, { skip }, () => {
    let s: TestServer;
    const ids: Record<string, string> = {};
    before(async () => {
      s = await start();
      const mk = async (name: string, body: Json = {}, token: Who = 'admin') => {
        ids[name] = (await createImage(s, { name, ...body }, token)).id;
      };
      await mk('alpha', { disk_format: 'raw', container_format: 'bare', tags: ['red', 'big'], min_ram: 512, os_distro: 'debian', visibility: 'public' });
      await mk('beta', { disk_format: 'raw', container_format: 'ovf', tags: ['red'], protected: true, os_distro: 'in:a,b' });
      await mk('gamma, the third', { disk_format: 'iso', container_format: 'bare', tags: ['big'] });
      await mk('debian:12', { disk_format: 'qcow2' });
      await mk('hidden', { os_hidden: true });
      await mk('p1-private', { visibility: 'private' }, 'member');
      const data = Buffer.alloc(3000, 7);
      assert.equal((await uploadBytes(s, ids.alpha, data.subarray(0, 1000))).status, 204);
      assert.equal((await uploadBytes(s, ids.beta, data)).status, 204);
      await setTimes(s, ids.alpha, '2020-01-01T10:00:00.250Z', '2021-06-01T00:00:00.000Z');
      await setTimes(s, ids.beta, '2020-01-02T10:00:00.000Z');
      await setTimes(s, ids['gamma, the third'], '2020-01-03T10:00:00.999Z');
      await setTimes(s, ids['debian:12'], '2020-01-04T10:00:00.000Z');
      await setTimes(s, ids.hidden, '2020-01-05T10:00:00.000Z');
      await setTimes(s, ids['p1-private'], '2020-01-06T10:00:00.000Z');
    });
    after(stop);

    test('the page document: images, first, schema; newest first', async () => {
      const body = await list(s);
      assert.deepEqual(Object.keys(body), ['images', 'first', 'schema']);
      assert.equal(body.first, '/v2/images');
      assert.equal(body.schema, '/v2/schemas/images');
      assert.deepEqual(body.images.map((i: Json) => i.name), ['p1-private', 'debian:12', 'gamma, the third', 'beta', 'alpha']);
      const alpha = body.images.find((i: Json) => i.name === 'alpha');
      assert.equal(alpha.stores, 'local');
      assert.equal(alpha.size, 1000);
      assert.equal(alpha.created_at, '2020-01-01T10:00:00Z');
    });

    test('name: exact, in: with quotes, a colon that is no operator; unknown operator for the field is 400', async () => {
      assert.deepEqual(await names(s, '?name=alpha'), ['alpha']);
      assert.deepEqual(await names(s, '?name=alph'), []);
      assert.deepEqual(await names(s, '?name=eq:alpha'), ['alpha']);
      assert.deepEqual(sorted(...(await names(s, `?name=in:${encodeURIComponent('"gamma, the third",alpha')}`))), ['alpha', 'gamma, the third']);
      assert.deepEqual(await names(s, '?name=in:gamma,alpha'), ['alpha'], 'without quotes a comma splits the name');
      assert.deepEqual(await names(s, '?name=debian:12'), ['debian:12']);
      assert.deepEqual(await names(s, '?name=eq:debian:12'), ['debian:12']);
      await bad(s, '?name=gt:alpha', /operator/);
      await bad(s, `?name=in:${encodeURIComponent('"unclosed')}`, /quote/);
      await bad(s, `?name=in:${encodeURIComponent('a"b"')}`, /comma/);
    });

    test('status, disk_format, container_format, id with in:', async () => {
      assert.deepEqual(sorted(...(await names(s, '?status=active'))), ['alpha', 'beta']);
      assert.deepEqual(sorted(...(await names(s, '?status=in:active,queued'))).length, 5);
      assert.deepEqual(await names(s, '?status=nonsense'), []);
      assert.deepEqual(sorted(...(await names(s, '?disk_format=raw'))), ['alpha', 'beta', 'p1-private']);
      assert.deepEqual(sorted(...(await names(s, '?disk_format=in:iso,qcow2'))), ['debian:12', 'gamma, the third']);
      assert.deepEqual(sorted(...(await names(s, '?container_format=bare'))), ['alpha', 'debian:12', 'gamma, the third', 'p1-private']);
      assert.deepEqual(await names(s, '?container_format=ovf'), ['beta']);
      assert.deepEqual(sorted(...(await names(s, `?id=in:${ids.alpha},${ids.beta}`))), ['alpha', 'beta']);
      assert.deepEqual(await names(s, `?id=${ids.beta}`), ['beta']);
      assert.deepEqual(await names(s, '?id=in:'), []);
    });

    test('tag: repeated tags must all be present', async () => {
      assert.deepEqual(sorted(...(await names(s, '?tag=red'))), ['alpha', 'beta']);
      assert.deepEqual(await names(s, '?tag=red&tag=big'), ['alpha']);
      assert.deepEqual(await names(s, '?tag=red&tag=big&tag=none'), []);
    });

    test('size_min, size_max and integer columns', async () => {
      assert.deepEqual(await names(s, '?size_min=1001'), ['beta']);
      assert.deepEqual(await names(s, '?size_max=1000'), ['alpha']);
      assert.deepEqual(sorted(...(await names(s, '?size_min=1000&size_max=3000'))), ['alpha', 'beta']);
      assert.deepEqual(await names(s, '?size=3000'), ['beta']);
      assert.deepEqual(await names(s, '?min_ram=512'), ['alpha']);
      await bad(s, '?size_min=big', /numeric/);
      await bad(s, '?size_max=1.5');
      await bad(s, '?min_ram=lots', /integer/);
      await bad(s, '?name_min=3', /range/);
    });

    test('protected and os_hidden take true or false', async () => {
      assert.deepEqual(await names(s, '?protected=true'), ['beta']);
      assert.equal((await names(s, '?protected=false')).length, 4);
      await bad(s, '?protected=yes', /'true' or 'false'/);
      await bad(s, '?protected=True');
      assert.deepEqual(await names(s, '?os_hidden=true'), ['hidden']);
      assert.deepEqual(await names(s, '?os_hidden=TRUE'), ['hidden']);
      assert.equal((await names(s, '?os_hidden=false')).length, 5);
      await bad(s, '?os_hidden=maybe', /os_hidden/);
    });

    test('owner, checksum and extra properties match exactly (no operators)', async () => {
      assert.deepEqual(await names(s, '?owner=p1'), ['p1-private']);
      const alpha = (await list(s, '?name=alpha')).images[0];
      assert.deepEqual(await names(s, `?checksum=${alpha.checksum}`), ['alpha']);
      assert.deepEqual(await names(s, `?os_hash_value=${alpha.os_hash_value}`), ['alpha']);
      assert.deepEqual(await names(s, '?os_distro=debian'), ['alpha']);
      assert.deepEqual(await names(s, '?os_distro=in:a,b'), ['beta'], 'in: is literal for extra properties');
      assert.deepEqual(await names(s, '?os_distro=debian&os_distro=other'), [], 'repeated filters must all hold');
      assert.deepEqual(await names(s, '?no_such_property=x'), []);
      assert.deepEqual(await names(s, '?deleted_at=2020-01-01'), []);
    });

    test('created_at and updated_at with comparison operators, to the second', async () => {
      assert.deepEqual(await names(s, '?created_at=2020-01-01T10:00:00Z'), ['alpha'], 'milliseconds are not part of what clients see');
      assert.deepEqual(await names(s, '?created_at=eq:2020-01-01T10:00:00Z'), ['alpha']);
      assert.deepEqual(await names(s, '?created_at=lt:2020-01-02T10:00:00Z'), ['alpha']);
      assert.deepEqual(sorted(...(await names(s, '?created_at=lte:2020-01-02T10:00:00Z'))), ['alpha', 'beta']);
      assert.deepEqual(sorted(...(await names(s, '?created_at=gt:2020-01-03T10:00:00Z'))), ['debian:12', 'p1-private']);
      assert.deepEqual(sorted(...(await names(s, '?created_at=gte:2020-01-03T10:00:00Z'))), ['debian:12', 'gamma, the third', 'p1-private']);
      assert.equal((await names(s, '?created_at=neq:2020-01-01T10:00:00Z')).length, 4);
      assert.deepEqual(await names(s, `?created_at=${encodeURIComponent('lt:2020-01-02T12:00:00+02:00')}`), ['alpha'], 'offsets are honoured');
      assert.deepEqual(sorted(...(await names(s, '?created_at=lt:2020-01-03'))), ['alpha', 'beta'], 'a date alone is midnight UTC');
      assert.deepEqual(await names(s, '?updated_at=gt:2021-01-01T00:00:00Z'), ['alpha']);
      assert.deepEqual(await names(s, '?updated_at=gt:2021-06-01T00:00:00Z'), []);
      assert.deepEqual(await names(s, '?updated_at=eq:2021-06-01T00:00:00Z'), ['alpha']);
      assert.deepEqual(await names(s, '?created_at=gte:2020-01-02T00:00:00Z&created_at=lt:2020-01-03T00:00:00Z'), ['beta']);
      await bad(s, '?created_at=yesterday', /ISO 8601/);
      await bad(s, '?created_at=gt:2020-13-01T00:00:00Z', /ISO 8601/);
      await bad(s, '?created_at=in:2020-01-01T00:00:00Z');
      await bad(s, '?updated_at=after:2020-01-01T00:00:00Z');
    });

    test('visibility, member_status and changes-since are checked', async () => {
      await bad(s, '?visibility=everyone', /visibility/);
      await bad(s, '?member_status=maybe', /status/);
      await bad(s, '?changes-since=2020-01-01T00:00:00Z', /changes-since/);
      assert.deepEqual(await names(s, '?visibility=public'), ['alpha']);
      assert.deepEqual(await names(s, '?visibility=private', 'member'), ['p1-private']);
    });
  });

  describe(`GET /v2/images sorting and pagination (${dialect})`, { skip }, () => {
    let s: TestServer;
    const made: Json[] = [];
    before(async () => {
      s = await start();
      const specs: Json[] = [
        { name: 'c', disk_format: 'raw' },
        { name: 'a', disk_format: 'qcow2' },
        { name: null, disk_format: 'raw' },
        { name: 'b', disk_format: 'iso' },
        { name: 'a', disk_format: 'raw' },
        { name: null, disk_format: 'qcow2' },
        { name: 'd e', disk_format: 'raw' },
      ];
      for (const [i, spec] of specs.entries()) {
        const img = await createImage(s, { ...spec, tags: ['paged'] });
        made.push(img);
        // two images share each second, so ties are broken by id
        await setTimes(s, img.id, `2021-02-0${1 + Math.floor(i / 2)}T00:00:00.000Z`);
      }
    });
    after(stop);

    const byDefault = () => [...made].sort((x, y) => {
      const tx = made.indexOf(x) >> 1;
      const ty = made.indexOf(y) >> 1;
      return tx !== ty ? ty - tx : y.id < x.id ? -1 : 1;
    });

    test('default order: created_at desc, then id desc', async () => {
      const body = await list(s);
      assert.deepEqual(body.images.map((i: Json) => i.id), byDefault().map((i) => i.id));
    });

    test('sort=key:dir, several keys; sort_key/sort_dir; created_at and id break ties', async () => {
      const rows = (await list(s, '?sort=name:asc,disk_format:desc')).images.map((i: Json) => `${i.name}/${i.disk_format}`);
      assert.deepEqual(rows, ['null/raw', 'null/qcow2', 'a/raw', 'a/qcow2', 'b/iso', 'c/raw', 'd e/raw'], 'NULL names first ascending');
      const desc = (await list(s, '?sort_key=name&sort_dir=desc')).images.map((i: Json) => i.name);
      assert.deepEqual(desc, ['d e', 'c', 'b', 'a', 'a', null, null], 'NULL names last descending');
      const classic = (await list(s, '?sort_key=name&sort_key=disk_format&sort_dir=asc&sort_dir=desc')).images.map((i: Json) => `${i.name}/${i.disk_format}`);
      assert.deepEqual(classic, rows);
      const noDir = (await list(s, '?sort=name')).images.map((i: Json) => i.name);
      assert.deepEqual(noDir, desc, 'a key without a direction sorts descending');
      const asc = (await list(s, '?sort_dir=asc')).images.map((i: Json) => i.id);
      assert.deepEqual(asc, byDefault().map((i) => i.id).reverse(), 'one sort_dir applies to the default key and the tie-breakers');
    });

    test('bad sort parameters are 400', async () => {
      await bad(s, '?sort=owner:asc', /sort key/);
      await bad(s, '?sort=name:up', /sort direction/);
      await bad(s, '?sort=name:asc:x');
      await bad(s, '?sort=', /sort key/);
      await bad(s, '?sort=name&sort_key=id', /combined/);
      await bad(s, '?sort_key=bogus', /sort key/);
      await bad(s, '?sort_key=name&sort_dir=sideways', /direction/);
      await bad(s, '?sort_key=name&sort_key=id&sort_key=size&sort_dir=asc&sort_dir=desc', /sort dirs/);
    });

    test('limit and next: every image once, in order, with the other parameters kept', async () => {
      for (const query of ['', '?sort=name:asc,disk_format:desc', '?sort_key=name&sort_dir=desc', '?tag=paged&sort=disk_format:asc']) {
        const full = (await list(s, query)).images.map((i: Json) => i.id);
        const seen: string[] = [];
        let url: string | undefined = `/v2/images${query}${query ? '&' : '?'}limit=2`;
        let pages = 0;
        while (url) {
          const body = await list(s, url.slice('/v2/images'.length));
          assert.ok(body.images.length <= 2);
          seen.push(...body.images.map((i: Json) => i.id));
          if (body.next) {
            const next = new URL(body.next, 'http://x');
            assert.equal(next.pathname, '/v2/images');
            assert.equal(next.searchParams.get('limit'), '2');
            assert.equal(next.searchParams.get('marker'), body.images[body.images.length - 1].id);
            for (const [k, v] of new URLSearchParams(query)) assert.deepEqual(next.searchParams.getAll(k), new URLSearchParams(query).getAll(k), `${k}=${v} kept`);
            const first = new URL(body.first, 'http://x');
            assert.equal(first.searchParams.get('marker'), null);
            assert.equal(first.searchParams.get('limit'), '2');
          }
          url = body.next;
          assert.ok(++pages < 10);
        }
        assert.deepEqual(seen, full, query);
      }
    });

    test('a full last page still has next; following it gives an empty page without next', async () => {
      const body = await list(s, `?limit=${made.length}`);
      assert.equal(body.images.length, made.length);
      assert.ok(body.next);
      const last = await list(s, body.next.slice('/v2/images'.length));
      assert.deepEqual(last.images, []);
      assert.equal(last.next, undefined);
    });

    test('limit=0 gives no images and no next; limit is capped at 1000', async () => {
      const zero = await list(s, '?limit=0');
      assert.deepEqual(zero.images, []);
      assert.equal(zero.next, undefined);
      assert.equal((await list(s, '?limit=100000')).images.length, made.length);
      await bad(s, '?limit=-1', /positive/);
      await bad(s, '?limit=ten', /integer/);
      await bad(s, '?limit=1.5', /integer/);
    });

    test('a marker must name an image the caller can see', async () => {
      await bad(s, '?marker=00000000-0000-0000-0000-000000000000', /marker/);
      await bad(s, '?marker=not-a-uuid', /marker/);
      const privateOne = await createImage(s, { name: 'mine', visibility: 'private' }, 'member');
      assert.equal((await s.req('GET', `/v2/images?marker=${privateOne.id}`)).status, 200, 'admins see every image');
      const asOther = await s.req('GET', `/v2/images?marker=${privateOne.id}`, { token: 'other' });
      assert.equal(asOther.status, 400);
    });

    test('a name with spaces survives the next link', async () => {
      const body = await list(s, `?name=${encodeURIComponent('d e')}&limit=1`);
      assert.equal(body.images[0].name, 'd e');
      const next = await list(s, body.next.slice('/v2/images'.length));
      assert.deepEqual(next.images, []);
    });
  });
}
