import { randomUUID } from 'node:crypto';
import { pipeline, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { RequestContext } from '../auth/context.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Policy } from '../domain/policy.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { HashPool } from '../stores/hash-pool.js';
import type { InspectionPlugin } from '../import/inspection.js';
import type { WriterRegistry } from './writers.js';
import type { QuotaChecker } from './quotas.js';
import { BadRequest, Conflict, Forbidden, Gone, ImagoError, NotFound, PayloadTooLarge } from '../domain/errors.js';
import type { Image, Location } from '../domain/image.js';
import { resolveRange, type ResolvedRange } from '../domain/range.js';
import { MeteredStream, type ChunkTap } from '../stores/metered-stream.js';
import type { Store } from '../stores/store.js';
import { StoreReadOnly } from '../stores/errors.js';
import { targetOf, type ImageAccess } from './image-access.js';
import { crashPoint } from './crash-points.js';
import { receivedBytesTap } from './received-bytes.js';
import { DigestCheck } from './digest-check.js';
import { expectedFromProperties, type ExpectedDigest } from '../domain/expected-digests.js';
import type { DurableCommits } from './durable-commits.js';
import type { QuotaLease } from '../domain/quota.js';
import type { ImageCache } from '../cache/image-cache.js';
import type { Notifier } from '../notifications/notifier.js';

export interface WriteOptions {
  /** most bytes accepted; passing it fails the write with `tooLarge` */
  cap: number;
  tooLarge: (cap: number) => Error;
  signal?: AbortSignal;
  taps?: ChunkTap[];
  /** charges the bytes to the owner's quota as they stream (QuotaChecker.admitWriter) */
  quota?: QuotaLease;
  expectedSize?: number;
}

export interface Written {
  location: string;
  size: number;
  md5: string;
  sha512: string;
}

export interface UploadRequest {
  imageId: string;
  ctx: RequestContext;
  body: Readable;
  storeId?: string;
  contentLength?: number;
  /** x-openstack-image-size: the size the client says it sends */
  declaredSize?: number;
  /** digests the request's headers declare (X-Image-Meta-Expected-*); the image's owner_specified properties add theirs */
  expected?: ExpectedDigest[];
}

export interface Download {
  status: 200 | 204 | 206;
  headers: Record<string, string>;
  body?: Readable;
  /** to call once the body has been streamed, with the bytes the client took (image.send) */
  sent?: (bytes: number) => void;
}

/** What the data path uses; built by the composition root (src/runtime.ts). */
export interface DataServiceDeps {
  access: ImageAccess;
  policy: Policy;
  stores: StoreRegistry;
  images: ImagesRepo;
  writers: WriterRegistry;
  hashPool: HashPool;
  commits: DurableCommits;
  quotas?: QuotaChecker;
  inspection?: InspectionPlugin;
  /** this node's image cache (docs/cache.md), when enabled: downloads read through it */
  cache?: Pick<ImageCache, 'read'>;
  nodeId: string;
  config: Pick<Config, 'imageSizeCap'>;
  log: Logger;
  /** image.prepare / image.upload / image.activate / image.send, after the commits they report */
  events: Notifier;
}

/**
 * The image data path: bytes from a socket (or another store) into a store,
 * hashed on the way by the worker pool, with the claim, commit and rollback
 * rules of docs/ARCHITECTURE.md (invariants 1-4).
 */
export class DataService {
  private readonly commits: DurableCommits;

  constructor(private readonly deps: DataServiceDeps) {
    this.commits = deps.commits;
  }

  /** Streams `source` into `store` as `key`, measuring and hashing it. Leaves nothing behind on failure. */
  async write(store: Store, key: string, source: Readable, opts: WriteOptions): Promise<Written> {
    if (store.info.readOnly) throw new StoreReadOnly(store.info.id);
    const meter = new MeteredStream(this.deps.hashPool.open(), opts.cap, opts.tooLarge, opts.taps);
    const metered = pipeline(opts.quota ? opts.quota.meter(source) : source, meter, () => {});
    let put;
    try {
      put = await store.put(key, metered, { signal: opts.signal, expectedSize: opts.expectedSize });
    } finally {
      // A driver that failed early may not have consumed the stream: stop the hashing and the source.
      if (!meter.writableFinished) meter.destroy();
    }
    try {
      const digests = await meter.digests();
      return { location: put.location, size: put.size, md5: digests.md5, sha512: digests.sha512 };
    } catch (err) {
      await store.delete(put.location).catch(() => {});
      throw err;
    }
  }

  /** Measures and hashes `source` without storing it (the object a location points at). */
  async digest(source: Readable, opts: Pick<WriteOptions, 'cap' | 'tooLarge' | 'taps' | 'signal'>): Promise<Omit<Written, 'location'>> {
    const meter = new MeteredStream(this.deps.hashPool.open(), opts.cap, opts.tooLarge, opts.taps);
    const sink = new Writable({ write: (_chunk, _enc, done) => done() });
    await pipelineAsync(source, meter, sink, { signal: opts.signal });
    const digests = await meter.digests();
    return { size: meter.size, md5: digests.md5, sha512: digests.sha512 };
  }

  /** Runs `work` as the image's one writer; the registry lets DELETE and shutdown stop it. */
  async asWriter<T>(imageId: string, writerId: string, controller: AbortController, work: () => Promise<T>): Promise<T> {
    const done = work();
    this.deps.writers.register(imageId, writerId, controller, done);
    return done;
  }

  async upload(req: UploadRequest): Promise<void> {
    const { imageId, ctx } = req;
    // As Glance: an unknown store is the client's mistake whatever the image (400 before 404).
    const store = this.deps.stores.forUpload(req.storeId);
    const { image, membership } = await this.deps.access.getVisible(imageId, ctx);
    this.deps.policy.enforce('upload_image', ctx, targetOf(image, membership), 'You are not permitted to upload data to this image.');
    if (image.status !== 'queued') throw new Conflict(`Image status transition from ${image.status} to saving is not allowed`);
    const missing = (['disk_format', 'container_format'] as const).filter((k) => !(k === 'disk_format' ? image.diskFormat : image.containerFormat));
    if (missing.length) throw new BadRequest(`${missing.length > 1 ? 'Properties' : 'Property'} ${missing.join(', ')} must be set prior to saving data.`);
    if (store.info.readOnly) throw new StoreReadOnly(store.info.id);
    const cap = await this.uploadCap(image, ctx);
    const known = req.declaredSize ?? req.contentLength;
    if (known !== undefined && known > cap.bytes) throw cap.error(cap.bytes);
    const limit = req.declaredSize !== undefined && req.declaredSize < cap.bytes ? { bytes: req.declaredSize, error: () => sizeMismatch(req.declaredSize!, 'more') } : cap;

    this.deps.writers.assertOpen();
    const writerId = randomUUID();
    if (!(await this.deps.images.claimWriter(imageId, ['queued'], 'saving', writerId, this.deps.nodeId))) {
      const now = await this.deps.images.get(imageId);
      if (!now) throw new NotFound(`No image found with ID ${imageId}`);
      throw new Conflict(`Image status transition from ${now.status} to saving is not allowed`);
    }
    const controller = new AbortController();
    this.deps.events.imagePrepared({ ...image, status: 'saving' }, store.info.id);
    await this.asWriter(imageId, writerId, controller, () => this.uploadClaimed(image, store, req, writerId, controller.signal, limit));
  }

  private async uploadClaimed(image: Image, store: Store, req: UploadRequest, writerId: string, signal: AbortSignal, cap: { bytes: number; error: (n: number) => Error }): Promise<void> {
    let written: Written | undefined;
    let quota: QuotaLease | undefined;
    try {
      quota = await this.deps.quotas?.admitWriter({ owner: image.owner, imageId: image.id, writerId, resource: 'image_size_total', bytes: req.declaredSize ?? req.contentLength });
      const inspection = this.deps.inspection?.start(image);
      const check = DigestCheck.of([...expectedFromProperties(image.properties), ...(req.expected ?? [])]);
      written = await this.write(store, image.id, req.body, {
        cap: cap.bytes,
        tooLarge: cap.error,
        signal,
        quota,
        taps: [receivedBytesTap(this.deps.images, image.id, writerId), ...(inspection ? [inspection.tap] : []), ...(check?.taps ?? [])],
        expectedSize: req.declaredSize ?? req.contentLength,
      });
      if (req.declaredSize !== undefined && req.declaredSize !== written.size) throw sizeMismatch(req.declaredSize, written.size);
      // before the commit: a mismatch leaves the image queued with nothing stored
      check?.verify(written);
      const virtualSize = inspection ? inspection.finish(written.size) : defaultVirtualSize(image.diskFormat, written.size);
      crashPoint('upload:before-commit');
      const committed = await this.deps.images.commitData(image.id, writerId, {
        size: written.size,
        checksum: written.md5,
        osHashValue: written.sha512,
        virtualSize,
        location: { storeId: store.info.id, url: written.location },
      });
      if (!committed) throw new Gone(`Image ${image.id} was deleted while its data was being uploaded.`);
      crashPoint('upload:after-commit');
      this.deps.events.imageDataCommitted({ ...image, status: 'active', size: written.size, checksum: written.md5, osHashAlgo: 'sha512', osHashValue: written.sha512, virtualSize, updatedAt: new Date().toISOString() }, store.info.id, true);
    } catch (err) {
      if (written) await store.delete(written.location).catch((e) => this.deps.log.warn({ err: e, location: written!.location }, 'could not remove the data of a failed upload'));
      const released = await this.deps.images.releaseWriter(image.id, writerId, 'queued');
      if (!released && !(await this.deps.images.exists(image.id))) {
        throw new Gone(`Image ${image.id} was deleted while its data was being uploaded.`);
      }
      // An abort (delete, shutdown) explains the failure better than the stream error it caused.
      const reason = signal.aborted ? signal.reason : err;
      this.deps.events.imageUploadFailed(image.id, (reason as Error)?.message ?? String(reason));
      throw reason instanceof ImagoError ? reason : err;
    } finally {
      await quota?.release().catch(() => {});
    }
  }

  /** The most bytes this upload may carry: the image size cap or the owner's remaining quota, whichever is smaller. */
  async uploadCap(image: Image, ctx: RequestContext): Promise<{ bytes: number; error: (n: number) => Error }> {
    const sizeCap = this.deps.config.imageSizeCap;
    const quota = await this.deps.quotas?.remainingBytes(ctx, image.owner);
    if (quota !== undefined && quota.bytes < sizeCap) return quota;
    return {
      bytes: sizeCap,
      error: (n) => new PayloadTooLarge(`Image exceeds the storage size limit of ${n} bytes (image_size_cap).`),
    };
  }

  /** The response to GET (or, with `open: false`, HEAD: the same headers, and the store is not touched). */
  async download(id: string, ctx: RequestContext, range: string | undefined, contentRange: string | undefined, opts: { open?: boolean } = {}): Promise<Download> {
    const { image, membership } = await this.deps.access.getVisible(id, ctx);
    this.deps.policy.enforce('download_image', ctx, targetOf(image, membership), 'You are not permitted to download this image.');
    if (image.status === 'deactivated' && !ctx.isAdmin) {
      throw new Forbidden('The requested image has been deactivated. Image data download is forbidden.');
    }
    const location = image.locations.find((l) => l.status === 'active' && this.deps.stores.holding(l.storeId));
    if (!(image.status === 'active' || image.status === 'deactivated') || !location || image.size === null) {
      return { status: 204, headers: {} };
    }
    const size = image.size;
    const r: ResolvedRange | undefined = resolveRange(size, range, contentRange);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (image.checksum) headers['content-md5'] = image.checksum;
    const store = this.deps.stores.holding(location.storeId)!;
    if (size === 0) {
      if (opts.open !== false) this.deps.events.imageSent(image, 0, true, ctx);
      headers['content-length'] = '0';
      return { status: 200, headers };
    }
    // The cache sits exactly where the store is read: only after the image row has authorized this request.
    const cache = this.deps.cache;
    const body = opts.open === false ? undefined : cache ? await cache.read(image, r, (range) => store.get(location.url, range)) : await store.get(location.url, r);
    const expected = r ? r.end - r.start + 1 : size;
    const sent = body && this.deps.events.wants('image.send') ? (bytes: number) => this.deps.events.imageSent(image, bytes, bytes === expected, ctx) : undefined;
    if (r) {
      headers['content-range'] = `bytes ${r.start}-${r.end}/${size}`;
      headers['content-length'] = String(r.end - r.start + 1);
      return { status: 206, headers, body, sent };
    }
    headers['content-length'] = String(size);
    return { status: 200, headers, body, sent };
  }

  /** Makes every commit so far survive a power loss (see DurableCommits). */
  makeCommitsDurable(): Promise<void> {
    return this.commits.sync();
  }

  /**
   * Removes objects whose locations were marked pending_delete, then forgets
   * the locations. The marking commit is made durable first, so that no power
   * loss can bring back a location whose object is gone.
   */
  async removeLocations(locations: Location[]): Promise<void> {
    if (!locations.length) return;
    crashPoint('delete:before-remove');
    try {
      await this.commits.sync();
    } catch (err) {
      // The pending_delete records stay; start-up recovery retries them.
      this.deps.log.warn({ err }, 'could not make the delete durable; its data stays until the next start');
      return;
    }
    for (const loc of locations) {
      const store = this.deps.stores.holding(loc.storeId);
      try {
        // A read-only store's data is not Imago's to remove (an http server's, a migrated Glance directory): forget it only.
        if (store && !store.info.readOnly) await store.delete(loc.url);
        await this.deps.images.forgetLocation(loc.id);
      } catch (err) {
        // The pending_delete record stays; start-up recovery retries it.
        this.deps.log.warn({ err, location: loc.url }, 'could not remove image data; will retry at next start');
      }
    }
  }
}

function sizeMismatch(declared: number, received: number | 'more'): BadRequest {
  return new BadRequest(`The x-openstack-image-size header said ${declared} bytes but ${received === 'more' ? 'more' : received} were sent.`);
}

/** Until format inspection knows better, raw and iso images are as large virtually as they are on disk. */
export function defaultVirtualSize(diskFormat: string | null, size: number): number | null {
  return diskFormat === 'raw' || diskFormat === 'iso' ? size : null;
}
