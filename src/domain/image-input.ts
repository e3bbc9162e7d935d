import { BadRequest, Forbidden, PayloadTooLarge } from './errors.js';
import { propertyMap, RESERVED, RESERVED_PREFIX } from './image.js';
import { codePoints, imageBaseProperties, imageCustomProperties, schemaProblem, type PropSpec } from './schemas.js';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Whether `s` can be an image id at all; anything else is simply not found. */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

export interface Limits {
  maxProperties: number;
  maxTags: number;
}

const BASE_SPECS = imageBaseProperties();
const CUSTOM_SPECS = imageCustomProperties();
const EXTRA_SPEC: PropSpec = { type: 'string' };
/** Largest value an integer column takes (Glance's _validate_db_int). */
const DB_INT_MAX = 2 ** 31 - 1;
/** Longest extra property value we store (Glance's MySQL TEXT column). */
const MAX_PROPERTY_VALUE = 65535;

/** Keys a create body may not name: the server's links and store list (checked before anything else, as Glance). */
export const CREATE_DISALLOWED = ['direct_url', 'self', 'file', 'schema', 'stores'];
/** Attributes the server computes; naming them on create is 403. */
export const CREATE_READ_ONLY = ['created_at', 'updated_at', 'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size'];
/** Base attributes a create body may set. */
const CREATE_BASE = ['id', 'name', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'owner', 'tags'];

/** No NUL (PostgreSQL text cannot hold one) and no unpaired UTF-16 surrogate (not Unicode): strings every database stores as they are. */
export function storable(s: string): boolean {
  return !/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function unstorableIn(value: unknown): boolean {
  if (typeof value === 'string') return !storable(value);
  if (Array.isArray(value)) return value.some(unstorableIn);
  if (typeof value === 'object' && value !== null) return Object.entries(value).some(([k, v]) => !storable(k) || unstorableIn(v));
  return false;
}

export function specOf(key: string): PropSpec {
  if (Object.hasOwn(BASE_SPECS, key)) return BASE_SPECS[key];
  if (Object.hasOwn(CUSTOM_SPECS, key)) return CUSTOM_SPECS[key];
  return EXTRA_SPEC;
}

export function isCustomProperty(key: string): boolean {
  return Object.hasOwn(CUSTOM_SPECS, key);
}

/**
 * Validates one attribute's value against the image schema (base, custom or
 * extra property) plus the domain's own bounds; returns the normalised value.
 */
export function checkValue(key: string, value: unknown): unknown {
  const problem = schemaProblem(specOf(key), value);
  if (problem) throw new BadRequest(`Invalid value for '${key}': ${problem}.`);
  if (unstorableIn(value)) throw new BadRequest(`Invalid value for '${key}': it contains a NUL character or an unpaired surrogate.`);
  if ((key === 'min_disk' || key === 'min_ram') && ((value as number) < 0 || (value as number) > DB_INT_MAX)) {
    throw new BadRequest(`Invalid value for '${key}': ${value} must be between 0 and ${DB_INT_MAX}.`);
  }
  if (typeof value === 'string' && !Object.hasOwn(BASE_SPECS, key) && value.length > MAX_PROPERTY_VALUE) {
    throw new BadRequest(`Invalid value for property '${key}': at most ${MAX_PROPERTY_VALUE} characters are stored.`);
  }
  if (key === 'tags') return [...new Set(value as string[])];
  return value;
}

/** Kept for callers that validate a single base attribute. */
export const checkBaseValue = checkValue;

export function checkTag(t: unknown): string {
  if (typeof t !== 'string') throw new BadRequest(`Invalid tag ${JSON.stringify(t)}: tags are strings.`);
  if (codePoints(t) > 255) throw new BadRequest('Invalid tag: a tag is at most 255 characters long.');
  if (!storable(t)) throw new BadRequest('Invalid tag: it contains a NUL character or an unpaired surrogate.');
  return t;
}

export function checkPropertyName(key: string): void {
  if (key.length === 0) throw new BadRequest('Property names cannot be empty.');
  if (codePoints(key) > 255) throw new BadRequest('Property names are at most 255 characters long.');
  if (!storable(key)) throw new BadRequest('Property names cannot contain a NUL character or an unpaired surrogate.');
}

/** 403 for names reserved to the server. */
export function checkNotReserved(key: string): void {
  if ((RESERVED as readonly string[]).includes(key) || key.startsWith(RESERVED_PREFIX)) {
    throw new Forbidden(`Attribute '${key}' is reserved.`);
  }
}

export function checkLimits(props: number, tags: number, limits: Limits): void {
  if (props > limits.maxProperties) {
    throw new PayloadTooLarge(`Maximum number of image properties exceeded: an image may have at most ${limits.maxProperties} extra properties, this request would give it ${props}.`);
  }
  if (tags > limits.maxTags) {
    throw new PayloadTooLarge(`Maximum number of tags exceeded: an image may have at most ${limits.maxTags} tags, this request would give it ${tags}.`);
  }
}

export interface CreateInput {
  id?: string;
  /** base attributes given in the body (owner may be null) */
  base: Record<string, unknown>;
  properties: Record<string, string>;
  tags: string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Splits and validates a POST /v2/images body in Glance's order: server-owned
 * links (403), the image schema (400), property names (400), reserved names
 * (403), read-only attributes (403).
 */
export function parseCreateBody(body: unknown): CreateInput {
  if (body === undefined) throw new BadRequest('Body expected in request: send the new image as a JSON object.');
  if (!isObject(body)) throw new BadRequest('The request body must be a JSON object describing the image.');
  const keys = Object.keys(body);
  for (const key of CREATE_DISALLOWED) if (Object.hasOwn(body, key)) throw new Forbidden(`Attribute '${key}' is read-only.`);
  for (const key of keys) checkValue(key, body[key]);
  const base: Record<string, unknown> = {};
  const properties = propertyMap();
  let tags: string[] = [];
  for (const key of keys) {
    const value = body[key];
    if (CREATE_BASE.includes(key)) {
      if (key === 'tags') tags = checkValue(key, value) as string[];
      else base[key] = value;
      continue;
    }
    checkPropertyName(key);
    checkNotReserved(key);
    if (CREATE_READ_ONLY.includes(key)) throw new Forbidden(`Attribute '${key}' is read-only.`);
    if (key === 'locations') throw new Forbidden("Attribute 'locations' is reserved.");
    // A custom property given as null (kernel_id, ramdisk_id) is simply not set.
    if (value === null) continue;
    properties[key] = value as string;
  }
  return { id: base.id as string | undefined, base, properties, tags };
}
