import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { NotFound } from '../domain/errors.js';
import { resource } from './routes.js';

/**
 * Versions we implement, newest first. v2.14 (image cache API), v2.16 and
 * v2.17 (cache clearing, location APIs) are left out because those features
 * do not exist here, and clients must not negotiate into them.
 */
const VERSIONS: [string, 'CURRENT' | 'SUPPORTED'][] = [
  ['2.15', 'CURRENT'],
  ['2.13', 'SUPPORTED'], ['2.12', 'SUPPORTED'], ['2.11', 'SUPPORTED'], ['2.10', 'SUPPORTED'],
  ['2.9', 'SUPPORTED'], ['2.8', 'SUPPORTED'], ['2.7', 'SUPPORTED'], ['2.6', 'SUPPORTED'], ['2.5', 'SUPPORTED'],
  ['2.4', 'SUPPORTED'], ['2.3', 'SUPPORTED'], ['2.2', 'SUPPORTED'], ['2.1', 'SUPPORTED'], ['2.0', 'SUPPORTED'],
];

export function versionsDocument(base: string): { versions: unknown[] } {
  const href = `${base.replace(/\/+$/, '')}/v2/`;
  return { versions: VERSIONS.map(([id, status]) => ({ id: `v${id}`, status, links: [{ rel: 'self', href }] })) };
}

function baseUrl(rt: Runtime, request: FastifyRequest): string {
  return rt.config.publicEndpoint ?? `${request.protocol}://${request.headers.host ?? `${rt.config.host}:${rt.config.port}`}`;
}

export function registerVersions(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/', { GET: async (req, reply) => reply.code(300).send(versionsDocument(baseUrl(rt, req))) }, { public: true });
  resource(app, '/versions', { GET: async (req) => versionsDocument(baseUrl(rt, req)) }, { public: true });
  // Glance routes nothing at the v2 root: an authenticated request there finds no resource.
  const noResource = async () => {
    throw new NotFound('The resource could not be found. The API root is /; resources live under /v2/images, /v2/schemas, ...');
  };
  for (const url of ['/v2', '/v2/']) {
    resource(app, url, { GET: noResource, HEAD: noResource, POST: noResource, PUT: noResource, PATCH: noResource, DELETE: noResource }, { raw: true });
  }
}
