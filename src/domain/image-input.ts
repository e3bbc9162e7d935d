import { BadRequest, Forbidden, PayloadTooLarge } from './errors.js';
import { BASE_ATTRIBUTES, CONTAINER_FORMATS, DISK_FORMATS, READ_ONLY, RESERVED, RESERVED_PREFIX, VISIBILITIES } from './image.js';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

export interface Limits {
  maxProperties: number;
  maxTags: number;
}

/** Validates one base attribute's value against the image schema; returns the normalised value. */
export function checkBaseValue(key: string, value: unknown): unknown {
  const fail = (why: string): never => {
    throw new BadRequest(`Invalid value for ${key}: ${JSON.stringify(value)} ${why}.`);
  };
  switch (key) {
    case 'name':
      if (value !== null && typeof value !== 'string') fail('is not a string or null');
      if (typeof value === 'string' && value.length > 255) fail('is longer than 255 characters');
      return value;
    case 'visibility':
      if (!(VISIBILITIES as unknown[]).includes(value)) fail(`is not one of ${VISIBILITIES.join(', ')}`);
      return value;
    case 'protected':
    case 'os_hidden':
      if (typeof value !== 'boolean') fail('is not a boolean');
      return value;
    case 'disk_format':
      if (value !== null && !(DISK_FORMATS as readonly unknown[]).includes(value)) fail(`is not one of ${DISK_FORMATS.join(', ')}`);
      return value;
    case 'container_format':
      if (value !== null && !(CONTAINER_FORMATS as readonly unknown[]).includes(value)) fail(`is not one of ${CONTAINER_FORMATS.join(', ')}`);
      return value;
    case 'min_disk':
    case 'min_ram':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) fail('is not a non-negative integer');
      return value;
    case 'owner':
      if (value !== null && (typeof value !== 'string' || value.length > 255)) fail('is not a string of at most 255 characters');
      return value;
    case 'tags':
      if (!Array.isArray(value)) fail('is not an array');
      for (const t of value as unknown[]) checkTag(t);
      if (new Set(value as string[]).size !== (value as string[]).length) fail('has duplicate items');
      return value;
    case 'id':
      if (typeof value !== 'string' || !isUuid(value)) fail('is not a UUID');
      return value;
    default:
      return value;
  }
}

export function checkTag(t: unknown): string {
  if (typeof t !== 'string') throw new BadRequest(`Invalid tag ${JSON.stringify(t)}: tags must be strings.`);
  if (t.length > 255) throw new BadRequest('Invalid tag: a tag is at most 255 characters long.');
  return t;
}

/** 403 for attributes no client may set. `allowId` on create. */
export function checkSettable(key: string, allowId: boolean): void {
  if (key === 'id' && allowId) return;
  if ((READ_ONLY as readonly string[]).includes(key) || key === 'id') throw new Forbidden(`Attribute '${key}' is read-only.`);
  if ((RESERVED as readonly string[]).includes(key)) throw new Forbidden(`Attribute '${key}' is reserved.`);
  if (key.startsWith(RESERVED_PREFIX)) throw new Forbidden(`Attribute '${key}' is reserved.`);
}

export function checkExtraProperty(key: string, value: unknown): string {
  if (key.length === 0 || key.length > 255) throw new BadRequest(`Invalid property name ${JSON.stringify(key)}: names are 1 to 255 characters.`);
  if (typeof value !== 'string') {
    throw new BadRequest(`Invalid value for property '${key}': ${JSON.stringify(value)} is not a string (extra properties are strings).`);
  }
  if (value.length > 65535) throw new BadRequest(`Invalid value for property '${key}': at most 65535 characters.`);
  return value;
}

export function checkLimits(props: number, tags: number, limits: Limits): void {
  if (props > limits.maxProperties) throw new PayloadTooLarge(`Maximum number of image properties exceeded: at most ${limits.maxProperties} are allowed.`);
  if (tags > limits.maxTags) throw new PayloadTooLarge(`Maximum number of tags exceeded: at most ${limits.maxTags} are allowed per image.`);
}

export interface CreateInput {
  id?: string;
  base: Record<string, unknown>;
  properties: Record<string, string>;
  tags: string[];
}

/** Splits and validates a POST /v2/images body. */
export function parseCreateBody(body: unknown, limits: Limits): CreateInput {
  if (body === undefined || body === null) body = {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('The request body must be a JSON object.');
  const base: Record<string, unknown> = {};
  const properties: Record<string, string> = {};
  let tags: string[] = [];
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    checkSettable(key, true);
    if (BASE_ATTRIBUTES.has(key)) {
      const v = checkBaseValue(key, value);
      if (key === 'tags') tags = v as string[];
      else base[key] = v;
    } else {
      properties[key] = checkExtraProperty(key, value);
    }
  }
  checkLimits(Object.keys(properties).length, tags.length, limits);
  return { id: base.id as string | undefined, base, properties, tags };
}
