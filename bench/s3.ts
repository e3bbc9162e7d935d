import { createReadStream } from 'node:fs';
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { startSwift, type Swift } from '../test/support/swift.js';
import type { DataFile } from './files.js';
import type { Recorder } from './scenario.js';
import { MiB, mibPerSec, now, round } from './stats.js';
import { CpuMeter } from './cpu.js';

/** Part size and parts in flight of the bench's S3 store: the server's defaults (docs/stores.md). */
export const S3_PART_MIB = 8;
export const S3_QUEUE = 4;

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

/** The S3 references, best of `repeats`, on the file the single upload and download scenarios move. */
export async function measureS3References(r: Recorder, s3: BenchS3, file: DataFile, repeats: number): Promise<{ sdkPut: number; sdkGet: number }> {
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
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
  const sdkPut = Math.max(...puts);
  const sdkGet = Math.max(...gets);
  r.figure(sdkPut, 'MiB/s SDK upload');
  r.metric('sdkPutMiBps', sdkPut);
  r.metric('sdkGetMiBps', sdkGet);
  r.metric('runs', `put ${puts.map((x) => round(x)).join(', ')}; get ${gets.map((x) => round(x)).join(', ')}`);
  const per = cpu.per((file.size * repeats) / (1024 * MiB));
  if (per) r.metric('sdkPutCpuSecondsPerGiB', round(per.process, 2));
  return { sdkPut, sdkGet };
}
