import type { RestoredImage } from '../../db/images-repo.js';
import { STATUSES, VISIBILITIES, type ImageStatus, type Visibility } from '../../domain/image.js';
import type { GlanceImage } from './read.js';

/** Statuses Glance uses while bytes are on their way: that transfer died with Glance. */
const IN_FLIGHT = new Set(['saving', 'uploading', 'importing']);

/**
 * The image as Imago stores it: Glance's fields unchanged, except that an
 * upload or import in flight cannot be carried over (the image goes back to
 * queued, as Imago's own recovery does) — `note` says so.
 */
export function toRestored(img: GlanceImage, location: { storeId: string; url: string } | undefined): { restored: RestoredImage; note?: string } {
  let status = img.status as ImageStatus;
  let note: string | undefined;
  if (IN_FLIGHT.has(img.status)) {
    status = 'queued';
    note = `was ${img.status} in Glance (a transfer in flight); imported as queued, its data must be uploaded again`;
  } else if (!STATUSES.includes(status)) {
    throw new Error(`status "${img.status}" is unknown to Imago`);
  }
  if (!VISIBILITIES.includes(img.visibility as Visibility)) throw new Error(`visibility "${img.visibility}" is unknown to Imago`);
  const hasData = location !== undefined;
  const restored: RestoredImage = {
    row: {
      id: img.id,
      name: img.name,
      status,
      visibility: img.visibility,
      protected: img.protected ? 1 : 0,
      os_hidden: img.osHidden ? 1 : 0,
      disk_format: img.diskFormat,
      container_format: img.containerFormat,
      size: hasData ? img.size : null,
      virtual_size: hasData ? img.virtualSize : null,
      checksum: hasData ? img.checksum : null,
      os_hash_algo: hasData ? img.osHashAlgo : null,
      os_hash_value: hasData ? img.osHashValue : null,
      min_disk: img.minDisk,
      min_ram: img.minRam,
      owner: img.owner,
      created_at: img.createdAt,
      updated_at: img.updatedAt,
    },
    properties: img.properties,
    tags: [...img.tags].sort(),
    members: img.members.map((m) => ({ member_id: m.memberId, status: m.status, created_at: m.createdAt, updated_at: m.updatedAt })),
    location,
  };
  return { restored, note };
}
