import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';
import { SCHEMAS } from '../domain/schemas.js';
import { resource } from './routes.js';

/** Other modules (metadefs) add theirs to this map before the app is built. */
export const extraSchemas: Record<string, () => Record<string, unknown>> = {};

export function registerSchemas(app: FastifyInstance, _rt: Runtime): void {
  for (const [name, build] of Object.entries({ ...SCHEMAS, ...extraSchemas })) {
    const body = JSON.stringify(build());
    resource(app, `/v2/schemas/${name}`, { GET: async (_req, reply) => reply.type('application/json').send(body) });
  }
}
