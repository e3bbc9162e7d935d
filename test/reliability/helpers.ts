import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { startTestServer, type TestServer, type TestServerOptions } from '../support/server.js';
import { createTestDatabase, postgresAvailable } from '../support/postgres.js';

export type DatabaseKind = 'sqlite' | 'postgres';

/**
 * The test runner's PostgreSQL pass (IMAGO_TEST_PG=1) reruns every file with PostgreSQL under
 * each server; the reliability suites already run both databases in the first pass, so they
 * skip this one instead of doubling CI time.
 */
export const IN_POSTGRES_PASS = process.env.IMAGO_TEST_PG === '1';
export const SKIP_IN_POSTGRES_PASS = IN_POSTGRES_PASS && 'run on both databases in the SQLite pass';

/**
 * The databases this machine can run the suites on: SQLite always, the test
 * PostgreSQL (127.0.0.1:5432) when it answers. IMAGO_TEST_REQUIRE_PG=1 (CI)
 * turns a missing PostgreSQL into a failure instead of a skip.
 */
export async function databases(): Promise<DatabaseKind[]> {
  // These suites run each database themselves: the runner's PostgreSQL pass would repeat them.
  if (IN_POSTGRES_PASS) return [];
  if (await postgresAvailable()) return ['sqlite', 'postgres'];
  if (process.env.IMAGO_TEST_REQUIRE_PG === '1') throw new Error('PostgreSQL at 127.0.0.1:5432 is required (IMAGO_TEST_REQUIRE_PG=1) but does not answer');
  return ['sqlite'];
}

/** A test server on the given database (a fresh PostgreSQL database, dropped on close). */
export async function serverOn(kind: DatabaseKind, opts: TestServerOptions = {}): Promise<TestServer> {
  if (kind === 'sqlite') {
    const { IMAGO_DATABASE_URL: _ignored, ...env } = opts.env ?? {};
    const saved = process.env.IMAGO_TEST_PG;
    delete process.env.IMAGO_TEST_PG;
    try {
      return await startTestServer({ ...opts, env });
    } finally {
      if (saved !== undefined) process.env.IMAGO_TEST_PG = saved;
    }
  }
  const db = await createTestDatabase();
  const s = await startTestServer({ ...opts, env: { ...(opts.env ?? {}), IMAGO_DATABASE_URL: db.url } });
  return { ...s, close: async () => { await s.close(); await db.drop(); } };
}

/** The spec's error body: {"error":{"code","message","details"}} with code = status, JSON content type. */
export function assertErrorShape(status: number, contentType: string | null, text: string, what = ''): void {
  assert.match(contentType ?? '', /application\/json/, `${what}: content-type ${contentType} for ${status}`);
  let body: { error?: { code?: unknown; message?: unknown; details?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: ${status} body is not JSON: ${text.slice(0, 200)}`);
  }
  assert.ok(body.error && typeof body.error === 'object', `${what}: no "error" object in ${text.slice(0, 200)}`);
  assert.equal(body.error.code, status, `${what}: error.code ${String(body.error.code)} != ${status}`);
  assert.equal(typeof body.error.message, 'string', `${what}: error.message`);
  assert.equal(typeof body.error.details, 'string', `${what}: error.details`);
}

/** Open file descriptors of this process (the in-process server's included). */
export function openFds(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed while listing
    }
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
