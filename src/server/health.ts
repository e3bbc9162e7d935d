import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { healthAnswer } from '../health/answer.js';
import type { Runtime } from '../runtime.js';
import { resource } from './routes.js';

/**
 * GET/HEAD /healthcheck on the API port, for load balancers: no token, no
 * details (a failing component is named, not explained).
 */
export function registerHealth(app: FastifyInstance, rt: Runtime): void {
  const answer = async (request: FastifyRequest, reply: FastifyReply) => {
    const a = healthAnswer(await rt.health.check(), request.method, request.headers.accept, false);
    reply.code(a.status).header('cache-control', 'no-store').type(a.type);
    return reply.send(a.body);
  };
  resource(app, '/healthcheck', { GET: answer, HEAD: answer }, { public: true });
}
