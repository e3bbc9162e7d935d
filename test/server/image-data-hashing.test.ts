import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { ManualUpload, imageOf } from './image-data-helpers.js';

const MiB = 1024 * 1024;

/**
 * Invariant 9: md5 and sha512 never run on the event loop. Every hash the
 * main thread computes is counted (crypto.createHash and crypto.hash are
 * wrapped, and ESM bindings re-synced, so imports see the wrappers); an
 * upload must add no md5/sha512 byte to that count, yet its checksums must
 * be right.
 */
describe('hashing is off the event loop', () => {
  let s: TestServer;
  const hashedOnMain = { md5: 0, sha512: 0 };
  const real = { createHash: crypto.createHash, hash: (crypto as any).hash };

  before(async () => {
    (crypto as any).createHash = function (algorithm: string, options?: unknown) {
      const h = real.createHash(algorithm, options as never);
      const algo = algorithm.toLowerCase();
      if (isMainThread && (algo === 'md5' || algo === 'sha512')) {
        const update = h.update.bind(h);
        (h as any).update = (data: crypto.BinaryLike, enc?: crypto.Encoding) => {
          hashedOnMain[algo] += typeof data === 'string' ? Buffer.byteLength(data) : (data as Uint8Array).byteLength;
          return enc ? update(data as string, enc) : update(data);
        };
      }
      return h;
    };
    if (real.hash) {
      (crypto as any).hash = (algorithm: string, data: crypto.BinaryLike, ...rest: unknown[]) => {
        const algo = algorithm.toLowerCase();
        if (algo === 'md5' || algo === 'sha512') hashedOnMain[algo] += typeof data === 'string' ? Buffer.byteLength(data) : (data as Uint8Array).byteLength;
        return real.hash(algorithm, data, ...rest);
      };
    }
    syncBuiltinESMExports();
    s = await startTestServer();
  });

  after(async () => {
    await s.close();
    (crypto as any).createHash = real.createHash;
    if (real.hash) (crypto as any).hash = real.hash;
    syncBuiltinESMExports();
  });

  test('the spy sees main-thread hashing (the test can fail)', () => {
    const before = hashedOnMain.md5;
    crypto.createHash('md5').update(Buffer.alloc(10));
    assert.equal(hashedOnMain.md5, before + 10);
  });

  test('a 64 MiB upload hashes nothing on the main thread, the event loop stays responsive, the digests are right', async () => {
    const img = await createImage(s);
    const expected = { md5: real.createHash('md5'), sha512: real.createHash('sha512') };
    const start = { ...hashedOnMain };
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const latencies: number[] = [];
    let uploading = true;
    const prober = (async () => {
      while (uploading) {
        const t0 = performance.now();
        const r = await s.req('GET', `/v2/images/${img.id}`);
        await r.arrayBuffer();
        latencies.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const up = new ManualUpload(s.url, img.id, { contentLength: 64 * MiB });
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < 64; i++) {
      chunk.fill(i);
      chunk.writeUInt32BE(i * 2654435761 >>> 0, 0);
      expected.md5.update(chunk);
      expected.sha512.update(chunk);
      await up.write(Buffer.from(chunk));
    }
    const r = await up.end();
    uploading = false;
    await prober;
    delay.disable();
    assert.equal(r.status, 204);
    assert.deepEqual({ md5: hashedOnMain.md5 - start.md5, sha512: hashedOnMain.sha512 - start.sha512 }, { md5: 0, sha512: 0 }, 'no md5/sha512 byte was hashed on the main thread');
    const shown = await imageOf(s, img.id);
    assert.equal(shown.checksum, expected.md5.digest('hex'));
    assert.equal(shown.os_hash_value, expected.sha512.digest('hex'));
    // The spy above is the proof. These bounds only catch a loop stalled for long
    // (e.g. a synchronous whole-image step); they are generous because the test
    // machine's 2 cores are shared and a descheduled loop shows as delay too.
    const p99 = delay.percentile(99) / 1e6;
    latencies.sort((a, b) => a - b);
    const worst = latencies[latencies.length - 1] ?? 0;
    assert.ok(latencies.length >= 3, `only ${latencies.length} metadata requests completed during the upload`);
    assert.ok(p99 < 400, `event loop delay p99 ${p99.toFixed(1)} ms`);
    assert.ok(worst < 2000, `a metadata GET took ${worst.toFixed(1)} ms during the upload`);
  });
});
