import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO } from '../recovery/child.js';

/** Runs the built CLI to its end: exit status and what it printed. */
export function runImago(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [path.join(REPO, 'dist/src/main.js'), ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
}
