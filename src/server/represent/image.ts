import { HIDDEN_PROPERTIES, RECEIVED_BYTES, setOwn, storesOf, type Image } from '../../domain/image.js';
import { displayTime } from '../../db/database.js';

/** The JSON an API client sees, exactly as Glance shapes it. */
export function imageJson(image: Image, view: { locations?: unknown[]; directUrl?: string } = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(image.properties)) if (!HIDDEN_PROPERTIES.has(k)) setOwn(out, k, v);
  Object.assign(out, {
    name: image.name,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    visibility: image.visibility,
    size: image.size,
    virtual_size: image.virtualSize,
    status: image.status,
    checksum: image.checksum,
    protected: image.protected,
    min_ram: image.minRam,
    min_disk: image.minDisk,
    owner: image.owner,
    os_hidden: image.osHidden,
    os_hash_algo: image.osHashAlgo,
    os_hash_value: image.osHashValue,
    id: image.id,
    created_at: displayTime(image.createdAt)!,
    updated_at: displayTime(image.updatedAt)!,
  });
  // Glance's places for them, when the locations API shows them (services/locations.ts decides)
  if (view.locations) out.locations = view.locations;
  if (view.directUrl !== undefined) out.direct_url = view.directUrl;
  Object.assign(out, {
    tags: image.tags,
    self: `/v2/images/${image.id}`,
    file: `/v2/images/${image.id}/file`,
    schema: '/v2/schemas/image',
  });
  const stores = storesOf(image);
  if (stores) out.stores = stores;
  // Imago's extension: how far an upload (saving) or a stage (uploading) has come, from any node
  if ((image.status === 'saving' || image.status === 'uploading') && image.writerId && typeof image.receivedBytes === 'number') out[RECEIVED_BYTES] = String(image.receivedBytes);
  return out;
}
