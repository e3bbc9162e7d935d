import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { toContext, type RequestContext } from '../auth/context.js';
import { NotFound } from '../domain/errors.js';
import { clientErrorResponse, sendError } from './error-mapper.js';
import { readJsonBody } from './json-body.js';
import { assertNoNulInJson, assertNoNulInUrl } from './nul-check.js';
import { discardUnreadBody } from './upload-body.js';
import { negotiateVersion, registerVersions, versionPrefixes } from './versions.js';
import { registerCache } from './cache.js';
import { installExpectContinue } from './expect-continue.js';
import { registerImages } from './images.js';
import { registerLocations } from './locations.js';
import { registerImageData } from './image-data.js';
import { registerUploads } from './uploads.js';
import { registerTags } from './tags.js';
import { registerSchemas } from './schemas.js';
import { registerInfo } from './info.js';
import { registerMembers } from './members.js';
import { registerImport } from './import.js';
import { registerTasks } from './tasks.js';
import { registerStores } from './stores.js';
import { registerUsage } from './usage.js';
import { registerMetadefs } from './metadefs.js';
import { observeRequest, observeRequests } from './request-log.js';
import { registerHealth } from './health.js';
import { registerConsole } from './console.js';

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext;
    requestId: string;
  }
}

const MEDIA_TYPE = /^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(;.*)?$/s;

export type Registrar = (app: FastifyInstance, rt: Runtime) => void;

/** Extra resources registered by other modules (import, members, tasks, metadefs...). */
export const registrars: Registrar[] = [registerVersions, registerHealth, registerSchemas, registerInfo, registerImages, registerLocations, registerImageData, registerUploads, registerTags, registerMembers, registerUsage, registerMetadefs, registerImport, registerTasks, registerStores, registerCache, registerConsole];

export function buildApp(rt: Runtime, extra: Registrar[] = []): FastifyInstance {
  const prefixes = versionPrefixes({ cache: rt.config.cache.enabled });
  const app = (Fastify as unknown as (o: object) => FastifyInstance)({
    loggerInstance: rt.log,
    logController: new LogController({ disableRequestLogging: true }),
    // Multi-GiB uploads over slow links must never be cut by a timer.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 75_000,
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 1024 },
    genReqId: () => `req-${randomUUID()}`,
    exposeHeadRoutes: false,
    // `/v2.N/...` is `/v2/...`; versions we do not serve get the version choices (Glance's version negotiation).
    rewriteUrl: (req: IncomingMessage) => negotiateVersion(req, prefixes),
    return503OnClosing: false,
    // The router's own 400 (a URL that is not valid percent-encoding) gets the spec's JSON body too.
    frameworkErrors: (err: Error, request: FastifyRequest, reply: FastifyReply) => {
      observeRequest(rt, request, reply);
      return sendError(request, reply, err, rt.auth.wwwAuthenticate);
    },
    // ...and so does Node's own refusal of a request it cannot parse (431 for a 20 KB URL).
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code !== 'ECONNRESET' && !socket.destroyed && socket.writable) socket.write(clientErrorResponse(err.code));
      socket.destroy(err);
    },
  });

  installExpectContinue(app.server);

  app.decorateRequest('ctx', null as unknown as RequestContext);
  app.decorateRequest('requestId', '');

  // Image data arrives as a stream; every other body is JSON whatever its Content-Type says (as Glance).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    // Image data streams to its handler; an unknown path answers 404 whatever its body holds.
    if (request.routeOptions.config?.raw || request.is404) return done(null, payload);
    readJsonBody(payload, app.initialConfig.bodyLimit ?? 1024 * 1024)
      .then((b) => {
        assertNoNulInJson(b);
        return b;
      })
      .then((b) => done(null, b), (e) => done(e as Error));
  });

  // First hook: requests refused by authentication are logged and counted too.
  observeRequests(app, rt);
  app.addHook('onRequest', async (request, reply) => {
    request.requestId = request.id;
    reply.header('x-openstack-request-id', request.id);
    // Fastify itself answers 415 to a Content-Type that is no media type ("", "json"); Glance reads such a body as JSON too.
    const type = request.headers['content-type'];
    if (type !== undefined && !request.routeOptions.config?.raw && !MEDIA_TYPE.test(type)) delete request.headers['content-type'];
    if (request.routeOptions.config?.public) return;
    const creds = await rt.auth.authenticate(request.headers);
    const token = request.headers['x-auth-token'];
    request.ctx = toContext(creds, request.id, Array.isArray(token) ? token[0] : token);
    // is_admin is whatever the policy's context_is_admin rule says (role:admin by default).
    request.ctx.isAdmin = rt.policy.isAdmin(request.ctx);
    assertNoNulInUrl(request.method, request.url);
  });

  app.setErrorHandler((err, request, reply) => {
    // A body left unread (refused upload...): discard it so the client reads this answer; close when shutting down.
    if (!request.raw.complete) {
      if (rt.writers.isClosing) reply.header('connection', 'close');
      else discardUnreadBody(request.raw, reply.raw);
    }
    return sendError(request, reply, err, rt.auth.wwwAuthenticate);
  });
  app.setNotFoundHandler(async (request: FastifyRequest) => {
    throw new NotFound(`The resource could not be found: ${request.method} ${request.url.split('?')[0]}`);
  });

  for (const register of [...registrars, ...extra]) register(app, rt);
  return app;
}
