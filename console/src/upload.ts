import * as tus from 'tus-js-client';
import { ApiError } from './api/client.js';

/**
 * How the console sends image data. Normally tus (tus-js-client against
 * /v2/uploads, docs/api.md#resumable-uploads-tus): a dropped connection
 * continues where the server's offset says, and an upload left by a closed
 * tab continues when the same file is chosen again (tus-js-client keeps the
 * upload's URL in localStorage under a fingerprint of the file). Where the
 * server keeps no partial data (resumable uploads off: 404; an S3 or HTTP
 * store: 501) it falls back to one `PUT /v2/images/{id}/file` by XMLHttpRequest.
 * Either way the browser streams the File (or slices of it) from disk: it is
 * never read into JavaScript memory.
 */
export interface UploadProgress {
  loaded: number;
  total: number;
  /** smoothed; 0 until measured */
  bytesPerSecond: number;
  /** null until the speed is known */
  secondsLeft: number | null;
}

export interface Uploader {
  upload(imageId: string, file: Blob, onProgress: (p: UploadProgress) => void, signal?: AbortSignal): Promise<void>;
}

/** Why an upload failed, in words for the person watching it. */
export class UploadError extends Error {
  /** `resumable`: what arrived is kept on the server; sending again continues from there. */
  constructor(message: string, readonly status: number, readonly resumable = false) {
    super(message);
    this.name = 'UploadError';
  }
}

export const CANCELLED = 'The upload was cancelled. The image is still queued.';
export const LOST_RESUMABLE = 'The connection to the server was lost and did not come back. What arrived is kept on the server: Resume upload continues from there.';

/** Progress with a smoothed speed (exponential, over at least 200 ms) and the time left from it. */
function progressMeter(onProgress: (p: UploadProgress) => void): (loaded: number, total: number) => void {
  let lastT = performance.now();
  let lastLoaded = 0;
  let speed = 0;
  return (loaded, total) => {
    const now = performance.now();
    const dt = (now - lastT) / 1000;
    if (loaded < lastLoaded) lastLoaded = loaded; // a resumed upload starts again from the server's offset
    if (dt >= 0.2) {
      const instant = (loaded - lastLoaded) / dt;
      speed = speed === 0 ? instant : speed * 0.7 + instant * 0.3;
      lastT = now;
      lastLoaded = loaded;
    }
    onProgress({ loaded, total, bytesPerSecond: speed, secondsLeft: speed > 0 ? Math.max(0, (total - loaded) / speed) : null });
  };
}

export class XhrUploader implements Uploader {
  constructor(private readonly fileUrl: (id: string) => string, private readonly token: () => string | null) {}

  upload(imageId: string, file: Blob, onProgress: (p: UploadProgress) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', this.fileUrl(imageId));
      const token = this.token();
      if (token) xhr.setRequestHeader('X-Auth-Token', token);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      const meter = progressMeter(onProgress);
      xhr.upload.onprogress = (e) => meter(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          meter(file.size, file.size);
          resolve();
          return;
        }
        reject(new ApiError(xhr.status, errorMessage(xhr.status, xhr.responseText)));
      };
      xhr.onerror = () => reject(new UploadError('The connection to the server was lost during the upload; nothing of it was kept. Retry sends the file again.', 0));
      xhr.onabort = () => reject(new UploadError(CANCELLED, 0));
      xhr.ontimeout = () => reject(new UploadError('The upload timed out.', 0));
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(file);
    });
  }
}

function errorMessage(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } };
    if (parsed?.error?.message) return parsed.error.message;
  } catch { /* not JSON */ }
  return `The server answered ${status}.`;
}

/** An upload of this file that stopped before its end and whose data the server still keeps. */
export interface Interrupted {
  imageId: string;
  /** bytes the server has */
  offset: number;
  size: number;
}

/** Bytes per PATCH: a cut connection costs at most the part of one chunk that was in flight. */
export const CHUNK_BYTES = 16 * 1024 * 1024;
// tus-js-client's retries; the count starts again whenever an attempt moved the offset forward
const RETRY_DELAYS = [0, 1000, 2000, 3000, 5000, 10000, 20000, 30000];
const TUS_HEADER = { 'Tus-Resumable': '1.0.0' };

export class TusUploader implements Uploader {
  constructor(
    private readonly endpoint: string,
    private readonly token: () => string | null,
    private readonly fallback: Uploader,
    private readonly chunkSize = CHUNK_BYTES,
  ) {}

  private headers(): Record<string, string> {
    const token = this.token();
    return token ? { 'X-Auth-Token': token } : {};
  }

  private options(extra: tus.UploadOptions = {}): tus.UploadOptions {
    return {
      endpoint: this.endpoint,
      headers: this.headers(),
      chunkSize: this.chunkSize,
      retryDelays: RETRY_DELAYS,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      ...extra,
    };
  }

  /**
   * Uploads of `file` that a closed tab, a lost network or a cancelled retry
   * left behind, newest first, as the server sees them now (HEAD). Entries the
   * server no longer knows (finished, expired, terminated) are forgotten.
   */
  async interrupted(file: File): Promise<Interrupted[]> {
    const probe = new tus.Upload(file, this.options());
    const found: Interrupted[] = [];
    const previous = (await probe.findPreviousUploads()).sort((a, b) => b.creationTime.localeCompare(a.creationTime));
    for (const p of previous) {
      const imageId = p.metadata.image_id;
      if (!p.uploadUrl || !imageId) continue;
      const res = await fetch(p.uploadUrl, { method: 'HEAD', headers: { ...this.headers(), ...TUS_HEADER }, cache: 'no-store' }).catch(() => null);
      if (res?.status === 200) {
        found.push({ imageId, offset: Number(res.headers.get('upload-offset') ?? 0), size: Number(res.headers.get('upload-length') ?? file.size) });
      } else if (res && (res.status === 404 || res.status === 410)) {
        await tus.defaultOptions.urlStorage.removeUpload(p.urlStorageKey);
      }
    }
    return found;
  }

  upload(imageId: string, file: Blob, onProgress: (p: UploadProgress) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const meter = progressMeter(onProgress);
      let settled = false;
      const upload = new tus.Upload(file, this.options({
        metadata: { image_id: imageId, target: 'data' },
        onProgress: (sent, total) => meter(sent, total),
        onShouldRetry: (err) => {
          const status = err.originalResponse?.getStatus() ?? 0;
          // 409 and 423 on a PATCH are tus's "ask the offset again"; on creation 409 means the image is not
          // queued, and 501 (no partial data on this store) will not change either
          if (err.originalRequest?.getMethod() === 'POST') return status === 0 || (status >= 500 && status !== 501);
          return status === 0 || status === 409 || status === 423 || status >= 500;
        },
        onSuccess: () => {
          settled = true;
          meter(file.size, file.size);
          resolve();
        },
        onError: (err) => {
          if (settled) return;
          settled = true;
          const detailed = err as tus.DetailedError;
          const status = detailed.originalResponse?.getStatus() ?? 0;
          const creating = detailed.originalRequest?.getMethod() === 'POST';
          if (creating && (status === 404 || status === 501)) {
            // this Imago, or this store, keeps no partial data: one plain PUT instead
            this.fallback.upload(imageId, file, onProgress, signal).then(resolve, reject);
          } else if (status === 0) {
            reject(new UploadError(LOST_RESUMABLE, 0, upload.url !== null));
          } else {
            reject(new ApiError(status, errorMessage(status, detailed.originalResponse?.getBody() ?? '')));
          }
        },
      }));
      signal?.addEventListener('abort', () => {
        if (settled) return;
        settled = true;
        // terminate: the server drops the partial data and the image is queued again
        void upload.abort(true).catch(() => undefined).then(() => reject(new UploadError(CANCELLED, 0)));
      }, { once: true });
      // the newest interrupted upload of this file to this image continues; otherwise a new one
      void upload.findPreviousUploads().then((previous) => {
        const mine = previous.filter((p) => p.metadata.image_id === imageId).sort((a, b) => b.creationTime.localeCompare(a.creationTime));
        if (mine[0]) upload.resumeFromPreviousUpload(mine[0]);
        if (!settled) upload.start();
      });
    });
  }
}
