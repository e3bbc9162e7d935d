import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { startSwift, swiftSkipReason, type Swift } from '../support/swift.js';
import { getImage, importImage, md5, sha512, stage, waitImage, waitTasks } from '../import/helpers.js';
import { pattern } from '../support/bytes.js';
import { checkConsistency } from '../../src/services/recovery.js';
import type { S3Store } from '../../src/stores/s3.js';
import { put } from './image-data-helpers.js';

const MiB = 1024 * 1024;
const skip = swiftSkipReason();

/**
 * Interoperable import with S3 in the picture: staging in a bucket (so a
 * stage on one node and an import on another need no shared disk), a
 * glance-direct import that moves the staged object server-side, and
 * copy-image between a filesystem store and an S3 store both ways.
 */
describe('import with S3 staging and S3 stores (Swift s3api)', { skip }, () => {
  let swift: Swift;
  let imagesBucket: string;
  let stagingBucket: string;
  let s: TestServer;
  const objectCommands: string[] = [];

  before(async () => {
    swift = await startSwift();
    imagesBucket = await swift.createBucket();
    stagingBucket = await swift.createBucket();
    const small = { partSizeMiB: 1, minPartSizeMiB: 1, queueSize: 2 };
    s = await startTestServer({
      config: {
        stores: [
          { id: 'objects', type: 's3', s3: { ...swift.s3Config(imagesBucket), prefix: 'images/', ...small } },
          { id: 'local', type: 'filesystem', path: 'images' },
        ],
        defaultStore: 'objects',
        staging: { id: 'os_glance_staging_store', type: 's3', s3: { ...swift.s3Config(stagingBucket), prefix: 'staging/', ...small } },
        // raw data passes both untouched; the conversion test below sends gzip'ed qcow2
        import: { plugins: { decompression: true, conversion: { enabled: true, outputFormat: 'raw' } } },
      },
    });
    (s.rt.stores.byId.get('objects')!.driver as S3Store).client.middlewareStack.add(
      (next, context) => (args) => {
        objectCommands.push(context.commandName ?? '');
        return next(args);
      },
      { step: 'initialize', name: 'testCommands' },
    );
  });

  after(async () => {
    await s?.close();
    await swift?.stop();
  });

  async function download(id: string): Promise<Buffer> {
    const res = await s.req('GET', `/v2/images/${id}/file`);
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  }

  test('glance-direct from S3 staging into an S3 store moves the object server-side; digests are the staged ones', async () => {
    const img = await createImage(s);
    const data = pattern(3 * MiB + 5, 4);
    assert.equal((await stage(s, img.id, data)).status, 204);
    assert.deepEqual(await swift.containerObjects(stagingBucket), [`staging/${img.id}`]);
    objectCommands.length = 0;
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } })).status, 202);
    const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
    assert.equal(done.stores, 'objects');
    assert.equal(done.size, data.length);
    assert.equal(done.checksum, md5(data));
    assert.equal(done.os_hash_value, sha512(data));
    assert.ok(objectCommands.includes('CopyObjectCommand'), objectCommands.join());
    assert.ok(!objectCommands.includes('PutObjectCommand') && !objectCommands.includes('UploadPartCommand'), 'no byte of the image went through Imago');
    assert.deepEqual(await swift.bucketContents(stagingBucket), [], 'the staged object moved');
    assert.deepEqual(await swift.containerObjects(imagesBucket), [`images/${img.id}`]);
    assert.ok((await download(img.id)).equals(data));
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  });

  test('glance-direct from S3 staging into a filesystem store copies and verifies', async () => {
    const img = await createImage(s);
    const data = pattern(2 * MiB + 1, 5);
    assert.equal((await stage(s, img.id, data)).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['local'] })).status, 202);
    const done = await waitImage(s, img.id, (i) => i.status === 'active' && !('os_glance_import_task' in i));
    assert.equal(done.stores, 'local');
    assert.equal(done.os_hash_value, sha512(data));
    assert.deepEqual(await swift.bucketContents(stagingBucket), []);
    assert.ok((await download(img.id)).equals(data));
  });

  test('conversion and decompression with S3 staging: gzip\'ed qcow2 becomes raw; no scratch file is left', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'imago-s3-convert-'));
    try {
      const raw = pattern(3 * MiB, 8);
      writeFileSync(path.join(dir, 'disk.raw'), raw);
      execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', path.join(dir, 'disk.raw'), path.join(dir, 'disk.qcow2')]);
      const img = await createImage(s, { disk_format: 'qcow2', container_format: 'compressed' });
      assert.equal((await stage(s, img.id, gzipSync(readFileSync(path.join(dir, 'disk.qcow2'))))).status, 204);
      assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' }, stores: ['objects'] })).status, 202);
      const done = await waitImage(s, img.id, (i) => (i.status === 'active' || i.status === 'queued') && !('os_glance_import_task' in i));
      const [task] = await waitTasks(s, img.id);
      assert.equal(done.status, 'active', task.message);
      assert.equal(done.disk_format, 'raw');
      assert.equal(done.container_format, 'bare');
      assert.equal(done.size, raw.length);
      assert.equal(done.os_hash_value, sha512(raw));
      assert.ok((await download(img.id)).equals(raw));
      assert.deepEqual(await swift.bucketContents(stagingBucket), []);
      assert.deepEqual(readdirSync(s.rt.config.import.workDir), [], 'scratch files removed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('copy-image filesystem → S3 and S3 → filesystem: each copy holds the same bytes', async () => {
    const fromFs = await createImage(s);
    const a = pattern(2 * MiB + 17, 6);
    assert.equal((await put(s, fromFs.id, a, { headers: { 'x-image-meta-store': 'local' } })).status, 204);
    assert.equal((await importImage(s, fromFs.id, { method: { name: 'copy-image' }, stores: ['objects'] })).status, 202);
    await waitImage(s, fromFs.id, (i) => i.stores === 'local,objects' && !('os_glance_import_task' in i));
    const [copyTask] = await waitTasks(s, fromFs.id);
    assert.equal(copyTask.status, 'success');
    const objects = s.rt.stores.byId.get('objects')!;
    const inS3 = (await getImageLocations(fromFs.id)).find((l) => l.storeId === 'objects')!;
    assert.ok((await readAll(await objects.get(inS3.url))).equals(a));

    const fromS3 = await createImage(s);
    const b = pattern(MiB + 3, 7);
    assert.equal((await put(s, fromS3.id, b)).status, 204);
    assert.equal((await importImage(s, fromS3.id, { method: { name: 'copy-image' }, stores: ['local'] })).status, 202);
    await waitImage(s, fromS3.id, (i) => i.stores === 'local,objects' && !('os_glance_import_task' in i));
    const onDisk = (await getImageLocations(fromS3.id)).find((l) => l.storeId === 'local')!;
    assert.ok(readFileSync(fileURLToPath(onDisk.url)).equals(b));
    assert.equal((await getImage(s, fromS3.id)).os_hash_value, sha512(b));
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  });

  async function getImageLocations(id: string): Promise<{ storeId: string; url: string }[]> {
    const image = await s.rt.images.get(id);
    return image!.locations.map((l) => ({ storeId: l.storeId, url: l.url }));
  }
});

async function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
