import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

type IdParams = { Params: { id: string } };

/**
 * The location APIs of Glance 2024.1 (API 2.17). JSON-patch on `/locations`
 * (the older API) lives with the image routes; see docs/locations.md.
 */
export function registerLocations(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/images/:id/locations', {
    GET: async (request: FastifyRequest<IdParams>) => rt.locations.list(request.params.id, request.ctx),
    POST: async (request: FastifyRequest<IdParams>, reply) => {
      await rt.locations.addAsync(request.params.id, request.body, request.ctx);
      return reply.code(202).send();
    },
  });
}
