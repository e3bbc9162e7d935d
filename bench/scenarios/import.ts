import type { Api } from '../api.js';
import type { DataFile } from '../files.js';
import { Skip, type Recorder } from '../scenario.js';
import { mibPerSec, now, round } from '../stats.js';
import { checkDownloadMatches, checkImageMatches, uploadWithCurl } from './transfer.js';

const POLL_MS = 20;

function notAvailable(status: number): boolean {
  return status === 404 || status === 405;
}

/** Stages nothing on a throwaway image: a server without the endpoint says so before any big body is sent. */
async function probeStage(api: Api, name: string): Promise<void> {
  const probe = await api.createImage(`${name}-probe`);
  try {
    const res = await api.call('PUT', `/v2/images/${probe.id}/stage`, undefined, { 'content-type': 'application/octet-stream' });
    if (notAvailable(res.status)) throw new Skip(`not available: PUT /v2/images/{id}/stage answered ${res.status}`);
  } finally {
    await api.deleteImage(probe.id);
  }
}

/**
 * PUT /stage with curl, then POST /import glance-direct and poll until
 * active. The figure is size / (stage + import) wall time.
 */
export async function stageAndImport(r: Recorder, api: Api, file: DataFile, name: string): Promise<void> {
  await probeStage(api, name);
  const image = await api.createImage(name);
  try {
    const t0 = now();
    const staged = await uploadWithCurl(api, image.id, file, r.secondsLeft(), 'stage');
    if (notAvailable(staged.httpCode)) throw new Skip(`not available: PUT /v2/images/{id}/stage answered ${staged.httpCode}`);
    r.equal('stage status', staged.httpCode, 204);
    r.equal('bytes staged', staged.sizeUpload, file.size);
    const t1 = now();
    const res = await api.call('POST', `/v2/images/${image.id}/import`, { method: { name: 'glance-direct' } });
    if (notAvailable(res.status)) throw new Skip(`not available: POST /v2/images/{id}/import answered ${res.status}`);
    if (!r.equal('import status', res.status, 202)) throw new Error(`import answered ${res.status}: ${res.text.slice(0, 300)}`);
    await api.waitForStatus(image.id, ['active'], r.deadline, POLL_MS);
    const t2 = now();
    const seconds = (t2 - t0) / 1000;
    r.figure(mibPerSec(file.size, seconds), 'MiB/s');
    r.metric('seconds', round(seconds, 3));
    r.metric('stageSeconds', staged.seconds);
    r.metric('importSeconds', round((t2 - t1) / 1000, 3));
    r.metric('bytes', file.size);
    await checkImageMatches(r, api, image.id, file);
    await checkDownloadMatches(r, api, image.id, file);
  } finally {
    await api.deleteImage(image.id);
  }
}
