import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import type { S3StoreSettings } from '../../src/config.js';
import { ObjectNotFound, StoreFull, StoreUnavailable } from '../../src/stores/errors.js';
import { S3Store, StoreStartError } from '../../src/stores/s3.js';
import { guard } from '../../src/stores/guarded-store.js';
import type { Store } from '../../src/stores/store.js';
import { S3_MAX_OBJECT_SIZE, planParts } from '../../src/stores/s3-parts.js';
import { startSwift, swiftSkipReason, type Swift } from '../support/swift.js';
import { pattern } from '../support/bytes.js';
import { storeConformance, type StoreHarness } from './conformance.js';

const MiB = 1024 * 1024;
const skip = swiftSkipReason();

/** Small parts (the harness lets Swift take 1 MiB parts), so that every conformance test of a few MiB runs the multipart path and fills the queue. */
const SMALL_PARTS: Partial<S3StoreSettings> = { partSizeMiB: 1, minPartSizeMiB: 1, queueSize: 4, maxAttempts: 2, connectTimeoutMs: 1000 };

let swift: Swift | undefined;
before(async () => {
  if (!skip) swift = await startSwift();
});
after(async () => {
  await swift?.stop();
});

/** An S3 driver behind the wrapper every store sits behind, as the registry builds it. */
function makeStore(bucket: string, extra: Partial<S3StoreSettings> = {}, opts: { id?: string; readOnly?: boolean } = {}): Store & { client: S3Client } {
  const settings = { ...swift!.s3Config(bucket), ...SMALL_PARTS, ...extra } as S3StoreSettings;
  const driver = new S3Store({ id: opts.id ?? 's3', description: 'test', readOnly: opts.readOnly ?? false }, settings);
  return Object.assign(guard(driver), { client: driver.client });
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out.sort();
}

if (skip) {
  test('S3 store on Swift', (t) => t.skip(skip));
} else {
  storeConformance('S3Store on Swift s3api', async (): Promise<StoreHarness> => {
    const bucket = await swift!.createBucket();
    const store = makeStore(bucket, { prefix: 'imago/' });
    const readOnly = makeStore(bucket, { prefix: 'imago/' }, { readOnly: true });
    // Swift checks a container quota against the request's length and the
    // container's usage, which its proxy caches: a quota below one part
    // makes the refusal immediate and certain.
    const capacity = 512 * 1024;
    const smallBucket = await swift!.createBucket({ quotaBytes: capacity });
    const small = makeStore(smallBucket, { prefix: 'imago/' }, { id: 'small' });
    const sibling = makeStore(bucket, { prefix: 'staging/' }, { id: 'staging' });
    return {
      store,
      readOnly,
      sibling,
      small: { store: small, capacity },
      allObjects: () => swift!.bucketContents(bucket),
      plantTemporary: async (key) => {
        const Key = `imago/${key}`;
        const { UploadId } = await store.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
        await store.client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(1000, 1), ContentLength: 1000 }));
      },
      breakBackend: async () => {
        await swift!.stopProxy();
        return () => swift!.startProxy();
      },
      cleanup: async () => {
        await Promise.all([store.close(), readOnly.close(), small.close(), sibling.close()]);
      },
    };
  });

  describe('S3Store specifics', () => {
    test('locations are s3://bucket/prefix+key; stores with other prefixes on the same bucket neither see nor reach them', async () => {
      const bucket = await swift!.createBucket();
      const a = makeStore(bucket, { prefix: 'a/' });
      const b = makeStore(bucket, { prefix: 'b/' });
      try {
        const r = await a.put('img-1', Readable.from([Buffer.alloc(100, 1)]));
        assert.equal(r.location, `s3://${bucket}/a/img-1`);
        assert.deepEqual(await collect(a.list()), [r.location]);
        assert.deepEqual(await collect(b.list()), []);
        await assert.rejects(b.get(r.location), (e) => e instanceof ObjectNotFound);
        assert.equal(await b.exists(r.location), false);
        assert.deepEqual(await swift!.containerObjects(bucket), ['a/img-1']);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test('image data is signed UNSIGNED-PAYLOAD with no checksum headers and no aws-chunked encoding', async () => {
      const bucket = await swift!.createBucket();
      const store = makeStore(bucket);
      const seen: { command: string; headers: Record<string, string> }[] = [];
      store.client.middlewareStack.add(
        (next, context) => async (args) => {
          seen.push({ command: context.commandName ?? '', headers: { ...(args.request as { headers: Record<string, string> }).headers } });
          return next(args);
        },
        { step: 'deserialize', name: 'testRecorder' },
      );
      try {
        await store.put('small', Readable.from([Buffer.alloc(1000, 1)]));
        await store.put('multi', Readable.from([Buffer.alloc(3 * MiB + 7, 2)]));
        const data = seen.filter((s) => s.command === 'PutObjectCommand' || s.command === 'UploadPartCommand');
        assert.equal(data.filter((s) => s.command === 'UploadPartCommand').length, 4, '3 MiB + 7 in 1 MiB parts');
        for (const { command, headers } of data) {
          assert.equal(headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD', command);
          assert.ok(!Object.keys(headers).some((h) => h.toLowerCase().startsWith('x-amz-checksum') || h.toLowerCase() === 'x-amz-sdk-checksum-algorithm'), `${command}: ${Object.keys(headers)}`);
          assert.notEqual(headers['content-encoding'], 'aws-chunked', command);
        }
      } finally {
        await store.close();
      }
    });

    test('an upload of unknown length keeps at most queueSize parts in flight and reads at most queueSize + 1 parts ahead', async () => {
      const bucket = await swift!.createBucket();
      const store = makeStore(bucket, { queueSize: 2 });
      let inFlight = 0;
      let maxInFlight = 0;
      let acknowledged = 0;
      store.client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName !== 'UploadPartCommand') return next(args);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            const out = await next(args);
            acknowledged += Number((args.request as { headers: Record<string, string> }).headers['content-length']);
            return out;
          } finally {
            inFlight--;
          }
        },
        { step: 'deserialize', name: 'testCounter' },
      );
      const TOTAL = 40;
      let pulled = 0;
      let maxAhead = 0;
      const expected = createHash('sha256');
      let i = 0;
      const source = new Readable({
        highWaterMark: 64 * 1024,
        read() {
          if (i === TOTAL) return void this.push(null);
          const b = Buffer.alloc(MiB / 2, i++ & 0xff);
          expected.update(b);
          pulled += b.length;
          maxAhead = Math.max(maxAhead, pulled - acknowledged);
          this.push(b);
        },
      });
      try {
        const { location, size } = await store.put('bounded', source);
        assert.equal(size, TOTAL * (MiB / 2));
        const got = createHash('sha256');
        for await (const c of await store.get(location)) got.update(c as Buffer);
        assert.equal(got.digest('hex'), expected.digest('hex'));
        assert.equal(maxInFlight, 2, 'the queue was used and never exceeded');
        // queueSize parts in flight + one full part waiting for a slot, plus the
        // chunk in hand and the one the source stream buffers
        assert.ok(maxAhead <= 3 * MiB + 2 * (MiB / 2), `read ${maxAhead} bytes ahead of what S3 acknowledged`);
      } finally {
        await store.close();
      }
    });

    test('what an upload has read and sent is garbage: memory stays at the parts in flight, however long the stream', async () => {
      v8.setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const bucket = await swift!.createBucket();
      const store = makeStore(bucket, { queueSize: 2 });
      const controller = new AbortController();
      gc();
      const baseline = process.memoryUsage().arrayBuffers;
      let peak = 0;
      let sent = 0;
      const TOTAL = 48 * MiB;
      const source = new Readable({
        read() {
          if (sent === TOTAL) return void this.push(null);
          if (sent % (4 * MiB) === 0) {
            gc();
            peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
          }
          sent += 64 * 1024;
          this.push(Buffer.alloc(64 * 1024, 5));
        },
      });
      try {
        const { size } = await store.put('long', source, { signal: controller.signal });
        assert.equal(size, TOTAL);
        // (queueSize + 1) parts of 1 MiB, a few source chunks, the SDK's own buffers
        assert.ok(peak < 8 * MiB, `${(peak / MiB).toFixed(1)} MiB of buffers alive during a ${TOTAL / MiB} MiB upload`);
      } finally {
        await store.close();
      }
    });

    test('adopt across buckets copies server-side: CopyObject, or UploadPartCopy above maxCopyObjectMiB; the source is gone', async () => {
      const stagingBucket = await swift!.createBucket();
      const imagesBucket = await swift!.createBucket();
      const staging = makeStore(stagingBucket, {}, { id: 'staging' });
      const whole = makeStore(imagesBucket, { prefix: 'a/' });
      const inParts = makeStore(imagesBucket, { prefix: 'b/', maxCopyObjectMiB: 1 });
      const commands: string[] = [];
      inParts.client.middlewareStack.add((next, context) => (args) => (commands.push(context.commandName ?? ''), next(args)), { step: 'initialize', name: 'testCommands' });
      try {
        assert.equal(whole.canAdopt(staging), true);
        const other = guard(new S3Store({ id: 'elsewhere', description: '', readOnly: false }, { ...swift!.s3Config(stagingBucket), endpoint: 'http://127.0.0.2:1' } as S3StoreSettings));
        assert.equal(whole.canAdopt(other), false, 'another endpoint is another service');
        await other.close();

        const data = pattern(3 * MiB + 11);
        const first = await staging.put('img', Readable.from([data]));
        const a = await whole.adopt(staging, first.location, 'img');
        assert.equal(a.size, data.length);
        assert.ok((await readAll(await whole.get(a.location))).equals(data));
        assert.equal(await staging.exists(first.location), false);

        const second = await staging.put('img2', Readable.from([data]));
        const b = await inParts.adopt(staging, second.location, 'img2');
        assert.ok((await readAll(await inParts.get(b.location))).equals(data));
        assert.equal(commands.filter((c) => c === 'UploadPartCopyCommand').length, 4, 'copied in four 1 MiB ranges');
        assert.ok(!commands.includes('UploadPartCommand') && !commands.includes('PutObjectCommand'), 'no byte went through Imago');
        assert.deepEqual(await swift!.bucketContents(stagingBucket), []);
      } finally {
        await Promise.all([staging.close(), whole.close(), inParts.close()]);
      }
    });

    test('an image that needs more than maxParts parts is refused as StoreFull and leaves nothing', async () => {
      const bucket = await swift!.createBucket();
      const store = makeStore(bucket, { maxParts: 3 });
      try {
        // 1 + 2 + 4 MiB: the plan doubles every part, and 8 MiB does not fit
        await assert.rejects(store.put('huge', Readable.from(Array.from({ length: 8 }, () => Buffer.alloc(MiB, 3)))), (e) => e instanceof StoreFull);
        assert.deepEqual(await swift!.bucketContents(bucket), []);
        const uploads = await store.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        assert.deepEqual(uploads.Uploads ?? [], []);
      } finally {
        await store.close();
      }
    });

    test('open(): a missing bucket and refused credentials stop the start with the store named; createBucket creates it; unreachable is StoreUnavailable', async () => {
      const missing = new S3Store({ id: 'objects', description: '', readOnly: false }, swift!.s3Config('no-such-bucket') as S3StoreSettings);
      await assert.rejects(missing.open(), (e: Error) => e instanceof StoreStartError && /store "objects"/.test(e.message) && /no-such-bucket/.test(e.message) && /does not exist/.test(e.message));
      await missing.close();

      const bucket = await swift!.createBucket();
      const wrong = new S3Store({ id: 'objects', description: '', readOnly: false }, swift!.s3Config(bucket, { secretAccessKey: 'not-the-key' }) as S3StoreSettings);
      await assert.rejects(wrong.open(), (e: Error) => e instanceof StoreStartError && /store "objects"/.test(e.message) && /access refused/.test(e.message) && !e.message.includes('not-the-key'));
      await wrong.close();

      const name = `created-${Date.now()}`;
      const creating = new S3Store({ id: 'objects', description: '', readOnly: false }, { ...swift!.s3Config(name), createBucket: true } as S3StoreSettings);
      await creating.open();
      assert.equal((await swift!.swiftApi('HEAD', `/${name}`)).status, 204);
      await creating.open();
      await creating.close();

      const down = new S3Store({ id: 'objects', description: '', readOnly: false }, { ...swift!.s3Config(bucket, { endpoint: 'http://127.0.0.1:9' }), maxAttempts: 1, connectTimeoutMs: 1000 } as S3StoreSettings);
      await assert.rejects(down.open(), (e: Error) => e instanceof StoreUnavailable && /Store "objects"/.test(e.message));
      await down.close();
    });
  });
}

describe('S3 part planning', () => {
  const defaults = { partSize: 8 * MiB, minPartSize: 5 * MiB, maxParts: 10_000 };

  test('unknown length: parts start at partSize, and 5 TiB fits within maxParts', () => {
    const plan = planParts(defaults);
    assert.equal(plan.sizeOf(1), 8 * MiB);
    assert.ok(plan.capacity() >= S3_MAX_OBJECT_SIZE);
    assert.ok(plan.group >= 1000, `parts stay 8 MiB for the first ${plan.group} parts`);
    assert.ok(plan.sizeOf(10_000) <= 5 * 1024 * MiB);
  });

  test('known size: one part size for the whole image, large enough for 5 TiB in 10,000 parts', () => {
    const small = planParts(defaults, 100 * MiB);
    assert.equal(small.sizeOf(1), 8 * MiB);
    assert.equal(small.sizeOf(13), 8 * MiB);
    const huge = planParts(defaults, S3_MAX_OBJECT_SIZE);
    const partsNeeded = Math.ceil(S3_MAX_OBJECT_SIZE / huge.sizeOf(1));
    assert.ok(partsNeeded <= 10_000);
    assert.equal(huge.sizeOf(partsNeeded), huge.sizeOf(1));
    assert.equal(huge.sizeOf(1) % MiB, 0);
  });

  test('the part size never goes below the service minimum', () => {
    assert.equal(planParts({ ...defaults, partSize: MiB }).sizeOf(1), 5 * MiB);
  });
});
