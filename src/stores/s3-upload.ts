import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { StoreFull } from './errors.js';
import type { PartPlan } from './s3-parts.js';
import { isNotFound, s3Error } from './s3-client.js';

/** How long a failed or aborted upload lets its part requests finish before cutting them (so no part lands after the abort). */
const ABORT_GRACE_MS = 5000;

export interface UploadTarget {
  client: S3Client;
  storeId: string;
  bucket: string;
  /** the full object key */
  key: string;
  plan: PartPlan;
  /** part requests in flight at once */
  queueSize: number;
  /** called with an upload whose abort failed (S3 unreachable), so that it can be retried later */
  onAbandoned?(uploadId: string): void;
}

/**
 * Streams `source` into one S3 object and returns its size.
 *
 * Bytes are copied into part buffers; a full part is sent while the next one
 * fills, with at most `queueSize` part requests in flight. When they are all
 * busy the source is not read, so backpressure reaches the socket and memory
 * stays at most `queueSize + 1` parts, whatever the object's size. A source
 * that ends within the first part becomes one PutObject; anything larger a
 * multipart upload, visible under its key only once completed. On any failure
 * or abort the multipart upload is aborted (after its part requests
 * finished), so nothing is left behind, and the source is destroyed. Once
 * the source has ended, the upload commits: a late abort is ignored, as a
 * file store's rename would be.
 */
export async function uploadStream(target: UploadTarget, source: Readable, signal?: AbortSignal): Promise<number> {
  return new StreamingUpload(target).run(source, signal);
}

/**
 * The source's next chunk, or the abort's reason as soon as the signal fires
 * (a destroyed source may never settle its pending read). The listener lives
 * for one read only: racing every read against one long-lived promise would
 * keep every chunk ever read reachable from it.
 */
function nextOrAbort<T>(it: AsyncIterator<T>, signal?: AbortSignal): Promise<IteratorResult<T>> {
  if (!signal) return it.next();
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

class StreamingUpload {
  private uploadId: string | undefined;
  private creating: Promise<string> | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly inflight = new Set<Promise<void>>();
  /** the first S3 failure, already typed; the upload stops at the next step */
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly partRequests = new AbortController();
  private spare: Buffer[] = [];

  constructor(private readonly t: UploadTarget) {}

  async run(source: Readable, signal?: AbortSignal): Promise<number> {
    const onAbort = () => {
      if (!source.destroyed) source.destroy();
      this.wake?.();
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer | Uint8Array | string>;
      let n = 1;
      let buf = this.take(this.t.plan.sizeOf(1));
      let filled = 0;
      let total = 0;
      for (;;) {
        const { value, done } = await nextOrAbort(chunks, signal);
        if (done) break;
        const chunk = typeof value === 'string' ? Buffer.from(value) : value;
        for (let off = 0; off < chunk.length; ) {
          if (filled === buf.length) {
            await this.sendPart(n, buf, signal);
            n++;
            buf = this.take(this.t.plan.sizeOf(n));
            filled = 0;
          }
          const len = Math.min(buf.length - filled, chunk.length - off);
          buf.set(chunk.subarray(off, off + len), filled);
          filled += len;
          off += len;
          total += len;
        }
        if (this.failure) throw this.failure;
      }
      if (this.uploadId === undefined) {
        await this.putWhole(buf.subarray(0, filled));
      } else {
        await this.sendPart(n, buf.subarray(0, filled), signal);
        await this.complete();
      }
      return total;
    } catch (err) {
      if (!source.destroyed) source.destroy();
      await this.cleanup();
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private take(size: number): Buffer {
    const spare = this.spare.pop();
    if (spare && spare.length === size) return spare;
    this.spare = [];
    return Buffer.allocUnsafeSlow(size);
  }

  private recycle(buf: Buffer, size: number): void {
    if (buf.length === size && this.spare.length < this.t.queueSize) this.spare.push(buf);
  }

  private fail(op: string, err: unknown): Error {
    this.failure ??= s3Error(this.t.storeId, this.t.bucket, op, err);
    return this.failure;
  }

  private async putWhole(data: Buffer): Promise<void> {
    const { client, bucket, key } = this.t;
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ContentLength: data.length }));
    } catch (err) {
      throw this.fail('PutObject', err);
    }
  }

  private async start(): Promise<string> {
    const { client, bucket, key } = this.t;
    this.creating ??= client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key })).then((r) => {
      if (!r.UploadId) throw new Error('CreateMultipartUpload answered without an UploadId');
      return r.UploadId;
    });
    try {
      this.uploadId = await this.creating;
      return this.uploadId;
    } catch (err) {
      throw this.fail('CreateMultipartUpload', err);
    }
  }

  /** Waits until fewer than `queueSize` parts are in flight (or for all of them, with `limit` 0). */
  private async until(limit: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (signal?.aborted) throw signal.reason;
      if (this.inflight.size <= limit) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private async sendPart(n: number, data: Buffer, signal?: AbortSignal): Promise<void> {
    if (n > this.t.plan.maxParts) {
      throw new StoreFull(this.t.storeId, `the image needs more than ${this.t.plan.maxParts} parts of up to ${this.t.plan.sizeOf(n)} bytes`);
    }
    const uploadId = await this.start();
    await this.until(this.t.queueSize - 1, signal);
    const { client, bucket, key } = this.t;
    const request = client
      .send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: data, ContentLength: data.length }), {
        abortSignal: this.partRequests.signal,
      })
      .then((r) => {
        if (!r.ETag) throw new Error(`UploadPart ${n} answered without an ETag`);
        this.parts.push({ PartNumber: n, ETag: r.ETag });
      })
      .catch((err) => void this.fail(`UploadPart ${n}`, err))
      .finally(() => {
        this.inflight.delete(request);
        this.recycle(data, this.t.plan.sizeOf(n + 1));
        this.wake?.();
      });
    this.inflight.add(request);
  }

  private async complete(): Promise<void> {
    await this.until(0);
    const { client, bucket, key } = this.t;
    const parts = [...this.parts].sort((a, b) => a.PartNumber! - b.PartNumber!);
    try {
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.uploadId, MultipartUpload: { Parts: parts } }));
      this.uploadId = undefined;
    } catch (err) {
      throw this.fail('CompleteMultipartUpload', err);
    }
  }

  /** Lets part requests finish (cutting them after a grace period), then aborts the multipart upload; an abort S3 refuses now goes to onAbandoned. */
  private async cleanup(): Promise<void> {
    if (this.inflight.size > 0) {
      const cut = setTimeout(() => this.partRequests.abort(), ABORT_GRACE_MS);
      await Promise.allSettled([...this.inflight]);
      clearTimeout(cut);
    }
    if (this.creating) this.uploadId = await this.creating.catch(() => undefined);
    if (this.uploadId === undefined) return;
    const { client, bucket, key } = this.t;
    const uploadId = this.uploadId;
    this.uploadId = undefined;
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch((err) => {
      if (!isNotFound(err)) this.t.onAbandoned?.(uploadId);
    });
  }
}
