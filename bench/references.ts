import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { curl } from './curl.js';
import { HashPool } from '../src/stores/hash-pool.js';
import { curlRanges, randomRanges } from './curl-ranges.js';
import type { DataFile } from './files.js';
import type { Recorder } from './scenario.js';
import { MiB, mibPerSec, now, round, seededRandom } from './stats.js';

/** Throughputs in MiB/s measured on this machine, on the bytes the scenarios send. */
export interface References {
  md5?: number;
  sha512?: number;
  ddFsync?: number;
  cp?: number;
  cpFsync?: number;
  httpPut?: number;
  httpGet?: number;
  /** random 1 MiB ranges per second from the trivial server, with the bench's range client */
  httpRanges?: number;
  /** Imago's own HashPool (md5 + sha512 on two worker threads) fed the file in 64 KiB chunks, no HTTP, no disk writes */
  hashPool?: number;
  /** `--store s3`: the same SDK uploading the file (multipart, the server's part size and queue) and reading it back with one GetObject */
  s3SdkPut?: number;
  s3SdkGet?: number;
  /** `--store s3`: ranged GetObjects (the ranged reads' size) per second, one after the other, the SDK alone */
  s3SdkRanges?: number;
}

/** One core: the bench's main thread hashes the file (read from page cache in 1 MiB reads). */
function hashThroughput(file: DataFile, algo: 'md5' | 'sha512'): { mibs: number; hex: string } {
  const buf = Buffer.allocUnsafe(MiB);
  const fd = openSync(file.path, 'r');
  const h = createHash(algo);
  const start = now();
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  const hex = h.digest('hex');
  return { mibs: mibPerSec(file.size, (now() - start) / 1000), hex };
}

/** The server's hashing machinery alone, with the chunk size sockets deliver: the most an upload could reach here. */
async function hashPoolThroughput(file: DataFile): Promise<{ mibs: number; md5: string; sha512: string }> {
  const pool = new HashPool(2);
  const buf = Buffer.allocUnsafe(64 * 1024);
  const fd = openSync(file.path, 'r');
  try {
    const start = now();
    const session = pool.open();
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      await session.update(n === buf.length ? buf : buf.subarray(0, n));
    }
    const d = await session.digest();
    return { mibs: mibPerSec(file.size, (now() - start) / 1000), ...d };
  } finally {
    closeSync(fd);
    await pool.close();
  }
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve((now() - start) / 1000) : reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.trim()}`))));
  });
}

export interface RefServer {
  /** URL of a data file (by its path) on the trivial server */
  urlOf(file: DataFile): string;
  pid?: number;
  stop(): void;
}

/** Starts the trivial server over the directory of the data files; scenarios use it to measure their ceiling next to their own run. */
export async function startRefServer(dir: string): Promise<RefServer> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ref-server.js');
  const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`reference server exited (${code})`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  child.removeAllListeners('exit');
  const port = JSON.parse(line).port as number;
  return { urlOf: (f) => `http://127.0.0.1:${port}/${encodeURIComponent(path.basename(f.path))}`, pid: child.pid, stop: () => child.kill('SIGTERM') };
}

export interface ReferencePlan {
  ranges: number;
  rangeSize: number;
  rangeSeed: number;
  /** each figure is the best of this many runs: other work on the machine only ever slows a run down */
  repeats: number;
}

/** Measures the ceilings the targets are relative to; every figure is checked for the size it moved. */
export async function measureReferences(r: Recorder, file: DataFile, scratchDir: string, plan: ReferencePlan, server: RefServer): Promise<References> {
  const best: References = {};
  const runs: Record<string, number[]> = {};
  for (let i = 0; i < plan.repeats; i++) {
    const refs = await measureOnce(r, file, scratchDir, plan, server, i === 0);
    for (const [k, v] of Object.entries(refs) as [keyof References, number][]) {
      (runs[k] ??= []).push(v);
      best[k] = Math.max(best[k] ?? 0, v);
    }
  }
  for (const [k, v] of Object.entries(best)) r.metric(`${k}${k === 'httpRanges' ? 'PerSec' : 'MiBps'}`, v as number);
  for (const [k, v] of Object.entries(runs)) r.metric(`${k}Runs`, v.join(', '));
  r.figure(Math.min(best.md5!, best.sha512!), 'MiB/s min(md5, sha512)');
  return best;
}

async function measureOnce(r: Recorder, file: DataFile, scratchDir: string, plan: ReferencePlan, server: RefServer, check: boolean): Promise<References> {
  const refs: References = {};
  for (const algo of ['md5', 'sha512'] as const) {
    const { mibs, hex } = hashThroughput(file, algo);
    if (check) r.equal(`${algo} of the file`, hex, algo === 'md5' ? file.md5 : file.sha512);
    refs[algo] = mibs;
  }
  const pool = await hashPoolThroughput(file);
  if (check) r.check('hash pool digests of the file', pool.md5 === file.md5 && pool.sha512 === file.sha512, `md5 ${pool.md5}, sha512 ${pool.sha512}`);
  refs.hashPool = pool.mibs;

  const ddOut = path.join(scratchDir, 'dd.out');
  try {
    const secs = await run('dd', [`if=${file.path}`, `of=${ddOut}`, 'bs=1M', 'conv=fsync', 'status=none']);
    refs.ddFsync = mibPerSec(file.size, secs);
  } finally {
    rmSync(ddOut, { force: true });
  }
  const cpOut = path.join(scratchDir, 'cp.out');
  try {
    const cpSecs = await run('cp', [file.path, cpOut]);
    const syncSecs = await run('sync', [cpOut]);
    refs.cp = mibPerSec(file.size, cpSecs);
    refs.cpFsync = mibPerSec(file.size, cpSecs + syncSecs);
  } finally {
    rmSync(cpOut, { force: true });
  }

  const url = server.urlOf(file);
  {
    const put = await curl({ url, uploadFile: file.path, headers: { 'content-type': 'application/octet-stream' }, maxSeconds: r.secondsLeft() });
    r.check('reference PUT: 204 and every byte sent', put.httpCode === 204 && put.sizeUpload === file.size, `${put.httpCode}, ${put.sizeUpload} bytes`);
    refs.httpPut = mibPerSec(file.size, put.seconds);
    const get = await curl({ url, output: '/dev/null', maxSeconds: r.secondsLeft() });
    r.check('reference GET: 200 and every byte received', get.httpCode === 200 && get.sizeDownload === file.size, `${get.httpCode}, ${get.sizeDownload} bytes`);
    refs.httpGet = mibPerSec(file.size, get.seconds);
    const ranges = randomRanges(seededRandom(plan.rangeSeed), plan.ranges, file.size, plan.rangeSize);
    const run = await curlRanges(url, {}, ranges, r.secondsLeft(), scratchDir);
    const bad = run.transfers.filter((t) => t.httpCode !== 206 || t.size !== plan.rangeSize).length;
    r.check('reference ranges: 206 and 1 MiB each', bad === 0 && run.transfers.length === plan.ranges, `${bad} wrong of ${run.transfers.length}`);
    refs.httpRanges = round(plan.ranges / run.wallSeconds, 0);
  }
  return refs;
}
