import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, uploadBytes, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { importImage, stage, waitTasks } from '../import/helpers.js';
import { databases, serverOn, sleep } from './helpers.js';

/**
 * Races (issue 14), on SQLite and PostgreSQL: lost updates, delete during
 * import and copy-image, double imports, membership changes under listing,
 * quota under concurrent writers. Each ends with the consistency check:
 * no object without its record, no record without its object.
 */
const MiB = 1024 * 1024;

async function consistent(s: TestServer): Promise<void> {
  assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
}

const twoStores = {
  stores: [
    { id: 'fast', type: 'filesystem', path: 'fast', description: 'Fast store' },
    { id: 'cheap', type: 'filesystem', path: 'cheap', description: 'Cheap store' },
  ],
  defaultStore: 'fast',
};

for (const kind of await databases()) {
  test(`${kind}: 30 concurrent PATCHes never lose an update`, async () => {
    const s = await serverOn(kind);
    try {
      const img = await createImage(s, { name: 'patched' });
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => [
        s.req('PATCH', `/v2/images/${img.id}`, { headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: JSON.stringify([{ op: 'add', path: `/p_${i}`, value: String(i) }]) }),
        s.req('PUT', `/v2/images/${img.id}/tags/t${i}`),
      ]).flat());
      for (const r of results) assert.ok(r.status === 200 || r.status === 204, `${r.status} ${await r.text()}`);
      const after = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, any>;
      for (let i = 0; i < 30; i++) {
        assert.equal(after[`p_${i}`], String(i), `property p_${i} lost`);
        assert.ok(after.tags.includes(`t${i}`), `tag t${i} lost`);
      }
    } finally {
      await s.close();
    }
  });

  test(`${kind}: two imports of one image: exactly one 202`, async () => {
    const s = await serverOn(kind);
    try {
      for (let round = 0; round < 3; round++) {
        const img = await createImage(s, { name: `double-${round}` });
        assert.equal((await stage(s, img.id, Buffer.alloc(MiB, 1))).status, 204);
        const answers = await Promise.all(Array.from({ length: 10 }, () => importImage(s, img.id, { method: { name: 'glance-direct' } })));
        const statuses = answers.map((r) => r.status).sort();
        assert.deepEqual(statuses, [202, ...Array(9).fill(409)], `round ${round}: ${statuses}`);
        const tasks = await waitTasks(s, img.id);
        assert.equal(tasks.length, 1);
        assert.equal(tasks[0].status, 'success');
      }
      await consistent(s);
    } finally {
      await s.close();
    }
  });

  test(`${kind}: delete during import and during copy-image leaves nothing behind`, { timeout: 120_000 }, async () => {
    const s = await serverOn(kind, { config: twoStores });
    try {
      for (const delay of [0, 5, 20, 60]) {
        const img = await createImage(s, { name: `del-import-${delay}` });
        assert.equal((await stage(s, img.id, Buffer.alloc(16 * MiB, 2))).status, 204);
        assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['fast', 'cheap'] })).status, 202);
        await sleep(delay);
        assert.equal((await s.req('DELETE', `/v2/images/${img.id}`)).status, 204);
        assert.equal((await s.req('GET', `/v2/images/${img.id}`)).status, 404);
      }
      for (const delay of [0, 5, 20, 60]) {
        const img = await createImage(s, { name: `del-copy-${delay}` });
        assert.equal((await uploadBytes(s, img.id, Buffer.alloc(16 * MiB, 3))).status, 204);
        assert.equal((await importImage(s, img.id, { method: { name: 'copy-image' }, stores: ['cheap'] })).status, 202);
        await sleep(delay);
        assert.equal((await s.req('DELETE', `/v2/images/${img.id}`)).status, 204);
      }
      // the runners notice the deletes and roll back; then nothing may be left
      for (let i = 0; i < 100; i++) {
        const tasks = ((await (await s.req('GET', '/v2/tasks?limit=100')).json()) as { tasks: { status: string }[] }).tasks;
        if (tasks.every((t) => t.status === 'success' || t.status === 'failure')) break;
        await sleep(100);
      }
      await consistent(s);
    } finally {
      await s.close();
    }
  });

  test(`${kind}: member add and remove while the member lists`, async () => {
    const s = await serverOn(kind);
    try {
      const img = await createImage(s, { name: 'flapping', visibility: 'shared' }, 'member');
      let stop = false;
      const flapper = (async () => {
        let n = 0;
        while (!stop) {
          const add = await s.req('POST', `/v2/images/${img.id}/members`, { token: 'member', json: { member: 'p2' } });
          assert.equal(add.status, 200, await add.text());
          const accept = await s.req('PUT', `/v2/images/${img.id}/members/p2`, { token: 'other', json: { status: 'accepted' } });
          assert.ok(accept.status === 200 || accept.status === 404, `accept: ${accept.status}`);
          const del = await s.req('DELETE', `/v2/images/${img.id}/members/p2`, { token: 'member' });
          assert.equal(del.status, 204);
          n++;
        }
        return n;
      })();
      for (let i = 0; i < 150; i++) {
        const res = await s.req('GET', '/v2/images?limit=5', { token: 'other' });
        assert.equal(res.status, 200);
        const ids = ((await res.json()) as { images: { id: string }[] }).images.map((x) => x.id);
        assert.equal(new Set(ids).size, ids.length, 'no image listed twice');
        const one = await s.req('GET', `/v2/images/${img.id}`, { token: 'other' });
        assert.ok(one.status === 200 || one.status === 404, `GET: ${one.status}`);
      }
      stop = true;
      assert.ok((await flapper) > 0);
      // a third project never sees it
      assert.equal((await s.req('GET', `/v2/images/${img.id}`, { token: 'third' })).status, 404);
    } finally {
      await s.close();
    }
  });

  test(`${kind}: quota holds under concurrent stage + upload + copy-image`, { timeout: 120_000 }, async () => {
    // p1 may hold 8 MiB of image data and 4 MiB staged
    const s = await serverOn(kind, { config: { ...twoStores, quotas: { enabled: true, defaults: { image_size_total: 8, image_stage_total: 4, image_count_total: -1, image_count_uploading: -1 } } } });
    try {
      const base = await createImage(s, { name: 'base' }, 'member');
      assert.equal((await uploadBytes(s, base.id, Buffer.alloc(3 * MiB, 4), 'member')).status, 204);
      const imgs = await Promise.all(Array.from({ length: 6 }, (_, i) => createImage(s, { name: `q${i}` }, 'member')));
      const work = [
        ...imgs.slice(0, 3).map((im) => uploadBytes(s, im.id, Buffer.alloc(3 * MiB, 5), 'member')),
        ...imgs.slice(3).map((im) => stage(s, im.id, Buffer.alloc(3 * MiB, 6), 'member')),
        importImage(s, base.id, { method: { name: 'copy-image' }, stores: ['cheap'] }, { token: 'member' }),
      ];
      const statuses = (await Promise.all(work)).map((r) => r.status);
      for (const st of statuses) assert.ok(st < 500, `statuses ${statuses}`);
      for (let i = 0; i < 100; i++) {
        const tasks = ((await (await s.req('GET', '/v2/tasks')).json()) as { tasks: { status: string }[] }).tasks;
        if (tasks.every((t) => t.status === 'success' || t.status === 'failure')) break;
        await sleep(100);
      }
      const usage = (await (await s.req('GET', '/v2/info/usage', { token: 'member' })).json()) as { usage: Record<string, { limit: number; usage: number }> };
      assert.ok(usage.usage.image_size_total.usage <= 8, `image_size_total ${JSON.stringify(usage.usage.image_size_total)}`);
      assert.ok(usage.usage.image_stage_total.usage <= 4, `image_stage_total ${JSON.stringify(usage.usage.image_stage_total)}`);
      // what the database holds agrees: bytes in stores ≤ 8 MiB
      const list = ((await (await s.req('GET', '/v2/images?limit=100', { token: 'member' })).json()) as { images: { size: number | null; stores?: string }[] }).images;
      const bytes = list.reduce((n, im) => n + (im.size ?? 0) * (im.stores ? im.stores.split(',').length : 0), 0);
      assert.ok(bytes <= 8 * MiB, `${bytes} bytes stored`);
      await consistent(s);
    } finally {
      await s.close();
    }
  });
}
