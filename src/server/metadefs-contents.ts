import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { parseObjectBody, parsePropertyBody, parseTagBody, parseTagName, parseTagsBody, truthy } from '../metadefs/input.js';
import { checkObjectListQuery, parseTagListQuery } from '../metadefs/list-query.js';
import { objectJson, propertyJson, tagJson } from './represent/metadefs.js';
import { resource } from './routes.js';

type Query = Record<string, string | string[]>;
type NsParams = { Params: { namespace: string } };
type ItemParams = { Params: { namespace: string; name: string } };

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** Objects, properties and tags inside a namespace. */
export function registerMetadefContents(app: FastifyInstance, rt: Runtime): void {
  const svc = rt.metadefs;
  const base = '/v2/metadefs/namespaces/:namespace';

  resource(app, `${base}/objects`, {
    GET: async (request: FastifyRequest<NsParams>) => {
      checkObjectListQuery(request.query as Query);
      const { namespace, objects } = await svc.listObjects(request.ctx, request.params.namespace);
      return { objects: objects.map((o) => objectJson(namespace.namespace, o)), schema: '/v2/schemas/metadefs/objects' };
    },
    POST: async (request: FastifyRequest<NsParams>, reply) => {
      const o = await svc.createObject(request.ctx, request.params.namespace, parseObjectBody(request.body));
      reply.code(201);
      return objectJson(request.params.namespace, o);
    },
    DELETE: async (request: FastifyRequest<NsParams>, reply) => {
      await svc.deleteObjects(request.ctx, request.params.namespace);
      return reply.code(204).send();
    },
  });

  resource(app, `${base}/objects/:name`, {
    GET: async (request: FastifyRequest<ItemParams>) => objectJson(request.params.namespace, await svc.showObject(request.ctx, request.params.namespace, request.params.name)),
    PUT: async (request: FastifyRequest<ItemParams>) => {
      const input = parseObjectBody(request.body);
      return objectJson(request.params.namespace, await svc.updateObject(request.ctx, request.params.namespace, request.params.name, input));
    },
    DELETE: async (request: FastifyRequest<ItemParams>, reply) => {
      await svc.deleteObject(request.ctx, request.params.namespace, request.params.name);
      return reply.code(204).send();
    },
  });

  resource(app, `${base}/properties`, {
    GET: async (request: FastifyRequest<NsParams>) => {
      const props = await svc.listProperties(request.ctx, request.params.namespace);
      return { properties: Object.fromEntries(props.map((p) => [p.name, p.definition])) };
    },
    POST: async (request: FastifyRequest<NsParams>, reply) => {
      const { name, definition } = parsePropertyBody(request.body);
      const p = await svc.createProperty(request.ctx, request.params.namespace, name, definition);
      reply.code(201);
      return propertyJson(p);
    },
    DELETE: async (request: FastifyRequest<NsParams>, reply) => {
      await svc.deleteProperties(request.ctx, request.params.namespace);
      return reply.code(204).send();
    },
  });

  resource(app, `${base}/properties/:name`, {
    GET: async (request: FastifyRequest<ItemParams>) => {
      const resourceType = first((request.query as Query).resource_type);
      return propertyJson(await svc.showProperty(request.ctx, request.params.namespace, request.params.name, resourceType || undefined));
    },
    PUT: async (request: FastifyRequest<ItemParams>) => {
      const { name, definition } = parsePropertyBody(request.body);
      return propertyJson(await svc.updateProperty(request.ctx, request.params.namespace, request.params.name, name, definition));
    },
    DELETE: async (request: FastifyRequest<ItemParams>, reply) => {
      await svc.deleteProperty(request.ctx, request.params.namespace, request.params.name);
      return reply.code(204).send();
    },
  });

  resource(app, `${base}/tags`, {
    GET: async (request: FastifyRequest<NsParams>) => {
      const tags = await svc.listTags(request.ctx, request.params.namespace, parseTagListQuery(request.query as Query));
      return { tags: tags.map((t) => ({ name: t.name })) };
    },
    POST: async (request: FastifyRequest<NsParams>, reply) => {
      const names = parseTagsBody(request.body);
      await svc.createTags(request.ctx, request.params.namespace, names, truthy(request.headers['x-openstack-append']));
      reply.code(201);
      return { tags: names.map((name) => ({ name })) };
    },
    DELETE: async (request: FastifyRequest<NsParams>, reply) => {
      await svc.deleteTags(request.ctx, request.params.namespace);
      return reply.code(204).send();
    },
  });

  resource(app, `${base}/tags/:name`, {
    GET: async (request: FastifyRequest<ItemParams>) => tagJson(await svc.showTag(request.ctx, request.params.namespace, request.params.name)),
    POST: async (request: FastifyRequest<ItemParams>, reply) => {
      const t = await svc.createTag(request.ctx, request.params.namespace, parseTagName(request.params.name));
      reply.code(201);
      return tagJson(t);
    },
    PUT: async (request: FastifyRequest<ItemParams>) => {
      const name = parseTagBody(request.body);
      return tagJson(await svc.renameTag(request.ctx, request.params.namespace, request.params.name, name));
    },
    DELETE: async (request: FastifyRequest<ItemParams>, reply) => {
      await svc.deleteTag(request.ctx, request.params.namespace, request.params.name);
      return reply.code(204).send();
    },
  });
}
