import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Db } from './database.js';
import { now } from './database.js';
import type { Database, TasksTable } from './schema.js';
import type { ImageStatus } from '../domain/image.js';
import { mergeStoreList, type Task, type TaskProgress, type TaskState, type TaskStatus } from '../domain/task.js';

export const LOCK_PROPERTY = 'os_glance_import_task';
export const IMPORTING_PROPERTY = 'os_glance_importing_to_stores';
export const FAILED_PROPERTY = 'os_glance_failed_import';

export interface NewTask {
  id: string;
  type: string;
  owner: string | null;
  userId: string | null;
  requestId: string | null;
  imageId: string;
  input: Record<string, unknown>;
  state: TaskState;
}

export interface ImportLock {
  /** non-copy imports take the image too: status `from` → `to`, writer = the task */
  claim?: { from: ImageStatus[]; to: ImageStatus; node: string };
  /** target stores: added to os_glance_importing_to_stores, removed from os_glance_failed_import */
  stores: string[];
  /** a stale lock (task gone or expired) to replace in the same transaction */
  bust?: string;
}

export type LockOutcome = 'ok' | 'locked' | 'status' | 'missing';

export interface StoreCommit {
  storeId: string;
  url: string;
  /** image data fields, set on non-copy imports (copy-image keeps the image's own) */
  data?: { size: number; checksum: string; sha512: string; virtualSize: number | null };
  /** move the image to active and drop the writer claim */
  activate: boolean;
  /** end the task (and drop the lock) in the same transaction: the last store of an import */
  end?: TaskEnd;
}

/** How a task ends: written with the image change it goes with, so no one sees one without the other. */
export interface TaskEnd {
  status: 'success' | 'failure';
  message: string;
  result: Record<string, unknown> | null;
  ttlHours: number;
  /** the message instead, when the image turns out to be gone */
  messageIfGone?: string;
  /** the last progress, which the runner writes to the row at most once a second */
  progress?: TaskProgress;
}

export interface Revert {
  /** locations (ids) this task recorded and must take back */
  locationIds: string[];
  /** non-copy imports: back to queued, data fields cleared, writer claim dropped */
  toQueued: boolean;
  clearImporting: string[];
  failed: string[];
  restoreFormats?: { disk_format: string | null; container_format: string | null };
  removeProperties?: string[];
  restoreProperties?: Record<string, string>;
  /** the task's end, in the same transaction as the rollback */
  end?: TaskEnd;
}

export interface TaskListQuery {
  owner?: string;
  type?: string;
  status?: string;
  sortKey: 'created_at' | 'updated_at' | 'id' | 'status' | 'type';
  sortDir: 'asc' | 'desc';
  limit: number;
  marker?: Task;
}

class Abort extends Error {
  constructor(readonly outcome: LockOutcome) {
    super(outcome);
  }
}

function toTask(r: TasksTable): Task {
  return {
    id: r.id,
    type: r.type,
    status: r.status as TaskStatus,
    owner: r.owner,
    userId: r.user_id,
    requestId: r.request_id,
    imageId: r.image_id,
    input: JSON.parse(r.input),
    result: r.result === null ? null : JSON.parse(r.result),
    message: r.message,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    runnerNode: r.runner_node,
    heartbeatAt: r.heartbeat_at,
    attempts: r.attempts,
    state: r.state ? JSON.parse(r.state) : {},
    progress: r.bytes_done === null || r.bytes_done === undefined ? null : { bytesDone: Number(r.bytes_done), bytesExpected: r.bytes_expected === null ? null : Number(r.bytes_expected) },
  };
}

const isUniqueViolation = (err: unknown) => /unique|duplicate|constraint|23505/i.test(String((err as Error)?.message) + String((err as { code?: string })?.code));

/**
 * Tasks, and the image-side bookkeeping of imports: the import lock
 * (`os_glance_import_task`), the store lists Glance shows while an import
 * runs, and the per-store commits. Each step that changes both is one
 * transaction, so a crash leaves either the old or the new state.
 */
export class TasksRepo {
  constructor(private readonly db: Db) {}

  async get(id: string): Promise<Task | undefined> {
    const row = await this.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toTask(row) : undefined;
  }

  /** Creates the task and takes the image's import lock (and claim) atomically. */
  async createImportTask(task: NewTask, lock: ImportLock): Promise<LockOutcome> {
    try {
      await this.db.transaction().execute(async (trx) => {
        const ts = now();
        const image = await trx.selectFrom('images').select(['id', 'status']).where('id', '=', task.imageId).executeTakeFirst();
        if (!image) throw new Abort('missing');
        if (lock.bust) {
          await trx.deleteFrom('image_properties').where('image_id', '=', task.imageId).where('name', '=', LOCK_PROPERTY).where('value', '=', lock.bust).execute();
        }
        try {
          await trx.insertInto('image_properties').values({ image_id: task.imageId, name: LOCK_PROPERTY, value: task.id }).execute();
        } catch (err) {
          if (isUniqueViolation(err)) throw new Abort('locked');
          throw err;
        }
        if (lock.claim) {
          const res = await trx
            .updateTable('images')
            .set({ status: lock.claim.to, writer_id: task.id, writer_node: lock.claim.node, writer_heartbeat_at: ts, updated_at: ts })
            .where('id', '=', task.imageId)
            .where('status', 'in', lock.claim.from)
            .where('writer_id', 'is', null)
            .executeTakeFirst();
          if (Number(res.numUpdatedRows) === 0) throw new Abort('status');
        } else {
          await trx.updateTable('images').set({ updated_at: ts }).where('id', '=', task.imageId).execute();
        }
        await this.updateStoreLists(trx, task.imageId, { importingAdd: lock.stores, failedRemove: lock.stores });
        await trx
          .insertInto('tasks')
          .values({
            id: task.id,
            type: task.type,
            status: 'pending',
            owner: task.owner,
            user_id: task.userId,
            request_id: task.requestId,
            image_id: task.imageId,
            input: JSON.stringify(task.input),
            result: null,
            message: '',
            expires_at: null,
            created_at: ts,
            updated_at: ts,
            runner_node: null,
            heartbeat_at: null,
            attempts: 0,
            state: JSON.stringify(task.state),
          })
          .execute();
      });
      return 'ok';
    } catch (err) {
      if (err instanceof Abort) return err.outcome;
      throw err;
    }
  }

  async lockHolder(imageId: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('image_properties').select('value').where('image_id', '=', imageId).where('name', '=', LOCK_PROPERTY).executeTakeFirst();
    return row?.value;
  }

  /** Takes the next pending tasks for this node; each claim is a compare-and-set. */
  async claimPending(node: string, max: number): Promise<Task[]> {
    if (max <= 0) return [];
    const candidates = await this.db.selectFrom('tasks').select('id').where('status', '=', 'pending').orderBy('created_at').orderBy('id').limit(max).execute();
    const claimed: Task[] = [];
    for (const { id } of candidates) {
      const ts = now();
      const res = await this.db
        .updateTable('tasks')
        .set((eb) => ({ status: 'processing', runner_node: node, heartbeat_at: ts, updated_at: ts, attempts: eb('attempts', '+', 1) }))
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) continue;
      const task = await this.get(id);
      if (task) claimed.push(task);
    }
    return claimed;
  }

  /** Keeps a running task's message, progress and heartbeat current; false when this node no longer runs it. */
  async touch(id: string, node: string, message?: string, progress?: TaskProgress): Promise<boolean> {
    const ts = now();
    const res = await this.db
      .updateTable('tasks')
      .set({
        ...(message === undefined ? {} : { message }),
        ...(progress === undefined ? {} : { bytes_done: progress.bytesDone, bytes_expected: progress.bytesExpected }),
        heartbeat_at: ts,
        updated_at: ts,
      })
      .where('id', '=', id)
      .where('status', '=', 'processing')
      .where('runner_node', '=', node)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async saveState(id: string, state: TaskState): Promise<void> {
    await this.db.updateTable('tasks').set({ state: JSON.stringify(state) }).where('id', '=', id).execute();
  }

  /**
   * Gives a task back to the queue, marked as resumed (shutdown, or after a
   * crash). A graceful stop does not count as an attempt.
   */
  async requeue(id: string, message: string, state: TaskState, opts: { countAttempt: boolean }): Promise<void> {
    await this.db
      .updateTable('tasks')
      .set((eb) => ({
        status: 'pending',
        runner_node: null,
        heartbeat_at: null,
        message,
        state: JSON.stringify({ ...state, resumed: true }),
        updated_at: now(),
        ...(opts.countAttempt ? {} : { attempts: eb('attempts', '-', 1) }),
      }))
      .where('id', '=', id)
      .execute();
  }

  /**
   * Ends a task and drops its import lock in one transaction, so no image
   * keeps a lock whose task is over.
   */
  async finish(id: string, imageId: string | null, status: 'success' | 'failure', message: string, result: Record<string, unknown> | null, ttlHours: number, progress?: TaskProgress): Promise<void> {
    await this.db.transaction().execute((trx) => this.end(trx, id, imageId, { status, message, result, ttlHours, progress }));
  }

  private async end(trx: Transaction<Database>, id: string, imageId: string | null, e: TaskEnd): Promise<void> {
    const ts = now();
    const expires = new Date(Date.now() + e.ttlHours * 3600_000).toISOString();
    await trx
      .updateTable('tasks')
      .set({
        status: e.status,
        message: e.message,
        result: e.result === null ? null : JSON.stringify(e.result),
        expires_at: expires,
        updated_at: ts,
        heartbeat_at: null,
        ...(e.progress ? { bytes_done: e.progress.bytesDone, bytes_expected: e.progress.bytesExpected } : {}),
      })
      .where('id', '=', id)
      .execute();
    if (imageId) await trx.deleteFrom('image_properties').where('image_id', '=', imageId).where('name', '=', LOCK_PROPERTY).where('value', '=', id).execute();
  }

  /** Tasks a runner had started whose node is gone. */
  async interrupted(liveNodes: string[]): Promise<Task[]> {
    let q = this.db.selectFrom('tasks').selectAll().where('status', '=', 'processing');
    if (liveNodes.length) q = q.where((eb) => eb.or([eb('runner_node', 'is', null), eb('runner_node', 'not in', liveNodes)]));
    return (await q.execute()).map(toTask);
  }

  async deleteExpired(): Promise<number> {
    const res = await this.db.deleteFrom('tasks').where('expires_at', 'is not', null).where('expires_at', '<', now()).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  async list(q: TaskListQuery): Promise<Task[]> {
    let query = this.db.selectFrom('tasks').selectAll().where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>=', now())]));
    if (q.owner !== undefined) query = query.where('owner', '=', q.owner);
    if (q.type !== undefined) query = query.where('type', '=', q.type);
    if (q.status !== undefined) query = query.where('status', '=', q.status);
    if (q.marker) {
      const m = q.marker;
      const key = q.sortKey;
      const mv = ({ created_at: m.createdAt, updated_at: m.updatedAt, id: m.id, status: m.status, type: m.type } as const)[key];
      const cmp = q.sortDir === 'asc' ? '>' : '<';
      query = query.where((eb) => eb.or([eb(key, cmp, mv), eb.and([eb(key, '=', mv), eb('id', cmp, m.id)])]));
    }
    const rows = await query.orderBy(q.sortKey, q.sortDir).orderBy('id', q.sortDir).limit(q.limit).execute();
    return rows.map(toTask);
  }

  async listByImage(imageId: string): Promise<Task[]> {
    const rows = await this.db
      .selectFrom('tasks')
      .selectAll()
      .where('image_id', '=', imageId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>=', now())]))
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toTask);
  }

  // ---- image-side bookkeeping, always conditioned on holding the lock ----

  private async holds(trx: Transaction<Database>, imageId: string, taskId: string): Promise<boolean> {
    const row = await trx.selectFrom('image_properties').select('value').where('image_id', '=', imageId).where('name', '=', LOCK_PROPERTY).executeTakeFirst();
    return row?.value === taskId;
  }

  async holdsLock(imageId: string, taskId: string): Promise<boolean> {
    return (await this.lockHolder(imageId)) === taskId;
  }

  /** Marks the runner node as the image's writer (a resumed task may run elsewhere). */
  async adoptClaim(imageId: string, taskId: string, node: string): Promise<void> {
    await this.db.updateTable('images').set({ writer_node: node, writer_heartbeat_at: now() }).where('id', '=', imageId).where('writer_id', '=', taskId).execute();
  }

  /** Records one store's copy; false when the lock was lost (image deleted or lock taken). */
  async commitStore(imageId: string, taskId: string, c: StoreCommit): Promise<string | undefined> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await this.holds(trx, imageId, taskId))) return undefined;
      const ts = now();
      const locationId = randomUUID();
      await trx.insertInto('image_locations').values({ id: locationId, image_id: imageId, store_id: c.storeId, url: c.url, status: 'active', created_at: ts }).execute();
      const set: Record<string, unknown> = { updated_at: ts };
      if (c.data) {
        Object.assign(set, { size: c.data.size, checksum: c.data.checksum, os_hash_algo: 'sha512', os_hash_value: c.data.sha512, virtual_size: c.data.virtualSize });
      }
      if (c.activate) Object.assign(set, { status: 'active', writer_id: null, writer_node: null, writer_heartbeat_at: null });
      await trx.updateTable('images').set(set).where('id', '=', imageId).execute();
      await this.updateStoreLists(trx, imageId, { importingRemove: [c.storeId] });
      if (c.end) await this.end(trx, taskId, imageId, c.end);
      return locationId;
    });
  }

  /** A store that failed while others may go on (all_stores_must_succeed false). */
  async recordFailedStore(imageId: string, taskId: string, storeId: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await this.holds(trx, imageId, taskId))) return false;
      await this.updateStoreLists(trx, imageId, { importingRemove: [storeId], failedAdd: [storeId] });
      await trx.updateTable('images').set({ updated_at: now() }).where('id', '=', imageId).execute();
      return true;
    });
  }

  /** Sets attributes and properties on the image while holding the lock (glance-download metadata, plugins). */
  async updateImage(imageId: string, taskId: string, attrs: { disk_format?: string | null; container_format?: string | null; virtual_size?: number | null }, props: Record<string, string> = {}, removeProps: string[] = []): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await this.holds(trx, imageId, taskId))) return false;
      await trx.updateTable('images').set({ ...attrs, updated_at: now() }).where('id', '=', imageId).execute();
      const names = [...Object.keys(props), ...removeProps];
      if (names.length) await trx.deleteFrom('image_properties').where('image_id', '=', imageId).where('name', 'in', names).execute();
      const rows = Object.entries(props).map(([name, value]) => ({ image_id: imageId, name, value }));
      if (rows.length) await trx.insertInto('image_properties').values(rows).execute();
      return true;
    });
  }

  /**
   * Takes back what a failed import did, in one transaction: its locations
   * are marked pending_delete (returned, for the caller to remove from their
   * stores), the image returns to queued (non-copy imports), the store lists
   * say which stores failed. With `end`, the task ends and the lock goes in
   * the same transaction (else finish() does it).
   */
  async revert(imageId: string, taskId: string, r: Revert): Promise<{ id: string; storeId: string; url: string; status: string }[]> {
    return this.db.transaction().execute(async (trx) => {
      const ts = now();
      const image = await trx.selectFrom('images').select(['id', 'status', 'writer_id']).where('id', '=', imageId).executeTakeFirst();
      if (!image) {
        if (r.end) await this.end(trx, taskId, null, { ...r.end, message: r.end.messageIfGone ?? r.end.message });
        return [];
      }
      const locs = r.locationIds.length
        ? await trx.selectFrom('image_locations').selectAll().where('image_id', '=', imageId).where('id', 'in', r.locationIds).where('status', '=', 'active').execute()
        : [];
      if (locs.length) await trx.updateTable('image_locations').set({ status: 'pending_delete' }).where('id', 'in', locs.map((l) => l.id)).execute();
      const set: Record<string, unknown> = { updated_at: ts };
      if (r.toQueued && ['importing', 'uploading', 'queued'].includes(image.status)) {
        Object.assign(set, { status: 'queued', size: null, virtual_size: null, checksum: null, os_hash_algo: null, os_hash_value: null });
      }
      if (image.writer_id === taskId) Object.assign(set, { writer_id: null, writer_node: null, writer_heartbeat_at: null });
      if (r.restoreFormats) Object.assign(set, r.restoreFormats);
      await trx.updateTable('images').set(set).where('id', '=', imageId).execute();
      const restore = r.restoreProperties ?? {};
      const drop = [...(r.removeProperties ?? []), ...Object.keys(restore)];
      if (drop.length) await trx.deleteFrom('image_properties').where('image_id', '=', imageId).where('name', 'in', drop).execute();
      const rows = Object.entries(restore).map(([name, value]) => ({ image_id: imageId, name, value }));
      if (rows.length) await trx.insertInto('image_properties').values(rows).execute();
      await this.updateStoreLists(trx, imageId, { importingRemove: r.clearImporting, failedAdd: r.failed });
      if (r.end) await this.end(trx, taskId, imageId, r.end);
      return locs.map((l) => ({ id: l.id, storeId: l.store_id, url: l.url, status: 'pending_delete' }));
    });
  }

  /**
   * Removes a store's copy of an active image unless it is the last one;
   * the check and the mark are one transaction so two concurrent removals
   * cannot take both copies.
   */
  async markStoreCopyDeleting(imageId: string, storeId: string, dialect: 'sqlite' | 'postgres'): Promise<{ outcome: 'ok' | 'absent' | 'last'; location?: { id: string; storeId: string; url: string; status: string } }> {
    return this.db.transaction().execute(async (trx) => {
      let imageQ = trx.selectFrom('images').select('id').where('id', '=', imageId);
      if (dialect === 'postgres') imageQ = imageQ.forUpdate();
      await imageQ.executeTakeFirst();
      const locs = await trx.selectFrom('image_locations').selectAll().where('image_id', '=', imageId).where('status', '=', 'active').execute();
      const mine = locs.find((l) => l.store_id === storeId);
      if (!mine) return { outcome: 'absent' };
      if (locs.length <= 1) return { outcome: 'last' };
      await trx.updateTable('image_locations').set({ status: 'pending_delete' }).where('id', '=', mine.id).execute();
      await trx.updateTable('images').set({ updated_at: now() }).where('id', '=', imageId).execute();
      return { outcome: 'ok', location: { id: mine.id, storeId: mine.store_id, url: mine.url, status: 'pending_delete' } };
    });
  }

  private async updateStoreLists(
    trx: Transaction<Database>,
    imageId: string,
    c: { importingAdd?: string[]; importingRemove?: string[]; failedAdd?: string[]; failedRemove?: string[] },
  ): Promise<void> {
    const rows = await trx.selectFrom('image_properties').select(['name', 'value']).where('image_id', '=', imageId).where('name', 'in', [IMPORTING_PROPERTY, FAILED_PROPERTY]).execute();
    const current = Object.fromEntries(rows.map((r) => [r.name, r.value]));
    const next = {
      [IMPORTING_PROPERTY]: mergeStoreList(current[IMPORTING_PROPERTY], c.importingAdd ?? [], c.importingRemove ?? []),
      [FAILED_PROPERTY]: mergeStoreList(current[FAILED_PROPERTY], c.failedAdd ?? [], c.failedRemove ?? []),
    };
    for (const [name, value] of Object.entries(next)) {
      if (current[name] === value) continue;
      await trx.deleteFrom('image_properties').where('image_id', '=', imageId).where('name', '=', name).execute();
      await trx.insertInto('image_properties').values({ image_id: imageId, name, value }).execute();
    }
  }
}
