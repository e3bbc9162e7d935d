import { readFileSync } from 'node:fs';
import { serverPids, type Api } from '../api.js';
import { curl } from '../curl.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import { MiB, mibPerSec, now, round } from '../stats.js';
import { S3_PART_MIB, S3_QUEUE } from '../s3.js';
import { checkImageMatches } from './transfer.js';

/** Resident memory of the server, MB: summed over the nodes of a cluster (the uploads spread over them). */
function rssMB(pids: number | number[]): number {
  let kb = 0;
  for (const pid of typeof pids === 'number' ? [pids] : pids) {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    kb += m ? Number(m[1]) : 0;
  }
  return kb / 1000;
}

/** What `count` uploads of unknown length may hold in memory at most: (queueSize + 1) parts each (docs/stores.md). */
export function chunkedBoundMB(count: number): number {
  return round((count * S3_PART_MIB * MiB * (S3_QUEUE + 1)) / 1e6, 1);
}

/**
 * `count` uploads at once with `Transfer-Encoding: chunked` (no length: the server cannot size its
 * parts ahead), to the S3 store. The figure is how far the server's RSS rose above where it stood
 * before, sampled every 20 ms; the target compares it with (queueSize + 1) parts per upload.
 */
export async function chunkedUploadsMemory(r: Recorder, api: Api, file: DataFile, count: number, namePrefix: string): Promise<void> {
  const pid = serverPids(api.target);
  if (!pid) throw new Error('needs the local server (its RSS)');
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await api.createImage(`${namePrefix}-${i}`)).id);
  const baseline = rssMB(pid);
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, rssMB(pid))), 20);
  const t0 = now();
  try {
    const results = await Promise.all(ids.map((id) => curl({
      url: api.url(`/v2/images/${id}/file`),
      uploadFile: file.path,
      headers: api.authHeaders({ 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }),
      maxSeconds: r.secondsLeft(),
    })));
    results.forEach((res, i) => r.equal(`upload ${i} status`, res.httpCode, 204));
  } finally {
    clearInterval(timer);
  }
  const seconds = (now() - t0) / 1000;
  r.figure(round(peak - baseline, 1), 'MB above baseline');
  r.metric('baselineMB', round(baseline, 1));
  r.metric('peakMB', round(peak, 1));
  r.metric('boundMB', chunkedBoundMB(count));
  r.metric('aggregateMiBps', mibPerSec(file.size * count, seconds));
  for (const [i, id] of ids.entries()) await checkImageMatches(r, api, id, file, `image ${i}`);
  for (const id of ids) await api.deleteImage(id);
}
