import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Target {
  /** base URL of the image API, without the trailing /v2 (may carry a path prefix) */
  baseUrl: string;
  token: string;
  /** pid of a server process on this machine, for RSS (local Imago only) */
  pid?: number;
  /** every server process behind baseUrl when there are several (the nodes of `--nodes N`); pid is the first */
  pids?: number[];
  /** true when the endpoint runs on this machine, so local references describe its limits */
  sameMachine: boolean;
}

/** The processes whose CPU and memory are the server's: the nodes of a cluster, or the one local server. */
export function serverPids(t: Target): number | number[] | undefined {
  return t.pids ?? t.pid;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export class BenchFailure extends Error {}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'DELETE']);

function isConnectionLost(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_CLOSED';
}

export const IMAGE_PATCH = 'application/openstack-images-v2.1-json-patch';

/** The few image API calls the scenarios need, outside their timed windows. */
export class Api {
  readonly origin: string;
  readonly prefix: string;
  private readonly pool: Pool;
  /** images this run created and has not deleted yet: removed at the end whatever happened */
  private readonly created = new Set<string>();

  constructor(readonly target: Target) {
    const url = new URL(target.baseUrl);
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, '');
    // Idle connections close well before the server's keep-alive timeout, so a request never races the server closing one.
    this.pool = new Pool(this.origin, { connections: 4, keepAliveTimeout: 10_000, keepAliveMaxTimeout: 30_000 });
  }

  path(p: string): string {
    return this.prefix + p;
  }

  url(p: string): string {
    return this.origin + this.prefix + p;
  }

  authHeaders(extra: Record<string, string> = {}): Record<string, string> {
    return { 'x-auth-token': this.target.token, ...extra };
  }

  async call(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const h = this.authHeaders(headers);
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const send = async () => {
      const res = await this.pool.request({ method: method as 'GET', path: this.path(p), headers: h, body: payload });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    };
    try {
      return await send();
    } catch (err) {
      // A kept-alive connection the server closed while a long transfer ran: safe to resend what is idempotent.
      if (!IDEMPOTENT.has(method) || !isConnectionLost(err)) throw err;
      return send();
    }
  }

  async expect(method: string, p: string, status: number, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse> {
    const res = await this.call(method, p, body, headers);
    if (res.status !== status) throw new BenchFailure(`${method} ${p} answered ${res.status}, expected ${status}: ${res.text.slice(0, 300)}`);
    return res;
  }

  async createImage(name: string, extra: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const res = await this.expect('POST', '/v2/images', 201, { name, disk_format: 'raw', container_format: 'bare', ...extra });
    const image = JSON.parse(res.text) as Record<string, any>;
    this.created.add(image.id);
    return image;
  }

  async getImage(id: string): Promise<Record<string, any> | undefined> {
    const res = await this.call('GET', `/v2/images/${id}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new BenchFailure(`GET image ${id} answered ${res.status}: ${res.text.slice(0, 300)}`);
    return JSON.parse(res.text);
  }

  async deleteImage(id: string): Promise<void> {
    const res = await this.call('DELETE', `/v2/images/${id}`);
    if (res.status !== 204 && res.status !== 404) throw new BenchFailure(`DELETE image ${id} answered ${res.status}: ${res.text.slice(0, 300)}`);
    this.created.delete(id);
  }

  /** Deletes every image this run created and still holds (a scenario that failed half-way leaves some). */
  async deleteLeftovers(): Promise<number> {
    const ids = [...this.created];
    for (const id of ids) await this.deleteImage(id).catch(() => {});
    return ids.length;
  }

  /** Polls every `intervalMs` until the image reaches one of `statuses`; fails on `killed` or the deadline. */
  async waitForStatus(id: string, statuses: string[], deadline: number, intervalMs = 50): Promise<Record<string, any>> {
    for (;;) {
      const image = await this.getImage(id);
      if (!image) throw new BenchFailure(`image ${id} disappeared while waiting for ${statuses.join('/')}`);
      if (statuses.includes(image.status)) return image;
      if (image.status === 'killed') throw new BenchFailure(`image ${id} was killed`);
      if (performance.now() > deadline) throw new BenchFailure(`image ${id} still ${image.status} at the deadline (waiting for ${statuses.join('/')})`);
      await sleep(intervalMs);
    }
  }

  /** Downloads the image's data and hashes it as it streams. */
  async hashDownload(id: string): Promise<{ status: number; size: number; md5: string; sha512: string }> {
    const get = () => this.pool.request({ method: 'GET', path: this.path(`/v2/images/${id}/file`), headers: this.authHeaders() });
    const res = await get().catch((err) => (isConnectionLost(err) ? get() : Promise.reject(err)));
    const md5 = createHash('md5');
    const sha = createHash('sha512');
    let size = 0;
    for await (const chunk of res.body) {
      md5.update(chunk);
      sha.update(chunk);
      size += chunk.length;
    }
    return { status: res.statusCode, size, md5: md5.digest('hex'), sha512: sha.digest('hex') };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
