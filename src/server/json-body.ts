import type { IncomingMessage } from 'node:http';
import { BadRequest, PayloadTooLarge } from '../domain/errors.js';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../domain/json-validator.js';

/**
 * Reads a bounded JSON body; an empty body is no body (tempest and glanceclient
 * send those on DELETE). Size and depth are checked before JSON.parse, so
 * nothing downstream ever walks an input deeper than MAX_JSON_DEPTH.
 */
export async function readJsonBody(stream: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLarge(`The request body is larger than ${limit} bytes.`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    throw new BadRequest(`The request body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep, which is not accepted.`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`The request body is not valid JSON: ${(err as Error).message}`);
  }
}
