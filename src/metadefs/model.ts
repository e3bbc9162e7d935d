/** The metadata definitions catalog (Glance "metadefs"): what Horizon builds its property editors from. */

export type NamespaceVisibility = 'public' | 'private';

/** A property definition: a JSON-schema-like description of one key (title, type, enum...). */
export type PropertyDef = Record<string, unknown>;

export interface Namespace {
  id: string;
  namespace: string;
  displayName: string | null;
  description: string | null;
  visibility: NamespaceVisibility;
  protected: boolean;
  owner: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface MetadefObject {
  id: string;
  name: string;
  description: string | null;
  required: string[];
  properties: Record<string, PropertyDef>;
  createdAt: string;
  updatedAt: string;
}

export interface MetadefProperty {
  id: string;
  name: string;
  definition: PropertyDef;
  createdAt: string;
  updatedAt: string;
}

export interface MetadefTag {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

export interface ResourceType {
  id: string;
  name: string;
  protected: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface Association {
  name: string;
  prefix: string | null;
  propertiesTarget: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NamespaceFields {
  namespace: string;
  displayName: string | null;
  description: string | null;
  visibility: NamespaceVisibility;
  protected: boolean;
  owner: string | null;
}

export interface ObjectInput {
  name: string;
  description: string | null;
  required: string[] | null;
  properties: Record<string, PropertyDef> | null;
}

export interface AssociationInput {
  name: string;
  prefix: string | null;
  propertiesTarget: string | null;
}

/** Everything a namespace can be created with, in one request or one definition file. */
export interface NamespaceContents {
  properties: Record<string, PropertyDef>;
  objects: ObjectInput[];
  tags: string[];
  associations: AssociationInput[];
}

/**
 * Whether a string can be stored and compared as it is: no NUL (PostgreSQL
 * text cannot hold one) and no unpaired UTF-16 surrogate (not Unicode).
 */
export function storable(s: string): boolean {
  return !/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** What a namespace rule is checked against, named as Glance's metadef policy targets name it. */
export function policyTarget(ns: Namespace): { project_id: string | null; owner: string | null; visibility: string } {
  return { project_id: ns.owner, owner: ns.owner, visibility: ns.visibility };
}

/** Glance's visibility rule: admins see all, others public namespaces, their project's and ownerless ones. */
export function isVisible(ns: Pick<Namespace, 'owner' | 'visibility'>, who: { isAdmin: boolean; projectId: string | null }): boolean {
  return who.isAdmin || ns.owner === null || ns.visibility === 'public' || (who.projectId !== null && who.projectId === ns.owner);
}

/**
 * Property names as they apply to one resource type: a namespace associated
 * with OS::Nova::Flavor under prefix "hw:" offers `cpu_policy` as
 * `hw:cpu_policy`. Objects' property names and required lists follow.
 */
export function prefixed<T>(map: Record<string, T>, prefix: string): Record<string, T> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [prefix + k, v]));
}
