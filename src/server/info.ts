import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

export function registerInfo(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/info/import', {
    GET: async () => ({ 'import-methods': { description: 'Import methods available.', type: 'array', value: rt.config.import.methods } }),
  });

  const storeJson = (detail: boolean) =>
    rt.stores.stores.map((s) => {
      // As Glance: description only when set; "default" and "read-only" are the string "true" when they apply.
      const out: Record<string, unknown> = { id: s.info.id };
      if (s.info.description) out.description = s.info.description;
      if (s.info.id === rt.stores.defaultId) out.default = 'true';
      if (s.info.readOnly) out['read-only'] = 'true';
      if (detail) Object.assign(out, { type: s.info.type, properties: s.info.properties });
      return out;
    });

  resource(app, '/v2/info/stores', { GET: async () => ({ stores: storeJson(false) }) });
  resource(app, '/v2/info/stores/detail', {
    GET: async (request) => {
      rt.policy.enforce('stores_info_detail', request.ctx, {}, 'Only administrators may see store details.');
      return { stores: storeJson(true) };
    },
  });
}
