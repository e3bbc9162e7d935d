import { BadRequest, Forbidden } from '../domain/errors.js';
import { compileSchema, type SchemaCheck } from '../domain/json-validator.js';
import { storable, type AssociationInput, type NamespaceContents, type NamespaceFields, type ObjectInput, type PropertyDef } from './model.js';
import {
  PROPERTY_ATTRIBUTES,
  namespaceSchema,
  objectSchema,
  propertySchema,
  resourceTypeAssociationSchema,
  tagListSchema,
  tagSchema,
} from './schemas.js';

/**
 * Request bodies of the metadefs API, checked as Glance checks them: a body
 * is required, server-set attributes are read-only (403), the body must
 * conform to the served schema (400), and no string may hold characters
 * outside the Basic Multilingual Plane (Glance refuses them: MySQL's utf8).
 */

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const FOUR_BYTE = /[\u{10000}-\u{10FFFF}]/u;
const SERVER_SET = ['self', 'schema', 'created_at', 'updated_at'];
const TIMESTAMPS = ['created_at', 'updated_at'];

function requireBody(body: unknown, what: string): Json {
  if (body === undefined || body === null) throw new BadRequest(`A JSON body describing the ${what} is required.`);
  if (!isObject(body)) throw new BadRequest(`The request body must be a JSON object describing the ${what}.`);
  return body;
}

/** Walks the body with a stack of its own (no recursion the input could drive). */
function refuseFourByte(value: unknown, where = 'the request body'): void {
  const pending: Array<[unknown, string]> = [[value, where]];
  while (pending.length > 0) {
    const [v, at] = pending.pop()!;
    if (typeof v === 'string') {
      if (FOUR_BYTE.test(v)) throw new BadRequest(`${at} contains a character outside the Basic Multilingual Plane (4-byte UTF-8), which is not accepted.`);
      if (!storable(v)) throw new BadRequest(`${at} contains a NUL character or an unpaired surrogate, which is not accepted.`);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) pending.push([v[i], at]);
    } else if (isObject(v)) {
      for (const [k, x] of Object.entries(v).reverse()) pending.push([x, `'${k}'`], [k, `The attribute name '${k}'`]);
    }
  }
}

function refuseReadOnly(body: Json, keys: string[]): void {
  for (const k of keys) if (k in body) throw new Forbidden(`Attribute '${k}' is read-only.`);
}

/** The served /v2/schemas/metadefs/* documents, compiled once when this module loads. */
const CHECKS = {
  namespace: compileSchema(namespaceSchema(), 'the namespace'),
  object: compileSchema(objectSchema(), 'the object'),
  property: compileSchema(propertySchema(true), 'the property'),
  /** a property inside a namespace or object, its name being the map key */
  propertyDefinition: compileSchema(propertySchema(false), 'the property definition'),
  tag: compileSchema(tagSchema(), 'the tag'),
  tagList: compileSchema(tagListSchema(), 'the tag list'),
  association: compileSchema(resourceTypeAssociationSchema(), 'the resource type association'),
} satisfies Record<string, SchemaCheck>;

function conform(value: unknown, check: SchemaCheck, what: string): void {
  const problem = check(value);
  if (problem) throw new BadRequest(`Invalid ${what}: ${problem}`);
}

function refuseUnknown(v: Json, allowed: string[], where: string): void {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new BadRequest(`${where} has an attribute '${k}' that is not allowed.`);
}

function nonEmptyName(v: unknown, where: string, max = 80): string {
  if (typeof v !== 'string' || v === '') throw new BadRequest(`${where} needs a non-empty string 'name'.`);
  if ([...v].length > max) throw new BadRequest(`${where}: 'name' is longer than ${max} characters.`);
  return v;
}

/** A property definition checked strictly (unknown attributes refused) and put in canonical attribute order. */
export function propertyDefinition(def: unknown, where: string): PropertyDef {
  const problem = CHECKS.propertyDefinition(def);
  if (problem) throw new BadRequest(`Invalid property definition ${where}: ${problem}`);
  const d = def as Json;
  if (isObject(d.items)) refuseUnknown(d.items, ['type', 'enum'], `The items of property ${where}`);
  const out: PropertyDef = {};
  for (const k of PROPERTY_ATTRIBUTES) if (k !== 'name' && d[k] !== undefined) out[k] = d[k];
  return out;
}

function propertyMap(v: unknown, where: string): Record<string, PropertyDef> {
  if (v === undefined || v === null) return {};
  const out: Record<string, PropertyDef> = {};
  for (const [name, def] of Object.entries(v as Json)) {
    nonEmptyName(name, `A property of ${where}`);
    out[name] = propertyDefinition(def, `'${name}' of ${where}`);
  }
  return out;
}

function objectFrom(o: Json, where: string): ObjectInput {
  return {
    name: nonEmptyName(o.name, where),
    description: (o.description as string | undefined) ?? null,
    required: (o.required as string[] | undefined) ?? null,
    properties: o.properties === undefined || o.properties === null ? null : propertyMap(o.properties, `object '${o.name as string}'`),
  };
}

function associationFrom(a: Json, where: string): AssociationInput {
  for (const k of ['prefix', 'properties_target']) {
    if (a[k] !== undefined && a[k] !== null && (typeof a[k] !== 'string' || [...(a[k] as string)].length > 80)) {
      throw new BadRequest(`${where}: '${k}' must be a string of at most 80 characters.`);
    }
  }
  return { name: nonEmptyName(a.name, where), prefix: (a.prefix as string | undefined) ?? null, propertiesTarget: (a.properties_target as string | undefined) ?? null };
}

export interface NamespaceBody {
  /** fields as sent; owner undefined when the body names none */
  fields: Omit<NamespaceFields, 'owner'> & { owner: string | undefined };
  contents: NamespaceContents;
  /** which content lists the body carried, so a create answer echoes exactly those */
  sent: { properties: boolean; objects: boolean; tags: boolean; associations: boolean };
}

/** POST /v2/metadefs/namespaces and PUT /v2/metadefs/namespaces/{ns} (contents are ignored on PUT, as Glance does). */
export function parseNamespaceBody(raw: unknown): NamespaceBody {
  const body = requireBody(raw, 'namespace');
  refuseReadOnly(body, SERVER_SET);
  conform(body, CHECKS.namespace, 'namespace');
  refuseFourByte(body);
  const namespace = nonEmptyName(body.namespace, 'The namespace');
  const objects = ((body.objects as Json[] | undefined) ?? []).map((o, i) => {
    refuseUnknown(o, ['name', 'description', 'required', 'properties', ...SERVER_SET], `objects[${i}]`);
    return objectFrom(o, `objects[${i}]`);
  });
  const tags = ((body.tags as Json[] | undefined) ?? []).map((t, i) => {
    refuseUnknown(t, ['name', ...TIMESTAMPS], `tags[${i}]`);
    return nonEmptyName(t.name, `tags[${i}]`);
  });
  const associations = ((body.resource_type_associations as Json[] | undefined) ?? []).map((a, i) => {
    refuseUnknown(a, ['name', 'prefix', 'properties_target', ...TIMESTAMPS], `resource_type_associations[${i}]`);
    return associationFrom(a, `resource_type_associations[${i}]`);
  });
  return {
    fields: {
      namespace,
      displayName: (body.display_name as string | undefined) ?? null,
      description: (body.description as string | undefined) ?? null,
      visibility: (body.visibility as 'public' | 'private' | undefined) ?? 'private',
      protected: (body.protected as boolean | undefined) ?? false,
      owner: body.owner as string | undefined,
    },
    contents: { properties: propertyMap(body.properties, `namespace '${namespace}'`), objects, tags, associations },
    sent: {
      properties: body.properties !== undefined,
      objects: body.objects !== undefined,
      tags: body.tags !== undefined,
      associations: body.resource_type_associations !== undefined,
    },
  };
}

export function parseObjectBody(raw: unknown): ObjectInput {
  const body = requireBody(raw, 'object');
  refuseReadOnly(body, SERVER_SET);
  conform(body, CHECKS.object, 'object');
  refuseFourByte(body);
  return objectFrom(body, 'The object');
}

export function parsePropertyBody(raw: unknown): { name: string; definition: PropertyDef } {
  const body = requireBody(raw, 'property');
  refuseReadOnly(body, TIMESTAMPS);
  conform(body, CHECKS.property, 'property');
  refuseFourByte(body);
  const name = nonEmptyName(body.name, 'The property');
  return { name, definition: propertyDefinition(body, `'${name}'`) };
}

export function parseTagName(name: string): string {
  conform({ name }, CHECKS.tag, 'tag');
  refuseFourByte(name, 'The tag name');
  return nonEmptyName(name, 'The tag');
}

export function parseTagBody(raw: unknown): string {
  const body = requireBody(raw, 'tag');
  refuseReadOnly(body, TIMESTAMPS);
  conform(body, CHECKS.tag, 'tag');
  refuseFourByte(body);
  return nonEmptyName(body.name, 'The tag');
}

export function parseTagsBody(raw: unknown): string[] {
  const body = requireBody(raw, 'tags');
  refuseReadOnly(body, TIMESTAMPS);
  conform(body, CHECKS.tagList, 'tag list');
  if (!Array.isArray(body.tags)) throw new BadRequest("Invalid tag list: the request body is missing the required attribute 'tags'.");
  refuseFourByte(body);
  return (body.tags as Json[]).map((t, i) => {
    const name = nonEmptyName(t.name, `tags[${i}]`);
    conform({ name }, CHECKS.tag, `tag tags[${i}]`);
    return name;
  });
}

export function parseAssociationBody(raw: unknown): AssociationInput {
  const body = requireBody(raw, 'resource type association');
  refuseReadOnly(body, TIMESTAMPS);
  conform(body, CHECKS.association, 'resource type association');
  refuseFourByte(body);
  return associationFrom(body, 'The resource type association');
}

/** oslo's bool_from_string, as Glance reads X-Openstack-Append. */
export function truthy(v: string | string[] | undefined): boolean {
  const s = (Array.isArray(v) ? v[0] : v)?.trim().toLowerCase();
  return s !== undefined && ['1', 't', 'true', 'on', 'y', 'yes'].includes(s);
}
