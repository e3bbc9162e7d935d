/**
 * Fault injection for the crash-recovery tests: a process started with
 * IMAGO_CRASH_AT=<name> kills itself with SIGKILL when it reaches that point,
 * exactly as a power cut or the OOM killer would stop it there. Unset (as in
 * production) this is one string comparison.
 */
const target = process.env.IMAGO_CRASH_AT;

export function crashPoint(name: 'upload:before-commit' | 'upload:after-commit' | 'delete:before-remove' | 'delete:before-staged-remove'): void {
  if (target === name) process.kill(process.pid, 'SIGKILL');
}
