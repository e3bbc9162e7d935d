import type { Runtime } from '../runtime.js';
import { now } from '../db/database.js';
import { ServiceUnavailable } from '../domain/errors.js';

export interface ConsistencyReport {
  /** locations recorded in the database whose object is missing from its store */
  missingObjects: { imageId: string; storeId: string; url: string }[];
  /** objects in a store that no location or staging entry owns */
  orphanObjects: { storeId: string; url: string }[];
}

/** Proves invariant 6: every location has its object and every object has an owner. */
export async function checkConsistency(rt: Runtime): Promise<ConsistencyReport> {
  const locations = await rt.images.allLocations();
  const staged = await rt.db.selectFrom('image_staging').select(['image_id', 'url']).execute();
  const owned = new Set<string>([...locations.map((l) => l.url), ...staged.map((s) => s.url)]);
  const report: ConsistencyReport = { missingObjects: [], orphanObjects: [] };
  for (const loc of locations) {
    const store = rt.stores.holding(loc.storeId);
    if (!store || !(await store.exists(loc.url))) report.missingObjects.push({ imageId: loc.imageId, storeId: loc.storeId, url: loc.url });
  }
  for (const store of [...rt.stores.stores, rt.stores.staging]) {
    for await (const url of store.list()) if (!owned.has(url)) report.orphanObjects.push({ storeId: store.info.id, url });
  }
  return report;
}

/**
 * The start-up step of invariant 5: images whose writer died go back to
 * queued, temporary and orphaned files go, half-finished deletes finish.
 * Interrupted imports are resumed or failed by the task runner.
 *
 * With SQLite only one process uses the database, so every claim not made
 * by this process is dead. With PostgreSQL, a claim is dead when its node
 * stopped sending heartbeats.
 */
export async function recoverAtStart(rt: Runtime, opts: { sweepOrphans: boolean }): Promise<{ released: number; temporary: number; orphans: number; deleted: number }> {
  const released = await releaseDeadWriters(rt, { sweep: !opts.sweepOrphans });
  // Interrupted imports: resumed, or rolled back with a task message saying so (services/tasks.ts).
  await rt.tasks.recoverAtStart();

  // A store that is unreachable now (object storage down) must not keep the
  // server from starting: its sweep is skipped, and the next start retries.
  const skipped = (what: string) => (err: unknown) => {
    if (!(err instanceof ServiceUnavailable)) throw err;
    rt.log.warn({ err }, `${what} skipped at start: a store is unavailable; the next start retries`);
  };
  let temporary = 0;
  if (opts.sweepOrphans) {
    for (const s of [...rt.stores.stores, rt.stores.staging].filter((x) => !x.info.readOnly)) temporary += await s.removeTemporary().catch((e) => (skipped('removing temporaries')(e), 0));
  }

  const deleted = (await finishDeletes(rt)) + (await finishStagedDeletes(rt));

  let orphans = 0;
  if (opts.sweepOrphans) {
    await (async () => {
      const report = await checkConsistency(rt);
      const leftInPlace = new Map<string, number>();
      for (const o of report.orphanObjects) {
        const store = rt.stores.holding(o.storeId);
        // A read-only store may be another service's data (a Glance store directory being migrated,
        // docs/migrating-from-glance.md): what no image owns there is not ours to remove.
        if (store?.info.readOnly) {
          leftInPlace.set(o.storeId, (leftInPlace.get(o.storeId) ?? 0) + 1);
          continue;
        }
        await store?.delete(o.url);
        orphans++;
      }
      for (const [store, count] of leftInPlace) rt.log.info({ store, count }, 'objects no image owns in a read-only store are left in place');
    })().catch(skipped('the orphan sweep'));
  }
  if (released || temporary || orphans || deleted) {
    rt.log.warn({ released, temporary, orphans, deleted }, 'recovered from an unclean stop');
  }
  return { released, temporary, orphans, deleted };
}

/** Staged data of images that are gone: a delete whose staged data removal did not finish (idempotent). */
async function finishStagedDeletes(rt: Runtime): Promise<number> {
  const orphaned = await rt.db
    .selectFrom('image_staging as s')
    .leftJoin('images as i', 'i.id', 's.image_id')
    .where('i.id', 'is', null)
    .select('s.image_id')
    .execute();
  for (const { image_id } of orphaned) await rt.staging.discard(image_id);
  return orphaned.length;
}

/** Removes the objects of locations a delete marked but did not finish (idempotent). */
async function finishDeletes(rt: Runtime): Promise<number> {
  const pending = (await rt.images.allLocations()).filter((l) => l.status === 'pending_delete');
  await rt.data.removeLocations(pending.map((l) => ({ id: l.id, storeId: l.storeId, url: l.url, status: l.status })));
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
export async function releaseDeadWriters(rt: Runtime, opts: { sweep: boolean }): Promise<number> {
  const stuck = await rt.images.orphanedWriters(await liveNodes(rt));
  let released = 0;
  for (const img of stuck) {
    if (img.status === 'importing') continue;
    if (opts.sweep) await removeLeftovers(rt, img.id);
    const reset = img.status === 'uploading' ? { size: null } : {};
    if (await rt.images.releaseWriter(img.id, img.writer_id!, 'queued', reset)) released++;
    if (img.status === 'uploading') await rt.staging.discard(img.id);
  }
  return released;
}

async function removeLeftovers(rt: Runtime, imageId: string): Promise<void> {
  const owned = new Set((await rt.images.allLocations()).filter((l) => l.imageId === imageId).map((l) => l.url));
  for (const store of [...rt.stores.stores, rt.stores.staging]) {
    try {
      await store.removeTemporary(imageId);
      for await (const url of store.list()) if (url.includes(imageId) && !owned.has(url)) await store.delete(url);
    } catch (err) {
      rt.log.warn({ err, imageId, store: store.info.id }, 'could not remove what a dead writer left; the next start retries');
    }
  }
}

/**
 * How long a node may miss heartbeats before its claims are taken as dead
 * (shared database only): nodeTimeoutSeconds (IMAGO_NODE_TIMEOUT_SECONDS), default 30.
 */
export function nodeTimeoutMs(rt: Runtime): number {
  return rt.config.nodeTimeoutSeconds * 1000;
}

export async function liveNodes(rt: Runtime): Promise<string[]> {
  if (rt.dialect === 'sqlite') return [rt.nodeId];
  const cutoff = new Date(Date.now() - nodeTimeoutMs(rt)).toISOString();
  const rows = await rt.db.selectFrom('nodes').select('id').where('heartbeat_at', '>=', cutoff).execute();
  return [rt.nodeId, ...rows.map((r) => r.id)];
}

/** Announces this process and keeps its heartbeat fresh, so other nodes can tell it is alive. */
export async function startHeartbeat(rt: Runtime): Promise<() => Promise<void>> {
  const ts = now();
  await rt.db.insertInto('nodes').values({ id: rt.nodeId, started_at: ts, heartbeat_at: ts }).execute();
  const period = nodeTimeoutMs(rt) / 3;
  const timer = setInterval(() => {
    rt.db.updateTable('nodes').set({ heartbeat_at: now() }).where('id', '=', rt.nodeId).execute().catch((err) => rt.log.warn({ err }, 'heartbeat failed'));
  }, period);
  timer.unref();
  // With a shared database, nodes die while this one runs: release their writers as their heartbeats stop.
  let reaping: Promise<unknown> = Promise.resolve();
  const reaper = rt.dialect === 'sqlite' ? undefined : setInterval(() => {
    reaping = releaseDeadWriters(rt, { sweep: true })
      .then((n) => n && rt.log.warn({ released: n }, 'released the uploads of a node that stopped'))
      .then(() => finishDeletes(rt))
      .catch((err) => rt.log.warn({ err }, 'could not release the writers of dead nodes'));
  }, period);
  reaper?.unref();
  return async () => {
    clearInterval(timer);
    if (reaper) clearInterval(reaper);
    await reaping;
    await rt.db.deleteFrom('nodes').where('id', '=', rt.nodeId).execute().catch(() => {});
  };
}
