import path from 'node:path';
import type { Config } from '../../config.js';
import type { ImagesRepo } from '../../db/images-repo.js';
import { createStore } from '../../stores/registry.js';
import type { Store } from '../../stores/store.js';
import { checkAdoptable, copyVerified, CopyProblem, planData, type FileStoreDir } from './data.js';
import { readGlance, type GlanceImage } from './read.js';
import { emptyReport, type ImportReport } from './report.js';
import { toRestored } from './restore.js';
import type { GlanceSource } from './source.js';

export interface ImportOptions {
  dryRun: boolean;
  /** where copied data goes; the default store unless named */
  targetStoreId?: string;
  /** one line per image, as it is handled */
  log: (line: string) => void;
}

/** Statuses whose image has (or must have) data. */
const WITH_DATA = new Set(['active', 'deactivated']);

/**
 * Brings every live Glance image into Imago, one image at a time, each in
 * its own transaction: a run that stops half-way leaves whole images, and
 * the next run skips the ids Imago already has. Nothing is written to
 * Glance; with dryRun nothing is written anywhere.
 */
export async function importGlance(src: GlanceSource, images: ImagesRepo, config: Config, opts: ImportOptions): Promise<ImportReport> {
  const report = emptyReport(opts.dryRun);
  const targetId = opts.targetStoreId ?? config.defaultStore;
  const targetCfg = config.stores.find((s) => s.id === targetId);
  if (!targetCfg) throw new Error(`no store "${targetId}" in the configuration (stores: ${config.stores.map((s) => s.id).join(', ')})`);
  const fileStores: FileStoreDir[] = config.stores.filter((s) => s.type === 'filesystem' && s.path).map((s) => ({ storeId: s.id, dir: path.resolve(s.path!) }));
  let target: Store | undefined;

  const snapshot = await readGlance(src);
  report.seen = snapshot.images.length;
  report.deletedSkipped = snapshot.deleted;
  try {
    for (const img of snapshot.images) {
      const label = `${img.id}${img.name ? ` (${img.name})` : ''}`;
      const problem = (text: string, created: boolean) => report.problems.push({ id: img.id, name: img.name, problem: text, created });
      const fail = (text: string) => {
        report.failed++;
        problem(text, false);
        opts.log(`${label}: not imported: ${text}`);
      };
      if (await images.exists(img.id)) {
        report.alreadyPresent++;
        opts.log(`${label}: already in Imago, left as it is`);
        continue;
      }
      if (img.status === 'deleted' || img.status === 'pending_delete') {
        fail(`it is ${img.status} in Glance`);
        continue;
      }
      const plan = WITH_DATA.has(img.status) ? planData(img, fileStores) : { kind: 'none' as const };
      if (plan.kind === 'unreachable') {
        fail(plan.reason);
        continue;
      }
      if (plan.kind === 'none' && WITH_DATA.has(img.status)) {
        fail(`it is ${img.status} in Glance but has no location to read its data from`);
        continue;
      }
      let location: { storeId: string; url: string } | undefined;
      let copiedBytes = 0;
      let unverified = false;
      try {
        if (plan.kind === 'adopt') {
          const bad = await checkAdoptable(plan.file, img.size);
          if (bad) throw new CopyProblem(bad);
          location = { storeId: plan.storeId, url: plan.url };
        } else if (plan.kind === 'copy') {
          if (opts.dryRun) {
            const bad = await checkAdoptable(plan.file, img.size);
            if (bad) throw new CopyProblem(bad);
            location = { storeId: targetId, url: '(copy)' };
            copiedBytes = img.size ?? 0;
            unverified = !img.checksum && !img.osHashValue;
          } else {
            target ??= await createStore(targetCfg);
            const copy = await copyVerified(img, plan.file, target);
            location = { storeId: targetId, url: copy.location };
            copiedBytes = copy.size;
            unverified = copy.unverified;
          }
        }
      } catch (err) {
        if (!(err instanceof CopyProblem)) throw err;
        fail(err.message);
        continue;
      }
      let converted;
      try {
        converted = toRestored(img, location);
      } catch (err) {
        if (location && plan.kind === 'copy' && !opts.dryRun) await target!.delete(location.url).catch(() => {});
        fail((err as Error).message);
        continue;
      }
      const created = opts.dryRun || (await images.restore(converted.restored));
      if (!created) {
        // Another run got there first. Its copy has the same key as ours (the image id), so the file stays.
        report.alreadyPresent++;
        continue;
      }
      report.created++;
      if (converted.note) problem(converted.note, true);
      if (unverified) report.unverified.push({ id: img.id, name: img.name });
      const how = describe(plan.kind, location, copiedBytes, img);
      if (plan.kind === 'adopt') report.adopted++;
      else if (plan.kind === 'copy') {
        report.copied++;
        report.bytesCopied += copiedBytes;
      } else report.metadataOnly++;
      opts.log(`${label}: ${opts.dryRun ? 'would create' : 'created'}, ${img.status}, ${how}`);
    }
  } finally {
    await target?.close?.();
  }
  return report;
}

function describe(kind: string, location: { storeId: string; url: string } | undefined, bytes: number, img: GlanceImage): string {
  if (kind === 'adopt') return `data adopted in place in store ${location!.storeId} (${location!.url})`;
  if (kind === 'copy') return `${bytes} bytes copied into store ${location!.storeId}${img.checksum || img.osHashValue ? ' and verified' : ' (no digest to verify)'}`;
  return 'no data';
}
