import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { Unauthorized } from '../domain/errors.js';
import { headerValue, type Authenticator, type Credentials } from './context.js';

export interface StaticTokenEntry {
  user: string;
  project: string | null;
  roles: string[];
}

/**
 * Tokens listed in a JSON file `{ "<token>": { user, project, roles } }`.
 * On first start the file is created with one admin token, which is also
 * written to <dataDir>/admin-token (mode 0600) for scripts to read.
 */
export class StaticAuthenticator implements Authenticator {
  private readonly tokens: Map<string, StaticTokenEntry>;

  constructor(tokens: Record<string, StaticTokenEntry>) {
    this.tokens = new Map(Object.entries(tokens));
  }

  static fromFiles(tokensFile: string, dataDir: string): { auth: StaticAuthenticator; adminTokenFile: string; created: boolean } {
    const adminTokenFile = path.join(dataDir, 'admin-token');
    let created = false;
    if (!existsSync(tokensFile)) {
      const token = existsSync(adminTokenFile) ? readFileSync(adminTokenFile, 'utf8').trim() : randomBytes(24).toString('hex');
      mkdirSync(path.dirname(tokensFile), { recursive: true });
      const entries: Record<string, StaticTokenEntry> = { [token]: { user: 'admin', project: 'admin', roles: ['admin', 'member', 'reader'] } };
      writeFileSync(tokensFile, JSON.stringify(entries, null, 2) + '\n', { mode: 0o600 });
      created = true;
    }
    const tokens = JSON.parse(readFileSync(tokensFile, 'utf8')) as Record<string, StaticTokenEntry>;
    if (!existsSync(adminTokenFile)) {
      const admin = Object.entries(tokens).find(([, e]) => e.roles.includes('admin'));
      if (admin) writeFileSync(adminTokenFile, admin[0] + '\n', { mode: 0o600 });
    }
    if (existsSync(adminTokenFile)) chmodSync(adminTokenFile, 0o600);
    return { auth: new StaticAuthenticator(tokens), adminTokenFile, created };
  }

  async authenticate(headers: Record<string, string | string[] | undefined>): Promise<Credentials> {
    const token = headerValue(headers, 'x-auth-token');
    if (!token) throw new Unauthorized('Authentication required: send a token in the X-Auth-Token header.');
    const entry = this.tokens.get(token);
    if (!entry) throw new Unauthorized('The X-Auth-Token is not valid.');
    const creds: Credentials = { userId: entry.user, projectId: entry.project, roles: entry.roles };
    const serviceToken = headerValue(headers, 'x-service-token');
    if (serviceToken) {
      const svc = this.tokens.get(serviceToken);
      if (!svc) throw new Unauthorized('The X-Service-Token is not valid.');
      creds.serviceRoles = svc.roles;
    }
    return creds;
  }
}
