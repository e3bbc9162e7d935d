import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Image } from '../domain/image.js';
import type { CacheEntry, CacheIndex } from '../db/cache-index.js';
import type { HashPool } from '../stores/hash-pool.js';
import type { ByteRange } from '../stores/store.js';
import { FileRangeReader, isRecycling } from '../stores/file-range-reader.js';
import { FollowReader, type FillProgress } from './follow-reader.js';
import { syncDir } from '../stores/filesystem.js';

/** Opens the image's object in its store: the whole object, or `range` of it. */
export type Opener = (range?: ByteRange) => Promise<Readable>;

/** A cached image as `GET /v2/cache` lists it. */
export interface CachedImage {
  imageId: string;
  hits: number;
  lastAccessed: number;
  lastModified: number;
  size: number;
}

/** What a prefetch came to: cached (now or before), not cacheable (no digests, too large), or failed (store, digests). */
export type PrefetchResult = 'cached' | 'uncacheable' | 'failed';

export interface ImageCacheOptions {
  dir: string;
  maxBytes: number;
  index: CacheIndex;
  hashPool: HashPool;
  log: Logger;
}

const TMP_DIR = '.tmp';
const READ_CHUNK = 1024 * 1024;
const now = () => Date.now() / 1000;

/** Bytes of an image being copied from its store into the cache; readers follow it (FollowReader). */
class Fill implements FillProgress {
  written = 0;
  failure: Error | undefined;
  handle: FileHandle | undefined;
  /** readers following this fill; when none is left and the entry is no longer wanted, the fill stops */
  followers = 0;
  /** the entry is no longer wanted (image deleted, cache cleared): serve the followers, then drop the file */
  discard = false;
  readonly cancel = new AbortController();
  /** the store answered and the file exists: readers may start */
  readonly ready: Promise<void>;
  /** true when the entry was recorded */
  done!: Promise<boolean>;
  resolveReady!: () => void;
  rejectReady!: (err: Error) => void;
  private waiters: Array<() => void> = [];
  /** holders of `handle`: the fill itself and each follower; the last one closes it */
  private holders = 1;

  constructor(
    readonly image: Image & { size: number; checksum: string },
    readonly file: string,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
  }

  onProgress(cb: () => void): void {
    this.waiters.push(cb);
  }

  progress(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const cb of w) cb();
  }

  hold(): void {
    this.holders++;
  }

  letGo(): void {
    if (--this.holders === 0) void this.handle?.close().catch(() => {});
  }
}

/**
 * A node's read-through cache of image data (docs/cache.md), in front of any
 * store. The data service asks it for an image's bytes where it would have
 * opened the store, so only requests the image row has authorized get here.
 *
 * - A hit reads the cache file; the store is not touched.
 * - A miss (a whole-image GET) starts a fill: the store's bytes are written to
 *   `.tmp/<id>.<uuid>` and hashed on the worker pool (invariant 9) as they
 *   arrive, and the request, like every concurrent request for the same image,
 *   reads the file as it grows. The store is read once, whatever the number of
 *   readers. When the last byte is in, the digests are compared with the
 *   image's, the file is synced and renamed to `<id>.<uuid>`, and only then is
 *   the entry recorded in the index: a partial or unverified file is never an
 *   entry.
 * - A Range request that misses is served from the store and starts no fill.
 * - Images without an md5, of size 0, or larger than the cache are not cached.
 *   Room is made by evicting the least recently used entries; when the fills
 *   in flight hold the room, the request is served from the store uncached.
 */
export class ImageCache {
  private readonly fills = new Map<string, Fill>();
  /** bytes set aside for fills in flight */
  private reserved = 0;
  private closed = false;

  private constructor(private readonly o: ImageCacheOptions) {}

  /** Opens the cache directory: temporary files of an earlier process are removed, and index and files are made to agree. */
  static async open(o: ImageCacheOptions): Promise<ImageCache> {
    const cache = new ImageCache(o);
    await mkdir(path.join(o.dir, TMP_DIR), { recursive: true });
    await cache.reconcile();
    return cache;
  }

  private async reconcile(): Promise<void> {
    const { dir, index, log } = this.o;
    await Promise.all((await readdir(path.join(dir, TMP_DIR))).map((n) => rm(path.join(dir, TMP_DIR, n), { force: true })));
    const files = new Set((await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('cache.sqlite')).map((e) => e.name));
    let dropped = 0;
    for (const e of index.entries()) {
      if (files.delete(e.file)) continue;
      index.remove(e.imageId);
      dropped++;
    }
    // Files no entry names: a crash between rename and record, or between unrecord and unlink.
    await Promise.all([...files].map((n) => rm(path.join(dir, n), { force: true })));
    if (dropped || files.size) log.warn({ dropped, removed: files.size }, 'image cache: entries without files forgotten and files without entries removed');
  }

  /**
   * The image's bytes, or `range` of them, for a request already authorized:
   * from the cache when the image is in it, otherwise as described above.
   */
  async read(image: Image, range: ByteRange | undefined, openStore: Opener): Promise<Readable> {
    const hit = await this.readEntry(image, range);
    if (hit) return hit;
    if (range) return openStore(range);
    // No await from here until the fill is registered: concurrent misses must find it.
    const fill = this.fills.get(image.id) ?? this.startFill(image, openStore);
    if (!fill) return openStore();
    return this.follow(fill);
  }

  /** Reads a queued image into the cache (the prefetcher); resolves when its entry is recorded, or why not. */
  async prefetch(image: Image, openStore: Opener): Promise<PrefetchResult> {
    if (this.usableEntry(image)) return 'cached';
    if (!this.cacheable(image)) return 'uncacheable';
    // No fill: the fills in flight hold the room for now.
    const fill = this.fills.get(image.id) ?? this.startFill(image, openStore);
    if (!fill) return 'failed';
    return (await fill.done) ? 'cached' : 'failed';
  }

  /** Whether the image is cached (complete) or being cached. */
  has(imageId: string): boolean {
    return !!this.o.index.get(imageId) || this.fills.has(imageId);
  }

  isCached(imageId: string): boolean {
    return !!this.o.index.get(imageId);
  }

  list(): CachedImage[] {
    return this.o.index.entries().map((e) => ({ imageId: e.imageId, hits: e.hits, lastAccessed: e.lastAccessed, lastModified: e.lastModified, size: e.size }));
  }

  /** Removes the image's entry and stops keeping a fill in flight (its readers still get their bytes). True when there was either. */
  remove(imageId: string): boolean {
    const fill = this.fills.get(imageId);
    if (fill) this.discardFill(fill);
    return this.dropEntry(imageId) || !!fill;
  }

  /** Removes every entry (and keeps no fill in flight); returns how many entries went. */
  clear(): number {
    for (const fill of this.fills.values()) this.discardFill(fill);
    let n = 0;
    for (const e of this.o.index.entries()) if (this.dropEntry(e.imageId)) n++;
    return n;
  }

  // The prefetcher's queue: ids of images to read into the cache, kept in the index so that a restart keeps them.

  /** Queues an image for the prefetcher, unless it is cached already; true when queued now. */
  queue(imageId: string): boolean {
    if (this.isCached(imageId)) return false;
    return this.o.index.queue(imageId, now());
  }

  /** Queued image ids, oldest first. */
  queued(): string[] {
    return this.o.index.queued().map((q) => q.imageId);
  }

  queuedSince(): Array<{ imageId: string; queuedAt: number }> {
    return this.o.index.queued();
  }

  isQueued(imageId: string): boolean {
    return this.o.index.isQueued(imageId);
  }

  dequeue(imageId: string): boolean {
    return this.o.index.dequeue(imageId);
  }

  clearQueue(): number {
    return this.o.index.clearQueue();
  }

  /** Ids of the cached images (complete entries), for the sweep of deleted images. */
  cachedIds(): string[] {
    return this.o.index.entries().map((e) => e.imageId);
  }

  /** Fills in flight (for tests and metrics). */
  get filling(): number {
    return this.fills.size;
  }

  /** Stops every fill (their readers fail), waits for them, and closes the index. */
  async close(): Promise<void> {
    this.closed = true;
    const fills = [...this.fills.values()];
    for (const f of fills) f.cancel.abort(new Error('the server is shutting down'));
    await Promise.all(fills.map((f) => f.done.catch(() => {})));
    this.o.index.close();
  }

  /** The entry, if it holds exactly this image's bytes (same size and md5); a stale one is dropped. */
  private usableEntry(image: Image): CacheEntry | undefined {
    const e = this.o.index.get(image.id);
    if (!e) return undefined;
    if (e.size === image.size && e.md5 === image.checksum) return e;
    this.dropEntry(image.id);
    return undefined;
  }

  private async readEntry(image: Image, range: ByteRange | undefined): Promise<Readable | undefined> {
    const e = this.usableEntry(image);
    if (!e) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(path.join(this.o.dir, e.file), 'r');
    } catch (err) {
      // Evicted or cleared meanwhile (the index no longer names it), or removed behind our back.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log.warn({ err, image: image.id }, 'image cache: cannot open a cached image; reading the store');
      if (this.o.index.get(image.id)?.file === e.file) this.dropEntry(image.id);
      return undefined;
    }
    this.o.index.hit(image.id, now());
    return new FileRangeReader(handle, range?.start ?? 0, range ? range.end : e.size - 1, READ_CHUNK);
  }

  /** Whether the image may ever be cached: it has an md5 to check the bytes against, and it fits. */
  private cacheable(image: Image): image is Fill['image'] {
    return !!image.checksum && !!image.size && image.size <= this.o.maxBytes;
  }

  /** Registers a fill and starts it; undefined when the image is not to be cached (or there is no room now). */
  private startFill(image: Image, openStore: Opener): Fill | undefined {
    if (this.closed || !this.cacheable(image)) return undefined;
    if (!this.makeRoom(image.size)) return undefined;
    const fill = new Fill(image, `${image.id}.${randomUUID()}`);
    this.fills.set(image.id, fill);
    this.reserved += image.size;
    fill.done = this.runFill(fill, openStore).finally(() => {
      this.fills.delete(image.id);
      this.reserved -= image.size;
    });
    return fill;
  }

  /** Evicts least recently used entries until `size` more bytes fit beside the entries and the fills in flight. */
  private makeRoom(size: number): boolean {
    const max = this.o.maxBytes;
    let used = this.o.index.totalSize() + this.reserved;
    while (used + size > max) {
      const lru = this.o.index.leastRecentlyUsed();
      if (!lru) return false;
      this.dropEntry(lru.imageId);
      used -= lru.size;
      this.o.log.info({ image: lru.imageId, size: lru.size }, 'image cache: evicted the least recently used image');
    }
    return true;
  }

  /** Forgets the entry, then removes its file (a reader that has it open keeps reading). */
  private dropEntry(imageId: string): boolean {
    const e = this.o.index.get(imageId);
    if (!e || !this.o.index.remove(imageId)) return false;
    void unlink(path.join(this.o.dir, e.file)).catch((err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log.warn({ err, file: e.file }, 'image cache: cannot remove a cache file');
    });
    return true;
  }

  private discardFill(fill: Fill): void {
    fill.discard = true;
    if (fill.followers === 0) fill.cancel.abort(new Error('the cache entry was removed while it was filling'));
  }

  private async follow(fill: Fill): Promise<Readable> {
    fill.followers++;
    try {
      await fill.ready;
    } catch (err) {
      fill.followers--;
      throw err;
    }
    fill.hold();
    return new FollowReader(fill, fill.handle!, fill.image.size, READ_CHUNK, () => {
      fill.letGo();
      if (--fill.followers === 0 && fill.discard) fill.cancel.abort(new Error('the cache entry was removed while it was filling'));
    });
  }

  private async runFill(fill: Fill, openStore: Opener): Promise<boolean> {
    const { dir, index, hashPool, log } = this.o;
    const { image } = fill;
    const tmp = path.join(dir, TMP_DIR, fill.file);
    const signal = fill.cancel.signal;
    let source: Readable;
    try {
      source = await openStore();
    } catch (err) {
      fill.failure = err as Error;
      fill.rejectReady(err as Error);
      fill.letGo();
      return false;
    }
    try {
      fill.handle = await open(tmp, 'wx+', 0o600);
    } catch (err) {
      // The cache's disk failing is no reason to fail the download: its readers are told, the next request reads the store.
      source.destroy();
      log.warn({ err, image: image.id }, 'image cache: cannot create a cache file');
      fill.failure = err as Error;
      fill.rejectReady(err as Error);
      fill.letGo();
      return false;
    }
    fill.resolveReady();
    const hash = hashPool.open();
    let hashed = false;
    // A slow store must not hold up a cancel (shutdown, the entry removed with nobody reading).
    const stop = () => source.destroy(signal.reason as Error);
    signal.addEventListener('abort', stop, { once: true });
    if (signal.aborted) stop();
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (signal.aborted) throw signal.reason;
        if (fill.written + chunk.length > image.size) throw new Error(`the store returned more than the image's ${image.size} bytes`);
        const waiting = hash.tryUpdate(chunk);
        await writeAll(fill.handle, chunk, fill.written);
        if (waiting) await waiting;
        fill.written += chunk.length;
        fill.progress();
        if (isRecycling(source)) source.recycle(chunk);
      }
      if (signal.aborted) throw signal.reason;
      if (fill.written !== image.size) throw new Error(`the store returned ${fill.written} of the image's ${image.size} bytes`);
      hashed = true;
      const digests = await hash.digest();
      if (digests.md5 !== image.checksum || (image.osHashAlgo === 'sha512' && image.osHashValue && digests.sha512 !== image.osHashValue)) {
        throw new Error(`the bytes read from the store do not match the image's ${digests.md5 !== image.checksum ? 'checksum' : 'os_hash_value'}`);
      }
      // Durable before it is an entry: after a power loss an entry's file is whole.
      await fill.handle.datasync();
      if (fill.discard || signal.aborted) return finish(false);
      const final = path.join(dir, fill.file);
      await rename(tmp, final);
      await syncDir(dir);
      if (fill.discard || signal.aborted) {
        await unlink(final).catch(() => {});
        return finish(false);
      }
      index.add({ imageId: image.id, file: fill.file, size: image.size, md5: digests.md5, sha512: digests.sha512 }, now());
      log.info({ image: image.id, size: image.size }, 'image cache: image cached');
      return finish(true);
    } catch (err) {
      if (!hashed) hash.abort();
      source.destroy();
      if (!signal.aborted) log.warn({ err, image: image.id }, 'image cache: the image could not be cached');
      fill.failure = err as Error;
      fill.progress();
      return finish(false);
    }

    async function finish(recorded: boolean): Promise<boolean> {
      signal.removeEventListener('abort', stop);
      if (!recorded) await unlink(tmp).catch(() => {});
      fill.progress();
      fill.letGo();
      return recorded;
    }
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}
