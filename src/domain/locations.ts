import { BadRequest, Conflict, Forbidden } from './errors.js';
import type { Image } from './image.js';

/**
 * The locations API's rules (Glance's `show_multiple_locations` behaviour,
 * docs/locations.md), pure: what a JSON-patch on `/locations` may do to an
 * image's list of locations, and which digests a location's
 * `validation_data` may set. The service applies the result.
 */

export interface LocationValue {
  url: string;
  metadata: Record<string, unknown>;
  validation_data?: ValidationData;
}

export interface ValidationData {
  checksum?: string;
  os_hash_algo?: string;
  os_hash_value?: string;
}

export type LocationChange =
  | { op: 'add'; position: string; value: LocationValue }
  | { op: 'replace'; value: LocationValue[] }
  | { op: 'remove'; position: string };

/** The digest algorithm Imago computes (Glance's `hashing_algorithm` default). */
export const HASH_ALGO = 'sha512';
const DIGEST_BYTES: Record<string, number> = { md5: 16, sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

/** Checks the shape of one location object of a patch (the image schema's `locations.items`). */
export function checkLocationValue(raw: unknown): LocationValue {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadRequest('A location must be a JSON object with "url" and "metadata".');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (k !== 'url' && k !== 'metadata' && k !== 'validation_data') throw new BadRequest(`A location has no attribute '${k}' (it takes url, metadata and validation_data).`);
  }
  if (typeof r.url !== 'string' || r.url.length === 0 || r.url.length > 255) throw new BadRequest("A location's 'url' must be a string of 1 to 255 characters.");
  if (typeof r.metadata !== 'object' || r.metadata === null || Array.isArray(r.metadata)) throw new BadRequest("A location's 'metadata' must be a JSON object.");
  const value: LocationValue = { url: r.url, metadata: r.metadata as Record<string, unknown> };
  if (r.validation_data !== undefined) value.validation_data = checkValidationData(r.validation_data);
  return value;
}

function checkValidationData(raw: unknown): ValidationData {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadRequest("A location's 'validation_data' must be a JSON object.");
  const r = raw as Record<string, unknown>;
  const out: ValidationData = {};
  for (const [k, v] of Object.entries(r)) {
    if (k !== 'checksum' && k !== 'os_hash_algo' && k !== 'os_hash_value') throw new BadRequest(`validation_data has no attribute '${k}' (it takes checksum, os_hash_algo and os_hash_value).`);
    if (typeof v !== 'string') throw new BadRequest(`validation_data.${k} must be a string.`);
    out[k] = v;
  }
  // as the image schema says: the multihash comes as a pair
  if (out.os_hash_algo === undefined || out.os_hash_value === undefined) throw new BadRequest('validation_data needs both os_hash_algo and os_hash_value.');
  return out;
}

/** The index a patch path names: `-` (the end) or a number; for remove, an existing index. */
export function locationIndex(position: string, length: number, forInsert: boolean): number {
  let index = forInsert ? length : length - 1;
  if (/^\d+$/.test(position)) index = Number(position);
  else if (position !== '-') throw new BadRequest(`Invalid position for ${forInsert ? 'adding' : 'removing'} a location: '${position}'.`);
  if (forInsert ? index > length : index < 0 || index >= length) throw new BadRequest(`Invalid position for ${forInsert ? 'adding' : 'removing'} a location: ${position} (the image has ${length}).`);
  return index;
}

/**
 * The digests `validation_data` sets on an image: values equal to the
 * image's own pass; a different value where the image has one is a conflict
 * (409), as are new values once the image is no longer queued and values that
 * are not digests of the right length. Returns only what changes.
 */
export function digestsToSet(image: Pick<Image, 'status' | 'checksum' | 'osHashAlgo' | 'osHashValue'>, values: LocationValue[]): ValidationData {
  const given: ValidationData = {};
  for (const v of values) {
    for (const [k, val] of Object.entries(v.validation_data ?? {}) as [keyof ValidationData, string][]) {
      if (given[k] !== undefined && given[k] !== val) throw new Conflict(`The locations give two different values for ${k}.`);
      given[k] = val;
    }
  }
  const current: ValidationData = { checksum: image.checksum ?? undefined, os_hash_algo: image.osHashAlgo ?? undefined, os_hash_value: image.osHashValue ?? undefined };
  const next: ValidationData = {};
  for (const [k, val] of Object.entries(given) as [keyof ValidationData, string][]) {
    if (val === current[k]) continue;
    if (current[k]) throw new Conflict(`The image's ${k} is already ${current[k]}; a location cannot change it to ${val}.`);
    next[k] = val;
  }
  if (Object.keys(next).length === 0) return {};
  if (image.status !== 'queued') throw new Conflict(`validation_data may set ${Object.keys(next).join(', ')} only while the image is queued (it is ${image.status}).`);
  if (next.checksum !== undefined && !isHex(next.checksum, 16)) throw new Conflict(`checksum ${next.checksum} is not an md5 digest (32 hexadecimal digits).`);
  const algo = next.os_hash_algo ?? image.osHashAlgo;
  if (next.os_hash_algo !== undefined && next.os_hash_algo !== HASH_ALGO) throw new Conflict(`os_hash_algo must be ${HASH_ALGO}, the algorithm this service uses, not ${next.os_hash_algo}.`);
  if (next.os_hash_value !== undefined && !isHex(next.os_hash_value, DIGEST_BYTES[algo ?? HASH_ALGO] ?? 64)) {
    throw new Conflict(`os_hash_value is not a ${algo ?? HASH_ALGO} digest (${2 * (DIGEST_BYTES[algo ?? HASH_ALGO] ?? 64)} hexadecimal digits).`);
  }
  return next;
}

function isHex(s: string, bytes: number): boolean {
  return s.length === 2 * bytes && /^[0-9a-fA-F]+$/.test(s);
}

/** What every change needs before the list changes: locations shown, the image in a status that allows it. */
export function checkLocationChange(op: LocationChange['op'], status: string, count: number): void {
  if (op === 'remove') {
    if (status !== 'active') throw new Conflict(`Locations can be removed only from an active image (this one is ${status}).`);
    if (count === 1) throw new Forbidden("The image's last location cannot be removed; delete the image instead.");
    return;
  }
  if (status !== 'active' && status !== 'queued') throw new Conflict(`Locations can be ${op === 'add' ? 'added to' : 'replaced on'} queued or active images only (this one is ${status}).`);
}

/** Glance counts a location as a duplicate when both its URL and its metadata are the same. */
export function sameLocation(a: { url: string; metadata?: Record<string, unknown> }, b: { url: string; metadata?: Record<string, unknown> }): boolean {
  return a.url === b.url && stableJson(a.metadata ?? {}) === stableJson(b.metadata ?? {});
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
