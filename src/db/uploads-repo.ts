import { now, type Db } from './database.js';
import type { UploadsTable } from './schema.js';

/** A resumable upload as stored (numbers as numbers: PostgreSQL returns bigint as text). */
export interface UploadRecord {
  id: string;
  imageId: string;
  project: string | null;
  target: 'data' | 'stage';
  storeId: string;
  partialKey: string;
  writerId: string;
  length: number;
  offset: number;
  /** hash-wasm states after `offset` bytes; absent while offset is 0 */
  states?: { md5: string; sha512: string };
  metadata: string | null;
  createdAt: string;
  expiresAt: string;
  /** a request holds the upload's lock (its lease has not run out) */
  locked?: boolean;
}

export type NewUpload = Omit<UploadRecord, 'offset' | 'states' | 'createdAt' | 'locked'>;

function toRecord(r: UploadsTable): UploadRecord {
  return {
    id: r.id,
    imageId: r.image_id,
    project: r.project,
    target: r.target === 'stage' ? 'stage' : 'data',
    storeId: r.store_id,
    partialKey: r.partial_key,
    writerId: r.writer_id,
    length: Number(r.upload_length),
    offset: Number(r.upload_offset),
    states: r.md5_state && r.sha512_state ? { md5: r.md5_state, sha512: r.sha512_state } : undefined,
    metadata: r.metadata,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    locked: r.locked_by !== null && r.locked_until !== null && r.locked_until > new Date().toISOString(),
  };
}

/** The uploads table (migration 0007): resumable uploads, their progress, hash states and locks. */
export class UploadsRepo {
  constructor(private readonly db: Db) {}

  async create(u: NewUpload): Promise<UploadRecord> {
    const createdAt = now();
    await this.db
      .insertInto('uploads')
      .values({
        id: u.id,
        image_id: u.imageId,
        project: u.project,
        target: u.target,
        store_id: u.storeId,
        partial_key: u.partialKey,
        writer_id: u.writerId,
        upload_length: u.length,
        upload_offset: 0,
        metadata: u.metadata,
        created_at: createdAt,
        expires_at: u.expiresAt,
      })
      .execute();
    return { ...u, offset: 0, createdAt };
  }

  async get(id: string): Promise<UploadRecord | undefined> {
    const r = await this.db.selectFrom('uploads').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? toRecord(r) : undefined;
  }

  /**
   * Takes the upload's lock for one request: a compare-and-set, so of two
   * requests appending at once exactly one wins. The lock is a lease
   * (`ttlMs`) so that a node that dies holding it does not hold it forever;
   * the holder renews it while it writes.
   */
  async lock(id: string, holder: string, ttlMs: number): Promise<boolean> {
    const t = now();
    const res = await this.db
      .updateTable('uploads')
      .set({ locked_by: holder, locked_until: new Date(Date.now() + ttlMs).toISOString() })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('locked_by', 'is', null), eb('locked_until', '<', t)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async renew(id: string, holder: string, ttlMs: number): Promise<boolean> {
    const res = await this.db
      .updateTable('uploads')
      .set({ locked_until: new Date(Date.now() + ttlMs).toISOString() })
      .where('id', '=', id)
      .where('locked_by', '=', holder)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async unlock(id: string, holder: string): Promise<void> {
    await this.db.updateTable('uploads').set({ locked_by: null, locked_until: null }).where('id', '=', id).where('locked_by', '=', holder).execute();
  }

  /**
   * Records the bytes appended and the hash states after them, and pushes
   * the expiry on: only by the lock's holder, from the offset it started at.
   */
  async advance(id: string, holder: string, from: number, to: number, states: { md5: string; sha512: string }, expiresAt: string): Promise<boolean> {
    const res = await this.db
      .updateTable('uploads')
      .set({ upload_offset: to, md5_state: states.md5, sha512_state: states.sha512, expires_at: expiresAt })
      .where('id', '=', id)
      .where('locked_by', '=', holder)
      .where('upload_offset', '=', from)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom('uploads').where('id', '=', id).execute();
  }

  /** Uploads whose expiry passed and that no live request holds. */
  async expired(at = now()): Promise<UploadRecord[]> {
    const rows = await this.db
      .selectFrom('uploads')
      .selectAll()
      .where('expires_at', '<', at)
      .where((eb) => eb.or([eb('locked_by', 'is', null), eb('locked_until', '<', at)]))
      .execute();
    return rows.map(toRecord);
  }

  /** Uploads of images that no longer exist (deleted while the upload was open). */
  async ofMissingImages(): Promise<UploadRecord[]> {
    const rows = await this.db
      .selectFrom('uploads as u')
      .selectAll('u')
      .where((eb) => eb.not(eb.exists(eb.selectFrom('images as i').select('i.id').whereRef('i.id', '=', 'u.image_id').where('i.status', 'not in', ['deleted', 'killed']))))
      .execute();
    return rows.map(toRecord);
  }
}
