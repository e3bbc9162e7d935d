/**
 * Import tasks as the API shows them (Glance's task shape) and the private
 * progress a runner keeps in the database so an interrupted import can be
 * resumed or rolled back after a crash.
 */
export type TaskStatus = 'pending' | 'processing' | 'success' | 'failure';
export const TASK_STATUSES: TaskStatus[] = ['pending', 'processing', 'success', 'failure'];
export const TASK_TYPES = ['import', 'api_image_import', 'location_import'] as const;

export type ImportMethod = 'glance-direct' | 'web-download' | 'copy-image' | 'glance-download';

/** The body of POST /v2/images/{id}/import, validated. */
export interface ImportRequest {
  method: {
    name: ImportMethod;
    uri?: string;
    glance_image_id?: string;
    glance_region?: string;
    glance_service_interface?: string;
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
}

const isoSeconds = (iso: string) => iso.slice(0, 19) + 'Z';
/** Glance's database-row timestamps, as GET /v2/images/{id}/tasks shows them. */
const rowTime = (iso: string) => iso.slice(0, 19) + '.000000';

/** GET /v2/tasks/{id} */
export function representTask(t: Task): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: t.id,
    input: t.input,
    type: t.type,
    status: t.status,
    owner: t.owner,
    message: t.message,
    result: t.result,
    created_at: isoSeconds(t.createdAt),
    updated_at: isoSeconds(t.updatedAt),
    self: `/v2/tasks/${t.id}`,
    schema: '/v2/schemas/task',
  };
  if (t.imageId) out.image_id = t.imageId;
  if (t.requestId) out.request_id = t.requestId;
  if (t.userId) out.user_id = t.userId;
  if (t.expiresAt) out.expires_at = isoSeconds(t.expiresAt);
  return out;
}

/** One entry of GET /v2/tasks. */
export function representTaskStub(t: Task): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: t.id,
    type: t.type,
    status: t.status,
    owner: t.owner,
    created_at: isoSeconds(t.createdAt),
    updated_at: isoSeconds(t.updatedAt),
    self: `/v2/tasks/${t.id}`,
    schema: '/v2/schemas/task',
  };
  if (t.expiresAt) out.expires_at = isoSeconds(t.expiresAt);
  return out;
}

/** One entry of GET /v2/images/{id}/tasks: Glance returns its database rows there. */
export function representImageTask(t: Task): Record<string, unknown> {
  return {
    id: t.id,
    type: t.type,
    status: t.status,
    owner: t.owner,
    expires_at: t.expiresAt ? rowTime(t.expiresAt) : null,
    created_at: rowTime(t.createdAt),
    updated_at: rowTime(t.updatedAt),
    deleted_at: null,
    deleted: false,
    image_id: t.imageId,
    request_id: t.requestId,
    user_id: t.userId,
    input: t.input,
    result: t.result,
    message: t.message,
  };
}

const MiB = 1024 * 1024;

/** Glance's progress message, kept current while bytes move. */
export function copiedMessage(bytes: number): string {
  return `Copied ${Math.floor(bytes / MiB)} MiB`;
}

/** Merges store ids into a comma-joined, sorted list property (os_glance_importing_to_stores...). */
export function mergeStoreList(current: string | undefined, add: string[], remove: string[] = []): string {
  const set = new Set((current ?? '').split(',').filter(Boolean));
  for (const s of add) if (s) set.add(s);
  for (const s of remove) set.delete(s);
  return [...set].sort().join(',');
}
