import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { imageJson } from './represent/image.js';
import type { Image } from '../domain/image.js';
import { patchDraft } from '../domain/patch.js';
import type { Query } from '../domain/list-query.js';
import { resource } from './routes.js';
import { baseUrl } from './versions.js';
import type { RequestContext } from '../auth/context.js';
import { targetOf } from '../services/image-access.js';

type IdParams = { Params: { id: string } };

/** The request's query string without `marker` (every repeated value kept), form-encoded. */
function queryWithout(query: Query, drop: string): URLSearchParams {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (k === drop || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
  }
  return params;
}

/** `first` and `next` keep every query parameter but the marker, as Glance's do. */
export function pageLinks(query: Query, lastId: string | undefined): { first: string; next?: string } {
  const params = queryWithout(query, 'marker');
  const rest = params.toString();
  const links: { first: string; next?: string } = { first: rest ? `/v2/images?${rest}` : '/v2/images' };
  if (lastId !== undefined) {
    params.append('marker', lastId);
    links.next = `/v2/images?${params.toString()}`;
  }
  return links;
}

export function registerImages(app: FastifyInstance, rt: Runtime): void {
  const svc = rt.imageService;
  const json = (image: Image, ctx: RequestContext) => imageJson(image, rt.locations.view(image, ctx, targetOf(image)));

  resource(app, '/v2/images', {
    GET: async (request) => {
      const query = request.query as Query;
      const { images, more } = await svc.list(query, request.ctx);
      const { first, next } = pageLinks(query, more ? images[images.length - 1].id : undefined);
      const body: Record<string, unknown> = { images: images.map((i) => json(i, request.ctx)), first, schema: '/v2/schemas/images' };
      if (next) body.next = next;
      return body;
    },
    POST: async (request, reply) => {
      const image = await svc.create(request.body, request.ctx);
      // Absolute, as Glance's Location is (webob resolves its relative one against the request).
      reply.code(201).header('location', `${baseUrl(rt, request).replace(/\/+$/, '')}/v2/images/${image.id}`);
      reply.header('openstack-image-import-methods', rt.config.import.methods.join(','));
      reply.header('openstack-image-store-ids', rt.stores.ids().join(','));
      return json(image, request.ctx);
    },
  });

  resource(app, '/v2/images/:id', {
    GET: async (request: FastifyRequest<IdParams>) => json(await svc.show(request.params.id, request.ctx), request.ctx),
    PATCH: async (request: FastifyRequest<IdParams>) => {
      const draft = patchDraft(request.headers['content-type']);
      return json(await svc.update(request.params.id, request.body, draft, request.ctx), request.ctx);
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
