import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

type IdParams = { Params: { id: string } };

/**
 * Glance's cache management API (API 2.14, clearing 2.16), registered only
 * when the cache is enabled: with it off, every /v2/cache route is unknown
 * (404), as in a Glance without `image_cache_dir`.
 */
export function registerCache(app: FastifyInstance, rt: Runtime): void {
  const service = rt.cacheService;
  if (!service) return;
  resource(app, '/v2/cache', {
    GET: async (request) => {
      const s = service.state(request.ctx);
      return {
        cached_images: s.cachedImages.map((e) => ({ image_id: e.imageId, hits: e.hits, last_accessed: e.lastAccessed, last_modified: e.lastModified, size: e.size })),
        queued_images: s.queuedImages,
      };
    },
    DELETE: async (request, reply) => {
      const header = request.headers['x-image-cache-clear-target'];
      service.clear(Array.isArray(header) ? header.join(',') : header, request.ctx);
      return reply.code(204).send();
    },
  });
  resource(app, '/v2/cache/:id', {
    PUT: async (request: FastifyRequest<IdParams>, reply) => {
      await service.queue(request.params.id, request.ctx);
      return reply.code(202).send();
    },
    DELETE: async (request: FastifyRequest<IdParams>, reply) => {
      await service.remove(request.params.id, request.ctx);
      return reply.code(204).send();
    },
  });
}
