import type { RequestContext } from '../auth/context.js';
import { Forbidden, NotFound } from '../domain/errors.js';
import type { Policy } from '../domain/policy.js';
import type { NamespaceBody } from './input.js';
import type { NamespaceListQuery, TagListQuery } from './list-query.js';
import {
  isVisible,
  policyTarget,
  prefixed,
  type Association,
  type AssociationInput,
  type MetadefObject,
  type MetadefProperty,
  type MetadefTag,
  type Namespace,
  type NamespaceFields,
  type ObjectInput,
  type PropertyDef,
  type ResourceType,
} from './model.js';
import type { MetadefsRepo } from './repo.js';
import type { Notifier } from '../notifications/notifier.js';
import { deletedNow, namespacePayload, objectPayload, propertyPayload, resourceTypePayload, tagPayload } from '../notifications/metadef-payloads.js';

const missing = {
  namespace: (n: string) => new NotFound(`Metadata definition namespace "${n}" was not found.`),
  object: (n: string, ns: string) => new NotFound(`Object "${n}" was not found in namespace "${ns}".`),
  property: (n: string, ns: string) => new NotFound(`Property "${n}" was not found in namespace "${ns}".`),
  tag: (n: string, ns: string) => new NotFound(`Tag "${n}" was not found in namespace "${ns}".`),
};

const protectedNs = (ns: Namespace, what: string) =>
  new Forbidden(`Namespace "${ns.namespace}" is protected: ${what} cannot be deleted. Set "protected": false on the namespace first.`);

export interface ObjectView {
  object: MetadefObject;
  properties: Record<string, PropertyDef>;
  required: string[];
}

/** A namespace with its contents, property names prefixed for one resource type when asked. */
export interface NamespaceDetail {
  namespace: Namespace;
  associations: Association[];
  properties: Record<string, PropertyDef>;
  objects: ObjectView[];
  tags: MetadefTag[];
}

/**
 * The metadata definitions catalog, with Glance's rules: admins manage it;
 * others read public namespaces and their own project's; a namespace the
 * caller may not see answers 404 whatever the operation, one it can see but
 * not change answers 403; nothing in a protected namespace can be deleted.
 */
export class MetadefService {
  constructor(
    private readonly repo: MetadefsRepo,
    private readonly policy: Policy,
    /** metadef_* events after each committed change */
    private readonly events?: Notifier,
  ) {}

  private emit(eventType: `metadef_${string}`, payload: () => Record<string, unknown>): void {
    if (this.events?.wants(eventType)) this.events.metadef(eventType, payload());
  }

  /** 403 for a refused rule, 404 when the caller may not even see the namespace (as Glance's MetadefAPIPolicy). */
  private enforce(rule: string, ctx: RequestContext, ns?: Namespace): void {
    const target = ns ? policyTarget(ns) : { project_id: ctx.projectId };
    if (this.policy.check(rule, ctx, target)) return;
    if (rule === 'get_metadef_namespace' || !this.policy.check('get_metadef_namespace', ctx, target)) {
      throw ns ? missing.namespace(ns.namespace) : new NotFound('The resource could not be found.');
    }
    throw new Forbidden(`You are not authorized to complete ${rule} action.`);
  }

  /** The namespace if it exists and the caller may see it; 404 otherwise. */
  private async visible(ctx: RequestContext, name: string): Promise<Namespace> {
    const ns = await this.repo.getNamespace(name);
    if (!ns || !isVisible(ns, ctx)) throw missing.namespace(name);
    return ns;
  }

  /** A namespace the caller may see, checked against `rule`. */
  private async namespaceFor(ctx: RequestContext, name: string, ...rules: string[]): Promise<Namespace> {
    const ns = await this.visible(ctx, name);
    for (const rule of rules) this.enforce(rule, ctx, ns);
    return ns;
  }

  // ---- namespaces

  async listNamespaces(ctx: RequestContext, q: NamespaceListQuery): Promise<{ namespace: Namespace; associations: Association[] }[]> {
    this.enforce('get_metadef_namespaces', ctx);
    this.enforce('list_metadef_resource_types', ctx);
    const marker = q.marker === undefined ? undefined : await this.visible(ctx, q.marker);
    const found = await this.repo.listNamespaces(q, ctx, marker);
    const shown = found.filter((ns) => this.policy.check('get_metadef_namespace', ctx, policyTarget(ns)));
    const associations = await this.repo.associations(shown.map((ns) => ns.id));
    return shown.map((ns) => ({ namespace: ns, associations: associations.get(ns.id) ?? [] }));
  }

  async createNamespace(ctx: RequestContext, body: NamespaceBody): Promise<Namespace> {
    this.enforce('add_metadef_namespace', ctx);
    const c = body.contents;
    if (c.associations.length) this.enforce('add_metadef_resource_type_association', ctx);
    if (c.objects.length) this.enforce('add_metadef_object', ctx);
    if (Object.keys(c.properties).length) this.enforce('add_metadef_property', ctx);
    if (c.tags.length) this.enforce('add_metadef_tag', ctx);
    const owner = body.fields.owner ?? ctx.projectId;
    this.checkOwner(ctx, owner);
    const ns = await this.repo.createNamespace({ ...body.fields, owner }, c);
    this.emit('metadef_namespace.create', () => namespacePayload(ns));
    return ns;
  }

  private checkOwner(ctx: RequestContext, owner: string | null): void {
    if (!ctx.isAdmin && owner !== ctx.projectId) throw new Forbidden(`You may not make project "${owner}" the owner of a namespace.`);
  }

  async showNamespace(ctx: RequestContext, name: string, resourceType?: string): Promise<NamespaceDetail> {
    const ns = await this.namespaceFor(ctx, name, 'get_metadef_namespace', 'list_metadef_resource_types', 'get_metadef_objects', 'get_metadef_properties', 'get_metadef_tags');
    const [associations, properties, objects, tags] = await Promise.all([
      this.repo.associations([ns.id]).then((m) => m.get(ns.id) ?? []),
      this.repo.listProperties(ns.id),
      this.repo.listObjects(ns.id),
      this.repo.listTags(ns.id, { sortKey: 'created_at', sortDir: 'desc' }),
    ]);
    const prefix = resourceType ? (associations.find((a) => a.name === resourceType)?.prefix ?? '') : '';
    return {
      namespace: ns,
      associations,
      properties: prefixed(Object.fromEntries(properties.map((p) => [p.name, p.definition])), prefix),
      objects: objects.map((o) => ({ object: o, properties: prefixed(o.properties, prefix), required: o.required.map((r) => prefix + r) })),
      tags,
    };
  }

  /** PUT replaces the namespace's own attributes; unset ones fall back to their defaults, as Glance. */
  async updateNamespace(ctx: RequestContext, name: string, body: NamespaceBody): Promise<Namespace> {
    const ns = await this.namespaceFor(ctx, name, 'modify_metadef_namespace');
    const fields: NamespaceFields = { ...body.fields, owner: body.fields.owner || ctx.projectId };
    if (fields.owner !== ns.owner) this.checkOwner(ctx, fields.owner);
    const updated = await this.repo.updateNamespace(ns, fields);
    this.emit('metadef_namespace.update', () => namespacePayload(updated, ns.namespace));
    return updated;
  }

  async deleteNamespace(ctx: RequestContext, name: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, name, 'delete_metadef_namespace');
    if (ns.protected) throw protectedNs(ns, 'it');
    await this.repo.deleteNamespace(ns.id);
    this.emit('metadef_namespace.delete', () => ({ ...namespacePayload(ns), ...deletedNow() }));
  }

  // ---- objects

  async listObjects(ctx: RequestContext, nsName: string): Promise<{ namespace: Namespace; objects: MetadefObject[] }> {
    const ns = await this.namespaceFor(ctx, nsName, 'get_metadef_objects');
    const objects = (await this.repo.listObjects(ns.id)).filter(() => this.policy.check('get_metadef_object', ctx, policyTarget(ns)));
    return { namespace: ns, objects };
  }

  async showObject(ctx: RequestContext, nsName: string, name: string): Promise<MetadefObject> {
    const ns = await this.namespaceFor(ctx, nsName, 'get_metadef_object');
    return (await this.repo.getObject(ns.id, name)) ?? this.fail(missing.object(name, nsName));
  }

  async createObject(ctx: RequestContext, nsName: string, input: ObjectInput): Promise<MetadefObject> {
    const ns = await this.namespaceFor(ctx, nsName, 'add_metadef_object');
    const created = await this.repo.createObject(ns, input);
    this.emit('metadef_object.create', () => objectPayload(ns, created));
    return created;
  }

  async updateObject(ctx: RequestContext, nsName: string, name: string, input: ObjectInput): Promise<MetadefObject> {
    const ns = await this.namespaceFor(ctx, nsName, 'modify_metadef_object');
    const current = (await this.repo.getObject(ns.id, name)) ?? this.fail(missing.object(name, nsName));
    const updated = await this.repo.updateObject(ns, current, input);
    this.emit('metadef_object.update', () => objectPayload(ns, updated, current.name));
    return updated;
  }

  async deleteObject(ctx: RequestContext, nsName: string, name: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'delete_metadef_object');
    const current = (await this.repo.getObject(ns.id, name)) ?? this.fail(missing.object(name, nsName));
    if (ns.protected) throw protectedNs(ns, `its object "${name}"`);
    await this.repo.deleteObject(current.id);
    this.emit('metadef_object.delete', () => ({ ...objectPayload(ns, current), ...deletedNow() }));
  }

  /** Glance checks delete_metadef_namespace for the delete-all operations. */
  async deleteObjects(ctx: RequestContext, nsName: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'delete_metadef_namespace');
    if (ns.protected) throw protectedNs(ns, 'its objects');
    await this.repo.deleteObjects(ns.id);
    this.emit('metadef_namespace.delete_objects', () => namespacePayload(ns));
  }

  // ---- properties

  async listProperties(ctx: RequestContext, nsName: string): Promise<MetadefProperty[]> {
    const ns = await this.namespaceFor(ctx, nsName, 'get_metadef_properties');
    return this.repo.listProperties(ns.id);
  }

  /** With `resourceType`, `name` is the prefixed name that resource type uses (e.g. hw:cpu_policy). */
  async showProperty(ctx: RequestContext, nsName: string, name: string, resourceType?: string): Promise<MetadefProperty> {
    const ns = await this.namespaceFor(ctx, nsName, 'get_metadef_property');
    let stored = name;
    if (resourceType) {
      this.enforce('get_metadef_resource_type', ctx, ns);
      const association = await this.repo.association(ns.id, resourceType);
      if (!association) throw new NotFound(`Resource type "${resourceType}" is not associated with namespace "${nsName}".`);
      const prefix = association.prefix;
      if (!prefix || !name.startsWith(prefix)) {
        throw new NotFound(`Property "${name}" does not start with the prefix "${prefix ?? ''}" that resource type "${resourceType}" uses in namespace "${nsName}".`);
      }
      stored = name.slice(prefix.length);
    }
    return (await this.repo.getProperty(ns.id, stored)) ?? this.fail(missing.property(stored, nsName));
  }

  async createProperty(ctx: RequestContext, nsName: string, name: string, def: PropertyDef): Promise<MetadefProperty> {
    const ns = await this.namespaceFor(ctx, nsName, 'add_metadef_property');
    const created = await this.repo.createProperty(ns, name, def);
    this.emit('metadef_property.create', () => propertyPayload(ns, created));
    return created;
  }

  async updateProperty(ctx: RequestContext, nsName: string, name: string, newName: string, def: PropertyDef): Promise<MetadefProperty> {
    const ns = await this.namespaceFor(ctx, nsName, 'modify_metadef_property');
    const current = (await this.repo.getProperty(ns.id, name)) ?? this.fail(missing.property(name, nsName));
    const updated = await this.repo.updateProperty(ns, current, newName, def);
    this.emit('metadef_property.update', () => propertyPayload(ns, updated, current.name));
    return updated;
  }

  async deleteProperty(ctx: RequestContext, nsName: string, name: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'remove_metadef_property');
    const current = (await this.repo.getProperty(ns.id, name)) ?? this.fail(missing.property(name, nsName));
    if (ns.protected) throw protectedNs(ns, `its property "${name}"`);
    await this.repo.deleteProperty(current.id);
    this.emit('metadef_property.delete', () => ({ ...propertyPayload(ns, current), ...deletedNow() }));
  }

  async deleteProperties(ctx: RequestContext, nsName: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'delete_metadef_namespace');
    if (ns.protected) throw protectedNs(ns, 'its properties');
    await this.repo.deleteProperties(ns.id);
    this.emit('metadef_namespace.delete_properties', () => namespacePayload(ns));
  }

  // ---- tags

  async listTags(ctx: RequestContext, nsName: string, q: TagListQuery): Promise<MetadefTag[]> {
    const ns = await this.namespaceFor(ctx, nsName, 'get_metadef_tags');
    const marker = q.marker === undefined ? undefined : ((await this.repo.getTag(ns.id, q.marker)) ?? this.fail(missing.tag(q.marker, nsName)));
    return this.repo.listTags(ns.id, q, marker);
  }

  async showTag(ctx: RequestContext, nsName: string, name: string): Promise<MetadefTag> {
    const ns = await this.namespaceFor(ctx, nsName, 'get_metadef_tag');
    return (await this.repo.getTag(ns.id, name)) ?? this.fail(missing.tag(name, nsName));
  }

  async createTag(ctx: RequestContext, nsName: string, name: string): Promise<MetadefTag> {
    const ns = await this.namespaceFor(ctx, nsName, 'add_metadef_tag');
    const created = await this.repo.createTag(ns, name);
    this.emit('metadef_tag.create', () => tagPayload(ns, created));
    return created;
  }

  async createTags(ctx: RequestContext, nsName: string, names: string[], append: boolean): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'add_metadef_tags');
    await this.repo.createTags(ns, names, append);
    if (this.events?.wants('metadef_tag.create')) {
      const now = new Date().toISOString();
      for (const name of names) this.events.metadef('metadef_tag.create', tagPayload(ns, { name, createdAt: now, updatedAt: now }));
    }
  }

  async renameTag(ctx: RequestContext, nsName: string, name: string, newName: string): Promise<MetadefTag> {
    const ns = await this.namespaceFor(ctx, nsName, 'modify_metadef_tag');
    const current = (await this.repo.getTag(ns.id, name)) ?? this.fail(missing.tag(name, nsName));
    const renamed = await this.repo.renameTag(ns, current, newName);
    this.emit('metadef_tag.update', () => tagPayload(ns, renamed, current.name));
    return renamed;
  }

  async deleteTag(ctx: RequestContext, nsName: string, name: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'delete_metadef_tag');
    const current = (await this.repo.getTag(ns.id, name)) ?? this.fail(missing.tag(name, nsName));
    if (ns.protected) throw protectedNs(ns, `its tag "${name}"`);
    await this.repo.deleteTag(current.id);
    this.emit('metadef_tag.delete', () => ({ ...tagPayload(ns, current), ...deletedNow() }));
  }

  async deleteTags(ctx: RequestContext, nsName: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'delete_metadef_namespace', 'delete_metadef_tags');
    if (ns.protected) throw protectedNs(ns, 'its tags');
    await this.repo.deleteTags(ns.id);
    this.emit('metadef_namespace.delete_tags', () => namespacePayload(ns));
  }

  // ---- resource types

  async listResourceTypes(ctx: RequestContext): Promise<ResourceType[]> {
    this.enforce('list_metadef_resource_types', ctx);
    return this.repo.listResourceTypes();
  }

  async listAssociations(ctx: RequestContext, nsName: string): Promise<Association[]> {
    const ns = await this.namespaceFor(ctx, nsName, 'list_metadef_resource_types');
    const all = (await this.repo.associations([ns.id])).get(ns.id) ?? [];
    return all.filter(() => this.policy.check('get_metadef_resource_type', ctx, policyTarget(ns)));
  }

  async associate(ctx: RequestContext, nsName: string, input: AssociationInput): Promise<Association> {
    const ns = await this.namespaceFor(ctx, nsName, 'add_metadef_resource_type_association');
    const created = await this.repo.associate(ns, input);
    this.emit('metadef_resource_type.create', () => resourceTypePayload(ns, created));
    return created;
  }

  async dissociate(ctx: RequestContext, nsName: string, typeName: string): Promise<void> {
    const ns = await this.namespaceFor(ctx, nsName, 'remove_metadef_resource_type_association');
    const association = await this.repo.association(ns.id, typeName);
    if (!association) {
      throw new NotFound(`Resource type "${typeName}" is not associated with namespace "${nsName}", so there is nothing to remove.`);
    }
    if (ns.protected) throw protectedNs(ns, `its association with resource type "${typeName}"`);
    await this.repo.dissociate(ns.id, typeName);
    this.emit('metadef_resource_type.delete', () => ({ ...resourceTypePayload(ns, association), ...deletedNow() }));
  }

  private fail(err: Error): never {
    throw err;
  }
}
