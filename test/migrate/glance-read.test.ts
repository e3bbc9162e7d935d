import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isoTime, readGlance } from '../../src/migrate/glance/read.js';
import { openGlanceSource, redact, type GlanceSource, type Row } from '../../src/migrate/glance/source.js';
import { planData } from '../../src/migrate/glance/data.js';

/** The parts of import-glance that need no Glance: times, URLs, soft-deleted rows, where data comes from. */

describe('import-glance: reading Glance rows', () => {
  it('turns Glance naive UTC times into Imago ISO times with milliseconds', () => {
    assert.equal(isoTime('2026-12-03 12:36:40'), '2026-12-03T12:36:40.000Z');
    assert.equal(isoTime('2026-12-03 12:36:40.123456'), '2026-12-03T12:36:40.123Z');
    assert.equal(isoTime('2026-12-03 12:36:40.5'), '2026-12-03T12:36:40.500Z');
    assert.equal(isoTime('2026-12-03 13:36:40+01'), '2026-12-03T12:36:40.000Z');
    assert.throws(() => isoTime('yesterday'), /unreadable time/);
  });

  it('hides passwords in messages and refuses URLs it cannot read', async () => {
    assert.equal(redact('mysql+pymysql://glance:s3cr@t@db/glance'), 'mysql+pymysql://glance:***@db/glance');
    await assert.rejects(openGlanceSource('sqlite:///var/lib/glance/glance.sqlite'), /use a mysql:\/\/ or postgresql:\/\/ URL/);
  });

  it('leaves soft-deleted images, properties, tags, members and locations behind', async () => {
    const tables: Record<string, Row[]> = {
      images: [
        { id: 'a', name: 'kept', status: 'active', visibility: 'shared', protected: 0, os_hidden: 0, deleted: 0, min_disk: 0, min_ram: 0, size: '10', created_at: '2026-01-01 00:00:00', updated_at: null },
        { id: 'b', name: 'gone', status: 'deleted', visibility: 'private', protected: 0, os_hidden: 0, deleted: 1, min_disk: 0, min_ram: 0, created_at: '2026-01-01 00:00:00' },
      ],
      image_properties: [{ image_id: 'a', name: '__proto__', value: 'x' }, { image_id: 'b', name: 'p', value: 'y' }],
      image_tags: [{ image_id: 'a', value: 't' }, { image_id: 'a', value: 't' }],
      image_members: [{ image_id: 'a', member: 'p2', status: 'accepted', created_at: '2026-01-02 00:00:00', updated_at: null }],
      image_locations: [{ image_id: 'a', value: 'file:///old/a', status: 'deleted' }, { image_id: 'a', value: 'file:///srv/glance/a', status: 'active' }],
    };
    const seen: string[] = [];
    const src: GlanceSource = {
      dialect: 'mysql',
      async query(sql) {
        seen.push(sql);
        const table = /FROM (\w+)/.exec(sql)![1];
        // the fake honours only what readGlance relies on the database for: WHERE NOT deleted
        return tables[table].filter((r) => !(sql.includes('NOT deleted') && r.deleted));
      },
      async close() {},
    };
    const snap = await readGlance(src);
    assert.equal(snap.deleted, 1);
    assert.deepEqual(snap.images.map((i) => i.id), ['a']);
    const a = snap.images[0];
    assert.equal(a.size, 10);
    assert.equal(a.updatedAt, '2026-01-01T00:00:00.000Z', 'a missing updated_at is the creation time');
    assert.equal(Object.getOwnPropertyDescriptor(a.properties, '__proto__')?.value, 'x');
    assert.deepEqual(a.tags, ['t']);
    assert.deepEqual(a.members, [{ memberId: 'p2', status: 'accepted', createdAt: '2026-01-02T00:00:00.000Z', updatedAt: '2026-01-02T00:00:00.000Z' }]);
    assert.deepEqual(a.locations, ['file:///srv/glance/a']);
    assert.ok(seen.every((q) => /^SELECT /.test(q)), 'only reads');

    assert.deepEqual(planData(a, [{ storeId: 'glance', dir: '/srv/glance' }]), { kind: 'adopt', storeId: 'glance', url: 'file:///srv/glance/a', file: '/srv/glance/a' });
    assert.deepEqual(planData(a, [{ storeId: 'other', dir: '/srv/other' }]), { kind: 'copy', file: '/srv/glance/a' });
    assert.equal(planData({ ...a, locations: ['rbd://fsid/images/a/snap'] }, []).kind, 'unreachable');
    assert.equal(planData({ ...a, locations: [] }, []).kind, 'none');
  });
});
