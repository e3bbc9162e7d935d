import { serverPids, type Api } from '../api.js';
import { curl, type CurlResult } from '../curl.js';
import type { RefServer } from '../references.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import { GiB, mibPerSec, round } from '../stats.js';
import { CpuMeter } from '../cpu.js';

export function uploadWithCurl(api: Api, imageId: string, file: DataFile, maxSeconds: number, what = 'file'): Promise<CurlResult> {
  return curl({
    url: api.url(`/v2/images/${imageId}/${what}`),
    uploadFile: file.path,
    headers: api.authHeaders({ 'content-type': 'application/octet-stream' }),
    maxSeconds,
  });
}

export function downloadWithCurl(api: Api, imageId: string, maxSeconds: number): Promise<CurlResult> {
  return curl({ url: api.url(`/v2/images/${imageId}/file`), headers: api.authHeaders(), output: '/dev/null', maxSeconds });
}

/** The image says it holds exactly the file: active, size, checksum (md5), os_hash_algo/value (sha512). */
export async function checkImageMatches(r: Recorder, api: Api, imageId: string, file: DataFile, label = ''): Promise<void> {
  const image = await api.getImage(imageId);
  const p = label ? `${label} ` : '';
  if (!r.check(`${p}image exists`, !!image, 'GET answered 404')) return;
  r.equal(`${p}status`, image!.status, 'active');
  r.equal(`${p}size`, image!.size, file.size);
  r.equal(`${p}checksum`, image!.checksum, file.md5);
  r.equal(`${p}os_hash_algo`, image!.os_hash_algo, 'sha512');
  r.equal(`${p}os_hash_value`, image!.os_hash_value, file.sha512);
}

/** Downloads the data again (untimed) and checks it hashes to what was uploaded. */
export async function checkDownloadMatches(r: Recorder, api: Api, imageId: string, file: DataFile, label = ''): Promise<void> {
  const p = label ? `${label} ` : '';
  const got = await api.hashDownload(imageId);
  r.equal(`${p}download status`, got.status, 200);
  r.equal(`${p}downloaded bytes`, got.size, file.size);
  r.equal(`${p}downloaded md5`, got.md5, file.md5);
  r.equal(`${p}downloaded sha512`, got.sha512, file.sha512);
}

/**
 * Creates an image and PUTs the file with curl, `repeats` times, each image
 * checked; the figure is the best run (other work on the machine only ever
 * slows a run down). Returns the id of the image kept, the others are deleted.
 */
export async function timedUpload(r: Recorder, api: Api, file: DataFile, name: string, repeats: number): Promise<string> {
  const runs: { id: string; seconds: number }[] = [];
  const cpu = new CpuMeter(serverPids(api.target));
  for (let i = 0; i < repeats; i++) {
    const image = await api.createImage(`${name}-${i}`);
    cpu.start();
    const res = await uploadWithCurl(api, image.id, file, r.secondsLeft());
    cpu.stop();
    r.equal(`upload ${i + 1} status`, res.httpCode, 204);
    r.equal(`upload ${i + 1} bytes sent`, res.sizeUpload, file.size);
    await checkImageMatches(r, api, image.id, file, `upload ${i + 1}`);
    runs.push({ id: image.id, seconds: res.seconds });
  }
  const best = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  for (const run of runs) if (run !== best) await api.deleteImage(run.id);
  r.figure(mibPerSec(file.size, best.seconds), 'MiB/s');
  r.metric('seconds', best.seconds);
  r.metric('bytes', file.size);
  r.metric('runsMiBps', runs.map((x) => mibPerSec(file.size, x.seconds)).join(', '));
  cpuPerGiB(r, cpu, (file.size * repeats) / GiB);
  return best.id;
}

/** Downloads with curl to /dev/null, best of `repeats`; each run is followed by the same GET from the trivial server (the ceiling right now). */
export async function timedDownload(r: Recorder, api: Api, imageId: string, file: DataFile, repeats: number, ref?: RefServer): Promise<void> {
  const seconds: number[] = [];
  const ceiling: number[] = [];
  const cpu = new CpuMeter(serverPids(api.target));
  const refCpu = new CpuMeter(ref?.pid);
  for (let i = 0; i < repeats; i++) {
    cpu.start();
    const res = await downloadWithCurl(api, imageId, r.secondsLeft());
    cpu.stop();
    r.equal(`download ${i + 1} status`, res.httpCode, 200);
    r.equal(`download ${i + 1} bytes received`, res.sizeDownload, file.size);
    seconds.push(res.seconds);
    if (ref) {
      refCpu.start();
      const c = await curl({ url: ref.urlOf(file), output: '/dev/null', maxSeconds: r.secondsLeft() });
      refCpu.stop();
      r.check(`ceiling GET ${i + 1}: 200 and every byte`, c.httpCode === 200 && c.sizeDownload === file.size, `${c.httpCode}, ${c.sizeDownload} bytes`);
      ceiling.push(mibPerSec(file.size, c.seconds));
    }
  }
  if (ceiling.length) {
    r.metric('ceilingMiBps', Math.max(...ceiling));
    r.metric('ceilingRunsMiBps', ceiling.join(', '));
  }
  const best = Math.min(...seconds);
  r.figure(mibPerSec(file.size, best), 'MiB/s');
  r.metric('seconds', best);
  r.metric('bytes', file.size);
  r.metric('runsMiBps', seconds.map((x) => mibPerSec(file.size, x)).join(', '));
  cpuPerGiB(r, cpu, (file.size * repeats) / GiB);
  const refPer = refCpu.per((file.size * repeats) / GiB);
  if (refPer) r.metric('ceilingServerCpuSecondsPerGiB', round(refPer.process, 2));
  await checkDownloadMatches(r, api, imageId, file);
}

/** What moving a GiB costs the server in CPU seconds (all threads, and the event loop alone): steady whatever else runs here. */
export function cpuPerGiB(r: Recorder, cpu: CpuMeter, gib: number): void {
  const per = cpu.per(gib);
  if (!per) return;
  r.metric('serverCpuSecondsPerGiB', round(per.process, 2));
  r.metric('serverMainThreadSecondsPerGiB', round(per.main, 2));
  const byKind = cpu.perByKind(gib);
  if (byKind) for (const [kind, seconds] of Object.entries(byKind)) r.metric(`cpuPerGiB.${kind}`, round(seconds, 2));
}
