import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { NotFound } from '../domain/errors.js';
import { resource } from './routes.js';

type TagParams = { Params: { id: string; tag: string } };

/** `/tags/` with no tag names no resource, as in Glance's router. */
function tagOf(request: FastifyRequest<TagParams>): string {
  if (request.params.tag === '') throw new NotFound(`The resource could not be found: ${request.method} ${request.url.split('?')[0]} names no tag.`);
  return request.params.tag;
}

export function registerTags(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/images/:id/tags/:tag', {
    PUT: async (request: FastifyRequest<TagParams>, reply) => {
      await rt.imageService.addTag(request.params.id, tagOf(request), request.ctx);
      return reply.code(204).send();
    },
    DELETE: async (request: FastifyRequest<TagParams>, reply) => {
      await rt.imageService.removeTag(request.params.id, tagOf(request), request.ctx);
      return reply.code(204).send();
    },
  });
}
