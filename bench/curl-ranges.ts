import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { now } from './stats.js';

export interface ByteRange {
  start: number;
  end: number;
}

export interface RangeTransfer {
  httpCode: number;
  size: number;
  /** connections curl opened for this transfer: 0 when it reused the kept-alive one */
  connects: number;
  seconds: number;
  contentRange: string;
}

export interface RangeRun {
  wallSeconds: number;
  transfers: RangeTransfer[];
}

function quote(v: string): string {
  return `"${v.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Fetches every range with one curl process reading a config of many URLs
 * (separated by `next`), so all go over one kept-alive connection with a
 * client cheap enough not to be the bottleneck; bodies go to /dev/null and
 * each transfer reports itself through --write-out.
 */
export function curlRanges(url: string, headers: Record<string, string>, ranges: ByteRange[], maxSeconds: number, scratchDir: string): Promise<RangeRun> {
  const section = (r: ByteRange) =>
    [
      `url = ${quote(url)}`,
      ...Object.entries(headers).map(([k, v]) => `header = ${quote(`${k}: ${v}`)}`),
      `range = ${r.start}-${r.end}`,
      'output = /dev/null',
      `write-out = "%{http_code} %{size_download} %{num_connects} %{time_total} %header{content-range}\\n"`,
    ].join('\n');
  const file = path.join(scratchDir, `ranges-${process.pid}-${Date.now()}.curlrc`);
  writeFileSync(file, ranges.map(section).join('\nnext\n') + '\n', { mode: 0o600 });
  return new Promise<RangeRun>((resolve, reject) => {
    const start = now();
    const child = spawn('curl', ['-sS', '--max-time', String(Math.ceil(maxSeconds)), '-K', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallSeconds = (now() - start) / 1000;
      if (code !== 0) return reject(new Error(`curl ranges failed (exit ${code}): ${err.trim()}`));
      const transfers = out.trim().split('\n').map((line) => {
        const [httpCode, size, connects, seconds, ...rest] = line.split(' ');
        return { httpCode: Number(httpCode), size: Number(size), connects: Number(connects), seconds: Number(seconds), contentRange: rest.join(' ').trim() };
      });
      resolve({ wallSeconds, transfers });
    });
  }).finally(() => rmSync(file, { force: true }));
}

/** `count` random ranges of `length` bytes inside `size`, the same on every run for a given seed. */
export function randomRanges(random: () => number, count: number, size: number, length: number): ByteRange[] {
  return Array.from({ length: count }, () => {
    const start = Math.floor(random() * (size - length + 1));
    return { start, end: start + length - 1 };
  });
}
