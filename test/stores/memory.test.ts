import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { guard } from '../../src/stores/guarded-store.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { storeConformance, type StoreHarness } from './conformance.js';
import { pattern } from '../support/bytes.js';

/**
 * The in-memory driver (not for production) through the same wrapper and the
 * same conformance suite as the filesystem and S3 drivers: proof that the
 * Store contract does not lean on one backend.
 */
storeConformance('MemoryStore', async (): Promise<StoreHarness> => {
  const driver = new MemoryStore({ id: 'mem', description: 'mem', readOnly: false });
  // the read-only view of the same backend: same objects, refused writes
  const readOnlyDriver = Object.create(driver, { info: { value: { ...driver.info, readOnly: true } } }) as MemoryStore;
  const capacity = 4 * 1024 * 1024;
  return {
    store: guard(driver),
    readOnly: guard(readOnlyDriver),
    sibling: guard(new MemoryStore({ id: 'staging', description: '', readOnly: false })),
    small: { store: guard(new MemoryStore({ id: 'small', description: '', readOnly: false, capacityBytes: capacity })), capacity },
    allObjects: async () => {
      const out: string[] = [];
      for await (const l of driver.list()) out.push(l);
      for (const [key, temps] of driver.temporaries) for (const t of temps) out.push(`tmp:${key}.${t}`);
      return out.sort();
    },
    plantTemporary: async (key) => {
      const temps = driver.temporaries.get(key) ?? new Set<string>();
      temps.add(String(Math.random()));
      driver.temporaries.set(key, temps);
    },
    breakBackend: async () => {
      driver.broken = 'the memory backend is broken (by the test)';
      return async () => void (driver.broken = undefined);
    },
    cleanup: async () => {},
  };
});

describe('MemoryStore specifics', () => {
  test('locations name the store; another memory store does not reach them', async () => {
    const a = guard(new MemoryStore({ id: 'a', description: '', readOnly: false }));
    const b = guard(new MemoryStore({ id: 'b', description: '', readOnly: false }));
    const r = await a.put('img', Readable.from([pattern(10)]));
    assert.equal(r.location, 'memory://a/img');
    assert.equal(await b.exists(r.location), false);
    await assert.rejects(b.get(r.location), (e: Error) => e.constructor.name === 'ObjectNotFound');
  });
});
