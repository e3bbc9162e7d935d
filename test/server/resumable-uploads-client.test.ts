import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tus from 'tus-js-client';
import { createImage, startTestServer, TOKENS, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { startRelay } from '../support/relay.js';
import type { PartialObjects } from '../../src/stores/store.js';

/** Bytes uploaded (the 1 GiB); IMAGO_TUS_BYTES changes it. */
const SIZE = Number(process.env.IMAGO_TUS_BYTES ?? 1024 * 1024 * 1024);
const CUTS = 10;

/** Counts the bytes the store appends to partial objects: each byte should be stored exactly once. */
function countAppends(partial: PartialObjects): { stored: () => number } {
  let stored = 0;
  const append = partial.appendPartial.bind(partial);
  partial.appendPartial = async (key, offset, source, opts) => {
    const size = await append(key, offset, source, opts);
    stored += size - offset;
    return size;
  };
  return { stored: () => stored };
}

function upload(file: string, endpoint: string, imageId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(createReadStream(file), {
      endpoint,
      headers: { 'X-Auth-Token': TOKENS.admin },
      metadata: { image_id: imageId, target: 'data' },
      retryDelays: Array(40).fill(50),
      onError: reject,
      onSuccess: () => resolve(),
      ...(process.env.IMAGO_TUS_DEBUG
        ? {
            onShouldRetry: (err: Error, attempt: number) => {
              console.error('retry', attempt, err.message.slice(0, 300));
              return true;
            },
            onChunkComplete: (_c: number, sent: number) => console.error('chunk', sent),
          }
        : {}),
    });
    u.start();
  });
}

describe('resumable uploads with tus-js-client through a connection cut 10 times', () => {
  let s: TestServer;
  let dir: string;
  let file: string;
  let md5: string;
  let sha512: string;

  before(async () => {
    s = await startTestServer();
    dir = mkdtempSync(path.join(tmpdir(), 'imago-tus-'));
    file = path.join(dir, 'disk.raw');
    const out = createWriteStream(file);
    const h5 = createHash('md5');
    const h512 = createHash('sha512');
    const block = pattern(4 * 1024 * 1024, 21);
    for (let done = 0; done < SIZE; done += block.length) {
      const piece = block.subarray(0, Math.min(block.length, SIZE - done));
      h5.update(piece);
      h512.update(piece);
      if (!out.write(piece)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    md5 = h5.digest('hex');
    sha512 = h512.digest('hex');
  });
  after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${SIZE} bytes: the image ends active with the right digests, and no byte is stored twice`, { timeout: 600_000 }, async () => {
    const img = await createImage(s);
    const cuts = Array.from({ length: CUTS }, () => Math.floor(Math.random() * SIZE)).sort((a, b) => a - b);
    // The bad network: every connection is cut the moment the bytes sent through it pass the next cut.
    let cutsDone = 0;
    const relay = await startRelay('127.0.0.1', Number(new URL(s.url).port), {
      onClientBytes: (total) => {
        if (cutsDone < cuts.length && total >= cuts[cutsDone]) {
          cutsDone++;
          return 'cut';
        }
      },
    });
    const counter = countAppends(s.rt.stores.named('local').driver.partial!);
    try {
      await upload(file, `http://127.0.0.1:${relay.port}/v2/uploads`, img.id);
    } finally {
      relay.stop();
    }
    assert.equal(cutsDone, CUTS, 'every cut happened');
    const shown = (await (await s.req('GET', `/v2/images/${img.id}`)).json()) as Record<string, any>;
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, SIZE);
    assert.equal(shown.checksum, md5);
    assert.equal(shown.os_hash_value, sha512);
    assert.equal(counter.stored(), SIZE, 'bytes stored = bytes of the image: none twice');
  });
});
