import { randomUUID } from 'node:crypto';
import { PostgresAdapter, sql, type CompiledQuery, type RawBuilder, type Expression, type ExpressionBuilder, type SqlBool, type Transaction } from 'kysely';
import type { Db } from './database.js';
import { now } from './database.js';
import type { Database, ImagesTable } from './schema.js';
import { propertyMap, type Image, type ImageStatus, type Location, type Visibility } from '../domain/image.js';
import { TIME_FIELDS, type Condition, type ImageListQuery } from '../domain/list-query.js';
import type { RequestContext } from '../auth/context.js';

export interface NewImage {
  id: string;
  name: string | null;
  visibility: Visibility;
  protected: boolean;
  osHidden: boolean;
  diskFormat: string | null;
  containerFormat: string | null;
  minDisk: number;
  minRam: number;
  owner: string | null;
  tags: string[];
  properties: Record<string, string>;
}

/** An image as another service held it, for ImagesRepo.restore. */
export interface RestoredImage {
  row: Omit<ImagesTable, 'writer_id' | 'writer_node' | 'writer_heartbeat_at' | 'received_bytes'>;
  properties: Record<string, string>;
  tags: string[];
  members: { member_id: string; status: string; created_at: string; updated_at: string }[];
  location?: { storeId: string; url: string };
}

/** Base columns a PATCH may change. */
export type ImageChanges = Partial<Pick<ImagesTable, 'name' | 'visibility' | 'protected' | 'os_hidden' | 'disk_format' | 'container_format' | 'min_disk' | 'min_ram' | 'owner'>>;

export interface DataCommit {
  size: number;
  checksum: string;
  osHashValue: string;
  virtualSize: number | null;
  location: { storeId: string; url: string };
  /** extra properties to set in the same transaction (e.g. import bookkeeping) */
  properties?: Record<string, string>;
  removeProperties?: string[];
  /** the status the image moves to; active unless told otherwise */
  status?: ImageStatus;
}

type Row = ImagesTable;

function toImage(r: Row, props: Record<string, string>, tags: string[], locations: Location[]): Image {
  return {
    id: r.id,
    name: r.name,
    status: r.status as ImageStatus,
    visibility: r.visibility as Visibility,
    protected: !!r.protected,
    osHidden: !!r.os_hidden,
    diskFormat: r.disk_format,
    containerFormat: r.container_format,
    size: r.size,
    virtualSize: r.virtual_size,
    checksum: r.checksum,
    osHashAlgo: r.os_hash_algo,
    osHashValue: r.os_hash_value,
    minDisk: r.min_disk,
    minRam: r.min_ram,
    owner: r.owner,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    tags,
    properties: props,
    locations,
    writerId: r.writer_id,
    receivedBytes: r.received_bytes,
  };
}

/** A location of the locations API: `id` for one the image has already. */
export interface NewLocation {
  id?: string;
  storeId: string;
  url: string;
  metadata: Record<string, unknown>;
}

/** What a queued image gets when its first location makes it active. */
export interface LocationActivation {
  size: number;
  checksum?: string;
  os_hash_algo?: string;
  os_hash_value?: string;
}

/** Rolls back setLocations' transaction when the locations moved under it. */
class LocationsChanged extends Error {}

/**
 * Kysely builds and compiles a query on each call; for the image reads every
 * request makes, that was most of their cost. These are compiled once; only
 * the id (or the page's ids) changes.
 */
class CompiledQueries {
  readonly image;
  /** properties, tags (by value) and locations (oldest first) in one round: `k` says which row is which */
  readonly details;
  /** the same for a page of images: one parameter holds all their ids (a JSON array on SQLite, an array on PostgreSQL) */
  readonly detailsOfMany;

  constructor(db: Db) {
    this.image = compileById<Row>(db.selectFrom('images').selectAll().where('id', '=', ID_PARAM).compile());
    const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
    this.details = compileById<DetailRow>(detailsWhere((column) => sql`${sql.ref(column)} = ${ID_PARAM}`).compile(db));
    // Kysely turns an IN list into one node per value: for a page of 1000 images that cost more than the queries.
    const many = compileById<DetailRow, string | string[]>(
      detailsWhere((column) => (postgres ? sql`${sql.ref(column)} = any(${ID_PARAM})` : sql`${sql.ref(column)} in (select value from json_each(${ID_PARAM}))`)).compile(db),
    );
    this.detailsOfMany = (ids: string[]) => many(postgres ? ids : JSON.stringify(ids));
    this.insertImage = compileRowInsert<Row>(db, 'images', IMAGE_COLUMNS);
  }

  /** the INSERT of a new image row (create parsed and compiled it per call: ~7 % of a create's CPU) */
  readonly insertImage;
}

/** Every column of an image row, in the order the compiled INSERT takes them. */
const IMAGE_COLUMNS = [
  'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'size', 'virtual_size',
  'checksum', 'os_hash_algo', 'os_hash_value', 'min_disk', 'min_ram', 'owner', 'created_at', 'updated_at', 'writer_id',
  'writer_node', 'writer_heartbeat_at', 'received_bytes',
] as const satisfies readonly (keyof Row)[];
// A column added to ImagesTable and not to the list above fails the build here.
const everyImageColumn: Exclude<keyof Row, (typeof IMAGE_COLUMNS)[number]> extends never ? true : never = true;
void everyImageColumn;

/** A one-row INSERT compiled once: each call only lays the row's values out as parameters. */
function compileRowInsert<R>(db: Db, table: 'images', columns: readonly (keyof R & string)[]): (row: R) => CompiledQuery<unknown> {
  const marker = (c: string) => `\u0000column:${c}`;
  const template = Object.fromEntries(columns.map((c) => [c, marker(c)]));
  const compiled = db.insertInto(table).values(template as never).compile();
  const order = compiled.parameters.map((p) => {
    const column = columns.find((c) => marker(c) === p);
    if (!column) throw new Error(`unexpected parameter in ${compiled.sql}`);
    return column;
  });
  return (row) => ({ ...compiled, parameters: order.map((c) => row[c]) });
}

/** Properties, tags and locations of the images `where` selects, as DetailRows: tags by value, locations oldest first. */
function detailsWhere(where: (column: string) => RawBuilder<unknown>): RawBuilder<DetailRow> {
  return sql<DetailRow>`
    select 'p' as k, image_id as i, name as a, value as b, null as c, null as d, null as s, null as e from image_properties where ${where('image_id')}
    union all select 't', image_id, value, null, null, null, value, null from image_tags where ${where('image_id')}
    union all select 'l', image_id, id, store_id, url, status, created_at, metadata from image_locations where ${where('image_id')}
    order by 1, 7`;
}

interface DetailRow {
  k: 'p' | 't' | 'l';
  i: string;
  a: string;
  b: string | null;
  c: string | null;
  d: string | null;
  /** a location's metadata (JSON) */
  e: string | null;
}

const ID_PARAM = '\u0000id';

/** A query compiled once whose every parameter is the id: returns it for another id (or list of ids). */
function compileById<R, P = string>(compiled: CompiledQuery<unknown>): (id: P) => CompiledQuery<R> {
  if (compiled.parameters.length === 0 || compiled.parameters.some((p) => p !== ID_PARAM)) throw new Error(`not a query by id: ${compiled.sql}`);
  const n = compiled.parameters.length;
  return (id) => ({ ...compiled, parameters: Array(n).fill(id) }) as CompiledQuery<R>;
}

interface Details {
  props: Record<string, string>;
  tags: string[];
  locations: Location[];
}

function emptyDetails(): Details {
  return { props: propertyMap(), tags: [], locations: [] };
}

function addDetail(to: Details, d: DetailRow): void {
  if (d.k === 'p') to.props[d.a] = d.b!;
  else if (d.k === 't') to.tags.push(d.a);
  else to.locations.push(d.e ? { id: d.a, storeId: d.b!, url: d.c!, status: d.d!, metadata: JSON.parse(d.e) } : { id: d.a, storeId: d.b!, url: d.c!, status: d.d! });
}

export class ImagesRepo {
  private readonly byId: CompiledQueries;

  constructor(private readonly db: Db) {
    this.byId = new CompiledQueries(db);
  }

  /** Inserts the image and returns it as a later read would (no second round of queries). */
  async create(img: NewImage): Promise<Image> {
    const ts = now();
    const row: Row = {
      id: img.id,
      name: img.name,
      status: 'queued',
      visibility: img.visibility,
      protected: img.protected ? 1 : 0,
      os_hidden: img.osHidden ? 1 : 0,
      disk_format: img.diskFormat,
      container_format: img.containerFormat,
      size: null,
      virtual_size: null,
      checksum: null,
      os_hash_algo: null,
      os_hash_value: null,
      min_disk: img.minDisk,
      min_ram: img.minRam,
      owner: img.owner,
      created_at: ts,
      updated_at: ts,
      writer_id: null,
      writer_node: null,
      writer_heartbeat_at: null,
      received_bytes: null,
    };
    const tags = [...new Set(img.tags)].sort();
    await this.db.transaction().execute(async (trx) => {
      await trx.executeQuery(this.byId.insertImage(row));
      await this.insertProps(trx, img.id, img.properties);
      await this.insertTags(trx, img.id, tags);
    });
    return toImage(row, propertyMap(Object.entries(img.properties)), tags, []);
  }

  /**
   * Inserts an image brought from another service (imago-manage import-glance)
   * exactly as it was there: status, digests, times, members and at most one
   * location, in one transaction, so an interrupted migration leaves each
   * image either whole or absent. False when the id exists already.
   */
  async restore(img: RestoredImage): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (await trx.selectFrom('images').select('id').where('id', '=', img.row.id).executeTakeFirst()) return false;
      await trx.insertInto('images').values({ ...img.row, writer_id: null, writer_node: null, writer_heartbeat_at: null, received_bytes: null }).execute();
      await this.insertProps(trx, img.row.id, img.properties);
      await this.insertTags(trx, img.row.id, img.tags);
      if (img.members.length) await trx.insertInto('image_members').values(img.members.map((m) => ({ ...m, image_id: img.row.id }))).execute();
      if (img.location) {
        await trx.insertInto('image_locations').values({ id: randomUUID(), image_id: img.row.id, store_id: img.location.storeId, url: img.location.url, status: 'active', created_at: img.row.updated_at }).execute();
      }
      return true;
    });
  }

  async exists(id: string): Promise<boolean> {
    return !!(await this.db.selectFrom('images').select('id').where('id', '=', id).executeTakeFirst());
  }

  async get(id: string): Promise<Image | undefined> {
    const [row] = (await this.db.executeQuery(this.byId.image(id))).rows;
    if (!row) return undefined;
    const details = emptyDetails();
    for (const d of (await this.db.executeQuery(this.byId.details(id))).rows) addDetail(details, d);
    return toImage(row, details.props, details.tags, details.locations);
  }

  /** Loads properties, tags and locations for many rows in one query. */
  private async hydrate(rows: Row[]): Promise<Image[]> {
    if (rows.length === 0) return [];
    const byImage = new Map(rows.map((r) => [r.id, emptyDetails()]));
    for (const d of (await this.db.executeQuery(this.byId.detailsOfMany(rows.map((r) => r.id)))).rows) {
      const details = byImage.get(d.i);
      if (details) addDetail(details, d);
    }
    return rows.map((r) => {
      const details = byImage.get(r.id)!;
      return toImage(r, details.props, details.tags, details.locations);
    });
  }

  /**
   * One page of the images `ctx` may list, filtered and ordered as Glance's
   * image_get_all does: keyset pagination after `markerImage`, killed images
   * left out, hidden images only when asked for.
   */
  async list(q: ImageListQuery, ctx: RequestContext, markerImage: Image | undefined): Promise<Image[]> {
    let query = this.db.selectFrom('images').selectAll('images');
    query = query.where((eb) => this.visibleTo(eb, q, ctx));
    query = query.where('images.status', '<>', 'killed').where('images.os_hidden', '=', q.osHidden ? 1 : 0);
    for (const c of q.conditions) query = query.where((eb) => conditionSql(eb, c));
    for (const tag of q.tags) {
      query = query.where('images.id', 'in', (eb) => eb.selectFrom('image_tags').select('image_id').where('value', '=', tag));
    }
    if (markerImage) query = query.where((eb) => keysetAfter(eb, q.sort, markerImage));
    // NULLs first ascending and last descending on both dialects, matching keysetAfter().
    for (const s of q.sort) query = query.orderBy(sql`${sql.ref(`images.${s.key}`)} ${sql.raw(s.dir === 'asc' ? 'asc nulls first' : 'desc nulls last')}`);
    const rows = await query.limit(q.limit).execute();
    return this.hydrate(rows as Row[]);
  }

  /**
   * Glance's _select_images_query and visibility rules. Users see public and
   * community images, their project's images, and shared images they are a
   * member of (with the requested member status); admins see everything.
   * Without a visibility filter, community images are listed only to their
   * owner; with one, only images of that visibility are listed.
   */
  private visibleTo(eb: ExpressionBuilder<Database, 'images'>, q: ImageListQuery, ctx: RequestContext): Expression<SqlBool> {
    const conds: Expression<SqlBool>[] = [];
    if (!ctx.isAdmin) {
      let members = eb.selectFrom('image_members as m').select('m.image_id').where('m.member_id', '=', ctx.projectId ?? '');
      if (q.memberStatus !== 'all') members = members.where('m.status', '=', q.memberStatus);
      const visible = [
        eb('images.visibility', 'in', ['public', 'community']),
        eb.and([eb('images.visibility', '=', 'shared'), eb('images.id', 'in', members)]),
      ];
      if (ctx.projectId !== null) visible.push(eb('images.owner', '=', ctx.projectId));
      conds.push(eb.or(visible));
    }
    if (q.visibility === undefined) {
      const community = [eb('images.visibility', '<>', 'community')];
      if (ctx.projectId !== null) community.push(eb('images.owner', '=', ctx.projectId));
      conds.push(eb.or(community));
    } else if (q.visibility !== 'all') {
      conds.push(eb('images.visibility', '=', q.visibility));
    }
    return eb.and(conds);
  }

  async update(id: string, changes: ImageChanges, props: { set: Record<string, string>; remove: string[] }, tags?: string[]): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const res = await trx.updateTable('images').set({ ...changes, updated_at: now() }).where('id', '=', id).executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) return false;
      if (props.remove.length) await trx.deleteFrom('image_properties').where('image_id', '=', id).where('name', 'in', props.remove).execute();
      if (Object.keys(props.set).length) {
        await trx.deleteFrom('image_properties').where('image_id', '=', id).where('name', 'in', Object.keys(props.set)).execute();
        await this.insertProps(trx, id, props.set);
      }
      if (tags) {
        await trx.deleteFrom('image_tags').where('image_id', '=', id).execute();
        await this.insertTags(trx, id, tags);
      }
      return true;
    });
  }

  async setStatus(id: string, from: ImageStatus[], to: ImageStatus): Promise<boolean> {
    const res = await this.db.updateTable('images').set({ status: to, updated_at: now() }).where('id', '=', id).where('status', 'in', from).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async addTag(id: string, tag: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const has = await trx.selectFrom('image_tags').select('value').where('image_id', '=', id).where('value', '=', tag).executeTakeFirst();
      if (!has) await trx.insertInto('image_tags').values({ image_id: id, value: tag }).execute();
      await trx.updateTable('images').set({ updated_at: now() }).where('id', '=', id).execute();
    });
  }

  async removeTag(id: string, tag: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const res = await trx.deleteFrom('image_tags').where('image_id', '=', id).where('value', '=', tag).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) return false;
      await trx.updateTable('images').set({ updated_at: now() }).where('id', '=', id).execute();
      return true;
    });
  }

  /**
   * Deletes the image row (and its properties, tags, members) and returns the
   * locations whose objects the caller must now remove from their stores.
   * Locations are marked pending_delete in the same transaction, so a crash
   * before the store delete leaves a record the recovery step finishes.
   */
  async delete(id: string): Promise<Location[] | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('images').select('id').where('id', '=', id).executeTakeFirst();
      if (!row) return undefined;
      const locs = await trx.selectFrom('image_locations').selectAll().where('image_id', '=', id).execute();
      await trx.updateTable('image_locations').set({ status: 'pending_delete' }).where('image_id', '=', id).execute();
      await trx.deleteFrom('image_members').where('image_id', '=', id).execute();
      await trx.deleteFrom('image_tags').where('image_id', '=', id).execute();
      await trx.deleteFrom('image_properties').where('image_id', '=', id).execute();
      await trx.deleteFrom('images').where('id', '=', id).execute();
      return locs.map((l) => ({ id: l.id, storeId: l.store_id, url: l.url, status: 'pending_delete' }));
    });
  }

  /**
   * The locations API's one write: the image's active locations become
   * `next`, in that order (kept ones by id, new ones inserted), the others are
   * marked pending_delete (returned, for the caller to remove after the commit),
   * and a queued image becomes active with `activate`'s fields. A
   * compare-and-set on the status and on the set of active locations the
   * caller saw: false when another request changed them meanwhile.
   */
  async setLocations(id: string, seen: { status: ImageStatus; locationIds: string[] }, next: NewLocation[], activate?: LocationActivation): Promise<Location[] | false> {
    return this.db.transaction().execute(async (trx) => {
      const ts = now();
      const image = trx.updateTable('images').set(activate ? { status: 'active', updated_at: ts, writer_id: null, ...activate } : { updated_at: ts });
      const res = await image.where('id', '=', id).where('status', '=', seen.status).where('writer_id', 'is', null).executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) return false;
      const current = await trx.selectFrom('image_locations').selectAll().where('image_id', '=', id).where('status', '=', 'active').execute();
      if (current.map((l) => l.id).sort().join() !== [...seen.locationIds].sort().join()) throw new LocationsChanged();
      const keep = new Set(next.flatMap((l) => (l.id ? [l.id] : [])));
      const removed = current.filter((l) => !keep.has(l.id));
      if (removed.length) await trx.updateTable('image_locations').set({ status: 'pending_delete' }).where('id', 'in', removed.map((l) => l.id)).execute();
      // created_at is also the locations' order (oldest first): rewritten so the list reads as the client asked.
      const base = Date.now();
      for (const [i, l] of next.entries()) {
        const order = new Date(base + i).toISOString();
        const metadata = Object.keys(l.metadata).length ? JSON.stringify(l.metadata) : null;
        if (l.id) await trx.updateTable('image_locations').set({ created_at: order, metadata }).where('id', '=', l.id).execute();
        else await trx.insertInto('image_locations').values({ id: randomUUID(), image_id: id, store_id: l.storeId, url: l.url, status: 'active', created_at: order, metadata }).execute();
      }
      return removed.map((l) => ({ id: l.id, storeId: l.store_id, url: l.url, status: 'pending_delete' }));
    }).catch((err) => {
      if (err instanceof LocationsChanged) return false as const;
      throw err;
    });
  }

  /** The images (at most two) with a location at `url`, whatever its status. */
  async imagesAt(url: string): Promise<string[]> {
    const rows = await this.db.selectFrom('image_locations').select('image_id').distinct().where('url', '=', url).limit(2).execute();
    return rows.map((r) => r.image_id);
  }

  async forgetLocation(locationId: string): Promise<void> {
    await this.db.deleteFrom('image_locations').where('id', '=', locationId).execute();
  }

  async markLocationDeleting(imageId: string, storeId: string): Promise<Location | undefined> {
    const loc = await this.db.selectFrom('image_locations').selectAll().where('image_id', '=', imageId).where('store_id', '=', storeId).where('status', '=', 'active').executeTakeFirst();
    if (!loc) return undefined;
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('image_locations').set({ status: 'pending_delete' }).where('id', '=', loc.id).execute();
      await trx.updateTable('images').set({ updated_at: now() }).where('id', '=', imageId).execute();
    });
    return { id: loc.id, storeId: loc.store_id, url: loc.url, status: 'pending_delete' };
  }

  /**
   * Takes the image for one writer: a compare-and-set on status and on the
   * writer column, so of two racing writers exactly one wins (invariant 2).
   */
  async claimWriter(id: string, from: ImageStatus[], to: ImageStatus, writerId: string, node: string): Promise<boolean> {
    const ts = now();
    const res = await this.db
      .updateTable('images')
      .set({ status: to, writer_id: writerId, writer_node: node, writer_heartbeat_at: ts, updated_at: ts, received_bytes: 0 })
      .where('id', '=', id)
      .where('status', 'in', from)
      .where('writer_id', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Records the data and releases the claim in one transaction; false when the claim was lost (image deleted). */
  /** How far a writer has come (not a change of the image: updated_at stays); false once it no longer holds the image. */
  async setReceived(id: string, writerId: string, bytes: number): Promise<boolean> {
    const res = await this.db.updateTable('images').set({ received_bytes: bytes }).where('id', '=', id).where('writer_id', '=', writerId).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async commitData(id: string, writerId: string, c: DataCommit): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const ts = now();
      const res = await trx
        .updateTable('images')
        .set({
          status: c.status ?? 'active',
          size: c.size,
          checksum: c.checksum,
          os_hash_algo: 'sha512',
          os_hash_value: c.osHashValue,
          virtual_size: c.virtualSize,
          writer_id: null,
          writer_node: null,
          writer_heartbeat_at: null,
          updated_at: ts,
        })
        .where('id', '=', id)
        .where('writer_id', '=', writerId)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) return false;
      await trx.insertInto('image_locations').values({ id: randomUUID(), image_id: id, store_id: c.location.storeId, url: c.location.url, status: 'active', created_at: ts }).execute();
      if (c.removeProperties?.length) await trx.deleteFrom('image_properties').where('image_id', '=', id).where('name', 'in', c.removeProperties).execute();
      if (c.properties && Object.keys(c.properties).length) {
        await trx.deleteFrom('image_properties').where('image_id', '=', id).where('name', 'in', Object.keys(c.properties)).execute();
        await this.insertProps(trx, id, c.properties);
      }
      return true;
    });
  }

  /** Gives the image back after a failed write: status `to` (queued) and no claim. */
  async releaseWriter(id: string, writerId: string, to: ImageStatus, reset: Partial<ImagesTable> = {}): Promise<boolean> {
    const res = await this.db
      .updateTable('images')
      .set({ ...reset, status: to, writer_id: null, writer_node: null, writer_heartbeat_at: null, updated_at: now() })
      .where('id', '=', id)
      .where('writer_id', '=', writerId)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async setWriterFields(id: string, writerId: string, fields: Partial<ImagesTable>): Promise<boolean> {
    const res = await this.db.updateTable('images').set({ ...fields, updated_at: now() }).where('id', '=', id).where('writer_id', '=', writerId).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Images an import holds (status importing), with the id of the task that claimed each. */
  async importing(): Promise<{ id: string; writerId: string | null }[]> {
    const rows = await this.db.selectFrom('images').select(['id', 'writer_id']).where('status', '=', 'importing').execute();
    return rows.map((r) => ({ id: r.id, writerId: r.writer_id }));
  }

  /** An import's image whose task is gone goes back to queued, unclaimed, with no size (start-up recovery). */
  async releaseImport(id: string): Promise<void> {
    await this.db
      .updateTable('images')
      .set({ status: 'queued', size: null, writer_id: null, writer_node: null, writer_heartbeat_at: null })
      .where('id', '=', id)
      .where('status', '=', 'importing')
      .execute();
  }

  /** Images whose writer claim belongs to a process other than `liveNodes`. */
  async orphanedWriters(liveNodes: string[]): Promise<Pick<ImagesTable, 'id' | 'status' | 'writer_id'>[]> {
    // A claim a resumable upload row holds belongs to the row, not to a process: only its expiry releases it.
    let q = this.db
      .selectFrom('images')
      .select(['id', 'status', 'writer_id'])
      .where('writer_id', 'is not', null)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('uploads as u').select('u.id').whereRef('u.writer_id', '=', 'images.writer_id'))));
    if (liveNodes.length) q = q.where('writer_node', 'not in', liveNodes);
    return q.execute();
  }

  async allLocations(): Promise<{ id: string; imageId: string; storeId: string; url: string; status: string }[]> {
    const rows = await this.db.selectFrom('image_locations').selectAll().execute();
    return rows.map((r) => ({ id: r.id, imageId: r.image_id, storeId: r.store_id, url: r.url, status: r.status }));
  }

  async setProperties(id: string, set: Record<string, string>, remove: string[] = []): Promise<void> {
    await this.update(id, {}, { set, remove });
  }

  private async insertProps(trx: Transaction<Database>, id: string, props: Record<string, string>): Promise<void> {
    const rows = Object.entries(props).map(([name, value]) => ({ image_id: id, name, value }));
    if (rows.length) await trx.insertInto('image_properties').values(rows).execute();
  }

  private async insertTags(trx: Transaction<Database>, id: string, tags: string[]): Promise<void> {
    const rows = [...new Set(tags)].map((value) => ({ image_id: id, value }));
    if (rows.length) await trx.insertInto('image_tags').values(rows).execute();
  }
}

function castValue(field: string, v: string): string | number {
  return ['size', 'virtual_size', 'min_disk', 'min_ram', 'protected', 'os_hidden'].includes(field) ? Number(v) : v;
}

const SQL_OPS = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/** One list filter as SQL. Times compare to the second, the precision clients see. */
function conditionSql(eb: ExpressionBuilder<Database, 'images'>, c: Condition): Expression<SqlBool> {
  if (c.op === 'in' && c.values.length === 0) return sql<SqlBool>`1 = 0`;
  if (c.field.startsWith('prop:')) {
    const sub = eb.selectFrom('image_properties as p').select('p.image_id').where('p.name', '=', c.field.slice(5));
    return eb('images.id', 'in', c.op === 'in' ? sub.where('p.value', 'in', c.values) : sub.where('p.value', '=', c.values[0]));
  }
  const col = TIME_FIELDS.includes(c.field) ? sql`substr(${sql.ref(`images.${c.field}`)}, 1, 19)` : sql.ref(`images.${c.field}`);
  if (c.op === 'in') return eb(col, 'in', c.values.map((v) => castValue(c.field, v)));
  return eb(col, SQL_OPS[c.op], castValue(c.field, c.values[0]));
}

/** Rows strictly after the marker in the requested order (keyset pagination). */
function keysetAfter(eb: ExpressionBuilder<Database, 'images'>, sort: ImageListQuery['sort'], marker: Image): Expression<SqlBool> {
  const valueOf = (key: string): unknown => {
    const m: Record<string, unknown> = {
      name: marker.name, status: marker.status, container_format: marker.containerFormat, disk_format: marker.diskFormat,
      size: marker.size, id: marker.id, created_at: marker.createdAt, updated_at: marker.updatedAt, min_disk: marker.minDisk,
      min_ram: marker.minRam, owner: marker.owner, virtual_size: marker.virtualSize, visibility: marker.visibility,
      protected: marker.protected ? 1 : 0, os_hidden: marker.osHidden ? 1 : 0,
    };
    return m[key];
  };
  // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ... with NULLs ordered first ascending, as SQLite and our PG queries do.
  const ors: Expression<SqlBool>[] = [];
  for (let i = 0; i < sort.length; i++) {
    const ands: Expression<SqlBool>[] = [];
    for (let j = 0; j < i; j++) {
      const v = valueOf(sort[j].key);
      const col = sql.ref(`images.${sort[j].key}`);
      ands.push(v === null ? eb(col, 'is', null) : eb(col, '=', v as never));
    }
    const v = valueOf(sort[i].key);
    const col = sql.ref(`images.${sort[i].key}`);
    const asc = sort[i].dir === 'asc';
    if (v === null) {
      if (!asc) continue; // nothing sorts after NULL descending... except nothing
      ands.push(eb(col, 'is not', null));
    } else {
      ands.push(asc ? eb(col, '>', v as never) : eb.or([eb(col, '<', v as never), eb(col, 'is', null)]));
    }
    ors.push(eb.and(ands));
  }
  return ors.length ? eb.or(ors) : eb.val(false) as unknown as Expression<SqlBool>;
}
