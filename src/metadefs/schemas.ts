import type { JsonSchema } from '../domain/json-validator.js';

/**
 * The metadefs JSON schemas, shaped as Glance's (glanceclient builds models
 * from them and validates every response; tempest reads their names).
 * Request bodies are validated against these same schemas. Descriptions are
 * our own.
 */

const PROPERTY_TYPES = ['array', 'boolean', 'integer', 'number', 'object', 'string', null];

const timestamp = (what: string): JsonSchema => ({ type: 'string', readOnly: true, description: what, format: 'date-time' });
const link = (): JsonSchema => ({ readOnly: true, type: 'string' });

/** The attributes a property definition may have, in the order responses list them. */
function propertyAttributes(): JsonSchema {
  return {
    name: { type: 'string', maxLength: 80 },
    title: { type: 'string' },
    description: { type: 'string' },
    operators: { type: 'array', items: { type: 'string' } },
    type: { type: 'string', enum: PROPERTY_TYPES },
    required: { $ref: '#/definitions/stringArray' },
    minimum: { type: 'number' },
    maximum: { type: 'number' },
    maxLength: { $ref: '#/definitions/positiveInteger' },
    minLength: { $ref: '#/definitions/positiveIntegerDefault0' },
    pattern: { type: 'string', format: 'regex' },
    enum: { type: 'array' },
    readonly: { type: 'boolean' },
    default: {},
    items: {
      type: 'object',
      properties: {
        type: { type: 'string', enum: PROPERTY_TYPES },
        enum: { type: 'array' },
      },
    },
    maxItems: { $ref: '#/definitions/positiveInteger' },
    minItems: { $ref: '#/definitions/positiveIntegerDefault0' },
    uniqueItems: { type: 'boolean', default: false },
    additionalItems: { type: 'boolean' },
  };
}

export const PROPERTY_ATTRIBUTES = Object.keys(propertyAttributes());

function numberDefinitions(): JsonSchema {
  return {
    positiveInteger: { type: 'integer', minimum: 0 },
    positiveIntegerDefault0: { allOf: [{ $ref: '#/definitions/positiveInteger' }, { default: 0 }] },
  };
}

/** Definitions shared by the namespace and object schemas. */
function namespaceDefinitions(): JsonSchema {
  return {
    ...numberDefinitions(),
    stringArray: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    property: {
      type: 'object',
      additionalProperties: { type: 'object', required: ['title', 'type'], properties: propertyAttributes() },
    },
  };
}

function schema(name: string, properties: JsonSchema, required: string[], definitions?: JsonSchema): JsonSchema {
  const s: JsonSchema = { name, properties, additionalProperties: false };
  if (definitions) s.definitions = definitions;
  if (required.length) s.required = required;
  return s;
}

/** A list resource: the item schema (without its definitions) under `name`, plus paging links. */
function collection(name: string, item: JsonSchema, container: 'array' | 'object' = 'array'): JsonSchema {
  const { definitions, ...itemSchema } = item;
  const s: JsonSchema = {
    name,
    properties: {
      [name]: container === 'array' ? { type: 'array', items: itemSchema } : { type: 'object', additionalProperties: itemSchema },
      first: { type: 'string' },
      next: { type: 'string' },
      schema: { type: 'string' },
    },
    links: [
      { rel: 'first', href: '{first}' },
      { rel: 'next', href: '{next}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
  if (definitions) s.definitions = definitions;
  return s;
}

export function namespaceSchema(): JsonSchema {
  return schema(
    'namespace',
    {
      namespace: { type: 'string', description: 'Unique name of the namespace, e.g. OS::Compute::Watchdog.', maxLength: 80 },
      display_name: { type: 'string', description: 'Name shown to people by user interfaces.', maxLength: 80 },
      description: { type: 'string', description: 'What the namespace describes.', maxLength: 500 },
      visibility: { type: 'string', description: 'Who can read the namespace.', enum: ['public', 'private'] },
      protected: { type: 'boolean', description: 'A protected namespace and its contents cannot be deleted.' },
      owner: { type: 'string', description: 'Project that owns the namespace.', maxLength: 255 },
      created_at: timestamp('When the namespace was created.'),
      updated_at: timestamp('When the namespace last changed.'),
      schema: link(),
      self: link(),
      resource_type_associations: {
        type: 'array',
        items: { type: 'object', properties: { name: { type: 'string' }, prefix: { type: 'string' }, properties_target: { type: 'string' } } },
      },
      properties: { $ref: '#/definitions/property' },
      objects: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            description: { type: 'string' },
            required: { $ref: '#/definitions/stringArray' },
            properties: { $ref: '#/definitions/property' },
          },
        },
      },
      tags: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' } } } },
    },
    ['namespace'],
    namespaceDefinitions(),
  );
}

export function objectSchema(): JsonSchema {
  return schema(
    'object',
    {
      name: { type: 'string', maxLength: 80 },
      description: { type: 'string' },
      required: { $ref: '#/definitions/stringArray' },
      properties: { $ref: '#/definitions/property' },
      schema: link(),
      self: link(),
      created_at: timestamp('When the object was created.'),
      updated_at: timestamp('When the object last changed.'),
    },
    ['name'],
    namespaceDefinitions(),
  );
}

/** A single property; `name` is required unless the name is a map key (inside objects, the properties list). */
export function propertySchema(requireName = true): JsonSchema {
  const definitions = { ...numberDefinitions(), stringArray: { type: 'array', items: { type: 'string' }, minItems: 1, uniqueItems: true } };
  return schema('property', propertyAttributes(), requireName ? ['title', 'type', 'name'] : ['title', 'type'], definitions);
}

export function tagSchema(): JsonSchema {
  return schema(
    'tag',
    { name: { type: 'string', maxLength: 80 }, created_at: timestamp('When the tag was created.'), updated_at: timestamp('When the tag last changed.') },
    ['name'],
  );
}

/** The body of a bulk tag create. */
export function tagListSchema(): JsonSchema {
  return schema(
    'tags',
    { tags: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'], additionalProperties: false } } },
    [],
  );
}

export function resourceTypeAssociationSchema(): JsonSchema {
  return schema(
    'resource_type_association',
    {
      name: {
        type: 'string',
        description: 'Name of the resource type, following Heat resource type names where one exists (e.g. OS::Nova::Flavor).',
        maxLength: 80,
      },
      prefix: {
        type: 'string',
        description: 'Prefix, separator included (e.g. "hw:"), that property names take when applied to this resource type.',
        maxLength: 80,
      },
      properties_target: {
        type: 'string',
        description: 'Which of the resource type\'s key/value sets the properties go to, when it has several (e.g. "image" for Cinder volume image metadata).',
        maxLength: 80,
      },
      created_at: timestamp('When the association was created.'),
      updated_at: timestamp('When the association last changed.'),
    },
    ['name'],
  );
}

/** Served at /v2/schemas/<key>. */
export const METADEF_SCHEMAS: Record<string, () => JsonSchema> = {
  'metadefs/namespace': namespaceSchema,
  'metadefs/namespaces': () => collection('namespaces', namespaceSchema()),
  'metadefs/resource_type': resourceTypeAssociationSchema,
  'metadefs/resource_types': () => collection('resource_type_associations', resourceTypeAssociationSchema()),
  'metadefs/property': () => propertySchema(true),
  'metadefs/properties': () => collection('properties', propertySchema(false), 'object'),
  'metadefs/object': objectSchema,
  'metadefs/objects': () => collection('objects', objectSchema()),
  'metadefs/tag': tagSchema,
  'metadefs/tags': () => collection('tags', tagSchema()),
};
