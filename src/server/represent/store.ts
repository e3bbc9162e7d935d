import type { StoreListing } from '../../services/store-info.js';

/** GET /v2/info/stores[/detail]. As Glance: description only when set; "default" and "read-only" are the string "true" when they apply. */
export function storeJson(stores: StoreListing[], detail: boolean): Record<string, unknown>[] {
  return stores.map(({ info, isDefault }) => {
    const out: Record<string, unknown> = { id: info.id };
    if (info.description) out.description = info.description;
    if (isDefault) out.default = 'true';
    if (info.readOnly) out['read-only'] = 'true';
    if (detail) Object.assign(out, { type: info.type, properties: info.properties });
    return out;
  });
}
