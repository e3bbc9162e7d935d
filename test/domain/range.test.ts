import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveRange } from '../../src/domain/range.js';
import { BadRequest, RangeNotSatisfiable } from '../../src/domain/errors.js';

/** Asserts `fn` throws a 416 whose message contains `fragment` and whose Content-Range names the size. */
function refused416(fn: () => unknown, size: number, fragment: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RangeNotSatisfiable, `a RangeNotSatisfiable, got ${String(e)}`);
    assert.equal(e.status, 416);
    assert.match(e.message, fragment);
    assert.deepEqual(e.headers, { 'content-range': `bytes */${size}` });
    return true;
  });
}

const range = (header: string, size = 100) => resolveRange(size, header, undefined);

describe('Range header', () => {
  test('no header: the whole image', () => {
    assert.equal(resolveRange(100, undefined, undefined), undefined);
  });

  test('first-last, open end and a last byte past the end (clamped, as RFC 9110 says)', () => {
    assert.deepEqual(range('bytes=0-9'), { start: 0, end: 9 });
    assert.deepEqual(range('bytes=10-'), { start: 10, end: 99 });
    assert.deepEqual(range('bytes=90-500'), { start: 90, end: 99 });
    assert.deepEqual(range('bytes=99-99'), { start: 99, end: 99 });
  });

  test('suffix: the last n bytes, the whole image when n passes the size', () => {
    assert.deepEqual(range('bytes=-10'), { start: 90, end: 99 });
    assert.deepEqual(range('bytes=-100'), { start: 0, end: 99 });
    assert.deepEqual(range('bytes=-1000'), { start: 0, end: 99 });
  });

  test('unit is case-insensitive; spaces around the parts and empty list elements are ignored', () => {
    assert.deepEqual(range('BYTES=0-1'), { start: 0, end: 1 });
    assert.deepEqual(range('  bytes = 5-6 '), { start: 5, end: 6 });
    assert.deepEqual(range('bytes=, 3-4 ,'), { start: 3, end: 4 });
  });

  test('a start at or past the end is 416 naming the valid positions', () => {
    refused416(() => range('bytes=100-'), 100, /Start position MUST be in the inclusive range \[0, 99\]/);
    refused416(() => range('bytes=150-200'), 100, /\[0, 99\]/);
    // an empty image has no byte to start from
    refused416(() => range('bytes=0-', 0), 0, /\[0, 0\]/);
  });

  test('malformed forms are 416 "Invalid Range header"', () => {
    for (const h of ['bytes=', 'bytes=-', 'bytes=a-b', 'bytes=5-4', 'bytes=-0', 'items=0-1', '0-1', 'bytes=1-2-3', 'bytes=+1-2']) {
      refused416(() => range(h), 100, /^Invalid Range header\.$/);
    }
  });

  test('several ranges (overlapping or not) are 400: one range per request', () => {
    for (const h of ['bytes=0-1,5-6', 'bytes=0-10,5-20', 'bytes=-5,0-1']) {
      assert.throws(() => range(h), (e: unknown) => e instanceof BadRequest && e.status === 400 && /multiple ranges/.test(e.message));
    }
  });

  test('Range wins over Content-Range', () => {
    assert.deepEqual(resolveRange(100, 'bytes=0-0', 'bytes 5-6/100'), { start: 0, end: 0 });
  });
});

describe('legacy Content-Range request header', () => {
  const cr = (header: string, size = 100) => resolveRange(size, undefined, header);

  test('bytes S-E/L and bytes S-E/* select exactly that range', () => {
    assert.deepEqual(cr('bytes 5-9/100'), { start: 5, end: 9 });
    assert.deepEqual(cr('bytes 0-99/*'), { start: 0, end: 99 });
    assert.deepEqual(cr(' Bytes 1-1/2 ', 2), { start: 1, end: 1 });
  });

  test('not clamped: an end past the image is 416 naming its size', () => {
    refused416(() => cr('bytes 90-100/*'), 100, /the image has 100 bytes, so the last position is 99/);
  });

  test('a start past the image is 416 naming the valid positions', () => {
    refused416(() => cr('bytes 100-100/*'), 100, /Start position MUST be in the inclusive range \[0, 99\]/);
  });

  test('end before start, or an end the stated length does not hold, is 416', () => {
    refused416(() => cr('bytes 9-5/100'), 100, /must end after it starts and inside its length/);
    refused416(() => cr('bytes 0-50/50'), 100, /must end after it starts and inside its length/);
  });

  test('malformed forms are 416 "Invalid Content-Range header"', () => {
    for (const h of ['bytes=0-1', 'bytes 0-1', 'bytes 0-/100', 'bytes -1/100', 'items 0-1/100', 'bytes 0-1/x']) {
      refused416(() => cr(h), 100, /^Invalid Content-Range header\.$/);
    }
  });
});
