import type { Association, MetadefObject, MetadefProperty, MetadefTag, Namespace, PropertyDef } from '../metadefs/model.js';
import { isoSeconds, nowIso } from './payloads.js';

/** The metadef_* payloads of glance/notifier.py's format_metadef_* helpers: same fields. */

const SCHEMA_KEYS = ['type', 'title', 'description', 'default', 'minimum', 'maximum', 'enum', 'pattern', 'minLength', 'maxLength', 'confidential', 'items', 'uniqueItems', 'minItems', 'maxItems', 'additionalItems'] as const;

const stamps = (o: { createdAt: string; updatedAt: string }) => ({ created_at: isoSeconds(o.createdAt), updated_at: isoSeconds(o.updatedAt), deleted: false, deleted_at: null });
/** The extra fields of a *.delete event. */
export const deletedNow = () => ({ deleted: true, deleted_at: nowIso() });

export function namespacePayload(ns: Namespace, oldName = ns.namespace): Record<string, unknown> {
  return {
    namespace: ns.namespace,
    namespace_old: oldName,
    display_name: ns.displayName,
    protected: ns.protected,
    visibility: ns.visibility,
    owner: ns.owner,
    description: ns.description,
    ...stamps(ns),
  };
}

/** One property of an object as Glance lists it: every schema key, falsy ones as null. */
function objectProperty(name: string, def: PropertyDef): Record<string, unknown> {
  const out: Record<string, unknown> = { name };
  for (const k of SCHEMA_KEYS) out[k] = def[k] || null;
  return out;
}

export function objectPayload(ns: Namespace, o: MetadefObject, oldName = o.name): Record<string, unknown> {
  return {
    namespace: ns.namespace,
    name: o.name,
    name_old: oldName,
    properties: Object.entries(o.properties).map(([n, d]) => objectProperty(n, d)),
    required: o.required,
    description: o.description,
    ...stamps(o),
  };
}

export function propertyPayload(ns: Namespace, p: MetadefProperty, oldName = p.name): Record<string, unknown> {
  const out: Record<string, unknown> = { namespace: ns.namespace, name: p.name, name_old: oldName };
  for (const k of SCHEMA_KEYS) out[k] = p.definition[k] ?? null;
  return { ...out, deleted: false, deleted_at: null };
}

export function tagPayload(ns: Namespace, t: Pick<MetadefTag, 'name' | 'createdAt' | 'updatedAt'>, oldName = t.name): Record<string, unknown> {
  return { namespace: ns.namespace, name: t.name, name_old: oldName, ...stamps(t) };
}

export function resourceTypePayload(ns: Namespace, a: Association): Record<string, unknown> {
  return { namespace: ns.namespace, name: a.name, name_old: a.name, prefix: a.prefix, properties_target: a.propertiesTarget, ...stamps(a) };
}
