import type { GlanceSource, Row } from './source.js';

/**
 * One live (not soft-deleted) Glance image with everything hanging off it. Its fields mirror
 * domain/image.ts's Image on purpose, but hold Glance's values as read, unchecked (status and
 * visibility are any string, locations are Glance's URLs): restore.ts checks them into an Image.
 */
export interface GlanceImage {
  id: string;
  name: string | null;
  status: string;
  visibility: string;
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
  properties: Record<string, string>;
  tags: string[];
  members: { memberId: string; status: string; createdAt: string; updatedAt: string }[];
  /** active locations, oldest first */
  locations: string[];
}

export interface GlanceSnapshot {
  images: GlanceImage[];
  /** soft-deleted image rows, left behind on purpose */
  deleted: number;
}

/**
 * Reads every image of the snapshot. Soft-deleted rows (deleted true) of any
 * table are Glance's history, not state: they are never read into the model.
 */
export async function readGlance(src: GlanceSource): Promise<GlanceSnapshot> {
  const rows = await src.query('SELECT * FROM images ORDER BY created_at, id');
  const live = rows.filter((r) => !truthy(r.deleted));
  const byId = new Map<string, GlanceImage>();
  for (const r of live) byId.set(String(r.id), toImage(r));

  for (const p of await src.query('SELECT image_id, name, value FROM image_properties WHERE NOT deleted ORDER BY id')) {
    const img = byId.get(String(p.image_id));
    if (img) Object.defineProperty(img.properties, String(p.name), { value: text(p.value) ?? '', enumerable: true, writable: true, configurable: true });
  }
  for (const t of await src.query('SELECT image_id, value FROM image_tags WHERE NOT deleted ORDER BY id')) {
    const img = byId.get(String(t.image_id));
    if (img && !img.tags.includes(String(t.value))) img.tags.push(String(t.value));
  }
  for (const m of await src.query('SELECT image_id, member, status, created_at, updated_at FROM image_members WHERE NOT deleted ORDER BY id')) {
    const img = byId.get(String(m.image_id));
    if (img) img.members.push({ memberId: String(m.member), status: String(m.status), createdAt: isoTime(m.created_at), updatedAt: isoTime(m.updated_at ?? m.created_at) });
  }
  for (const l of await src.query("SELECT image_id, value, status FROM image_locations WHERE NOT deleted ORDER BY id")) {
    const img = byId.get(String(l.image_id));
    if (img && (l.status ?? 'active') === 'active') img.locations.push(String(l.value));
  }
  return { images: [...byId.values()], deleted: rows.length - live.length };
}

function toImage(r: Row): GlanceImage {
  return {
    id: String(r.id),
    name: text(r.name),
    status: String(r.status),
    // Glance before Ocata had is_public instead; every supported release has visibility.
    visibility: String(r.visibility ?? 'shared'),
    protected: truthy(r.protected),
    osHidden: truthy(r.os_hidden),
    diskFormat: text(r.disk_format),
    containerFormat: text(r.container_format),
    size: num(r.size),
    virtualSize: num(r.virtual_size),
    checksum: text(r.checksum),
    osHashAlgo: text(r.os_hash_algo),
    osHashValue: text(r.os_hash_value),
    minDisk: num(r.min_disk) ?? 0,
    minRam: num(r.min_ram) ?? 0,
    owner: text(r.owner),
    createdAt: isoTime(r.created_at),
    updatedAt: isoTime(r.updated_at ?? r.created_at),
    properties: Object.create(null) as Record<string, string>,
    tags: [],
    members: [],
    locations: [],
  };
}

function truthy(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || (Buffer.isBuffer(v) && v[0] === 1);
}

function text(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/**
 * Glance keeps naive UTC datetimes ("2026-12-03 12:00:01", microseconds on
 * PostgreSQL); Imago keeps ISO-8601 UTC with milliseconds.
 */
export function isoTime(v: unknown): string {
  const s = String(v);
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/.exec(s);
  if (m) return `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(3, '0').slice(0, 3)}Z`;
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) throw new Error(`unreadable time "${s}" in the Glance database`);
  return d.toISOString();
}
