import { randomUUID } from 'node:crypto';
import { pipeline, Readable, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { RequestContext } from '../auth/context.js';
import type { Config } from '../config.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { UploadRecord, UploadsRepo } from '../db/uploads-repo.js';
import { Conflict, Gone, ImagoError, NotFound, PayloadTooLarge } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { Policy } from '../domain/policy.js';
import type { InspectionPlugin } from '../import/inspection.js';
import type { InspectionResult } from '../import/inspect/inspector.js';
import type { HashPool, HashStates } from '../stores/hash-pool.js';
import { MeteredStream, type ChunkTap } from '../stores/metered-stream.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { Store } from '../stores/store.js';
import { ObjectNotFound } from '../stores/errors.js';
import type { DigestCheck } from './digest-check.js';
import type { ClaimedCommit, DataService, Written } from './image-data.js';
import { targetOf, type ImageAccess } from './image-access.js';
import type { QuotaChecker } from './quotas.js';
import type { StagingService } from './staging.js';

/** What a resumable upload writes into: the image's data (as PUT /file) or its staging area (as PUT /stage). */
export type UploadTarget = 'data' | 'stage';

export interface NewUploadRequest {
  ctx: RequestContext;
  imageId: string;
  target: UploadTarget;
  length: number;
  /** the store for target data (X-Image-Meta-Store's meaning, from Upload-Metadata `store`) */
  storeId?: string;
  /** Upload-Metadata as sent, echoed by HEAD */
  metadata: string | null;
}

export interface AppendRequest {
  ctx: RequestContext;
  id: string;
  offset: number;
  body: Readable;
}

/** What the routes answer with (Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata). */
export interface UploadState {
  id: string;
  offset: number;
  length: number;
  expiresAt: string;
  metadata: string | null;
}

export interface ResumableUploadsDeps {
  access: ImageAccess;
  policy: Policy;
  images: ImagesRepo;
  repo: UploadsRepo;
  stores: StoreRegistry;
  hashPool: HashPool;
  data: Pick<DataService, 'assertUploadable' | 'uploadCommit' | 'uploadCap' | 'claim' | 'digestCheck' | 'commitClaimed' | 'rollbackClaimed' | 'asWriter'>;
  staging: Pick<StagingService, 'assertStageable' | 'stageCommit' | 'discard'>;
  quotas?: QuotaChecker;
  inspection?: InspectionPlugin;
  config: Pick<Config, 'imageSizeCap' | 'uploads'>;
  log: Logger;
}

/** 423: another request is appending to this upload right now (tus clients retry it, as they do 409). */
export class UploadLocked extends ImagoError {
  constructor(id: string) {
    super(423, `Upload ${id} is being written by another request; retry once it has finished.`);
  }
}

function uploadNotFound(id: string): NotFound {
  return new NotFound(`No upload with ID ${id} was found.`);
}

/**
 * Resumable uploads (tus 1.0 core, creation, expiration, termination;
 * docs/api.md#resumable-uploads-tus): an image's data sent over as many
 * requests as the network needs. Creating an upload claims the image as
 * PUT /file (or PUT /stage) would and reserves its whole length against the
 * quota; each PATCH appends to a partial object in the target store and,
 * once durable, records the new offset with the md5 and sha512 states
 * (hash-wasm, on the hash workers) in the upload's row, so that any node can
 * continue it; the PATCH that brings the last byte makes the partial object
 * the image's object and ends through DataService's commit and rollback, the
 * one end every claimed write has. The row, not a process, owns the claim
 * and the partial data: only expiry and termination take them away.
 */
export class ResumableUploads {
  constructor(private readonly deps: ResumableUploadsDeps) {}

  get maxSize(): number {
    return this.deps.config.imageSizeCap;
  }

  private expiry(): string {
    return new Date(Date.now() + this.deps.config.uploads.expirySeconds * 1000).toISOString();
  }

  async create(req: NewUploadRequest): Promise<UploadState> {
    const d = this.deps;
    const { image, membership } = await d.access.getVisible(req.imageId, req.ctx);
    let store: Store;
    let cap: { bytes: number; error: (n: number) => Error };
    if (req.target === 'data') {
      store = d.stores.named(req.storeId);
      await d.data.assertUploadable(image, req.ctx, membership, store);
      cap = await d.data.uploadCap(image, req.ctx);
    } else {
      d.staging.assertStageable(image, req.ctx, membership);
      store = d.stores.staging;
      store.assertWritable();
      cap = { bytes: d.config.imageSizeCap, error: (n) => new PayloadTooLarge(`The incoming image is too large: the limit is ${n} bytes (image_size_cap).`) };
    }
    if (!store.partial) throw new ImagoError(501, `Store ${store.info.id} cannot keep partial uploads (only filesystem stores can, in this version); upload with PUT /file or PUT /stage.`);
    if (req.length > cap.bytes) throw cap.error(cap.bytes);
    const plan = this.plan(req.target, image, store);
    const writerId = await d.data.claim(image, plan.to);
    const id = randomUUID();
    try {
      // The whole length is reserved now, and stays reserved while the row holds the claim (quotas count partial bytes).
      await d.quotas?.admitWriter({ owner: image.owner, imageId: image.id, writerId, resource: req.target === 'data' ? 'image_size_total' : 'image_stage_total', bytes: req.length, what: 'this upload' });
      if (req.target === 'stage') await d.staging.discard(image.id);
      const row = await d.repo.create({
        id,
        imageId: image.id,
        project: image.owner,
        target: req.target,
        storeId: store.info.id,
        partialKey: `${image.id}.${id}`,
        writerId,
        length: req.length,
        metadata: req.metadata,
        expiresAt: this.expiry(),
      });
      plan.claimed?.();
      if (req.length === 0) return await this.complete(row, image, { md5: '', sha512: '' }, undefined);
      return this.state(row);
    } catch (err) {
      await d.repo.remove(id).catch(() => {});
      await d.images.releaseWriter(image.id, writerId, 'queued', plan.resetOnRollback).catch(() => {});
      throw err;
    }
  }

  /** HEAD: where the upload stands (404 to anyone who may not write its image, 410 once expired). */
  async status(id: string, ctx: RequestContext): Promise<UploadState> {
    let { row } = await this.authorized(id, ctx);
    // A client asks right after its connection dropped, while the server may still be recording what
    // arrived (hashing it again, when it was the first request): wait for that request to finish, so the
    // offset answered is the one to resume from. A dead node's lock makes this wait out its lease.
    for (const until = Date.now() + this.lockMs + SETTLE_MS; row.locked && Date.now() < until; ) {
      await sleep(POLL_MS);
      const now = await this.deps.repo.get(row.id);
      // the request it waited for completed the upload (or ended it): there is nothing left to resume
      if (!now) throw uploadNotFound(id);
      row = now;
    }
    return this.state(row);
  }

  /**
   * The upload's lock, waited for: a request that was cut is still recording
   * what arrived (milliseconds), and a dead node's lease runs out within
   * uploads.lockSeconds. Refusing at once would make the client send its body
   * for nothing, and some clients (tus-js-client in Node) hang when a server
   * answers before reading the body and then closes the connection.
   */
  private async acquire(id: string, holder: string): Promise<boolean> {
    const until = Date.now() + this.lockMs + SETTLE_MS;
    for (;;) {
      if (await this.deps.repo.lock(id, holder, this.lockMs)) return true;
      if (Date.now() >= until) return false;
      await sleep(POLL_MS);
    }
  }

  /** DELETE: the partial data removed, the claim released, the image queued again. */
  async terminate(id: string, ctx: RequestContext): Promise<void> {
    const { row } = await this.authorized(id, ctx);
    if (!(await this.acquire(row.id, randomUUID()))) throw new UploadLocked(row.id);
    await this.discard(row);
  }

  private get lockMs(): number {
    return this.deps.config.uploads.lockSeconds * 1000;
  }

  /**
   * PATCH: appends the body at `offset`. 409 (with the current offset) when
   * `offset` is not where the upload stands, 423 while another request
   * appends, 413 past Upload-Length. What arrived before a client went away
   * is kept (the route ends the body cleanly on a cut connection).
   */
  async append(req: AppendRequest): Promise<UploadState> {
    const d = this.deps;
    const { row: seen, image } = await this.authorized(req.id, req.ctx);
    if (req.offset !== seen.offset && !seen.locked) throw offsetMismatch(seen.offset, req.offset);
    const holder = randomUUID();
    if (!(await this.acquire(seen.id, holder))) {
      req.body.destroy();
      throw new UploadLocked(seen.id);
    }
    const renew = setInterval(() => d.repo.renew(seen.id, holder, this.lockMs).catch(() => {}), this.lockMs / 3);
    renew.unref();
    try {
      // Read again under the lock: a request that held it a moment ago may have moved the offset.
      const row = await d.repo.get(seen.id);
      if (!row) throw uploadNotFound(seen.id);
      if (req.offset !== row.offset) throw offsetMismatch(row.offset, req.offset);
      const controller = new AbortController();
      return await d.data.asWriter(image.id, row.writerId, controller, () => this.appendLocked(row, image, req.body, holder, controller.signal));
    } finally {
      clearInterval(renew);
      await d.repo.unlock(seen.id, holder).catch(() => {});
    }
  }

  private async appendLocked(row: UploadRecord, image: Image, body: Readable, holder: string, signal: AbortSignal): Promise<UploadState> {
    const d = this.deps;
    const store = d.stores.holding(row.storeId);
    if (!store?.partial) throw new Gone(`The store of upload ${row.id} is no longer configured.`);
    const left = row.length - row.offset;
    // From the first byte the whole upload may arrive in this request: inspect and check it on the way, as PUT /file does.
    const inspection = row.offset === 0 ? d.inspection?.start() : undefined;
    const check = row.offset === 0 ? d.data.digestCheck(this.plan(row.target, image, store)) : undefined;
    const taps: ChunkTap[] = [...(inspection ? [inspection.tap] : []), ...(check?.taps ?? [])];
    const tooLarge = () => new PayloadTooLarge(`The request carries more bytes than the ${left} left of the upload's Upload-Length (${row.length}).`);
    // From offset 0 node's crypto hashes (2-3 × faster than hash-wasm, whose states can be saved): the
    // common upload, sent whole in one request, costs what PUT /file costs. Only when that request ends
    // short are its bytes hashed again, with hash-wasm, for the states a resume needs.
    const fast = row.offset === 0;
    const meter = new MeteredStream(d.hashPool.open(fast ? undefined : { states: row.states }), left, tooLarge, taps);
    const metered = pipeline(body, meter, () => {});
    let size: number;
    try {
      size = await store.partial.appendPartial(row.partialKey, row.offset, metered, { signal });
    } catch (err) {
      if (!(err instanceof ObjectNotFound)) throw err;
      // The partial data is gone (removed by hand, or a crash between completing it and the commit): nothing to resume.
      await this.discard(row).catch(() => {});
      throw new Gone(`The data of upload ${row.id} is no longer in its store; create a new upload.`);
    } finally {
      if (!meter.writableFinished) meter.destroy();
    }
    const digests = await meter.digests();
    if (size !== row.offset + meter.size) throw new Error(`upload ${row.id}: the partial object has ${size} bytes, the hashes saw ${row.offset + meter.size}`);
    if (size === row.length) {
      // Complete: the states are not needed any more (the row goes with the commit).
      return this.complete({ ...row, offset: size }, image, digests, fast ? { inspection: inspection ? inspection.finish(size) : null, check } : undefined);
    }
    const states = digests.states ?? (await this.statesOf(store, row.partialKey, size, signal));
    if (!(await d.repo.advance(row.id, holder, row.offset, size, states, this.expiry()))) throw new Conflict(`Upload ${row.id} changed while this request wrote to it; ask for its offset (HEAD) and resume.`);
    await d.images.setReceived(image.id, row.writerId, size).catch(() => {});
    return this.state({ ...row, offset: size, states });
  }

  /** The hash-wasm states after the first `size` bytes of a partial object, read back (on the hash workers, as always). */
  private async statesOf(store: Store, key: string, size: number, signal: AbortSignal): Promise<HashStates> {
    const meter = new MeteredStream(this.deps.hashPool.open({}), size, () => new Conflict(`upload data ${key} grew while it was read`));
    await pipelineAsync(size === 0 ? Readable.from([]) : await store.partial!.readPartial(key, size), meter, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
    const { states } = await meter.digests();
    if (!states || meter.size !== size) throw new Error(`upload data ${key}: ${meter.size} of ${size} bytes could be read back`);
    return states;
  }

  /**
   * The last byte arrived: the partial object becomes the image's object and
   * the write ends as every claimed write does (DataService.commitClaimed:
   * declared digests, inspection, commit; rollbackClaimed on any failure).
   * Inspection and a declared sha256 need the bytes: when they came over
   * several requests, the object is read once more for them.
   */
  private async complete(row: UploadRecord, seen: Image, digests: { md5: string; sha512: string }, live: { inspection: InspectionResult | null; check: DigestCheck | undefined } | undefined): Promise<UploadState> {
    const d = this.deps;
    const store = d.stores.holding(row.storeId)!;
    const image = (await d.images.get(row.imageId)) ?? seen;
    const plan = this.plan(row.target, image, store);
    let written: Written | undefined;
    try {
      const put = row.length === 0 ? await store.put(image.id, Readable.from([])) : await store.partial!.completePartial(row.partialKey, image.id);
      written = { location: put.location, size: put.size, ...(row.length === 0 ? EMPTY_DIGESTS : { md5: digests.md5, sha512: digests.sha512 }) };
      const { inspection, check } = live ?? (await this.reread(store, written, plan));
      await d.data.commitClaimed(plan, row.writerId, written, inspection, check);
    } catch (err) {
      await d.repo.remove(row.id).catch(() => {});
      await store.partial!.removePartial(row.partialKey).catch(() => {});
      await d.data.rollbackClaimed(plan, row.writerId, written, err);
    }
    await d.repo.remove(row.id);
    return this.state(row);
  }

  /** Reads a completed object once, for what needs its bytes in one pass: format inspection and a declared sha256. */
  private async reread(store: Store, written: Written, plan: ClaimedCommit): Promise<{ inspection: InspectionResult | null; check: DigestCheck | undefined }> {
    const inspection = this.deps.inspection?.start();
    const check = this.deps.data.digestCheck(plan);
    const taps: ChunkTap[] = [...(inspection ? [inspection.tap] : []), ...(check?.taps ?? [])];
    if (taps.length && written.size > 0) {
      let offset = 0;
      const sink = new Writable({
        write: (chunk: Buffer, _e, cb) => {
          try {
            for (const t of taps) t(chunk, offset);
          } catch (err) {
            return cb(err as Error);
          }
          offset += chunk.length;
          cb();
        },
      });
      await pipelineAsync(await store.get(written.location), sink);
    }
    return { inspection: inspection ? inspection.finish(written.size) : null, check };
  }

  private plan(target: UploadTarget, image: Image, store: Store): ClaimedCommit {
    return target === 'data' ? this.deps.data.uploadCommit(image, store) : this.deps.staging.stageCommit(image);
  }

  private state(row: UploadRecord): UploadState {
    return { id: row.id, offset: row.offset, length: row.length, expiresAt: row.expiresAt, metadata: row.metadata };
  }

  /**
   * The upload, for a caller who may write its image: anyone else gets the
   * same 404 as for an id that does not exist (no leak across projects).
   * Expired, or its image deleted: 410, and its leftovers are removed.
   */
  private async authorized(id: string, ctx: RequestContext): Promise<{ row: UploadRecord; image: Image }> {
    const d = this.deps;
    const row = /^[0-9a-f-]{36}$/i.test(id) ? await d.repo.get(id) : undefined;
    if (!row) throw uploadNotFound(id);
    let image: Image;
    try {
      const seen = await d.access.getVisible(row.imageId, ctx);
      image = seen.image;
      const rule = row.target === 'data' ? 'upload_image' : 'modify_image';
      d.policy.enforce(rule, ctx, targetOf(seen.image, seen.membership), 'You are not permitted to write data to this image.');
    } catch (err) {
      if (err instanceof ImagoError && (err.status === 403 || err.status === 404)) {
        if (err.status === 404 && !(await d.images.exists(row.imageId)) && ctx.projectId === row.project) {
          await this.expire(row).catch(() => {});
          throw new Gone(`Upload ${id} ended: its image was deleted.`);
        }
        throw uploadNotFound(id);
      }
      throw err;
    }
    if (row.expiresAt < new Date().toISOString()) {
      await this.expire(row).catch(() => {});
      throw new Gone(`Upload ${id} expired at ${row.expiresAt}; its data was removed. Create a new upload.`);
    }
    return { row, image };
  }

  /** Removes an upload: its partial data, its claim (the image queued again, staged size reset) and its row. */
  private async discard(row: UploadRecord): Promise<void> {
    const d = this.deps;
    const store = d.stores.holding(row.storeId);
    await store?.partial?.removePartial(row.partialKey);
    await d.images.releaseWriter(row.imageId, row.writerId, 'queued', row.target === 'stage' ? { size: null } : {});
    await d.repo.remove(row.id);
  }

  /** An expired upload, taken under its lock so that two nodes sweeping at once do not both remove it. */
  private async expire(row: UploadRecord): Promise<boolean> {
    if (!(await this.deps.repo.lock(row.id, randomUUID(), this.lockMs))) return false;
    await this.discard(row);
    return true;
  }

  /** The expiry sweep (every node, every uploads.sweepSeconds): expired uploads and those whose image was deleted. */
  async sweep(): Promise<number> {
    const d = this.deps;
    let n = 0;
    for (const row of [...(await d.repo.expired()), ...(await d.repo.ofMissingImages())]) {
      try {
        if (await this.expire(row)) n++;
      } catch (err) {
        d.log.warn({ err, upload: row.id }, 'could not remove an expired upload; the next sweep retries');
      }
    }
    return n;
  }

  /** Starts the sweep; returns its stop. */
  startSweeping(): () => Promise<void> {
    let running: Promise<unknown> = Promise.resolve();
    const timer = setInterval(() => {
      running = this.sweep()
        .then((n) => n && this.deps.log.info({ removed: n }, 'expired uploads removed'))
        .catch((err) => this.deps.log.warn({ err }, 'the expired-upload sweep failed'));
    }, this.deps.config.uploads.sweepSeconds * 1000);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await running;
    };
  }
}

/** how long HEAD and DELETE wait for a request that is finishing, and PATCH beyond a lease */
const SETTLE_MS = 3_000;
const POLL_MS = 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function offsetMismatch(current: number, sent: number): ImagoError {
  return new ImagoError(409, `Upload-Offset ${sent} does not match the upload's offset ${current}; resume from byte ${current}.`, '', { 'Upload-Offset': String(current) });
}

/** The digests of no bytes (an upload of Upload-Length 0 completes at its creation). */
const EMPTY_DIGESTS = {
  md5: 'd41d8cd98f00b204e9800998ecf8427e',
  sha512: 'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
};

