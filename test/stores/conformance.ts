import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { InvalidObjectKey, ObjectNotFound, StoreError, StoreFull, StoreReadOnly, StoreUnavailable } from '../../src/stores/errors.js';
import { guard } from '../../src/stores/guarded-store.js';
import type { Store, StoreDriver } from '../../src/stores/store.js';
import { pattern } from '../support/bytes.js';

/**
 * What a driver gives the conformance suite: a fresh empty store (the driver
 * behind the wrapper, as the registry builds every store), and ways to
 * look behind it and to hurt it. Optional parts switch their tests on.
 */
export interface StoreHarness {
  store: Store;
  /** the same backend seen through a store configured read-only */
  readOnly: Store;
  /** every object the backend holds, complete or temporary (driver-specific names) */
  allObjects(): Promise<string[]>;
  /** leaves a temporary object of `key` behind, as a writer killed mid-put would */
  plantTemporary(key: string): Promise<void>;
  /** another empty store the driver can adopt from, when it supports adopt */
  sibling?: Store;
  /** a store of this driver on a backend that holds at most `capacity` bytes */
  small?: { store: Store; capacity: number };
  /** makes the backend unreachable; the returned function heals it */
  breakBackend?(): Promise<() => Promise<void>>;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A source that sends `first`, then waits for `release()`, then sends `rest` (or fails with `fail`). */
function gatedSource(first: Buffer, rest: Buffer) {
  let release!: (err?: Error) => void;
  const gate = new Promise<Error | undefined>((r) => (release = r));
  let firstPulled!: () => void;
  const pulled = new Promise<void>((r) => (firstPulled = r));
  const source = Readable.from(
    (async function* () {
      yield first;
      firstPulled();
      const err = await gate;
      if (err) throw err;
      yield rest;
    })(),
    { objectMode: false },
  );
  return { source, release, pulled };
}

function assertTyped(err: unknown, cls: abstract new (...a: never[]) => StoreError): true {
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  assert.equal('status' in (err as object), false, 'a store error carries no HTTP status');
  return true;
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out.sort();
}

/**
 * Every rule of the Store interface (src/stores/store.ts), run against any
 * driver. Each test gets a fresh harness.
 */
export function storeConformance(name: string, makeHarness: () => Promise<StoreHarness>): void {
  const withStore = (title: string, fn: (h: StoreHarness, t: { skip(msg: string): void }) => Promise<void>) =>
    test(title, async (t) => {
      const h = await makeHarness();
      try {
        await fn(h, t);
      } finally {
        await h.cleanup();
      }
    });

  describe(`Store conformance: ${name}`, () => {
    withStore('put then get returns the same bytes; size and location are reported; exists and list agree', async (h) => {
      const data = pattern(3 * MiB + 5);
      const r = await h.store.put('obj-a', Readable.from([data.subarray(0, MiB), data.subarray(MiB)]));
      assert.equal(r.size, data.length);
      assert.equal(typeof r.location, 'string');
      assert.ok((await readAll(await h.store.get(r.location))).equals(data));
      assert.equal(await h.store.exists(r.location), true);
      assert.deepEqual(await collect(h.store.list()), [r.location]);
    });

    withStore('an empty object is an object', async (h) => {
      const r = await h.store.put('empty', Readable.from([]));
      assert.equal(r.size, 0);
      assert.equal((await readAll(await h.store.get(r.location))).length, 0);
      assert.equal(await h.store.exists(r.location), true);
    });

    withStore('get reads exactly the inclusive range asked for', async (h) => {
      const data = pattern(3 * MiB + 17, 3);
      const { location } = await h.store.put('ranged', Readable.from([data]));
      const n = data.length;
      for (const [start, end] of [[0, 0], [0, n - 1], [1, 1], [MiB - 1, MiB], [MiB, 2 * MiB - 1], [n - 1, n - 1], [12345, 2 * MiB + 999]]) {
        const got = await readAll(await h.store.get(location, { start, end }));
        assert.ok(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`);
      }
    });

    withStore('missing or foreign locations: get rejects with ObjectNotFound, exists is false', async (h) => {
      const { location } = await h.store.put('gone', Readable.from([pattern(10)]));
      await h.store.delete(location);
      await assert.rejects(h.store.get(location), (e) => assertTyped(e, ObjectNotFound));
      await assert.rejects(h.store.get('nonsense:/nowhere'), (e) => assertTyped(e, ObjectNotFound));
      assert.equal(await h.store.exists(location), false);
    });

    withStore('delete removes the object and is idempotent', async (h) => {
      const a = await h.store.put('del-a', Readable.from([pattern(1000)]));
      const b = await h.store.put('del-b', Readable.from([pattern(1000, 2)]));
      await h.store.delete(a.location);
      await h.store.delete(a.location);
      assert.equal(await h.store.exists(a.location), false);
      assert.deepEqual(await collect(h.store.list()), [b.location]);
      assert.ok((await readAll(await h.store.get(b.location))).equals(pattern(1000, 2)));
      assert.ok(!(await h.allObjects()).some((o) => o.includes('del-a')), 'the backend no longer holds it');
    });

    withStore('list yields every complete object exactly once, and only those', async (h) => {
      assert.deepEqual(await collect(h.store.list()), []);
      const locs: string[] = [];
      for (let i = 0; i < 5; i++) locs.push((await h.store.put(`list-${i}`, Readable.from([pattern(100 + i, i + 1)]))).location);
      assert.deepEqual(await collect(h.store.list()), [...locs].sort());
    });

    withStore('a put to an existing key replaces the object whole', async (h) => {
      const first = await h.store.put('same', Readable.from([pattern(2 * MiB, 1)]));
      const second = await h.store.put('same', Readable.from([pattern(1000, 2)]));
      assert.equal(second.size, 1000);
      assert.ok((await readAll(await h.store.get(second.location))).equals(pattern(1000, 2)));
      assert.deepEqual(await collect(h.store.list()), [second.location]);
      assert.equal(first.location, second.location);
    });

    withStore('two concurrent puts of different keys both land intact', async (h) => {
      const [a, b] = await Promise.all([
        h.store.put('conc-a', Readable.from([pattern(2 * MiB, 5), pattern(MiB, 6)])),
        h.store.put('conc-b', Readable.from([pattern(MiB, 7), pattern(2 * MiB, 8)])),
      ]);
      assert.ok((await readAll(await h.store.get(a.location))).equals(Buffer.concat([pattern(2 * MiB, 5), pattern(MiB, 6)])));
      assert.ok((await readAll(await h.store.get(b.location))).equals(Buffer.concat([pattern(MiB, 7), pattern(2 * MiB, 8)])));
    });

    withStore('an object is invisible until its put completes', async (h) => {
      const { source, release, pulled } = gatedSource(pattern(MiB), pattern(MiB, 2));
      const putting = h.store.put('slow', source);
      await pulled;
      assert.deepEqual(await collect(h.store.list()), []);
      release();
      const { location } = await putting;
      assert.deepEqual(await collect(h.store.list()), [location]);
      assert.equal((await readAll(await h.store.get(location))).length, 2 * MiB);
    });

    withStore('a source that fails mid-stream: put rejects with its error and leaves nothing', async (h) => {
      const before = await h.allObjects();
      const { source, release, pulled } = gatedSource(pattern(2 * MiB), pattern(10));
      const putting = h.store.put('failing', source);
      await pulled;
      const boom = new StoreFull('upstream', 'the test made the source fail');
      release(boom);
      await assert.rejects(putting, (e) => e === boom);
      assert.deepEqual(await h.allObjects(), before);
      assert.deepEqual(await collect(h.store.list()), []);
    });

    withStore('abort mid-stream: put rejects with the signal reason, nothing is left, the source is destroyed', async (h) => {
      const { source, pulled } = gatedSource(pattern(2 * MiB), pattern(10));
      const controller = new AbortController();
      const putting = h.store.put('aborted', source, { signal: controller.signal });
      await pulled;
      const reason = new StoreUnavailable('test', 'aborted by the test');
      controller.abort(reason);
      await assert.rejects(putting, (e) => e === reason);
      assert.equal(source.destroyed, true);
      assert.deepEqual(await h.allObjects(), []);
    });

    withStore('a signal aborted before put: rejects, writes nothing', async (h) => {
      const controller = new AbortController();
      const reason = new StoreUnavailable('test', 'aborted before start');
      controller.abort(reason);
      const source = Readable.from([pattern(100)]);
      await assert.rejects(h.store.put('never', source, { signal: controller.signal }), (e) => e === reason);
      assert.deepEqual(await h.allObjects(), []);
    });

    withStore('removeTemporary removes what dead writers left and nothing else', async (h) => {
      const keep = await h.store.put('keep', Readable.from([pattern(5000)]));
      const before = await h.allObjects();
      await h.plantTemporary('dead-a');
      await h.plantTemporary('dead-a');
      await h.plantTemporary('dead-b');
      assert.equal((await h.allObjects()).length, before.length + 3, 'the harness planted temporaries');
      assert.deepEqual(await collect(h.store.list()), [keep.location], 'temporaries are not listed');
      assert.equal(await h.store.removeTemporary('dead-a'), 2, 'only the temporaries of one key');
      assert.equal((await h.allObjects()).length, before.length + 1);
      assert.equal(await h.store.removeTemporary(), 1);
      assert.deepEqual(await h.allObjects(), before);
      assert.ok((await readAll(await h.store.get(keep.location))).equals(pattern(5000)));
      assert.equal(await h.store.removeTemporary(), 0);
    });

    withStore('a read-only store refuses put with StoreReadOnly and writes nothing, but reads', async (h) => {
      const { location } = await h.store.put('ro', Readable.from([pattern(100)]));
      const before = await h.allObjects();
      const source = Readable.from([pattern(100)]);
      await assert.rejects(h.readOnly.put('ro-new', source), (e) => assertTyped(e, StoreReadOnly));
      assert.equal(source.destroyed, true, 'put owns its source and destroys it on failure');
      assert.deepEqual(await h.allObjects(), before);
      assert.ok((await readAll(await h.readOnly.get(location))).equals(pattern(100)));
      assert.equal(h.readOnly.info.readOnly, true);
    });

    withStore('put never holds the object in memory: a reused-buffer source still stores the right bytes', async (h) => {
      // The source hands out 16 buffers in rotation, rewriting each before reuse.
      // A driver that kept more than 16 MiB of them in flight would store
      // overwritten bytes, and the digest below would not match.
      const RING = 16;
      const TOTAL = 96;
      const ring = Array.from({ length: RING }, () => Buffer.alloc(MiB));
      const expected = createHash('sha256');
      let i = 0;
      const source = new Readable({
        read() {
          if (i === TOTAL) return void this.push(null);
          const b = ring[i % RING];
          b.fill(i & 0xff);
          b.writeUInt32BE(i, 0);
          expected.update(b);
          i++;
          this.push(b);
        },
      });
      const { location, size } = await h.store.put('ring', source);
      assert.equal(size, TOTAL * MiB);
      const got = createHash('sha256');
      for await (const c of await h.store.get(location)) got.update(c as Buffer);
      assert.equal(got.digest('hex'), expected.digest('hex'));
    });

    withStore('invalid keys are refused without writing', async (h) => {
      for (const key of ['../escape', 'a/b', '.tmp', '', '.hidden']) {
        const source = Readable.from([pattern(10)]);
        await assert.rejects(h.store.put(key, source), (e) => assertTyped(e, InvalidObjectKey));
        assert.equal(source.destroyed, true);
        await assert.rejects(h.store.removeTemporary(key === '' ? '/' : key), (e) => assertTyped(e, InvalidObjectKey));
      }
      assert.deepEqual(await h.allObjects(), []);
    });

    withStore('backend full: put rejects with StoreFull and leaves nothing', async (h, t) => {
      if (!h.small) return t.skip('the harness has no small backend');
      const { store, capacity } = h.small;
      await assert.rejects(store.put('too-big', Readable.from([pattern(capacity), pattern(MiB)])), (e) => assertTyped(e, StoreFull));
      assert.deepEqual(await collect(store.list()), []);
      const ok = await store.put('fits', Readable.from([pattern(Math.floor(capacity / 4))]));
      assert.equal(ok.size, Math.floor(capacity / 4));
      await store.delete(ok.location);
    });

    withStore('backend unreachable: put rejects with StoreUnavailable, get with a typed error; healing restores it', async (h, t) => {
      if (!h.breakBackend) return t.skip('the harness cannot break its backend');
      const { location } = await h.store.put('before', Readable.from([pattern(100)]));
      const heal = await h.breakBackend();
      try {
        await assert.rejects(h.store.put('during', Readable.from([pattern(100)])), (e) => assertTyped(e, StoreUnavailable));
        await assert.rejects(h.store.get(location), (e) => e instanceof StoreError);
      } finally {
        await heal();
      }
      const after = await h.store.put('after', Readable.from([pattern(100)]));
      assert.ok((await readAll(await h.store.get(after.location))).equals(pattern(100)));
    });

    withStore('adopt moves an object from a sibling store without a copy the caller sees', async (h, t) => {
      if (!h.sibling || !h.store.driver.adopt) return t.skip('the driver does not adopt');
      assert.equal(h.store.canAdopt(h.sibling), true);
      const data = pattern(MiB + 3, 9);
      const staged = await h.sibling.put('staged', Readable.from([data]));
      const adopted = await h.store.adopt(h.sibling, staged.location, 'adopted');
      assert.equal(adopted.size, data.length);
      assert.ok((await readAll(await h.store.get(adopted.location))).equals(data));
      assert.equal(await h.sibling.exists(staged.location), false);
      assert.deepEqual(await collect(h.sibling.list()), []);
      assert.deepEqual(await collect(h.store.list()), [adopted.location]);
      assert.equal(h.readOnly.canAdopt(h.sibling), false, 'a read-only store adopts nothing');
    });

    // The wrapper's rules (src/stores/guarded-store.ts), the same whatever the driver.

    withStore('wrapper: a read-only store refuses put, delete, adopt and removeTemporary before the driver sees them', async (h) => {
      const { location } = await h.store.put('kept', Readable.from([pattern(100)]));
      await h.plantTemporary('left');
      const before = await h.allObjects();
      assert.throws(() => h.readOnly.assertWritable(), (e) => assertTyped(e, StoreReadOnly));
      await assert.rejects(h.readOnly.delete(location), (e) => assertTyped(e, StoreReadOnly));
      await assert.rejects(h.readOnly.removeTemporary(), (e) => assertTyped(e, StoreReadOnly));
      await assert.rejects(h.readOnly.removeTemporary('left'), (e) => assertTyped(e, StoreReadOnly));
      await assert.rejects(h.readOnly.adopt(h.store, location, 'taken'), (e) => assertTyped(e, StoreReadOnly));
      assert.deepEqual(await h.allObjects(), before, 'nothing changed behind the read-only store');
      assert.equal(await h.readOnly.exists(location), true);
      h.store.assertWritable();
    });

    withStore('wrapper: whatever untyped error the driver throws becomes StoreUnavailable naming the store, the driver\'s words in details', async (h) => {
      const { location } = await h.store.put('there', Readable.from([pattern(100)]));
      const failing = guard(failingDriver(h.store.driver, 'the backend caught fire'));
      const expectUnavailable = (e: unknown) => {
        assertTyped(e, StoreUnavailable);
        assert.equal((e as StoreUnavailable).storeId, h.store.info.id);
        assert.match((e as StoreUnavailable).details, /the backend caught fire/);
        return true;
      };
      const source = Readable.from([pattern(100)]);
      await assert.rejects(failing.put('new', source), expectUnavailable);
      await assert.rejects(failing.get(location), expectUnavailable);
      await assert.rejects(failing.delete(location), expectUnavailable);
      await assert.rejects(failing.exists(location), expectUnavailable);
      await assert.rejects(collect(failing.list()), expectUnavailable);
      await assert.rejects(failing.removeTemporary(), expectUnavailable);
      // typed errors pass unchanged: the driver's own, and the caller's (an abort reason)
      const typed = new StoreFull(h.store.info.id, 'typed by the driver');
      await assert.rejects(guard(failingDriver(h.store.driver, typed)).get(location), (e) => e === typed);
      assert.ok((await readAll(await h.store.get(location))).equals(pattern(100)), 'the real store is untouched');
    });
  });
}

/** A driver whose every operation fails with `err` (a plain Error of that message, unless an error is given). */
function failingDriver(driver: StoreDriver, err: string | Error): StoreDriver {
  const fail = () => Promise.reject(typeof err === 'string' ? new Error(err) : err);
  return {
    info: driver.info,
    put: (_key, source) => (source.destroy(), fail()),
    get: fail,
    delete: fail,
    exists: fail,
    // eslint-disable-next-line require-yield
    list: async function* () {
      await fail();
    },
    removeTemporary: fail,
  };
}
