/**
 * The one deterministic byte generator for tests.
 *
 * xorshift32: every offset holds a different-looking byte, so a misplaced range, a dropped
 * chunk or a swapped image shows in a digest or a byte comparison. Same (size, seed) → same
 * bytes on every run and machine; different seeds give different images. The bytes match no
 * disk format's magic, so format inspection calls them raw.
 */
export function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1; // xorshift never leaves 0
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
