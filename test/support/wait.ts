import assert from 'node:assert/strict';

/**
 * Polls `probe` until it returns a truthy value, and returns that value; fails the test
 * with "timed out waiting for <what>" after `timeoutMs`. `what` may be a function, read only on
 * timeout, to say what was last seen (the probe can keep it in a variable).
 *
 * For waiting on something the server does in the background (a task ending, a file
 * appearing, a status changing). The timeout is a safety net, not an assertion on speed:
 * keep it generous, a busy machine is slow.
 */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) assert.fail(`timed out waiting for ${typeof what === 'function' ? what() : what} (${timeoutMs} ms)`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
