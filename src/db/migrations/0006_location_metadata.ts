import { Kysely } from 'kysely';

/**
 * The locations API (docs/locations.md): each location keeps the metadata its
 * client gave it (a JSON object, as Glance's locations carry), shown by
 * `locations` when `locations.showMultiple` is on. Null for the locations
 * Imago wrote itself (an empty object to the API).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('image_locations').addColumn('metadata', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('image_locations').dropColumn('metadata').execute();
}
