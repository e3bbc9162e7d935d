import type { RequestContext } from '../auth/context.js';
import type { Policy } from '../domain/policy.js';
import { BadRequest, NotFound } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { CachedImage, ImageCache } from '../cache/image-cache.js';
import { targetOf, type ImageAccess } from './image-access.js';

export interface CacheServiceDeps {
  access: ImageAccess;
  policy: Policy;
  cache: Pick<ImageCache, 'list' | 'queued' | 'queue' | 'remove' | 'dequeue' | 'clear' | 'clearQueue' | 'has' | 'isQueued'>;
}

export interface CacheState {
  cachedImages: CachedImage[];
  queuedImages: string[];
}

/** What `DELETE /v2/cache` clears, from its `x-image-cache-clear-target` header. */
export type ClearTarget = 'both' | 'cache' | 'queue';

/**
 * Glance's cache management API (2.14, 2.16) over this node's cache: the
 * rules of cached_images.py (which image lookups answer 404, which policy
 * each call checks, in which order), no HTTP.
 */
export class CacheService {
  constructor(private readonly deps: CacheServiceDeps) {}

  state(ctx: RequestContext): CacheState {
    this.deps.policy.enforce('cache_list', ctx, {}, 'You are not permitted to list the image cache.');
    return { cachedImages: this.deps.cache.list(), queuedImages: this.deps.cache.queued() };
  }

  /** Queues an active image for the prefetcher: 404 when the caller cannot see it, 400 when it is not active. */
  async queue(id: string, ctx: RequestContext): Promise<void> {
    const { image, membership } = await this.deps.access.getVisible(id, ctx);
    this.deps.policy.enforce('cache_image', ctx, targetOf(image, membership), 'You are not permitted to queue images for caching.');
    if (image.status !== 'active') throw new BadRequest(`Image ${id} is ${image.status}: only active images can be queued for caching.`);
    this.deps.cache.queue(id);
  }

  /** Removes an image from the cache and the queue: 404 only when the image is unknown and neither cached nor queued. */
  async remove(id: string, ctx: RequestContext): Promise<void> {
    let target = {};
    let image: Image | undefined;
    try {
      const found = await this.deps.access.getVisible(id, ctx);
      image = found.image;
      target = targetOf(found.image, found.membership);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      if (!this.deps.cache.has(id) && !this.deps.cache.isQueued(id)) throw new NotFound(`No image found with ID ${id} in the image cache or its queue.`);
    }
    this.deps.policy.enforce('cache_delete', ctx, target, 'You are not permitted to remove images from the image cache.');
    this.deps.cache.remove(image?.id ?? id);
    this.deps.cache.dequeue(image?.id ?? id);
  }

  /** Clears the cache, the queue, or both. */
  clear(target: string | undefined, ctx: RequestContext): void {
    this.deps.policy.enforce('cache_delete', ctx, {}, 'You are not permitted to clear the image cache.');
    const what = parseClearTarget(target);
    if (what !== 'queue') this.deps.cache.clear();
    if (what !== 'cache') this.deps.cache.clearQueue();
  }
}

function parseClearTarget(raw: string | undefined): ClearTarget {
  const t = (raw ?? '').trim().toLowerCase();
  if (t === '') return 'both';
  if (t === 'cache' || t === 'queue') return t;
  throw new BadRequest(`Invalid x-image-cache-clear-target header "${raw}": it must be "cache", "queue", or empty for both.`);
}
