import { displayTime } from '../../db/database.js';
import type { Association, MetadefObject, MetadefProperty, MetadefTag, Namespace, ObjectInput, PropertyDef, ResourceType } from '../../metadefs/model.js';

/**
 * Response bodies, shaped as Glance's: unset attributes are left out rather
 * than null, timestamps are to the second, links are relative.
 */

type Json = Record<string, unknown>;

const time = (iso: string) => displayTime(iso)!;

function compact(o: Json): Json {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}

export const namespaceHref = (ns: string) => `/v2/metadefs/namespaces/${ns}`;
export const objectHref = (ns: string, name: string) => `${namespaceHref(ns)}/objects/${name}`;

export function namespaceJson(ns: Namespace, contents: Json = {}): Json {
  return compact({
    namespace: ns.namespace,
    display_name: ns.displayName,
    description: ns.description,
    visibility: ns.visibility,
    protected: ns.protected,
    owner: ns.owner,
    created_at: time(ns.createdAt),
    updated_at: time(ns.updatedAt),
    ...contents,
    self: namespaceHref(ns.namespace),
    schema: '/v2/schemas/metadefs/namespace',
  });
}

export function associationJson(a: Association): Json {
  return compact({ name: a.name, prefix: a.prefix, properties_target: a.propertiesTarget, created_at: time(a.createdAt), updated_at: time(a.updatedAt) });
}

export function resourceTypeJson(t: ResourceType): Json {
  return { name: t.name, created_at: time(t.createdAt), updated_at: time(t.updatedAt) };
}

export function objectJson(nsName: string, o: MetadefObject, properties: Record<string, PropertyDef> = o.properties, required: string[] = o.required): Json {
  return compact({
    name: o.name,
    description: o.description,
    required,
    properties,
    created_at: time(o.createdAt),
    updated_at: time(o.updatedAt),
    self: objectHref(nsName, o.name),
    schema: '/v2/schemas/metadefs/object',
  });
}

/** An object as a create request gave it (a namespace create answer echoes its input). */
export function objectInputJson(o: ObjectInput): Json {
  return compact({ name: o.name, description: o.description, required: o.required, properties: o.properties });
}

export function propertyJson(p: MetadefProperty): Json {
  return { name: p.name, ...p.definition };
}

export function tagJson(t: MetadefTag): Json {
  return { name: t.name, created_at: time(t.createdAt), updated_at: time(t.updatedAt) };
}
