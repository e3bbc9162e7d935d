import { loadavg } from 'node:os';
import { serverPids, type Api, type Target } from './api.js';
import type { Options } from './options.js';
import type { RefServer } from './references.js';
import { RssSampler, type RssPeak } from './rss.js';
import { cpuByKind, cpuSpent, cpuTimes, THREAD_KINDS, type CpuTimes, type ThreadKind } from './cpu.js';

export interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface ScenarioResult {
  id: string;
  title: string;
  status: 'ok' | 'failed' | 'skipped';
  note?: string;
  /** the headline number of the scenario */
  figure?: { value: number; unit: string };
  metrics: Record<string, number | string>;
  checks: Check[];
  rss?: RssPeak;
  /** CPU the server process spent during the scenario (local server only) */
  serverCpu?: CpuTimes;
  /** the same by kind of thread (cpu.ts cpuByKind), seconds */
  serverCpuByKind?: Record<ThreadKind, number>;
  /** CPU the bench process itself spent (its clients share the machine with the server) */
  benchCpuSeconds: number;
  /** 1-minute load average before and after: other work on the machine skews figures */
  load: [number, number];
  seconds: number;
  /** CLOCK_MONOTONIC in µs at start and end: the clock of V8 CPU profiles, to cut a server profile by scenario */
  monotonicUs: [number, number];
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

export class Skip extends Error {}

export interface BenchContext {
  api: Api;
  target: Target;
  opts: Options;
  workDir: string;
  /** a unique tag for names created by this run */
  runId: string;
  /** the trivial server, when the target runs on this machine: ceilings measured next to each run */
  ref?: RefServer;
  /** `--store s3`: the Swift the local server stores into, for the SDK references */
  s3?: import('./s3.js').BenchS3;
  /** the local server's filesystem store directory: where the upload scenarios measure the kernel's write floor */
  storeDir?: string;
  /** `--nodes N`: haproxy's pid, whose CPU each scenario reports apart from the nodes' */
  balancerPid?: number;
}

/** What a scenario body uses to report: a figure, metrics, and checks (a failed check fails the scenario). */
export class Recorder {
  constructor(readonly result: ScenarioResult, readonly deadline: number) {}

  figure(value: number, unit: string): void {
    this.result.figure = { value, unit };
  }

  metric(name: string, value: number | string): void {
    this.result.metrics[name] = value;
  }

  check(name: string, ok: boolean, detail?: string): boolean {
    this.result.checks.push(detail === undefined || ok ? { name, ok } : { name, ok, detail });
    return ok;
  }

  /** Checks `actual === expected` and says both when they differ. */
  equal(name: string, actual: unknown, expected: unknown): boolean {
    return this.check(name, actual === expected, `got ${String(actual)}, expected ${String(expected)}`);
  }

  secondsLeft(): number {
    return Math.max(1, (this.deadline - performance.now()) / 1000);
  }
}

/**
 * Runs one scenario with its own RSS sampling and a hard deadline. Errors
 * become a failed result (with the message), never a crash of the bench.
 */
export async function runScenario(ctx: BenchContext, id: string, title: string, body: (r: Recorder) => Promise<void>): Promise<ScenarioResult> {
  const result: ScenarioResult = { id, title, status: 'ok', metrics: {}, checks: [], load: [loadavg()[0], 0], seconds: 0, monotonicUs: [monotonicUs(), 0], benchCpuSeconds: 0 };
  const timeoutMs = ctx.opts.sizes.scenarioTimeoutMs;
  const started = performance.now();
  const rec = new Recorder(result, started + timeoutMs);
  const pids = serverPids(ctx.target);
  // RSS is per process (each node's own peak counts against the per-server target); CPU adds up over the nodes.
  const samplers = pids === undefined ? [] : (typeof pids === 'number' ? [pids] : pids).map((p) => new RssSampler(p));
  for (const s of samplers) s.start();
  const cpuBefore = pids ? cpuTimes(pids) : undefined;
  const balancerBefore = ctx.balancerPid ? cpuTimes(ctx.balancerPid) : undefined;
  const byKindBefore = pids ? cpuByKind(pids) : undefined;
  const benchBefore = process.cpuUsage();
  let timer: NodeJS.Timeout | undefined;
  process.stdout.write(`  ${title} ... `);
  try {
    await Promise.race([
      body(rec),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`did not finish within ${timeoutMs / 1000} s`)), timeoutMs))),
    ]);
    if (result.checks.some((c) => !c.ok)) result.status = 'failed';
  } catch (err) {
    if (err instanceof Skip) {
      result.status = 'skipped';
      result.note = err.message;
    } else {
      result.status = 'failed';
      result.note = (err as Error).message;
    }
  } finally {
    clearTimeout(timer);
  }
  if (samplers.length) result.rss = samplers.map((s) => s.stop()).reduce((a, b) => (b.peakMB > a.peakMB ? b : a));
  if (pids) result.serverCpu = cpuSpent(cpuBefore, cpuTimes(pids));
  const balancer = ctx.balancerPid ? cpuSpent(balancerBefore, cpuTimes(ctx.balancerPid)) : undefined;
  if (balancer) result.metrics.balancerCpuSeconds = balancer.processSeconds;
  const byKindAfter = pids ? cpuByKind(pids) : undefined;
  if (byKindBefore && byKindAfter) result.serverCpuByKind = Object.fromEntries(THREAD_KINDS.map((k) => [k, Math.round(Math.max(0, byKindAfter[k] - byKindBefore[k]) * 100) / 100])) as Record<ThreadKind, number>;
  const bench = process.cpuUsage(benchBefore);
  result.benchCpuSeconds = Math.round((bench.user + bench.system) / 1e4) / 100;
  const ops = result.metrics.operations;
  if (result.serverCpu && typeof ops === 'number' && ops > 0) {
    // The server's cost of one operation, and the rate one free core would give at that cost.
    const msPerOp = (result.serverCpu.mainThreadSeconds * 1000) / ops;
    result.metrics.serverMainThreadMsPerOp = Math.round(msPerOp * 1000) / 1000;
    if (msPerOp > 0) result.metrics.opsPerSecPerFreeCore = Math.round(1000 / msPerOp);
  }
  result.load[1] = loadavg()[0];
  result.monotonicUs[1] = monotonicUs();
  result.seconds = Math.round((performance.now() - started) / 100) / 10;
  const failed = result.checks.filter((c) => !c.ok);
  const fig = result.figure ? `${result.figure.value} ${result.figure.unit}` : '';
  process.stdout.write(`${result.status}${fig ? ` ${fig}` : ''}${result.note ? ` (${result.note})` : ''}${failed.length ? ` [failed checks: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}]` : ''}\n`);
  return result;
}
