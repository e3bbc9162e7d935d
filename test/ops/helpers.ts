import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO } from '../recovery/child.js';
import { Writable } from 'node:stream';
import { rmSync } from 'node:fs';
import { createLogger } from '../../src/logging.js';
import { startServer, type RunningServer } from '../../src/server/start.js';
import { makeDataDir, testConfig, writeTokens } from '../support/server.js';

/** Runs the built CLI to its end: exit status and what it printed. */
export function runImago(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [path.join(REPO, 'dist/src/main.js'), ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** A log destination that keeps every line written to it. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString().split('\n').filter(Boolean));
    done();
  }
  json(): Record<string, any>[] {
    return this.lines.map((l) => JSON.parse(l));
  }
}

/** A server started in this process whose log lines (json unless told) land in `logs`. */
export async function startLoggedServer(config: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<RunningServer & { logs: LogCapture; dataDir: string; close(): Promise<void> }> {
  const dataDir = makeDataDir();
  writeTokens(dataDir);
  const cfg = testConfig(dataDir, { logLevel: 'info', logFormat: 'json', ...config }, env);
  const logs = new LogCapture();
  const server = await startServer(cfg, { log: createLogger(cfg, logs) });
  return {
    ...server,
    logs,
    dataDir,
    close: async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
