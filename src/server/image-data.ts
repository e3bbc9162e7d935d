import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { BadRequest, UnsupportedMediaType } from '../domain/errors.js';
import { resource } from './routes.js';
import { uploadBody } from './upload-body.js';

type IdParams = { Params: { id: string } };

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function requireOctetStream(request: FastifyRequest): void {
  const type = (one(request.headers['content-type']) ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/octet-stream') {
    throw new UnsupportedMediaType(`The request media type ${type || '(none)'} is not supported by this server; send image data as application/octet-stream.`);
  }
}

function optionalSize(request: FastifyRequest, header: string): number | undefined {
  const raw = one(request.headers[header]);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new BadRequest(`Invalid ${header} header "${raw}": a non-negative integer is required.`);
  return Number(raw);
}

export function registerImageData(app: FastifyInstance, rt: Runtime): void {
  const download = async (request: FastifyRequest<IdParams>, reply: FastifyReply) => {
    const head = request.method === 'HEAD';
    const d = await rt.data.download(request.params.id, request.ctx, one(request.headers.range), one(request.headers['content-range']), { open: !head });
    reply.code(d.status).headers(d.headers);
    return reply.send(d.body);
  };

  resource(
    app,
    '/v2/images/:id/file',
    {
      GET: download,
      HEAD: download,
      PUT: async (request: FastifyRequest<IdParams>, reply) => {
        requireOctetStream(request);
        await rt.data.upload({
          imageId: request.params.id,
          ctx: request.ctx,
          body: uploadBody(request.raw, reply.raw),
          storeId: one(request.headers['x-image-meta-store']),
          contentLength: optionalSize(request, 'content-length'),
          declaredSize: optionalSize(request, 'x-openstack-image-size'),
        });
        return reply.code(204).send();
      },
    },
    { raw: true },
  );
}
