import mysql from 'mysql2/promise';
import pg from 'pg';

/** Rows as the Glance database returns them; column names are Glance's. */
export type Row = Record<string, unknown>;

/**
 * A read-only view of a Glance database. Every read runs inside one
 * read-only transaction, so the migration sees one consistent snapshot even
 * while Glance keeps serving, and cannot change a thing there by mistake.
 */
export interface GlanceSource {
  readonly dialect: 'mysql' | 'postgres';
  query(sql: string): Promise<Row[]>;
  close(): Promise<void>;
}

/**
 * Accepts the URL as Imago spells it or as glance-api.conf's
 * [database]/connection does (mysql+pymysql://, postgresql+psycopg2://).
 */
export async function openGlanceSource(url: string): Promise<GlanceSource> {
  const m = /^([a-z]+)(\+[a-z0-9_]+)?:\/\//i.exec(url);
  const scheme = m?.[1].toLowerCase();
  const plain = m ? url.replace(m[0], `${scheme}://`) : url;
  if (scheme === 'mysql' || scheme === 'mariadb') return openMysql(plain.replace(/^mariadb:/, 'mysql:'));
  if (scheme === 'postgres' || scheme === 'postgresql') return openPostgres(plain);
  throw new Error(`cannot read a Glance database at "${redact(url)}": use a mysql:// or postgresql:// URL`);
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^/]*@/, '$1***@');
}

async function openMysql(url: string): Promise<GlanceSource> {
  const u = new URL(url);
  // Only the keys mysql2 knows; pymysql's (charset=utf8 and the like) are Glance's business.
  const conn = await mysql.createConnection({
    host: u.hostname,
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)),
    socketPath: u.searchParams.get('unix_socket') ?? undefined,
    // Glance writes naive UTC datetimes: keep them as text rather than let the driver apply our time zone.
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: false,
  });
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  await conn.query('START TRANSACTION READ ONLY');
  return {
    dialect: 'mysql',
    async query(sql) {
      const [rows] = await conn.query(sql);
      return rows as Row[];
    },
    async close() {
      await conn.query('ROLLBACK').catch(() => {});
      await conn.end();
    },
  };
}

const TIMESTAMP_OID = 1114;
const TIMESTAMPTZ_OID = 1184;

async function openPostgres(url: string): Promise<GlanceSource> {
  const client = new pg.Client({
    connectionString: url,
    types: {
      // Naive UTC timestamps stay text (see openMysql); the rest as pg parses them.
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === TIMESTAMP_OID || oid === TIMESTAMPTZ_OID ? (v: string) => v : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  await client.connect();
  await client.query('BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
  return {
    dialect: 'postgres',
    async query(sql) {
      return (await client.query(sql)).rows as Row[];
    },
    async close() {
      await client.query('ROLLBACK').catch(() => {});
      await client.end();
    },
  };
}
