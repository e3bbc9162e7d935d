import { BadRequest, Forbidden, PayloadTooLarge } from './errors.js';
import { propertyMap, RESERVED, RESERVED_PREFIX } from './image.js';
import { compileSchema, type JsonSchema } from './json-validator.js';
import { imageBaseProperties, imageCustomProperties, imageSchema } from './schemas.js';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Whether `s` can be an image id at all; anything else is simply not found. */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

export interface Limits {
  maxProperties: number;
  maxTags: number;
}

const BASE_KEYS = new Set(Object.keys(imageBaseProperties()));
const CUSTOM_KEYS = new Set(Object.keys(imageCustomProperties()));
/** Largest value an integer column takes (Glance's _validate_db_int). */
const DB_INT_MAX = 2 ** 31 - 1;
/** Longest extra property value we store (Glance's MySQL TEXT column). */
const MAX_PROPERTY_VALUE = 65535;

/**
 * What the database can hold that the served schema does not say (Glance
 * checks these in its domain layer, not in the schema it serves): integer
 * columns and the length of extra property values.
 */
function imageStorageSchema(): JsonSchema {
  const properties: JsonSchema = {};
  for (const key of BASE_KEYS) properties[key] = {};
  for (const key of ['min_ram', 'min_disk']) properties[key] = { type: 'integer', minimum: 0, maximum: DB_INT_MAX };
  for (const key of CUSTOM_KEYS) properties[key] = { maxLength: MAX_PROPERTY_VALUE };
  return { type: 'object', properties, additionalProperties: { maxLength: MAX_PROPERTY_VALUE } };
}

/** The served /v2/schemas/image document, then the storage bounds; both compiled once, here. */
const checkImageSchema = compileSchema(imageSchema(), 'the image');
const checkImageStorage = compileSchema(imageStorageSchema(), 'the image');

/** Keys a create body may not name: the server's links and store list (checked before anything else, as Glance). */
export const CREATE_DISALLOWED = ['direct_url', 'self', 'file', 'schema', 'stores'];
/** Attributes the server computes; naming them on create is 403. */
export const CREATE_READ_ONLY = ['created_at', 'updated_at', 'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size'];
/** Base attributes a create body may set. */
const CREATE_BASE = ['id', 'name', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'owner', 'tags'];

/** Code points, as JSON Schema's maxLength counts them (not UTF-16 units). */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** No NUL (PostgreSQL text cannot hold one) and no unpaired UTF-16 surrogate (not Unicode): strings every database stores as they are. */
export function storable(s: string): boolean {
  return !/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Whether any string in `value` (keys included) cannot be stored; iterative, so no input depth can exhaust the stack. */
function unstorableIn(value: unknown): boolean {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const v = pending.pop();
    if (typeof v === 'string') {
      if (!storable(v)) return true;
    } else if (Array.isArray(v)) {
      pending.push(...v);
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (!storable(k)) return true;
        pending.push(x);
      }
    }
  }
  return false;
}

/**
 * Validates image attributes (base, custom or extra properties) against the
 * served image schema and the storage bounds, then their characters (skipped
 * with `charactersChecked` when every string was checked already); 400
 * naming the first problem.
 */
export function checkImageFields(fields: Record<string, unknown>, opts: { charactersChecked?: boolean } = {}): void {
  const problem = checkImageSchema(fields) ?? checkImageStorage(fields);
  if (problem) throw new BadRequest(`Invalid image: ${problem}`);
  if (opts.charactersChecked) return;
  for (const [key, value] of Object.entries(fields)) {
    if (unstorableIn(value)) throw new BadRequest(`Invalid value for '${key}': it contains a NUL character or an unpaired surrogate.`);
  }
}

/** Validates one attribute's value as checkImageFields does; returns the normalised value (tags without repeats). */
export function checkValue(key: string, value: unknown): unknown {
  checkImageFields({ [key]: value });
  if (key === 'tags') return [...new Set(value as string[])];
  return value;
}

/** A tag of PUT /v2/images/{id}/tags/{tag}: an item of the schema's `tags`. */
export function checkTag(t: string): string {
  const problem = checkImageSchema({ tags: [t] });
  if (problem) throw new BadRequest(`Invalid tag: ${problem}`);
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
  checkImageFields(body);
  const base: Record<string, unknown> = {};
  const properties = propertyMap();
  let tags: string[] = [];
  for (const key of keys) {
    const value = body[key];
    if (CREATE_BASE.includes(key)) {
      if (key === 'tags') tags = [...new Set(value as string[])];
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
