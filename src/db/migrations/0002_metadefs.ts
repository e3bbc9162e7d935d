import type { Kysely } from 'kysely';
import { orderedId } from '../ordered-id.js';

/**
 * The resource types every cloud has. Glance gets them from the definition
 * files an operator loads; Imago seeds them so a fresh catalog already offers
 * them to new associations (tempest picks the first one it lists).
 */
export const SEEDED_RESOURCE_TYPES = ['OS::Glance::Image', 'OS::Cinder::Volume', 'OS::Nova::Flavor', 'OS::Nova::Aggregate', 'OS::Nova::Server'];

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('metadef_namespaces')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('namespace', 'varchar(80)', (c) => c.notNull().unique())
    .addColumn('display_name', 'varchar(80)')
    .addColumn('description', 'text')
    .addColumn('visibility', 'varchar(32)', (c) => c.notNull())
    .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('owner', 'varchar(255)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ix_metadef_namespaces_owner').on('metadef_namespaces').column('owner').execute();

  for (const table of ['metadef_objects', 'metadef_properties', 'metadef_tags']) {
    let t = db.schema
      .createTable(table)
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('namespace_id', 'varchar(36)', (c) => c.notNull().references('metadef_namespaces.id').onDelete('cascade'))
      .addColumn('name', 'varchar(80)', (c) => c.notNull());
    if (table === 'metadef_objects') t = t.addColumn('description', 'text').addColumn('required', 'text');
    if (table !== 'metadef_tags') t = t.addColumn('json_schema', 'text', (c) => c.notNull());
    await t
      .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
      .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
      .addUniqueConstraint(`uq_${table}_namespace_name`, ['namespace_id', 'name'])
      .execute();
  }

  await db.schema
    .createTable('metadef_resource_types')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(80)', (c) => c.notNull().unique())
    .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('metadef_namespace_resource_types')
    .addColumn('namespace_id', 'varchar(36)', (c) => c.notNull().references('metadef_namespaces.id').onDelete('cascade'))
    .addColumn('resource_type_id', 'varchar(36)', (c) => c.notNull().references('metadef_resource_types.id'))
    .addColumn('prefix', 'varchar(80)')
    .addColumn('properties_target', 'varchar(80)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('pk_metadef_namespace_resource_types', ['namespace_id', 'resource_type_id'])
    .execute();
  await db.schema.createIndex('ix_metadef_ns_res_types_rt').on('metadef_namespace_resource_types').column('resource_type_id').execute();

  const ts = new Date().toISOString();
  await db
    .insertInto('metadef_resource_types')
    .values(SEEDED_RESOURCE_TYPES.map((name) => ({ id: orderedId(), name, protected: 1, created_at: ts, updated_at: ts })))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['metadef_namespace_resource_types', 'metadef_resource_types', 'metadef_tags', 'metadef_properties', 'metadef_objects', 'metadef_namespaces']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
