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

/**
 * An ARIA table of CSS-grid rows rather than a <table>: each row is laid out on its own and rows off
 * screen skip layout and paint (`content-visibility: auto`), so a page of 1,000 images renders about
 * as fast as a page of 50. Screen readers get the same table semantics (role table/row/cell).
 */
export function ImageTable({ images, caption, showOwner = true }: { images: Image[]; caption: string; showOwner?: boolean }) {
  const cols = ['Name', 'Status', 'Size', 'Disk / container', 'Visibility', ...(showOwner ? ['Owner'] : []), 'Stores', 'Created', 'Updated'];
  return (
    <div class="table-wrap" role="region" aria-label={`${caption} (scrollable)`} tabIndex={0}>
      <div class={`grid images${showOwner ? '' : ' no-owner'}`} role="table" aria-label={caption} aria-rowcount={images.length + 1}>
        <div role="rowgroup" class="head">
          <div role="row" class="r">{cols.map((c) => <span role="columnheader" key={c}>{c}</span>)}</div>
        </div>
        <div role="rowgroup" class="body">
          {images.map((im) => (
            <div role="row" class="r" key={im.id}>
              <span role="cell" class="name"><a href={`#/images/${im.id}`}>{im.name || im.id}</a></span>
              <span role="cell"><StatusBadge status={im.status} /></span>
              <span role="cell" class="num">{formatBytes(im.size)}</span>
              <span role="cell">{im.disk_format ?? '—'} / {im.container_format ?? '—'}</span>
              <span role="cell">{im.visibility}</span>
              {showOwner && <span role="cell">{im.owner ?? '—'}</span>}
              <span role="cell">{im.stores ?? '—'}</span>
              <span role="cell">{formatDate(im.created_at)}</span>
              <span role="cell">{formatDate(im.updated_at)}</span>
            </div>
          ))}
        </div>
      </div>
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

  const [loaded, setLoaded] = useState<{ key: string; page: ImagePage } | null>(null);
  // a page is shown only for the query that produced it (no stale rows under a new page number)
  const page = loaded?.key === key ? loaded.page : null;
  const [error, setError] = useState<unknown>(null);
  const answeredAt = useRef(0);
  const load = (quiet = false) => {
    ctx.client.listImages({ ...q, marker }).then((p) => {
      answeredAt.current = performance.now();
      setLoaded({ key, page: p });
      setError(null);
    }, (e) => { if (!quiet) setError(e); });
  };
  useEffect(() => { load(); }, [key]);
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
