import { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('images')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(255)')
    .addColumn('status', 'varchar(30)', (c) => c.notNull())
    .addColumn('visibility', 'varchar(20)', (c) => c.notNull())
    .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('os_hidden', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('disk_format', 'varchar(20)')
    .addColumn('container_format', 'varchar(20)')
    .addColumn('size', 'bigint')
    .addColumn('virtual_size', 'bigint')
    .addColumn('checksum', 'varchar(32)')
    .addColumn('os_hash_algo', 'varchar(64)')
    .addColumn('os_hash_value', 'varchar(128)')
    .addColumn('min_disk', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('min_ram', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('owner', 'varchar(255)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('writer_id', 'varchar(64)')
    .addColumn('writer_node', 'varchar(64)')
    .addColumn('writer_heartbeat_at', 'varchar(32)')
    .execute();
  await db.schema.createIndex('ix_images_created').on('images').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('ix_images_owner').on('images').columns(['owner', 'status']).execute();
  await db.schema.createIndex('ix_images_visibility').on('images').column('visibility').execute();
  await db.schema.createIndex('ix_images_writer').on('images').column('writer_node').execute();

  await db.schema
    .createTable('image_properties')
    .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('pk_image_properties', ['image_id', 'name'])
    .execute();
  await db.schema.createIndex('ix_image_properties_name').on('image_properties').columns(['name', 'value']).execute();

  await db.schema
    .createTable('image_tags')
    .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
    .addColumn('value', 'varchar(255)', (c) => c.notNull())
    .addPrimaryKeyConstraint('pk_image_tags', ['image_id', 'value'])
    .execute();
  await db.schema.createIndex('ix_image_tags_value').on('image_tags').column('value').execute();

  await db.schema
    .createTable('image_locations')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('store_id', 'varchar(255)', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('status', 'varchar(30)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ix_image_locations_image').on('image_locations').column('image_id').execute();

  await db.schema
    .createTable('image_staging')
    .addColumn('image_id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('checksum', 'varchar(32)')
    .addColumn('os_hash_value', 'varchar(128)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('image_members')
    .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
    .addColumn('member_id', 'varchar(255)', (c) => c.notNull())
    .addColumn('status', 'varchar(20)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('pk_image_members', ['image_id', 'member_id'])
    .execute();
  await db.schema.createIndex('ix_image_members_member').on('image_members').columns(['member_id', 'status']).execute();

  await db.schema
    .createTable('tasks')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('type', 'varchar(30)', (c) => c.notNull())
    .addColumn('status', 'varchar(30)', (c) => c.notNull())
    .addColumn('owner', 'varchar(255)')
    .addColumn('user_id', 'varchar(255)')
    .addColumn('request_id', 'varchar(64)')
    .addColumn('image_id', 'varchar(36)')
    .addColumn('input', 'text', (c) => c.notNull())
    .addColumn('result', 'text')
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'varchar(32)')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('runner_node', 'varchar(64)')
    .addColumn('heartbeat_at', 'varchar(32)')
    .execute();
  await db.schema.createIndex('ix_tasks_image').on('tasks').column('image_id').execute();
  await db.schema.createIndex('ix_tasks_status').on('tasks').columns(['status', 'runner_node']).execute();

  await db.schema
    .createTable('nodes')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('started_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('heartbeat_at', 'varchar(32)', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['nodes', 'tasks', 'image_members', 'image_staging', 'image_locations', 'image_tags', 'image_properties', 'images']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
