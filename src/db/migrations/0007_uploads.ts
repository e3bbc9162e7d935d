import { Kysely } from 'kysely';

/**
 * Resumable uploads (tus, docs/api.md#resumable-uploads): one row per upload
 * in progress. The row owns the image's claim (images.writer_id = writer_id)
 * and the partial data in the target store, so that any node can resume it
 * and no start-up sweep or dead-node reaper takes them away; only expiry or
 * termination does. The md5 and sha512 states are hash-wasm's saved states
 * (base64) after `upload_offset` bytes. `locked_by`/`locked_until`: the one
 * request appending to the upload, a lease so a dead node's lock runs out.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('uploads')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('project', 'varchar(255)')
    .addColumn('target', 'varchar(8)', (c) => c.notNull())
    .addColumn('store_id', 'varchar(255)', (c) => c.notNull())
    .addColumn('partial_key', 'varchar(255)', (c) => c.notNull())
    .addColumn('writer_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('upload_length', 'bigint', (c) => c.notNull())
    .addColumn('upload_offset', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('md5_state', 'text')
    .addColumn('sha512_state', 'text')
    .addColumn('metadata', 'text')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('locked_by', 'varchar(64)')
    .addColumn('locked_until', 'varchar(32)')
    .execute();
  await db.schema.createIndex('ix_uploads_image').on('uploads').column('image_id').execute();
  await db.schema.createIndex('ix_uploads_writer').on('uploads').column('writer_id').execute();
  await db.schema.createIndex('ix_uploads_expires').on('uploads').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('uploads').ifExists().execute();
}
