import { BadRequest, ImagoError } from './errors.js';

/**
 * The tus 1.0 protocol's pure rules (https://tus.io/protocols/resumable-upload):
 * the version, the extensions Imago answers, and the parsing of its headers.
 * HTTP stays in server/uploads.ts; this only reads values and says what is wrong.
 */
export const TUS_VERSION = '1.0.0';
export const TUS_EXTENSIONS = ['creation', 'expiration', 'termination'];
/** the media type of a PATCH body */
export const TUS_PATCH_TYPE = 'application/offset+octet-stream';

/** 412 for a request that does not speak our tus version (Tus-Version says which we do). */
export function assertTusVersion(sent: string | undefined): void {
  if (sent === TUS_VERSION) return;
  throw new ImagoError(412, `This server speaks tus ${TUS_VERSION}; the request's Tus-Resumable header is ${sent === undefined ? 'missing' : `"${sent}"`}.`, '', { 'Tus-Version': TUS_VERSION });
}

/** Upload-Length, Upload-Offset: a non-negative integer (400 otherwise, naming the header). */
export function byteCount(header: string, raw: string | undefined): number {
  if (raw === undefined) throw new BadRequest(`The ${header} header is required.`);
  const v = raw.trim();
  if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new BadRequest(`Invalid ${header} header "${raw}": a non-negative integer is required.`);
  return Number(v);
}

/**
 * Upload-Metadata: comma-separated pairs of a key and, optionally, its value
 * in base64. Keys are unique ASCII without spaces or commas. Values decode
 * as UTF-8.
 */
export function parseUploadMetadata(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined || raw.trim() === '') return out;
  for (const pair of raw.split(',')) {
    const parts = pair.trim().split(' ');
    const [key, value] = parts;
    if (!key || parts.length > 2 || !/^[\x21-\x7e]+$/.test(key)) throw new BadRequest(`Invalid Upload-Metadata: "${pair.trim()}" is not a key and a base64 value.`);
    if (Object.hasOwn(out, key)) throw new BadRequest(`Invalid Upload-Metadata: the key "${key}" appears twice.`);
    if (value !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new BadRequest(`Invalid Upload-Metadata: the value of "${key}" is not base64.`);
    out[key] = value === undefined ? '' : Buffer.from(value, 'base64').toString('utf8');
  }
  return out;
}

/** The target an upload's metadata names: `data` (the image's store, as PUT /file) by default, or `stage` (as PUT /stage). */
export function uploadTarget(metadata: Record<string, string>): 'data' | 'stage' {
  const t = metadata.target ?? 'data';
  if (t === 'data' || t === 'stage') return t;
  throw new BadRequest(`Invalid Upload-Metadata: target "${t}" is neither "data" nor "stage".`);
}
