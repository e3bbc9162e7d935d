import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { HashPool } from '../../src/stores/hash-pool.js';
import { pattern } from '../support/bytes.js';

const pool = new HashPool(2);
after(() => pool.close());

function expected(b: Buffer) {
  return { md5: createHash('md5').update(b).digest('hex'), sha512: createHash('sha512').update(b).digest('hex') };
}

/** Feeds `body` in `chunk`-sized pieces, waiting only when the ring asks to. */
async function hashThrough(body: Buffer, chunk: number) {
  const s = pool.open();
  for (let i = 0; i < body.length; i += chunk) {
    const wait = s.tryUpdate(body.subarray(i, i + chunk));
    if (wait) await wait;
  }
  return s.digest();
}

test('digests match node:crypto for any size and chunking (block edges, empty, many blocks)', async () => {
  const K = 1024;
  for (const [size, chunk] of [[0, 1], [1, 1], [64 * K, 64 * K], [512 * K - 1, 65 * K], [512 * K, 64 * K], [512 * K + 1, 64 * K], [5 * 1024 * K + 17, 64 * K], [9 * 1024 * K, 3 * 1024 * K], [300 * K, 7]]) {
    const body = pattern(size, size);
    assert.deepEqual(await hashThrough(body, chunk), expected(body), `size ${size}, chunk ${chunk}`);
  }
});

test('many sessions at once each get their own digests', async () => {
  const bodies = Array.from({ length: 8 }, (_, i) => pattern(3 * 1024 * 1024 + i * 4099, i + 1));
  const got = await Promise.all(bodies.map((b, i) => hashThrough(b, 16 * 1024 + i * 1000)));
  got.forEach((d, i) => assert.deepEqual(d, expected(bodies[i]), `session ${i}`));
});

test('update() waits when the ring is full and resumes when the workers free a block', async () => {
  const s = pool.open();
  const body = pattern(8 * 1024 * 1024, 3);
  let waited = 0;
  // 8 MiB in one call: far more than the ring holds, so it has to wait for blocks several times
  const big = s.tryUpdate(body);
  if (big) {
    waited++;
    await big;
  }
  assert.equal(waited, 1);
  assert.deepEqual(await s.digest(), expected(body));
});

test('an aborted session rejects further updates and leaves the pool working', async () => {
  const s = pool.open();
  await s.update(pattern(1024 * 1024, 5));
  s.abort();
  assert.throws(() => s.tryUpdate(pattern(10, 1)), /ended/);
  const body = pattern(2 * 1024 * 1024, 9);
  assert.deepEqual(await hashThrough(body, 64 * 1024), expected(body));
});
