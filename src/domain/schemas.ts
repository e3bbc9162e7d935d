import { CONTAINER_FORMATS, DISK_FORMATS } from './image.js';

/**
 * JSON schemas served under /v2/schemas. Their structure follows Glance's
 * (clients such as glanceclient validate every response against them and
 * build their command-line options from them); descriptions are our own.
 */
const UUID_PATTERN = '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$';

type Schema = Record<string, unknown>;

function imageProperties(): Schema {
  const readOnly = (type: unknown, description: string, extra: Schema = {}) => ({ type, readOnly: true, description, ...extra });
  return {
    id: { type: 'string', description: 'Image identifier (UUID)', pattern: UUID_PATTERN },
    name: { type: ['null', 'string'], description: 'Human-readable image name', maxLength: 255 },
    status: readOnly('string', 'Where the image is in its life cycle', {
      enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'],
    }),
    visibility: { type: 'string', description: 'Who can see the image', enum: ['community', 'public', 'private', 'shared'] },
    protected: { type: 'boolean', description: 'A protected image cannot be deleted' },
    os_hidden: { type: 'boolean', description: 'Hidden images are left out of default listings' },
    checksum: readOnly(['null', 'string'], 'MD5 of the image data', { maxLength: 32 }),
    os_hash_algo: readOnly(['null', 'string'], 'Algorithm of os_hash_value', { maxLength: 64 }),
    os_hash_value: readOnly(['null', 'string'], 'Secure hash of the image data', { maxLength: 128 }),
    owner: { type: ['null', 'string'], description: 'Project owning the image', maxLength: 255 },
    size: readOnly(['null', 'integer'], 'Image data size in bytes'),
    virtual_size: readOnly(['null', 'integer'], 'Size of the virtual disk in bytes'),
    container_format: { type: ['null', 'string'], description: 'Container format of the image data', enum: [null, ...CONTAINER_FORMATS] },
    disk_format: { type: ['null', 'string'], description: 'Disk format of the image data', enum: [null, ...DISK_FORMATS] },
    created_at: readOnly('string', 'When the image was created'),
    updated_at: readOnly('string', 'When the image last changed'),
    tags: { type: 'array', description: 'Free-form labels', items: { type: 'string', maxLength: 255 } },
    direct_url: readOnly('string', 'Direct URL of the image data in its store'),
    min_ram: { type: 'integer', description: 'RAM (MB) needed to boot the image' },
    min_disk: { type: 'integer', description: 'Disk (GB) needed to boot the image' },
    self: readOnly('string', 'URL of this image'),
    file: readOnly('string', 'URL of the image data'),
    // `stores` is left out although Glance lists it: glanceclient 4.x (Debian 12) adds its own
    // --stores option and dies on the duplicate; responses still carry `stores` as a string.
    schema: readOnly('string', 'URL of this schema'),
    locations: {
      type: 'array',
      description: 'Where the image data is kept',
      items: {
        type: 'object',
        properties: {
          url: { type: 'string', maxLength: 255 },
          metadata: { type: 'object' },
          validation_data: {
            description: 'Checksums the location data must match',
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
    },
  };
}

export function imageSchema(): Schema {
  return {
    name: 'image',
    properties: imageProperties(),
    additionalProperties: { type: 'string' },
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

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

/** Glance serves the member schemas in their "minimal" form: no additionalProperties, no first/next. */
export function memberSchema(): Schema {
  return {
    name: 'member',
    properties: {
      member_id: { type: 'string', description: 'Project the image is shared with' },
      image_id: { type: 'string', description: 'Image identifier', pattern: UUID_PATTERN },
      created_at: { type: 'string', description: 'When the membership was created' },
      updated_at: { type: 'string', description: 'When the membership last changed' },
      status: { type: 'string', description: 'Whether the member accepted the image', enum: ['pending', 'accepted', 'rejected'] },
      schema: { readOnly: true, type: 'string' },
    },
  };
}

function minimalCollectionSchema(name: string, item: Schema): Schema {
  return {
    name,
    properties: { [name]: { type: 'array', items: item }, schema: { type: 'string' } },
    links: [{ rel: 'describedby', href: '{schema}' }],
  };
}

export function taskSchema(): Schema {
  return {
    name: 'task',
    properties: {
      id: { type: 'string', description: 'Task identifier', pattern: UUID_PATTERN },
      type: { type: 'string', description: 'Kind of task', enum: ['import', 'api_image_import', 'location_import'] },
      status: { type: 'string', description: 'Where the task is in its life cycle', enum: ['pending', 'processing', 'success', 'failure'] },
      input: { type: ['null', 'object'], description: 'Parameters of the task' },
      result: { type: ['null', 'object'], description: 'Outcome of the task' },
      owner: { type: 'string', description: 'Project owning the task' },
      message: { type: 'string', description: 'Progress or failure reason, readable by people' },
      image_id: { type: 'string', description: 'Image the task works on' },
      request_id: { type: 'string', description: 'Request that started the task' },
      user_id: { type: 'string', description: 'User that started the task' },
      expires_at: { type: ['null', 'string'], description: 'When the task record will be removed' },
      created_at: { type: 'string', description: 'When the task was created' },
      updated_at: { type: 'string', description: 'When the task last changed' },
      self: { type: 'string' },
      schema: { type: 'string' },
    },
    additionalProperties: false,
    required: ['type', 'input'],
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

export const SCHEMAS: Record<string, () => Schema> = {
  image: imageSchema,
  images: () => collectionSchema('images', imageSchema()),
  member: memberSchema,
  members: () => minimalCollectionSchema('members', memberSchema()),
  task: taskSchema,
  tasks: () => collectionSchema('tasks', taskSchema()),
};
