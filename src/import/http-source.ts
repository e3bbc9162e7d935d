import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { redactUserinfo, type UriFilter } from './uri-filter.js';

/** Resolves a host name to every address it has (dns.lookup by default). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));

export interface HttpSourceOptions {
  filter: UriFilter;
  resolve?: Resolver;
  headers?: Record<string, string>;
  /** headers sent only while the URL stays on the first origin (tokens) */
  originHeaders?: Record<string, string>;
  signal?: AbortSignal;
  maxRedirects?: number;
  headersTimeoutMs?: number;
  /** longest pause between two body chunks */
  bodyTimeoutMs?: number;
}

export interface HttpSource {
  body: Readable;
  /** Content-Length, when the server sent one */
  length?: number;
  url: string;
}

/** A download that could not start or was refused; its message says why, for the task. */
export class DownloadError extends Error {}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Opens an http(s) URL as a stream, never through memory. Every URL (the
 * first and each redirect) passes the filter; every host name is resolved
 * once, its addresses checked, and the connection made to exactly the
 * checked address, so DNS cannot answer differently between check and use.
 */
export async function openHttpSource(uri: string, opts: HttpSourceOptions): Promise<HttpSource> {
  const resolve = opts.resolve ?? systemResolver;
  let refusal: string | undefined;
  const lookup = (hostname: string, options: { all?: boolean }, cb: (err: Error | null, address?: string | LookupAddress[], family?: number) => void) => {
    resolve(hostname).then(
      (addrs) => {
        if (addrs.length === 0) return cb(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }));
        for (const a of addrs) {
          const why = opts.filter.checkAddress(a.address);
          if (why) {
            refusal = `${hostname} resolves to ${a.address}: ${why}`;
            return cb(Object.assign(new Error(refusal), { code: 'EIMAGOREFUSED' }));
          }
        }
        if (options.all) cb(null, addrs);
        else cb(null, addrs[0].address, addrs[0].family);
      },
      (err) => cb(err),
    );
  };
  const agent = new Agent({
    connect: { lookup, timeout: 15_000 } as object,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 120_000,
    pipelining: 0,
  });
  const closeAgent = () => void agent.destroy().catch(() => {});
  let url = uri;
  let origin: string | undefined;
  try {
    for (let hop = 0; ; hop++) {
      const checked = opts.filter.checkUrl(url);
      if (!checked.ok) throw new DownloadError(`${redactUserinfo(url)} does not pass the web-download filter: ${checked.reason}`);
      origin ??= checked.url.origin;
      const headers = { ...(opts.headers ?? {}), ...(checked.url.origin === origin ? opts.originHeaders ?? {} : {}) };
      let res;
      try {
        res = await request(checked.url, { method: 'GET', dispatcher: agent, headers, signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw new DownloadError(`could not fetch ${redactUserinfo(url)}: ${refusal ?? describe(err)}`);
      }
      if (REDIRECTS.has(res.statusCode)) {
        discard(res.body);
        const location = res.headers.location;
        if (typeof location !== 'string' || location === '') throw new DownloadError(`${redactUserinfo(url)} answered ${res.statusCode} without a Location`);
        if (hop >= (opts.maxRedirects ?? 5)) throw new DownloadError(`${redactUserinfo(uri)} redirects more than ${opts.maxRedirects ?? 5} times`);
        url = new URL(location, checked.url).href;
        continue;
      }
      if (res.statusCode !== 200) {
        discard(res.body);
        throw new DownloadError(`${redactUserinfo(url)} answered HTTP ${res.statusCode}`);
      }
      const raw = res.headers['content-length'];
      const length = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : undefined;
      res.body.once('close', closeAgent);
      return { body: res.body, length, url };
    }
  } catch (err) {
    closeAgent();
    throw err;
  }
}

/** Drops a response body nobody will read (undici reports a destroyed body as an error event). */
export function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

function describe(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host name lookup failed (temporary)',
    ECONNRESET: 'connection reset',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
    UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
    UND_ERR_BODY_TIMEOUT: 'the server stopped sending data',
  };
  return (code && known[code]) ?? e?.message ?? String(err);
}
