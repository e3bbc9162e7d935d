import { sql, type Expression, type ExpressionBuilder, type SqlBool, type Transaction } from 'kysely';
import type { Db, DialectName } from './database.js';
import { now } from './database.js';
import type { Database } from './schema.js';
import type { ByteQuota } from '../domain/quota.js';

/** Statuses of images that no longer hold anything (as Glance's usage queries exclude them). */
const GONE = ['killed', 'deleted', 'pending_delete'];
const WRITING = ['saving', 'uploading', 'importing'];
/** A creation reservation outlives its request by at most this long (the request crashed). */
const CREATE_TTL_MS = 60_000;

type Q = Transaction<Database>;
type R = ExpressionBuilder<Database & { r: Database['quota_reservations'] }, 'r'>;

/** The reservation's task (import, copy-image) is still pending or running. */
function runningTask(eb: R): Expression<SqlBool> {
  return eb.exists(eb.selectFrom('tasks as t').select('t.id').whereRef('t.id', '=', 'r.writer_id').where('t.status', 'in', ['pending', 'processing']));
}

/** A writer's reservation counts while its image still has that writer, or while its task runs (copies claim no image). */
function liveWriter(eb: R): Expression<SqlBool> {
  return eb.or([eb.exists(eb.selectFrom('images as i').select('i.id').whereRef('i.id', '=', 'r.image_id').whereRef('i.writer_id', '=', 'r.writer_id')), runningTask(eb)]);
}

const num = (v: unknown) => Number(v ?? 0);

/**
 * Usage of one project, as the quota rules count it, read inside the
 * transaction that then reserves. Reservations count only while they are
 * live: a writer's while the image still has that writer (so a commit or a
 * rollback, which clear the claim, end it in the same transaction that
 * records the result); a creation's until the image row exists.
 */
export class QuotaQueries {
  constructor(private readonly q: Q) {}

  /**
   * Bytes in stores (image size × active locations) or in staging, plus live
   * reservations of that kind, read in ONE statement: a commit running
   * beside it (outside the quota lock) moves bytes from a reservation to a
   * location atomically, and two statements could see neither.
   */
  async bytesUsed(project: string, resource: ByteQuota, exclude?: { id: string; youngerThan?: string }): Promise<number> {
    const stored =
      resource === 'image_size_total'
        ? this.q
            .selectFrom('images as i')
            .innerJoin('image_locations as l', 'l.image_id', 'i.id')
            .select(sql<string>`coalesce(sum(i.size), 0)`.as('n'))
            .where('i.owner', '=', project)
            .where('l.status', '=', 'active')
            .where('i.size', '>', 0)
            .where('i.status', 'not in', GONE)
        : this.q
            .selectFrom('image_staging as s')
            .innerJoin('images as i', 'i.id', 's.image_id')
            .select(sql<string>`coalesce(sum(s.size), 0)`.as('n'))
            .where('i.owner', '=', project);
    let held = this.q
      .selectFrom('quota_reservations as r')
      .select(sql<string>`coalesce(sum(r.bytes), 0)`.as('n'))
      .where('r.project', '=', project)
      .where('r.resource', '=', resource)
      .where((eb) => liveWriter(eb));
    if (exclude) held = held.where('r.id', '<>', exclude.id);
    // only reservations made before `youngerThan` (created_at + id order)
    if (exclude?.youngerThan) {
      const [at, id] = [exclude.youngerThan, exclude.id];
      held = held.where((eb) => eb.or([eb('r.created_at', '<', at), eb.and([eb('r.created_at', '=', at), eb('r.id', '<', id)])]));
    }
    const row = await this.q.selectNoFrom(sql<string>`(${stored}) + (${held})`.as('n')).executeTakeFirst();
    return num(row?.n);
  }

  /** Images the project owns, plus creations admitted but not yet recorded (one statement, as above). */
  async imageCount(project: string): Promise<number> {
    const images = this.q
      .selectFrom('images')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('owner', '=', project)
      .where('status', 'not in', GONE);
    const pending = this.q
      .selectFrom('quota_reservations as r')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('r.project', '=', project)
      .where('r.resource', '=', 'image_count_total')
      .where('r.created_at', '>=', new Date(Date.now() - CREATE_TTL_MS).toISOString())
      .where((eb) => eb.not(eb.exists(eb.selectFrom('images as i').select('i.id').whereRef('i.id', '=', 'r.image_id'))));
    const row = await this.q.selectNoFrom(sql<string>`(${images}) + (${pending})`.as('n')).executeTakeFirst();
    return num(row?.n);
  }

  /**
   * Images of the project being written: uploading, staging, importing or
   * copying to more stores. A writer counts once it is admitted (holds a
   * reservation), so of two racing writers the second sees the first.
   */
  async uploadingCount(project: string, excludeImage?: string): Promise<number> {
    let query = this.q
      .selectFrom('images as i')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('i.owner', '=', project)
      .where('i.status', 'not in', GONE)
      .where((eb) => {
        const admitted = eb.exists(
          eb
            .selectFrom('quota_reservations as r')
            .select('r.id')
            .whereRef('r.image_id', '=', 'i.id')
            .where((e) => e.or([e('r.writer_id', '=', e.ref('i.writer_id')), runningTask(e)])),
        );
        return eb.and([
          eb.or([
            eb('i.status', 'in', WRITING),
            eb.exists(
              eb.selectFrom('image_properties as p').select('p.image_id').whereRef('p.image_id', '=', 'i.id').where('p.name', '=', 'os_glance_importing_to_stores').where('p.value', '<>', ''),
            ),
            admitted,
          ]),
          eb.or([eb('i.writer_id', 'is', null), admitted]),
        ]);
      });
    if (excludeImage) query = query.where('i.id', '<>', excludeImage);
    return num((await query.executeTakeFirst())?.n);
  }

  async reserve(row: { id: string; project: string; resource: string; imageId: string; writerId: string | null; bytes: number; createdAt?: string }): Promise<void> {
    await this.q
      .insertInto('quota_reservations')
      .values({ id: row.id, project: row.project, resource: row.resource, image_id: row.imageId, writer_id: row.writerId, bytes: row.bytes, created_at: row.createdAt ?? now() })
      .execute();
  }

  /** Sets a reservation's bytes; false when it is gone. */
  async hold(id: string, bytes: number): Promise<boolean> {
    const res = await this.q.updateTable('quota_reservations').set({ bytes }).where('id', '=', id).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Drops the project's reservations that no longer count. */
  async sweep(project: string): Promise<void> {
    const cutoff = new Date(Date.now() - CREATE_TTL_MS).toISOString();
    await this.q
      .deleteFrom('quota_reservations as r')
      .where('r.project', '=', project)
      .where((eb) =>
        eb.or([
          eb.and([eb('r.writer_id', 'is not', null), eb.not(liveWriter(eb))]),
          eb.and([
            eb('r.writer_id', 'is', null),
            eb.or([eb('r.created_at', '<', cutoff), eb.exists(eb.selectFrom('images as i').select('i.id').whereRef('i.id', '=', 'r.image_id'))]),
          ]),
        ]),
      )
      .execute();
  }
}

export class QuotasRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: DialectName,
  ) {}

  /**
   * Runs `work` in a transaction that no other quota decision for `project`
   * runs beside: SQLite runs one transaction at a time on its one connection;
   * PostgreSQL takes a transaction-scoped advisory lock on the project.
   */
  async atomically<T>(project: string, work: (q: QuotaQueries) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(async (trx) => {
      if (this.dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${'imago-quota:' + project}))`.execute(trx);
      return work(new QuotaQueries(trx));
    });
  }

  async read<T>(work: (q: QuotaQueries) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => work(new QuotaQueries(trx)));
  }

  async forget(id: string): Promise<void> {
    await this.db.deleteFrom('quota_reservations').where('id', '=', id).execute();
  }
}
