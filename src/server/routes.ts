import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod, RouteShorthandOptions } from 'fastify';
import { MethodNotAllowed } from '../domain/errors.js';

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (request: FastifyRequest<any>, reply: FastifyReply) => Promise<unknown>;
const ALL: Method[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export interface ResourceOptions {
  /** raw: the body is handed to the handler as a stream (image data) */
  raw?: boolean;
  /** public: no token needed (discovery) */
  public?: boolean;
}

/**
 * Registers the handlers of one URL and answers every other method with 405
 * and an Allow header, as Glance does. HEAD follows GET unless given.
 */
export function resource(app: FastifyInstance, url: string, handlers: Partial<Record<Method, Handler>>, opts: ResourceOptions = {}): void {
  const h = { ...handlers };
  if (h.GET && !h.HEAD) h.HEAD = h.GET;
  const allowed = ALL.filter((m) => h[m]);
  const routeOpts: RouteShorthandOptions = { config: { raw: !!opts.raw, public: !!opts.public } };
  for (const m of allowed) app.route({ method: m, url, handler: h[m]! as RouteHandlerMethod, ...routeOpts });
  const rest = ALL.filter((m) => !h[m]);
  if (rest.length) {
    app.route({
      method: rest,
      url,
      config: { raw: true, public: !!opts.public },
      handler: async (req) => {
        throw new MethodNotAllowed(req.method, allowed);
      },
    });
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    raw?: boolean;
    public?: boolean;
  }
}
