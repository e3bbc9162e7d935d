import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { parseAssociationBody, parseNamespaceBody } from '../metadefs/input.js';
import { parseNamespaceListQuery } from '../metadefs/list-query.js';
import { associationJson, namespaceHref, namespaceJson, objectInputJson, objectJson, resourceTypeJson } from './represent/metadefs.js';
import { METADEF_SCHEMAS } from '../metadefs/schemas.js';
import type { NamespaceDetail } from '../metadefs/service.js';
import { registerMetadefContents } from './metadefs-contents.js';
import { resource } from './routes.js';
import { extraSchemas } from './schemas.js';

Object.assign(extraSchemas, METADEF_SCHEMAS);

type Query = Record<string, string | string[]>;
export type NsParams = { Params: { namespace: string } };

/** The request's query without `marker`, for `first` and `next` links. */
function queryWithout(request: FastifyRequest, skip: string): URLSearchParams {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(request.query as Query)) {
    if (k === skip) continue;
    for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
  }
  return params;
}

function detailJson(d: NamespaceDetail): Record<string, unknown> {
  const contents: Record<string, unknown> = {};
  if (d.associations.length) contents.resource_type_associations = d.associations.map(associationJson);
  if (Object.keys(d.properties).length) contents.properties = d.properties;
  if (d.objects.length) contents.objects = d.objects.map((o) => objectJson(d.namespace.namespace, o.object, o.properties, o.required));
  if (d.tags.length) contents.tags = d.tags.map((t) => ({ name: t.name }));
  return namespaceJson(d.namespace, contents);
}

/** /v2/metadefs: namespaces and resource types here, namespace contents in metadefs-contents.ts. */
export function registerMetadefs(app: FastifyInstance, rt: Runtime): void {
  const svc = rt.metadefs;

  resource(app, '/v2/metadefs/namespaces', {
    GET: async (request) => {
      const q = parseNamespaceListQuery(request.query as Query);
      const items = await svc.listNamespaces(request.ctx, q);
      const rest = queryWithout(request, 'marker');
      const body: Record<string, unknown> = {
        namespaces: items.map(({ namespace, associations }) =>
          namespaceJson(namespace, associations.length ? { resource_type_associations: associations.map(associationJson) } : {}),
        ),
        first: rest.size ? `/v2/metadefs/namespaces?${rest}` : '/v2/metadefs/namespaces',
        schema: '/v2/schemas/metadefs/namespaces',
      };
      if (items.length > 0 && items.length === q.limit) {
        rest.append('marker', items[items.length - 1].namespace.namespace);
        body.next = `/v2/metadefs/namespaces?${rest}`;
      }
      return body;
    },
    POST: async (request, reply) => {
      const input = parseNamespaceBody(request.body);
      const ns = await svc.createNamespace(request.ctx, input);
      const { contents: c, sent } = input;
      const echo: Record<string, unknown> = {};
      if (sent.associations) echo.resource_type_associations = c.associations.map((a) => ({ name: a.name, prefix: a.prefix ?? undefined, properties_target: a.propertiesTarget ?? undefined }));
      if (sent.properties) echo.properties = c.properties;
      if (sent.objects) echo.objects = c.objects.map(objectInputJson);
      if (sent.tags) echo.tags = c.tags.map((name) => ({ name }));
      reply.code(201).header('location', namespaceHref(ns.namespace));
      return namespaceJson(ns, echo);
    },
  });

  resource(app, '/v2/metadefs/namespaces/:namespace', {
    GET: async (request: FastifyRequest<NsParams>) => {
      const resourceType = (request.query as Query).resource_type;
      const one = Array.isArray(resourceType) ? resourceType[0] : resourceType;
      return detailJson(await svc.showNamespace(request.ctx, request.params.namespace, one || undefined));
    },
    PUT: async (request: FastifyRequest<NsParams>) => namespaceJson(await svc.updateNamespace(request.ctx, request.params.namespace, parseNamespaceBody(request.body))),
    DELETE: async (request: FastifyRequest<NsParams>, reply) => {
      await svc.deleteNamespace(request.ctx, request.params.namespace);
      return reply.code(204).send();
    },
  });

  resource(app, '/v2/metadefs/resource_types', {
    GET: async (request) => ({ resource_types: (await svc.listResourceTypes(request.ctx)).map(resourceTypeJson) }),
  });

  resource(app, '/v2/metadefs/namespaces/:namespace/resource_types', {
    GET: async (request: FastifyRequest<NsParams>) => ({
      resource_type_associations: (await svc.listAssociations(request.ctx, request.params.namespace)).map(associationJson),
    }),
    POST: async (request: FastifyRequest<NsParams>, reply) => {
      const association = await svc.associate(request.ctx, request.params.namespace, parseAssociationBody(request.body));
      reply.code(201);
      return associationJson(association);
    },
  });

  resource(app, '/v2/metadefs/namespaces/:namespace/resource_types/:resourceType', {
    DELETE: async (request: FastifyRequest<{ Params: { namespace: string; resourceType: string } }>, reply) => {
      await svc.dissociate(request.ctx, request.params.namespace, request.params.resourceType);
      return reply.code(204).send();
    },
  });

  registerMetadefContents(app, rt);
}
