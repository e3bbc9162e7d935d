import { now, type Db } from './database.js';

/** One image_staging row: what is staged for an image, with its digests and what format inspection found (JSON). */
export interface StagingRecord {
  imageId: string;
  url: string;
  size: number;
  checksum: string | null;
  sha512: string | null;
  /** JSON text; the staging service reads it */
  inspection: string | null;
}

/** The data staged for an object, as written: where it is and its digests. */
export interface StagedObject {
  location: string;
  size: number;
  md5: string;
  sha512: string;
}

/** The image_staging table: at most one staged object per image. */
export class StagingRepo {
  constructor(private readonly db: Db) {}

  /** Records (or replaces) what is staged for the image. */
  async record(imageId: string, w: StagedObject, inspection: string | null): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('image_staging').where('image_id', '=', imageId).execute();
      await trx
        .insertInto('image_staging')
        .values({ image_id: imageId, url: w.location, size: w.size, checksum: w.md5, os_hash_value: w.sha512, created_at: now(), inspection })
        .execute();
    });
  }

  /** Swaps the staged object and updates the image's attributes in one transaction (the two agree after a crash). */
  async replace(imageId: string, w: StagedObject, inspection: string | null, imageAttrs: Record<string, string | number | null>): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('image_staging')
        .set({ url: w.location, size: w.size, checksum: w.md5, os_hash_value: w.sha512, inspection })
        .where('image_id', '=', imageId)
        .execute();
      await trx.updateTable('images').set({ ...imageAttrs, updated_at: now() }).where('id', '=', imageId).execute();
    });
  }

  async get(imageId: string): Promise<StagingRecord | undefined> {
    const row = await this.db.selectFrom('image_staging').selectAll().where('image_id', '=', imageId).executeTakeFirst();
    if (!row) return undefined;
    return { imageId: row.image_id, url: row.url, size: row.size, checksum: row.checksum, sha512: row.os_hash_value, inspection: row.inspection };
  }

  /** Forgets the record of the image, only if it still names `url` (a newer stage may have replaced it). */
  async forget(imageId: string, url: string): Promise<void> {
    await this.db.deleteFrom('image_staging').where('image_id', '=', imageId).where('url', '=', url).execute();
  }

  /** Forgets whatever record the image has. */
  async remove(imageId: string): Promise<void> {
    await this.db.deleteFrom('image_staging').where('image_id', '=', imageId).execute();
  }

  /** Every staged object's url (the consistency check: these objects have an owner). */
  async allUrls(): Promise<string[]> {
    const rows = await this.db.selectFrom('image_staging').select('url').execute();
    return rows.map((r) => r.url);
  }

  /** Images that are gone but still have a staging record (a delete that did not finish removing the staged data). */
  async ofDeletedImages(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('image_staging as s')
      .leftJoin('images as i', 'i.id', 's.image_id')
      .where('i.id', 'is', null)
      .select('s.image_id')
      .execute();
    return rows.map((r) => r.image_id);
  }
}
