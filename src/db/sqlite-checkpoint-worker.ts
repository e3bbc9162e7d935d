/**
 * The checkpoint worker of db/sqlite-checkpointer.ts: its own connection to
 * the database file, PASSIVE checkpoints every `intervalMs`, a RESTART one
 * when the main thread has paused its connection, and `PRAGMA optimize`
 * every few seconds. The checkpointer's comment explains why.
 */
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';

export interface CheckpointWorkerData {
  file: string;
  intervalMs: number;
  restartBytes: number;
  optimizeEveryRounds: number;
}

const port = parentPort!;
const data = workerData as CheckpointWorkerData;
const db = new SQLite(data.file);
db.pragma('busy_timeout = 1000');
const pageSize = db.pragma('page_size', { simple: true }) as number;
db.pragma('analysis_limit = 1000');
let restartAsked = false;
let rounds = 0;

const report = (err: unknown) => {
  // Busy means a writer held on longer than busy_timeout: the next round tries again.
  if ((err as { code?: string } | null)?.code === 'SQLITE_BUSY') return;
  port.postMessage({ op: 'error', message: String((err as Error | null)?.message || err) });
};

const checkpoint = () => {
  try {
    // 0x10002: analyze where useful, looking at every table (this connection itself queries none).
    if (rounds++ % data.optimizeEveryRounds === 0) db.pragma('optimize=0x10002');
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
    if (r && r.log * pageSize > data.restartBytes && !restartAsked) {
      restartAsked = true;
      port.postMessage({ op: 'restart-wanted' });
    }
  } catch (err) {
    report(err);
  }
};

const timer = setInterval(checkpoint, data.intervalMs);
port.on('message', (m: { op: string }) => {
  if (m.op === 'restart') {
    try {
      db.pragma('wal_checkpoint(RESTART)');
    } catch (err) {
      report(err);
    }
    restartAsked = false;
    port.postMessage({ op: 'restarted' });
  } else if (m.op === 'stop') {
    clearInterval(timer);
    checkpoint();
    db.close();
    port.postMessage({ op: 'stopped' });
  }
});
