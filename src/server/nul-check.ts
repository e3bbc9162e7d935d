import { BadRequest, NotFound } from '../domain/errors.js';

// PostgreSQL's text cannot store U+0000 (SQLite can): without these checks at the edge the same
// request was a 400 or a 500 depending on the database (issue 14, item 6).

function nulInBody(where: string): BadRequest {
  return new BadRequest(`${where} holds a NUL character (\\u0000); no text Imago stores may contain one.`);
}

/**
 * Refuses a JSON body holding U+0000 in any string or key, naming the top-level attribute (or
 * array index) it sits under. Iterative, so no input can drive the recursion.
 */
export function assertNoNulInJson(value: unknown): void {
  const pending: [unknown, string][] = [[value, '']];
  while (pending.length) {
    const [v, top] = pending.pop()!;
    const where = top === '' ? 'The request body' : `'${top}'`;
    if (typeof v === 'string') {
      if (v.includes('\0')) throw nulInBody(where);
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => pending.push([item, top === '' ? `[${i}]` : top]));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (k.includes('\0')) throw nulInBody(top === '' ? 'An attribute name' : where);
        pending.push([item, top === '' ? k : top]);
      }
    }
  }
}

/**
 * The same for the URL, where %00 is the only way to carry U+0000. Nothing Imago stores can be
 * named with one, so reading or deleting such a path finds nothing (404, as for any unknown id);
 * creating or changing something under it is a bad request.
 */
export function assertNoNulInUrl(method: string, url: string): void {
  if (!/%00/i.test(url)) return;
  const queryAt = url.indexOf('?');
  const inPath = /%00/i.test(queryAt < 0 ? url : url.slice(0, queryAt));
  if (inPath && (method === 'GET' || method === 'HEAD' || method === 'DELETE')) {
    throw new NotFound('No image, member, namespace or other resource is named with a NUL character (%00).');
  }
  throw new BadRequest(`The ${inPath ? 'path' : 'query string'} holds a NUL character (%00); no identifier, name or filter may contain one.`);
}
