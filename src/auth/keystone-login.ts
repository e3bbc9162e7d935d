import type { KeystoneConfig } from '../config.js';
import { BadRequest, ServiceUnavailable, Unauthorized } from '../domain/errors.js';

/**
 * The console's sign-in against Keystone (POST /console/api/login): a person's
 * user name and password become a project-scoped token, exchanged here on the
 * server so the page never talks to Keystone (it may not even reach it) and
 * the console needs no cross-origin request. The password goes to Keystone
 * and nowhere else: it is not stored, logged, or put in any message.
 */
export interface PasswordLogin {
  user: string;
  password: string;
  /** domain name of the user and, unless `projectDomain` is given, of the project; default `Default` */
  domain?: string;
  /** project name; when missing, the first project the user has a role on */
  project?: string;
  projectDomain?: string;
}

export interface ProjectRef {
  id: string;
  name: string;
  domainId?: string;
}

export interface IssuedToken {
  token: string;
  expiresAt?: string;
  user: { id: string; name: string };
  project: ProjectRef | null;
}

interface TokenBody {
  token?: {
    user?: { id?: string; name?: string };
    project?: { id?: string; name?: string; domain?: { id?: string } };
    expires_at?: string;
  };
}

export class KeystoneLogin {
  private readonly authUrl: string;

  constructor(config: Pick<KeystoneConfig, 'authUrl'>, private readonly timeoutMs = 10_000) {
    this.authUrl = config.authUrl.replace(/\/+$/, '');
  }

  /** Password sign-in; scoped to `project`, or to the user's first project when none is named. */
  async password(login: PasswordLogin): Promise<IssuedToken> {
    const domain = login.domain || 'Default';
    const identity = { methods: ['password'], password: { user: { name: login.user, password: login.password, domain: { name: domain } } } };
    if (login.project) {
      return this.issue({ identity, scope: { project: { name: login.project, domain: { name: login.projectDomain || domain } } } });
    }
    const unscoped = await this.issue({ identity });
    const projects = await this.projects(unscoped.token);
    if (projects.length === 0) throw new Unauthorized('This user has no role on any project; ask an administrator for one, or name a project.');
    return this.rescope(unscoped.token, projects[0].id);
  }

  /** A token for another project of the same user (the console's project switcher). */
  async rescope(token: string, projectId: string): Promise<IssuedToken> {
    return this.issue({ identity: { methods: ['token'], token: { id: token } }, scope: { project: { id: projectId } } });
  }

  /** The projects the token's user has a role on (Keystone's GET /v3/auth/projects). */
  async projects(token: string): Promise<ProjectRef[]> {
    const res = await this.call('GET', '/auth/projects', { 'x-auth-token': token });
    if (res.status === 401 || res.status === 404) throw new Unauthorized('The token is not valid, has expired or was revoked.');
    if (res.status !== 200) throw this.unavailable(`answered ${res.status} to the project list`);
    const list = (res.body as { projects?: Array<{ id?: string; name?: string; domain_id?: string; enabled?: boolean }> })?.projects ?? [];
    return list
      .filter((p) => typeof p.id === 'string' && p.enabled !== false)
      .map((p) => ({ id: p.id!, name: p.name ?? p.id!, domainId: p.domain_id }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  private async issue(auth: object): Promise<IssuedToken> {
    const res = await this.call('POST', '/auth/tokens?nocatalog', { 'content-type': 'application/json' }, { auth });
    if (res.status === 401 || res.status === 404) {
      throw new Unauthorized('Sign-in failed: the user name, password, domain or project is not right, or the user has no role on that project.');
    }
    if (res.status === 400) throw new BadRequest('The identity service refused the sign-in request as malformed.');
    const token = res.headers.get('x-subject-token');
    const t = (res.body as TokenBody)?.token;
    if (res.status !== 201 || !token || !t?.user?.id) throw this.unavailable(`answered ${res.status} to the sign-in`);
    return {
      token,
      expiresAt: t.expires_at,
      user: { id: t.user.id, name: t.user.name ?? t.user.id },
      project: t.project?.id ? { id: t.project.id, name: t.project.name ?? t.project.id, domainId: t.project.domain?.id } : null,
    };
  }

  private unavailable(what: string): ServiceUnavailable {
    return new ServiceUnavailable(`The identity service is unavailable: Keystone at ${this.authUrl} ${what}.`);
  }

  private async call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; headers: Headers; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(this.authUrl + path, {
        method,
        headers: { accept: 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      // the request's body (which holds the password) is never part of the message
      throw this.unavailable(e?.name === 'TimeoutError' ? `did not answer within ${this.timeoutMs} ms` : `cannot be reached (${e?.cause?.code ?? e?.name ?? 'error'})`);
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
    return { status: res.status, headers: res.headers, body: parsed };
  }
}
