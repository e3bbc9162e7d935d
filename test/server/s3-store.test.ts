import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { createImage, makeDataDir, startTestServer, writeTokens, type TestServer } from '../support/server.js';
import { startSwift, swiftSkipReason, type Swift } from '../support/swift.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { ManualUpload, assertErrorBody, imageOf, md5, put, sha512 } from './image-data-helpers.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;
const skip = swiftSkipReason();

/**
 * An Imago whose default store is S3 on a real Swift (s3api): the image data
 * path end to end over HTTP, and what S3 failing does to it.
 */
describe('an Imago with an s3 store (Swift s3api)', { skip }, () => {
  let swift: Swift;
  let bucket: string;
  let s: TestServer;
  let s3: S3Client;

  before(async () => {
    swift = await startSwift();
    bucket = await swift.createBucket();
    s3 = new S3Client({
      endpoint: swift.endpoint,
      region: swift.region,
      forcePathStyle: true,
      credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
    });
    s = await startTestServer({
      config: {
        stores: [
          {
            id: 'objects',
            type: 's3',
            description: 'Swift s3api',
            // 1 MiB parts (the harness lets Swift take them) so a few MiB run the multipart path
            s3: { ...swift.s3Config(bucket), prefix: 'imago/', partSizeMiB: 1, minPartSizeMiB: 1, queueSize: 2, maxAttempts: 2, connectTimeoutMs: 1000 },
          },
        ],
        defaultStore: 'objects',
      },
    });
  });

  after(async () => {
    await s?.close();
    s3?.destroy();
    await swift?.stop();
  });

  async function multipartUploads(): Promise<string[]> {
    const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return (r.Uploads ?? []).map((u) => `${u.Key}/${u.UploadId}`);
  }

  test('upload with Content-Length, download whole and by Range, delete: the object comes and goes with the image', async () => {
    const data = pattern(3 * MiB + 123, 7);
    const image = await createImage(s);
    const up = await put(s, image.id, data);
    assert.equal(up.status, 204, up.body.toString());
    const shown = await imageOf(s, image.id);
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, data.length);
    assert.equal(shown.checksum, md5(data));
    assert.equal(shown.os_hash_value, sha512(data));
    assert.equal(shown.stores, 'objects');
    assert.deepEqual(await swift.containerObjects(bucket), [`imago/${image.id}`]);

    const whole = await s.req('GET', `/v2/images/${image.id}/file`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-md5'), md5(data));
    assert.equal(whole.headers.get('content-length'), String(data.length));
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(data));

    const start = MiB - 10;
    const end = 2 * MiB + 10;
    const ranged = await s.req('GET', `/v2/images/${image.id}/file`, { headers: { range: `bytes=${start}-${end}` } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes ${start}-${end}/${data.length}`);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(start, end + 1)));

    const del = await s.req('DELETE', `/v2/images/${image.id}`);
    assert.equal(del.status, 204);
    assert.deepEqual(await swift.bucketContents(bucket), [], 'the object and its parts are gone from the bucket');
  });

  test('a chunked upload (no Content-Length) streams in parts and lands whole', async () => {
    const data = pattern(5 * MiB + 1, 9);
    const image = await createImage(s);
    const up = await put(s, image.id, data, { chunked: true, piece: 100_000 });
    assert.equal(up.status, 204, up.body.toString());
    const shown = await imageOf(s, image.id);
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, data.length);
    assert.equal(shown.os_hash_value, sha512(data));
    const got = await s.req('GET', `/v2/images/${image.id}/file`);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(data));
    assert.deepEqual(await multipartUploads(), []);
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
    assert.equal((await s.req('DELETE', `/v2/images/${image.id}`)).status, 204);
  });

  test('S3 going down during an upload: 503 naming the store, the image is queued again, no multipart upload is left once S3 is back', async () => {
    const image = await createImage(s);
    const up = new ManualUpload(s.url, image.id);
    const piece = pattern(256 * 1024, 3);
    // enough for parts to be in S3 already
    for (let i = 0; i < 12; i++) await up.write(piece);
    await waitFor('a multipart upload in progress', async () => (await multipartUploads()).length > 0);
    await swift.stopProxy();
    try {
      // keep sending until the server answers (it may answer before the body ends)
      let answered = false;
      const answer = up.response.then(() => void (answered = true), () => void (answered = true));
      for (let i = 0; i < 40 && !answered && !up.req.destroyed; i++) await Promise.race([up.write(piece), answer]);
      const res = await up.end();
      const err = assertErrorBody(res, 503);
      assert.match(err.message, /"objects"/);
      assert.equal((await imageOf(s, image.id)).status, 'queued');
    } finally {
      await swift.startProxy();
    }
    // s3api aborts by removing the upload's marker, then its parts
    await waitFor('the failed upload to be aborted in S3', async () => (await multipartUploads()).length === 0 && (await swift.bucketContents(bucket)).length === 0, 30_000);

    // and the store works again: the same image takes its data
    const data = pattern(2 * MiB, 4);
    assert.equal((await put(s, image.id, data)).status, 204);
    assert.equal((await imageOf(s, image.id)).status, 'active');
    assert.equal((await s.req('DELETE', `/v2/images/${image.id}`)).status, 204);
  });

  test('S3 unreachable at start: the server starts anyway and answers 503 naming the store until S3 is back', async () => {
    const down = await startTestServer({
      config: {
        stores: [{ id: 'far', type: 's3', s3: { ...swift.s3Config(bucket, { endpoint: 'http://127.0.0.1:9' }), maxAttempts: 1, connectTimeoutMs: 500 } }],
        defaultStore: 'far',
      },
    });
    try {
      const image = await createImage(down);
      const res = await put(down, image.id, pattern(1000));
      assert.match(assertErrorBody(res, 503).message, /"far"/);
      assert.equal((await imageOf(down, image.id)).status, 'queued');
    } finally {
      await down.close();
    }
  });

  test('the server refuses to start on a missing bucket or refused credentials, naming the store and the problem', () => {
    const cases = [
      { s3: swift.s3Config('no-such-bucket'), expect: /store "objects".*no-such-bucket.*does not exist/ },
      { s3: swift.s3Config(bucket, { secretAccessKey: 'wrong-secret' }), expect: /store "objects".*access refused/ },
    ];
    for (const c of cases) {
      const dataDir = makeDataDir();
      try {
        writeTokens(dataDir);
        const file = path.join(dataDir, 'config.json');
        writeFileSync(file, JSON.stringify({ port: 0, stores: [{ id: 'objects', type: 's3', s3: c.s3 }], defaultStore: 'objects' }));
        const run = spawnSync(process.execPath, [path.resolve('dist/src/main.js')], {
          env: { ...process.env, IMAGO_CONFIG: file, IMAGO_DATA_DIR: dataDir, IMAGO_DATABASE_URL: '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.equal(run.status, 2, `exit status; stderr: ${run.stderr}`);
        assert.match(run.stderr, c.expect);
        assert.ok(!run.stderr.includes('wrong-secret'), 'the secret is not printed');
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  });
});
