import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { CompiledQuery, Kysely, Migrator, PostgresDialect, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type LogEvent } from 'kysely';
import type { Database } from './schema.js';
import { migrationProvider } from './migrations/index.js';
import { SqliteCheckpointer } from './sqlite-checkpointer.js';

export type Db = Kysely<Database>;
export type DialectName = 'sqlite' | 'postgres';

export interface OpenedDb {
  db: Db;
  dialect: DialectName;
  close(): Promise<void>;
  /** PostgreSQL: the pool's connections, for the metrics */
  poolStats?(): { total: number; idle: number; waiting: number };
}

export interface OpenOptions {
  /** called after every query with its duration (metrics) */
  onQuery?(ms: number, failed: boolean): void;
}

/**
 * Opens the metadata database named by `url` (`sqlite:<file>` or
 * `postgres://...`) and brings its schema up to date.
 *
 * Durability: SQLite runs in WAL mode with synchronous=NORMAL, so a
 * committed transaction survives a crash of the process; after a power loss
 * the last few commits may be lost, never the database. Checkpoints run on a
 * worker thread (sqlite-checkpointer.ts). PostgreSQL keeps its
 * own server settings (synchronous_commit).
 */
export async function openDatabase(url: string, opts: OpenOptions = {}): Promise<OpenedDb> {
  let opened: OpenedDb;
  const onQuery = opts.onQuery;
  const log = onQuery ? (e: LogEvent) => onQuery(e.queryDurationMillis, e.level === 'error') : undefined;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const sqlite = new SQLite(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: withStatementCache(sqlite) }), log });
    let checkpointer: SqliteCheckpointer | undefined;
    if (file !== ':memory:' && file !== '') {
      sqlite.pragma('wal_autocheckpoint = 0');
      // After a checkpoint lets the WAL start over, its file is cut back to this size.
      sqlite.pragma('journal_size_limit = 16777216');
      checkpointer = new SqliteCheckpointer(file, {
        // Kysely hands its one SQLite connection to one caller at a time: holding it keeps every query out.
        whileIdle: (work) => db.connection().execute(() => work()),
        onError: (message) => process.emitWarning(`SQLite checkpoint failed: ${message}`),
        onExit: () => sqlite.pragma('wal_autocheckpoint = 1000'),
      });
    }
    opened = {
      db,
      dialect: 'sqlite',
      close: async () => {
        await checkpointer?.stop();
        await db.destroy();
      },
    };
  } else {
    // Loaded only for PostgreSQL: the embedded default (SQLite) need not carry the driver in memory.
    const { default: pg } = await import('pg');
    pg.types.setTypeParser(20, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // An idle connection the server drops (restart, failover) must not crash the process;
    // the pool replaces it on next use.
    pool.on('error', (err) => process.emitWarning(`PostgreSQL connection lost: ${err.message}`));
    // A connection lost while a query runs on it: pg rejects the query (the caller answers 503) and
    // also emits 'error' on the checked-out client, which nothing else listens to; unheard, that
    // event would end the process. The pool drops such a client when it is released.
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log });
    opened = { db, dialect: 'postgres', close: () => db.destroy(), poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }) };
  }
  await migrate(opened.db);
  return opened;
}

export async function migrate(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? error}`);
  }
}

/** Timestamps are ISO-8601 UTC with milliseconds; they sort as text. */
export function now(): string {
  return new Date().toISOString();
}

/** Glance shows timestamps to the second. */
export function displayTime(iso: string | null): string | null {
  return iso === null ? null : iso.slice(0, 19) + 'Z';
}

/**
 * Transactions begin IMMEDIATE: they take SQLite's write lock up front, waiting
 * (busy_timeout) while a checkpoint holds it. A deferred transaction that read
 * first would instead fail at once with SQLITE_BUSY when it tries to write
 * then, since waiting could deadlock. Requests share one connection and run
 * their transactions one at a time anyway, so nothing is lost.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver() as SqliteDriver;
    driver.beginTransaction = async (connection: DatabaseConnection) => {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    };
    return driver;
  }
}

const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely's SQLite driver prepares every statement again on each execution;
 * preparing is a large part of a metadata request's CPU. Statements are
 * reusable, and the driver runs one query at a time on its connection, so a
 * bounded cache keyed by SQL text is safe.
 */
function withStatementCache(sqlite: SQLite.Database): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>();
  const prepare = sqlite.prepare.bind(sqlite);
  return new Proxy(sqlite, {
    get(target, prop, receiver) {
      if (prop !== 'prepare') {
        const value = Reflect.get(target, prop, receiver);
        // Native methods need the real database as `this`.
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (source: string) => {
        let stmt = cache.get(source);
        if (stmt) {
          cache.delete(source);
        } else {
          stmt = prepare(source);
          if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        }
        cache.set(source, stmt);
        return stmt;
      };
    },
  });
}
