import type { Image } from '../domain/image.js';
import { HIDDEN_PROPERTIES } from '../domain/image.js';
import type { Task } from '../domain/task.js';

/**
 * The payloads of Glance's notifications (glance/notifier.py's format_*
 * helpers): same fields, same types, so that Ceilometer and other
 * consumers parse Imago's events as they parse Glance's.
 */

/** Glance's timeutils.isotime: seconds precision, `Z`. */
export function isoSeconds(iso: string | null | undefined): string | null {
  if (!iso) return null;
  return new Date(iso).toISOString().slice(0, 19) + 'Z';
}

export function nowIso(): string {
  return isoSeconds(new Date().toISOString())!;
}

/** An image (never its locations: they may hold credentials). */
export function imagePayload(image: Image): Record<string, unknown> {
  const properties: Record<string, string> = {};
  for (const [k, v] of Object.entries(image.properties)) {
    if (!HIDDEN_PROPERTIES.has(k)) Object.defineProperty(properties, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return {
    id: image.id,
    name: image.name,
    status: image.status,
    created_at: isoSeconds(image.createdAt),
    updated_at: isoSeconds(image.updatedAt),
    min_disk: image.minDisk,
    min_ram: image.minRam,
    protected: image.protected,
    checksum: image.checksum,
    owner: image.owner,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    size: image.size,
    virtual_size: image.virtualSize,
    is_public: image.visibility === 'public',
    visibility: image.visibility,
    properties,
    tags: [...image.tags],
    deleted: false,
    deleted_at: null,
  };
}

/** The import bookkeeping lists Glance adds to image.prepare and image.upload. */
export function importProperties(image: Image): Record<string, string[]> {
  const list = (k: string) => (image.properties[k] ? image.properties[k].split(',') : []);
  return { os_glance_importing_to_stores: list('os_glance_importing_to_stores'), os_glance_failed_import: list('os_glance_failed_import') };
}

export interface MemberRecord {
  imageId: string;
  memberId: string;
  status: string;
  createdAt: string;
  updatedAt: string;
}

export function memberPayload(m: MemberRecord): Record<string, unknown> {
  return {
    image_id: m.imageId,
    member_id: m.memberId,
    status: m.status,
    created_at: isoSeconds(m.createdAt),
    updated_at: isoSeconds(m.updatedAt),
    deleted: false,
    deleted_at: null,
  };
}

/** A task; never its input (it may hold credentials or URLs), and, as Glance, neither its result nor its message. */
export function taskPayload(t: Task): Record<string, unknown> {
  return {
    id: t.id,
    type: t.type,
    status: t.status,
    result: null,
    owner: t.owner,
    message: null,
    expires_at: isoSeconds(t.expiresAt),
    created_at: isoSeconds(t.createdAt),
    updated_at: isoSeconds(t.updatedAt),
    deleted: false,
    deleted_at: null,
  };
}

/** What image.send says about a download. */
export function sendPayload(image: Image, bytesSent: number, receiver: { projectId: string | null; userId: string }): Record<string, unknown> {
  return {
    bytes_sent: bytesSent,
    image_id: image.id,
    owner_id: image.owner,
    receiver_tenant_id: receiver.projectId,
    receiver_user_id: receiver.userId,
  };
}
