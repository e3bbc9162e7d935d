import { BadRequest } from './errors.js';
import { storable } from './image-input.js';

/**
 * GET /v2/images query parameters, with the semantics of Glance's
 * RequestDeserializer.index, ImagesController.index and the SQL filters of
 * glance/db/sqlalchemy/api.py: every parameter that is not a control
 * parameter is a filter on a base attribute or, failing that, an exact match
 * on an extra property. Repeated filters must all hold.
 */
export type Op = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in';

export interface Condition {
  /** a base column name or, for extra properties, `prop:<name>` */
  field: string;
  op: Op;
  /** `in` with no values matches nothing */
  values: string[];
}

export interface SortKey {
  key: string;
  dir: 'asc' | 'desc';
}

export type MemberStatusFilter = 'accepted' | 'pending' | 'rejected' | 'all';

export interface ImageListQuery {
  conditions: Condition[];
  tags: string[];
  /** undefined: the default list; 'all'; or one visibility (possibly '' which matches nothing) */
  visibility: string | undefined;
  osHidden: boolean;
  memberStatus: MemberStatusFilter;
  sort: SortKey[];
  limit: number;
  marker: string | undefined;
}

/** Sort keys Glance accepts. */
export const SORTABLE = ['name', 'status', 'container_format', 'disk_format', 'size', 'id', 'created_at', 'updated_at'];
export const TIME_FIELDS = ['created_at', 'updated_at'];
export const INT_FIELDS = ['size', 'virtual_size', 'min_disk', 'min_ram'];
/** Filters that take an operator prefix (`in:` lists, `eq:`). */
const LISTABLE = ['name', 'id', 'status', 'container_format', 'disk_format'];
/** Other image columns: exact match on the raw value. */
const COLUMNS = ['owner', 'checksum', 'os_hash_algo', 'os_hash_value', ...INT_FIELDS];
const CONTROL = new Set(['limit', 'marker', 'member_status', 'tag', 'sort', 'sort_key', 'sort_dir', 'visibility', 'os_hidden', 'protected', 'changes-since', 'deleted']);
const KNOWN_OPS = new Set(['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'in']);

export const DEFAULT_LIMIT = 25;
export const MAX_LIMIT = 1000;

export type Query = Record<string, string | string[] | undefined>;

function all(q: Query, k: string): string[] {
  if (!Object.hasOwn(q, k)) return [];
  const v = q[k];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function first(q: Query, k: string): string | undefined {
  return all(q, k)[0];
}

function last(q: Query, k: string): string | undefined {
  const v = all(q, k);
  return v[v.length - 1];
}

const PY_INT = /^\s*[+-]?\d+\s*$/;

/**
 * ISO 8601 as oslo's parse_isotime reads it: a date, optionally a time to
 * the minute, second or fraction, and an offset (UTC when absent). Returns
 * the instant as `YYYY-MM-DDTHH:MM:SS[.mmm]` in UTC, or undefined.
 */
export function parseIsoTime(value: string): string | undefined {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', tz = 'Z'] = m;
  const ms = Number((frac + '000').slice(0, 3));
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  const check = new Date(t);
  if (check.getUTCFullYear() !== Number(y) || check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    return undefined;
  }
  let offset = 0;
  if (tz.toUpperCase() !== 'Z') {
    const tm = /^([+-])(\d{2}):?(\d{2})?$/.exec(tz)!;
    offset = (tm[1] === '-' ? -1 : 1) * (Number(tm[2]) * 60 + Number(tm[3] ?? 0)) * 60_000;
    if (Number(tm[2]) > 23 || Number(tm[3] ?? 0) > 59) return undefined;
  }
  const iso = new Date(t - offset).toISOString();
  return iso.endsWith('.000Z') ? iso.slice(0, 19) : iso.slice(0, 23);
}

/**
 * Glance's split_filter_op: `op:value`, or the whole string when it has no
 * colon or is itself a timestamp. Unlike Glance, a prefix that is no operator
 * at all (an image named `debian:12`) is part of the value, not a 400.
 */
function splitOp(expression: string): { op: string; value: string } {
  const i = expression.indexOf(':');
  if (i < 0 || parseIsoTime(expression) !== undefined) return { op: 'eq', value: expression };
  const op = expression.slice(0, i);
  if (!KNOWN_OPS.has(op)) return { op: 'eq', value: expression };
  return { op, value: expression.slice(i + 1) };
}

/** Glance's validate_quotes + split_filter_value_for_quotes: `a,"b,c",d`. */
export function splitList(value: string): string[] {
  let open = false;
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '"' || (i > 0 && value[i - 1] === '\\')) continue;
    if (!open && i > 0 && value[i - 1] !== ',') throw new BadRequest(`Invalid filter value ${value}. There is no comma before opening quotation mark.`);
    if (open && i + 1 !== value.length && value[i + 1] !== ',') throw new BadRequest(`Invalid filter value ${value}. There is no comma after closing quotation mark.`);
    open = !open;
  }
  if (open) throw new BadRequest(`Invalid filter value ${value}. The quote is not closed.`);
  const out: string[] = [];
  const re = /"([^"\\]*(?:\\.[^"\\]*)*)",?|([^,]+),?|,/g;
  for (let m; (m = re.exec(value)); ) out.push(m[1] || m[2] || '');
  return out;
}

function listCondition(field: string, raw: string): Condition {
  const { op, value } = splitOp(raw);
  if (op === 'in') return { field, op: 'in', values: splitList(value) };
  if (op === 'eq') return { field, op: 'eq', values: [value] };
  throw new BadRequest(`Unable to filter by unknown operator '${op}'. The ${field} filter takes a value, eq:<value> or in:<value>,<value>...`);
}

function timeCondition(field: string, raw: string): Condition {
  const { op, value } = splitOp(raw);
  if (op === 'in') throw new BadRequest(`Unable to filter on a unknown operator: ${field} takes gt, gte, eq, neq, lt or lte.`);
  const t = parseIsoTime(value);
  if (t === undefined) throw new BadRequest(`Bad "${field}" query filter format "${value}". Use ISO 8601 DateTime notation, e.g. ${field}=gt:2024-01-31T12:00:00Z.`);
  return { field, op: op as Op, values: [t] };
}

function intValue(param: string, raw: string): string {
  if (!PY_INT.test(raw)) throw new BadRequest(`Invalid value "${raw}" for ${param}: an integer is required.`);
  return String(Number(raw.trim()));
}

function rangeCondition(param: string, raw: string): Condition {
  const field = param.slice(0, -4);
  if (!PY_INT.test(raw)) throw new BadRequest('Unable to filter on a range with a non-numeric value.');
  if (!INT_FIELDS.includes(field)) throw new BadRequest(`Unable to filter on a range of ${field}: ranges apply to ${INT_FIELDS.join(', ')}.`);
  return { field, op: param.endsWith('_min') ? 'gte' : 'lte', values: [intValue(param, raw)] };
}

function filterCondition(key: string, raw: string): Condition {
  if ((key.endsWith('_min') || key.endsWith('_max')) && key.length > 4) return rangeCondition(key, raw);
  if (TIME_FIELDS.includes(key)) return timeCondition(key, raw);
  if (LISTABLE.includes(key)) return listCondition(key, raw);
  if (INT_FIELDS.includes(key)) return { field: key, op: 'eq', values: [intValue(key, raw)] };
  if (COLUMNS.includes(key)) return { field: key, op: 'eq', values: [raw] };
  // deleted images are gone, so nothing has a deletion time
  if (key === 'deleted_at') return { field: 'id', op: 'in', values: [] };
  return { field: `prop:${key}`, op: 'eq', values: [raw] };
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_LIMIT;
  if (!PY_INT.test(raw)) throw new BadRequest(`limit param must be an integer, got "${raw}".`);
  const n = Number(raw.trim());
  if (n < 0) throw new BadRequest(`limit param must be positive, got ${raw}.`);
  return Math.min(n, MAX_LIMIT);
}

function parseBoolFilter(raw: string, field: string): boolean {
  if (raw === 'true' || raw === 'false') return raw === 'true';
  throw new BadRequest(`Invalid value '${raw}' for '${field}' filter. Valid values are 'true' or 'false'.`);
}

export function parseImageListQuery(q: Query): ImageListQuery {
  for (const key of Object.keys(q)) {
    if (!storable(key) || all(q, key).some((v) => !storable(v))) {
      throw new BadRequest(`The query parameter ${JSON.stringify(key)} contains a NUL character or an unpaired surrogate.`);
    }
  }
  const limit = parseLimit(first(q, 'limit'));
  const marker = first(q, 'marker');
  const memberStatus = (first(q, 'member_status') ?? 'accepted') as MemberStatusFilter;
  if (!['accepted', 'pending', 'rejected', 'all'].includes(memberStatus)) {
    throw new BadRequest(`Invalid status: ${memberStatus}. member_status is one of accepted, pending, rejected, all.`);
  }
  const tags = all(q, 'tag').map((t) => t.trim());

  const visibility = last(q, 'visibility');
  if (visibility && !['community', 'public', 'private', 'shared', 'all'].includes(visibility)) {
    throw new BadRequest(`Invalid visibility value: ${visibility}. Use community, public, private, shared or all.`);
  }
  if (last(q, 'changes-since')) throw new BadRequest('The "changes-since" filter is no longer available on v2; use updated_at=gte:<time> instead.');

  const osHidden = parseBoolFilter((last(q, 'os_hidden') ?? 'false').toLowerCase(), 'os_hidden');
  const conditions: Condition[] = [];
  const prot = last(q, 'protected');
  if (prot !== undefined) conditions.push({ field: 'protected', op: 'eq', values: [parseBoolFilter(prot, 'protected') ? '1' : '0'] });

  for (const key of Object.keys(q)) {
    if (CONTROL.has(key)) continue;
    for (const raw of all(q, key)) conditions.push(filterCondition(key, raw));
  }

  return { conditions, tags, visibility, osHidden, memberStatus, sort: parseSort(q), limit, marker };
}

function sortKey(key: string): string {
  if (!SORTABLE.includes(key)) throw new BadRequest(`Invalid sort key: ${key}. It must be one of the following: ${SORTABLE.join(', ')}.`);
  return key;
}

function sortDir(dir: string): 'asc' | 'desc' {
  if (dir !== 'asc' && dir !== 'desc') throw new BadRequest(`Invalid sort direction: ${dir}. Use asc or desc.`);
  return dir;
}

/** Both of Glance's syntaxes, then created_at and id as tie-breakers (in the default direction). */
function parseSort(q: Query): SortKey[] {
  const sort = first(q, 'sort');
  const keys: string[] = [];
  const dirs: ('asc' | 'desc')[] = [];
  if (sort !== undefined) {
    if (all(q, 'sort_key').length || all(q, 'sort_dir').length) throw new BadRequest('Old and new sorting syntax cannot be combined: use either sort=key:dir,... or sort_key/sort_dir.');
    for (const part of sort.trim().split(',')) {
      const i = part.indexOf(':');
      const [k, d] = i < 0 ? [part, ''] : [part.slice(0, i), part.slice(i + 1)];
      keys.push(sortKey(k.trim()));
      dirs.push(sortDir(d.trim() || 'desc'));
    }
  } else {
    for (const k of all(q, 'sort_key')) keys.push(sortKey(k.trim()));
    for (const d of all(q, 'sort_dir')) dirs.push(sortDir(d.trim()));
    if (dirs.length > 1 && dirs.length !== keys.length) throw new BadRequest('Number of sort dirs does not match the number of sort keys.');
  }
  if (keys.length === 0) keys.push('created_at');
  const defaultDir = dirs.length === 1 ? dirs[0] : 'desc';
  const out = keys.map((key, i) => ({ key, dir: dirs.length === 1 ? dirs[0] : dirs[i] ?? 'desc' }));
  for (const key of ['created_at', 'id']) if (!keys.includes(key)) out.push({ key, dir: defaultDir });
  return out;
}
