import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { ObjectNotFound, StoreFull } from './errors.js';
import type { ByteRange, PutOptions, PutResult, StoreDriver, StoreInfo } from './store.js';

/**
 * Objects held in this process's memory: a driver for tests and trials, NOT
 * for production (everything is lost when the process stops, and a put keeps
 * the whole object in memory). It exists to prove the Store contract is
 * driver-neutral: the conformance suite runs on it through the same wrapper
 * as the filesystem and S3 drivers.
 *
 * Locations are `memory://<store id>/<key>`. A put collects copies of the
 * chunks under a temporary name and moves them under the key only once the
 * source ended: an object is visible whole or not at all. `capacityBytes`
 * bounds what the store holds (StoreFull beyond it).
 */
export class MemoryStore implements StoreDriver {
  readonly info: StoreInfo;
  private readonly objects = new Map<string, Buffer[]>();
  /** temporary objects by key: writes under way, or left by a writer that died */
  readonly temporaries = new Map<string, Set<string>>();
  private used = 0;
  /** set by tests: every call fails with a plain Error, as an unreachable backend would */
  broken: string | undefined;

  private readonly capacity: number;

  constructor(opts: { id: string; description: string; readOnly: boolean; capacityBytes?: number }) {
    this.capacity = opts.capacityBytes ?? Infinity;
    this.info = { id: opts.id, type: 'memory', description: opts.description, readOnly: opts.readOnly, properties: { capacity: opts.capacityBytes ?? null } };
  }

  async put(key: string, source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const tmp = randomUUID();
    let size = 0;
    const chunks: Buffer[] = [];
    const temps = this.temporaries.get(key) ?? new Set<string>();
    this.temporaries.set(key, temps);
    temps.add(tmp);
    try {
      this.check();
      opts.signal?.throwIfAborted();
      const consume = (async () => {
        for await (const chunk of source) {
          const b = Buffer.from(chunk as Buffer); // a copy: the source may reuse its buffers
          if (this.used + size + b.length > this.capacity) throw new StoreFull(this.info.id, `the memory store holds at most ${this.capacity} bytes`);
          chunks.push(b);
          size += b.length;
        }
      })();
      // An abort settles the put at once, even while the source is stuck waiting for its producer.
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(opts.signal!.reason);
        opts.signal?.addEventListener('abort', onAbort, { once: true });
      });
      consume.catch(() => {});
      try {
        await Promise.race([consume, aborted]);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort!);
      }
      this.check();
    } catch (err) {
      if (!source.destroyed) source.destroy();
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw err;
    } finally {
      temps.delete(tmp);
      if (!temps.size) this.temporaries.delete(key);
    }
    this.used -= length(this.objects.get(key));
    this.objects.set(key, chunks);
    this.used += size;
    return { location: this.locationOf(key), size };
  }

  async get(location: string, range?: ByteRange): Promise<Readable> {
    this.check();
    const chunks = this.objects.get(this.keyOf(location));
    if (!chunks) throw new ObjectNotFound(location, this.info.id);
    const start = range?.start ?? 0;
    const end = range ? range.end : length(chunks) - 1;
    return Readable.from(slices(chunks, start, end), { objectMode: false });
  }

  async delete(location: string): Promise<void> {
    this.check();
    const key = this.keyOf(location);
    this.used -= length(this.objects.get(key));
    this.objects.delete(key);
  }

  async exists(location: string): Promise<boolean> {
    this.check();
    try {
      return this.objects.has(this.keyOf(location));
    } catch (err) {
      if (err instanceof ObjectNotFound) return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<string> {
    this.check();
    for (const key of [...this.objects.keys()]) yield this.locationOf(key);
  }

  async removeTemporary(key?: string): Promise<number> {
    this.check();
    let removed = 0;
    for (const [k, temps] of [...this.temporaries]) {
      if (key !== undefined && k !== key) continue;
      removed += temps.size;
      this.temporaries.delete(k);
    }
    return removed;
  }

  /** Two memory stores of one process can hand objects over by reference. */
  medium(): string {
    return `memory:${process.pid}`;
  }

  async adopt(driver: StoreDriver, location: string, key: string): Promise<PutResult> {
    const other = driver as MemoryStore;
    this.check();
    const from = other.keyOf(location);
    const chunks = other.objects.get(from);
    if (!chunks) throw new ObjectNotFound(location, other.info.id);
    const size = length(chunks);
    other.objects.delete(from);
    other.used -= size;
    this.used -= length(this.objects.get(key));
    this.objects.set(key, chunks);
    this.used += size;
    return { location: this.locationOf(key), size };
  }

  async probe(): Promise<void> {
    this.check();
  }

  private check(): void {
    if (this.broken !== undefined) throw new Error(this.broken);
  }

  private locationOf(key: string): string {
    return `memory://${encodeURIComponent(this.info.id)}/${key}`;
  }

  private keyOf(location: string): string {
    const base = `memory://${encodeURIComponent(this.info.id)}/`;
    if (!location.startsWith(base)) throw new ObjectNotFound(location, this.info.id);
    return location.slice(base.length);
  }
}

function length(chunks: Buffer[] | undefined): number {
  let n = 0;
  for (const c of chunks ?? []) n += c.length;
  return n;
}

function* slices(chunks: Buffer[], start: number, end: number): Generator<Buffer> {
  let offset = 0;
  for (const c of chunks) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end + 1 - offset, c.length);
    if (from < to) yield c.subarray(from, to);
    offset += c.length;
    if (offset > end) return;
  }
}
