import { createReadStream } from 'node:fs';
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { startSwift, type Swift } from '../test/support/swift.js';
import type { DataFile } from './files.js';
import type { ByteRange } from './curl-ranges.js';
import type { Recorder } from './scenario.js';
import { MiB, mibPerSec, now, round } from './stats.js';
import { CpuMeter } from './cpu.js';
import { S3Store } from '../src/stores/s3.js';
import type { Recycling } from '../src/stores/file-range-reader.js';
import type { S3StoreSettings } from '../src/config.js';

/** Part size and parts in flight of the bench's S3 store: the server's defaults (docs/stores.md). */
export const S3_PART_MIB = 8;
export const S3_QUEUE = 4;
/** Ranged GetObjects in the S3 references: enough for a rate; Swift here serves tens to a few hundred a second. */
export const S3_REFERENCE_RANGES = 200;

/**
 * `--store s3`: a Swift all-in-one with s3api (the test harness's, test/support/swift.ts) and one
 * bucket, the store configuration that points the local server at it, and a client of the same SDK
 * with the same settings for the references.
 */
export interface BenchS3 {
  swift: Swift;
  bucket: string;
  client: S3Client;
  /** merged into the local server's configuration */
  serverConfig: Record<string, unknown>;
  stop(): Promise<void>;
}

export async function startBenchS3(): Promise<BenchS3> {
  const swift = await startSwift();
  const bucket = await swift.createBucket();
  const settings = swift.s3Config(bucket);
  const client = new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    swift,
    bucket,
    client,
    serverConfig: {
      stores: [{ id: 'objects', type: 's3', description: 'Swift s3api (bench)', s3: { ...settings, prefix: 'bench/', partSizeMiB: S3_PART_MIB, queueSize: S3_QUEUE } }],
      defaultStore: 'objects',
    },
    stop: async () => {
      client.destroy();
      await swift.stop();
    },
  };
}

/**
 * The SDK alone: a multipart upload of the file with the server's part size and parts in flight,
 * each part read from the file (page cache) as a stream, no checksums — what a node could reach
 * if Imago added nothing. Returns MiB/s.
 */
async function sdkUpload(s3: BenchS3, file: DataFile, key: string): Promise<number> {
  const part = S3_PART_MIB * MiB;
  const t0 = now();
  const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
  try {
    const parts: { PartNumber: number; ETag?: string }[] = [];
    let next = 0;
    const count = Math.ceil(file.size / part);
    const lane = async () => {
      while (next < count) {
        const n = next++;
        const start = n * part;
        const end = Math.min(file.size, start + part) - 1;
        const res = await s3.client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: n + 1, ContentLength: end - start + 1, Body: createReadStream(file.path, { start, end, highWaterMark: MiB }) }));
        parts[n] = { PartNumber: n + 1, ETag: res.ETag };
      }
    };
    await Promise.all(Array.from({ length: S3_QUEUE }, lane));
    await s3.client.send(new CompleteMultipartUploadCommand({ Bucket: s3.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
  } catch (err) {
    await s3.client.send(new AbortMultipartUploadCommand({ Bucket: s3.bucket, Key: key, UploadId })).catch(() => undefined);
    throw err;
  }
  return mibPerSec(file.size, (now() - t0) / 1000);
}

/** A plain GetObject stream read to the end: the most a download through a node could reach. Returns MiB/s and the bytes read. */
async function sdkDownload(s3: BenchS3, key: string): Promise<{ mibs: number; bytes: number }> {
  const t0 = now();
  const res = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  let bytes = 0;
  for await (const chunk of res.Body as AsyncIterable<Buffer>) bytes += chunk.length;
  return { mibs: mibPerSec(bytes, (now() - t0) / 1000), bytes };
}

/**
 * Ranged GetObjects one after the other on one kept-alive connection, each read to the end and its
 * length checked: what the ranged reads scenario could reach if Imago added nothing. Ranges per second.
 */
async function sdkRanges(s3: BenchS3, key: string, ranges: ByteRange[]): Promise<{ perSec: number; wrong: number }> {
  let wrong = 0;
  const t0 = now();
  for (const { start, end } of ranges) {
    const res = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key, Range: `bytes=${start}-${end}` }));
    let bytes = 0;
    for await (const chunk of res.Body as AsyncIterable<Buffer>) bytes += chunk.length;
    if (bytes !== end - start + 1) wrong++;
  }
  return { perSec: round(ranges.length / ((now() - t0) / 1000), 0), wrong };
}

/**
 * Imago's S3 store driver alone (src/stores/s3.ts, in this process): put() of the file read in 64 KiB
 * chunks, as a socket delivers an upload, then get() read to the end, each chunk recycled as the HTTP
 * layer does. Next to the SDK alone, this is what the driver adds; next to the server's figures, what
 * the rest of Imago (HTTP, hashing, the database) adds.
 */
async function storeAlone(s3: BenchS3, file: DataFile, key: string): Promise<{ putMiBps: number; getMiBps: number; putCpu: number; getCpu: number; bytes: number }> {
  const settings = (s3.serverConfig.stores as { s3: S3StoreSettings }[])[0].s3;
  const store = new S3Store({ id: 'bench-reference', description: '', readOnly: false }, settings);
  try {
    const cpu = process.cpuUsage();
    const t0 = now();
    const put = await store.put(key, createReadStream(file.path, { highWaterMark: 64 * 1024 }), { expectedSize: file.size });
    const putSeconds = (now() - t0) / 1000;
    const putCpu = process.cpuUsage(cpu);
    const t1 = now();
    const body = (await store.get(put.location)) as AsyncIterable<Buffer> & Partial<Recycling>;
    let bytes = 0;
    for await (const chunk of body) {
      bytes += chunk.length;
      body.recycle?.(chunk);
    }
    const getSeconds = (now() - t1) / 1000;
    const getCpu = process.cpuUsage(cpu);
    await store.delete(put.location);
    const sec = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
    return { putMiBps: mibPerSec(file.size, putSeconds), getMiBps: mibPerSec(bytes, getSeconds), putCpu: sec(putCpu), getCpu: sec(getCpu) - sec(putCpu), bytes };
  } finally {
    await store.close();
  }
}

/** The S3 references, best of `repeats`, on the file the single upload and download scenarios move. */
export async function measureS3References(r: Recorder, s3: BenchS3, file: DataFile, repeats: number, ranges: ByteRange[] = []): Promise<{ sdkPut: number; sdkGet: number; sdkRanges?: number }> {
  const key = `reference/${file.size}`;
  const puts: number[] = [];
  const gets: number[] = [];
  const cpu = new CpuMeter(process.pid);
  for (let i = 0; i < repeats; i++) {
    cpu.start();
    puts.push(await sdkUpload(s3, file, key));
    cpu.stop();
    const got = await sdkDownload(s3, key);
    r.equal(`GetObject ${i + 1} bytes`, got.bytes, file.size);
    gets.push(got.mibs);
  }
  const getCpu = new CpuMeter(process.pid);
  getCpu.start();
  const oneGet = await sdkDownload(s3, key);
  getCpu.stop();
  r.equal('GetObject (CPU run) bytes', oneGet.bytes, file.size);
  const getPer = getCpu.per(file.size / (1024 * MiB));
  if (getPer) r.metric('sdkGetCpuSecondsPerGiB', round(getPer.process, 2));
  const alone = await storeAlone(s3, file, `reference-${file.size}-store`);
  r.equal('store get() bytes', alone.bytes, file.size);
  const gib = file.size / (1024 * MiB);
  r.metric('storePutMiBps', alone.putMiBps);
  r.metric('storePutCpuSecondsPerGiB', round(alone.putCpu / gib, 2));
  r.metric('storeGetMiBps', alone.getMiBps);
  r.metric('storeGetCpuSecondsPerGiB', round(alone.getCpu / gib, 2));
  let rangesPerSec: number | undefined;
  if (ranges.length) {
    const got = await sdkRanges(s3, key, ranges);
    r.equal('ranged GetObjects of the wrong length', got.wrong, 0);
    rangesPerSec = got.perSec;
    r.metric('sdkRangesPerSec', got.perSec);
  }
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
  const sdkPut = Math.max(...puts);
  const sdkGet = Math.max(...gets);
  r.figure(sdkPut, 'MiB/s SDK upload');
  r.metric('sdkPutMiBps', sdkPut);
  r.metric('sdkGetMiBps', sdkGet);
  r.metric('runs', `put ${puts.map((x) => round(x)).join(', ')}; get ${gets.map((x) => round(x)).join(', ')}`);
  const per = cpu.per((file.size * repeats) / (1024 * MiB));
  if (per) r.metric('sdkPutCpuSecondsPerGiB', round(per.process, 2));
  return { sdkPut, sdkGet, sdkRanges: rangesPerSec };
}
