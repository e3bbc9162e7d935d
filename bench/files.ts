import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { MiB } from './stats.js';

export interface DataFile {
  path: string;
  size: number;
  md5: string;
  sha512: string;
}

const CHUNK = 4 * MiB;

/**
 * Writes `size` bytes of AES-CTR keystream derived from `seed`: looks random
 * to every compressor and format sniffer, yet the same seed gives the same
 * bytes (and hashes) on every run.
 */
export function makeDataFile(dir: string, name: string, size: number, seed: string): DataFile {
  const key = createHash('sha256').update(`imago-bench:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  const md5 = createHash('md5');
  const sha = createHash('sha512');
  const file = path.join(dir, name);
  const fd = openSync(file, 'w');
  try {
    for (let left = size; left > 0; left -= CHUNK) {
      const bytes = cipher.update(left >= CHUNK ? zeros : zeros.subarray(0, left));
      md5.update(bytes);
      sha.update(bytes);
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    }
    // Written back now, so the kernel's writeback of a fresh multi-GiB file does not share the disk and the CPUs
    // with the scenarios that follow (the file stays in the page cache).
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { path: file, size, md5: md5.digest('hex'), sha512: sha.digest('hex') };
}

export function removeDataFile(f: DataFile | undefined): void {
  if (f) rmSync(f.path, { force: true });
}
