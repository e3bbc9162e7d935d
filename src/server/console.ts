import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { toContext } from '../auth/context.js';
import { KeystoneLogin, type IssuedToken, type ProjectRef } from '../auth/keystone-login.js';
import { BadRequest, NotFound, TooManyRequests, Unauthorized } from '../domain/errors.js';
import { resource } from './routes.js';

/**
 * The web console (issue 17, docs/console.md): the static files `npm run build`
 * writes to dist/console-static (Vite; hashed names under assets/), served at
 * /console/, and its two sign-in endpoints. Everything else the console shows
 * or does goes through the public /v2 API with X-Auth-Token.
 *
 * - hashed assets: `Cache-Control: public, max-age=31536000, immutable`;
 *   index.html and sw.js: `no-cache` (a new build is picked up at once);
 * - a strict Content-Security-Policy on every console response: only this
 *   origin, no inline script or style, no framing;
 * - POST /console/api/login: a pasted token (either auth mode) or, in Keystone
 *   mode, user name + password (+ domain, project) exchanged with Keystone here;
 *   rate-limited per remote address (`console.loginsPerMinute`, 429 beyond);
 * - GET /console/api/projects: the signed-in user's projects, for the switcher.
 */

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.woff2': 'font/woff2',
};

interface StaticFile {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  immutable: boolean;
}

/** dist/console of this package, whether running compiled (dist/src/server) or from source (src/server under tsx). */
export function consoleDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, 'dist', 'console-static');
}

function loadFiles(root: string, authMode: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(root)) return files;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) { walk(full); continue; }
      const rel = path.relative(root, full).split(path.sep).join('/');
      let body = readFileSync(full);
      // the page learns which sign-in form to show from the document itself: no extra endpoint
      if (rel === 'index.html') body = Buffer.from(body.toString('utf8').replace('%IMAGO_AUTH_MODE%', authMode));
      const type = TYPES[path.extname(name)] ?? 'application/octet-stream';
      const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 512;
      files.set(rel, { body, gzip: compressible ? gzipSync(body, { level: 9 }) : undefined, type, immutable: rel.startsWith('assets/') });
    }
  };
  walk(root);
  return files;
}

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  reply.headers(SECURITY_HEADERS);
  reply.header('content-type', file.type);
  reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('vary', 'accept-encoding');
  const gzip = file.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  if (gzip) reply.header('content-encoding', 'gzip');
  return reply.send(gzip ? file.gzip : file.body);
}

/** At most `limit` attempts per key in any sliding minute. */
export class LoginRateLimiter {
  private readonly attempts = new Map<string, number[]>();
  constructor(private readonly limit: number, private readonly windowMs = 60_000) {}

  /** Records an attempt; returns the seconds to wait when over the limit, 0 when allowed. */
  take(key: string, now = Date.now()): number {
    const since = now - this.windowMs;
    const list = (this.attempts.get(key) ?? []).filter((t) => t > since);
    if (list.length >= this.limit) {
      this.attempts.set(key, list);
      return (list[0] + this.windowMs - now) / 1000;
    }
    list.push(now);
    this.attempts.set(key, list);
    if (this.attempts.size > 10_000) this.sweep(since);
    return 0;
  }

  private sweep(since: number): void {
    for (const [k, list] of this.attempts) if (!list.some((t) => t > since)) this.attempts.delete(k);
  }
}

const text = (v: unknown, name: string, max = 1024): string | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max) throw new BadRequest(`"${name}" must be a string of at most ${max} characters.`);
  return v;
};

export function registerConsole(app: FastifyInstance, rt: Runtime): void {
  if (!rt.config.console.enabled) {
    const off = async () => { throw new NotFound('The web console is disabled on this Imago (console.enabled: false).'); };
    for (const url of ['/console', '/console/*']) app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url, config: { public: true, raw: true }, handler: off });
    return;
  }
  const mode = rt.config.auth.mode;
  const files = loadFiles(consoleDir(), mode);
  const keystone = mode === 'keystone' && rt.config.auth.keystone ? new KeystoneLogin(rt.config.auth.keystone) : undefined;
  const limiter = new LoginRateLimiter(rt.config.console.loginsPerMinute);

  const file = (rel: string) => {
    const f = files.get(rel);
    if (!f) {
      throw new NotFound(files.size === 0
        ? 'The console is not built: run `npm run build` (it writes dist/console-static).'
        : `The resource could not be found: /console/${rel}`);
    }
    return f;
  };

  app.get('/console', { config: { public: true } }, async (_req, reply) => reply.redirect('/console/', 301));
  resource(app, '/console/', { GET: async (req, reply) => send(req, reply, file('index.html')) }, { public: true });
  resource(app, '/console/*', {
    GET: async (req, reply) => {
      const rel = (req.params as { '*': string })['*'];
      if (rel.startsWith('api/')) throw new NotFound(`The resource could not be found: ${req.method} /console/${rel}`);
      return send(req, reply, file(rel));
    },
  }, { public: true });

  /** Who a token belongs to, as the console shows it. */
  const identify = async (request: FastifyRequest, token: string, issued?: IssuedToken) => {
    const creds = await rt.auth.authenticate({ 'x-auth-token': token });
    const ctx = toContext(creds, request.id, token);
    return {
      token,
      mode,
      expires_at: issued?.expiresAt ?? creds.expiresAt?.toISOString() ?? null,
      user: issued?.user ?? { id: creds.userId, name: creds.userId },
      project: issued?.project ?? (creds.projectId ? { id: creds.projectId, name: creds.projectId } : null),
      roles: creds.roles,
      is_admin: rt.policy.isAdmin(ctx),
    };
  };

  resource(app, '/console/api/login', {
    POST: async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const wait = limiter.take(request.ip);
      if (wait > 0) throw new TooManyRequests('Too many sign-in attempts from this address; wait a minute and try again.', wait);
      const b = request.body;
      if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new BadRequest('The sign-in body must be a JSON object.');
      const body = b as Record<string, unknown>;
      const token = text(body.token, 'token', 8192);
      const projectId = text(body.project_id, 'project_id', 255);
      if (token) {
        if (projectId && keystone) {
          // the project switcher: the same user, another project, no password needed
          return identify(request, token, undefined).then(async () => {
            const issued = await keystone.rescope(token, projectId);
            return identify(request, issued.token, issued);
          });
        }
        return identify(request, token.trim());
      }
      if (!keystone) throw new BadRequest('This Imago uses static tokens: sign in by pasting a token ("token").');
      const user = text(body.user, 'user', 255);
      const password = text(body.password, 'password', 4096);
      if (!user || !password) throw new BadRequest('Sign-in needs "user" and "password" (or a "token").');
      const issued = await keystone.password({
        user,
        password,
        domain: text(body.domain, 'domain', 255),
        project: text(body.project, 'project', 255),
      });
      return identify(request, issued.token, issued);
    },
  }, { public: true });

  resource(app, '/console/api/projects', {
    GET: async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const token = request.ctx.token;
      if (!token) throw new Unauthorized();
      let projects: ProjectRef[];
      if (keystone) projects = await keystone.projects(token);
      else projects = request.ctx.projectId ? [{ id: request.ctx.projectId, name: request.ctx.projectId }] : [];
      return { projects: projects.map((p) => ({ id: p.id, name: p.name, domain_id: p.domainId ?? null })), current: request.ctx.projectId };
    },
  });
}
