import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import type { Registrar } from '../../src/server/app.js';
import { createTestDatabase } from './postgres.js';

/** Static tokens every test server knows, by name. */
export const TOKENS = {
  admin: 'admin-token',
  member: 'member-token', // member of project "p1"
  reader: 'reader-token', // reader of project "p1"
  other: 'other-token', // member of project "p2"
  third: 'third-token', // member of project "p3"
} as const;

export const PROJECTS = { admin: 'admin', member: 'p1', reader: 'p1', other: 'p2', third: 'p3' } as const;

export interface TestServer extends RunningServer {
  dataDir: string;
  /** fetch against the server with a token by name (default admin) */
  req(method: string, urlPath: string, opts?: { token?: keyof typeof TOKENS | null; headers?: Record<string, string>; body?: unknown; json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** deep-merged into the config file */
  config?: Record<string, unknown>;
  extra?: Registrar[];
  /** reuse a data dir (restart tests) */
  dataDir?: string;
  env?: Record<string, string>;
}

export function makeDataDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'imago-test-'));
}

export function writeTokens(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true });
  const t = (user: string, project: string, roles: string[]) => ({ user, project, roles });
  writeFileSync(
    path.join(dataDir, 'tokens.json'),
    JSON.stringify({
      [TOKENS.admin]: t('admin-user', PROJECTS.admin, ['admin', 'member', 'reader']),
      [TOKENS.member]: t('member-user', PROJECTS.member, ['member', 'reader']),
      [TOKENS.reader]: t('reader-user', PROJECTS.reader, ['reader']),
      [TOKENS.other]: t('other-user', PROJECTS.other, ['member', 'reader']),
      [TOKENS.third]: t('third-user', PROJECTS.third, ['member', 'reader']),
    }),
  );
}

/** Writes a config file for a data dir and returns the loaded Config. */
export function testConfig(dataDir: string, overrides: Record<string, unknown> = {}, env: Record<string, string> = {}): Config {
  const file = path.join(dataDir, 'test-config.json');
  writeFileSync(file, JSON.stringify({ port: 0, logLevel: process.env.IMAGO_TEST_LOG ?? 'silent', ...overrides }));
  return loadConfig({ IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: file, ...env });
}

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? makeDataDir();
  writeTokens(dataDir);
  // IMAGO_TEST_PG=1 runs every test server on its own fresh PostgreSQL database.
  const pgdb = process.env.IMAGO_TEST_PG === '1' && !opts.env?.IMAGO_DATABASE_URL ? await createTestDatabase() : undefined;
  const config = testConfig(dataDir, opts.config, { ...(pgdb ? { IMAGO_DATABASE_URL: pgdb.url } : {}), ...opts.env });
  const server = await startServer(config, { log: pino({ level: config.logLevel }), extra: opts.extra });
  const req: TestServer['req'] = async (method, urlPath, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? 'admin' : o.token;
    if (token) headers['x-auth-token'] = TOKENS[token];
    let body: BodyInit | undefined;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers['content-type'] ??= 'application/json';
    } else if (o.body !== undefined) {
      body = o.body as BodyInit;
    }
    return fetch(server.url + urlPath, { method, headers, body, duplex: 'half' } as RequestInit);
  };
  return {
    ...server,
    dataDir,
    req,
    close: async () => {
      await server.stop();
      await pgdb?.drop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function adminTokenOf(dataDir: string): string {
  return readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
}

/** Creates an image as `token` and returns its JSON. */
export async function createImage(s: TestServer, body: Record<string, unknown> = {}, token: keyof typeof TOKENS = 'admin'): Promise<Record<string, any>> {
  const res = await s.req('POST', '/v2/images', { token, json: { disk_format: 'raw', container_format: 'bare', ...body } });
  if (res.status !== 201) throw new Error(`create image: ${res.status} ${await res.text()}`);
  return res.json() as Promise<Record<string, any>>;
}

export async function uploadBytes(s: TestServer, id: string, data: Buffer, token: keyof typeof TOKENS = 'admin'): Promise<Response> {
  return s.req('PUT', `/v2/images/${id}/file`, { token, headers: { 'content-type': 'application/octet-stream' }, body: data });
}

/** The 1000-byte payload of the observed Glance transcript. */
export function data1k(): Buffer {
  const b = Buffer.alloc(1000);
  for (let i = 0; i < 1000; i++) b[i] = i % 256;
  return b;
}
