import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';
import { storeJson } from './represent/store.js';

export function registerInfo(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/info/import', {
    GET: async () => ({ 'import-methods': { description: 'Import methods available.', type: 'array', value: rt.config.import.methods } }),
  });

  resource(app, '/v2/info/stores', { GET: async () => ({ stores: storeJson(rt.storeInfo.list(), false) }) });
  resource(app, '/v2/info/stores/detail', {
    GET: async (request) => ({ stores: storeJson(rt.storeInfo.detail(request.ctx), true) }),
  });
}
