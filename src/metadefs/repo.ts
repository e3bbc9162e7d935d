import { sql, type Expression, type Kysely, type SqlBool } from 'kysely';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { Conflict } from '../domain/errors.js';
import { orderedId } from '../db/ordered-id.js';
import {
  storable,
  type Association,
  type AssociationInput,
  type MetadefObject,
  type MetadefProperty,
  type MetadefTag,
  type Namespace,
  type NamespaceContents,
  type NamespaceFields,
  type NamespaceVisibility,
  type ObjectInput,
  type PropertyDef,
  type ResourceType,
} from './model.js';
import type { NamespaceListQuery, SortDir, TagListQuery } from './list-query.js';
import type { MetadefNamespacesTable, MetadefObjectsTable, MetadefPropertiesTable, MetadefTagsTable } from '../db/metadefs-tables.js';

type Exec = Kysely<Database>;

export interface LoadMode {
  merge: boolean;
  preferNew: boolean;
  overwrite: boolean;
}

export type LoadOutcome = 'created' | 'replaced' | 'merged' | 'skipped';

export interface FillOptions {
  keepExisting?: boolean;
  replaceExisting?: boolean;
  seeded?: boolean;
}

/** SQLite and PostgreSQL report a unique-key clash differently. */
function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

async function orConflict<T>(work: () => Promise<T>, message: string): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (isUniqueViolation(err)) throw new Conflict(message);
    throw err;
  }
}

const dup = {
  namespace: (n: string) => `A metadata definition namespace named "${n}" already exists.`,
  object: (n: string, ns: string) => `An object named "${n}" already exists in namespace "${ns}".`,
  property: (n: string, ns: string) => `A property named "${n}" already exists in namespace "${ns}".`,
  tag: (n: string, ns: string) => `A tag named "${n}" already exists in namespace "${ns}".`,
  association: (n: string, ns: string) => `Resource type "${n}" is already associated with namespace "${ns}".`,
};

function toNamespace(r: MetadefNamespacesTable): Namespace {
  return {
    id: r.id,
    namespace: r.namespace,
    displayName: r.display_name,
    description: r.description,
    visibility: r.visibility as NamespaceVisibility,
    protected: !!r.protected,
    owner: r.owner,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toObject(r: MetadefObjectsTable): MetadefObject {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    required: r.required ? (JSON.parse(r.required) as string[]) : [],
    properties: JSON.parse(r.json_schema) as Record<string, PropertyDef>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toProperty(r: MetadefPropertiesTable): MetadefProperty {
  return { id: r.id, name: r.name, definition: JSON.parse(r.json_schema) as PropertyDef, createdAt: r.created_at, updatedAt: r.updated_at };
}

function toTag(r: MetadefTagsTable): MetadefTag {
  return { id: r.id, name: r.name, createdAt: r.created_at, updatedAt: r.updated_at };
}

function objectColumns(o: ObjectInput) {
  return {
    name: o.name,
    description: o.description,
    required: o.required && o.required.length ? JSON.stringify(o.required) : null,
    json_schema: JSON.stringify(o.properties ?? {}),
  };
}

/** Columns that may be null sort as empty strings, so keyset paging never meets a NULL. */
const NULLABLE = new Set(['display_name', 'description', 'owner']);
const sortExpr = (col: string): Expression<unknown> => (NULLABLE.has(col) ? sql`coalesce(${sql.ref(col)}, '')` : sql.ref(col));

/** The rows after `marker` in the order of `cols`, all in direction `dir` (as oslo.db's paginate_query). */
function afterMarker(cols: string[], dir: SortDir, marker: Record<string, unknown>) {
  const op = dir === 'asc' ? '>' : '<';
  const value = (c: string) => (NULLABLE.has(c) ? (marker[c] ?? '') : marker[c]);
  return (eb: any): Expression<SqlBool> =>
    eb.or(cols.map((c, i) => eb.and([...cols.slice(0, i).map((p) => eb(sortExpr(p), '=', value(p))), eb(sortExpr(c), op, value(c))])));
}

/** The catalog's storage. Callers check visibility and policy; this layer keeps names unique and writes atomic. */
export class MetadefsRepo {
  constructor(private readonly db: Db) {}

  // ---- namespaces

  async getNamespace(name: string): Promise<Namespace | undefined> {
    if (!storable(name)) return undefined;
    const row = await this.db.selectFrom('metadef_namespaces').selectAll().where('namespace', '=', name).executeTakeFirst();
    return row ? toNamespace(row) : undefined;
  }

  async listNamespaces(q: NamespaceListQuery, viewer: { isAdmin: boolean; projectId: string | null }, marker?: Namespace): Promise<Namespace[]> {
    if (q.resourceTypes && q.resourceTypes.length === 0) return [];
    let query = this.db.selectFrom('metadef_namespaces').selectAll();
    if (!viewer.isAdmin) {
      query = query.where((eb) =>
        eb.or([eb('visibility', '=', 'public'), eb('owner', 'is', null), ...(viewer.projectId === null ? [] : [eb('owner', '=', viewer.projectId)])]),
      );
    }
    if (q.visibility) query = query.where('visibility', '=', q.visibility);
    if (q.resourceTypes) {
      const types = q.resourceTypes.filter(storable);
      if (types.length === 0) return [];
      query = query.where('id', 'in', (eb) =>
        eb
          .selectFrom('metadef_namespace_resource_types as a')
          .innerJoin('metadef_resource_types as t', 't.id', 'a.resource_type_id')
          .select('a.namespace_id')
          .where('t.name', 'in', types),
      );
    }
    const cols = [...new Set([q.sortKey, 'created_at', 'id'])];
    if (marker) {
      const m = await this.db.selectFrom('metadef_namespaces').selectAll().where('id', '=', marker.id).executeTakeFirstOrThrow();
      query = query.where(afterMarker(cols, q.sortDir, m as unknown as Record<string, unknown>));
    }
    for (const c of cols) query = query.orderBy(sortExpr(c), q.sortDir);
    return (await query.limit(q.limit).execute()).map(toNamespace);
  }

  /** A namespace and everything it was sent with, all or nothing. */
  async createNamespace(fields: NamespaceFields, contents: NamespaceContents): Promise<Namespace> {
    return this.db.transaction().execute(async (trx) => {
      const ts = now();
      const id = orderedId();
      if (await trx.selectFrom('metadef_namespaces').select('id').where('namespace', '=', fields.namespace).executeTakeFirst()) {
        throw new Conflict(dup.namespace(fields.namespace));
      }
      await orConflict(
        () =>
          trx
            .insertInto('metadef_namespaces')
            .values({
              id,
              namespace: fields.namespace,
              display_name: fields.displayName,
              description: fields.description,
              visibility: fields.visibility,
              protected: fields.protected ? 1 : 0,
              owner: fields.owner,
              created_at: ts,
              updated_at: ts,
            })
            .execute(),
        dup.namespace(fields.namespace),
      );
      await this.fill(trx, id, fields.namespace, contents);
      return toNamespace(await trx.selectFrom('metadef_namespaces').selectAll().where('id', '=', id).executeTakeFirstOrThrow());
    });
  }

  /**
   * Adds contents to a namespace. With `keepExisting`, entries whose name is
   * already there are left alone (or replaced, with `replaceExisting`)
   * instead of being a conflict: that is how definition files merge.
   * Resource types first named by a definition file are `seeded` (protected).
   */
  async fill(exec: Exec, nsId: string, nsName: string, c: NamespaceContents, opts: FillOptions = {}): Promise<void> {
    const { keepExisting = false, replaceExisting = false, seeded = false } = opts;
    const ts = now();
    for (const a of c.associations) {
      const existing = await this.associationRow(exec, nsId, a.name);
      if (existing && keepExisting) {
        if (replaceExisting) {
          await exec
            .updateTable('metadef_namespace_resource_types')
            .set({ prefix: a.prefix, properties_target: a.propertiesTarget, updated_at: ts })
            .where('namespace_id', '=', nsId)
            .where('resource_type_id', '=', existing.resource_type_id)
            .execute();
        }
        continue;
      }
      await this.associateIn(exec, nsId, nsName, a, seeded);
    }
    for (const [name, def] of Object.entries(c.properties)) {
      const existing = await exec.selectFrom('metadef_properties').select('id').where('namespace_id', '=', nsId).where('name', '=', name).executeTakeFirst();
      if (existing && keepExisting) {
        if (replaceExisting) await exec.updateTable('metadef_properties').set({ json_schema: JSON.stringify(def), updated_at: ts }).where('id', '=', existing.id).execute();
        continue;
      }
      if (existing) throw new Conflict(dup.property(name, nsName));
      await orConflict(
        () => exec.insertInto('metadef_properties').values({ id: orderedId(), namespace_id: nsId, name, json_schema: JSON.stringify(def), created_at: ts, updated_at: ts }).execute(),
        dup.property(name, nsName),
      );
    }
    for (const o of c.objects) {
      const existing = await exec.selectFrom('metadef_objects').select('id').where('namespace_id', '=', nsId).where('name', '=', o.name).executeTakeFirst();
      if (existing && keepExisting) {
        if (replaceExisting) await exec.updateTable('metadef_objects').set({ ...objectColumns(o), updated_at: ts }).where('id', '=', existing.id).execute();
        continue;
      }
      if (existing) throw new Conflict(dup.object(o.name, nsName));
      await orConflict(
        () => exec.insertInto('metadef_objects').values({ id: orderedId(), namespace_id: nsId, ...objectColumns(o), created_at: ts, updated_at: ts }).execute(),
        dup.object(o.name, nsName),
      );
    }
    for (const name of c.tags) {
      const existing = await exec.selectFrom('metadef_tags').select('id').where('namespace_id', '=', nsId).where('name', '=', name).executeTakeFirst();
      if (existing && keepExisting) continue;
      if (existing) throw new Conflict(dup.tag(name, nsName));
      await this.insertTag(exec, nsId, nsName, name);
    }
  }

  async updateNamespace(ns: Namespace, fields: NamespaceFields): Promise<Namespace> {
    return this.db.transaction().execute(async (trx) => {
      if (fields.namespace !== ns.namespace) {
        if (await trx.selectFrom('metadef_namespaces').select('id').where('namespace', '=', fields.namespace).executeTakeFirst()) {
          throw new Conflict(dup.namespace(fields.namespace));
        }
      }
      await orConflict(
        () =>
          trx
            .updateTable('metadef_namespaces')
            .set({
              namespace: fields.namespace,
              display_name: fields.displayName,
              description: fields.description,
              visibility: fields.visibility,
              protected: fields.protected ? 1 : 0,
              owner: fields.owner,
              updated_at: now(),
            })
            .where('id', '=', ns.id)
            .execute(),
        dup.namespace(fields.namespace),
      );
      return toNamespace(await trx.selectFrom('metadef_namespaces').selectAll().where('id', '=', ns.id).executeTakeFirstOrThrow());
    });
  }

  /** Removes a namespace and its contents (resource types themselves stay). */
  async deleteNamespace(nsId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.clear(trx, nsId);
      await trx.deleteFrom('metadef_namespaces').where('id', '=', nsId).execute();
    });
  }

  async clear(exec: Exec, nsId: string): Promise<void> {
    for (const t of ['metadef_objects', 'metadef_properties', 'metadef_tags', 'metadef_namespace_resource_types'] as const) {
      await exec.deleteFrom(t).where('namespace_id', '=', nsId).execute();
    }
  }

  // ---- objects

  async listObjects(nsId: string): Promise<MetadefObject[]> {
    const rows = await this.db.selectFrom('metadef_objects').selectAll().where('namespace_id', '=', nsId).orderBy('created_at').orderBy('id').execute();
    return rows.map(toObject);
  }

  async getObject(nsId: string, name: string): Promise<MetadefObject | undefined> {
    if (!storable(name)) return undefined;
    const row = await this.db.selectFrom('metadef_objects').selectAll().where('namespace_id', '=', nsId).where('name', '=', name).executeTakeFirst();
    return row ? toObject(row) : undefined;
  }

  async createObject(ns: Namespace, o: ObjectInput): Promise<MetadefObject> {
    await this.db.transaction().execute((trx) => this.fill(trx, ns.id, ns.namespace, { properties: {}, objects: [o], tags: [], associations: [] }));
    return (await this.getObject(ns.id, o.name))!;
  }

  async updateObject(ns: Namespace, current: MetadefObject, o: ObjectInput): Promise<MetadefObject> {
    await this.db.transaction().execute(async (trx) => {
      if (o.name !== current.name && (await trx.selectFrom('metadef_objects').select('id').where('namespace_id', '=', ns.id).where('name', '=', o.name).executeTakeFirst())) {
        throw new Conflict(dup.object(o.name, ns.namespace));
      }
      await orConflict(
        () => trx.updateTable('metadef_objects').set({ ...objectColumns(o), updated_at: now() }).where('id', '=', current.id).execute(),
        dup.object(o.name, ns.namespace),
      );
    });
    return (await this.getObject(ns.id, o.name))!;
  }

  async deleteObject(id: string): Promise<void> {
    await this.db.deleteFrom('metadef_objects').where('id', '=', id).execute();
  }

  async deleteObjects(nsId: string): Promise<void> {
    await this.db.deleteFrom('metadef_objects').where('namespace_id', '=', nsId).execute();
  }

  // ---- properties

  async listProperties(nsId: string): Promise<MetadefProperty[]> {
    const rows = await this.db.selectFrom('metadef_properties').selectAll().where('namespace_id', '=', nsId).orderBy('created_at').orderBy('id').execute();
    return rows.map(toProperty);
  }

  async getProperty(nsId: string, name: string): Promise<MetadefProperty | undefined> {
    if (!storable(name)) return undefined;
    const row = await this.db.selectFrom('metadef_properties').selectAll().where('namespace_id', '=', nsId).where('name', '=', name).executeTakeFirst();
    return row ? toProperty(row) : undefined;
  }

  async createProperty(ns: Namespace, name: string, def: PropertyDef): Promise<MetadefProperty> {
    await this.db.transaction().execute((trx) => this.fill(trx, ns.id, ns.namespace, { properties: { [name]: def }, objects: [], tags: [], associations: [] }));
    return (await this.getProperty(ns.id, name))!;
  }

  async updateProperty(ns: Namespace, current: MetadefProperty, name: string, def: PropertyDef): Promise<MetadefProperty> {
    await this.db.transaction().execute(async (trx) => {
      if (name !== current.name && (await trx.selectFrom('metadef_properties').select('id').where('namespace_id', '=', ns.id).where('name', '=', name).executeTakeFirst())) {
        throw new Conflict(dup.property(name, ns.namespace));
      }
      await orConflict(
        () => trx.updateTable('metadef_properties').set({ name, json_schema: JSON.stringify(def), updated_at: now() }).where('id', '=', current.id).execute(),
        dup.property(name, ns.namespace),
      );
    });
    return (await this.getProperty(ns.id, name))!;
  }

  async deleteProperty(id: string): Promise<void> {
    await this.db.deleteFrom('metadef_properties').where('id', '=', id).execute();
  }

  async deleteProperties(nsId: string): Promise<void> {
    await this.db.deleteFrom('metadef_properties').where('namespace_id', '=', nsId).execute();
  }

  // ---- tags

  async listTags(nsId: string, q: TagListQuery, marker?: MetadefTag): Promise<MetadefTag[]> {
    let query = this.db.selectFrom('metadef_tags').selectAll().where('namespace_id', '=', nsId);
    const cols = [...new Set([q.sortKey, 'created_at', 'id'])];
    if (marker) {
      const m = await this.db.selectFrom('metadef_tags').selectAll().where('id', '=', marker.id).executeTakeFirstOrThrow();
      query = query.where(afterMarker(cols, q.sortDir, m as unknown as Record<string, unknown>));
    }
    for (const c of cols) query = query.orderBy(sortExpr(c), q.sortDir);
    if (q.limit !== undefined) query = query.limit(q.limit);
    return (await query.execute()).map(toTag);
  }

  async getTag(nsId: string, name: string): Promise<MetadefTag | undefined> {
    if (!storable(name)) return undefined;
    const row = await this.db.selectFrom('metadef_tags').selectAll().where('namespace_id', '=', nsId).where('name', '=', name).executeTakeFirst();
    return row ? toTag(row) : undefined;
  }

  private async insertTag(exec: Exec, nsId: string, nsName: string, name: string): Promise<void> {
    const ts = now();
    await orConflict(() => exec.insertInto('metadef_tags').values({ id: orderedId(), namespace_id: nsId, name, created_at: ts, updated_at: ts }).execute(), dup.tag(name, nsName));
  }

  async createTag(ns: Namespace, name: string): Promise<MetadefTag> {
    await this.db.transaction().execute((trx) => this.fill(trx, ns.id, ns.namespace, { properties: {}, objects: [], tags: [name], associations: [] }));
    return (await this.getTag(ns.id, name))!;
  }

  /** Replaces the namespace's tags with `names` (or adds them, with `append`); a clash undoes everything. */
  async createTags(ns: Namespace, names: string[], append: boolean): Promise<void> {
    if (names.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      if (!append) await trx.deleteFrom('metadef_tags').where('namespace_id', '=', ns.id).execute();
      const seen = new Set<string>();
      for (const name of names) {
        if (seen.has(name)) throw new Conflict(dup.tag(name, ns.namespace));
        seen.add(name);
      }
      await this.fill(trx, ns.id, ns.namespace, { properties: {}, objects: [], tags: names, associations: [] });
    });
  }

  async renameTag(ns: Namespace, current: MetadefTag, name: string): Promise<MetadefTag> {
    await this.db.transaction().execute(async (trx) => {
      if (name !== current.name && (await trx.selectFrom('metadef_tags').select('id').where('namespace_id', '=', ns.id).where('name', '=', name).executeTakeFirst())) {
        throw new Conflict(dup.tag(name, ns.namespace));
      }
      await orConflict(() => trx.updateTable('metadef_tags').set({ name, updated_at: now() }).where('id', '=', current.id).execute(), dup.tag(name, ns.namespace));
    });
    return (await this.getTag(ns.id, name))!;
  }

  async deleteTag(id: string): Promise<void> {
    await this.db.deleteFrom('metadef_tags').where('id', '=', id).execute();
  }

  async deleteTags(nsId: string): Promise<void> {
    await this.db.deleteFrom('metadef_tags').where('namespace_id', '=', nsId).execute();
  }

  // ---- resource types

  async listResourceTypes(): Promise<ResourceType[]> {
    const rows = await this.db.selectFrom('metadef_resource_types').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, name: r.name, protected: !!r.protected, createdAt: r.created_at, updatedAt: r.updated_at }));
  }

  /** Associations of several namespaces at once (a namespace list shows them). */
  async associations(nsIds: string[]): Promise<Map<string, Association[]>> {
    const out = new Map<string, Association[]>();
    if (nsIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('metadef_namespace_resource_types as a')
      .innerJoin('metadef_resource_types as t', 't.id', 'a.resource_type_id')
      .select(['a.namespace_id', 't.name', 'a.prefix', 'a.properties_target', 'a.created_at', 'a.updated_at'])
      .where('a.namespace_id', 'in', nsIds)
      .orderBy('a.created_at')
      .orderBy('t.id')
      .execute();
    for (const r of rows) {
      const list = out.get(r.namespace_id) ?? [];
      list.push({ name: r.name, prefix: r.prefix, propertiesTarget: r.properties_target, createdAt: r.created_at, updatedAt: r.updated_at });
      out.set(r.namespace_id, list);
    }
    return out;
  }

  async association(nsId: string, typeName: string): Promise<Association | undefined> {
    return (await this.associations([nsId])).get(nsId)?.find((a) => a.name === typeName);
  }

  private associationRow(exec: Exec, nsId: string, typeName: string) {
    return exec
      .selectFrom('metadef_namespace_resource_types as a')
      .innerJoin('metadef_resource_types as t', 't.id', 'a.resource_type_id')
      .select(['a.resource_type_id'])
      .where('a.namespace_id', '=', nsId)
      .where('t.name', '=', typeName)
      .executeTakeFirst();
  }

  /** Associates a resource type, creating the type on first use (as Glance does). */
  private async associateIn(exec: Exec, nsId: string, nsName: string, a: AssociationInput, seeded: boolean): Promise<void> {
    const ts = now();
    let type = await exec.selectFrom('metadef_resource_types').select('id').where('name', '=', a.name).executeTakeFirst();
    if (!type) {
      const id = orderedId();
      await exec.insertInto('metadef_resource_types').values({ id, name: a.name, protected: seeded ? 1 : 0, created_at: ts, updated_at: ts }).execute();
      type = { id };
    }
    if (await this.associationRow(exec, nsId, a.name)) throw new Conflict(dup.association(a.name, nsName));
    const typeId = type.id;
    await orConflict(
      () =>
        exec
          .insertInto('metadef_namespace_resource_types')
          .values({ namespace_id: nsId, resource_type_id: typeId, prefix: a.prefix, properties_target: a.propertiesTarget, created_at: ts, updated_at: ts })
          .execute(),
      dup.association(a.name, nsName),
    );
  }

  async associate(ns: Namespace, a: AssociationInput): Promise<Association> {
    await this.db.transaction().execute((trx) => this.associateIn(trx, ns.id, ns.namespace, a, false));
    return (await this.association(ns.id, a.name))!;
  }

  /** Returns false when the namespace has no such association. */
  async dissociate(nsId: string, typeName: string): Promise<boolean> {
    if (!storable(typeName)) return false;
    const row = await this.associationRow(this.db, nsId, typeName);
    if (!row) return false;
    await this.db.deleteFrom('metadef_namespace_resource_types').where('namespace_id', '=', nsId).where('resource_type_id', '=', row.resource_type_id).execute();
    return true;
  }

  // ---- definition files (imago-manage)

  /**
   * Loads one namespace from a definition file, in one transaction, as
   * glance-manage does: a new namespace is created; an existing one is left
   * alone, unless `merge` (add what is missing; with `preferNew` also replace
   * what differs) or `overwrite` (drop it and load afresh).
   */
  async loadDefinition(fields: NamespaceFields, contents: NamespaceContents, mode: LoadMode): Promise<LoadOutcome> {
    return this.db.transaction().execute(async (trx) => {
      let existing = await trx.selectFrom('metadef_namespaces').selectAll().where('namespace', '=', fields.namespace).executeTakeFirst();
      let outcome: LoadOutcome = 'created';
      if (existing && mode.overwrite) {
        await this.clear(trx, existing.id);
        await trx.deleteFrom('metadef_namespaces').where('id', '=', existing.id).execute();
        existing = undefined;
        outcome = 'replaced';
      }
      if (!existing) {
        const ts = now();
        const id = orderedId();
        await trx
          .insertInto('metadef_namespaces')
          .values({
            id,
            namespace: fields.namespace,
            display_name: fields.displayName,
            description: fields.description,
            visibility: fields.visibility,
            protected: fields.protected ? 1 : 0,
            owner: fields.owner,
            created_at: ts,
            updated_at: ts,
          })
          .execute();
        await this.fill(trx, id, fields.namespace, contents, { seeded: true });
        return outcome;
      }
      if (!mode.merge) return 'skipped';
      if (mode.preferNew) {
        await trx
          .updateTable('metadef_namespaces')
          .set({
            display_name: fields.displayName,
            description: fields.description,
            visibility: fields.visibility,
            protected: fields.protected ? 1 : 0,
            owner: fields.owner,
            updated_at: now(),
          })
          .where('id', '=', existing.id)
          .execute();
      }
      await this.fill(trx, existing.id, fields.namespace, contents, { keepExisting: true, replaceExisting: mode.preferNew, seeded: true });
      return 'merged';
    });
  }

  /** Everything in the catalog, for export. */
  async allNamespaces(): Promise<Namespace[]> {
    return (await this.db.selectFrom('metadef_namespaces').selectAll().orderBy('namespace').execute()).map(toNamespace);
  }

  /** Empties the catalog; the resource types in `keepTypes` stay. */
  async unload(keepTypes: string[]): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const all = await trx.selectFrom('metadef_namespaces').select('id').execute();
      for (const { id } of all) await this.clear(trx, id);
      await trx.deleteFrom('metadef_namespaces').execute();
      let types = trx.deleteFrom('metadef_resource_types');
      if (keepTypes.length) types = types.where('name', 'not in', keepTypes);
      await types.execute();
      return all.length;
    });
  }
}
