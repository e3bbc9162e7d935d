import { BadRequest } from '../domain/errors.js';
import type { NamespaceVisibility } from './model.js';

type Query = Record<string, string | string[] | undefined>;

const one = (q: Query, k: string): string | undefined => {
  const v = q[k];
  return Array.isArray(v) ? v[0] : v;
};

export const NAMESPACE_SORT_KEYS = ['created_at', 'updated_at', 'namespace', 'display_name', 'description', 'visibility', 'protected', 'owner', 'id'] as const;
export const TAG_SORT_KEYS = ['created_at', 'updated_at', 'name', 'id'] as const;
export type NamespaceSortKey = (typeof NAMESPACE_SORT_KEYS)[number];
export type TagSortKey = (typeof TAG_SORT_KEYS)[number];
export type SortDir = 'asc' | 'desc';

export const DEFAULT_LIMIT = 25;
export const MAX_LIMIT = 1000;

function sortDir(q: Query): SortDir {
  const d = one(q, 'sort_dir') ?? 'desc';
  if (d !== 'asc' && d !== 'desc') throw new BadRequest(`Invalid sort direction: ${d}. Use asc or desc.`);
  return d;
}

function sortKey<K extends string>(q: Query, allowed: readonly K[]): K {
  const k = one(q, 'sort_key') ?? 'created_at';
  if (!allowed.includes(k as K)) throw new BadRequest(`Invalid sort key: ${k}. Sort by one of ${allowed.join(', ')}.`);
  return k as K;
}

/** A limit as Glance reads it: an integer, not negative (not zero where `positive`), capped at 1000. */
function limit(raw: string, positive = false): number {
  if (!/^\s*[+-]?\d+\s*$/.test(raw)) throw new BadRequest(`limit must be an integer, got "${raw}".`);
  const n = Number(raw);
  if (n < 0 || (positive && n === 0)) throw new BadRequest('limit must be a positive integer.');
  return Math.min(n, MAX_LIMIT);
}

export interface NamespaceListQuery {
  limit: number;
  marker?: string;
  sortKey: NamespaceSortKey;
  sortDir: SortDir;
  visibility?: NamespaceVisibility;
  resourceTypes?: string[];
}

export function parseNamespaceListQuery(q: Query): NamespaceListQuery {
  const out: NamespaceListQuery = {
    limit: one(q, 'limit') === undefined ? DEFAULT_LIMIT : limit(one(q, 'limit')!),
    sortKey: sortKey(q, NAMESPACE_SORT_KEYS),
    sortDir: sortDir(q),
  };
  const marker = one(q, 'marker');
  if (marker !== undefined) out.marker = marker;
  const visibility = one(q, 'visibility');
  if (visibility) {
    if (visibility !== 'public' && visibility !== 'private') throw new BadRequest(`Invalid visibility value: ${visibility}. Use public or private.`);
    out.visibility = visibility;
  }
  const types = one(q, 'resource_types');
  if (types !== undefined) out.resourceTypes = types.split(',').map((t) => t.trim()).filter((t) => t !== '');
  return out;
}

export interface TagListQuery {
  limit?: number;
  marker?: string;
  sortKey: TagSortKey;
  sortDir: SortDir;
}

export function parseTagListQuery(q: Query): TagListQuery {
  const out: TagListQuery = { sortKey: sortKey(q, TAG_SORT_KEYS), sortDir: sortDir(q) };
  const l = one(q, 'limit');
  if (l) out.limit = limit(l);
  const marker = one(q, 'marker');
  if (marker) out.marker = marker;
  return out;
}

/** Glance checks an object list's paging parameters but lists every object of the namespace. */
export function checkObjectListQuery(q: Query): void {
  sortDir(q);
  const l = one(q, 'limit');
  if (l !== undefined) limit(l, true);
  const v = one(q, 'visibility');
  if (v && !['public', 'private', 'shared'].includes(v)) throw new BadRequest(`Invalid visibility value: ${v}.`);
}
