/**
 * Table shapes shared by the SQLite and PostgreSQL dialects. Booleans are
 * stored as 0/1 integers and timestamps as ISO-8601 text with milliseconds,
 * so one set of queries runs unchanged on both.
 */
import type { MetadefTables } from './metadefs-tables.js';

export interface ImagesTable {
  id: string;
  name: string | null;
  status: string;
  visibility: string;
  protected: number;
  os_hidden: number;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  min_disk: number;
  min_ram: number;
  owner: string | null;
  created_at: string;
  updated_at: string;
  /** the writer (upload, stage or import) holding the image, if any */
  writer_id: string | null;
  /** the process instance that owns the writer claim; used by crash recovery */
  writer_node: string | null;
  writer_heartbeat_at: string | null;
  /** bytes an upload or stage in flight has received so far (migration 0005); null when no writer */
  received_bytes: number | null;
}

export interface ImagePropertiesTable {
  image_id: string;
  name: string;
  value: string;
}

export interface ImageTagsTable {
  image_id: string;
  value: string;
}

export interface ImageLocationsTable {
  id: string;
  image_id: string;
  store_id: string;
  url: string;
  /** active, or pending_delete while the object is being removed */
  status: string;
  /** also the locations' order: the locations API rewrites it to keep the order its client asked for */
  created_at: string;
  /** the client's metadata object as JSON (migration 0006); null for locations Imago wrote */
  metadata: string | null;
}

export interface ImageStagingTable {
  image_id: string;
  url: string;
  size: number;
  checksum: string | null;
  os_hash_value: string | null;
  created_at: string;
  /** JSON of what format inspection found in the staged bytes (migration 0003) */
  inspection: string | null;
}

export interface ImageMembersTable {
  image_id: string;
  member_id: string;
  status: string;
  created_at: string;
  updated_at: string;
}

export interface TasksTable {
  id: string;
  type: string;
  status: string;
  owner: string | null;
  user_id: string | null;
  request_id: string | null;
  image_id: string | null;
  input: string;
  result: string | null;
  message: string;
  expires_at: string | null;
  created_at: string;
  updated_at: string;
  /** the process running the task, and when it last showed signs of life */
  runner_node: string | null;
  heartbeat_at: string | null;
  /** times a runner has started this task (migration 0003) */
  attempts: number;
  /** JSON private to the runner: stores written so far, resumable progress (migration 0003) */
  state: string | null;
  /** bytes moved so far and bytes expected when known, while the task runs (migration 0005) */
  bytes_done: number | null;
  bytes_expected: number | null;
}

export interface NodesTable {
  id: string;
  started_at: string;
  heartbeat_at: string;
}

/** Quota held by an admitted writer or creation until its result is recorded (migration 0004). */
export interface QuotaReservationsTable {
  id: string;
  project: string;
  /** image_size_total, image_stage_total (writers) or image_count_total (creations) */
  resource: string;
  image_id: string;
  /** the writer holding it; it counts only while the image still has this writer */
  writer_id: string | null;
  bytes: number;
  created_at: string;
}

/** A resumable upload in progress (migration 0007, db/uploads-repo.ts). */
export interface UploadsTable {
  id: string;
  image_id: string;
  /** the image's owner: quota and visibility are the image's */
  project: string | null;
  /** 'data' (the image's store) or 'stage' (staging, for glance-direct) */
  target: string;
  store_id: string;
  partial_key: string;
  /** the claim the upload holds: images.writer_id */
  writer_id: string;
  upload_length: number;
  upload_offset: number;
  md5_state: string | null;
  sha512_state: string | null;
  /** the Upload-Metadata header as the client sent it, echoed by HEAD */
  metadata: string | null;
  created_at: string;
  expires_at: string;
  locked_by: string | null;
  locked_until: string | null;
}

export interface Database extends MetadefTables {
  images: ImagesTable;
  image_properties: ImagePropertiesTable;
  image_tags: ImageTagsTable;
  image_locations: ImageLocationsTable;
  image_staging: ImageStagingTable;
  image_members: ImageMembersTable;
  tasks: TasksTable;
  nodes: NodesTable;
  quota_reservations: QuotaReservationsTable;
  uploads: UploadsTable;
}
