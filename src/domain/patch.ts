import { BadRequest, Conflict, Forbidden, ImagoError } from './errors.js';
import { BASE_ATTRIBUTES, propertyMap } from './image.js';
import { checkImageFields, checkNotReserved, checkPropertyName, checkValue } from './image-input.js';
import { checkLocationValue, type LocationChange, type LocationValue } from './locations.js';

/**
 * Glance's JSON-patch subset for images, written out exactly rather than
 * through a general JSON-patch library: one-level paths, add/remove/replace,
 * and Glance's own status codes for each misuse.
 */
export const PATCH_MEDIA_TYPES: Record<string, 4 | 10> = {
  'application/openstack-images-v2.0-json-patch': 4,
  'application/openstack-images-v2.1-json-patch': 10,
};

export type PatchOp = 'add' | 'remove' | 'replace';

export interface Change {
  op: PatchOp;
  path: string;
  value?: unknown;
  /** `/locations/<position>` of an add or remove: `-` or an index */
  position?: string;
}

const OPS: PatchOp[] = ['add', 'remove', 'replace'];
/** Attributes no PATCH may touch (Glance's list, plus `stores`, which only the server sets). */
const READ_ONLY = ['created_at', 'updated_at', 'status', 'checksum', 'size', 'virtual_size', 'direct_url', 'self', 'file', 'schema', 'id', 'os_hash_algo', 'os_hash_value', 'stores'];
/** Attributes that only change while the image has no data. */
const FORMAT_ATTRIBUTES = ['disk_format', 'container_format'];

export function patchDraft(contentType: string | string[] | undefined): 4 | 10 {
  const raw = Array.isArray(contentType) ? contentType[0] : contentType;
  const type = (raw ?? '').split(';')[0].trim().toLowerCase();
  const draft = Object.hasOwn(PATCH_MEDIA_TYPES, type) ? PATCH_MEDIA_TYPES[type] : undefined;
  if (!draft) {
    const allowed = Object.keys(PATCH_MEDIA_TYPES).sort().join(', ');
    throw new ImagoError(415, `Image PATCH expects Content-Type one of: ${allowed} (got ${type || 'none'}).`, '', { 'accept-patch': allowed });
  }
  return draft;
}

function decodePointer(pointer: unknown): string[] {
  if (typeof pointer !== 'string') throw new BadRequest(`The path of a change must be a JSON pointer string such as "/name", not ${JSON.stringify(pointer)}.`);
  if (!pointer.startsWith('/')) throw new BadRequest(`Pointer \`${pointer}\` does not start with "/".`);
  if (/\/\s*?\//.test(pointer.slice(1))) throw new BadRequest(`Pointer \`${pointer}\` contains adjacent "/".`);
  if (pointer.length > 1 && pointer.endsWith('/')) throw new BadRequest(`Pointer \`${pointer}\` ends with "/".`);
  if (/~[^01]/.test(pointer) || pointer.endsWith('~')) throw new BadRequest(`Pointer \`${pointer}\` contains "~" not part of a recognized escape sequence (~0 or ~1).`);
  return pointer.replace(/^\/+/, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~').trim());
}

function opOf(r: Record<string, unknown>, draft: 4 | 10): { op: PatchOp; pointer: unknown } {
  if (draft === 10) {
    if (r.op === undefined) throw new BadRequest(`Unable to find \`op\` in JSON Schema change. It must be one of the following: ${OPS.join(', ')}.`);
    if (!OPS.includes(r.op as PatchOp)) throw new BadRequest(`Invalid operation: \`${String(r.op)}\`. It must be one of the following: ${OPS.join(', ')}.`);
    if (!Object.hasOwn(r, 'path')) throw new BadRequest("Unable to find 'path' in JSON Schema change.");
    return { op: r.op as PatchOp, pointer: r.path };
  }
  const present = OPS.filter((k) => Object.hasOwn(r, k));
  if (present.length > 1) throw new BadRequest('Operation objects must contain only one member named "add", "remove", or "replace".');
  if (present.length === 0) throw new BadRequest('Operation objects must contain exactly one member named "add", "remove", or "replace".');
  return { op: present[0], pointer: r[present[0]] };
}

/** Parses and validates a PATCH body: syntax and per-attribute rules that need no image. */
export function parsePatch(body: unknown, draft: 4 | 10): Change[] {
  if (body === undefined) throw new BadRequest('Body expected in request: send a JSON array of changes.');
  if (!Array.isArray(body)) throw new BadRequest('Request body must be a JSON array of operation objects.');
  return body.map((raw) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadRequest('Operations must be JSON objects.');
    const r = raw as Record<string, unknown>;
    const { op, pointer } = opOf(r, draft);
    const path = decodePointer(pointer);
    const root = path[0];
    const depth = root === 'locations' ? (op === 'replace' ? 1 : 2) : 1;
    if (path.length !== depth) throw new BadRequest(`Invalid JSON pointer for this resource: '/${path.join('/')}'`);
    if (op !== 'remove' && !Object.hasOwn(r, 'value')) throw new BadRequest(`Operation "${op}" requires a member named "value".`);
    if (READ_ONLY.includes(root)) throw new Forbidden(`Attribute '${root}' is read-only.`);
    checkNotReserved(root);
    if (root === 'locations') return locationChange(op, path[1], r.value);
    const change: Change = { op, path: root };
    if (op !== 'remove') {
      if (!BASE_ATTRIBUTES.has(root)) checkPropertyName(root);
      change.value = checkValue(root, r.value);
    }
    return change;
  });
}

/** A change of `/locations`: its value checked here, what it does to the image in services/locations.ts. */
function locationChange(op: PatchOp, position: string | undefined, value: unknown): Change {
  if (op === 'remove') return { op, path: 'locations', position };
  if (op === 'add') return { op, path: 'locations', position, value: checkLocationValue(value) };
  if (!Array.isArray(value)) throw new BadRequest('Replacing /locations needs a JSON array of locations.');
  return { op, path: 'locations', value: value.map(checkLocationValue) };
}

/** The changes of a patch that concern `/locations`, in order, and the others. */
export function splitLocationChanges(changes: Change[]): { locations: LocationChange[]; others: Change[] } {
  const locations: LocationChange[] = [];
  const others: Change[] = [];
  for (const c of changes) {
    if (c.path !== 'locations') others.push(c);
    else if (c.op === 'add') locations.push({ op: 'add', position: c.position!, value: c.value as LocationValue });
    else if (c.op === 'remove') locations.push({ op: 'remove', position: c.position! });
    else locations.push({ op: 'replace', value: c.value as LocationValue[] });
  }
  return { locations, others };
}

export interface PatchState {
  base: Record<string, unknown>;
  properties: Record<string, string>;
  tags: string[];
}

export interface PatchRules {
  draft: 4 | 10;
  isAdmin: boolean;
  /** the image's status: disk and container formats only change while queued or importing */
  status: string;
  /** called with each requested visibility (publicize/communitize policy) */
  checkVisibility(visibility: string): void;
}

/** Applies changes to a copy of the image's state, as Glance's controller does, in order. */
export function applyPatch(state: PatchState, changes: Change[], rules: PatchRules): PatchState {
  const next: PatchState = { base: { ...state.base }, properties: propertyMap(Object.entries(state.properties)), tags: [...state.tags] };
  const has = (k: string) => Object.hasOwn(next.properties, k);
  for (const c of changes) {
    const isBase = BASE_ATTRIBUTES.has(c.path);
    if (c.op === 'remove') {
      if (isBase) throw new Forbidden(`Property ${c.path} may not be removed.`);
      if (!has(c.path)) throw new Conflict(`Property ${c.path} does not exist.`);
      delete next.properties[c.path];
      continue;
    }
    if (c.path === 'owner' && !rules.isAdmin) throw new Forbidden("Owner can't be updated by non admin.");
    if (c.path === 'visibility') rules.checkVisibility(c.value as string);
    if (FORMAT_ATTRIBUTES.includes(c.path) && rules.status !== 'queued' && rules.status !== 'importing') {
      throw new Forbidden(`Attribute ${c.path} can be only replaced for a queued image (this image is ${rules.status}).`);
    }
    if (c.op === 'replace' && !isBase && !has(c.path)) throw new Conflict(`Property ${c.path} does not exist.`);
    if (c.op === 'add' && rules.draft === 4 && (isBase || has(c.path))) throw new Conflict(`Property ${c.path} already present.`);
    if (isBase) {
      if (c.path === 'tags') next.tags = c.value as string[];
      else next.base[c.path] = c.value;
    } else if (c.value === null) {
      // kernel_id / ramdisk_id may be set to null: the property goes away
      delete next.properties[c.path];
    } else {
      next.properties[c.path] = c.value as string;
    }
  }
  // Each value was checked as it was parsed (characters included) and stored values were checked when stored;
  // the image they make together is checked against the served schema too.
  const resulting: Record<string, unknown> = { tags: next.tags };
  for (const k in next.base) if (next.base[k] !== undefined) resulting[k] = next.base[k];
  for (const k in next.properties) {
    // a property may be called __proto__: define it, as assigning it would set the prototype
    if (k === '__proto__') Object.defineProperty(resulting, k, { value: next.properties[k], enumerable: true, writable: true, configurable: true });
    else resulting[k] = next.properties[k];
  }
  checkImageFields(resulting, { charactersChecked: true });
  return next;
}
