import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { BadRequest, Conflict } from '../domain/errors.js';
import { UnknownStore } from '../stores/errors.js';
import { requireOctetStream } from './image-data.js';
import { resource } from './routes.js';
import { uploadBody } from './upload-body.js';
import { expectedFromHeaders } from '../domain/expected-digests.js';

type IdParams = { Params: { id: string } };

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** PUT /v2/images/{id}/stage and POST /v2/images/{id}/import (interoperable image import). */
export function registerImport(app: FastifyInstance, rt: Runtime): void {
  resource(
    app,
    '/v2/images/:id/stage',
    {
      PUT: async (request: FastifyRequest<IdParams>, reply) => {
        rt.staging.assertEnabled(); // before the request's headers are judged
        requireOctetStream(request);
        const raw = one(request.headers['content-length']);
        if (raw !== undefined && !/^\d+$/.test(raw.trim())) throw new BadRequest(`Invalid content-length header "${raw}".`);
        await rt.staging.stage({
          imageId: request.params.id,
          ctx: request.ctx,
          body: uploadBody(request.raw, reply.raw),
          contentLength: raw === undefined ? undefined : Number(raw),
          expected: expectedFromHeaders(request.headers),
        });
        return reply.code(204).send();
      },
    },
    { raw: true },
  );

  resource(app, '/v2/images/:id/import', {
    POST: async (request: FastifyRequest<IdParams>, reply) => {
      await rt.importService.request(request.params.id, request.body, one(request.headers['x-image-meta-store']), request.ctx).catch((err) => {
        // An unknown target store is a 409 for an import (Glance's answer), not the 400 of an upload's header.
        throw err instanceof UnknownStore ? new Conflict(err.message) : err;
      });
      return reply.code(202).send();
    },
  });
}
