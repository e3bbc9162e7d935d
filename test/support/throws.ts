import assert from 'node:assert/strict';
import type { ImagoError } from '../../src/domain/errors.js';

/** Asserts `fn` throws an instance of `type` (with that status) whose message matches `fragment`. */
export function throwsWith(fn: () => unknown, type: new (...a: any[]) => ImagoError, status: number, fragment: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `a ${type.name}, got ${String(e)}`);
    assert.equal(e.status, status);
    assert.match(e.message, fragment);
    return true;
  });
}
