import { Client } from 'undici';
import type { Api } from '../api.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import { mibPerSec, now, summarize } from '../stats.js';
import { checkImageMatches, uploadWithCurl } from './transfer.js';

const IDLE_PROBES = 400;
const SUBJECTS = 10;

/**
 * Metadata latency on its own kept-alive connection while a big upload runs:
 * back-to-back show and list requests, first with the server idle (baseline),
 * then for as long as the upload lasts. The figure is p99 during the upload.
 */
export async function metadataDuringUpload(r: Recorder, api: Api, file: DataFile, namePrefix: string): Promise<void> {
  const subjects: string[] = [];
  for (let i = 0; i < SUBJECTS; i++) subjects.push((await api.createImage(`${namePrefix}-subject-${i}`)).id);
  const target = await api.createImage(`${namePrefix}-upload`);
  const client = new Client(api.origin, { pipelining: 1, keepAliveTimeout: 60_000 });
  let wrong = 0;
  let lastWrong = '';
  let n = 0;
  const probe = async (): Promise<number> => {
    const i = n++;
    const path = i % 2 === 0 ? `/v2/images/${subjects[(i / 2) % SUBJECTS]}` : '/v2/images?limit=20';
    const t0 = now();
    const res = await client.request({ method: 'GET', path: api.path(path), headers: api.authHeaders() });
    const text = await res.body.text();
    const ms = now() - t0;
    if (res.statusCode !== 200) {
      wrong++;
      lastWrong = `${path}: ${res.statusCode} ${text.slice(0, 200)}`;
    }
    return ms;
  };
  try {
    const idle: number[] = [];
    for (let i = 0; i < IDLE_PROBES; i++) idle.push(await probe());

    const busy: number[] = [];
    let uploading = true;
    const upload = uploadWithCurl(api, target.id, file, r.secondsLeft()).finally(() => (uploading = false));
    while (uploading && performance.now() < r.deadline) busy.push(await probe());
    const res = await upload;

    r.check('every metadata request answered 200', wrong === 0, `${wrong} failed, last: ${lastWrong}`);
    r.equal('upload status', res.httpCode, 204);
    r.check('probes while uploading', busy.length >= 20, `only ${busy.length}`);
    const during = summarize(busy);
    const base = summarize(idle);
    r.figure(during.p99Ms, 'ms p99');
    r.metric('probesDuring', during.count);
    r.metric('p50MsDuring', during.p50Ms);
    r.metric('p99MsDuring', during.p99Ms);
    r.metric('maxMsDuring', during.maxMs);
    r.metric('p50MsIdle', base.p50Ms);
    r.metric('p99MsIdle', base.p99Ms);
    r.metric('uploadMiBps', mibPerSec(file.size, res.seconds));
    r.metric('uploadBytes', file.size);
    await checkImageMatches(r, api, target.id, file);
  } finally {
    await client.close();
    for (const id of [...subjects, target.id]) await api.deleteImage(id);
  }
}
