import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';

/**
 * A real Glance (Debian's glance-api) on MariaDB for the migration test:
 * no Keystone — the paste pipeline trusts X-Identity-Status/X-Project-Id/
 * X-Roles headers, as keystonemiddleware would set them — and a filesystem
 * store in a temporary directory.
 */
export const GLANCE_API = process.env.IMAGO_GLANCE_API ?? '/usr/bin/glance-api';
export const GLANCE_MANAGE = process.env.IMAGO_GLANCE_MANAGE ?? '/usr/bin/glance-manage';
export const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };

export async function glanceSkipReason(): Promise<string | undefined> {
  if (!existsSync(GLANCE_API) || !existsSync(GLANCE_MANAGE)) return `${GLANCE_API} is not installed (Debian package glance-api; scripts/test-all.sh installs it)`;
  try {
    const c = await mysql.createConnection({ ...MARIADB, connectTimeout: 2000 });
    await c.end();
  } catch (err) {
    return `no MariaDB at ${MARIADB.host}:${MARIADB.port} as root without password (${(err as Error).message})`;
  }
  return undefined;
}

export interface Glance {
  url: string;
  /** the filesystem store's directory */
  imagesDir: string;
  /** glance-api.conf's [database] connection, as an operator would copy it */
  dbUrl: string;
  dbName: string;
  /** a request as a user of `project` with `roles` (admin by default) */
  req(method: string, urlPath: string, opts?: { project?: string; roles?: string; json?: unknown; body?: Buffer; contentType?: string }): Promise<Response>;
  sql(statement: string, params?: unknown[]): Promise<unknown>;
  stop(): Promise<void>;
}

const PASTE = `[pipeline:glance-api]
pipeline = versionnegotiation context rootapp
[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app
[app:apiversions]
paste.app_factory = glance.api.versions:create_resource
[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory
[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory
[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))));
  });
}

/** Creates Glance's schema in the database `connection` names (glance-manage db_sync), e.g. a PostgreSQL one. */
export async function glanceDbSync(connection: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-glance-sync-'));
  try {
    writeFileSync(path.join(dir, 'glance-api.conf'), `[database]\nconnection = ${connection}\n`);
    await run(GLANCE_MANAGE, ['--config-file', path.join(dir, 'glance-api.conf'), 'db_sync'], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startGlance(): Promise<Glance> {
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-glance-'));
  const imagesDir = path.join(dir, 'images');
  mkdirSync(imagesDir);
  const dbName = `glance_${randomBytes(5).toString('hex')}`;
  const admin = await mysql.createConnection(MARIADB);
  await admin.query(`CREATE DATABASE ${dbName} CHARACTER SET utf8mb4`);
  const dbUrl = `mysql+pymysql://root@${MARIADB.host}:${MARIADB.port}/${dbName}?charset=utf8`;
  const port = await freePort();
  writeFileSync(path.join(dir, 'glance-api-paste.ini'), PASTE);
  writeFileSync(
    path.join(dir, 'glance-api.conf'),
    `[DEFAULT]
bind_host = 127.0.0.1
bind_port = ${port}
workers = 1
use_stderr = true
[database]
connection = ${dbUrl}
[paste_deploy]
flavor =
config_file = ${path.join(dir, 'glance-api-paste.ini')}
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = ${imagesDir}/
[oslo_concurrency]
lock_path = ${path.join(dir, 'lock')}
`,
  );
  let proc: ChildProcess | undefined;
  let log = '';
  const stop = async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc!.once('close', r));
      try {
        process.kill(-proc.pid!, 'SIGTERM'); // the parent and its worker
      } catch {}
      const timer = setTimeout(() => {
        try {
          process.kill(-proc!.pid!, 'SIGKILL');
        } catch {}
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
    await admin.query(`DROP DATABASE IF EXISTS ${dbName}`).catch(() => {});
    await admin.end().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run(GLANCE_MANAGE, ['--config-file', path.join(dir, 'glance-api.conf'), 'db_sync'], dir);
    proc = spawn(GLANCE_API, ['--config-file', path.join(dir, 'glance-api.conf')], { cwd: dir, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    const url = `http://127.0.0.1:${port}`;
    const req: Glance['req'] = (method, urlPath, o = {}) => {
      const headers: Record<string, string> = {
        'x-identity-status': 'Confirmed',
        'x-project-id': o.project ?? 'admin',
        'x-user-id': `${o.project ?? 'admin'}-user`,
        'x-roles': o.roles ?? 'admin,member,reader',
      };
      let body: BodyInit | undefined;
      if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers['content-type'] = o.contentType ?? 'application/json';
      } else if (o.body) {
        body = new Uint8Array(o.body);
        headers['content-type'] = 'application/octet-stream';
      }
      return fetch(url + urlPath, { method, headers, body });
    };
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`glance-api exited ${proc.exitCode}: ${log}`);
      const ok = await req('GET', '/v2/images').then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`glance-api did not answer within 60 s: ${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return { url, imagesDir, dbUrl, dbName, req, sql: async (s, p) => (await admin.query(`USE ${dbName}`), (await admin.query(s, p))[0]), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
