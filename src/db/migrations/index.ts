import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_metadefs.js';
import * as m0003 from './0003_import.js';
import * as m0004 from './0004_quota_reservations.js';
import * as m0005 from './0005_progress.js';
import * as m0006 from './0006_location_metadata.js';
import * as m0007 from './0007_uploads.js';

/**
 * Migrations are listed here rather than discovered on disk, so the compiled
 * build carries them and their order is explicit. Add new ones at the end.
 */
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_metadefs': m0002,
  '0003_import': m0003,
  '0004_quota_reservations': m0004,
  '0005_progress': m0005,
  '0006_location_metadata': m0006,
  '0007_uploads': m0007,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
