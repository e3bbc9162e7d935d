import { CONTAINER_FORMATS, DISK_FORMATS } from './image.js';

/**
 * JSON schemas served under /v2/schemas. Their structure follows Glance
 * 2024.x exactly (clients such as glanceclient validate every response
 * against them and build their command-line options from them); the
 * descriptions are our own. Request bodies are validated against these same
 * documents (src/domain/image-input.ts, through the shared ajv module
 * src/domain/json-validator.ts), so what we serve is what we enforce.
 */
export const UUID_PATTERN = '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$';

export type Schema = Record<string, unknown>;

export interface PropSpec {
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  maxLength?: number;
  minLength?: number;
  readOnly?: boolean;
  items?: PropSpec;
  [k: string]: unknown;
}

const readOnly = (type: string | string[], description: string, extra: PropSpec = {}): PropSpec => ({ type, readOnly: true, description, ...extra });

export function imageBaseProperties(): Record<string, PropSpec> {
  return {
    id: { type: 'string', description: 'Image identifier (a UUID)', pattern: UUID_PATTERN },
    name: { type: ['null', 'string'], description: 'Human-readable image name', maxLength: 255 },
    status: readOnly('string', 'Where the image is in its life cycle', {
      enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'],
    }),
    visibility: { type: 'string', description: 'Who can see the image', enum: ['community', 'public', 'private', 'shared'] },
    protected: { type: 'boolean', description: 'When true the image cannot be deleted' },
    os_hidden: { type: 'boolean', description: 'When true the image is left out of default image lists' },
    checksum: readOnly(['null', 'string'], 'MD5 digest of the image data', { maxLength: 32 }),
    os_hash_algo: readOnly(['null', 'string'], 'Algorithm that produced os_hash_value', { maxLength: 64 }),
    os_hash_value: readOnly(['null', 'string'], 'Hex digest of the image data made with os_hash_algo', { maxLength: 128 }),
    owner: { type: ['null', 'string'], description: 'Project that owns the image', maxLength: 255 },
    size: readOnly(['null', 'integer'], 'Size of the image data in bytes'),
    virtual_size: readOnly(['null', 'integer'], 'Size of the virtual disk in bytes'),
    container_format: { type: ['null', 'string'], description: 'Container format of the image data', enum: [null, ...CONTAINER_FORMATS] },
    disk_format: { type: ['null', 'string'], description: 'Disk format of the image data', enum: [null, ...DISK_FORMATS] },
    created_at: readOnly('string', 'When the image record was created'),
    updated_at: readOnly('string', 'When the image record last changed'),
    tags: { type: 'array', description: 'Free-form labels attached to the image', items: { type: 'string', maxLength: 255 } },
    direct_url: readOnly('string', 'Location of the image data inside its store'),
    min_ram: { type: 'integer', description: 'Memory (MiB) an instance needs to boot the image' },
    min_disk: { type: 'integer', description: 'Disk (GiB) an instance needs to boot the image' },
    self: readOnly('string', 'Path of this image'),
    file: readOnly('string', 'Path of the image data'),
    stores: readOnly('string', 'Comma-separated identifiers of the stores holding the image data; present once the image has data'),
    schema: readOnly('string', 'Path of the image schema'),
    locations: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          url: { type: 'string', maxLength: 255 },
          metadata: { type: 'object' },
          validation_data: {
            description: 'Digests the data at the location must match',
            type: 'object',
            writeOnly: true,
            additionalProperties: false,
            properties: {
              checksum: { type: 'string', minLength: 32, maxLength: 32 },
              os_hash_algo: { type: 'string', maxLength: 64 },
              os_hash_value: { type: 'string', maxLength: 128 },
            },
            required: ['os_hash_algo', 'os_hash_value'],
          },
        },
        required: ['url', 'metadata'],
      },
      description: 'Where the image data is kept',
    },
  };
}

/**
 * The properties of the schema-image.json file Glance installs by default
 * (Debian, devstack, kolla). They are extra properties (`is_base: false`):
 * glanceclient sends "add" rather than "replace" for them when they are not
 * set yet, and offers them as command-line options.
 */
export function imageCustomProperties(): Record<string, PropSpec> {
  const uuidRef = (what: string): PropSpec => ({ type: ['null', 'string'], pattern: UUID_PATTERN, description: `ID of the image to use as the ${what} when booting an AMI-style image`, is_base: false });
  const text = (description: string): PropSpec => ({ description, type: 'string', is_base: false });
  return {
    kernel_id: uuidRef('kernel'),
    ramdisk_id: uuidRef('ramdisk'),
    instance_uuid: { type: 'string', description: 'Instance this image was made from (informational only)', is_base: false },
    architecture: text('CPU architecture the image needs, e.g. x86_64, aarch64'),
    os_distro: text('Operating system distribution, e.g. ubuntu, fedora, windows'),
    os_version: text('Operating system version, as the distribution numbers it'),
    description: text('Free-form description of the image'),
    cinder_encryption_key_id: text('Key-manager identifier of the key the block storage service uses for volumes made from this image'),
    cinder_encryption_key_deletion_policy: {
      description: 'When the image service deletes the key named by cinder_encryption_key_id',
      type: 'string',
      enum: ['on_image_deletion', 'do_not_delete'],
      is_base: false,
    },
  };
}

/**
 * The image schema, property for property as Glance serves it, `stores`
 * included (read-only): glanceclient's image-create-via-import only keeps its
 * --stores value when the server's schema names `stores` as a property.
 * (glanceclient 4.x also caches this document in ~/.glanceclient when used
 * with a token and no --os-image-api-version, and then dies on its own
 * duplicate --stores option: the same happens against Glance; docs/cli.md.)
 */
export function imageSchema(): Schema {
  return {
    name: 'image',
    properties: { ...imageBaseProperties(), ...imageCustomProperties() },
    additionalProperties: { type: 'string' },
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

/** Glance's CollectionSchema.raw(): items are the full item schema. */
export function collectionSchema(name: string, item: Schema): Schema {
  return {
    name,
    properties: {
      [name]: { type: 'array', items: item },
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
}

/** Glance's CollectionSchema.minimal(), served for members and tasks. */
export function minimalCollectionSchema(name: string, item: Schema): Schema {
  return {
    name,
    properties: {
      [name]: { type: 'array', items: item },
      schema: { type: 'string' },
    },
    links: [{ rel: 'describedby', href: '{schema}' }],
  };
}

export function memberSchema(): Schema {
  return {
    name: 'member',
    properties: {
      member_id: { type: 'string', description: 'Project (tenant) the image is shared with' },
      image_id: { type: 'string', description: 'Image identifier', pattern: UUID_PATTERN },
      created_at: { type: 'string', description: 'When the membership was created' },
      updated_at: { type: 'string', description: 'When the membership last changed' },
      status: { type: 'string', description: 'Whether the member accepted the image', enum: ['pending', 'accepted', 'rejected'] },
      schema: { readOnly: true, type: 'string' },
    },
  };
}

function taskProperties(): Record<string, PropSpec> {
  return {
    id: { description: 'Task identifier', pattern: UUID_PATTERN, type: 'string' },
    type: { description: 'Kind of task', enum: ['import', 'api_image_import', 'location_import'], type: 'string' },
    status: { description: 'Where the task is in its life cycle', enum: ['pending', 'processing', 'success', 'failure'], type: 'string' },
    input: { description: 'Parameters of the task (JSON object)', type: ['null', 'object'] },
    result: { description: 'Outcome of the task (JSON object)', type: ['null', 'object'] },
    owner: { description: 'Project owning the task', type: 'string' },
    message: { description: 'Progress or failure reason, readable by people', type: 'string' },
    image_id: { description: 'Image the task works on', type: 'string' },
    request_id: { description: 'Request that started the task', type: 'string' },
    user_id: { description: 'User that started the task', type: 'string' },
    expires_at: { description: 'When the task record may be removed', type: ['null', 'string'] },
    progress: { readOnly: true, description: 'Imago extension: bytes moved so far and bytes expected (null while unknown) by a running import', type: ['null', 'object'] },
    created_at: { description: 'When the task was created', type: 'string' },
    updated_at: { description: 'When the task last changed', type: 'string' },
    self: { readOnly: true, type: 'string' },
    schema: { readOnly: true, type: 'string' },
  };
}

export function taskSchema(): Schema {
  return { name: 'task', properties: taskProperties() };
}

/** The task list shows tasks without their input, result and message. */
function partialTaskSchema(): Schema {
  const { input: _i, result: _r, message: _m, progress: _p, ...rest } = taskProperties();
  return { name: 'task', properties: rest };
}

export const SCHEMAS: Record<string, () => Schema> = {
  image: imageSchema,
  images: () => collectionSchema('images', imageSchema()),
  member: memberSchema,
  members: () => minimalCollectionSchema('members', memberSchema()),
  task: taskSchema,
  tasks: () => minimalCollectionSchema('tasks', partialTaskSchema()),
};
