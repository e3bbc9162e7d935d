import assert from 'node:assert/strict';
import path from 'node:path';
import { createImage, startTestServer, uploadBytes, type TestServer, type TestServerOptions } from '../support/server.js';
import { filesUnder } from '../support/files.js';

type Json = Record<string, any>;

/** A test server with the cache on; `cache` is merged into the cache section (maxSizeGiB, prefetchIntervalSeconds...). */
export function startCachingServer(cache: Record<string, unknown> = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer({ ...opts, config: { ...(opts.config ?? {}), cache: { enabled: true, prefetchIntervalSeconds: 3600, ...cache } } });
}

/** Creates and uploads an image; returns its id. */
export async function activeImage(s: TestServer, data: Buffer, body: Record<string, unknown> = {}, token: 'admin' | 'member' = 'admin'): Promise<string> {
  const id = (await createImage(s, body, token)).id as string;
  const res = await uploadBytes(s, id, data, token);
  assert.equal(res.status, 204, await res.text());
  return id;
}

/** GET /v2/cache as admin. */
export async function cacheState(s: TestServer): Promise<{ cached_images: Json[]; queued_images: string[] }> {
  const res = await s.req('GET', '/v2/cache');
  assert.equal(res.status, 200);
  return (await res.json()) as { cached_images: Json[]; queued_images: string[] };
}

export async function cachedIds(s: TestServer): Promise<string[]> {
  return (await cacheState(s)).cached_images.map((e) => e.image_id as string);
}

/** Downloads the whole image (or a range); the body as a Buffer. */
export async function download(s: TestServer, id: string, headers: Record<string, string> = {}, token: 'admin' | 'member' | 'other' = 'admin'): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await s.req('GET', `/v2/images/${id}/file`, { headers, token });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The filesystem store's file of an image (the default store, `<dataDir>/images`). */
export function storeFile(s: TestServer, id: string): string {
  return path.join(s.dataDir, 'images', id);
}

export function cacheDir(s: TestServer): string {
  return path.join(s.dataDir, 'cache');
}

/** Image files in the cache directory (the index and temporary files left out). */
export function cacheFiles(s: TestServer): string[] {
  return filesUnder(cacheDir(s)).filter((f) => !f.startsWith('cache.sqlite'));
}

/** One sample of the metrics listener (metrics must be enabled), 0 when absent. */
export async function metric(s: TestServer, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${s.metricsUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const [series, value] = line.split(' ');
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) return Number(value);
  }
  return 0;
}

/** Store reads so far: `get` calls and bytes, from the store metrics. */
export async function storeReads(s: TestServer, store = 'local'): Promise<{ gets: number; bytes: number }> {
  return {
    gets: await metric(s, 'imago_store_operation_duration_seconds_count', { store, operation: 'get' }),
    bytes: await metric(s, 'imago_store_bytes_read_total', { store }),
  };
}
