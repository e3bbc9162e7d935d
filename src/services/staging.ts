import type { Runtime } from '../runtime.js';

/** Staged data of images waiting for glance-direct import. */
export class StagingService {
  constructor(private readonly rt: Runtime) {}

  /** Forgets and removes whatever is staged for the image. */
  async discard(imageId: string): Promise<void> {
    const row = await this.rt.db.selectFrom('image_staging').selectAll().where('image_id', '=', imageId).executeTakeFirst();
    if (!row) return;
    await this.rt.stores.staging.delete(row.url).catch((err) => this.rt.log.warn({ err, imageId }, 'could not remove staged data'));
    await this.rt.db.deleteFrom('image_staging').where('image_id', '=', imageId).execute();
  }
}
