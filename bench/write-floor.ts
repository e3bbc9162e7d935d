import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DataFile } from './files.js';
import type { Recorder } from './scenario.js';
import { GiB, round } from './stats.js';

/**
 * The kernel's share of the upload floor (issue 12): the CPU that writing the
 * same bytes into the same store directory costs, measured right before the
 * scenario so that the page cache is in the same state. `dd bs=1M
 * conv=fsync` once per upload of the scenario (the same number of files, each
 * made durable, as Imago does), after a `sync` so that neither side starts
 * with someone else's dirty pages; then the files go and `sync` again, so the
 * scenario starts from written-back pages too. The CPU is dd's user + system
 * time as bash's `times` reports it for its children.
 *
 * What this floor leaves out, on purpose: receiving the bytes from the socket
 * (the trivial Node sink's cost is in the references), and the kernel
 * flusher threads' writeback, which no process is charged for on either side.
 */
export async function measureWriteFloor(r: Recorder, file: DataFile, copies: number, storeDir: string): Promise<number | undefined> {
  mkdirSync(storeDir, { recursive: true });
  const outs = Array.from({ length: copies }, (_, i) => path.join(storeDir, `.bench-write-floor-${i}`));
  const script = `sync; for o in ${outs.map((o) => `'${o}'`).join(' ')}; do dd if='${file.path}' of="$o" bs=1M conv=fsync status=none || exit 1; done; times`;
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (c: Buffer) => (text += c.toString()));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`dd exited with ${code}`))));
    });
    // `times`: the shell's user and system time, then its children's: "0m0.003s 0m0.812s".
    const children = out.trim().split('\n').pop() ?? '';
    const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
    const perGiB = seconds / ((file.size * copies) / GiB);
    r.metric('writeFloorCpuSecondsPerGiB', round(perGiB, 2));
    return perGiB;
  } catch (err) {
    r.metric('writeFloor', `not measured: ${(err as Error).message}`);
    return undefined;
  } finally {
    for (const o of outs) rmSync(o, { force: true });
    await new Promise((resolve) => spawn('sync', { stdio: 'ignore' }).once('exit', resolve).once('error', resolve));
  }
}
