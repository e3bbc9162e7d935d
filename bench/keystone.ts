import type { KeystoneAuth } from './options.js';

/** A project-scoped token from Keystone's password method (POST /v3/auth/tokens). */
export async function keystoneToken(k: KeystoneAuth): Promise<string> {
  const base = k.authUrl.replace(/\/+$/, '');
  const url = /\/v3$/.test(base) ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: k.username, password: k.password, domain: { name: k.userDomainName } } } },
        scope: { project: { name: k.projectName, domain: { name: k.projectDomainName } } },
      },
    }),
  }).catch((err: Error) => {
    throw new Error(`cannot reach Keystone at ${url}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
  });
  const text = await res.text();
  const token = res.headers.get('x-subject-token');
  if (res.status !== 201 || !token) throw new Error(`Keystone at ${url} refused the credentials: ${res.status} ${text.slice(0, 300)}`);
  return token;
}
