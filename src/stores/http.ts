import { Transform, type Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { ObjectNotFound, StoreReadOnly, StoreUnavailable } from './errors.js';
import type { ByteRange, PutResult, StoreDriver, StoreInfo } from './store.js';

export interface HttpStoreSettings {
  /** the only URLs this store serves: each location must start with one of these */
  allowedPrefixes: string[];
  /** longest wait for a response, and longest silence while reading one, ms */
  timeoutMs: number;
}

/**
 * A read-only store of image data that lives on web servers, as glance_store's
 * http driver: the locations API records `http(s)://` URLs in it and
 * downloads stream from them. Only URLs under an operator's `allowedPrefixes`
 * belong to it, so a client can never make Imago fetch an address the
 * operator did not choose (no SSRF through locations); redirects are not
 * followed for the same reason. URLs with credentials are never accepted.
 * A URL's fragment names a distinct location (tempest records `URL` and
 * `URL#new`) and is not sent.
 */
export class HttpStore implements StoreDriver {
  readonly info: StoreInfo;
  private readonly agent: Agent;

  constructor(info: Omit<StoreInfo, 'type' | 'readOnly' | 'properties'>, private readonly settings: HttpStoreSettings) {
    this.info = { ...info, type: 'http', readOnly: true, properties: { allowed_prefixes: settings.allowedPrefixes } };
    this.agent = new Agent({ connect: { timeout: settings.timeoutMs }, headersTimeout: settings.timeoutMs, bodyTimeout: settings.timeoutMs });
  }

  owns(location: string): boolean {
    let url: URL;
    try {
      url = new URL(location);
    } catch {
      return false;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    if (url.username || url.password) return false;
    return this.settings.allowedPrefixes.some((p) => location.startsWith(p));
  }

  async put(): Promise<PutResult> {
    throw new StoreReadOnly(this.info.id);
  }

  async size(location: string): Promise<number> {
    const res = await this.send('HEAD', location);
    await res.body.dump();
    const length = Number(res.headers['content-length']);
    if (!Number.isSafeInteger(length) || length < 0) throw new StoreUnavailable(this.info.id, `${redact(location)} answered HEAD without a Content-Length`);
    return length;
  }

  async get(location: string, range?: ByteRange): Promise<Readable> {
    const res = await this.send('GET', location, range ? { range: `bytes=${range.start}-${range.end}` } : {});
    if (!range || res.statusCode === 206) return res.body;
    // A server that ignores Range sends everything: keep only the asked bytes.
    return res.body.pipe(slice(range.start, range.end - range.start + 1));
  }

  async delete(): Promise<void> {
    // The data belongs to the web server; forgetting the location is all Imago does.
  }

  async exists(location: string): Promise<boolean> {
    try {
      await this.size(location);
      return true;
    } catch (err) {
      if (err instanceof ObjectNotFound) return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<string> {
    // A web server cannot be listed; every location this store holds is a client's, none is an orphan.
  }

  async removeTemporary(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async send(method: 'GET' | 'HEAD', location: string, headers: Record<string, string> = {}) {
    if (!this.owns(location)) throw new ObjectNotFound(location);
    const url = new URL(location);
    url.hash = '';
    let res;
    try {
      res = await request(url, { method, headers, dispatcher: this.agent }); // undici's request never follows redirects
    } catch (err) {
      throw new StoreUnavailable(this.info.id, `${method} ${redact(location)}: ${(err as Error).message}`);
    }
    if (res.statusCode === 404 || res.statusCode === 410) {
      await res.body.dump();
      throw new ObjectNotFound(location);
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      await res.body.dump();
      throw new StoreUnavailable(this.info.id, `${method} ${redact(location)} answered HTTP ${res.statusCode}`);
    }
    return res;
  }
}

/** A URL as logs and messages may show it: without a query string, which may carry a signature. */
function redact(location: string): string {
  return location.replace(/\?.*$/, '?…');
}

/** Passes `length` bytes starting at `skip`, then ends. */
function slice(skip: number, length: number): Transform {
  let seen = 0;
  let left = length;
  let ended = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const start = Math.max(0, skip - seen);
      seen += chunk.length;
      if (left > 0 && start < chunk.length) {
        const part = chunk.subarray(start, start + left);
        left -= part.length;
        this.push(part);
      }
      if (left === 0 && !ended) {
        ended = true;
        this.push(null);
      }
      done();
    },
  });
}
