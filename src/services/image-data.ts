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
import { BadRequest, Forbidden, Gone, ImagoError, PayloadTooLarge, imageNotFound, statusTransition } from '../domain/errors.js';
import type { Image, ImageStatus, Location } from '../domain/image.js';
import { resolveRange, type ResolvedRange } from '../domain/range.js';
import { StoreReadOnly } from '../stores/errors.js';
import { MeteredStream, type ChunkTap } from '../stores/metered-stream.js';
import type { Store } from '../stores/store.js';
import { targetOf, type ImageAccess } from './image-access.js';
import { crashPoint } from './crash-points.js';
import { receivedBytesTap } from './received-bytes.js';
import { DigestCheck } from './digest-check.js';
import { expectedFromProperties, type ExpectedDigest } from '../domain/expected-digests.js';
import type { DurableCommits } from './durable-commits.js';
import type { QuotaLease, WriterAdmission } from '../domain/quota.js';
import type { ImageCache } from '../cache/image-cache.js';
import type { Notifier } from '../notifications/notifier.js';
import { assertTransition } from '../domain/status.js';
import { acceptUploaded } from '../import/inspection.js';
import type { InspectionResult } from '../import/inspect/inspector.js';

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

/**
 * How a claimed write ends (DataService.commitClaimed / rollbackClaimed):
 * what differs between an upload and a stage at the commit, shared by the
 * one-request write (claimedWrite) and the resumable uploads, whose bytes
 * arrive over many requests (services/resumable-uploads.ts).
 */
export interface ClaimedCommit {
  /** the image, already checked visible, permitted and queued */
  image: Image;
  /** the status the claim moves the image to from queued */
  to: ImageStatus;
  /** for the 410 and the logs: "uploaded", "staged" */
  doing: string;
  store: Store;
  /** records the written data; false when the image is gone (410); throwing rolls back */
  commit(written: Written, inspection: InspectionResult | null, writerId: string): Promise<boolean>;
  /** undoes what commit recorded before it failed, ahead of the object's removal */
  undo?(written: Written): Promise<void>;
  /** image fields reset with the claim's release */
  resetOnRollback?: Record<string, null>;
  /** digests the request declared (X-Image-Meta-Expected-*); the image's owner_specified properties add theirs (docs/api.md#verified-uploads) */
  expected?: ExpectedDigest[];
  /** once the claim is held (notifications: image.prepare) */
  claimed?(): void;
  /** after a rollback, with the reason (notifications: a failed image.upload) */
  failed?(reason: unknown): void;
}

/** One claimed write (DataService.claimedWrite): the commit's parts, and the bytes of one request. */
export interface ClaimedWrite extends ClaimedCommit {
  body: Readable;
  cap: { bytes: number; error: (n: number) => Error };
  expectedSize?: number;
  /** the quota the bytes are charged to, and what is known of them in advance */
  quota: Pick<WriterAdmission, 'resource' | 'bytes' | 'what'>;
  /** before any byte is read, once the claim is held (staging drops what was staged before) */
  prepare?(): Promise<void>;
}

function gone(imageId: string, doing: string): Gone {
  return new Gone(`Image ${imageId} was deleted while its data was being ${doing}.`);
}

/**
 * What a download serves, for the route to put into HTTP: nothing (the image
 * has no data to serve: not active, no location, no size), or the data's
 * size and md5, the byte range asked for (resolved and checked) and the
 * stream of exactly those bytes (absent for HEAD and for empty images).
 */
export type Download =
  | { data: false }
  | { data: true; size: number; md5: string | null; range?: ResolvedRange; body?: Readable; sent?: (bytes: number) => void };

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
    store.assertWritable();
    const meter = new MeteredStream(this.deps.hashPool.open(), opts.cap, opts.tooLarge, opts.taps, opts.quota);
    const metered = pipeline(source, meter, () => {});
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
    // As Glance: an unknown store is the client's mistake whatever the image (UnknownStore, 400, before 404).
    const store = this.deps.stores.named(req.storeId);
    const { image, membership } = await this.deps.access.getVisible(imageId, ctx);
    await this.assertUploadable(image, ctx, membership, store);
    const cap = await this.uploadCap(image, ctx);
    const known = req.declaredSize ?? req.contentLength;
    if (known !== undefined && known > cap.bytes) throw cap.error(cap.bytes);
    const limit = req.declaredSize !== undefined && req.declaredSize < cap.bytes ? { bytes: req.declaredSize, error: () => sizeMismatch(req.declaredSize!, 'more') } : cap;

    await this.claimedWrite({
      ...this.uploadCommit(image, store, req.declaredSize),
      body: req.body,
      cap: limit,
      expectedSize: known,
      quota: { resource: 'image_size_total', bytes: known },
      expected: req.expected,
    });
  }

  /** The checks of an upload before its claim (PUT /file, and a resumable upload's creation): the image and the store. */
  async assertUploadable(image: Image, ctx: RequestContext, membership: Parameters<typeof targetOf>[1], store: Store): Promise<void> {
    this.deps.policy.enforce('upload_image', ctx, targetOf(image, membership), 'You are not permitted to upload data to this image.');
    assertTransition(image.status, 'saving');
    const missing = (['disk_format', 'container_format'] as const).filter((k) => !(k === 'disk_format' ? image.diskFormat : image.containerFormat));
    if (missing.length) throw new BadRequest(`${missing.length > 1 ? 'Properties' : 'Property'} ${missing.join(', ')} must be set prior to saving data.`);
    store.assertWritable();
  }

  /** How an upload ends: the image active with its data, its digests and its inspection's verdict (PUT /file and resumable uploads). */
  uploadCommit(image: Image, store: Store, declaredSize?: number): ClaimedCommit {
    return {
      image,
      to: 'saving',
      doing: 'uploaded',
      store,
      claimed: () => this.deps.events.imagePrepared({ ...image, status: 'saving' }, store.info.id),
      failed: (reason) => this.deps.events.imageUploadFailed(image.id, (reason as Error)?.message ?? String(reason)),
      commit: async (written, inspection, writerId) => {
        if (declaredSize !== undefined && declaredSize !== written.size) throw sizeMismatch(declaredSize, written.size);
        const virtualSize = inspection ? acceptUploaded(image, inspection) : defaultVirtualSize(image.diskFormat, written.size);
        crashPoint('upload:before-commit');
        const committed = await this.deps.images.commitData(image.id, writerId, {
          size: written.size,
          checksum: written.md5,
          osHashValue: written.sha512,
          virtualSize,
          location: { storeId: store.info.id, url: written.location },
        });
        if (committed) {
          crashPoint('upload:after-commit');
          this.deps.events.imageDataCommitted({ ...image, status: 'active', size: written.size, checksum: written.md5, osHashAlgo: 'sha512', osHashValue: written.sha512, virtualSize, updatedAt: new Date().toISOString() }, store.info.id, true);
        }
        return committed;
      },
    };
  }

  /**
   * The one path bytes take into an image the request claims (upload, stage):
   * claim (one compare-and-set, queued → `to`; invariant 2) → quota admission
   * → write (the one metering stage: cap and quota budget; taps: inspection;
   * hashing; store put) → commit, or roll back (invariant 3): the object
   * removed, the claim released, the image queued again, 410 when the image
   * was deleted meanwhile (invariant 4). The imports, whose task holds the
   * claim, use the same admission and write (services/import-run.ts).
   */
  async claimedWrite(w: ClaimedWrite): Promise<void> {
    const { image } = w;
    const writerId = await this.claim(image, w.to);
    w.claimed?.();
    const controller = new AbortController();
    const signal = controller.signal;
    await this.asWriter(image.id, writerId, controller, async () => {
      let written: Written | undefined;
      let quota: QuotaLease | undefined;
      try {
        await w.prepare?.();
        quota = await this.deps.quotas?.admitWriter({ owner: image.owner, imageId: image.id, writerId, ...w.quota });
        const inspection = this.deps.inspection?.start();
        const check = this.digestCheck(w);
        written = await this.write(w.store, image.id, w.body, {
          cap: w.cap.bytes,
          tooLarge: w.cap.error,
          signal,
          quota,
          taps: [receivedBytesTap(this.deps.images, image.id, writerId), ...(inspection ? [inspection.tap] : []), ...(check?.taps ?? [])],
          expectedSize: w.expectedSize,
        });
        await this.commitClaimed(w, writerId, written, inspection ? inspection.finish(written.size) : null, check);
      } catch (err) {
        // An abort (delete, shutdown) explains the failure better than the stream error it caused.
        await this.rollbackClaimed(w, writerId, written, signal.aborted ? signal.reason : err, err);
      } finally {
        await quota?.release().catch(() => {});
      }
    });
  }

  /** The claim of invariant 2: one compare-and-set, queued → `to`; 409 (or 404) when another writer or a status is in the way. */
  async claim(image: Pick<Image, 'id'>, to: ImageStatus): Promise<string> {
    this.deps.writers.assertOpen();
    const writerId = randomUUID();
    if (!(await this.deps.images.claimWriter(image.id, ['queued'], to, writerId, this.deps.nodeId))) {
      const now = await this.deps.images.get(image.id);
      if (!now) throw imageNotFound(image.id);
      throw statusTransition(now.status, to);
    }
    return writerId;
  }

  /** The declared digests of a claimed write: the image's owner_specified properties and the request's own. */
  digestCheck(c: Pick<ClaimedCommit, 'image' | 'expected'>): DigestCheck | undefined {
    return DigestCheck.of([...expectedFromProperties(c.image.properties), ...(c.expected ?? [])]);
  }

  /** Verifies the declared digests (a mismatch leaves the image queued with nothing stored), then commits; 410 when the image is gone. */
  async commitClaimed(c: ClaimedCommit, writerId: string, written: Written, inspection: InspectionResult | null, check: DigestCheck | undefined): Promise<void> {
    check?.verify(written);
    if (!(await c.commit(written, inspection, writerId))) throw gone(c.image.id, c.doing);
  }

  /**
   * Invariant 3 for a claimed write that failed: what commit recorded undone,
   * the object removed, the claim released (the image queued again); always
   * throws: the reason, or 410 when the image was deleted meanwhile.
   */
  async rollbackClaimed(c: ClaimedCommit, writerId: string, written: Written | undefined, reason: unknown, cause: unknown = reason): Promise<never> {
    const { image } = c;
    if (written) {
      const location = written.location;
      await c.undo?.(written).catch(() => {});
      await c.store.delete(location).catch((e) => this.deps.log.warn({ err: e, location }, `could not remove the data of a failed write (${c.doing})`));
    }
    const released = await this.deps.images.releaseWriter(image.id, writerId, 'queued', c.resetOnRollback);
    if (!released && !(await this.deps.images.exists(image.id))) throw gone(image.id, c.doing);
    c.failed?.(reason);
    throw reason instanceof ImagoError ? reason : cause;
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

  /** What GET serves (or, with `open: false`, HEAD: the same, and the store is not touched). */
  async download(id: string, ctx: RequestContext, range: string | undefined, contentRange: string | undefined, opts: { open?: boolean } = {}): Promise<Download> {
    const { image, membership } = await this.deps.access.getVisible(id, ctx);
    this.deps.policy.enforce('download_image', ctx, targetOf(image, membership), 'You are not permitted to download this image.');
    if (image.status === 'deactivated' && !ctx.isAdmin) {
      throw new Forbidden('The requested image has been deactivated. Image data download is forbidden.');
    }
    const location = image.locations.find((l) => l.status === 'active' && this.deps.stores.holding(l.storeId));
    if (!(image.status === 'active' || image.status === 'deactivated') || !location || image.size === null) return { data: false };
    const size = image.size;
    const r: ResolvedRange | undefined = resolveRange(size, range, contentRange);
    const store = this.deps.stores.holding(location.storeId)!;
    if (size === 0) {
      if (opts.open !== false) this.deps.events.imageSent(image, 0, true, ctx);
      return { data: true, size, md5: image.checksum };
    }
    // The cache sits exactly where the store is read: only after the image row has authorized this request.
    const cache = this.deps.cache;
    const body = opts.open === false ? undefined : cache ? await cache.read(image, r, (range) => store.get(location.url, range)) : await store.get(location.url, r);
    const expected = r ? r.end - r.start + 1 : size;
    const sent = body && this.deps.events.wants('image.send') ? (bytes: number) => this.deps.events.imageSent(image, bytes, bytes === expected, ctx) : undefined;
    return { data: true, size, md5: image.checksum, range: r, body, sent };
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
        await store?.delete(loc.url);
        await this.deps.images.forgetLocation(loc.id);
      } catch (err) {
        if (err instanceof StoreReadOnly) {
          // Nothing is written to a read-only store, removals included: its data may be another
          // service's (docs/migrating-from-glance.md). The image lets go of it; the object stays.
          await this.deps.images.forgetLocation(loc.id).catch(() => {});
          this.deps.log.info({ location: loc.url, store: loc.storeId }, 'image data in a read-only store is left in place');
          continue;
        }
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
