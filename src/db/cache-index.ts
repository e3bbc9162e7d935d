import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/** One complete, verified image in this node's cache. */
export interface CacheEntry {
  imageId: string;
  /** the file under the cache directory holding the bytes (`<imageId>.<uuid>`) */
  file: string;
  size: number;
  md5: string;
  sha512: string;
  hits: number;
  /** seconds since the epoch, as Glance reports them */
  lastAccessed: number;
  lastModified: number;
}

export interface QueuedImage {
  imageId: string;
  /** seconds since the epoch */
  queuedAt: number;
}

/** Another process holds the cache directory: two nodes must not share one. */
export class CacheDirInUse extends Error {
  constructor(readonly dir: string) {
    super(`cache dir ${dir} is in use by another process; give each node its own cache.dir (IMAGO_CACHE_DIR)`);
  }
}

/**
 * The index of one node's image cache: which images are cached (and their
 * hits and access times), and which are queued for the prefetcher. It is
 * node-local on purpose (the cache is per node), so it lives in a small
 * SQLite file in the cache directory, never in the shared database.
 *
 * The connection holds SQLite's exclusive lock for the life of the process
 * (locking_mode=EXCLUSIVE): a second process pointed at the same directory
 * fails at start instead of corrupting the first one's entries. Statements are
 * synchronous and tiny (one row by primary key), a few microseconds each.
 */
export class CacheIndex {
  private readonly db: Database.Database;
  private readonly stmt: {
    get: Database.Statement<[string], Row>;
    all: Database.Statement<[], Row>;
    add: Database.Statement<[string, string, number, string, string, number, number]>;
    hit: Database.Statement<[number, string]>;
    remove: Database.Statement<[string]>;
    total: Database.Statement<[], { total: number | null }>;
    lru: Database.Statement<[], Row>;
    queue: Database.Statement<[string, number]>;
    queued: Database.Statement<[], { image_id: string; queued_at: number }>;
    isQueued: Database.Statement<[string], { image_id: string }>;
    dequeue: Database.Statement<[string]>;
    clearQueue: Database.Statement<[]>;
  };

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    const db = new Database(path.join(dir, 'cache.sqlite'), { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`CREATE TABLE IF NOT EXISTS cached_images (
        image_id TEXT PRIMARY KEY, file TEXT NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL, sha512 TEXT NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0, last_accessed REAL NOT NULL, last_modified REAL NOT NULL)`);
      db.exec('CREATE INDEX IF NOT EXISTS cached_images_lru ON cached_images (last_accessed)');
      db.exec('CREATE TABLE IF NOT EXISTS queued_images (image_id TEXT PRIMARY KEY, queued_at REAL NOT NULL)');
    } catch (err) {
      db.close();
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new CacheDirInUse(dir);
      throw err;
    }
    this.db = db;
    this.stmt = {
      get: db.prepare('SELECT * FROM cached_images WHERE image_id = ?'),
      all: db.prepare('SELECT * FROM cached_images ORDER BY image_id'),
      add: db.prepare('INSERT OR REPLACE INTO cached_images (image_id, file, size, md5, sha512, hits, last_accessed, last_modified) VALUES (?, ?, ?, ?, ?, 0, ?, ?)'),
      hit: db.prepare('UPDATE cached_images SET hits = hits + 1, last_accessed = ? WHERE image_id = ?'),
      remove: db.prepare('DELETE FROM cached_images WHERE image_id = ?'),
      total: db.prepare('SELECT SUM(size) AS total FROM cached_images'),
      lru: db.prepare('SELECT * FROM cached_images ORDER BY last_accessed, image_id LIMIT 1'),
      queue: db.prepare('INSERT OR IGNORE INTO queued_images (image_id, queued_at) VALUES (?, ?)'),
      queued: db.prepare('SELECT image_id, queued_at FROM queued_images ORDER BY queued_at, image_id'),
      isQueued: db.prepare('SELECT image_id FROM queued_images WHERE image_id = ?'),
      dequeue: db.prepare('DELETE FROM queued_images WHERE image_id = ?'),
      clearQueue: db.prepare('DELETE FROM queued_images'),
    };
  }

  get(imageId: string): CacheEntry | undefined {
    const row = this.stmt.get.get(imageId);
    return row && toEntry(row);
  }

  /** Every entry, by image id (as Glance lists them). */
  entries(): CacheEntry[] {
    return this.stmt.all.all().map(toEntry);
  }

  add(e: { imageId: string; file: string; size: number; md5: string; sha512: string }, now: number): void {
    this.stmt.add.run(e.imageId, e.file, e.size, e.md5, e.sha512, now, now);
  }

  hit(imageId: string, now: number): void {
    this.stmt.hit.run(now, imageId);
  }

  remove(imageId: string): boolean {
    return this.stmt.remove.run(imageId).changes > 0;
  }

  totalSize(): number {
    return this.stmt.total.get()?.total ?? 0;
  }

  leastRecentlyUsed(): CacheEntry | undefined {
    const row = this.stmt.lru.get();
    return row && toEntry(row);
  }

  /** Queues an image for the prefetcher; false when it already was. */
  queue(imageId: string, now: number): boolean {
    return this.stmt.queue.run(imageId, now).changes > 0;
  }

  /** Queued images, oldest first. */
  queued(): QueuedImage[] {
    return this.stmt.queued.all().map((r) => ({ imageId: r.image_id, queuedAt: r.queued_at }));
  }

  isQueued(imageId: string): boolean {
    return !!this.stmt.isQueued.get(imageId);
  }

  dequeue(imageId: string): boolean {
    return this.stmt.dequeue.run(imageId).changes > 0;
  }

  clearQueue(): number {
    return this.stmt.clearQueue.run().changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

interface Row {
  image_id: string;
  file: string;
  size: number;
  md5: string;
  sha512: string;
  hits: number;
  last_accessed: number;
  last_modified: number;
}

function toEntry(r: Row): CacheEntry {
  return { imageId: r.image_id, file: r.file, size: r.size, md5: r.md5, sha512: r.sha512, hits: r.hits, lastAccessed: r.last_accessed, lastModified: r.last_modified };
}
