import { BadRequest } from './errors.js';
import { CONTAINER_FORMATS, DISK_FORMATS, STATUSES, VISIBILITIES } from './image.js';

export type Op = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in';

export interface Condition {
  /** a base column name or, for extra properties, `prop:<name>` */
  field: string;
  op: Op;
  values: string[];
}

export interface SortKey {
  key: string;
  dir: 'asc' | 'desc';
}

export interface ImageListQuery {
  conditions: Condition[];
  tags: string[];
  visibility: string | undefined;
  memberStatus: 'accepted' | 'pending' | 'rejected' | 'all';
  sort: SortKey[];
  limit: number;
  marker: string | undefined;
}

export const SORTABLE = ['name', 'status', 'container_format', 'disk_format', 'size', 'id', 'created_at', 'updated_at', 'min_disk', 'min_ram', 'owner', 'virtual_size', 'visibility', 'protected', 'os_hidden'];
const TIME_FIELDS = new Set(['created_at', 'updated_at']);
const INT_FIELDS = new Set(['size', 'virtual_size', 'min_disk', 'min_ram']);
const BOOL_FIELDS = new Set(['protected', 'os_hidden']);
const PLAIN = ['name', 'status', 'owner', 'disk_format', 'container_format', 'id', 'checksum', 'os_hash_value', 'min_disk', 'min_ram', 'virtual_size'];
const CONTROL = new Set(['limit', 'marker', 'sort', 'sort_key', 'sort_dir', 'tag', 'visibility', 'member_status', 'size_min', 'size_max', 'created_at', 'updated_at', 'protected', 'os_hidden', 'changes-since']);

export const DEFAULT_LIMIT = 25;
export const MAX_LIMIT = 1000;

type Query = Record<string, string | string[] | undefined>;

function all(q: Query, k: string): string[] {
  const v = q[k];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function one(q: Query, k: string): string | undefined {
  const v = all(q, k);
  if (v.length > 1) throw new BadRequest(`The "${k}" filter may be given only once.`);
  return v[0];
}

function parseIso(value: string, field: string): string {
  const d = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(d.getTime())) {
    throw new BadRequest(`Invalid time format for ${field}: "${value}". Use ISO 8601, e.g. 2024-01-31T12:00:00Z.`);
  }
  return d.toISOString();
}

/** `op:value` with an optional operator prefix, `in:a,b,"c,d"` for lists. */
function parseOperator(raw: string, field: string): Condition {
  const m = /^(eq|neq|gt|gte|lt|lte|in):(.*)$/s.exec(raw);
  if (!m) return { field, op: 'eq', values: [raw] };
  const op = m[1] as Op;
  if (op === 'in') return { field, op, values: splitList(m[2]) };
  return { field, op, values: [m[2]] };
}

function splitList(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|([^,]+)/g;
  for (let m; (m = re.exec(s)); ) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2].trim());
  return out;
}

function validateValues(c: Condition): void {
  const label = c.field.startsWith('prop:') ? c.field.slice(5) : c.field;
  if (['lt', 'lte', 'gt', 'gte'].includes(c.op) && !TIME_FIELDS.has(c.field) && !INT_FIELDS.has(c.field)) {
    throw new BadRequest(`Operator ${c.op} is not supported for the "${label}" filter.`);
  }
  for (const v of c.values) {
    if (INT_FIELDS.has(c.field) && !/^\d+$/.test(v)) throw new BadRequest(`Invalid value "${v}" for ${label}: an integer is required.`);
    if (c.field === 'status' && !(STATUSES as string[]).includes(v)) throw new BadRequest(`Invalid status value: ${v}`);
    if (c.field === 'disk_format' && !(DISK_FORMATS as readonly string[]).includes(v)) throw new BadRequest(`Invalid disk_format value: ${v}`);
    if (c.field === 'container_format' && !(CONTAINER_FORMATS as readonly string[]).includes(v)) throw new BadRequest(`Invalid container_format value: ${v}`);
  }
}

function parseBool(v: string, field: string): string {
  const s = v.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return '1';
  if (['false', '0', 'no', 'off'].includes(s)) return '0';
  throw new BadRequest(`Invalid value "${v}" for ${field}: expected true or false.`);
}

export function parseImageListQuery(q: Query): ImageListQuery {
  const conditions: Condition[] = [];

  for (const field of PLAIN) {
    const raw = one(q, field);
    if (raw === undefined) continue;
    const c = parseOperator(raw, field);
    validateValues(c);
    conditions.push(c);
  }
  for (const field of TIME_FIELDS) {
    const raw = one(q, field);
    if (raw === undefined) continue;
    const c = parseOperator(raw, field);
    if (c.op === 'in') throw new BadRequest(`Operator in is not supported for ${field}.`);
    c.values = c.values.map((v) => parseIso(v, field));
    conditions.push(c);
  }
  for (const field of BOOL_FIELDS) {
    const raw = one(q, field);
    if (raw !== undefined) conditions.push({ field, op: 'eq', values: [parseBool(raw, field)] });
  }
  for (const [param, op] of [['size_min', 'gte'], ['size_max', 'lte']] as const) {
    const raw = one(q, param);
    if (raw === undefined) continue;
    if (!/^\d+$/.test(raw)) throw new BadRequest(`Invalid value "${raw}" for ${param}: a non-negative integer is required.`);
    conditions.push({ field: 'size', op, values: [raw] });
  }
  const since = one(q, 'changes-since');
  if (since !== undefined) conditions.push({ field: 'updated_at', op: 'gte', values: [parseIso(since, 'changes-since')] });

  for (const [k, v] of Object.entries(q)) {
    if (CONTROL.has(k) || PLAIN.includes(k) || v === undefined) continue;
    const raw = Array.isArray(v) ? v[v.length - 1] : v;
    const c = parseOperator(raw, `prop:${k}`);
    if (c.op !== 'eq' && c.op !== 'in') throw new BadRequest(`Operator ${c.op} is not supported for the "${k}" filter.`);
    conditions.push(c);
  }

  const visibility = one(q, 'visibility');
  if (visibility !== undefined && visibility !== 'all' && !(VISIBILITIES as string[]).includes(visibility)) {
    throw new BadRequest(`Invalid visibility value: ${visibility}`);
  }
  const memberStatus = (one(q, 'member_status') ?? 'accepted') as ImageListQuery['memberStatus'];
  if (!['accepted', 'pending', 'rejected', 'all'].includes(memberStatus)) throw new BadRequest(`Invalid member_status value: ${memberStatus}`);

  let limit = DEFAULT_LIMIT;
  const rawLimit = one(q, 'limit');
  if (rawLimit !== undefined) {
    if (!/^\d+$/.test(rawLimit)) throw new BadRequest(`Invalid limit "${rawLimit}": limit must be a non-negative integer.`);
    limit = Math.min(Number(rawLimit), MAX_LIMIT);
  }

  return {
    conditions,
    tags: all(q, 'tag'),
    visibility,
    memberStatus,
    sort: parseSort(q),
    limit,
    marker: one(q, 'marker'),
  };
}

function sortKey(key: string): string {
  if (!SORTABLE.includes(key)) throw new BadRequest(`Invalid sort key: ${key}. Sort keys are: ${SORTABLE.join(', ')}.`);
  return key;
}

function sortDir(dir: string): 'asc' | 'desc' {
  if (dir !== 'asc' && dir !== 'desc') throw new BadRequest(`Invalid sort direction: ${dir}. Use asc or desc.`);
  return dir;
}

function parseSort(q: Query): SortKey[] {
  const sort = one(q, 'sort');
  const keys = all(q, 'sort_key');
  const dirs = all(q, 'sort_dir');
  let out: SortKey[];
  if (sort !== undefined) {
    if (keys.length || dirs.length) throw new BadRequest('The "sort" parameter cannot be combined with sort_key or sort_dir.');
    out = sort.split(',').map((part) => {
      const [k, d, extra] = part.trim().split(':');
      if (extra !== undefined || !k) throw new BadRequest(`Invalid sort value: ${part}`);
      return { key: sortKey(k), dir: d === undefined ? 'desc' : sortDir(d) };
    });
  } else {
    if (dirs.length > Math.max(keys.length, 1)) throw new BadRequest('There are more sort_dir values than sort_key values.');
    if (keys.length > 1 && dirs.length > 1 && dirs.length !== keys.length) throw new BadRequest('The number of sort_dir values must match the number of sort_key values.');
    out = (keys.length ? keys : ['created_at']).map((k, i) => ({ key: sortKey(k), dir: sortDir(dirs[i] ?? dirs[0] ?? 'desc') }));
  }
  if (!out.some((s) => s.key === 'created_at') && !out.some((s) => s.key === 'id')) out.push({ key: 'created_at', dir: out[0]?.dir ?? 'desc' });
  if (!out.some((s) => s.key === 'id')) out.push({ key: 'id', dir: out[0]?.dir ?? 'desc' });
  return out;
}
