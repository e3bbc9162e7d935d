import { Kysely } from 'kysely';

/**
 * Import bookkeeping: how many times a task has been started (crash recovery
 * resumes an interrupted import a bounded number of times), the task's private
 * progress (which stores it has written; never shown by the API), and what
 * format inspection found in staged data.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('tasks').addColumn('state', 'text').execute();
  await db.schema.alterTable('image_staging').addColumn('inspection', 'text').execute();
  await db.schema.createIndex('ix_tasks_expires').on('tasks').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('ix_tasks_expires').ifExists().execute();
  await db.schema.alterTable('image_staging').dropColumn('inspection').execute();
  await db.schema.alterTable('tasks').dropColumn('state').execute();
  await db.schema.alterTable('tasks').dropColumn('attempts').execute();
}
