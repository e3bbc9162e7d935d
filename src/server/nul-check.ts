import { BadRequest } from '../domain/errors.js';

const MESSAGE = 'The request contains a NUL character (\\u0000), which no name, property, tag, identifier or other text Imago stores may hold.';

/**
 * Refuses a JSON body holding U+0000 in any string or key. PostgreSQL's text
 * cannot store it (SQLite can), so without this one check at the edge the
 * same request was a 400 or a 500 depending on the database (issue 14, item 6).
 * Iterative, so no input can drive the recursion.
 */
export function assertNoNulInJson(value: unknown): void {
  const pending: unknown[] = [value];
  while (pending.length) {
    const v = pending.pop();
    if (typeof v === 'string') {
      if (v.includes('\0')) throw new BadRequest(MESSAGE);
    } else if (Array.isArray(v)) {
      for (const item of v) pending.push(item);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (k.includes('\0')) throw new BadRequest(MESSAGE);
        pending.push(item);
      }
    }
  }
}

/** The same for the path and query string: %00 is the only way a URL can carry U+0000. */
export function assertNoNulInUrl(url: string): void {
  if (/%00/i.test(url)) throw new BadRequest(MESSAGE);
}
