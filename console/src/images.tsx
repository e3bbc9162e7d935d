import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Image, ImagePage, ListQuery } from './api/client.js';
import { ErrorNote, StatusBadge, formatBytes, formatDate, useInterval, type AppContext } from './ui.js';

const FILTERS: Array<{ key: keyof ListQuery; label: string; options?: string[] }> = [
  { key: 'name', label: 'Name (exact)' },
  { key: 'status', label: 'Status', options: ['', 'queued', 'saving', 'uploading', 'importing', 'active', 'deactivated', 'killed'] },
  { key: 'visibility', label: 'Visibility', options: ['', 'public', 'private', 'shared', 'community', 'all'] },
  { key: 'owner', label: 'Owner' },
  { key: 'tag', label: 'Tag' },
  { key: 'member_status', label: 'Shared with me', options: ['', 'pending', 'accepted', 'rejected', 'all'] },
  { key: 'disk_format', label: 'Disk format', options: ['', 'raw', 'qcow2', 'iso', 'vmdk', 'vdi', 'vhd', 'vhdx', 'ami', 'ari', 'aki', 'ploop'] },
];
const SORTABLE = ['name', 'status', 'size', 'disk_format', 'visibility', 'owner', 'created_at', 'updated_at'];
const BUSY = new Set(['saving', 'importing', 'uploading']);

export interface RenderTiming { count: number; commitMs: number; paintMs: number }

declare global {
  interface Window { __imagoListRender?: RenderTiming[] }
}

export function ImageTable({ images, caption, showOwner = true }: { images: Image[]; caption: string; showOwner?: boolean }) {
  return (
    <div class="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table class="images">
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th><th scope="col">Status</th><th scope="col">Size</th><th scope="col">Disk / container</th>
            <th scope="col">Visibility</th>{showOwner && <th scope="col">Owner</th>}<th scope="col">Stores</th>
            <th scope="col">Created</th><th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {images.map((im) => (
            <tr key={im.id}>
              <td><a href={`#/images/${im.id}`}>{im.name || im.id}</a></td>
              <td><StatusBadge status={im.status} /></td>
              <td class="num">{formatBytes(im.size)}</td>
              <td>{im.disk_format ?? '—'} / {im.container_format ?? '—'}</td>
              <td>{im.visibility}</td>
              {showOwner && <td>{im.owner ?? '—'}</td>}
              <td>{im.stores ?? '—'}</td>
              <td>{formatDate(im.created_at)}</td>
              <td>{formatDate(im.updated_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function ImageList({ ctx, query }: { ctx: AppContext; query: URLSearchParams }) {
  const q: ListQuery = {};
  for (const f of FILTERS) { const v = query.get(f.key); if (v) (q as Record<string, string>)[f.key] = v; }
  q.sort_key = query.get('sort_key') || 'created_at';
  q.sort_dir = (query.get('sort_dir') as 'asc' | 'desc') || 'desc';
  q.limit = Number(query.get('limit')) || 25;
  const marker = query.get('marker') || undefined;
  const prev = query.getAll('prev');
  const key = JSON.stringify([q, marker]);

  const [page, setPage] = useState<ImagePage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const answeredAt = useRef(0);
  const load = (quiet = false) => {
    ctx.client.listImages({ ...q, marker }).then((p) => {
      answeredAt.current = performance.now();
      setPage(p);
      setError(null);
    }, (e) => { if (!quiet) setError(e); });
  };
  useEffect(() => { setPage(null); load(); }, [key]);
  // measured: from the API's answer to the rows in the DOM (commit) and to the next frame (paint)
  useLayoutEffect(() => {
    if (!page || !answeredAt.current) return;
    const t0 = answeredAt.current;
    answeredAt.current = 0;
    const commitMs = performance.now() - t0;
    requestAnimationFrame(() => setTimeout(() => {
      const timing = { count: page.images.length, commitMs, paintMs: performance.now() - t0 };
      (window.__imagoListRender ??= []).push(timing);
      document.body.dataset.listRenderMs = String(Math.round(timing.paintMs));
    }, 0));
  }, [page]);
  // live refresh while an image is being written
  useInterval(() => load(true), 2000, !!page?.images.some((im) => BUSY.has(im.status)));

  const hashWith = (changes: Record<string, string | string[] | undefined>) => {
    const p = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      p.delete(k);
      if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
      else if (v) p.set(k, v);
    }
    return `#/images?${p}`;
  };
  const onFilter = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const changes: Record<string, string | string[] | undefined> = { marker: undefined, prev: [] };
    for (const k of [...FILTERS.map((x) => x.key), 'sort_key', 'sort_dir', 'limit']) changes[k] = String(f.get(k) ?? '').trim() || undefined;
    ctx.go(hashWith(changes));
  };

  return (
    <>
      <h1>Images</h1>
      <form class="filters card" onSubmit={onFilter} aria-label="Filter images">
        {FILTERS.map((f) => (
          <span class="field" key={f.key}>
            <label for={`f-${f.key}`}>{f.label}</label>
            {f.options ? (
              <select id={`f-${f.key}`} name={f.key} value={(q as Record<string, string>)[f.key] ?? ''}>
                {f.options.map((o) => <option key={o} value={o}>{o || (f.key === 'member_status' ? 'default' : 'any')}</option>)}
              </select>
            ) : (
              <input id={`f-${f.key}`} name={f.key} value={(q as Record<string, string>)[f.key] ?? ''} />
            )}
          </span>
        ))}
        <span class="field">
          <label for="f-sort_key">Sort by</label>
          <select id="f-sort_key" name="sort_key" value={q.sort_key}>{SORTABLE.map((s) => <option key={s} value={s}>{s}</option>)}</select>
        </span>
        <span class="field">
          <label for="f-sort_dir">Order</label>
          <select id="f-sort_dir" name="sort_dir" value={q.sort_dir}><option value="desc">descending</option><option value="asc">ascending</option></select>
        </span>
        <span class="field">
          <label for="f-limit">Per page</label>
          <select id="f-limit" name="limit" value={String(q.limit)}>{[25, 100, 500, 1000].map((n) => <option key={n} value={n}>{n}</option>)}</select>
        </span>
        <button type="submit">Apply</button>
      </form>
      <ErrorNote error={error} />
      {!page && !error && <p aria-live="polite">Loading…</p>}
      {page && (
        <>
          <p aria-live="polite" class="count" data-testid="count">
            {page.images.length === 0 ? 'No image matches.' : `Showing ${page.images.length} image${page.images.length === 1 ? '' : 's'}, page ${prev.length + 1}.`}
          </p>
          <ImageTable images={page.images} caption="Images" />
          <nav class="pager" aria-label="Pages">
            {prev.length > 0 && <a href={hashWith({ marker: prev[prev.length - 1] || undefined, prev: prev.slice(0, -1) })} rel="prev">Previous page</a>}
            {page.next && <a href={hashWith({ marker: page.next, prev: [...prev, marker ?? ''] })} rel="next">Next page</a>}
          </nav>
        </>
      )}
    </>
  );
}
