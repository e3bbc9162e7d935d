import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTestServer, createImage, uploadBytes, data1k } from '../support/server.js';

test('create, upload, show, download, delete', async () => {
  const s = await startTestServer();
  try {
    const img = await createImage(s, { name: 'smoke' });
    assert.equal(img.status, 'queued');
    const up = await uploadBytes(s, img.id, data1k());
    assert.equal(up.status, 204);
    const shown = await (await s.req('GET', `/v2/images/${img.id}`)).json();
    assert.equal(shown.status, 'active');
    assert.equal(shown.checksum, 'cbecbdb0fdd5cec1e242493b6008cc79');
    assert.equal(shown.os_hash_value, createHash('sha512').update(data1k()).digest('hex'));
    assert.equal(shown.size, 1000);
    assert.equal(shown.stores, 'local');
    const dl = await s.req('GET', `/v2/images/${img.id}/file`);
    assert.equal(dl.status, 200);
    assert.equal(dl.headers.get('content-md5'), 'cbecbdb0fdd5cec1e242493b6008cc79');
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), data1k());
    const del = await s.req('DELETE', `/v2/images/${img.id}`);
    assert.equal(del.status, 204);
    assert.equal((await s.req('GET', `/v2/images/${img.id}`)).status, 404);
  } finally {
    await s.close();
  }
});
