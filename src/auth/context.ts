/** Who is asking: what an authenticator learns from a token. */
export interface Credentials {
  userId: string;
  projectId: string | null;
  roles: string[];
  /** roles of the X-Service-Token's user, when one was sent and is valid */
  serviceRoles?: string[];
  /** `system` when the token is system-scoped (Keystone `system: {all: true}`) */
  systemScope?: string;
  domainId?: string;
  /** when the token stops being valid, if known */
  expiresAt?: Date;
}

/** Everything the domain needs to decide what a request may do. */
export interface RequestContext extends Credentials {
  requestId: string;
  isAdmin: boolean;
  /** the raw token, forwarded when Imago calls other services on the user's behalf */
  token?: string;
}

export interface Authenticator {
  /**
   * Validates the request's X-Auth-Token (and X-Service-Token when present).
   * Throws Unauthorized (src/domain/errors.ts) when the token is missing,
   * unknown, expired or revoked.
   */
  authenticate(headers: Record<string, string | string[] | undefined>): Promise<Credentials>;
  /** value of WWW-Authenticate on 401, e.g. `Keystone uri="http://127.0.0.1:5000"` */
  readonly wwwAuthenticate?: string;
  /** health: resolves when tokens can be validated (the identity service answers and accepts Imago's credentials) */
  probe?(): Promise<void>;
  close?(): Promise<void>;
}

export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function toContext(creds: Credentials, requestId: string, token?: string): RequestContext {
  // Field by field rather than a spread: one object shape for every request (a spread of the
  // authenticators' differently shaped objects showed up as ~10 us per request in profiles).
  return {
    userId: creds.userId,
    projectId: creds.projectId,
    roles: creds.roles,
    serviceRoles: creds.serviceRoles,
    systemScope: creds.systemScope,
    domainId: creds.domainId,
    expiresAt: creds.expiresAt,
    requestId,
    token,
    isAdmin: creds.roles.includes('admin'),
  };
}
