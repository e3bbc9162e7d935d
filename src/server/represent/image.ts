import { HIDDEN_PROPERTIES, setOwn, storesOf, type Image } from '../../domain/image.js';
import { displayTime } from '../../db/database.js';

/** The JSON an API client sees, exactly as Glance shapes it. */
export function imageJson(image: Image): Record<string, unknown> {
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
    tags: image.tags,
    self: `/v2/images/${image.id}`,
    file: `/v2/images/${image.id}/file`,
    schema: '/v2/schemas/image',
  });
  const stores = storesOf(image);
  if (stores) out.stores = stores;
  return out;
}
