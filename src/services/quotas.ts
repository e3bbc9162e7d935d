import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../auth/context.js';
import type { Config, QuotaLimits } from '../config.js';
import {
  QUOTA_NAMES,
  limitInUnits,
  limitsFor,
  nextReservation,
  noRoomLeft,
  overLimit,
  reportedUsage,
  type ByteQuota,
  type QuotaLease,
  type QuotaName,
  type WriterAdmission,
} from '../domain/quota.js';
import type { QuotasRepo } from '../db/quotas-repo.js';

/** Per-project limits (src/services/quotas.ts, docs/quotas.md); absent when quotas are off. */
export interface QuotaChecker {
  /** image_count_total: admits image `imageId` for `owner` (413 when over); release once it is created or failed. */
  admitCreate(owner: string | null, imageId: string): Promise<{ release(): Promise<void> }>;
  /** An early, unreserved estimate of the bytes `owner` may still store (refuse a too-large Content-Length upfront). */
  remainingBytes(ctx: RequestContext, owner: string | null): Promise<{ bytes: number; error: (n: number) => Error } | undefined>;
  /**
   * Admits a writer that holds the image's claim: checks image_count_uploading
   * and reserves bytes against image_size_total (stores) or image_stage_total
   * (staging). Pass the lease to DataService.write (`quota`) so unknown sizes
   * are charged while streaming; release it when the writer ends. 413 when over.
   */
  admitWriter(admission: WriterAdmission): Promise<QuotaLease>;
  /** Limits and usage of a project, as GET /v2/info/usage shows them. */
  usage(project: string): Promise<Record<string, { limit: number; usage: number }>>;
}

const NO_LEASE: QuotaLease = { charge: () => undefined, release: async () => {} };

/**
 * Per-project limits in the manner of Glance's unified limits
 * (image_size_total, image_stage_total, image_count_total,
 * image_count_uploading), enforced exactly, also under concurrency: every
 * decision reads usage and records a reservation in one serialized
 * transaction per project, and a writer that does not know its size charges
 * its bytes as they stream (QuotaLease.meter), so two racing uploads can
 * never both pass a limit that fits one. The image's owner is charged.
 */
export class QuotaService implements QuotaChecker {
  constructor(
    private readonly repo: QuotasRepo,
    private readonly config: Pick<Config, 'quotas'>,
  ) {}

  limits(project: string): QuotaLimits {
    return limitsFor(this.config.quotas.defaults, this.config.quotas.projects, project);
  }

  /** GET /v2/info/usage: each limit with the project's usage (sizes in MiB, as Glance). */
  async usage(project: string): Promise<Record<QuotaName, { limit: number; usage: number }>> {
    const limits = this.limits(project);
    const used = await this.repo.read(async (q) => ({
      image_size_total: await q.bytesUsed(project, 'image_size_total'),
      image_stage_total: await q.bytesUsed(project, 'image_stage_total'),
      image_count_total: await q.imageCount(project),
      image_count_uploading: await q.uploadingCount(project),
    }));
    const out = {} as Record<QuotaName, { limit: number; usage: number }>;
    for (const name of QUOTA_NAMES) out[name] = { limit: limits[name], usage: reportedUsage(name, used[name]) };
    return out;
  }

  /** image_count_total: admits image `imageId` for `owner`; the caller releases once the image row exists (or creation failed). */
  async admitCreate(owner: string | null, imageId: string): Promise<{ release(): Promise<void> }> {
    const none = { release: async () => {} };
    if (!owner) return none;
    const limit = this.limits(owner).image_count_total;
    if (limitInUnits('image_count_total', limit) === Infinity) return none;
    const id = randomUUID();
    await this.repo.atomically(owner, async (q) => {
      await q.sweep(owner);
      const count = await q.imageCount(owner);
      if (count + 1 > limitInUnits('image_count_total', limit)) throw overLimit(owner, 'image_count_total', limit, count, 1, 'a new image');
      await q.reserve({ id, project: owner, resource: 'image_count_total', imageId, writerId: null, bytes: 0 });
    });
    return { release: () => this.repo.forget(id) };
  }

  /** An early, unreserved answer for uploads: how many bytes `owner` may still store. */
  async remainingBytes(_ctx: RequestContext, owner: string | null): Promise<{ bytes: number; error: (n: number) => Error } | undefined> {
    if (!owner) return undefined;
    const limit = this.limits(owner).image_size_total;
    const cap = limitInUnits('image_size_total', limit);
    if (cap === Infinity) return undefined;
    const used = await this.repo.read((q) => q.bytesUsed(owner, 'image_size_total'));
    const bytes = Math.max(0, cap - used);
    return { bytes, error: () => noRoomLeft(owner, 'image_size_total', limit, used, 'this upload') };
  }

  /**
   * Admits a writer (upload, stage, import, copy) that has claimed
   * `writerId`: checks image_count_uploading and reserves its known bytes
   * (or a first step of them) against `resource`. 413 when it does not fit.
   */
  async admitWriter(a: WriterAdmission): Promise<QuotaLease> {
    const project = a.owner;
    if (!project) return NO_LEASE;
    const limits = this.limits(project);
    const byteLimit = limitInUnits(a.resource, limits[a.resource]);
    const uploadingLimit = limitInUnits('image_count_uploading', limits.image_count_uploading);
    const what = a.what ?? (a.resource === 'image_stage_total' ? 'this stage' : 'this upload');
    const id = randomUUID();
    const createdAt = new Date().toISOString();
    const held = await this.repo.atomically(project, async (q) => {
      await q.sweep(project);
      if (uploadingLimit !== Infinity) {
        const n = await q.uploadingCount(project, a.imageId);
        if (n + 1 > uploadingLimit) throw overLimit(project, 'image_count_uploading', limits.image_count_uploading, n, 1, what);
      }
      let bytes = a.bytes ?? 0;
      if (byteLimit !== Infinity) {
        const used = await q.bytesUsed(project, a.resource);
        // Known sizes are reserved whole; unknown ones start with a step and grow while streaming.
        const next = a.bytes !== undefined ? (a.bytes <= byteLimit - used ? a.bytes : undefined) : nextReservation(0, byteLimit - used);
        if (next === undefined) throw overLimit(project, a.resource, limits[a.resource], used, a.bytes ?? 0, what);
        bytes = next;
      }
      await q.reserve({ id, project, resource: a.resource, imageId: a.imageId, writerId: a.writerId, bytes, createdAt });
      return bytes;
    });
    if (byteLimit === Infinity) return { charge: () => undefined, release: () => this.repo.forget(id) };
    return new Lease(this.repo, { id, createdAt }, project, a.resource, limits[a.resource], byteLimit, held, what);
  }
}

/** How long a writer short of room waits for younger writers to give theirs back before it gives up. */
const WAIT_FOR_YOUNGER_MS = 10_000;

/**
 * The reservation of one admitted writer; its meter grows it as bytes come.
 * When two writers of unknown size together outgrow the limit, the younger
 * one is refused at once and the older waits for it to let go, so one of
 * them finishes rather than both failing half-way.
 */
class Lease implements QuotaLease {
  constructor(
    private readonly repo: QuotasRepo,
    private readonly self: { id: string; createdAt: string },
    private readonly project: string,
    private readonly resource: ByteQuota,
    private readonly limit: number,
    private readonly byteLimit: number,
    private held: number,
    private readonly what: string,
  ) {}

  charge(total: number): Promise<void> | undefined {
    return total <= this.held ? undefined : this.grow(total);
  }

  private async grow(need: number): Promise<void> {
    const deadline = Date.now() + WAIT_FOR_YOUNGER_MS;
    for (;;) {
      const outcome = await this.repo.atomically(this.project, async (q) => {
        const others = await q.bytesUsed(this.project, this.resource, { id: this.self.id });
        const next = nextReservation(need, this.byteLimit - others);
        if (next !== undefined) {
          await q.hold(this.self.id, next);
          this.held = next;
          return { ok: true as const };
        }
        const olderOnly = await q.bytesUsed(this.project, this.resource, { id: this.self.id, youngerThan: this.self.createdAt });
        return { ok: false as const, others, fitsWithoutYounger: need <= this.byteLimit - olderOnly };
      });
      if (outcome.ok) return;
      if (!outcome.fitsWithoutYounger || Date.now() > deadline) {
        throw overLimit(this.project, this.resource, this.limit, outcome.others + this.held, need - this.held, this.what);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async release(): Promise<void> {
    await this.repo.forget(this.self.id);
  }
}

