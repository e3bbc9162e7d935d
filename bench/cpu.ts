import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat on every Linux that Node runs on. */
const TICKS_PER_SECOND = 100;

function ticksOf(statFile: string): number {
  try {
    const stat = readFileSync(statFile, 'utf8');
    // Fields after the command name (which may hold spaces) start at state; utime and stime are the 12th and 13th of those.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}

export interface CpuTimes {
  /** CPU seconds used by the whole server process (main thread, hash workers, libuv pool) */
  processSeconds: number;
  /** CPU seconds of the main (event loop) thread alone */
  mainThreadSeconds: number;
  /** seconds the process's threads were ready to run but waited for a CPU (schedstat): other work on the machine */
  runQueueWaitSeconds?: number;
}

/** Sum over the process's threads of the time spent runnable but not running (/proc/<pid>/task/<tid>/schedstat, field 2, ns). */
function runQueueWait(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
      } catch {
        // the thread ended between readdir and read
      }
    }
    return ns / 1e9;
  } catch {
    return undefined;
  }
}

/** One server process, or every node of a cluster (`--nodes`): their figures add up. */
export type Pids = number | readonly number[];

function each(pids: Pids): readonly number[] {
  return typeof pids === 'number' ? [pids] : pids;
}

/** CPU time is what a scenario costs the server whatever else runs on the machine: steadier than rates on a shared box. */
export function cpuTimes(pids: Pids): CpuTimes | undefined {
  let sum: CpuTimes | undefined;
  for (const pid of each(pids)) {
    const t = cpuTimesOf(pid);
    if (!t) return undefined;
    if (!sum) sum = t;
    else {
      sum.processSeconds += t.processSeconds;
      sum.mainThreadSeconds += t.mainThreadSeconds;
      sum.runQueueWaitSeconds = sum.runQueueWaitSeconds === undefined || t.runQueueWaitSeconds === undefined ? undefined : sum.runQueueWaitSeconds + t.runQueueWaitSeconds;
    }
  }
  return sum;
}

function cpuTimesOf(pid: number): CpuTimes | undefined {
  const all = ticksOf(`/proc/${pid}/stat`);
  const main = ticksOf(`/proc/${pid}/task/${pid}/stat`);
  if (!Number.isFinite(all)) return undefined;
  return { processSeconds: all / TICKS_PER_SECOND, mainThreadSeconds: main / TICKS_PER_SECOND, runQueueWaitSeconds: runQueueWait(pid) };
}

/**
 * Where a process's CPU goes, by kind of thread. Node names every thread
 * `node`, so: the event loop is the thread whose id is the pid; Imago's own
 * workers name themselves (`/proc/thread-self/comm`: `imago-hash` for the
 * hash workers, `imago-*` for the others); of the remaining threads, the
 * first five created after the main one (lowest ids) are V8's platform
 * threads — the delayed-task scheduler and the 4 workers of the default
 * `--v8-pool-size`, which run the parallel GC and background compilation —
 * and the rest are libuv's threadpool (file writes, fdatasync, DNS) and
 * anything else.
 */
export type ThreadKind = 'eventLoop' | 'hashWorkers' | 'v8Platform' | 'libuvAndOther';
export const THREAD_KINDS: ThreadKind[] = ['eventLoop', 'hashWorkers', 'v8Platform', 'libuvAndOther'];
const V8_PLATFORM_THREADS = 5;

export function cpuByKind(pids: Pids): Record<ThreadKind, number> | undefined {
  const out: Record<ThreadKind, number> = { eventLoop: 0, hashWorkers: 0, v8Platform: 0, libuvAndOther: 0 };
  for (const pid of each(pids)) {
    const one = cpuByKindOf(pid);
    if (!one) return undefined;
    for (const k of THREAD_KINDS) out[k] += one[k];
  }
  return out;
}

function cpuByKindOf(pid: number): Record<ThreadKind, number> | undefined {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
  } catch {
    return undefined;
  }
  const out: Record<ThreadKind, number> = { eventLoop: 0, hashWorkers: 0, v8Platform: 0, libuvAndOther: 0 };
  let unnamed = 0;
  for (const tid of tids) {
    const seconds = ticksOf(`/proc/${pid}/task/${tid}/stat`) / TICKS_PER_SECOND;
    if (!Number.isFinite(seconds)) continue;
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const kind: ThreadKind =
      tid === pid ? 'eventLoop'
      : comm === 'imago-hash' ? 'hashWorkers'
      : comm.startsWith('imago-') ? 'libuvAndOther'
      : unnamed++ < V8_PLATFORM_THREADS ? 'v8Platform'
      : 'libuvAndOther';
    out[kind] += seconds;
  }
  return out;
}

export function threadCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return 0;
  }
}

export function cpuSpent(before: CpuTimes | undefined, after: CpuTimes | undefined): CpuTimes | undefined {
  if (!before || !after) return undefined;
  const r = (n: number) => Math.round(n * 100) / 100;
  const spent: CpuTimes = { processSeconds: r(after.processSeconds - before.processSeconds), mainThreadSeconds: r(after.mainThreadSeconds - before.mainThreadSeconds) };
  // Threads that ended during the window take their wait with them, so this is a lower bound.
  if (before.runQueueWaitSeconds !== undefined && after.runQueueWaitSeconds !== undefined) spent.runQueueWaitSeconds = Math.max(0, r(after.runQueueWaitSeconds - before.runQueueWaitSeconds));
  return spent;
}

/** Adds up the server CPU of timed windows only (verification and ceilings left out). */
export class CpuMeter {
  private total: CpuTimes = { processSeconds: 0, mainThreadSeconds: 0 };
  private started: CpuTimes | undefined;
  private startedByKind: Record<ThreadKind, number> | undefined;
  private readonly totalByKind: Record<ThreadKind, number> = { eventLoop: 0, hashWorkers: 0, v8Platform: 0, libuvAndOther: 0 };
  constructor(private readonly pid: Pids | undefined) {}

  start(): void {
    this.started = this.pid ? cpuTimes(this.pid) : undefined;
    this.startedByKind = this.pid ? cpuByKind(this.pid) : undefined;
  }

  stop(): void {
    const spent = cpuSpent(this.started, this.pid ? cpuTimes(this.pid) : undefined);
    if (!spent) return;
    this.total.processSeconds += spent.processSeconds;
    this.total.mainThreadSeconds += spent.mainThreadSeconds;
    const now = this.pid ? cpuByKind(this.pid) : undefined;
    // a thread that ended in the window takes its time with it: a kind can only be under-counted
    if (now && this.startedByKind) for (const k of THREAD_KINDS) this.totalByKind[k] += Math.max(0, now[k] - this.startedByKind[k]);
  }

  /** Server CPU seconds per `units` by kind of thread (see cpuByKind). */
  perByKind(units: number): Record<ThreadKind, number> | undefined {
    if (!this.pid || units <= 0) return undefined;
    return Object.fromEntries(THREAD_KINDS.map((k) => [k, this.totalByKind[k] / units])) as Record<ThreadKind, number>;
  }

  /** Server CPU seconds per `units` (e.g. per GiB, per range) over the timed windows; undefined without a local pid. */
  per(units: number): { process: number; main: number } | undefined {
    if (!this.pid || units <= 0) return undefined;
    return { process: this.total.processSeconds / units, main: this.total.mainThreadSeconds / units };
  }
}
