import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { S3ObjectReader, S3_READ_CHUNK } from '../../src/stores/s3-object-reader.js';
import { pattern } from '../support/bytes.js';

/** A source that delivers `data` in socket-sized pieces, as an S3 response does. */
function socketLike(data: Buffer, piece = 65_536 - 17): PassThrough {
  const s = new PassThrough();
  void (async () => {
    for (let off = 0; off < data.length; off += piece) {
      if (!s.write(data.subarray(off, off + piece))) await new Promise((r) => s.once('drain', r));
    }
    s.end();
  })();
  return s;
}

test('regroups a response into 1 MiB chunks and passes every byte in order, the last chunk short', async () => {
  const data = pattern(3 * S3_READ_CHUNK + 12_345, 7);
  const reader = new S3ObjectReader(socketLike(data));
  const sizes: number[] = [];
  const parts: Buffer[] = [];
  for await (const chunk of reader) {
    sizes.push(chunk.length);
    parts.push(Buffer.from(chunk));
  }
  assert.deepEqual(sizes, [S3_READ_CHUNK, S3_READ_CHUNK, S3_READ_CHUNK, 12_345]);
  assert.ok(Buffer.concat(parts).equals(data));
});

test('recycled chunks are reused: a long read needs only a few buffers', async () => {
  const data = pattern(12 * S3_READ_CHUNK, 8);
  const reader = new S3ObjectReader(socketLike(data));
  const memories = new Set<ArrayBufferLike>();
  const copies: Buffer[] = [];
  for await (const chunk of reader) {
    memories.add(chunk.buffer);
    copies.push(Buffer.from(chunk));
    reader.recycle(chunk);
  }
  assert.ok(Buffer.concat(copies).equals(data), 'reuse never overwrote a chunk before it was handed back');
  assert.ok(memories.size <= 4, `${memories.size} buffers for 12 chunks`);
});

test('backpressure: while nobody reads, the response is paused', async () => {
  const source = new PassThrough({ highWaterMark: 65_536 });
  const reader = new S3ObjectReader(source);
  let wrote = 0;
  // keep writing until the source itself refuses: the reader stopped taking data from it
  while (source.write(pattern(65_536, wrote)) && wrote < 64) {
    wrote++;
    await tick();
  }
  assert.ok(wrote < 64, 'the source kept draining although nobody read the reader');
  assert.equal(source.isPaused(), true);
  reader.destroy();
  assert.equal(source.destroyed, true, 'destroying the reader destroys the response');
});

test('a response that fails or closes before its end is an error, never a short image', async () => {
  const failing = new PassThrough();
  const r1 = new S3ObjectReader(failing);
  failing.write(pattern(1000, 1));
  failing.destroy(new Error('connection reset'));
  await assert.rejects(async () => {
    for await (const _ of r1) void _;
  }, /connection reset/);

  const cut = new Readable({ read() {} });
  const r2 = new S3ObjectReader(cut);
  cut.push(pattern(1000, 2));
  cut.destroy();
  await assert.rejects(async () => {
    for await (const _ of r2) void _;
  }, /ended before the whole object was read/);
});
