import type { Task } from '../../domain/task.js';

/** Import tasks as the API shows them (Glance's task shape); the model itself is domain/task.ts. */
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
  out.progress = representProgress(t);
  return out;
}

/** Imago's machine-readable progress (docs/import.md#progress): null until bytes move. */
function representProgress(t: Task): Record<string, unknown> | null {
  return t.progress ? { bytes_done: t.progress.bytesDone, bytes_expected: t.progress.bytesExpected } : null;
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
    progress: representProgress(t),
  };
}
