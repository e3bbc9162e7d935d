import type { Image } from './api/client.js';
import { ImageTable } from './images.js';
import { ErrorNote, Section, StatusBadge, formatDate, useLoad, type AppContext } from './ui.js';

/** Admin view: what needs attention first (failed and stuck imports), then every project's images. */
export function AdminPage({ ctx }: { ctx: AppContext }) {
  // the task list carries no message: the newest failures are read one by one
  const failed = useLoad(async () => {
    const stubs = await ctx.client.tasks({ status: 'failure', limit: 20 });
    return Promise.all(stubs.map((t) => ctx.client.task(t.id).catch(() => t)));
  }, []);
  const busy = useLoad(async () => {
    const lists = await Promise.all(['importing', 'saving', 'uploading'].map((status) => ctx.client.listImages({ status, visibility: 'all', limit: 100, sort_key: 'updated_at', sort_dir: 'asc' })));
    return lists.flatMap((l) => l.images);
  }, []);
  const all = useLoad(() => ctx.client.listImages({ visibility: 'all', limit: 50 }), []);
  const failedImports = (all.data?.images ?? []).filter((im: Image) => im.os_glance_failed_import);
  return (
    <>
      <h1>Admin</h1>
      <Section title="Failed tasks" id="failed-h">
        <ErrorNote error={failed.error} />
        {failed.data?.length === 0 && <p class="muted">No failed task.</p>}
        <ul class="tasks">
          {(failed.data ?? []).map((t) => (
            <li key={t.id} class="task">
              <StatusBadge status={t.status} /> {t.type} · owner {t.owner ?? '—'} · {formatDate(t.updated_at)}
              {t.image_id && <> · <a href={`#/images/${t.image_id}`}>image</a></>}
              {t.message && <p class="error">{t.message}</p>}
            </li>
          ))}
        </ul>
      </Section>
      <Section title="Imports and uploads in progress (oldest first: the stuck ones)" id="busy-h">
        <ErrorNote error={busy.error} />
        {busy.data && (busy.data.length ? <ImageTable images={busy.data} caption="Images being written" /> : <p class="muted">Nothing in progress.</p>)}
      </Section>
      {failedImports.length > 0 && (
        <Section title="Images with failed imports" id="failedimg-h">
          <ImageTable images={failedImports} caption="Images with failed imports" />
        </Section>
      )}
      <Section title="Images of all projects (newest first)" id="all-h">
        <ErrorNote error={all.error} />
        {all.data && <ImageTable images={all.data.images} caption="Images of all projects" />}
        <p><a href="#/images?visibility=all">Browse and filter all images</a></p>
      </Section>
    </>
  );
}
