import type { Logger } from 'pino';
import type { StagingRepo } from '../db/staging-repo.js';
import type { ImagesRepo } from '../db/images-repo.js';
import { StoreUnavailable } from '../stores/errors.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { DataService } from './image-data.js';
import type { NodeLiveness } from './nodes.js';
import type { StagingService } from './staging.js';

export interface ConsistencyReport {
  /** locations recorded in the database whose object is missing from its store */
  missingObjects: { imageId: string; storeId: string; url: string }[];
  /** objects in a store that no location or staging entry owns */
  orphanObjects: { storeId: string; url: string }[];
}

/** What the consistency check reads: the locations, the staging records and the stores. */
export interface ConsistencyDeps {
  images: ImagesRepo;
  /** the image_staging records (staged objects have an owner too) */
  stagingRepo: StagingRepo;
  stores: StoreRegistry;
}

/** Proves invariant 6: every location has its object and every object has an owner. */
export async function checkConsistency(deps: ConsistencyDeps): Promise<ConsistencyReport> {
  const locations = await deps.images.allLocations();
  const owned = new Set<string>([...locations.map((l) => l.url), ...(await deps.stagingRepo.allUrls())]);
  const report: ConsistencyReport = { missingObjects: [], orphanObjects: [] };
  for (const loc of locations) {
    const store = deps.stores.holding(loc.storeId);
    if (!store || !(await store.exists(loc.url))) report.missingObjects.push({ imageId: loc.imageId, storeId: loc.storeId, url: loc.url });
  }
  for (const store of [...deps.stores.stores, deps.stores.staging]) {
    for await (const url of store.list()) if (!owned.has(url)) report.orphanObjects.push({ storeId: store.info.id, url });
  }
  return report;
}

export interface RecoveryDeps extends ConsistencyDeps {
  staging: Pick<StagingService, 'discard'>;
  data: Pick<DataService, 'removeLocations'>;
  /** the task runner's own start-up step for interrupted imports */
  tasks: { recoverAtStart(): Promise<unknown> };
  nodes: NodeLiveness;
  log: Logger;
}

/**
 * Invariants 3 and 5 for writers whose process is gone: the start-up step,
 * and (shared database) the heartbeat that tells other nodes this one lives
 * while it releases the claims of nodes that stopped.
 */
export class Recovery {
  constructor(private readonly deps: RecoveryDeps) {}

  /**
   * The start-up step of invariant 5: images whose writer died go back to
   * queued, temporary and orphaned files go, half-finished deletes finish.
   * Interrupted imports are resumed or failed by the task runner.
   *
   * With SQLite only one process uses the database, so every claim not made
   * by this process is dead. With PostgreSQL, a claim is dead when its node
   * stopped sending heartbeats.
   */
  async recoverAtStart(opts: { sweepOrphans: boolean }): Promise<{ released: number; temporary: number; orphans: number; deleted: number }> {
    const released = await this.releaseDeadWriters({ sweep: !opts.sweepOrphans });
    // Interrupted imports: resumed, or rolled back with a task message saying so (services/tasks.ts).
    await this.deps.tasks.recoverAtStart();

    // A store that is unreachable now (object storage down) must not keep the
    // server from starting: its sweep is skipped, and the next start retries.
    const skipped = (what: string) => (err: unknown) => {
      if (!(err instanceof StoreUnavailable)) throw err;
      this.deps.log.warn({ err }, `${what} skipped at start: a store is unavailable; the next start retries`);
    };
    let temporary = 0;
    if (opts.sweepOrphans) {
      for (const s of [...this.deps.stores.stores, this.deps.stores.staging].filter((x) => !x.info.readOnly)) temporary += await s.removeTemporary().catch((e) => (skipped('removing temporaries')(e), 0));
    }

    const deleted = (await this.finishDeletes()) + (await this.finishStagedDeletes());

    let orphans = 0;
    if (opts.sweepOrphans) {
      await (async () => {
        const report = await checkConsistency(this.deps);
        const leftInPlace = new Map<string, number>();
        for (const o of report.orphanObjects) {
          const store = this.deps.stores.holding(o.storeId);
          // A read-only store may be another service's data (a Glance store directory being migrated,
          // docs/migrating-from-glance.md): what no image owns there is not ours to remove.
          if (store?.info.readOnly) {
            leftInPlace.set(o.storeId, (leftInPlace.get(o.storeId) ?? 0) + 1);
            continue;
          }
          await store?.delete(o.url);
          orphans++;
        }
        for (const [store, count] of leftInPlace) this.deps.log.info({ store, count }, 'objects no image owns in a read-only store are left in place');
      })().catch(skipped('the orphan sweep'));
    }
    if (released || temporary || orphans || deleted) {
      this.deps.log.warn({ released, temporary, orphans, deleted }, 'recovered from an unclean stop');
    }
    return { released, temporary, orphans, deleted };
  }

  /** Staged data of images that are gone: a delete whose staged data removal did not finish (idempotent). */
  private async finishStagedDeletes(): Promise<number> {
    const orphaned = await this.deps.stagingRepo.ofDeletedImages();
    for (const imageId of orphaned) await this.deps.staging.discard(imageId);
    return orphaned.length;
  }

  /** Removes the objects of locations a delete marked but did not finish (idempotent). */
  private async finishDeletes(): Promise<number> {
    const pending = (await this.deps.images.allLocations()).filter((l) => l.status === 'pending_delete');
    await this.deps.data.removeLocations(pending.map((l) => ({ id: l.id, storeId: l.storeId, url: l.url, status: l.status })));
    return pending.length;
  }

  /**
   * Applies invariant 3 to every writer whose process is gone: its image goes
   * back to queued (staged data discarded). With `sweep`, the writer's
   * leftovers are removed first, while its claim still keeps other writers
   * away: temporaries of the image, and objects naming the image that no
   * location or staging entry owns (complete but never committed). Imports
   * (status importing) belong to the task runner.
   */
  async releaseDeadWriters(opts: { sweep: boolean }): Promise<number> {
    const stuck = await this.deps.images.orphanedWriters(await this.deps.nodes.live());
    let released = 0;
    for (const img of stuck) {
      if (img.status === 'importing') continue;
      if (opts.sweep) await this.removeLeftovers(img.id);
      const reset = img.status === 'uploading' ? { size: null } : {};
      if (await this.deps.images.releaseWriter(img.id, img.writer_id!, 'queued', reset)) released++;
      if (img.status === 'uploading') await this.deps.staging.discard(img.id);
    }
    return released;
  }

  private async removeLeftovers(imageId: string): Promise<void> {
    const owned = new Set((await this.deps.images.allLocations()).filter((l) => l.imageId === imageId).map((l) => l.url));
    await this.deps.stores.removeLeftovers(imageId, owned, (store, err) =>
      this.deps.log.warn({ err, imageId, store: store.info.id }, 'could not remove what a dead writer left; the next start retries'),
    );
  }

  /** Announces this process and keeps its heartbeat fresh, so other nodes can tell it is alive. */
  async startHeartbeat(): Promise<() => Promise<void>> {
    const { nodes } = this.deps;
    await nodes.repo.announce(nodes.nodeId);
    const period = nodes.timeoutMs / 3;
    const timer = setInterval(() => {
      nodes.repo.beat(nodes.nodeId).catch((err) => this.deps.log.warn({ err }, 'heartbeat failed'));
    }, period);
    timer.unref();
    // With a shared database, nodes die while this one runs: release their writers as their heartbeats stop.
    let reaping: Promise<unknown> = Promise.resolve();
    const reaper = nodes.dialect === 'sqlite' ? undefined : setInterval(() => {
      reaping = this.releaseDeadWriters({ sweep: true })
        .then((n) => n && this.deps.log.warn({ released: n }, 'released the uploads of a node that stopped'))
        .then(() => this.finishDeletes())
        .catch((err) => this.deps.log.warn({ err }, 'could not release the writers of dead nodes'));
    }, period);
    reaper?.unref();
    return async () => {
      clearInterval(timer);
      if (reaper) clearInterval(reaper);
      await reaping;
      await nodes.repo.remove(nodes.nodeId).catch(() => {});
    };
  }
}
