import type { RequestContext } from '../auth/context.js';
import type { Policy } from '../domain/policy.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { StoreInfo } from '../stores/store.js';

/** One configured store as GET /v2/info/stores describes it. */
export interface StoreListing {
  info: StoreInfo;
  isDefault: boolean;
}

/** What the store listing uses; built by the composition root (src/runtime.ts). */
export interface StoreInfoServiceDeps {
  stores: StoreRegistry;
  policy: Policy;
}

/** The configured stores as clients may see them (staging is never one of them). */
export class StoreInfoService {
  constructor(private readonly deps: StoreInfoServiceDeps) {}

  /** Every configured store, in configuration order. */
  list(): StoreListing[] {
    return this.deps.stores.stores.map((s) => ({ info: s.info, isDefault: s.info.id === this.deps.stores.defaultId }));
  }

  /** The same with their types and properties: for those the policy lets see them (admins). */
  detail(ctx: RequestContext): StoreListing[] {
    this.deps.policy.enforce('stores_info_detail', ctx, {}, 'Only administrators may see store details.');
    return this.list();
  }
}
