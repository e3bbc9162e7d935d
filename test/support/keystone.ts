/**
 * Test harness: a real OpenStack Keystone (Debian's `keystone` package) served
 * by uwsgi on a free loopback port, in a fresh temporary directory.
 *
 *   const ks = await startKeystone();            // ~5-8 s
 *   const token = await ks.token('demo-member'); // project-scoped token
 *   ...
 *   await ks.stop();
 *
 * Nothing is shared between runs: every start gets its own keystone.conf,
 * SQLite database, fernet/credential keys, logs and random passwords.
 * See docs/keystone.md.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { KeystoneConfig } from '../../src/config.js';

const execFileAsync = promisify(execFile);

export const KEYSTONE_MANAGE = process.env.IMAGO_KEYSTONE_MANAGE ?? '/usr/bin/keystone-manage';
export const KEYSTONE_WSGI = process.env.IMAGO_KEYSTONE_WSGI ?? '/usr/bin/keystone-wsgi-public';
export const UWSGI = process.env.IMAGO_UWSGI ?? '/usr/bin/uwsgi';
const UWSGI_PYTHON3_PLUGIN = '/usr/lib/uwsgi/plugins/python3_plugin.so';

export interface KeystoneUser {
  id: string;
  name: string;
  password: string;
  projectId: string;
  projectName: string;
  /** role names assigned on the project (implied roles not included) */
  roles: string[];
}

export interface Keystone {
  /** http://127.0.0.1:PORT */
  url: string;
  /** url + '/v3' */
  authUrl: string;
  adminPassword: string;
  /** admin (bootstrap), glance (service user), demo-member, demo-reader, alt-member */
  users: Record<string, KeystoneUser>;
  /** project name → id: admin, service, demo, alt */
  projects: Record<string, string>;
  /** roles name → id: admin, member, reader, service */
  roles: Record<string, string>;
  /** Imago's own credentials (user `glance`, admin + service roles on project `service`) */
  serviceUser: { username: string; password: string; projectName: string; userDomainName: string; projectDomainName: string };
  /** the temp directory holding keystone.conf, the DB, keys and logs */
  dir: string;
  /** Keystone's own log (oslo.log) */
  logFile: string;
  /** uwsgi's log (request lines, python tracebacks during startup) */
  uwsgiLogFile: string;
  tokenExpirationSeconds: number;
  /** a project-scoped token for one of `users`, by password auth */
  token(user: string): Promise<string>;
  /** a system-scoped (`system: {all: true}`) token; only `admin` has a system role assignment */
  systemToken(user?: string): Promise<string>;
  /** a domain-scoped token for the Default domain; only `admin` has a role on it */
  domainToken(user?: string): Promise<string>;
  /** revokes a token (DELETE /v3/auth/tokens) */
  revoke(token: string): Promise<void>;
  /** registers (or re-points) the `image` service's public/internal/admin endpoints at `url` */
  registerImageEndpoint(url: string): Promise<void>;
  /** the `auth.keystone` block for Imago's config */
  keystoneConfig(overrides?: Partial<KeystoneConfig>): KeystoneConfig;
  /** OS_* environment for the `openstack` CLI with password auth as `user` */
  openstackEnv(user: string): Record<string, string>;
  /** last lines of Keystone's and uwsgi's logs */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

export interface StartKeystoneOptions {
  /** [token] expiration, seconds (default 3600). Keystone tokens only expire at whole seconds. */
  tokenExpirationSeconds?: number;
  /** give up waiting for Keystone after this long (default 90 s) */
  startTimeoutMs?: number;
  /** keep the temp directory after stop() (also: IMAGO_KEEP_KEYSTONE=1) */
  keepDir?: boolean;
}

/** Why Keystone cannot be started here, or undefined when everything needed is installed. */
export function keystoneUnavailableReason(): string | undefined {
  const missing = [KEYSTONE_MANAGE, KEYSTONE_WSGI, UWSGI, UWSGI_PYTHON3_PLUGIN].filter((f) => !existsSync(f));
  if (missing.length === 0) return undefined;
  return `Keystone test harness needs ${missing.join(', ')}: apt-get install -y keystone uwsgi-core uwsgi-plugin-python3 (see docs/keystone.md)`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines: number): string {
  try {
    const all = readFileSync(file, 'utf8').split('\n');
    return all.slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function keystoneConf(dir: string, expiration: number): string {
  return `[DEFAULT]
log_file = ${path.join(dir, 'keystone.log')}
use_stderr = false
debug = false
# Fernet tokens carry no more than this
max_token_size = 255

[database]
connection = sqlite:///${path.join(dir, 'keystone.db')}?check_same_thread=false

[fernet_tokens]
key_repository = ${path.join(dir, 'fernet-keys')}

[fernet_receipts]
key_repository = ${path.join(dir, 'fernet-keys')}

[credential]
key_repository = ${path.join(dir, 'credential-keys')}

[token]
provider = fernet
expiration = ${expiration}

[cache]
# In-process cache: without it every authenticated request costs Keystone
# ~200 SQL queries (0.5-1 s on SQLite). Coherent because uwsgi runs ONE
# worker process; Keystone invalidates it itself when a token is revoked.
enabled = true
backend = dogpile.cache.memory

[catalog]
driver = sql

[identity]
# cheap bcrypt: tests authenticate often
password_hash_rounds = 4

[oslo_policy]
# absolute paths so /etc/keystone/policy.d is never picked up
policy_file = ${path.join(dir, 'policy.yaml')}
policy_dirs = ${path.join(dir, 'policy.d')}
`;
}

/** What `keystone-manage fernet_setup` / `credential_setup` produce: keys 0 (staged) and 1 (primary). */
function writeKeyRepository(dir: string): void {
  mkdirSync(dir, { mode: 0o700 });
  for (const name of ['0', '1']) {
    // a Fernet key: 32 random bytes, url-safe base64 with padding (44 characters)
    const key = randomBytes(32).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    writeFileSync(path.join(dir, name), key, { mode: 0o600 });
  }
}

interface Exec {
  (args: string[]): Promise<void>;
}

export async function startKeystone(opts: StartKeystoneOptions = {}): Promise<Keystone> {
  const reason = keystoneUnavailableReason();
  if (reason) throw new Error(reason);

  const expiration = opts.tokenExpirationSeconds ?? 3600;
  const startTimeoutMs = opts.startTimeoutMs ?? 90_000;
  const keepDir = opts.keepDir ?? process.env.IMAGO_KEEP_KEYSTONE === '1';
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-keystone-'));
  const confFile = path.join(dir, 'keystone.conf');
  const logFile = path.join(dir, 'keystone.log');
  const uwsgiLogFile = path.join(dir, 'uwsgi.log');
  mkdirSync(path.join(dir, 'policy.d'));
  writeFileSync(path.join(dir, 'policy.yaml'), '# Keystone\'s built-in defaults\n');
  writeFileSync(confFile, keystoneConf(dir, expiration));

  const adminPassword = 'admin-' + randomBytes(12).toString('hex');

  const logs = (lines = 60) =>
    `--- ${logFile} (last ${lines} lines) ---\n${tail(logFile, lines)}\n--- ${uwsgiLogFile} (last ${lines} lines) ---\n${tail(uwsgiLogFile, lines)}`;

  const manage: Exec = async (args) => {
    try {
      await execFileAsync(KEYSTONE_MANAGE, ['--config-file', confFile, ...args], { cwd: dir, timeout: 120_000, maxBuffer: 16 << 20 });
    } catch (err) {
      const e = err as Error & { stderr?: string; stdout?: string };
      throw new Error(`keystone-manage ${args[0]} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
    }
  };

  let proc: ChildProcess | undefined;
  let stopped = false;
  let aborted = false;

  const killUwsgi = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // the wrapper shell leads its own process group; uwsgi's master and worker are in it
    try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ }
    const timer = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    await exited;
    clearTimeout(timer);
    // the worker may outlive the shell for a moment
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
  };

  const cleanup = async () => {
    aborted = true;
    await killUwsgi();
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  };

  /** Starts uwsgi on `port`; resolves true once GET /v3 answers, false if the port was taken. */
  const serve = async (port: number): Promise<boolean> => {
    // A tiny shell wrapper whose stdin is a pipe from this process: when this
    // process dies for whatever reason (even SIGKILL) the pipe closes, `read`
    // returns and uwsgi is stopped, so no Keystone outlives its test run.
    // It then also removes the temp directory (stop() does that otherwise).
    const script = 'uwsgi_bin=$1; shift; "$uwsgi_bin" "$@" </dev/null & pid=$!; ' +
      'trap \'kill -TERM $pid 2>/dev/null; wait $pid; exit 0\' TERM INT; ' +
      'read _ignored; kill -TERM $pid 2>/dev/null; wait $pid; ' +
      'case "$IMAGO_KEYSTONE_ORPHAN_DIR" in */imago-keystone-*) rm -rf "$IMAGO_KEYSTONE_ORPHAN_DIR";; esac';
    const args = [
      '--plugin', 'python3',
      '--http-socket', `127.0.0.1:${port}`,
      '--wsgi-file', KEYSTONE_WSGI,
      // One thread: Keystone's eventlet-patched locks deadlock now and then when uwsgi
      // threads share them ("greenlet.error: cannot switch to a different thread").
      '--master', '--processes', '1', '--threads', '1', '--enable-threads',
      '--die-on-term', '--no-orphans', '--need-app',
      '--buffer-size', '65535',
      // --http-socket closes the connection after every response; say so, or
      // keep-alive clients (undici/fetch) race the close and get ECONNRESET
      '--add-header', 'Connection: close',
      '--chdir', dir,
      '--logto', uwsgiLogFile,
      '--procname-prefix-spaced', `imago-test-keystone:${port}`,
    ];
    writeFileSync(uwsgiLogFile, '');
    const child = spawn('/bin/sh', ['-c', script, 'keystone-uwsgi', UWSGI, ...args], {
      cwd: dir,
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { ...process.env, OS_KEYSTONE_CONFIG_FILES: confFile, OS_KEYSTONE_CONFIG_DIR: '', IMAGO_KEYSTONE_ORPHAN_DIR: keepDir ? '' : dir },
    });
    proc = child;
    // never let the harness keep the event loop alive
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    let exited = false;
    child.once('exit', () => { exited = true; });

    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      if (aborted) return false;
      if (exited) {
        if (/Address already in use/.test(tail(uwsgiLogFile, 200))) return false;
        throw new Error(`uwsgi exited while starting Keystone\n${logs()}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v3`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return true;
      } catch { /* not yet */ }
      await sleep(100);
    }
    throw new Error(`Keystone did not answer GET /v3 within ${startTimeoutMs} ms\n${logs()}`);
  };

  let port = await freePort();
  try {
    const t0 = Date.now();
    const dbg = (m: string) => { if (process.env.IMAGO_KEYSTONE_DEBUG === '1') console.error(`keystone harness: ${m} at +${Date.now() - t0} ms`); };
    // Keystone's own fernet_setup/credential_setup only write two random keys
    // (0 = staged, 1 = primary); doing it here saves two Python start-ups (~4 s CPU).
    writeKeyRepository(path.join(dir, 'fernet-keys'));
    writeKeyRepository(path.join(dir, 'credential-keys'));
    // bootstrap needs the schema; uwsgi only needs the conf and the keys to boot,
    // so it starts at once, alongside db_sync + bootstrap.
    const bootstrapPort = port;
    const schema = (async () => {
      await manage(['db_sync']);
      dbg('db_sync done');
      await manage([
        'bootstrap',
        '--bootstrap-password', adminPassword,
        '--bootstrap-username', 'admin',
        '--bootstrap-project-name', 'admin',
        '--bootstrap-role-name', 'admin',
        '--bootstrap-service-name', 'keystone',
        '--bootstrap-admin-url', `http://127.0.0.1:${bootstrapPort}/v3`,
        '--bootstrap-public-url', `http://127.0.0.1:${bootstrapPort}/v3`,
        '--bootstrap-internal-url', `http://127.0.0.1:${bootstrapPort}/v3`,
        '--bootstrap-region-id', 'RegionOne',
      ]);
      dbg('bootstrap done');
    })();
    const [, up] = await Promise.all([schema, serve(port).then((r) => { dbg('uwsgi answers'); return r; })]);
    let ready = up;
    for (let attempt = 0; !ready && attempt < 5; attempt++) {
      await killUwsgi();
      port = await freePort();
      ready = await serve(port);
    }
    if (!ready) throw new Error(`could not find a free port for Keystone\n${logs()}`);
    const ks = await provision({ dir, port, bootstrapPort, adminPassword, expiration, logFile, uwsgiLogFile, logs });
    ks.stop = async () => {
      if (stopped) return;
      stopped = true;
      await cleanup();
    };
    if (process.env.IMAGO_KEYSTONE_DEBUG === '1') console.error(`keystone ready at ${ks.url} in ${Date.now() - t0} ms (${dir})`);
    return ks;
  } catch (err) {
    const msg = `Keystone failed to start: ${(err as Error).message}\n${(err as Error).message.includes('--- ') ? '' : logs()}`;
    console.error(msg);
    stopped = true;
    await cleanup();
    throw new Error(msg, { cause: err });
  }
}

interface ProvisionArgs {
  dir: string;
  port: number;
  bootstrapPort: number;
  adminPassword: string;
  expiration: number;
  logFile: string;
  uwsgiLogFile: string;
  logs: (lines?: number) => string;
}

type Scope = { project: { name: string; domain: { id: string } } } | { system: { all: true } } | { domain: { id: string } };

/** Creates the projects, users and role assignments every test relies on, over Keystone's REST API. */
async function provision(a: ProvisionArgs): Promise<Keystone> {
  const url = `http://127.0.0.1:${a.port}`;
  const authUrl = `${url}/v3`;

  async function call(method: string, p: string, token: string | undefined, body?: unknown, extra: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
    const headers: Record<string, string> = { accept: 'application/json', ...extra };
    if (token) headers['x-auth-token'] = token;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const res = await fetch(authUrl + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(90_000) });
        const text = await res.text();
        let json: any = null;
        try { json = text ? JSON.parse(text) : null; } catch { json = text; }
        return { status: res.status, json, headers: res.headers };
      } catch (err) {
        lastErr = err;
        await sleep(100);
      }
    }
    throw new Error(`Keystone ${method} ${p} failed: ${(lastErr as Error).message}`);
  }

  async function ok(method: string, p: string, token: string | undefined, body?: unknown, extra?: Record<string, string>): Promise<any> {
    const r = await call(method, p, token, body, extra);
    if (r.status >= 300) throw new Error(`Keystone ${method} ${p} → ${r.status}: ${JSON.stringify(r.json)}\n${a.logs(30)}`);
    return r.json;
  }

  async function issue(name: string, password: string, scope: Scope): Promise<{ token: string; expiresAt: number }> {
    const r = await call('POST', '/auth/tokens?nocatalog', undefined, {
      auth: { identity: { methods: ['password'], password: { user: { name, domain: { id: 'default' }, password } } }, scope },
    });
    const token = r.headers.get('x-subject-token');
    if (r.status !== 201 || !token) throw new Error(`Keystone refused a token for ${name} (${r.status}): ${JSON.stringify(r.json)}`);
    return { token, expiresAt: Date.parse(r.json.token.expires_at) };
  }

  let admin: { token: string; expiresAt: number } | undefined;
  async function adminToken(): Promise<string> {
    if (!admin || admin.expiresAt - Date.now() < 1500) {
      admin = await issue('admin', a.adminPassword, { project: { name: 'admin', domain: { id: 'default' } } });
    }
    return admin.token;
  }

  const t = await adminToken();
  const roles: Record<string, string> = {};
  for (const r of (await ok('GET', '/roles', t)).roles as Array<{ id: string; name: string }>) roles[r.name] = r.id;
  // Keystone >= Rocky's bootstrap creates admin ⊃ member ⊃ reader; `service` is only created by 2023.2+.
  for (const name of ['reader', 'member', 'admin', 'service']) {
    if (!roles[name]) roles[name] = (await ok('POST', '/roles', await adminToken(), { role: { name } })).role.id;
  }

  const projects: Record<string, string> = {};
  for (const p of (await ok('GET', '/projects', await adminToken())).projects as Array<{ id: string; name: string }>) projects[p.name] = p.id;
  for (const [name, description] of [['service', 'Service users'], ['demo', 'Demo project'], ['alt', 'Alternate project']]) {
    if (!projects[name]) {
      projects[name] = (await ok('POST', '/projects', await adminToken(), { project: { name, description, domain_id: 'default', enabled: true } })).project.id;
    }
  }

  const users: Record<string, KeystoneUser> = {};
  const adminUser = (await ok('GET', '/users?name=admin', await adminToken())).users[0];
  users.admin = { id: adminUser.id, name: 'admin', password: a.adminPassword, projectId: projects.admin, projectName: 'admin', roles: ['admin'] };
  const wanted: Array<[string, string, string[]]> = [
    ['glance', 'service', ['admin', 'service']],
    ['demo-member', 'demo', ['member']],
    ['demo-reader', 'demo', ['reader']],
    ['alt-member', 'alt', ['member']],
  ];
  for (const [name, project, roleNames] of wanted) {
    const password = `${name}-${randomBytes(9).toString('hex')}`;
    const user = (await ok('POST', '/users', await adminToken(), {
      user: { name, password, domain_id: 'default', default_project_id: projects[project], enabled: true },
    })).user;
    for (const role of roleNames) await ok('PUT', `/projects/${projects[project]}/users/${user.id}/roles/${roles[role]}`, await adminToken());
    users[name] = { id: user.id, name, password, projectId: projects[project], projectName: project, roles: roleNames };
  }
  // lets tests ask for a domain-scoped token
  await ok('PUT', `/domains/default/users/${users.admin.id}/roles/${roles.admin}`, await adminToken());

  if (a.bootstrapPort !== a.port) {
    // uwsgi had to move to another port after bootstrap wrote the identity endpoints
    for (const e of (await ok('GET', '/endpoints', await adminToken())).endpoints as Array<{ id: string; url: string }>) {
      if (e.url.includes(`:${a.bootstrapPort}/`)) await ok('PATCH', `/endpoints/${e.id}`, await adminToken(), { endpoint: { url: `${authUrl}` } });
    }
  }

  const userOf = (name: string): KeystoneUser => {
    const u = users[name];
    if (!u) throw new Error(`unknown Keystone test user "${name}" (known: ${Object.keys(users).join(', ')})`);
    return u;
  };

  return {
    url,
    authUrl,
    adminPassword: a.adminPassword,
    users,
    projects,
    roles,
    serviceUser: { username: 'glance', password: users.glance.password, projectName: 'service', userDomainName: 'Default', projectDomainName: 'Default' },
    dir: a.dir,
    logFile: a.logFile,
    uwsgiLogFile: a.uwsgiLogFile,
    tokenExpirationSeconds: a.expiration,
    async token(user: string) {
      const u = userOf(user);
      return (await issue(u.name, u.password, { project: { name: u.projectName, domain: { id: 'default' } } })).token;
    },
    async systemToken(user = 'admin') {
      const u = userOf(user);
      return (await issue(u.name, u.password, { system: { all: true } })).token;
    },
    async domainToken(user = 'admin') {
      const u = userOf(user);
      return (await issue(u.name, u.password, { domain: { id: 'default' } })).token;
    },
    async revoke(token: string) {
      const r = await call('DELETE', '/auth/tokens', await adminToken(), undefined, { 'x-subject-token': token });
      if (r.status !== 204) throw new Error(`Keystone did not revoke the token (${r.status}): ${JSON.stringify(r.json)}`);
    },
    async registerImageEndpoint(imageUrl: string) {
      const tok = await adminToken();
      const services = (await ok('GET', '/services?type=image', tok)).services as Array<{ id: string }>;
      const serviceId = services[0]?.id ?? (await ok('POST', '/services', tok, { service: { type: 'image', name: 'glance', description: 'Imago image service', enabled: true } })).service.id;
      for (const e of (await ok('GET', `/endpoints?service_id=${serviceId}`, tok)).endpoints as Array<{ id: string }>) {
        await ok('DELETE', `/endpoints/${e.id}`, await adminToken());
      }
      for (const iface of ['public', 'internal', 'admin']) {
        await ok('POST', '/endpoints', await adminToken(), { endpoint: { service_id: serviceId, interface: iface, url: imageUrl, region_id: 'RegionOne', enabled: true } });
      }
    },
    keystoneConfig(overrides: Partial<KeystoneConfig> = {}): KeystoneConfig {
      return {
        wwwAuthenticateUri: url,
        authUrl,
        username: 'glance',
        password: users.glance.password,
        projectName: 'service',
        userDomainName: 'Default',
        projectDomainName: 'Default',
        cacheSeconds: 1,
        region: 'RegionOne',
        checkAtStart: 'degraded',
        ...overrides,
      };
    },
    openstackEnv(user: string) {
      const u = userOf(user);
      return {
        OS_AUTH_TYPE: 'password',
        OS_AUTH_URL: authUrl,
        OS_IDENTITY_API_VERSION: '3',
        OS_IMAGE_API_VERSION: '2',
        OS_USERNAME: u.name,
        OS_PASSWORD: u.password,
        OS_PROJECT_NAME: u.projectName,
        OS_USER_DOMAIN_NAME: 'Default',
        OS_PROJECT_DOMAIN_NAME: 'Default',
        OS_REGION_NAME: 'RegionOne',
        OS_INTERFACE: 'public',
      };
    },
    logs: a.logs,
    stop: async () => { /* replaced by startKeystone */ },
  };
}
