import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ConfigError, type S3StoreSettings } from '../config.js';
import { ObjectNotFound, isPlainKey } from './errors.js';
import { createS3Client, describeS3Error, isNotFound, s3Error, statusOf } from './s3-client.js';
import { planParts, type PartSizing } from './s3-parts.js';
import { uploadStream } from './s3-upload.js';
import { copyObject } from './s3-copy.js';
import { S3ObjectReader } from './s3-object-reader.js';
import type { ByteRange, PutOptions, PutResult, StoreDriver, StoreInfo } from './store.js';

const MiB = 1024 * 1024;

/** The store cannot work as configured (no bucket, credentials refused): the server must not start. */
export class StoreStartError extends ConfigError {}

/**
 * Objects in an S3 bucket (AWS, Ceph RGW, Swift's s3api, MinIO...), under
 * `prefix`, one object per key. Locations are `s3://<bucket>/<prefix><key>`:
 * they name no endpoint and no credentials, so every node of a deployment
 * (whatever address it reaches S3 by) resolves the same location, and no
 * secret ever lands in the database or an API response.
 *
 * Reads come back in 1 MiB chunks the HTTP layer recycles (s3-object-reader.ts).
 * Writes stream through s3-upload.ts (multipart, constant memory); the
 * object exists under its key only once complete. Unfinished writes are
 * multipart uploads, which is what removeTemporary() sweeps.
 */
export class S3Store implements StoreDriver {
  readonly info: StoreInfo;
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly sizing: PartSizing;
  private readonly queueSize: number;
  private readonly describe: string;
  /** aborts of failed uploads that S3 refused (unreachable), retried with backoff until they succeed or the store closes */
  private readonly pendingAborts = new Map<string, NodeJS.Timeout>();

  constructor(
    opts: { id: string; description: string; readOnly: boolean },
    private readonly settings: S3StoreSettings,
  ) {
    this.bucket = settings.bucket;
    this.prefix = settings.prefix ?? '';
    this.sizing = {
      partSize: (settings.partSizeMiB ?? 8) * MiB,
      minPartSize: (settings.minPartSizeMiB ?? 5) * MiB,
      maxParts: settings.maxParts ?? 10_000,
    };
    this.queueSize = settings.queueSize ?? 4;
    this.client = createS3Client(settings);
    this.describe = `store "${opts.id}" (s3 bucket "${this.bucket}"${settings.endpoint ? ` at ${settings.endpoint}` : ''})`;
    this.info = {
      id: opts.id,
      type: 's3',
      description: opts.description,
      readOnly: opts.readOnly,
      properties: {
        bucket: this.bucket,
        prefix: this.prefix,
        region: settings.region,
        ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
        part_size: this.sizing.partSize,
        queue_size: this.queueSize,
        max_parts: this.sizing.maxParts,
      },
    };
  }

  /**
   * Checks the bucket is there and the credentials are accepted, creating the
   * bucket when configured to. A definite refusal is a StoreStartError (the
   * server does not start); an unreachable service is StoreUnavailable (the
   * server may start and answer 503 until S3 is back).
   */
  async open(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 && this.settings.createBucket && !this.info.readOnly) return this.createBucket();
      if (status === 404) throw new StoreStartError(`${this.describe}: the bucket does not exist; create it, or set s3.createBucket: true`);
      if (status === 403 || status === 401) {
        throw new StoreStartError(`${this.describe}: access refused (HTTP ${status}); check s3.accessKeyId and s3.secretAccessKey, and that they may use this bucket`);
      }
      if (status !== undefined && status < 500) throw new StoreStartError(`${this.describe}: checking the bucket failed: ${describeS3Error(err)}`);
      throw this.error('HeadBucket', err);
    }
  }

  private async createBucket(): Promise<void> {
    const region = this.settings.region;
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          ...(region && region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as never } } : {}),
        }),
      );
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'BucketAlreadyOwnedByYou') return;
      const status = statusOf(err);
      if (status !== undefined && status < 500) throw new StoreStartError(`${this.describe}: creating the bucket failed: ${describeS3Error(err)}`);
      throw this.error('CreateBucket', err);
    }
  }

  async put(key: string, source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    try {
      opts.signal?.throwIfAborted();
    } catch (err) {
      source.destroy();
      throw err;
    }
    const size = await uploadStream(
      {
        client: this.client,
        storeId: this.info.id,
        bucket: this.bucket,
        key: this.prefix + key,
        plan: planParts(this.sizing, opts.expectedSize),
        queueSize: this.queueSize,
        onAbandoned: (uploadId) => this.retryAbort(this.prefix + key, uploadId, 0),
      },
      source,
      opts.signal,
    );
    return { location: this.locationOf(key), size };
  }

  async get(location: string, range?: ByteRange): Promise<Readable> {
    const key = this.keyOf(location);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
      // Regrouped into 1 MiB recycled chunks: the download path's cost per GiB, not per socket read (s3-object-reader.ts).
      return new S3ObjectReader(out.Body as Readable);
    } catch (err) {
      throw this.error('GetObject', err, location);
    }
  }

  async delete(location: string): Promise<void> {
    const key = this.keyOf(location);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (!isNotFound(err)) throw this.error('DeleteObject', err);
    }
  }

  owns(location: string): boolean {
    try {
      this.keyOf(location);
      return true;
    } catch {
      return false;
    }
  }

  async size(location: string): Promise<number> {
    const key = this.keyOf(location);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return Number(head.ContentLength ?? 0);
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFound(location);
      throw this.error('HeadObject', err, location);
    }
  }

  async exists(location: string): Promise<boolean> {
    let key: string;
    try {
      key = this.keyOf(location);
    } catch {
      return false;
    }
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.error('HeadObject', err);
    }
  }

  async *list(): AsyncIterable<string> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, Delimiter: '/', ContinuationToken: token }),
        );
      } catch (err) {
        throw this.error('ListObjectsV2', err);
      }
      for (const o of page.Contents ?? []) {
        const key = o.Key?.slice(this.prefix.length);
        if (key !== undefined && isPlainKey(key)) yield this.locationOf(key);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Aborts unfinished multipart uploads (of `key` only, when given); they are what a writer that died leaves. */
  async removeTemporary(key?: string): Promise<number> {
    const stale: { Key: string; UploadId: string }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix + (key ?? ''), KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (err) {
        throw this.error('ListMultipartUploads', err);
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        const k = u.Key.slice(this.prefix.length);
        if (key !== undefined ? k === key : isPlainKey(k)) stale.push({ Key: u.Key, UploadId: u.UploadId });
      }
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
    let removed = 0;
    for (const u of stale) {
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, ...u }));
        removed++;
      } catch (err) {
        if (!isNotFound(err)) throw this.error('AbortMultipartUpload', err);
      }
    }
    return removed;
  }

  /**
   * A failed upload whose multipart upload could not be aborted (S3 went away
   * with it) keeps trying, so that once S3 is back nothing is left of it.
   * A process that dies meanwhile leaves it to removeTemporary at recovery.
   */
  private retryAbort(key: string, uploadId: string, attempt: number): void {
    if (attempt >= 20) return void this.pendingAborts.delete(uploadId);
    const delay = Math.min(60_000, 500 * 2 ** attempt);
    const timer = setTimeout(() => {
      this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).then(
        () => this.pendingAborts.delete(uploadId),
        (err) => (isNotFound(err) ? this.pendingAborts.delete(uploadId) : this.retryAbort(key, uploadId, attempt + 1)),
      );
    }, delay);
    timer.unref();
    this.pendingAborts.set(uploadId, timer);
  }

  /** Same service, same credentials: S3 can copy between two stores' buckets itself. */
  medium(): string {
    return `s3:${JSON.stringify([this.settings.endpoint ?? null, this.settings.region ?? null, this.settings.accessKeyId ?? null])}`;
  }

  /**
   * Moves an object of a sibling S3 store (the staging area) into this one
   * without the bytes passing through Imago: a server-side copy, then the
   * source is deleted. The digests computed when the object was written stand.
   */
  async adopt(driver: StoreDriver, location: string, key: string): Promise<PutResult> {
    const other = driver as S3Store;
    const source = { bucket: other.bucket, key: other.keyOf(location) };
    let size: number;
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: source.bucket, Key: source.key }));
      size = head.ContentLength ?? 0;
    } catch (err) {
      throw this.error('HeadObject', err, location);
    }
    await copyObject({ client: this.client, storeId: this.info.id, bucket: this.bucket, key: this.prefix + key, sizing: this.sizing, queueSize: this.queueSize, maxSingleCopy: (this.settings.maxCopyObjectMiB ?? 5120) * MiB }, source, size);
    await other.delete(location);
    return { location: this.locationOf(key), size };
  }

  async close(): Promise<void> {
    for (const timer of this.pendingAborts.values()) clearTimeout(timer);
    this.pendingAborts.clear();
    this.client.destroy();
  }

  private locationOf(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  /** The full object key of a location of this store; anything else is not found here. */
  private keyOf(location: string): string {
    const base = `s3://${this.bucket}/${this.prefix}`;
    const key = location.startsWith(base) ? location.slice(base.length) : undefined;
    if (key === undefined || !isPlainKey(key)) throw new ObjectNotFound(location);
    return this.prefix + key;
  }

  private error(op: string, err: unknown, location?: string): Error {
    return s3Error(this.info.id, this.bucket, op, err, location);
  }
}
