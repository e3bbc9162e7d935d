import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { representImage, type Image } from '../domain/image.js';
import { patchDraft } from '../domain/patch.js';
import { displayTime } from '../db/database.js';
import { resource } from './routes.js';

type IdParams = { Params: { id: string } };

export function imageJson(image: Image): Record<string, unknown> {
  return representImage(image, (iso) => displayTime(iso)!);
}

/** `next` keeps every query parameter but the marker, as Glance does. */
function nextLink(request: FastifyRequest, lastId: string): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(request.query as Record<string, string | string[]>)) {
    if (k === 'marker') continue;
    for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
  }
  params.append('marker', lastId);
  return `/v2/images?${params.toString()}`;
}

export function registerImages(app: FastifyInstance, rt: Runtime): void {
  const svc = rt.imageService;

  resource(app, '/v2/images', {
    GET: async (request) => {
      const query = request.query as Record<string, string | string[]>;
      const images = await svc.list(query, request.ctx);
      const limit = query.limit === undefined ? 25 : Math.min(Number(query.limit), 1000);
      const body: Record<string, unknown> = { images: images.map(imageJson), first: '/v2/images', schema: '/v2/schemas/images' };
      if (images.length > 0 && images.length === limit) body.next = nextLink(request, images[images.length - 1].id);
      return body;
    },
    POST: async (request, reply) => {
      const image = await svc.create(request.body, request.ctx);
      reply.code(201).header('location', `/v2/images/${image.id}`);
      reply.header('openstack-image-import-methods', rt.config.import.methods.join(','));
      reply.header('openstack-image-store-ids', rt.stores.ids().join(','));
      return imageJson(image);
    },
  });

  resource(app, '/v2/images/:id', {
    GET: async (request: FastifyRequest<IdParams>) => imageJson(await svc.show(request.params.id, request.ctx)),
    PATCH: async (request: FastifyRequest<IdParams>) => {
      const draft = patchDraft(request.headers['content-type']);
      return imageJson(await svc.update(request.params.id, request.body, draft, request.ctx));
    },
    DELETE: async (request: FastifyRequest<IdParams>, reply) => {
      await svc.delete(request.params.id, request.ctx);
      return reply.code(204).send();
    },
  });

  resource(app, '/v2/images/:id/actions/deactivate', {
    POST: async (request: FastifyRequest<IdParams>, reply) => {
      await svc.deactivate(request.params.id, request.ctx);
      return reply.code(204).send();
    },
  });
  resource(app, '/v2/images/:id/actions/reactivate', {
    POST: async (request: FastifyRequest<IdParams>, reply) => {
      await svc.reactivate(request.params.id, request.ctx);
      return reply.code(204).send();
    },
  });
}
