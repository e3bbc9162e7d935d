/**
 * Table shapes of the metadata definitions catalog, merged into the
 * Database interface of src/db/schema.ts. Booleans are 0/1 integers and
 * timestamps ISO-8601 text, as everywhere else.
 */
export interface MetadefNamespacesTable {
  id: string;
  namespace: string;
  display_name: string | null;
  description: string | null;
  visibility: string;
  protected: number;
  owner: string | null;
  created_at: string;
  updated_at: string;
}

export interface MetadefObjectsTable {
  id: string;
  namespace_id: string;
  name: string;
  description: string | null;
  /** JSON array of property names, or null */
  required: string | null;
  /** JSON object: property name → property definition */
  json_schema: string;
  created_at: string;
  updated_at: string;
}

export interface MetadefPropertiesTable {
  id: string;
  namespace_id: string;
  name: string;
  /** JSON object: the property definition */
  json_schema: string;
  created_at: string;
  updated_at: string;
}

export interface MetadefTagsTable {
  id: string;
  namespace_id: string;
  name: string;
  created_at: string;
  updated_at: string;
}

export interface MetadefResourceTypesTable {
  id: string;
  name: string;
  /** seeded system types; nothing in the API deletes resource types today */
  protected: number;
  created_at: string;
  updated_at: string;
}

export interface MetadefNamespaceResourceTypesTable {
  namespace_id: string;
  resource_type_id: string;
  prefix: string | null;
  properties_target: string | null;
  created_at: string;
  updated_at: string;
}

export interface MetadefTables {
  metadef_namespaces: MetadefNamespacesTable;
  metadef_objects: MetadefObjectsTable;
  metadef_properties: MetadefPropertiesTable;
  metadef_tags: MetadefTagsTable;
  metadef_resource_types: MetadefResourceTypesTable;
  metadef_namespace_resource_types: MetadefNamespaceResourceTypesTable;
}
