import { BadRequest, Conflict, Forbidden, UnsupportedMediaType } from './errors.js';
import { BASE_ATTRIBUTES, RESERVED, RESERVED_PREFIX } from './image.js';
import { checkBaseValue, checkExtraProperty } from './image-input.js';

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
}

const OPS: PatchOp[] = ['add', 'remove', 'replace'];
const READ_ONLY = ['created_at', 'updated_at', 'status', 'checksum', 'size', 'virtual_size', 'direct_url', 'self', 'file', 'schema', 'id', 'os_hash_algo', 'os_hash_value', 'stores'];

export function patchDraft(contentType: string | undefined): 4 | 10 {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const draft = PATCH_MEDIA_TYPES[type];
  if (!draft) {
    throw new UnsupportedMediaType(`Image PATCH expects Content-Type one of: ${Object.keys(PATCH_MEDIA_TYPES).sort().join(', ')}`);
  }
  return draft;
}

function decodePointer(pointer: unknown): string[] {
  if (typeof pointer !== 'string') throw new BadRequest('The path of a change must be a string.');
  if (!pointer.startsWith('/')) throw new BadRequest(`Pointer \`${pointer}\` does not start with "/".`);
  if (/\/\s*?\//.test(pointer.slice(1))) throw new BadRequest(`Pointer \`${pointer}\` contains adjacent "/".`);
  if (pointer.length > 1 && pointer.endsWith('/')) throw new BadRequest(`Pointer \`${pointer}\` end with "/".`);
  if (/~[^01]/.test(pointer) || pointer.endsWith('~')) throw new BadRequest(`Pointer \`${pointer}\` contains "~" not part of a recognized escape sequence.`);
  return pointer.replace(/^\/+/, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~').trim());
}

/** Parses and validates a PATCH body (syntax and per-attribute rules that need no image). */
export function parsePatch(body: unknown, draft: 4 | 10): Change[] {
  if (!Array.isArray(body)) throw new BadRequest('Request body must be a JSON array of operation objects.');
  return body.map((raw) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadRequest('Operations must be JSON objects.');
    const r = raw as Record<string, unknown>;
    let op: PatchOp;
    let pointer: unknown;
    if (draft === 10) {
      if (r.op === undefined) throw new BadRequest(`Unable to find \`op\` in JSON Schema change. It must be one of the following: ${OPS.join(', ')}.`);
      if (!OPS.includes(r.op as PatchOp)) throw new BadRequest(`Invalid operation: \`${String(r.op)}\`. It must be one of the following: ${OPS.join(', ')}.`);
      op = r.op as PatchOp;
      if (!('path' in r)) throw new BadRequest("Unable to find 'path' in JSON Schema change");
      pointer = r.path;
    } else {
      const present = OPS.filter((k) => k in r);
      if (present.length !== 1) throw new BadRequest('Operation objects must contain exactly one member named "add", "remove", or "replace".');
      op = present[0];
      pointer = r[op];
    }
    const path = decodePointer(pointer);
    const root = path[0];
    const depth = root === 'locations' ? (op === 'replace' ? 1 : 2) : 1;
    if (path.length !== depth) throw new BadRequest(`Invalid JSON pointer for this resource: '/${path.join('/')}'`);
    if (READ_ONLY.includes(root)) throw new Forbidden(`Attribute '${root}' is read-only.`);
    if ((RESERVED as readonly string[]).includes(root) || root.startsWith(RESERVED_PREFIX)) throw new Forbidden(`Attribute '${root}' is reserved.`);
    if (root === 'locations') throw new Forbidden('Changing image locations is not allowed: locations are not exposed by this service.');
    const change: Change = { op, path: root };
    if (op !== 'remove') {
      if (!('value' in r)) throw new BadRequest(`Operation "${op}" requires a member named "value".`);
      change.value = BASE_ATTRIBUTES.has(root) ? checkBaseValue(root, r.value) : checkExtraProperty(root, r.value);
    }
    return change;
  });
}

export interface PatchState {
  base: Record<string, unknown>;
  properties: Record<string, string>;
  tags: string[];
}

/** Applies changes to a copy of the image's state, as Glance's controller does. */
export function applyPatch(state: PatchState, changes: Change[], draft: 4 | 10, isAdmin: boolean): PatchState {
  const next: PatchState = { base: { ...state.base }, properties: { ...state.properties }, tags: [...state.tags] };
  for (const c of changes) {
    const isBase = BASE_ATTRIBUTES.has(c.path);
    if (c.op === 'replace') {
      if (c.path === 'owner' && !isAdmin) throw new Forbidden("Owner can't be updated by non admin.");
      if (isBase) setBase(next, c.path, c.value);
      else if (c.path in next.properties) next.properties[c.path] = c.value as string;
      else throw new Conflict(`Property ${c.path} does not exist.`);
    } else if (c.op === 'add') {
      if (c.path === 'owner' && !isAdmin) throw new Forbidden("Owner can't be updated by non admin.");
      if (draft === 4 && (isBase || c.path in next.properties)) throw new Conflict(`Property ${c.path} already present.`);
      if (isBase) setBase(next, c.path, c.value);
      else next.properties[c.path] = c.value as string;
    } else {
      if (isBase) throw new Forbidden(`Property ${c.path} may not be removed.`);
      if (!(c.path in next.properties)) throw new Conflict(`Property ${c.path} does not exist.`);
      delete next.properties[c.path];
    }
  }
  return next;
}

function setBase(state: PatchState, key: string, value: unknown): void {
  if (key === 'tags') state.tags = value as string[];
  else state.base[key] = value;
}
