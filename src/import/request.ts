import { BadRequest } from '../domain/errors.js';
import { expectedDigest } from '../domain/expected-digests.js';
import type { ImportMethod, ImportRequest } from '../domain/task.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * Validates the body of POST /v2/images/{id}/import as Glance does (its
 * messages included) and a little more strictly where Glance would crash:
 * `stores` must be a list of strings.
 */
export function parseImportBody(body: unknown, enabled: string[]): ImportRequest {
  if (!isObject(body)) throw new BadRequest('The import request body must be a JSON object with a "method".');
  const method = body.method;
  if (method === undefined) throw new BadRequest("Import request requires a 'method' field.");
  if (!isObject(method)) throw new BadRequest("Import request 'method' must be an object with a 'name'.");
  if (method.name === undefined) throw new BadRequest("Import request requires a 'name' field.");
  if (typeof method.name !== 'string' || !enabled.includes(method.name)) throw new BadRequest(`Unknown import method name '${String(method.name)}'.`);
  const name = method.name as ImportMethod;
  if (body.all_stores_must_succeed !== undefined && typeof body.all_stores_must_succeed !== 'boolean') {
    throw new BadRequest("'all_stores_must_succeed' must be boolean value only");
  }
  if (body.all_stores !== undefined && typeof body.all_stores !== 'boolean') throw new BadRequest("'all_stores' must be boolean value only");
  if (body.stores !== undefined) {
    if (!Array.isArray(body.stores) || !body.stores.every((s) => typeof s === 'string')) throw new BadRequest("'stores' must be a list of store identifiers.");
    if (body.stores.length === 0) throw new BadRequest("'stores' must name at least one store.");
  }
  for (const k of ['uri', 'glance_image_id', 'glance_region', 'glance_service_interface']) {
    if (method[k] !== undefined && typeof method[k] !== 'string') throw new BadRequest(`'${k}' must be a string.`);
  }
  if (name === 'web-download' && (typeof method.uri !== 'string' || method.uri === '')) {
    throw new BadRequest("The web-download import method needs the image's 'uri'.");
  }
  if (body.expected_digest !== undefined) {
    if (name !== 'web-download') throw new BadRequest("'expected_digest' applies to the web-download method only (other methods check the owner_specified properties).");
    const e = body.expected_digest;
    if (!isObject(e) || typeof e.algo !== 'string') throw new BadRequest("'expected_digest' must be an object {\"algo\": \"sha256\", \"value\": \"<hex>\"}.");
    expectedDigest(e.algo, e.value, "'expected_digest'");
  }
  const req: ImportRequest = { ...(body as object), method: { ...(method as object), name } } as ImportRequest;
  return req;
}

/** glance-download's own parameters, checked once the image's state allows the import. */
export function checkGlanceDownload(req: ImportRequest): void {
  const m = req.method;
  if (m.glance_region === undefined) throw new BadRequest("'glance_region' needs to be set for glance-download import method");
  if (m.glance_image_id === undefined) throw new BadRequest("'glance_image_id' needs to be set for glance-download import method");
  if (!UUID.test(m.glance_image_id)) throw new BadRequest(`Remote image id does not look like a UUID: ${m.glance_image_id}`);
  // Any interface is accepted, as Glance: one the catalog lacks fails the task.
  m.glance_service_interface ??= 'public';
}
