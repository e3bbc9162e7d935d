import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { memberJson } from './represent/member.js';
import { resource } from './routes.js';

type ImageParams = { Params: { id: string } };
type MemberParams = { Params: { id: string; member: string } };


export function registerMembers(app: FastifyInstance, rt: Runtime): void {
  const svc = rt.memberService;

  resource(app, '/v2/images/:id/members', {
    GET: async (request: FastifyRequest<ImageParams>) => {
      const members = await svc.list(request.params.id, request.ctx);
      return { members: members.map(memberJson), schema: '/v2/schemas/members' };
    },
    // Glance answers 200, not 201, for a new member.
    POST: async (request: FastifyRequest<ImageParams>) => memberJson(await svc.add(request.params.id, request.body, request.ctx)),
  });

  resource(app, '/v2/images/:id/members/:member', {
    GET: async (request: FastifyRequest<MemberParams>) => memberJson(await svc.get(request.params.id, request.params.member, request.ctx)),
    PUT: async (request: FastifyRequest<MemberParams>) => memberJson(await svc.update(request.params.id, request.params.member, request.body, request.ctx)),
    DELETE: async (request: FastifyRequest<MemberParams>, reply) => {
      await svc.remove(request.params.id, request.params.member, request.ctx);
      return reply.code(204).send();
    },
  });
}
