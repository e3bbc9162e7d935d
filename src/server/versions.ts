import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { NotFound } from '../domain/errors.js';
import { resource, type Handler } from './routes.js';

/**
 * Versions we implement, newest first. v2.14 and v2.16 (the image cache API
 * and its clearing) are left out because that feature does not exist here,
 * and clients must not negotiate into them; v2.17 added the location APIs
 * (POST and GET /v2/images/{id}/locations).
 */
const VERSIONS: [string, 'CURRENT' | 'SUPPORTED'][] = [
  ['2.17', 'CURRENT'],
  ['2.15', 'SUPPORTED'],
  ['2.13', 'SUPPORTED'], ['2.12', 'SUPPORTED'], ['2.11', 'SUPPORTED'], ['2.10', 'SUPPORTED'],
  ['2.9', 'SUPPORTED'], ['2.8', 'SUPPORTED'], ['2.7', 'SUPPORTED'], ['2.6', 'SUPPORTED'], ['2.5', 'SUPPORTED'],
  ['2.4', 'SUPPORTED'], ['2.3', 'SUPPORTED'], ['2.2', 'SUPPORTED'], ['2.1', 'SUPPORTED'], ['2.0', 'SUPPORTED'],
];

/** URL prefixes that name a version we serve: `/v2` and every `/v2.N` of the versions document. */
const VERSION_PREFIXES = new Set(['v2', ...VERSIONS.map(([id]) => `v${id}`)]);

/** Glance also reads the version from an Accept header of this form (`application/vnd.openstack.images-v2.1`). */
const VERSIONED_MEDIA_TYPE = 'application/vnd.openstack.images-';

/** Where a request for a version we do not serve (`/v1/...`, `/v3`, `/anything`) is routed: the version choices. */
const VERSION_CHOICES = '/';

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export function versionsDocument(base: string): { versions: unknown[] } {
  const href = `${base.replace(/\/+$/, '')}/v2/`;
  return { versions: VERSIONS.map(([id, status]) => ({ id: `v${id}`, status, links: [{ rel: 'self', href }] })) };
}

/** The service's root URL for links we send: config.publicEndpoint, else the request's scheme and Host. */
export function baseUrl(rt: Runtime, request: FastifyRequest): string {
  return rt.config.publicEndpoint ?? `${request.protocol}://${request.headers.host ?? `${rt.config.host}:${rt.config.port}`}`;
}

/**
 * Glance's version negotiation, applied to every request before routing (and
 * before authentication, as in Glance's pipeline): the first path segment
 * names the version (`/v2.1/images` is `/v2/images`), or an Accept header
 * `application/vnd.openstack.images-vX` does (then the path has none). A
 * version we do not serve (`/v1/images`, `/v3`, `/images`) answers the
 * version choices, 300, as Glance does; glanceclient's v1 commands then say
 * the requested version is not available. `/versions...` is the versions
 * document, `/healthcheck` the health check.
 */
export function negotiateVersion(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const trimmed = path.replace(/^\/+/, '');
  const slash = trimmed.indexOf('/');
  const first = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const rest = slash === -1 ? '' : trimmed.slice(slash);
  if (first === 'versions') return '/versions';
  if (path === '/healthcheck') return url;
  const accept = req.headers.accept ?? '';
  if (accept.startsWith(VERSIONED_MEDIA_TYPE)) {
    return VERSION_PREFIXES.has(accept.slice(VERSIONED_MEDIA_TYPE.length)) ? `/v2${path}${query}` : VERSION_CHOICES;
  }
  if (!VERSION_PREFIXES.has(first)) return VERSION_CHOICES;
  return `/v2${rest}${query}`;
}

export function registerVersions(app: FastifyInstance, rt: Runtime): void {
  // Every method: Glance answers the version choices (300) and /versions (200) whatever the method.
  const choices: Handler = async (req, reply) => reply.code(300).send(versionsDocument(baseUrl(rt, req)));
  const versions: Handler = async (req) => versionsDocument(baseUrl(rt, req));
  const every = (h: Handler) => Object.fromEntries(ALL_METHODS.map((m) => [m, h]));
  // raw: a body sent to a version we do not serve is not read as JSON (Node discards it).
  resource(app, VERSION_CHOICES, every(choices), { public: true, raw: true });
  resource(app, '/versions', every(versions), { public: true, raw: true });
  // Glance routes nothing at the v2 root: an authenticated request there finds no resource.
  const noResource = async () => {
    throw new NotFound('The resource could not be found. The API root is /; resources live under /v2/images, /v2/schemas, ...');
  };
  for (const url of ['/v2', '/v2/']) {
    resource(app, url, { GET: noResource, HEAD: noResource, POST: noResource, PUT: noResource, PATCH: noResource, DELETE: noResource }, { raw: true });
  }
}
