import { Kysely } from 'kysely';

/**
 * Quota reservations: what admitted writers and creations hold against a
 * project's limits until their result is recorded (src/services/quotas.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('quota_reservations')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('project', 'varchar(255)', (c) => c.notNull())
    .addColumn('resource', 'varchar(40)', (c) => c.notNull())
    .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('writer_id', 'varchar(64)')
    .addColumn('bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ix_quota_reservations_project').on('quota_reservations').columns(['project', 'resource']).execute();
  await db.schema.createIndex('ix_quota_reservations_writer').on('quota_reservations').column('writer_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('quota_reservations').ifExists().execute();
}
