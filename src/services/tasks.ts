import { readdir, rm } from 'node:fs/promises';
import type { RequestContext } from '../auth/context.js';
import type { Policy } from '../domain/policy.js';
import type { DialectName } from '../db/database.js';
import type { Metrics } from '../metrics/metrics.js';
import type { WriterRegistry } from './writers.js';
import type { DataService } from './image-data.js';
import type { NodeLiveness } from './nodes.js';
import { BadRequest, Gone, ImagoError, NotFound, ServiceUnavailable, imageNotFound } from '../domain/errors.js';
import { StoreError } from '../stores/errors.js';
import { isUuid } from '../domain/image-input.js';
import { type TasksRepo, type TaskListQuery } from '../db/tasks-repo.js';
import { copiedMessage } from '../import/task.js';
import { LOCATION_IMPORT, TASK_STATUSES, TASK_TYPES, type ImportTaskInput, type Task } from '../domain/task.js';
import type { Resolver } from '../import/http-source.js';
import { ImportFailure, ImportRun, type ImportRunDeps } from './import-run.js';
import { targetOf, type ImageAccess } from './image-access.js';
import type { TaskEvent } from '../notifications/notifier.js';

/** A task interrupted by crashes this many times is rolled back instead of resumed again. */
export const MAX_ATTEMPTS = 3;
const POLL_MS = 2_000;
const SWEEP_MS = 30_000;
const HEARTBEAT_MS = 10_000;
const PROGRESS_MS = 1_000;
/** Progress log lines: at 64 MiB, doubling up to 1 GiB, then every GiB (a line a second would drown the log). */
const PROGRESS_LOG_FIRST = 64 * 2 ** 20;
const PROGRESS_LOG_EVERY = 2 ** 30;

/** What the tasks API and the runner use; built by the composition root (src/runtime.ts). */
export interface TaskServiceDeps extends ImportRunDeps {
  access: ImageAccess;
  policy: Policy;
  writers: Pick<WriterRegistry, 'isClosing'>;
  data: Pick<DataService, 'uploadCap' | 'write' | 'digest' | 'asWriter' | 'removeLocations'>;
  nodes: NodeLiveness;
  metrics: Pick<Metrics, 'taskFinished'>;
  nodeId: string;
  dialect: DialectName;
}

/**
 * Durable import tasks: the API's view of them (/v2/tasks,
 * /v2/images/{id}/tasks) and the runner that executes them. Task state lives
 * in the database; the runner claims pending tasks with a compare-and-set,
 * keeps a heartbeat while it works, and at start resumes or rolls back what
 * a dead process left half done.
 */
export class TaskService {
  readonly repo: TasksRepo;
  /** tokens of requesters (glance-download), never stored: a restart loses them */
  private readonly tokens = new Map<string, string>();
  private readonly running = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = 0;
  private pumping = false;
  private again = false;
  private stopped = true;
  /** DNS for web-download; tests replace it to show that connections are pinned to checked addresses */
  resolver: Resolver | undefined;

  constructor(private readonly deps: TaskServiceDeps) {
    this.repo = deps.tasksRepo;
  }

  // ---- API ----

  async get(id: string, ctx: RequestContext): Promise<Task> {
    this.deps.policy.enforce('tasks_api_access', ctx, {}, 'You are not authorized to use the tasks API.');
    const task = isUuid(id) ? await this.repo.get(id) : undefined;
    if (!task || (!ctx.isAdmin && task.owner !== ctx.projectId) || expired(task)) throw new NotFound(`Task with the given id ${id} not found`);
    this.deps.policy.enforce('get_task', ctx, { owner: task.owner, project_id: task.owner }, 'You are not authorized to see this task.');
    return (await this.withRunnerState([task]))[0]!;
  }

  /**
   * A task whose node died shows its last progress until another node takes
   * it over; until then its message says so, instead of looking merely slow.
   */
  private async withRunnerState(tasks: Task[]): Promise<Task[]> {
    const elsewhere = tasks.filter((t) => t.status === 'processing' && t.runnerNode && t.runnerNode !== this.deps.nodeId);
    if (!elsewhere.length) return tasks;
    const live = new Set(await this.deps.nodes.live());
    return tasks.map((t) =>
      elsewhere.includes(t) && !live.has(t.runnerNode!)
        ? { ...t, message: `${t.message ? `${t.message}. ` : ''}The node running this import (${t.runnerNode}) stopped responding; another node will take the task over and go on.` }
        : t,
    );
  }

  async list(query: Record<string, string | string[] | undefined>, ctx: RequestContext): Promise<{ tasks: Task[]; limit: number }> {
    this.deps.policy.enforce('tasks_api_access', ctx, {}, 'You are not authorized to use the tasks API.');
    this.deps.policy.enforce('get_tasks', ctx, {}, 'You are not authorized to list tasks.');
    const one = (k: string) => {
      const v = query[k];
      if (Array.isArray(v)) throw new BadRequest(`Query parameter ${k} may be given only once.`);
      return v;
    };
    const sortDir = one('sort_dir') ?? 'desc';
    if (sortDir !== 'asc' && sortDir !== 'desc') throw new BadRequest(`Invalid sort direction: ${sortDir}`);
    const sortKey = one('sort_key') ?? 'created_at';
    if (!['created_at', 'updated_at', 'id', 'status', 'type'].includes(sortKey)) throw new BadRequest(`Invalid sort key: ${sortKey}`);
    const status = one('status');
    if (status !== undefined && !(TASK_STATUSES as string[]).includes(status)) throw new BadRequest(`Invalid status value: ${status}`);
    const type = one('type');
    if (type !== undefined && !(TASK_TYPES as readonly string[]).includes(type)) throw new BadRequest(`Invalid type value: ${type}`);
    const rawLimit = one('limit');
    let limit = 25;
    if (rawLimit !== undefined) {
      if (!/^-?\d+$/.test(rawLimit)) throw new BadRequest('limit param must be an integer');
      limit = Number(rawLimit);
      if (limit < 0) throw new BadRequest('limit param must be positive');
      limit = Math.min(limit, 1000);
    }
    const markerId = one('marker');
    let marker: Task | undefined;
    if (markerId !== undefined) {
      if (!isUuid(markerId)) throw new BadRequest('Invalid marker format');
      marker = await this.repo.get(markerId);
      if (!marker || (!ctx.isAdmin && marker.owner !== ctx.projectId)) throw new BadRequest(`Invalid marker: no task found with ID ${markerId}`);
    }
    const q: TaskListQuery = { owner: ctx.isAdmin ? undefined : ctx.projectId ?? '', type, status, sortKey: sortKey as TaskListQuery['sortKey'], sortDir, limit, marker };
    return { tasks: await this.repo.list(q), limit };
  }

  /** GET /v2/images/{id}/tasks: whoever may see the image sees its import tasks (Glance answers 404 otherwise). */
  async listForImage(imageId: string, ctx: RequestContext): Promise<Task[]> {
    const { image, membership } = await this.deps.access.getVisible(imageId, ctx);
    if (!this.deps.policy.check('get_image', ctx, targetOf(image, membership))) throw imageNotFound(imageId);
    return this.withRunnerState(await this.repo.listByImage(image.id));
  }

  // ---- runner ----

  /** Hands a freshly created task to the runner; the token stays in memory only. */
  startImport(taskId: string, token?: string): void {
    if (token) this.tokens.set(taskId, token);
    this.kick();
  }

  /** A task whose lock another import took over ends as Glance ends it. */
  async failStale(stale: { id: string; task?: Task }, imageId: string): Promise<void> {
    if (!stale.task || stale.task.status === 'success' || stale.task.status === 'failure') return;
    await this.repo.finish(stale.id, null, 'failure', 'Expired lock preempted: the import made no progress for too long and a new import took over the image.', null, this.deps.config.import.taskTimeToLiveHours);
    this.deps.log.warn({ image: imageId, task: stale.id }, 'stale import lock taken over');
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), POLL_MS);
    this.timer.unref();
    this.kick();
  }

  /** Stops claiming tasks and waits for the running ones (shutdown aborts them through the writer registry). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    while (this.running.size) await Promise.allSettled([...this.running.values()]);
  }

  /** Import tasks this process is running now (a metric). */
  get runningCount(): number {
    return this.running.size;
  }

  /** task.<event> with the task as it is now (read only when someone listens); never fails the caller. */
  async taskEvent(event: TaskEvent, id: string): Promise<void> {
    if (!this.deps.events.wants(`task.${event}`)) return;
    const task = await this.repo.get(id).catch(() => undefined);
    if (task) this.deps.events.task(event, task);
  }

  kick(): void {
    if (this.stopped) return;
    this.pump().catch((err) => this.deps.log.error({ err }, 'task runner could not claim tasks'));
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        if (this.stopped || this.deps.writers.isClosing) return;
        // With a shared database, other nodes' interrupted imports are taken over as their heartbeats stop.
        const sweepEvery = this.deps.dialect === 'postgres' ? Math.min(SWEEP_MS, this.deps.nodes.timeoutMs / 3) : SWEEP_MS;
        if (Date.now() - this.lastSweep > sweepEvery) {
          this.lastSweep = Date.now();
          await this.deleteExpired();
          if (this.deps.dialect === 'postgres') await this.recoverInterrupted();
        }
        const free = this.deps.config.import.maxConcurrentTasks - this.running.size;
        for (const task of await this.repo.claimPending(this.deps.nodeId, free)) this.launch(task);
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  private launch(task: Task): void {
    const done = this.execute(task)
      .catch((err) => this.deps.log.error({ err, task: task.id }, 'import task crashed'))
      .finally(() => {
        this.running.delete(task.id);
        this.kick();
      });
    this.running.set(task.id, done);
  }

  /** Forgets tasks past their expiry; task.delete for each when someone listens. */
  private async deleteExpired(): Promise<void> {
    const events = this.deps.events;
    const doomed = events.wants('task.delete') ? await this.repo.listExpired() : [];
    await this.repo.deleteExpired();
    for (const t of doomed) events.task('delete', t);
  }

  private async execute(task: Task): Promise<void> {
    const d = this.deps;
    const imageId = (task.input as unknown as ImportTaskInput).image_id;
    const controller = new AbortController();
    // "Copied N MiB", written at most once a second, and always once more after the last bytes of a burst.
    let copied = 0;
    let expected: number | null = null;
    let lastProgress = 0;
    let pending: NodeJS.Timeout | undefined;
    const flush = () => {
      pending = undefined;
      lastProgress = Date.now();
      this.repo.touch(task.id, d.nodeId, copiedMessage(copied, expected), { bytesDone: copied, bytesExpected: expected }).catch(() => {});
    };
    const input = task.input as unknown as ImportTaskInput;
    const method = input.import_req.method.name;
    const started = Date.now();
    const taskLog = { task: task.id, image: imageId, method };
    let milestone = PROGRESS_LOG_FIRST;
    const progress = (bytes: number, total?: number) => {
      if (bytes <= copied) return;
      copied = bytes;
      // The total of the transfer now under way (staging, then each store); unknown without a Content-Length.
      expected = total ?? null;
      if (copied >= milestone) {
        d.log.info({ ...taskLog, bytes: copied, expected }, `import task progress: ${copiedMessage(copied, expected)}`);
        while (milestone <= copied) milestone = milestone < PROGRESS_LOG_EVERY ? milestone * 2 : milestone + PROGRESS_LOG_EVERY;
      }
      if (pending) return;
      const wait = PROGRESS_MS - (Date.now() - lastProgress);
      if (wait <= 0) flush();
      else pending = setTimeout(flush, wait);
    };
    const heartbeat = setInterval(() => {
      this.repo.touch(task.id, d.nodeId).then(
        (mine) => { if (!mine) controller.abort(new TakenOver()); },
        () => {},
      );
    }, HEARTBEAT_MS);
    heartbeat.unref();
    const work = async () => {
      await this.repo.adoptClaim(imageId, task.id, d.nodeId);
      await this.taskEvent('run', task.id);
      await this.taskEvent('processing', task.id);
      if (d.events.wants('image.prepare')) {
        const image = await d.images.get(imageId).catch(() => undefined);
        if (image) for (const store of input.backend) d.events.imagePrepared(image, store);
      }
      d.log.info({ ...taskLog, attempt: task.attempts, stores: input.backend, resumed: !!task.state.resumed }, task.state.resumed ? 'import task resumed' : 'import task started');
      const run = new ImportRun(d, task, { token: this.tokens.get(task.id), signal: controller.signal, progress, resolve: this.resolver });
      try {
        const message = await run.run();
        // Usually the commit that activated the image ended the task too; copy-image and partial imports end here.
        if (!run.ended) await this.repo.finish(task.id, imageId, 'success', message, { image_id: imageId }, d.config.import.taskTimeToLiveHours, { bytesDone: copied, bytesExpected: expected });
        d.metrics.taskFinished(method, 'success', (Date.now() - started) / 1000);
        await this.taskEvent('success', task.id);
        d.log.info({ ...taskLog, durationMs: Date.now() - started, bytes: copied, result: message }, 'import task succeeded');
      } catch (err) {
        if (run.ended) {
          // The task already succeeded with its commit; only clean-up after it failed.
          d.log.warn({ err, task: task.id }, 'clean-up after a finished import failed');
          return;
        }
        const reason = controller.signal.aborted ? controller.signal.reason : err;
        if (reason instanceof TakenOver) {
          // Another node decided this one was dead and runs the task now: leave everything to it.
          d.log.warn({ task: task.id }, 'import task taken over by another node; stopped here');
          return;
        }
        if (reason instanceof ServiceUnavailable && d.writers.isClosing) {
          await this.repo.requeue(task.id, 'Imago is stopping; this import will go on when it starts again.', task.state, { countAttempt: false });
          d.log.info({ ...taskLog, bytes: copied }, 'import task paused: Imago is stopping; it goes on at the next start');
          return;
        }
        await this.fail(task, reason);
        d.metrics.taskFinished(method, 'failure', (Date.now() - started) / 1000);
        await this.taskEvent('failure', task.id);
      }
    };
    try {
      await d.data.asWriter(imageId, task.id, controller, work);
    } finally {
      clearInterval(heartbeat);
      clearTimeout(pending);
      this.tokens.delete(task.id);
    }
  }

  /**
   * Rolls back what the task did and records why, in words a person can act
   * on. Non-copy imports leave the image queued (data, staging and partial
   * copies removed); copy-image leaves the image as it was.
   */
  async fail(task: Task, err: unknown): Promise<void> {
    const d = this.deps;
    const input = task.input as unknown as ImportTaskInput;
    const imageId = input.image_id;
    const method = input.import_req.method.name;
    const copy = method === 'copy-image';
    const allMust = input.import_req.all_stores_must_succeed ?? true;
    const ttlHours = d.config.import.taskTimeToLiveHours;
    const image = await d.images.get(imageId);
    const goneMessage = 'The image was deleted while it was being imported; nothing was kept.';
    const messageFor = (outcome: string): string => {
      if (err instanceof Gone || !image) return goneMessage;
      if (err instanceof ImportFailure || err instanceof ImagoError || err instanceof StoreError) return `${sentence(err.message)}${outcome}`;
      d.log.error({ err, task: task.id }, 'import failed unexpectedly');
      return `${sentence(`Import failed: ${(err as Error)?.message ?? String(err)}`)}${outcome}`;
    };
    await removeWorkFiles(d.config.import.workDir, task.id);
    if (!image) {
      await this.repo.finish(task.id, imageId, 'failure', messageFor(''), null, ttlHours);
      d.log.warn({ task: task.id, image: imageId, method, reason: goneMessage }, 'import task failed');
      return;
    }
    const active = image.locations.filter((l) => l.status === 'active');
    const committed = new Set(task.state.committed ?? []);
    let revert: string[] = [];
    let toQueued = false;
    if (!copy && image.status !== 'active') {
      revert = active.map((l) => l.id);
      toQueued = true;
    } else if (copy && allMust) {
      revert = active.filter((l) => committed.has(l.storeId)).map((l) => l.id);
    }
    const kept = new Set(active.filter((l) => !revert.includes(l.id)).map((l) => l.storeId));
    const failed = input.backend.filter((s) => !kept.has(s));
    if (!copy) await d.staging.discard(imageId);
    const outcome = toQueued ? ` The image is back in status queued; ${retryHint(method, imageId)}`
      : copy ? ' The image itself is unchanged.'
      : ` The image stays active in ${[...kept].sort().join(', ') || 'its stores'}.`;
    const message = messageFor(outcome);
    // The image's rollback, the task's end and the lock's release are one transaction: no client
    // sees the image queued (and stageable) while its task still runs (issue 14, item 3).
    const removed = await this.repo.revert(imageId, task.id, {
      locationIds: revert,
      toQueued,
      clearImporting: input.backend,
      failed,
      restoreFormats: toQueued ? task.state.previousFormats : undefined,
      removeProperties: toQueued ? task.state.copiedProperties : undefined,
      restoreProperties: toQueued ? task.state.previousProperties : undefined,
      end: { status: 'failure', message, result: null, ttlHours, messageIfGone: goneMessage },
    });
    await d.data.removeLocations(removed);
    d.log.warn({ task: task.id, image: imageId, method, reason: message }, 'import task failed');
  }

  // ---- recovery ----

  /**
   * Start-up step for imports (invariant 5): every task a dead process was
   * running is resumed (requeued) unless it has already been interrupted
   * MAX_ATTEMPTS times, in which case it is rolled back; images left
   * `importing` without a live task go back to queued; scratch files go.
   */
  async recoverAtStart(): Promise<{ resumed: number; failed: number; released: number }> {
    const { resumed, failed } = await this.recoverInterrupted();
    await this.sweepWorkDir();
    let released = 0;
    for (const img of await this.deps.images.importing()) {
      const task = img.writerId ? await this.repo.get(img.writerId) : undefined;
      if (task && (task.status === 'pending' || task.status === 'processing')) continue;
      await this.deps.images.releaseImport(img.id);
      await this.deps.staging.discard(img.id);
      released++;
    }
    if (resumed || failed || released) this.deps.log.warn({ resumed, failed, released }, 'recovered interrupted imports');
    return { resumed, failed, released };
  }

  /**
   * What a dead runner was writing for the image: temporary objects, and
   * complete objects naming the image that no location or staging record
   * owns. Safe only while no live process writes for the image.
   */
  private async removeLeftovers(imageId: string): Promise<void> {
    const staged = await this.deps.staging.get(imageId);
    const owned = new Set<string>((await this.deps.images.allLocations()).filter((l) => l.imageId === imageId).map((l) => l.url));
    if (staged) owned.add(staged.url);
    await this.deps.stores.removeLeftovers(imageId, owned, (store, err) =>
      this.deps.log.warn({ err, imageId, store: store.info.id }, 'could not remove what an interrupted import left'),
    );
  }

  /** Scratch files are named after their task; those of tasks no live process runs are removed. */
  private async sweepWorkDir(): Promise<void> {
    const dir = this.deps.config.import.workDir;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const task = await this.repo.get(name.slice(0, 36)).catch(() => undefined);
      const runningElsewhere = task?.status === 'processing' && task.runnerNode !== null && task.runnerNode !== this.deps.nodeId;
      if (!runningElsewhere) await rm(`${dir}/${name}`, { recursive: true, force: true }).catch(() => {});
    }
  }

  private async recoverInterrupted(): Promise<{ resumed: number; failed: number }> {
    let resumed = 0;
    let failed = 0;
    for (const task of await this.repo.interrupted(await this.deps.nodes.live())) {
      if (task.imageId) await this.removeLeftovers(task.imageId);
      if (task.attempts >= MAX_ATTEMPTS) {
        const why = new ImportFailure(`Imago stopped ${task.attempts} times while running this import, so it was rolled back instead of being tried again.`);
        await this.fail(task, why);
        failed++;
      } else {
        await this.repo.requeue(task.id, `Imago stopped while this import was running (attempt ${task.attempts}); it resumes now.`, task.state, { countAttempt: true });
        const elsewhere = task.runnerNode !== null && task.runnerNode !== this.deps.nodeId;
        this.deps.log.warn(
          { task: task.id, image: task.imageId, attempt: task.attempts, deadNode: task.runnerNode },
          elsewhere && this.deps.dialect === 'postgres' ? 'import task of a node that stopped is taken over; it resumes' : 'import task interrupted by a stop; it resumes',
        );
        resumed++;
      }
    }
    return { resumed, failed };
  }
}

/** This node's heartbeat found its task running elsewhere (PostgreSQL, several nodes). */
class TakenOver extends Error {
  constructor() {
    super('This import was taken over by another Imago process.');
  }
}

/** A message ending as a sentence does, so more can follow. */
function sentence(text: string): string {
  return /[.!?]$/.test(text.trim()) ? text.trim() : `${text.trim()}.`;
}

function expired(t: Task): boolean {
  return t.expiresAt !== null && t.expiresAt < new Date().toISOString();
}

function retryHint(method: string, imageId: string): string {
  switch (method) {
    case 'glance-direct':
      return `stage the data again (PUT /v2/images/${imageId}/stage) and import it.`;
    case 'web-download':
      return 'fix the problem (the URL, its data or disk_format) and import again.';
    case LOCATION_IMPORT:
      return `check the URL and its validation_data, then add the location again (POST /v2/images/${imageId}/locations).`;
    default:
      return 'fix the problem and import again.';
  }
}

async function removeWorkFiles(dir: string, taskId: string): Promise<void> {
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(taskId)).map((n) => rm(`${dir}/${n}`, { force: true })));
}
