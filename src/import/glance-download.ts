import { request } from 'undici';
import type { KeystoneConfig } from '../config.js';
import { DownloadError, discard, openHttpSource, type Resolver } from './http-source.js';
import type { UriFilter } from './uri-filter.js';

interface CatalogEndpoint {
  interface?: string;
  region?: string;
  region_id?: string;
  url?: string;
}

/**
 * The image service of another region, from the Keystone catalog the
 * requester's token sees (what Glance reads from X-Service-Catalog).
 */
export async function glanceEndpoint(keystone: KeystoneConfig | undefined, token: string, region: string, iface: string): Promise<string> {
  if (!keystone) throw new DownloadError('glance-download needs Keystone (auth.mode "keystone") to find the image service of another region.');
  let res;
  try {
    res = await request(`${keystone.authUrl.replace(/\/+$/, '')}/auth/catalog`, {
      headers: { 'x-auth-token': token, accept: 'application/json' },
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
  } catch (err) {
    throw new DownloadError(`could not read the service catalog from Keystone: ${(err as Error).message}`);
  }
  const body = (await res.body.json().catch(() => undefined)) as { catalog?: Array<{ type?: string; endpoints?: CatalogEndpoint[] }> } | undefined;
  if (res.statusCode !== 200 || !body?.catalog) throw new DownloadError(`Keystone refused the service catalog (HTTP ${res.statusCode}); the requester's token may have expired.`);
  const wanted = region.toLowerCase();
  for (const service of body.catalog) {
    if (service.type !== 'image') continue;
    for (const e of service.endpoints ?? []) {
      const r = (e.region_id ?? e.region ?? '').toLowerCase();
      if (r === wanted && e.interface === iface && e.url) return e.url.replace(/\/+$/, '').replace(/\/v2$/, '');
    }
  }
  throw new DownloadError(`No ${iface} image service endpoint in region ${region} is in the service catalog.`);
}

export interface RemoteImage {
  status?: string;
  size?: number;
  disk_format?: string | null;
  container_format?: string | null;
  checksum?: string | null;
  os_hash_algo?: string | null;
  os_hash_value?: string | null;
  [k: string]: unknown;
}

/** GET {endpoint}/v2/images/{id} with the requester's token (bounded: image JSON is small). */
export async function remoteImage(endpoint: string, id: string, token: string, filter: UriFilter, signal: AbortSignal, resolve?: Resolver): Promise<RemoteImage> {
  const src = await openHttpSource(`${endpoint}/v2/images/${id}`, { filter, resolve, signal, originHeaders: { 'x-auth-token': token }, headers: { accept: 'application/json' } });
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of src.body) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) {
      discard(src.body);
      throw new DownloadError(`the remote image record at ${endpoint} is larger than 1 MiB`);
    }
    parts.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as RemoteImage;
  } catch {
    throw new DownloadError(`the remote image service at ${endpoint} did not answer with JSON`);
  }
}

/** The remote properties glance-download copies: those whose names start with a configured prefix. */
export function propertiesToCopy(remote: RemoteImage, prefixes: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(remote)) {
    if (k.startsWith('os_glance_') || typeof v !== 'string') continue;
    if (prefixes.some((p) => k.startsWith(p))) out[k] = v;
  }
  return out;
}
