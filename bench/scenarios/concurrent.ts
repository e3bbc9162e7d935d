import type { Api } from '../api.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import { mibPerSec, now, round } from '../stats.js';
import { checkDownloadMatches, checkImageMatches, downloadWithCurl, uploadWithCurl } from './transfer.js';

/** N curl uploads started together; the figure is all bytes over the time until the last one ends. */
export async function concurrentUploads(r: Recorder, api: Api, file: DataFile, count: number, namePrefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await api.createImage(`${namePrefix}-${i}`)).id);
  const t0 = now();
  const results = await Promise.all(ids.map((id) => uploadWithCurl(api, id, file, r.secondsLeft())));
  const seconds = (now() - t0) / 1000;
  results.forEach((res, i) => {
    r.equal(`upload ${i} status`, res.httpCode, 204);
    r.equal(`upload ${i} bytes`, res.sizeUpload, file.size);
  });
  r.figure(mibPerSec(file.size * count, seconds), 'MiB/s aggregate');
  r.metric('seconds', round(seconds, 3));
  r.metric('uploads', count);
  r.metric('bytesEach', file.size);
  r.metric('slowestMiBps', Math.min(...results.map((x) => mibPerSec(file.size, x.seconds))));
  r.metric('fastestMiBps', Math.max(...results.map((x) => mibPerSec(file.size, x.seconds))));
  for (const [i, id] of ids.entries()) await checkImageMatches(r, api, id, file, `image ${i}`);
  return ids;
}

export async function concurrentDownloads(r: Recorder, api: Api, ids: string[], file: DataFile): Promise<void> {
  const t0 = now();
  const results = await Promise.all(ids.map((id) => downloadWithCurl(api, id, r.secondsLeft())));
  const seconds = (now() - t0) / 1000;
  results.forEach((res, i) => {
    r.equal(`download ${i} status`, res.httpCode, 200);
    r.equal(`download ${i} bytes`, res.sizeDownload, file.size);
  });
  r.figure(mibPerSec(file.size * ids.length, seconds), 'MiB/s aggregate');
  r.metric('seconds', round(seconds, 3));
  r.metric('downloads', ids.length);
  r.metric('slowestMiBps', Math.min(...results.map((x) => mibPerSec(file.size, x.seconds))));
  for (const [i, id] of ids.entries()) await checkDownloadMatches(r, api, id, file, `image ${i}`);
}
