import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

/**
 * GET /v2/info/usage: the caller's project limits and usage, in Glance's
 * shape `{"usage": {"image_size_total": {"limit": N, "usage": M}, ...}}`
 * (sizes in MiB). Empty, as in Glance, when quotas are off.
 */
export function registerUsage(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/info/usage', {
    GET: async (request) => {
      const project = request.ctx.projectId;
      if (!rt.quotas || !project) return { usage: {} };
      return { usage: await rt.quotas.usage(project) };
    },
  });
}
