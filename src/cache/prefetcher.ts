import type { Logger } from 'pino';
import type { Image } from '../domain/image.js';
import type { ImageCache, Opener } from './image-cache.js';

export interface PrefetcherOptions {
  cache: ImageCache;
  /** the image row, read without a caller (the prefetcher acts for the node) */
  getImage: (id: string) => Promise<Image | undefined>;
  /** how to read the image's object from the store holding it; undefined when no store here holds it */
  opener: (image: Image) => Opener | undefined;
  intervalMs: number;
  concurrency: number;
  log: Logger;
}

/** Failed attempts after which a queued image is dropped from the queue (the store keeps failing, the digests do not match). */
const MAX_ATTEMPTS = 3;
/** How often the sweep looks for cached images whose image was deleted (on this node or another). */
const SWEEP_MS = 60_000;

/**
 * Reads queued images (`PUT /v2/cache/{id}`) into the cache on a periodic
 * sweep: every `intervalMs` it takes the images queued at least `intervalMs`
 * ago, at most `concurrency` at once. An image stays queued until its entry
 * is complete; an image that is gone, not active or not cacheable leaves the
 * queue at once, one that keeps failing after MAX_ATTEMPTS. Once a minute
 * (and on demand) it also removes the entries of images deleted meanwhile,
 * which the node that served the delete may not be (the cache is per node).
 */
export class Prefetcher {
  private readonly running = new Map<string, Promise<void>>();
  private readonly attempts = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = Date.now();
  private sweeping: Promise<number> | undefined;
  private stopped = false;

  constructor(private readonly o: PrefetcherOptions) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.o.intervalMs);
    this.timer.unref();
  }

  /**
   * Stops the sweeps; resolves when the prefetches in flight have ended. Closing the cache
   * (ImageCache.close) is what stops their fills: call it meanwhile, or this waits for whole images.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.running.values(), this.sweeping]);
  }

  /** Prefetches in flight. */
  get inFlight(): number {
    return this.running.size;
  }

  /** One sweep: starts what may start now (the timer calls it; tests may too). */
  tick(at = Date.now()): void {
    if (this.stopped) return;
    for (const q of this.o.cache.queuedSince()) {
      if (this.running.size >= this.o.concurrency) break;
      if (this.running.has(q.imageId) || at - q.queuedAt * 1000 < this.o.intervalMs) continue;
      const run = this.prefetch(q.imageId).finally(() => this.running.delete(q.imageId));
      this.running.set(q.imageId, run);
    }
    if (at - this.lastSweep >= SWEEP_MS && !this.sweeping) {
      this.lastSweep = at;
      void this.sweep();
    }
  }

  /** Removes entries whose image is deleted or no longer has data to serve; returns how many. */
  sweep(): Promise<number> {
    return (this.sweeping ??= (async () => {
      let removed = 0;
      try {
        for (const id of this.o.cache.cachedIds()) {
          if (this.stopped) break;
          const image = await this.o.getImage(id);
          if (image && (image.status === 'active' || image.status === 'deactivated')) continue;
          if (this.o.cache.remove(id)) removed++;
        }
      } catch (err) {
        this.o.log.warn({ err }, 'image cache: the sweep of deleted images failed; it runs again later');
      } finally {
        this.sweeping = undefined;
      }
      if (removed) this.o.log.info({ removed }, 'image cache: entries of deleted images removed');
      return removed;
    })());
  }

  private async prefetch(id: string): Promise<void> {
    const { cache, log } = this.o;
    try {
      const image = await this.o.getImage(id);
      if (!image || image.status !== 'active') {
        log.warn({ image: id, status: image?.status ?? 'not found' }, 'image cache: a queued image is not active; not caching it');
        this.done(id);
        return;
      }
      const open = this.o.opener(image);
      const result = open ? await cache.prefetch(image, open) : 'uncacheable';
      if (result === 'cached') this.done(id);
      else if (result === 'uncacheable') {
        log.warn({ image: id }, 'image cache: a queued image cannot be cached (no checksum, no data here, or larger than the cache); not caching it');
        this.done(id);
      } else this.failed(id);
    } catch (err) {
      if (this.stopped) return;
      log.warn({ err, image: id }, 'image cache: prefetching an image failed');
      this.failed(id);
    }
  }

  private done(id: string): void {
    // Stopping: the cache may be closed; the queue keeps the image for the next start.
    if (this.stopped) return;
    this.attempts.delete(id);
    this.o.cache.dequeue(id);
  }

  private failed(id: string): void {
    if (this.stopped) return;
    const n = (this.attempts.get(id) ?? 0) + 1;
    if (n < MAX_ATTEMPTS) {
      this.attempts.set(id, n);
      return;
    }
    this.o.log.warn({ image: id, attempts: n }, 'image cache: giving up on a queued image');
    this.done(id);
  }
}
