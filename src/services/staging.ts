import type { Readable } from 'node:stream';
import type { RequestContext } from '../auth/context.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Policy } from '../domain/policy.js';
import type { StagingRepo } from '../db/staging-repo.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import { NotFound, PayloadTooLarge } from '../domain/errors.js';
import { assertTransition } from '../domain/status.js';
import type { InspectionResult } from '../import/inspect/inspector.js';
import type { ClaimedCommit, DataService, Written } from './image-data.js';
import type { Image } from '../domain/image.js';
import { targetOf, type ImageAccess } from './image-access.js';
import { crashPoint } from './crash-points.js';
import type { ExpectedDigest } from '../domain/expected-digests.js';

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
  images: ImagesRepo;
  stores: StoreRegistry;
  data: Pick<DataService, 'claimedWrite' | 'makeCommitsDurable'>;
  /** the image_staging records */
  repo: StagingRepo;
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

  /** Staging serves glance-direct only: refused (404, as Glance) where that method is not enabled. */
  assertEnabled(): void {
    if (!this.deps.config.import.methods.includes('glance-direct')) throw new NotFound("'glance-direct' method is not available at this site.");
  }

  /** PUT /v2/images/{id}/stage: queued → uploading with the data staged, or queued again on any failure. */
  async stage(req: StageRequest): Promise<void> {
    const d = this.deps;
    this.assertEnabled();
    const { image, membership } = await d.access.getVisible(req.imageId, req.ctx);
    this.assertStageable(image, req.ctx, membership);
    // The staging quota (image_stage_total) is charged while streaming; the size cap bounds every image.
    const cap = { bytes: d.config.imageSizeCap, error: (n: number) => new PayloadTooLarge(`The incoming image is too large: the limit is ${n} bytes (image_size_cap).`) };
    if (req.contentLength !== undefined && req.contentLength > cap.bytes) throw cap.error(cap.bytes);

    await d.data.claimedWrite({
      ...this.stageCommit(image),
      body: req.body,
      cap,
      expectedSize: req.contentLength,
      quota: { resource: 'image_stage_total', bytes: req.contentLength, what: 'this stage' },
      expected: req.expected,
      prepare: () => this.discard(image.id),
    });
  }

  /** The checks of a stage before its claim (PUT /stage, and a resumable upload's creation with target stage). */
  assertStageable(image: Image, ctx: RequestContext, membership: Parameters<typeof targetOf>[1]): void {
    this.assertEnabled();
    this.deps.policy.enforce('modify_image', ctx, targetOf(image, membership), 'You are not permitted to stage data for this image.');
    assertTransition(image.status, 'uploading');
  }

  /** How a stage ends: the staging record, and the image uploading with its staged size (PUT /stage and resumable uploads). */
  stageCommit(image: Image): ClaimedCommit {
    const d = this.deps;
    return {
      image,
      to: 'uploading',
      doing: 'staged',
      store: d.stores.staging,
      commit: async (written, inspection, writerId) => {
        await this.record(image.id, written, inspection);
        // Glance shows the staged size at once; checksums wait for the import.
        return d.images.setWriterFields(image.id, writerId, { size: written.size, writer_id: null, writer_node: null, writer_heartbeat_at: null });
      },
      undo: (written) => d.repo.forget(image.id, written.location),
      resetOnRollback: { size: null },
    };
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
