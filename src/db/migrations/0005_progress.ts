import { Kysely } from 'kysely';

/**
 * Progress with totals (docs/operations.md#progress): how many bytes a
 * running import task has moved and expects to move, and how many bytes an
 * upload or stage in flight has received so far. Nullable: unknown until the
 * first bytes move, and for rows written before this migration.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('bytes_done', 'bigint').execute();
  await db.schema.alterTable('tasks').addColumn('bytes_expected', 'bigint').execute();
  await db.schema.alterTable('images').addColumn('received_bytes', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tasks').dropColumn('bytes_done').execute();
  await db.schema.alterTable('tasks').dropColumn('bytes_expected').execute();
  await db.schema.alterTable('images').dropColumn('received_bytes').execute();
}
