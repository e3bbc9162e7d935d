import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { once } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { isRecycling, type Recycling } from '../stores/file-range-reader.js';
import type { Runtime } from '../runtime.js';
import { BadRequest, UnsupportedMediaType } from '../domain/errors.js';
import { resource } from './routes.js';
import { uploadBody } from './upload-body.js';
import { expectedFromHeaders } from '../domain/expected-digests.js';

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

/**
 * Writes a download to the socket and hands each chunk back to the store's
 * reader once the socket has taken it, so a multi-GiB download reuses a few
 * buffers instead of leaving one per read for the garbage collector.
 */
async function sendRecycling(request: FastifyRequest, reply: FastifyReply, body: Readable & Partial<Recycling>, sent?: (bytes: number) => void): Promise<void> {
  reply.hijack();
  let bytes = 0;
  const res = reply.raw;
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    for await (const chunk of body) {
      if (res.destroyed) break;
      if (!res.write(chunk, (err) => {
        if (!err) bytes += (chunk as Buffer).length;
        body.recycle?.(chunk);
      })) await Promise.race([once(res, 'drain'), closed]);
    }
    if (!res.destroyed) res.end();
  } catch (err) {
    // the headers are out: all that is left is to cut the connection, as any streamed failure does
    request.log.warn({ err }, 'download interrupted');
    res.destroy();
  } finally {
    body.destroy();
    if (sent) {
      // the last write callbacks run once the socket has taken their chunks (or failed)
      if (!res.writableFinished && !res.destroyed) await Promise.race([once(res, 'finish'), closed]).catch(() => {});
      sent(bytes);
    }
  }
}

export function registerImageData(app: FastifyInstance, rt: Runtime): void {
  const download = async (request: FastifyRequest<IdParams>, reply: FastifyReply) => {
    const head = request.method === 'HEAD';
    const d = await rt.data.download(request.params.id, request.ctx, one(request.headers.range), one(request.headers['content-range']), { open: !head });
    if (!d.data) return reply.code(204).send();
    reply.header('content-type', 'application/octet-stream');
    if (d.md5) reply.header('content-md5', d.md5);
    if (d.size === 0) {
      reply.code(200).header('content-length', '0');
    } else if (d.range) {
      reply.code(206).header('content-range', `bytes ${d.range.start}-${d.range.end}/${d.size}`).header('content-length', String(d.range.end - d.range.start + 1));
    } else {
      reply.code(200).header('content-length', String(d.size));
    }
    // Streamed by hand when the store recycles its buffers or someone wants to know how much was sent (image.send).
    if (d.body && (isRecycling(d.body) || d.sent)) return sendRecycling(request, reply, d.body, d.sent);
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
          expected: expectedFromHeaders(request.headers),
        });
        return reply.code(204).send();
      },
    },
    { raw: true },
  );
}
