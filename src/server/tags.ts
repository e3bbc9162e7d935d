import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

type TagParams = { Params: { id: string; tag: string } };

export function registerTags(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/images/:id/tags/:tag', {
    PUT: async (request: FastifyRequest<TagParams>, reply) => {
      await rt.imageService.addTag(request.params.id, request.params.tag, request.ctx);
      return reply.code(204).send();
    },
    DELETE: async (request: FastifyRequest<TagParams>, reply) => {
      await rt.imageService.removeTag(request.params.id, request.params.tag, request.ctx);
      return reply.code(204).send();
    },
  });
}
