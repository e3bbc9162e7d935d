import type { Readable } from 'node:stream';
import { InvalidObjectKey, StoreError, StoreReadOnly, StoreUnavailable, isPlainKey, passesThrough } from './errors.js';
import type { ByteRange, PartialObjects, PutOptions, PutResult, Store, StoreDriver, StoreInfo } from './store.js';

/**
 * The wrapper every driver sits behind (the registry builds no other kind of
 * store), as distribution's storage/driver/base does for its drivers. It
 * enforces, once for every driver:
 *
 * - read-only: put, delete, adopt and removeTemporary are refused with
 *   StoreReadOnly before the driver is called (put destroys its source);
 * - keys: a key that is not a plain name is refused with InvalidObjectKey;
 * - error typing: whatever the driver throws that is not a StoreError becomes
 *   StoreUnavailable naming the store, the driver's message in `details`. The
 *   error the caller's own source or abort signal carried (the size cap, the
 *   quota meter, a writer's abort reason: domain errors) passes unchanged.
 *
 * It adds no work per chunk: the source goes to the driver as it is.
 * `open()` and `probe()` are forwarded as they are: their plain errors mean
 * "cannot work as configured" and "why the health check fails".
 */
export class GuardedStore implements Store {
  readonly info: StoreInfo;

  constructor(readonly driver: StoreDriver) {
    this.info = driver.info;
  }

  assertWritable(): void {
    if (this.info.readOnly) throw new StoreReadOnly(this.info.id);
  }

  async put(key: string, source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    try {
      this.assertWritable();
      this.assertKey(key);
    } catch (err) {
      source.destroy();
      throw err;
    }
    try {
      return await this.driver.put(key, source, opts);
    } catch (err) {
      if (opts.signal?.aborted && err === opts.signal.reason) throw err;
      throw this.typed(err);
    }
  }

  async get(location: string, range?: ByteRange): Promise<Readable> {
    try {
      return await this.driver.get(location, range);
    } catch (err) {
      throw this.typed(err);
    }
  }

  async delete(location: string): Promise<void> {
    this.assertWritable();
    try {
      await this.driver.delete(location);
    } catch (err) {
      throw this.typed(err);
    }
  }

  async exists(location: string): Promise<boolean> {
    try {
      return await this.driver.exists(location);
    } catch (err) {
      throw this.typed(err);
    }
  }

  owns(location: string): boolean {
    return this.driver.owns?.(location) ?? false;
  }

  get size(): ((location: string) => Promise<number>) | undefined {
    const size = this.driver.size;
    if (!size) return undefined;
    return async (location) => {
      try {
        return await size.call(this.driver, location);
      } catch (err) {
        throw this.typed(err);
      }
    };
  }

  async *list(): AsyncIterable<string> {
    try {
      yield* this.driver.list();
    } catch (err) {
      throw this.typed(err);
    }
  }

  async removeTemporary(key?: string): Promise<number> {
    this.assertWritable();
    if (key !== undefined) this.assertKey(key);
    try {
      return await this.driver.removeTemporary(key);
    } catch (err) {
      throw this.typed(err);
    }
  }

  /** The driver's partial objects behind the same rules as put: read-only, plain keys, typed errors. */
  get partial(): PartialObjects | undefined {
    const p = this.driver.partial;
    if (!p) return undefined;
    const guarded = async <T>(keys: string[], work: () => Promise<T>, source?: Readable, signal?: AbortSignal): Promise<T> => {
      try {
        this.assertWritable();
        for (const k of keys) this.assertKey(k);
      } catch (err) {
        source?.destroy();
        throw err;
      }
      try {
        return await work();
      } catch (err) {
        if (signal?.aborted && err === signal.reason) throw err;
        throw this.typed(err);
      }
    };
    return {
      appendPartial: (key, offset, source, opts = {}) => guarded([key], () => p.appendPartial(key, offset, source, opts), source, opts.signal),
      readPartial: (key, end) => guarded([key], () => p.readPartial(key, end)),
      completePartial: (key, finalKey) => guarded([key, finalKey], () => p.completePartial(key, finalKey)),
      removePartial: (key) => guarded([key], () => p.removePartial(key)),
    };
  }

  /** Adoption needs a writable store whose driver adopts, and two drivers on the same medium. */
  canAdopt(other: Store): boolean {
    if (this.info.readOnly || !this.driver.adopt || !this.driver.medium) return false;
    const mine = this.driver.medium();
    return mine !== undefined && mine === other.driver.medium?.();
  }

  async adopt(other: Store, location: string, key: string): Promise<PutResult> {
    this.assertWritable();
    this.assertKey(key);
    if (!this.canAdopt(other)) {
      throw new StoreError('invalid-key', this.info.id, new InvalidObjectKey(key).message, `store "${this.info.id}" cannot adopt from store "${other.info.id}"`);
    }
    try {
      return await this.driver.adopt!(other.driver, location, key);
    } catch (err) {
      throw this.typed(err);
    }
  }

  async open(): Promise<void> {
    await this.driver.open?.();
  }

  get probe(): (() => Promise<void>) | undefined {
    return this.driver.probe && (() => this.driver.probe!());
  }

  async close(): Promise<void> {
    await this.driver.close?.();
  }

  private assertKey(key: string): void {
    if (!isPlainKey(key)) throw new InvalidObjectKey(key, this.info.id);
  }

  private typed(err: unknown): Error {
    if (passesThrough(err)) return err;
    return new StoreUnavailable(this.info.id, (err as Error)?.message ?? String(err));
  }
}

/** Every store the registry hands out: the driver behind the wrapper. */
export function guard(driver: StoreDriver): Store {
  return new GuardedStore(driver);
}
