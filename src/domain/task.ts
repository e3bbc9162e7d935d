/**
 * Import tasks: what a task is, and the private progress a runner keeps in
 * the database so an interrupted import can be resumed or rolled back after
 * a crash. Shared by the tasks repository (db/) and the import services,
 * so it lives in the pure layer.
 */
export type TaskStatus = 'pending' | 'processing' | 'success' | 'failure';
export const TASK_STATUSES: TaskStatus[] = ['pending', 'processing', 'success', 'failure'];
export const TASK_TYPES = ['import', 'api_image_import', 'location_import'] as const;

export type ImportMethod = 'glance-direct' | 'web-download' | 'copy-image' | 'glance-download' | typeof LOCATION_IMPORT;

/**
 * The internal method of a `location_import` task (POST /v2/images/{id}/locations,
 * API 2.17): never a method clients name in an import request.
 */
export const LOCATION_IMPORT = 'location-import';

/** The body of POST /v2/images/{id}/import, validated. */
export interface ImportRequest {
  method: {
    name: ImportMethod;
    uri?: string;
    glance_image_id?: string;
    glance_region?: string;
    glance_service_interface?: string;
    /** location-import: the digests the caller says the object has */
    validation_data?: { checksum?: string; os_hash_algo?: string; os_hash_value?: string };
  };
  stores?: string[];
  all_stores?: boolean;
  all_stores_must_succeed?: boolean;
}

/** What Glance records as an api_image_import task's input. */
export interface ImportTaskInput {
  image_id: string;
  import_req: ImportRequest;
  backend: string[];
}

/** Runner-private progress; never shown by the API. */
export interface TaskState {
  /** roles of the requester (metadata injection skips some roles) */
  roles?: string[];
  /** stores this task has recorded a location in */
  committed?: string[];
  /** stores that failed, with the reason */
  failed?: Record<string, string>;
  /** glance-download: formats the image had before the remote ones replaced them */
  previousFormats?: { disk_format: string | null; container_format: string | null };
  /** glance-download: properties copied from the remote image that the image did not have */
  copiedProperties?: string[];
  /** glance-download: values the copied properties replaced */
  previousProperties?: Record<string, string>;
  /** the task was interrupted (stop or crash) and picked up again */
  resumed?: boolean;
}

/** What a running task has moved so far; shown by the API as `progress` (an Imago extension). */
export interface TaskProgress {
  bytesDone: number;
  /** null while the total is unknown (a web-download without Content-Length) */
  bytesExpected: number | null;
}

export interface Task {
  id: string;
  type: string;
  status: TaskStatus;
  owner: string | null;
  userId: string | null;
  requestId: string | null;
  imageId: string | null;
  input: Record<string, unknown>;
  result: Record<string, unknown> | null;
  message: string;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  runnerNode: string | null;
  heartbeatAt: string | null;
  attempts: number;
  state: TaskState;
  /** null until the first bytes move */
  progress: TaskProgress | null;
}

/** Merges store ids into a comma-joined, sorted list property (os_glance_importing_to_stores...). */
export function mergeStoreList(current: string | undefined, add: string[], remove: string[] = []): string {
  const set = new Set((current ?? '').split(',').filter(Boolean));
  for (const s of add) if (s) set.add(s);
  for (const s of remove) set.delete(s);
  return [...set].sort().join(',');
}
