import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

/** DELETE /v2/stores/{store}/{image}: removes one store's copy of an image. */
export function registerStores(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/stores/:store/:image', {
    DELETE: async (request: FastifyRequest<{ Params: { store: string; image: string } }>, reply) => {
      await rt.importService.deleteFromStore(request.params.store, request.params.image, request.ctx);
      return reply.code(204).send();
    },
  });
}
