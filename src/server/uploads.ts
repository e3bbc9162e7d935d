import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Runtime } from '../runtime.js';
import { BadRequest, NotFound, UnsupportedMediaType } from '../domain/errors.js';
import { TUS_EXTENSIONS, TUS_PATCH_TYPE, TUS_VERSION, assertTusVersion, byteCount, parseUploadMetadata, uploadTarget } from '../domain/tus.js';
import type { ResumableUploads, UploadState } from '../services/resumable-uploads.js';
import { resource } from './routes.js';

type IdParams = { Params: { id: string } };

const PREFIX = '/v2/uploads';

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A PATCH body that ends, rather than fails, when the client goes away: the
 * bytes that arrived before the cut are written, made durable and recorded,
 * so the client resumes after them (tus's point). Errors of our own (413,
 * an abort) still fail the append, which then keeps nothing of it.
 */
function appendBody(req: IncomingMessage): PassThrough {
  const body = new PassThrough({ highWaterMark: 64 * 1024 });
  const cut = () => {
    if (!body.writableEnded && !body.destroyed) body.end();
  };
  req.on('error', cut);
  req.on('close', () => {
    if (!req.complete) cut();
  });
  req.pipe(body);
  return body;
}

function tusHeaders(reply: FastifyReply, s: UploadState): FastifyReply {
  return reply.header('upload-offset', String(s.offset)).header('upload-expires', new Date(s.expiresAt).toUTCString()).header('cache-control', 'no-store');
}

/**
 * Resumable uploads, tus 1.0 (core, creation, expiration, termination) at
 * /v2/uploads: docs/api.md#resumable-uploads-tus. HTTP only: the rules are
 * ResumableUploads' (services/resumable-uploads.ts), the header grammar
 * domain/tus.ts'. Every answer, errors included, carries Tus-Resumable; every
 * error has the spec's JSON body.
 */
export function registerUploads(app: FastifyInstance, rt: Runtime): void {
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.url === PREFIX || request.url.startsWith(`${PREFIX}/`)) reply.header('tus-resumable', TUS_VERSION);
    return payload;
  });
  const uploads = (): ResumableUploads => {
    if (!rt.uploads) throw new NotFound('Resumable uploads are not enabled at this site (uploads.resumable).');
    return rt.uploads;
  };
  const options = async (_request: FastifyRequest, reply: FastifyReply) => {
    const u = uploads();
    return reply
      .code(204)
      .header('tus-version', TUS_VERSION)
      .header('tus-extension', TUS_EXTENSIONS.join(','))
      .header('tus-max-size', String(u.maxSize))
      .send();
  };
  const tus = (request: FastifyRequest) => assertTusVersion(one(request.headers['tus-resumable']));

  resource(
    app,
    PREFIX,
    {
      OPTIONS: options,
      POST: async (request, reply) => {
        tus(request);
        const u = uploads();
        if (request.headers['upload-defer-length'] !== undefined) throw new BadRequest('Upload-Defer-Length is not supported: send Upload-Length, the image size, when creating the upload.');
        const length = byteCount('Upload-Length', one(request.headers['upload-length']));
        if (Number(request.headers['content-length'] ?? 0) > 0) throw new BadRequest('Send no data with the creation request: create the upload, then PATCH its data.');
        const raw = one(request.headers['upload-metadata']);
        const metadata = parseUploadMetadata(raw);
        if (!metadata.image_id) throw new BadRequest('Upload-Metadata must name the image: image_id <base64 of the image ID>.');
        const s = await u.create({ ctx: request.ctx, imageId: metadata.image_id, target: uploadTarget(metadata), storeId: metadata.store || undefined, length, metadata: raw ?? null });
        const base = rt.config.publicEndpoint ? rt.config.publicEndpoint.replace(/\/+$/, '') : '';
        return tusHeaders(reply.code(201).header('location', `${base}${PREFIX}/${s.id}`), s).send();
      },
    },
    { raw: true },
  );

  resource(
    app,
    `${PREFIX}/:id`,
    {
      OPTIONS: options,
      HEAD: async (request: FastifyRequest<IdParams>, reply) => {
        tus(request);
        const s = await uploads().status(request.params.id, request.ctx);
        tusHeaders(reply.code(200), s).header('upload-length', String(s.length));
        if (s.metadata) reply.header('upload-metadata', s.metadata);
        return reply.send();
      },
      PATCH: async (request: FastifyRequest<IdParams>, reply) => {
        tus(request);
        const type = (one(request.headers['content-type']) ?? '').split(';')[0].trim().toLowerCase();
        if (type !== TUS_PATCH_TYPE) throw new UnsupportedMediaType(`A PATCH of an upload carries ${TUS_PATCH_TYPE}, not ${type || '(no Content-Type)'}.`);
        const offset = byteCount('Upload-Offset', one(request.headers['upload-offset']));
        const body = appendBody(request.raw);
        try {
          const s = await uploads().append({ ctx: request.ctx, id: request.params.id, offset, body });
          return tusHeaders(reply.code(204), s).send();
        } catch (err) {
          // Refused before or while reading: the rest of the body is the error path's to discard (app.ts).
          request.raw.unpipe(body);
          throw err;
        }
      },
      DELETE: async (request: FastifyRequest<IdParams>, reply) => {
        tus(request);
        await uploads().terminate(request.params.id, request.ctx);
        return reply.code(204).send();
      },
    },
    { raw: true },
  );
}
