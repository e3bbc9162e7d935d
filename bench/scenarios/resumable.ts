import http from 'node:http';
import { createReadStream } from 'node:fs';
import type { Api } from '../api.js';
import { curl } from '../curl.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import { mibPerSec, round } from '../stats.js';
import { checkImageMatches, uploadWithCurl } from './transfer.js';

const TUS = { 'tus-resumable': '1.0.0' };

/** POST /v2/uploads for `imageId`; the upload's path. */
async function createUpload(api: Api, imageId: string, size: number): Promise<string> {
  const res = await api.call('POST', '/v2/uploads', undefined, { ...TUS, 'upload-length': String(size), 'upload-metadata': `image_id ${Buffer.from(imageId).toString('base64')}` });
  if (res.status !== 201) throw new Error(`creating the upload answered ${res.status}: ${res.text}`);
  return String(res.headers.location);
}

async function offsetOf(api: Api, upload: string): Promise<number> {
  const res = await api.call('HEAD', upload, undefined, TUS);
  return Number(res.headers['upload-offset']);
}

/**
 * PATCHes the file from `from` with node's http client; with `cutAfter`,
 * the socket is destroyed once that many body bytes were handed to it (a
 * dropped connection). Resolves with the body bytes the client sent.
 */
function patchFrom(api: Api, upload: string, file: DataFile, from: number, cutAfter?: number): Promise<{ sent: number; status?: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(api.url(upload), { method: 'PATCH', headers: api.authHeaders({ ...TUS, 'content-type': 'application/offset+octet-stream', 'upload-offset': String(from), 'content-length': String(file.size - from) }) });
    let sent = 0;
    let cut = false;
    const body = createReadStream(file.path, { start: from, highWaterMark: 256 * 1024 });
    body.on('data', (chunk) => {
      sent += chunk.length;
      if (!req.write(chunk)) {
        body.pause();
        req.once('drain', () => body.resume());
      }
      if (cutAfter !== undefined && sent >= cutAfter && !cut) {
        cut = true;
        body.destroy();
        req.destroy();
        resolve({ sent });
      }
    });
    body.on('end', () => req.end());
    req.on('error', (err) => (cut ? undefined : reject(err)));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ sent, status: res.statusCode }));
    });
  });
}

/**
 * Resumable uploads (docs/api.md#resumable-uploads-tus) against plain PUT:
 * the same file, PUT with curl and PATCHed whole with curl through a tus
 * upload, alternately (at least three times; best of each: the machine's other work
 * only slows a run down); then an upload whose connection drops at 40 %,
 * resumed from the offset HEAD answers, counting the bytes sent twice.
 */
export async function resumableUploads(r: Recorder, api: Api, file: DataFile, name: string, repeats: number): Promise<void> {
  const put: number[] = [];
  const tus: number[] = [];
  // At least three pairs, alternating: one pair on a busy machine says little about a ratio.
  for (let i = 0; i < Math.max(3, repeats); i++) {
    const plain = await api.createImage(`${name}-put-${i}`);
    const p = await uploadWithCurl(api, plain.id, file, r.secondsLeft());
    r.equal(`PUT ${i + 1} status`, p.httpCode, 204);
    await checkImageMatches(r, api, plain.id, file, `PUT ${i + 1}`);
    put.push(p.seconds);
    await api.deleteImage(plain.id);

    const image = await api.createImage(`${name}-tus-${i}`);
    const upload = await createUpload(api, image.id, file.size);
    const t = await curl({
      url: api.url(upload),
      uploadFile: file.path,
      args: ['-X', 'PATCH'],
      headers: api.authHeaders({ ...TUS, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }),
      maxSeconds: r.secondsLeft(),
    });
    r.equal(`tus ${i + 1} status`, t.httpCode, 204);
    await checkImageMatches(r, api, image.id, file, `tus ${i + 1}`);
    tus.push(t.seconds);
    await api.deleteImage(image.id);
  }
  const bestPut = Math.min(...put);
  const bestTus = Math.min(...tus);
  const ratio = round(bestPut / bestTus, 3);
  r.figure(ratio, '× PUT');
  r.metric('putMiBps', mibPerSec(file.size, bestPut));
  r.metric('tusMiBps', mibPerSec(file.size, bestTus));
  r.metric('putRunsMiBps', put.map((s) => mibPerSec(file.size, s)).join(', '));
  r.metric('tusRunsMiBps', tus.map((s) => mibPerSec(file.size, s)).join(', '));
  r.check('tus without interruption ≥ 0.9 × PUT', ratio >= 0.9, `${ratio}`);

  // A connection dropped at 40 %, then resumed where the server says it stands.
  const image = await api.createImage(`${name}-resume`);
  const upload = await createUpload(api, image.id, file.size);
  const first = await patchFrom(api, upload, file, 0, Math.floor(file.size * 0.4));
  // The server ends the cut PATCH (fsync, offset recorded) a moment after the client let go.
  let offset = await offsetOf(api, upload);
  for (let i = 0; i < 50 && offset === 0; i++) {
    await new Promise((w) => setTimeout(w, 100));
    offset = await offsetOf(api, upload);
  }
  let second = await patchFrom(api, upload, file, offset);
  for (let i = 0; i < 50 && (second.status === 423 || second.status === 409); i++) {
    await new Promise((w) => setTimeout(w, 100));
    offset = await offsetOf(api, upload);
    second = await patchFrom(api, upload, file, offset);
  }
  r.equal('resume status', second.status, 204);
  await checkImageMatches(r, api, image.id, file, 'resumed');
  r.metric('cutAtBytes', first.sent);
  r.metric('storedBeforeResume', offset);
  r.metric('resentBytes', first.sent + second.sent - file.size);
  r.equal('the resume sends exactly the bytes not stored', second.sent, file.size - offset);
  await api.deleteImage(image.id);
}
