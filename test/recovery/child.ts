import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { checkConsistency, type ConsistencyReport } from '../../src/services/recovery.js';
import { testConfig, writeTokens } from '../support/server.js';

/** The repository root, from test/recovery/ or from its compiled copy in dist/test/recovery/. */
export const REPO = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

/**
 * Every child still running. A test that fails between starting a child and stopping it would
 * otherwise leave it running, and its open pipes keep the test file from ever ending (a CI hang):
 * whatever is left is killed once the file's tests are done.
 */
const living = new Set<ChildProcess>();
after(() => {
  for (const proc of living) proc.kill('SIGKILL');
});

export interface ChildImago {
  proc: ChildProcess;
  url: string;
  /** every line the server logged */
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill9(): Promise<void>;
  /** SIGTERM, then the exit status */
  terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts Imago as its own process, the way an operator runs it: `node
 * dist/src/main.js` when IMAGO_TEST_DIST=1 and a build exists, else the
 * sources through tsx. The data dir holds the test tokens and a config file.
 */
export async function spawnImago(dataDir: string, opts: { config?: Record<string, unknown>; env?: Record<string, string>; wrap?: string[] } = {}): Promise<ChildImago> {
  writeTokens(dataDir);
  const configFile = path.join(dataDir, 'child-config.json');
  writeFileSync(configFile, JSON.stringify({ port: 0, logLevel: 'info', ...(opts.config ?? {}) }));
  const dist = path.join(REPO, 'dist/src/main.js');
  const args = process.env.IMAGO_TEST_DIST === '1' && existsSync(dist) ? [dist] : ['--import', 'tsx', path.join(REPO, 'src/main.ts')];
  const command = [...(opts.wrap ?? []), process.execPath, ...args];
  const proc = spawn(command[0], command.slice(1), {
    cwd: REPO,
    env: { ...process.env, IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: configFile, IMAGO_PORT: '0', IMAGO_LOG_LEVEL: 'info', ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  living.add(proc);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => {
    living.delete(proc);
    resolve({ code, signal });
  }));
  let pid = 0;
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onLine = (line: string) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'Imago is listening') {
          pid = entry.pid;
          resolve(entry.url);
        }
      } catch {
        // not a log line
      }
    };
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    proc.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    exited.then(({ code, signal }) => reject(new Error(`imago exited (${code ?? signal}) before listening:\n${logs.join('\n')}`)));
    setTimeout(() => reject(new Error(`imago did not start in time:\n${logs.join('\n')}`)), 60_000).unref();
  });
  return {
    proc,
    url,
    logs,
    exited,
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    terminate: async () => {
      // the server's own pid: with a wrapper (strace), proc is the wrapper
      process.kill(pid || proc.pid!, 'SIGTERM');
      return exited;
    },
  };
}

/**
 * Opens the stopped server's data dir in this process, without the start-up
 * recovery, to look at what the last run left: the consistency report and
 * the runtime for direct queries. Close it when done.
 */
export async function inspectDataDir(dataDir: string, config: Record<string, unknown> = {}): Promise<{ rt: Runtime; report: ConsistencyReport }> {
  const cfg = testConfig(dataDir, config);
  const rt = await createRuntime(cfg, pino({ level: 'silent' }));
  return { rt, report: await checkConsistency(rt) };
}
