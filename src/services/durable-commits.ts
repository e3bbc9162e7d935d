import { open } from 'node:fs/promises';
import type { DialectName } from '../db/database.js';

/**
 * Makes every transaction committed so far survive a power loss.
 *
 * SQLite runs with synchronous=NORMAL: a commit is in the WAL file but not
 * yet fsynced, so a power cut may undo it. That is acceptable for an upload
 * (the image comes back queued and its object is swept at start) but not
 * before an irreversible step such as removing a deleted image's data: if
 * the delete were undone and the unlink were not, the image would be active
 * with no data. Such steps call this first: one fsync of the WAL file (what
 * synchronous=FULL does after every commit), shared by the callers that
 * arrive while one is running. PostgreSQL commits are durable already.
 */
export class DurableCommits {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly db: { dialect: DialectName; url: string }) {}

  sync(): Promise<void> {
    if (this.db.dialect !== 'sqlite') return Promise.resolve();
    // A caller arriving during an fsync needs one that starts after its own commit.
    if (this.running) {
      return (this.next ??= this.running.then(() => {
        this.next = undefined;
        return this.sync();
      }));
    }
    this.running = this.fsyncWal().finally(() => (this.running = undefined));
    return this.running;
  }

  private async fsyncWal(): Promise<void> {
    const file = this.db.url.slice('sqlite:'.length);
    if (file === '' || file === ':memory:') return;
    let handle;
    try {
      handle = await open(`${file}-wal`, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // no WAL: everything is in the database file
      throw err;
    }
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
}
