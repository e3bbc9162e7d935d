/** The image as the domain sees it: base attributes, extra properties, tags, locations. */
export type ImageStatus = 'queued' | 'saving' | 'uploading' | 'importing' | 'active' | 'deactivated' | 'killed' | 'deleted' | 'pending_delete';
export type Visibility = 'public' | 'community' | 'shared' | 'private';
/** Every visibility, for input that arrives from outside the API (imago-manage import-glance). */
export const VISIBILITIES: readonly Visibility[] = ['public', 'community', 'shared', 'private'];

export const DISK_FORMATS = ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'] as const;
export const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'] as const;
export const STATUSES: ImageStatus[] = ['queued', 'saving', 'uploading', 'importing', 'active', 'deactivated', 'killed', 'deleted', 'pending_delete'];

export interface Location {
  id: string;
  storeId: string;
  url: string;
  status: string;
  /** what the locations API's client attached to it (Glance's location metadata); absent for Imago's own */
  metadata?: Record<string, unknown>;
}

export interface Image {
  id: string;
  name: string | null;
  status: ImageStatus;
  visibility: Visibility;
  protected: boolean;
  osHidden: boolean;
  diskFormat: string | null;
  containerFormat: string | null;
  size: number | null;
  virtualSize: number | null;
  checksum: string | null;
  osHashAlgo: string | null;
  osHashValue: string | null;
  minDisk: number;
  minRam: number;
  owner: string | null;
  createdAt: string;
  updatedAt: string;
  tags: string[];
  properties: Record<string, string>;
  locations: Location[];
  writerId: string | null;
  /** bytes an upload or stage in flight has received so far (updated about once a second) */
  receivedBytes?: number | null;
}

/** Attributes a client may set on create and change with PATCH. */
export const MUTABLE_BASE = ['name', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'tags', 'owner'] as const;

/** Attributes the server computes; a client naming them gets 403. */
export const READ_ONLY = ['created_at', 'updated_at', 'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size', 'direct_url', 'self', 'file', 'schema', 'stores', 'locations'] as const;

/**
 * Imago's extension property: bytes an upload or stage in flight has received.
 * A string, as every extra property is in the image schema (so clients that
 * validate responses against it, like glanceclient, accept it).
 */
export const RECEIVED_BYTES = 'imago_received_bytes';

/** Attributes Glance reserves (and Imago's own extension); a client naming them gets 403. */
export const RESERVED = ['location', 'deleted', 'deleted_at', RECEIVED_BYTES] as const;

/** Every attribute of the image schema (not an extra property). */
export const BASE_ATTRIBUTES = new Set<string>(['id', ...MUTABLE_BASE, ...READ_ONLY]);

/** Extra properties with this prefix belong to the server (import bookkeeping). */
export const RESERVED_PREFIX = 'os_glance_';

/** Server bookkeeping never shown to clients (which node holds staged data or runs a hash). */
export const HIDDEN_PROPERTIES = new Set(['os_glance_stage_host', 'os_glance_hash_op_host']);

/** Sets a key as an own property even when it is `__proto__` (property names come from clients). */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A property map without a prototype: `constructor` or `__proto__` are names like any other. */
export function propertyMap(entries: Iterable<[string, string]> = []): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}

export function storesOf(image: Image): string | undefined {
  const ids = [...new Set(image.locations.filter((l) => l.status === 'active').map((l) => l.storeId))].sort();
  return ids.length ? ids.join(',') : undefined;
}
