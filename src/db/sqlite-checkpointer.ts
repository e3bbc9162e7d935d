import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * SQLite copies the WAL back into the database file (a checkpoint) every
 * ~1000 pages, inside whichever commit crosses that mark, with two fsyncs:
 * on the event loop that costs milliseconds every hundred metadata writes.
 * Here the connection that serves requests has automatic checkpoints off and
 * a worker thread with its own connection runs PASSIVE checkpoints (which
 * never block readers or writers) a few times a second. Under a steady
 * stream of writes a PASSIVE checkpoint never catches up with the end of the
 * WAL, and SQLite only starts the WAL over after one that did; so once the
 * WAL passes `restartBytes` the worker follows with a RESTART checkpoint,
 * which holds writers back only while it copies the few pages written since
 * the PASSIVE one. Durability is unchanged: what reaches the WAL and when it
 * is fsynced are the same.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const SQLite = require(workerData.driver);
const db = new SQLite(workerData.file);
db.pragma('busy_timeout = 1000');
const pageSize = db.pragma('page_size', { simple: true });
let timer;
const checkpoint = () => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    if (r && r.log * pageSize > workerData.restartBytes) db.pragma('wal_checkpoint(RESTART)');
  } catch (err) {
    parentPort.postMessage({ op: 'error', message: String(err && err.message || err) });
  }
};
timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m.op === 'stop') {
    clearInterval(timer);
    checkpoint();
    db.close();
    parentPort.postMessage({ op: 'stopped' });
  }
});
`;

export class SqliteCheckpointer {
  private readonly worker: Worker;
  private stopping: Promise<void> | undefined;

  /** `onExit` runs if the worker stops on its own (it should not): the caller turns automatic checkpoints back on. */
  constructor(file: string, onError: (message: string) => void, onExit: () => void, opts: { intervalMs?: number; restartBytes?: number } = {}) {
    const { intervalMs = 200, restartBytes = 16 * 1024 * 1024 } = opts;
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, driver, intervalMs, restartBytes },
      // It holds one connection and a timer: a small heap keeps its memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    });
    this.worker.unref();
    this.worker.on('message', (m: { op: string; message?: string }) => {
      if (m.op === 'error') onError(m.message ?? 'checkpoint failed');
    });
    this.worker.on('error', (err) => onError(String(err)));
    this.worker.on('exit', () => {
      if (!this.stopping) onExit();
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
