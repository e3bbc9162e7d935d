import { ApiError } from './api/client.js';

/**
 * How the console sends image data. Today: `PUT /v2/images/{id}/file` by
 * XMLHttpRequest, whose upload progress events drive the bar; the browser
 * streams the File from disk, it is never read into JavaScript memory. When the
 * resumable upload (tus, issue 16) exists, a TusUploader implementing the same
 * interface replaces this one and a dropped connection continues where it stopped.
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
  constructor(message: string, readonly status: number) {
    super(message);
    this.name = 'UploadError';
  }
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
      let lastT = performance.now();
      let lastLoaded = 0;
      let speed = 0;
      xhr.upload.onprogress = (e) => {
        const now = performance.now();
        const dt = (now - lastT) / 1000;
        if (dt >= 0.2) {
          const instant = (e.loaded - lastLoaded) / dt;
          speed = speed === 0 ? instant : speed * 0.7 + instant * 0.3;
          lastT = now;
          lastLoaded = e.loaded;
        }
        const total = e.lengthComputable ? e.total : file.size;
        onProgress({ loaded: e.loaded, total, bytesPerSecond: speed, secondsLeft: speed > 0 ? Math.max(0, (total - e.loaded) / speed) : null });
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress({ loaded: file.size, total: file.size, bytesPerSecond: speed, secondsLeft: 0 });
          resolve();
          return;
        }
        let message = `The server answered ${xhr.status}.`;
        try {
          const body = JSON.parse(xhr.responseText) as { error?: { message?: string } };
          if (body?.error?.message) message = body.error.message;
        } catch { /* not JSON */ }
        reject(new ApiError(xhr.status, message));
      };
      xhr.onerror = () => reject(new UploadError('The connection to the server was lost during the upload; nothing of it was kept. Retry sends the file again.', 0));
      xhr.onabort = () => reject(new UploadError('The upload was cancelled. The image is still queued.', 0));
      xhr.ontimeout = () => reject(new UploadError('The upload timed out.', 0));
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(file);
    });
  }
}
