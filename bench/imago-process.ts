import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Target } from './api.js';

export interface LocalImago {
  target: Target;
  dataDir: string;
  logFile: string;
  config: Record<string, unknown>;
  stop(): Promise<number | null>;
}

/** Quotas and conversion off: the bench measures the data path, not the policy around it. */
export const BENCH_CONFIG = {
  host: '127.0.0.1',
  logLevel: 'warn',
  quotas: { enabled: false },
  import: { plugins: { conversion: { enabled: false }, decompression: false, injectMetadata: { enabled: false } } },
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The node flags `npm start` runs Imago with (package.json), so the bench
 * measures the server as operators start it.
 */
export function startFlags(repoRoot: string): string[] {
  const start: string = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts?.start ?? '';
  const words = start.trim().split(/\s+/);
  if (words[0] !== 'node') return [];
  return words.slice(1).filter((w) => w.startsWith('--'));
}

/** Starts `node <npm start's flags> dist/src/main.js` on a fresh data dir and a free loopback port, and waits until it answers. */
export async function startImago(opts: { repoRoot: string; workDir: string; nodeArgs: string[]; extraConfig?: Record<string, unknown> }): Promise<LocalImago> {
  const config = { ...BENCH_CONFIG, ...(opts.extraConfig ?? {}) };
  const main = path.join(opts.repoRoot, 'dist', 'src', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  const dataDir = path.join(opts.workDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const configFile = path.join(opts.workDir, 'imago-bench.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const port = await freePort();
  const logFile = path.join(opts.workDir, 'server.log');
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, [...startFlags(opts.repoRoot), ...opts.nodeArgs, main], {
    cwd: opts.workDir,
    env: { ...process.env, IMAGO_DATA_DIR: dataDir, IMAGO_PORT: String(port), IMAGO_CONFIG: configFile, IMAGO_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (gone) throw new Error(`Imago exited during start; see ${logFile}:\n${tail(logFile)}`);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Imago did not answer within 30 s; see ${logFile}`);
    }
    try {
      const res = await fetch(`${baseUrl}/versions`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const token = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  return {
    target: { baseUrl, token, pid: child.pid, sameMachine: true },
    dataDir,
    logFile,
    config,
    stop: () => stopChild(child, exited),
  };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  child.kill('SIGTERM');
  // A CPU profile is written at exit and can take a while for long runs.
  const code = await Promise.race([exited, sleep(60_000).then(() => 'timeout' as const)]);
  if (code !== 'timeout') return code;
  child.kill('SIGKILL');
  return exited;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
