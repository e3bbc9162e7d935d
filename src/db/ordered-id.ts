import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

/**
 * A UUID (version 7 layout) whose text order is creation order within this
 * process, so rows created in the same millisecond (a bulk tag create) still
 * list in the order they were given.
 */
export function orderedId(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      ms = ++lastMs;
      counter = 0;
    }
  } else {
    lastMs = ms;
    counter = 0;
  }
  const rand = randomBytes(8);
  rand[0] = (rand[0] & 0x3f) | 0x80;
  const hex = ms.toString(16).padStart(12, '0') + (0x7000 | counter).toString(16) + rand.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
