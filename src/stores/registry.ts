import type { StoreConfig } from '../config.js';
import { BadRequest, Conflict, ServiceUnavailable } from '../domain/errors.js';
import { FilesystemStore } from './filesystem.js';
import { S3Store } from './s3.js';
import { HttpStore } from './http.js';
import type { Store } from './store.js';

export function createStore(cfg: StoreConfig): Store {
  switch (cfg.type) {
    case 'filesystem':
      return new FilesystemStore({ id: cfg.id, description: cfg.description, readOnly: cfg.readOnly, path: cfg.path! });
    case 's3':
      return new S3Store({ id: cfg.id, description: cfg.description, readOnly: cfg.readOnly }, cfg.s3!);
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

  /** For X-Image-Meta-Store: an unknown id is the client's mistake (400). */
  forUpload(id: string | undefined): Store {
    if (id === undefined || id === '') return this.default;
    const s = this.byId.get(id);
    if (!s) throw new BadRequest(`Store for identifier ${id} not found`);
    return s;
  }

  /** For import targets: Glance answers 409 for an unknown store. */
  forImport(id: string): Store {
    const s = this.byId.get(id);
    if (!s) throw new Conflict(`Store for identifier ${id} not found`);
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
          if (err instanceof ServiceUnavailable) warn(s.info.id, err);
          else throw err;
        }),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.stores, this.staging].map((s) => s.close?.()));
  }
}
