import type { StoreConfig } from '../config.js';
import { StoreUnavailable, UnknownStore } from './errors.js';
import { FilesystemStore } from './filesystem.js';
import { guard } from './guarded-store.js';
import { MemoryStore } from './memory.js';
import { HttpStore } from './http.js';
import type { Store, StoreDriver } from './store.js';

/**
 * The driver a store's configuration names, behind the wrapper every store
 * sits behind (guarded-store.ts). `decorate` sees the bare driver first (the
 * metrics' timing, when enabled).
 */
export async function createStore(cfg: StoreConfig, decorate: (d: StoreDriver) => StoreDriver = (d) => d): Promise<Store> {
  return guard(decorate(await createDriver(cfg)));
}

async function createDriver(cfg: StoreConfig): Promise<StoreDriver> {
  const common = { id: cfg.id, description: cfg.description, readOnly: cfg.readOnly };
  switch (cfg.type) {
    case 'filesystem':
      return new FilesystemStore({ ...common, path: cfg.path! });
    case 's3': {
      // The AWS SDK is loaded only when a store uses it: a filesystem-only node keeps ~4 MB of heap
      // and its code out of memory (docs/benchmarks.md#upload-cpu, the RSS targets).
      const { S3Store } = await import('./s3.js');
      return new S3Store(common, cfg.s3!);
    }
    case 'memory':
      return new MemoryStore(common);
    case 'http':
      return new HttpStore({ id: cfg.id, description: cfg.description }, cfg.http!);
    default:
      throw new Error(`store type ${cfg.type} is not available in this build`);
  }
}

/** The configured stores by id, plus the internal staging store. */
export class StoreRegistry {
  readonly byId = new Map<string, Store>();

  constructor(
    readonly stores: Store[],
    readonly defaultId: string,
    readonly staging: Store,
  ) {
    for (const s of stores) this.byId.set(s.info.id, s);
  }

  get default(): Store {
    return this.byId.get(this.defaultId)!;
  }

  /** The store of an id (the default one for none); UnknownStore when no store has it. */
  named(id: string | undefined): Store {
    if (id === undefined || id === '') return this.default;
    const s = this.byId.get(id);
    if (!s) throw new UnknownStore(id);
    return s;
  }

  /** The store holding a location, staging included. */
  holding(storeId: string): Store | undefined {
    return storeId === this.staging.info.id ? this.staging : this.byId.get(storeId);
  }

  /** The configured store a location URL names (the locations API), staging never. */
  owning(location: string): Store | undefined {
    return this.stores.find((s) => s.owns?.(location));
  }

  /**
   * Removes what a writer of `imageId` that is gone left behind: its
   * temporaries, and complete objects naming it that `owned` does not list,
   * in every writable store, staging included (a read-only store is never
   * written, so nothing of Imago's is there). A store that fails is reported
   * to `failed` and the others are still swept.
   */
  async removeLeftovers(imageId: string, owned: Set<string>, failed: (store: Store, err: unknown) => void): Promise<void> {
    for (const store of [...this.stores, this.staging]) {
      if (store.info.readOnly) continue;
      try {
        await store.removeTemporary(imageId);
        for await (const url of store.list()) if (url.includes(imageId) && !owned.has(url)) await store.delete(url);
      } catch (err) {
        failed(store, err);
      }
    }
  }

  ids(): string[] {
    return this.stores.map((s) => s.info.id);
  }

  /**
   * Lets every store check its backend before the server listens: a store
   * that cannot work as configured stops the start; one that is only
   * unreachable now is reported to `warn` and answers 503 until it is back.
   */
  async open(warn: (storeId: string, err: Error) => void): Promise<void> {
    await Promise.all(
      [...this.stores, this.staging].map((s) =>
        s.open?.().catch((err: Error) => {
          if (err instanceof StoreUnavailable) warn(s.info.id, err);
          else throw err;
        }),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.stores, this.staging].map((s) => s.close?.()));
  }
}
