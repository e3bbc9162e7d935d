/**
 * Behaviours tempest's image tests rely on, found while running them against
 * Imago (docs/tempest.md), checked here without tempest.
 *
 *   npx tsx --test test/tempest/compat.test.ts
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTestServer, createImage, uploadBytes, type TestServer } from '../support/server.js';

describe('format inspection and container formats (tempest ListUserImagesTest)', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s.close(); });

  test('bytes in a non-bare container are not held to the disk_format', async () => {
    // tempest uploads random bytes as container ami with disk ami, ari, aki, vhd, vmdk, raw
    for (const disk of ['ami', 'vhd', 'vmdk', 'qcow2', 'raw']) {
      const image = await createImage(s, { container_format: 'ami', disk_format: disk });
      const data = randomBytes(2048);
      const res = await uploadBytes(s, image.id, data);
      assert.equal(res.status, 204, `${disk}: ${await res.text()}`);
      const shown = (await (await s.req('GET', `/v2/images/${image.id}`)).json()) as Record<string, unknown>;
      assert.equal(shown.status, 'active');
      assert.equal(shown.size, 2048);
      assert.equal(shown.virtual_size, null);
    }
  });

  test('bare bytes still have to be what disk_format says', async () => {
    const image = await createImage(s, { container_format: 'bare', disk_format: 'vhd' });
    const res = await uploadBytes(s, image.id, randomBytes(2048));
    assert.equal(res.status, 415);
    const body = (await res.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, 415);
    assert.match(body.error.message, /disk_format is vhd/);
    const shown = (await (await s.req('GET', `/v2/images/${image.id}`)).json()) as Record<string, unknown>;
    assert.equal(shown.status, 'queued');
  });
});
