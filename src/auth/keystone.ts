import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { KeystoneConfig } from '../config.js';
import { ServiceUnavailable, Unauthorized } from '../domain/errors.js';
import { headerValue, type Authenticator, type Credentials } from './context.js';

/** Anything with pino's `warn`/`debug` shape; optional. */
export interface AuthLogger {
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface KeystoneAuthenticatorOptions {
  /** per request to Keystone, default 10 s */
  timeoutMs?: number;
  /** validated tokens kept in memory, least recently used dropped first; default 10,000 */
  maxCacheEntries?: number;
  /** how long a token Keystone rejected is rejected without asking again; default 10 s, never more than cacheSeconds */
  negativeCacheSeconds?: number;
  logger?: AuthLogger;
}

/** What Keystone says about a token (GET /v3/auth/tokens, POST /v3/auth/tokens). */
interface KeystoneTokenBody {
  token?: {
    user?: { id?: string; name?: string };
    project?: { id?: string };
    domain?: { id?: string };
    system?: { all?: boolean };
    roles?: Array<{ id?: string; name?: string }>;
    expires_at?: string;
    issued_at?: string;
  };
}

interface CacheEntry {
  /** undefined: Keystone said the token is not valid */
  creds?: Credentials;
  /** Date.now() after which Keystone must be asked again */
  until: number;
}

// Fernet tokens are ~200 url-safe base64 characters; anything that is not
// printable ASCII cannot be a Keystone token (and cannot go in a header).
const TOKEN_SHAPE = /^[\x21-\x7e]{1,8192}$/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cloneCreds(c: Credentials): Credentials {
  return { ...c, roles: [...c.roles], ...(c.serviceRoles ? { serviceRoles: [...c.serviceRoles] } : {}) };
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  const cause = e?.cause;
  if (cause?.code) return cause.code;
  return cause?.message ?? e?.message ?? String(err);
}

/**
 * Validates Keystone tokens the way keystonemiddleware's auth_token does:
 * Imago authenticates to Keystone as its service user, then asks
 * `GET /v3/auth/tokens` about each user token (X-Subject-Token), caching the
 * answer until the token expires or `cacheSeconds` pass, whichever is sooner.
 *
 * - missing / malformed / invalid / expired / revoked token → Unauthorized (401)
 * - Keystone unreachable, timing out, erroring, or refusing Imago's own
 *   credentials → ServiceUnavailable (503)
 * - X-Service-Token, when sent, is validated too; its roles become `serviceRoles`.
 */
export class KeystoneAuthenticator implements Authenticator {
  readonly wwwAuthenticate: string;
  private readonly authUrl: string;
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private readonly negativeCacheMs: number;
  /** validated (and rejected) tokens by sha256, least recently used dropped first (the maintained lru-cache package) */
  private readonly cache: LRUCache<string, CacheEntry>;
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  private readonly logger?: AuthLogger;
  private service?: { token: string; refreshAt: number };
  private serviceInflight?: Promise<string>;
  private closed = false;

  constructor(private readonly config: KeystoneConfig, opts: KeystoneAuthenticatorOptions = {}) {
    if (!config.authUrl) throw new Error('KeystoneAuthenticator needs config.authUrl');
    this.authUrl = config.authUrl.replace(/\/+$/, '');
    const uri = config.wwwAuthenticateUri || this.authUrl.replace(/\/v3$/, '');
    this.wwwAuthenticate = `Keystone uri="${uri}"`;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.cacheMs = Math.max(0, (config.cacheSeconds ?? 300) * 1000);
    this.negativeCacheMs = Math.min(this.cacheMs, Math.max(0, (opts.negativeCacheSeconds ?? 10) * 1000));
    this.cache = new LRUCache<string, CacheEntry>({ max: Math.max(1, opts.maxCacheEntries ?? 10_000) });
    this.logger = opts.logger;
  }

  /** number of tokens (valid or not) currently remembered */
  get cacheSize(): number {
    return this.cache.size;
  }

  async authenticate(headers: Record<string, string | string[] | undefined>): Promise<Credentials> {
    if (this.closed) throw new ServiceUnavailable('The authentication service is shutting down.');
    const token = headerValue(headers, 'x-auth-token')?.trim();
    if (!token) throw this.unauthorized('Authentication required: send a Keystone token in the X-Auth-Token header.');
    const creds = await this.validate(token, 'X-Auth-Token');
    const serviceToken = headerValue(headers, 'x-service-token')?.trim();
    if (serviceToken) {
      const svc = await this.validate(serviceToken, 'X-Service-Token');
      creds.serviceRoles = [...svc.roles];
    }
    return creds;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
    this.inflight.clear();
    this.service = undefined;
  }

  // WWW-Authenticate is added by the error mapper from `wwwAuthenticate`
  private unauthorized(message: string): Unauthorized {
    return new Unauthorized(message);
  }

  /** Credentials for a token, from the cache or Keystone; throws Unauthorized when it is not valid. */
  private async validate(token: string, header: string): Promise<Credentials> {
    if (!TOKEN_SHAPE.test(token)) throw this.unauthorized(`The ${header} is not valid.`);
    const key = createHash('sha256').update(token).digest('base64url');
    const now = Date.now();
    let entry = this.cache.get(key);
    // `until` never passes the token's own expiry, so an expired token is never served from the cache
    if (!entry || entry.until <= now) {
      if (entry) this.cache.delete(key);
      let pending = this.inflight.get(key);
      if (!pending) {
        pending = this.ask(token).finally(() => this.inflight.delete(key));
        this.inflight.set(key, pending);
      }
      entry = await pending;
      if (!this.closed && entry.until > Date.now()) this.cache.set(key, entry);
    }
    if (!entry.creds) throw this.unauthorized(`The ${header} is not valid, has expired or was revoked.`);
    return cloneCreds(entry.creds);
  }

  /** One validation round trip; retries once with a fresh service token if Keystone refuses ours. */
  private async ask(token: string): Promise<CacheEntry> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const serviceToken = await this.serviceToken();
      const res = await this.call('GET', '/auth/tokens?nocatalog', {
        'x-auth-token': serviceToken,
        'x-subject-token': token,
      });
      if (res.status === 200) return this.toEntry(res.body as KeystoneTokenBody);
      if (res.status === 404) {
        // Keystone's answer for malformed, unknown, expired and revoked tokens alike
        this.logger?.debug?.({ status: 404 }, 'keystone rejected a token');
        return { until: Date.now() + this.negativeCacheMs };
      }
      if (res.status === 401) {
        // our service token expired or was revoked: get a new one and ask again
        if (this.service?.token === serviceToken) this.service = undefined;
        continue;
      }
      if (res.status === 403) {
        this.logger?.warn({ status: 403, user: this.config.username, project: this.config.projectName },
          'keystone does not let the service user validate tokens; it needs the admin or service role');
        throw new ServiceUnavailable('The identity service refused to validate the token: Imago\'s service user lacks permission (403).');
      }
      throw this.keystoneError(`answered ${res.status} to token validation`);
    }
    throw this.keystoneError('keeps rejecting Imago\'s service token (401)');
  }

  private toEntry(body: KeystoneTokenBody): CacheEntry {
    const t = body?.token;
    const expires = t?.expires_at ? Date.parse(t.expires_at) : NaN;
    if (!t?.user?.id || Number.isNaN(expires)) throw this.keystoneError('returned a token document Imago does not understand');
    const now = Date.now();
    if (expires <= now) {
      // Keystone and Imago disagree about the time; treat it as expired, as keystonemiddleware does
      return { until: now + Math.min(this.negativeCacheMs, 1000) };
    }
    const creds: Credentials = {
      userId: t.user.id,
      projectId: t.project?.id ?? null,
      roles: (t.roles ?? []).map((r) => r.name).filter((n): n is string => typeof n === 'string'),
      expiresAt: new Date(expires),
    };
    if (t.system?.all) creds.systemScope = 'all';
    if (t.domain?.id) creds.domainId = t.domain.id;
    return { creds, until: Math.min(now + this.cacheMs, expires) };
  }

  /**
   * Health: Keystone answers and still accepts Imago's own token (a cached
   * service token alone would hide a Keystone that went away or credentials
   * that were changed). The health monitor caches the outcome for a few seconds.
   */
  async probe(): Promise<void> {
    const token = await this.serviceToken();
    const res = await this.call('GET', '/auth/tokens', { 'x-auth-token': token, 'x-subject-token': token });
    if (res.status === 200) return;
    if (this.service?.token === token) this.service = undefined;
    throw this.keystoneError(`answered ${res.status} when Imago checked its own token`);
  }

  /** Imago's own token, renewed shortly before it expires. */
  private async serviceToken(): Promise<string> {
    const now = Date.now();
    if (this.service && now < this.service.refreshAt) return this.service.token;
    if (!this.serviceInflight) {
      this.serviceInflight = this.issueServiceToken().finally(() => { this.serviceInflight = undefined; });
    }
    return this.serviceInflight;
  }

  private async issueServiceToken(): Promise<string> {
    const c = this.config;
    const res = await this.call('POST', '/auth/tokens?nocatalog', { 'content-type': 'application/json' }, {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: c.username, password: c.password, domain: { name: c.userDomainName || 'Default' } } },
        },
        scope: { project: { name: c.projectName, domain: { name: c.projectDomainName || 'Default' } } },
      },
    });
    const token = res.headers.get('x-subject-token');
    if (res.status === 401 || res.status === 403 || res.status === 404) {
      this.logger?.warn({ status: res.status, user: c.username, project: c.projectName, authUrl: this.authUrl },
        'keystone rejected Imago\'s service credentials (auth.keystone.username/password/projectName)');
      throw new ServiceUnavailable('The identity service rejected Imago\'s service credentials; tokens cannot be validated.');
    }
    if (res.status !== 201 || !token) throw this.keystoneError(`answered ${res.status} when Imago asked for its service token`);
    const body = res.body as KeystoneTokenBody;
    const issued = Date.parse(body?.token?.issued_at ?? '');
    const expires = Date.parse(body?.token?.expires_at ?? '');
    // lifetime by Keystone's own clock, so a skewed local clock does not matter
    const lifetime = Number.isNaN(issued) || Number.isNaN(expires) ? 60_000 : Math.max(0, expires - issued);
    const margin = Math.min(120_000, lifetime / 4);
    this.service = { token, refreshAt: Date.now() + lifetime - margin };
    return token;
  }

  private keystoneError(what: string): ServiceUnavailable {
    return new ServiceUnavailable(`The identity service is unavailable: Keystone at ${this.authUrl} ${what}.`);
  }

  /** A request to Keystone; network failures are retried once, then reported as 503. */
  private async call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; headers: Headers; body: unknown }> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) await sleep(50);
      let res: Response;
      try {
        res = await fetch(this.authUrl + path, {
          method,
          headers: { accept: 'application/json', ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        lastErr = err;
        const e = err as Error;
        if (e?.name === 'TimeoutError' || e?.name === 'AbortError') break;
        continue;
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        lastErr = err;
        continue;
      }
      let parsed: unknown = null;
      if (text) {
        try { parsed = JSON.parse(text); } catch { parsed = null; }
      }
      return { status: res.status, headers: res.headers, body: parsed };
    }
    const reason = describeFetchError(lastErr);
    this.logger?.warn({ err: lastErr, authUrl: this.authUrl, method, path: path.split('?')[0] }, 'keystone request failed');
    throw this.keystoneError(reason === 'timed out' ? `did not answer within ${this.timeoutMs} ms` : `cannot be reached (${reason})`);
  }
}
