import type { DialectName } from '../db/database.js';
import type { NodesRepo } from '../db/nodes-repo.js';

/**
 * This process among the others sharing the database. With SQLite only one
 * process uses the database, so every claim not made by this one is dead.
 * With PostgreSQL, a node is dead once its heartbeats stopped for
 * `timeoutMs` (nodeTimeoutSeconds).
 */
export class NodeLiveness {
  constructor(
    readonly nodeId: string,
    readonly dialect: DialectName,
    readonly timeoutMs: number,
    readonly repo: NodesRepo,
  ) {}

  /** The nodes whose claims are still alive, this one first. */
  async live(): Promise<string[]> {
    if (this.dialect === 'sqlite') return [this.nodeId];
    const cutoff = new Date(Date.now() - this.timeoutMs).toISOString();
    return [this.nodeId, ...(await this.repo.aliveSince(cutoff))];
  }
}
