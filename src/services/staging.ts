import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { RequestContext } from '../auth/context.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Policy } from '../domain/policy.js';
import type { StagingRepo } from '../db/staging-repo.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { WriterRegistry } from './writers.js';
import type { QuotaChecker } from './quotas.js';
import { Conflict, Gone, ImagoError, NotFound, PayloadTooLarge } from '../domain/errors.js';
import { FormatInspector, type InspectionResult } from '../import/inspect/inspector.js';
import type { QuotaLease } from '../domain/quota.js';
import type { DataService, Written } from './image-data.js';
import { targetOf, type ImageAccess } from './image-access.js';
import { crashPoint } from './crash-points.js';
import { receivedBytesTap } from './received-bytes.js';
import { DigestCheck } from './digest-check.js';
import { expectedFromProperties, type ExpectedDigest } from '../domain/expected-digests.js';

/** An image's staged data, as image_staging records it. */
export interface Staged {
  imageId: string;
  url: string;
  size: number;
  checksum: string | null;
  sha512: string | null;
  inspection: InspectionResult | null;
}

export interface StageRequest {
  imageId: string;
  ctx: RequestContext;
  body: Readable;
  contentLength?: number;
  /** digests the request's headers declare; the image's owner_specified properties add theirs */
  expected?: ExpectedDigest[];
}

/** What staging uses; built by the composition root (src/runtime.ts). */
export interface StagingServiceDeps {
  access: ImageAccess;
  policy: Policy;
  writers: WriterRegistry;
  images: ImagesRepo;
  stores: StoreRegistry;
  data: Pick<DataService, 'asWriter' | 'write' | 'makeCommitsDurable'>;
  quotas?: QuotaChecker;
  /** the image_staging records */
  repo: StagingRepo;
  nodeId: string;
  config: Pick<Config, 'imageSizeCap' | 'import'>;
  log: Logger;
}

/**
 * The staging area of glance-direct (and of every other import method,
 * which download into it): bytes are streamed in with the same hashing,
 * size cap and format inspection as an upload, and the digests are kept so
 * the import can adopt the object without reading it again.
 */
export class StagingService {
  constructor(private readonly deps: StagingServiceDeps) {}

  /** PUT /v2/images/{id}/stage: queued → uploading with the data staged, or queued again on any failure. */
  async stage(req: StageRequest): Promise<void> {
    const d = this.deps;
    const { image, membership } = await d.access.getVisible(req.imageId, req.ctx);
    d.policy.enforce('modify_image', req.ctx, targetOf(image, membership), 'You are not permitted to stage data for this image.');
    if (image.status !== 'queued') throw new Conflict(`Image status transition from ${image.status} to uploading is not allowed`);
    // The staging quota (image_stage_total) is charged while streaming; the size cap bounds every image.
    const cap = { bytes: d.config.imageSizeCap, error: (n: number) => new PayloadTooLarge(`The incoming image is too large: the limit is ${n} bytes (image_size_cap).`) };
    if (req.contentLength !== undefined && req.contentLength > cap.bytes) throw cap.error(cap.bytes);

    d.writers.assertOpen();
    const writerId = randomUUID();
    if (!(await d.images.claimWriter(image.id, ['queued'], 'uploading', writerId, d.nodeId))) {
      const current = await d.images.get(image.id);
      if (!current) throw new NotFound(`No image found with ID ${image.id}`);
      throw new Conflict(`Image status transition from ${current.status} to uploading is not allowed`);
    }
    const controller = new AbortController();
    await d.data.asWriter(image.id, writerId, controller, () => this.stageClaimed(image.id, writerId, { ...req, owner: image.owner, properties: image.properties }, controller.signal, cap));
  }

  private async stageClaimed(imageId: string, writerId: string, req: StageRequest & { owner: string | null; properties: Record<string, string> }, signal: AbortSignal, cap: { bytes: number; error: (n: number) => Error }): Promise<void> {
    const d = this.deps;
    let written: Written | undefined;
    let quota: QuotaLease | undefined;
    try {
      await this.discard(imageId);
      quota = await d.quotas?.admitWriter({ owner: req.owner, imageId, writerId, resource: 'image_stage_total', bytes: req.contentLength, what: 'this stage' });
      const inspector = d.config.import.plugins.formatInspection ? new FormatInspector() : undefined;
      const check = DigestCheck.of([...expectedFromProperties(req.properties), ...(req.expected ?? [])]);
      written = await d.data.write(d.stores.staging, imageId, req.body, {
        cap: cap.bytes,
        tooLarge: cap.error,
        signal,
        quota,
        taps: [receivedBytesTap(d.images, imageId, writerId), ...(inspector ? [(chunk: Buffer, offset: number) => inspector.push(chunk, offset)] : []), ...(check?.taps ?? [])],
        expectedSize: req.contentLength,
      });
      check?.verify(written);
      const inspection = inspector?.finish(written.size) ?? null;
      await this.record(imageId, written, inspection);
      // Glance shows the staged size at once; checksums wait for the import.
      if (!(await d.images.setWriterFields(imageId, writerId, { size: written.size, writer_id: null, writer_node: null, writer_heartbeat_at: null }))) {
        throw new Gone(`Image ${imageId} was deleted while its data was being staged.`);
      }
    } catch (err) {
      if (written) {
        await d.repo.forget(imageId, written.location).catch(() => {});
        await d.stores.staging.delete(written.location).catch(() => {});
      }
      const released = await d.images.releaseWriter(imageId, writerId, 'queued', { size: null });
      const reason = signal.aborted ? signal.reason : err;
      if (!released && !(await d.images.exists(imageId))) throw new Gone(`Image ${imageId} was deleted while its data was being staged.`);
      throw reason instanceof ImagoError ? reason : err;
    } finally {
      await quota?.release().catch(() => {});
    }
  }

  /** Records (or replaces) what is staged for the image. */
  async record(imageId: string, w: Written, inspection: InspectionResult | null): Promise<void> {
    await this.deps.repo.record(imageId, w, inspection ? JSON.stringify(inspection) : null);
  }

  /**
   * Swaps the staged object for a rewritten one (decompressed, converted)
   * and updates the image's attributes in the same transaction, so a crash
   * leaves the record and the image agreeing on what is staged.
   */
  async replace(imageId: string, w: Written, inspection: InspectionResult | null, imageAttrs: Record<string, string | number | null>): Promise<void> {
    await this.deps.repo.replace(imageId, w, inspection ? JSON.stringify(inspection) : null, imageAttrs);
  }

  async get(imageId: string): Promise<Staged | undefined> {
    const row = await this.deps.repo.get(imageId);
    if (!row) return undefined;
    return { ...row, inspection: row.inspection ? (JSON.parse(row.inspection) as InspectionResult) : null };
  }

  /** Forgets the staging record once its object has moved into a store (adopted). */
  async forget(imageId: string, url: string): Promise<void> {
    await this.deps.repo.forget(imageId, url);
  }

  /**
   * Forgets and removes whatever is staged for the image. `durableFirst`: only
   * once the commits so far (a delete) would survive a power loss.
   */
  async discard(imageId: string, opts: { durableFirst?: boolean } = {}): Promise<void> {
    const row = await this.deps.repo.get(imageId);
    if (!row) return;
    if (opts.durableFirst) {
      try {
        await this.deps.data.makeCommitsDurable();
      } catch (err) {
        // The row stays: the next start removes staged data whose image is gone.
        this.deps.log.warn({ err, imageId }, 'could not make the delete durable; its staged data stays until the next start');
        return;
      }
      crashPoint('delete:before-staged-remove');
    }
    await this.deps.stores.staging.delete(row.url).catch((err) => this.deps.log.warn({ err, imageId }, 'could not remove staged data'));
    await this.deps.repo.remove(imageId);
  }
}
