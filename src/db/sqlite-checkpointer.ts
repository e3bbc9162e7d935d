import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../module-worker.js';
import type { CheckpointWorkerData } from './sqlite-checkpoint-worker.js';

/**
 * SQLite copies the WAL back into the database file (a checkpoint) every
 * ~1000 pages, inside whichever commit crosses that mark, with two fsyncs:
 * on the event loop that costs milliseconds every hundred metadata writes.
 * Here the connection that serves requests has automatic checkpoints off and
 * a worker thread with its own connection runs PASSIVE checkpoints (which
 * never block readers or writers) a few times a second.
 *
 * Under a steady stream of writes a PASSIVE checkpoint never catches up with
 * the end of the WAL, and SQLite starts the WAL over only after one that did.
 * So once the WAL passes `restartBytes` the worker asks for a pause: the
 * caller's `whileIdle` keeps the serving connection out of use (queries wait,
 * the event loop does not) while the worker runs a RESTART checkpoint, which
 * then only copies the pages written since its PASSIVE one. Durability is
 * unchanged: what reaches the WAL and when it is fsynced are the same.
 *
 * The same worker keeps the query planner's statistics fresh: every few
 * seconds `PRAGMA optimize` re-analyzes the tables whose size changed a lot
 * (sampling at most 1000 rows per index). Without statistics SQLite lists a
 * project's images by collecting all of them and sorting (22 ms for a page of
 * 1000 among 10,000); with them it walks the creation-time index (6 ms).
 */

export interface CheckpointerHooks {
  /** Runs `work` while nothing uses the serving connection (no open transaction, no query). */
  whileIdle(work: () => Promise<void>): Promise<void>;
  onError(message: string): void;
  /** The worker stopped on its own (it should not): turn automatic checkpoints back on. */
  onExit(): void;
}

export class SqliteCheckpointer {
  private readonly worker: Worker;
  private stopping: Promise<void> | undefined;
  private restarted: (() => void) | undefined;

  constructor(file: string, hooks: CheckpointerHooks, opts: { intervalMs?: number; restartBytes?: number } = {}) {
    const { intervalMs = 200, restartBytes = 16 * 1024 * 1024 } = opts;
    const optimizeEveryRounds = Math.max(1, Math.round(2000 / intervalMs));
    const workerData: CheckpointWorkerData = { file, intervalMs, restartBytes, optimizeEveryRounds };
    this.worker = moduleWorker('sqlite-checkpoint-worker', import.meta.url, {
      workerData,
      // It holds one connection and a timer: a small heap keeps its memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    });
    this.worker.unref();
    this.worker.on('message', (m: { op: string; message?: string }) => {
      if (m.op === 'error') hooks.onError(m.message ?? 'checkpoint failed');
      else if (m.op === 'restarted') this.restarted?.();
      else if (m.op === 'restart-wanted' && !this.stopping) {
        hooks
          .whileIdle(
            () =>
              new Promise<void>((resolve) => {
                this.restarted = resolve;
                this.worker.postMessage({ op: 'restart' });
              }),
          )
          .catch((err) => hooks.onError(String(err)));
      }
    });
    this.worker.on('error', (err) => hooks.onError(String(err)));
    this.worker.on('exit', () => {
      this.restarted?.();
      if (!this.stopping) hooks.onExit();
    });
  }

  /** One last checkpoint, then the worker's connection closes (before the main one, which removes the WAL). */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      const done = () => resolve();
      this.worker.once('exit', done);
      this.worker.on('message', (m: { op: string }) => {
        if (m.op === 'stopped') void this.worker.terminate().then(done, done);
      });
      this.worker.postMessage({ op: 'stop' });
    });
    return this.stopping;
  }
}
