import { useMemo, useRef, useState } from 'preact/hooks';
import type { Image } from './api/client.js';
import { ApiError } from './api/client.js';
import { TusUploader, UploadError, XhrUploader, type Interrupted, type UploadProgress } from './upload.js';
import { ErrorNote, formatBytes, formatDuration, useLoad, type AppContext } from './ui.js';

const LOST = 'The connection to the server was lost during the upload; nothing of it was kept. Retry sends the file again.';

const DISK = ['raw', 'qcow2', 'iso', 'vmdk', 'vdi', 'vhd', 'vhdx', 'ami', 'ari', 'aki', 'ploop'];
const CONTAINER = ['bare', 'ovf', 'ova', 'aki', 'ari', 'ami', 'docker', 'compressed'];

function guessDisk(name: string): string {
  const ext = name.toLowerCase().split('.').pop() ?? '';
  return DISK.includes(ext) ? ext : ext === 'img' ? 'raw' : 'raw';
}

function MetaFields({ name, onName, disk }: { name: string; onName: (v: string) => void; disk: string }) {
  return (
    <>
      <label for="img-name">Name</label>
      <input id="img-name" name="name" value={name} onInput={(e) => onName((e.target as HTMLInputElement).value)} required />
      <span class="row">
        <span class="field">
          <label for="img-disk">Disk format</label>
          <select id="img-disk" name="disk_format" value={disk}>{DISK.map((d) => <option key={d}>{d}</option>)}</select>
        </span>
        <span class="field">
          <label for="img-container">Container format</label>
          <select id="img-container" name="container_format">{CONTAINER.map((d) => <option key={d}>{d}</option>)}</select>
        </span>
        <span class="field">
          <label for="img-visibility">Visibility</label>
          <select id="img-visibility" name="visibility">{['private', 'shared', 'community', 'public'].map((d) => <option key={d}>{d}</option>)}</select>
        </span>
      </span>
    </>
  );
}

function meta(form: HTMLFormElement): Record<string, string> {
  const f = new FormData(form);
  return {
    name: String(f.get('name') ?? '').trim(),
    disk_format: String(f.get('disk_format')),
    container_format: String(f.get('container_format')),
    visibility: String(f.get('visibility')),
  };
}

/** An interrupted upload of the chosen file, with its image, that the page offers to resume. */
interface Resumable extends Interrupted {
  image: Image;
}

export function UploadPage({ ctx }: { ctx: AppContext }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [image, setImage] = useState<Image | null>(null);
  const [progress, setProgress] = useState<UploadProgress | null>(null);
  const [state, setState] = useState<'idle' | 'uploading' | 'done' | 'failed'>('idle');
  const [error, setError] = useState<unknown>(null);
  const [dragging, setDragging] = useState(false);
  const [retryReady, setRetryReady] = useState(false);
  const [resumable, setResumable] = useState<Resumable | null>(null);
  const abort = useRef<AbortController | null>(null);
  const uploader = useMemo(() => {
    const token = () => ctx.session.token;
    return new TusUploader(new URL('/v2/uploads', location.href).href, token, new XhrUploader((id) => ctx.client.fileUrl(id), token));
  }, [ctx]);

  // A closed tab or a lost network left an upload of this file behind: offer to continue it.
  const lookForInterrupted = async (f: File) => {
    for (const u of await uploader.interrupted(f).catch(() => [])) {
      const im = await ctx.client.getImage(u.imageId).catch(() => null);
      if (im && (im.status === 'saving' || im.status === 'queued')) {
        setResumable({ ...u, image: im });
        return;
      }
    }
  };
  const choose = (f: File | null | undefined) => {
    if (!f) return;
    setFile(f);
    setName((n) => n || f.name);
    setImage(null);
    setState('idle');
    setProgress(null);
    setError(null);
    setResumable(null);
    void lookForInterrupted(f);
  };
  const send = async (target: Image, f: File) => {
    setState('uploading');
    setError(null);
    setResumable(null);
    abort.current = new AbortController();
    setRetryReady(false);
    try {
      await uploader.upload(target.id, f, setProgress, abort.current.signal);
      setState('done');
    } catch (e) {
      setState('failed');
      if (e instanceof UploadError && e.resumable) {
        // the server keeps what arrived and holds the image for this upload: resume at once
        setError(e);
        setRetryReady(true);
        return;
      }
      // The plain PUT (no resumable uploads here). Chromium re-sends an upload whose connection broke; the
      // server, still rolling back the broken write, refuses the second one with 409: for the person it is
      // the same lost connection.
      let interrupted = e instanceof UploadError && e.status === 0 && !(abort.current?.signal.aborted);
      if (e instanceof ApiError && e.status === 409) {
        // still held by the broken write, or already released by it: either way no one else wrote the image
        interrupted = await ctx.client.getImage(target.id).then((im) => ['saving', 'uploading', 'queued'].includes(im.status), () => false);
      }
      setError(interrupted ? new UploadError(LOST, 0) : e);
      await waitQueued(target.id);
    }
  };
  // After a broken plain upload the server rolls the write back and the image is queued again
  // (a moment later, when the connection merely dropped); retry is offered once it is.
  const waitQueued = async (id: string) => {
    for (let i = 0; i < 120; i++) {
      try {
        const im = await ctx.client.getImage(id);
        if (im.status === 'queued') { setRetryReady(true); return; }
        if (im.status !== 'saving' && im.status !== 'uploading') return;
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) { setError(new Error('Choose a file first.')); return; }
    try {
      const created = await ctx.client.createImage(meta(e.target as HTMLFormElement));
      setImage(created);
      await send(created, file);
    } catch (err) {
      setError(err);
      setState('failed');
    }
  };
  const resume = (r: Resumable) => {
    if (!file) return;
    setImage(r.image);
    void send(r.image, file);
  };
  const resumableFailure = error instanceof UploadError && error.resumable;
  const pct = progress && progress.total > 0 ? Math.floor((progress.loaded / progress.total) * 100) : 0;
  return (
    <>
      <h1>Upload an image</h1>
      <form class="card stack" onSubmit={submit}>
        <div
          class={`drop${dragging ? ' over' : ''}`}
          onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => { e.preventDefault(); setDragging(false); choose(e.dataTransfer?.files[0]); }}
        >
          <label for="file">Image file (or drop it here)</label>
          <input id="file" type="file" onChange={(e) => choose((e.target as HTMLInputElement).files?.[0])} />
          {file && <p>{file.name} · {formatBytes(file.size)}</p>}
        </div>
        {resumable && state === 'idle' && (
          <div class="notice" role="status" data-testid="resumable">
            <p>
              An upload of this file to <a href={`#/images/${resumable.image.id}`}>{resumable.image.name ?? resumable.image.id}</a> stopped
              at {Math.floor((resumable.offset / resumable.size) * 100)} % ({formatBytes(resumable.offset)} of {formatBytes(resumable.size)} are on the server).
            </p>
            <button type="button" onClick={() => resume(resumable)}>Resume upload</button>
          </div>
        )}
        <MetaFields name={name} onName={setName} disk={file ? guessDisk(file.name) : 'raw'} />
        <button type="submit" disabled={state === 'uploading' || !file}>Create and upload</button>
      </form>
      {(progress || state !== 'idle') && (
        <section class="card" aria-labelledby="progress-h">
          <h2 id="progress-h">Progress</h2>
          <progress id="upload-progress" max={100} value={pct} aria-label="Upload progress">{pct}%</progress>
          <p aria-live="polite" data-testid="upload-status" data-state={state} data-percent={pct}>
            {state === 'done' ? 'Upload complete: 100 %.' : `${pct} % · ${formatBytes(progress?.loaded ?? 0)} of ${formatBytes(progress?.total ?? file?.size ?? 0)}`}
            {state === 'uploading' && progress && ` · ${formatBytes(progress.bytesPerSecond)}/s · ${formatDuration(progress.secondsLeft)} left`}
          </p>
          {state === 'uploading' && <button type="button" onClick={() => abort.current?.abort()}>Cancel</button>}
          {state === 'failed' && image && file && !retryReady && <p aria-live="polite">Waiting for the server to release the interrupted upload…</p>}
          {state === 'failed' && image && file && retryReady && <button type="button" onClick={() => send(image, file)}>{resumableFailure ? 'Resume upload' : 'Retry upload'}</button>}
          {image && <p><a href={`#/images/${image.id}`}>Open the image page</a></p>}
        </section>
      )}
      <ErrorNote error={error} />
    </>
  );
}

export function ImportPage({ ctx }: { ctx: AppContext }) {
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const info = useLoad(() => ctx.client.importInfo(), []);
  const methods = info.data?.['import-methods']?.value ?? [];
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const uri = String(new FormData(form).get('uri') ?? '').trim();
    setBusy(true);
    setError(null);
    let created: Image | null = null;
    try {
      created = await ctx.client.createImage(meta(form));
      await ctx.client.importImage(created.id, { method: { name: 'web-download', uri } });
      ctx.go(`#/images/${created.id}`);
    } catch (err) {
      setError(err);
      // a refused import leaves the created image queued: say so, so it can be removed or retried
      if (created) setError(new Error(`${(err as Error).message} (the image ${created.id} was created and is queued)`));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>Import from a URL</h1>
      {info.data && !methods.includes('web-download') && <p class="error" role="alert">web-download is not enabled on this Imago.</p>}
      <form class="card stack" onSubmit={submit}>
        <label for="uri">URL of the image</label>
        <input id="uri" name="uri" type="url" required onInput={(e) => { const v = (e.target as HTMLInputElement).value; if (!name) setName(v.split('/').pop() ?? ''); }} />
        <MetaFields name={name} onName={setName} disk="raw" />
        <button type="submit" disabled={busy}>{busy ? 'Starting…' : 'Import'}</button>
      </form>
      <p class="muted">Imago downloads the image itself; its page shows the task's progress and, if it fails, why.</p>
      <ErrorNote error={error} />
    </>
  );
}
