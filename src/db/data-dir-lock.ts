import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/** Another process holds the data dir: starting would run recovery over its in-flight writes. */
export class DataDirInUse extends Error {
  constructor(
    readonly dataDir: string,
    readonly holderPid: number | undefined,
  ) {
    super(
      `data dir ${dataDir} is in use by ${holderPid ? `process ${holderPid}` : 'another process'}; ` +
        'stop it first, or give this process its own IMAGO_DATA_DIR (several nodes share data only through PostgreSQL)',
    );
  }
}

export interface DataDirLock {
  /** Releases the lock; the kernel does the same when the process dies, however it dies. */
  release(): void;
}

/**
 * Locks an embedded (SQLite) data dir for the life of this process.
 *
 * Node has no flock(), so the lock is SQLite's own POSIX lock: a connection to
 * `<dataDir>/imago.lock` in locking_mode=EXCLUSIVE holding a write transaction.
 * The kernel drops it when the process exits, even on kill -9, so a stale lock
 * cannot outlive its holder. The holder's PID is written beside it
 * (`imago.lock.pid`) only to name it in the refusal; the lock never trusts it.
 *
 * A second process fails before it opens the metadata database, runs recovery
 * or touches a store.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const lockFile = path.join(dataDir, 'imago.lock');
  const pidFile = `${lockFile}.pid`;
  const conn = new Database(lockFile, { timeout: 0 });
  try {
    conn.pragma('locking_mode = EXCLUSIVE');
    conn.exec('BEGIN EXCLUSIVE');
    // A write makes the transaction hold the exclusive lock on the file itself.
    conn.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER)');
    conn.exec('DELETE FROM holder');
    conn.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
  } catch (err) {
    conn.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY' || (err as { code?: string }).code === 'SQLITE_LOCKED') {
      throw new DataDirInUse(dataDir, readPid(pidFile));
    }
    throw err;
  }
  writeFileSync(pidFile, `${process.pid}\n`);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      rmSync(pidFile, { force: true });
      conn.close();
    },
  };
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
