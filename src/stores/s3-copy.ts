import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { s3Error } from './s3-client.js';
import { S3_MAX_PART_SIZE, type PartSizing } from './s3-parts.js';

export interface CopyTarget {
  client: S3Client;
  storeId: string;
  bucket: string;
  key: string;
  sizing: PartSizing;
  /** part copies in flight at once */
  queueSize: number;
  /** the largest object one CopyObject may copy (S3: 5 GiB) */
  maxSingleCopy: number;
}

function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * Copies an object within the S3 service, server-side: CopyObject up to
 * 5 GiB, UploadPartCopy of byte ranges above (parts sized so the object fits
 * in maxParts). A failed multipart copy is aborted, leaving nothing.
 */
export async function copyObject(t: CopyTarget, source: { bucket: string; key: string }, size: number): Promise<void> {
  const CopySource = copySource(source.bucket, source.key);
  if (size <= t.maxSingleCopy) {
    try {
      await t.client.send(new CopyObjectCommand({ Bucket: t.bucket, Key: t.key, CopySource }));
      return;
    } catch (err) {
      throw s3Error(t.storeId, t.bucket, 'CopyObject', err);
    }
  }
  const partSize = Math.min(S3_MAX_PART_SIZE, Math.max(t.sizing.partSize, t.sizing.minPartSize, Math.ceil(size / t.sizing.maxParts)));
  let uploadId: string | undefined;
  try {
    uploadId = (await t.client.send(new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: t.key }))).UploadId;
    const ranges: { n: number; start: number; end: number }[] = [];
    for (let start = 0, n = 1; start < size; start += partSize, n++) ranges.push({ n, start, end: Math.min(size, start + partSize) - 1 });
    const parts: CompletedPart[] = [];
    let next = 0;
    const worker = async () => {
      while (next < ranges.length) {
        const r = ranges[next++];
        const out = await t.client.send(
          new UploadPartCopyCommand({ Bucket: t.bucket, Key: t.key, UploadId: uploadId, PartNumber: r.n, CopySource, CopySourceRange: `bytes=${r.start}-${r.end}` }),
        );
        parts.push({ PartNumber: r.n, ETag: out.CopyPartResult?.ETag });
      }
    };
    await Promise.all(Array.from({ length: Math.min(t.queueSize, ranges.length) }, worker));
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await t.client.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
  } catch (err) {
    if (uploadId) await t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId: uploadId })).catch(() => {});
    throw s3Error(t.storeId, t.bucket, 'UploadPartCopy', err);
  }
}
