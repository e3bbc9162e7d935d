import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { representImageTask, representTask, representTaskStub } from './represent/task.js';
import { resource } from './routes.js';

type IdParams = { Params: { id: string } };

/** GET /v2/tasks, /v2/tasks/{id}, /v2/images/{id}/tasks; (the runner itself is started and stopped by the runtime). */
export function registerTasks(app: FastifyInstance, rt: Runtime): void {
  resource(app, '/v2/tasks', {
    GET: async (request: FastifyRequest) => {
      const query = request.query as Record<string, string | string[]>;
      const { tasks, limit } = await rt.tasks.list(query, request.ctx);
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (k !== 'marker') for (const x of Array.isArray(v) ? v : [v]) params.append(k, x);
      const qs = params.toString();
      const body: Record<string, unknown> = { tasks: tasks.map(representTaskStub), first: qs ? `/v2/tasks?${qs}` : '/v2/tasks', schema: '/v2/schemas/tasks' };
      if (tasks.length > 0 && tasks.length === limit) {
        params.set('marker', tasks[tasks.length - 1].id);
        body.next = `/v2/tasks?${params.toString()}`;
      }
      return body;
    },
  });

  resource(app, '/v2/tasks/:id', {
    GET: async (request: FastifyRequest<IdParams>) => representTask(await rt.tasks.get(request.params.id, request.ctx)),
  });

  resource(app, '/v2/images/:id/tasks', {
    GET: async (request: FastifyRequest<IdParams>) => ({ tasks: (await rt.tasks.listForImage(request.params.id, request.ctx)).map(representImageTask) }),
  });
}
