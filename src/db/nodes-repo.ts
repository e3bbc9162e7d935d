import { now, type Db } from './database.js';

/** The `nodes` table: which processes share the database, and when each last said it was alive. */
export class NodesRepo {
  constructor(private readonly db: Db) {}

  async announce(id: string): Promise<void> {
    const ts = now();
    await this.db.insertInto('nodes').values({ id, started_at: ts, heartbeat_at: ts }).execute();
  }

  async beat(id: string): Promise<void> {
    await this.db.updateTable('nodes').set({ heartbeat_at: now() }).where('id', '=', id).execute();
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom('nodes').where('id', '=', id).execute();
  }

  /** Ids of the nodes whose last heartbeat is at or after `cutoff` (ISO-8601). */
  async aliveSince(cutoff: string): Promise<string[]> {
    const rows = await this.db.selectFrom('nodes').select('id').where('heartbeat_at', '>=', cutoff).execute();
    return rows.map((r) => r.id);
  }
}
