import { useEffect, useState } from 'preact/hooks';
import type { Image, Member, StoreInfo, Task } from './api/client.js';
import { ErrorNote, Section, StatusBadge, formatBytes, formatDate, useInterval, useLoad, type AppContext } from './ui.js';

/** Fields the API manages; shown, never edited as properties. */
const CORE = new Set(['id', 'name', 'status', 'visibility', 'size', 'virtual_size', 'disk_format', 'container_format', 'owner', 'protected', 'os_hidden',
  'tags', 'created_at', 'updated_at', 'checksum', 'os_hash_algo', 'os_hash_value', 'min_disk', 'min_ram', 'self', 'file', 'schema', 'locations', 'direct_url', 'stores']);
const EDITABLE_CORE = ['name', 'visibility', 'protected', 'os_hidden', 'min_disk', 'min_ram', 'disk_format', 'container_format'];
const BUSY = new Set(['saving', 'importing', 'uploading']);

type SchemaProps = Record<string, { type?: string | string[]; enum?: unknown[]; readOnly?: boolean }>;

function typeOf(schema: SchemaProps, name: string): { kind: 'boolean' | 'integer' | 'number' | 'enum' | 'string'; options?: string[] } {
  const p = schema[name];
  if (!p) return { kind: 'string' };
  const types = Array.isArray(p.type) ? p.type : [p.type];
  if (p.enum) return { kind: 'enum', options: p.enum.filter((x) => x !== null).map(String) };
  if (types.includes('boolean')) return { kind: 'boolean' };
  if (types.includes('integer')) return { kind: 'integer' };
  if (types.includes('number')) return { kind: 'number' };
  return { kind: 'string' };
}

function convert(kind: string, raw: string): unknown {
  if (kind === 'boolean') return raw === 'true';
  if (kind === 'integer' || kind === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`"${raw}" is not a number.`);
    return n;
  }
  return raw;
}

function ValueInput({ id, kind, options, value }: { id: string; kind: string; options?: string[]; value?: unknown }) {
  if (kind === 'boolean') {
    return <select id={id} name="value" value={String(value ?? 'false')}><option value="true">true</option><option value="false">false</option></select>;
  }
  if (kind === 'enum') return <select id={id} name="value" value={String(value ?? '')}>{options!.map((o) => <option key={o} value={o}>{o}</option>)}</select>;
  const v = value === undefined || value === null ? '' : String(value);
  if (kind === 'integer' || kind === 'number') return <input id={id} name="value" type="number" step={kind === 'integer' ? 1 : 'any'} value={v} required />;
  return <input id={id} name="value" type="text" value={v} />;
}

function Properties({ ctx, image, schema, onChange }: { ctx: AppContext; image: Image; schema: SchemaProps; onChange: (im: Image) => void }) {
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [newName, setNewName] = useState('');
  const extra = Object.keys(image).filter((k) => !CORE.has(k)).sort();
  const apply = async (ops: Parameters<AppContext['client']['patchImage']>[1]) => {
    setError(null);
    try {
      onChange(await ctx.client.patchImage(image.id, ops));
      setEditing(null);
      setNewName('');
    } catch (e) { setError(e); }
  };
  const save = (name: string, exists: boolean) => (e: Event) => {
    e.preventDefault();
    const raw = String(new FormData(e.target as HTMLFormElement).get('value') ?? '');
    try {
      const value = convert(typeOf(schema, name).kind, raw);
      apply([{ op: exists ? 'replace' : 'add', path: `/${name}`, value }]);
    } catch (err) { setError(err); }
  };
  const row = (name: string, removable: boolean) => {
    const t = typeOf(schema, name);
    const readOnly = schema[name]?.readOnly || name.startsWith('os_glance_');
    return (
      <tr key={name}>
        <th scope="row">{name}</th>
        <td>
          {editing === name ? (
            <form class="inline" onSubmit={save(name, image[name] !== undefined && image[name] !== null)}>
              <label class="sr-only" for={`edit-${name}`}>Value of {name}</label>
              <ValueInput id={`edit-${name}`} kind={t.kind} options={t.options} value={image[name]} />
              <button type="submit">Save</button>
              <button type="button" onClick={() => setEditing(null)}>Cancel</button>
            </form>
          ) : <span class="value">{image[name] === null || image[name] === undefined ? '—' : String(image[name])}</span>}
        </td>
        <td class="actions">
          {!readOnly && editing !== name && <button type="button" onClick={() => setEditing(name)} aria-label={`Edit ${name}`}>Edit</button>}
          {!readOnly && removable && <button type="button" onClick={() => apply([{ op: 'remove', path: `/${name}` }])} aria-label={`Remove ${name}`}>Remove</button>}
        </td>
      </tr>
    );
  };
  const newKind = typeOf(schema, newName);
  return (
    <Section title="Properties" id="props-h">
      <div class="table-wrap" role="region" aria-label="Properties" tabIndex={0}>
        <table class="props">
          <tbody>
            {EDITABLE_CORE.map((n) => row(n, false))}
            {extra.map((n) => row(n, true))}
          </tbody>
        </table>
      </div>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); if (newName) save(newName, false)(e); }} aria-label="Add a property">
        <label for="new-prop">New property</label>
        <input id="new-prop" value={newName} onInput={(e) => setNewName((e.target as HTMLInputElement).value.trim())} />
        <label for="new-prop-value">Value{newKind.kind !== 'string' ? ` (${newKind.kind})` : ''}</label>
        <ValueInput id="new-prop-value" kind={newKind.kind} options={newKind.options} />
        <button type="submit">Add property</button>
      </form>
      <ErrorNote error={error} />
    </Section>
  );
}

function Tags({ ctx, image, onChange }: { ctx: AppContext; image: Image; onChange: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const tag = String(new FormData(form).get('tag') ?? '').trim();
    if (!tag) return;
    try { await ctx.client.addTag(image.id, tag); form.reset(); setError(null); onChange(); } catch (err) { setError(err); }
  };
  const remove = async (tag: string) => {
    try { await ctx.client.removeTag(image.id, tag); onChange(); } catch (err) { setError(err); }
  };
  return (
    <Section title="Tags" id="tags-h">
      <ul class="tags" aria-label="Tags">
        {image.tags.length === 0 && <li class="muted">No tags.</li>}
        {image.tags.map((t) => (
          <li key={t} class="tag">{t} <button type="button" class="small" onClick={() => remove(t)} aria-label={`Remove tag ${t}`}>×</button></li>
        ))}
      </ul>
      <form class="inline" onSubmit={add}>
        <label for="new-tag">New tag</label>
        <input id="new-tag" name="tag" maxLength={255} />
        <button type="submit">Add tag</button>
      </form>
      <ErrorNote error={error} />
    </Section>
  );
}

function Members({ ctx, image }: { ctx: AppContext; image: Image }) {
  const mine = ctx.session.project?.id;
  const isOwner = image.owner === mine || ctx.session.is_admin;
  const list = useLoad<Member[]>(async () => {
    if (isOwner) return ctx.client.members(image.id);
    if (!mine) return [];
    try { return [await ctx.client.member(image.id, mine)]; } catch { return []; }
  }, [image.id, image.visibility]);
  const [error, setError] = useState<unknown>(null);
  if (image.visibility !== 'shared' && !(list.data?.length)) {
    return <Section title="Members" id="members-h"><p class="muted">Members can be added when the image's visibility is <em>shared</em>.</p></Section>;
  }
  const act = async (fn: () => Promise<unknown>) => { try { await fn(); setError(null); list.reload(); } catch (e) { setError(e); } };
  const add = (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const project = String(new FormData(form).get('member') ?? '').trim();
    if (project) act(async () => { await ctx.client.addMember(image.id, project); form.reset(); });
  };
  return (
    <Section title="Members" id="members-h">
      {list.data && list.data.length > 0 ? (
        <table class="members">
          <thead><tr><th scope="col">Project</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {list.data.map((m) => (
              <tr key={m.member_id}>
                <td>{m.member_id}</td>
                <td><StatusBadge status={m.status} /></td>
                <td class="actions">
                  {m.member_id === mine && m.status !== 'accepted' && <button type="button" onClick={() => act(() => ctx.client.setMemberStatus(image.id, m.member_id, 'accepted'))}>Accept</button>}
                  {m.member_id === mine && m.status !== 'rejected' && <button type="button" onClick={() => act(() => ctx.client.setMemberStatus(image.id, m.member_id, 'rejected'))}>Reject</button>}
                  {isOwner && <button type="button" onClick={() => act(() => ctx.client.removeMember(image.id, m.member_id))} aria-label={`Remove member ${m.member_id}`}>Remove</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted">No members.</p>}
      {isOwner && (
        <form class="inline" onSubmit={add}>
          <label for="new-member">Share with project (id)</label>
          <input id="new-member" name="member" />
          <button type="submit">Add member</button>
        </form>
      )}
      <ErrorNote error={error ?? list.error} />
    </Section>
  );
}

function Tasks({ tasks }: { tasks: Task[] }) {
  return (
    <Section title="Tasks" id="tasks-h">
      {tasks.length === 0 ? <p class="muted">No tasks for this image.</p> : (
        <ul class="tasks">
          {tasks.map((t) => (
            <li key={t.id} class="task">
              <StatusBadge status={t.status} /> <strong>{t.type}</strong> {String((t.input?.import_req as { method?: { name?: string } })?.method?.name ?? '')}
              <span class="muted"> · {formatDate(t.updated_at)}</span>
              {t.message && <p class={t.status === 'failure' ? 'error' : ''}>{t.message}</p>}
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function CopyToStores({ ctx, image, onDone }: { ctx: AppContext; image: Image; onDone: () => void }) {
  const stores = useLoad<StoreInfo[]>(() => ctx.client.stores(), []);
  const [error, setError] = useState<unknown>(null);
  const have = new Set(String(image.stores ?? '').split(',').filter(Boolean));
  const others = (stores.data ?? []).filter((s) => !have.has(s.id) && !s.read_only);
  if (image.status !== 'active' || others.length === 0) return null;
  const submit = async (e: Event) => {
    e.preventDefault();
    const chosen = new FormData(e.target as HTMLFormElement).getAll('store').map(String);
    if (chosen.length === 0) { setError(new Error('Choose at least one store.')); return; }
    try { await ctx.client.importImage(image.id, { method: { name: 'copy-image' }, stores: chosen }); setError(null); onDone(); } catch (err) { setError(err); }
  };
  return (
    <Section title="Copy to other stores" id="copy-h">
      <form onSubmit={submit}>
        <fieldset>
          <legend>Stores</legend>
          {others.map((s) => <label key={s.id} class="check"><input type="checkbox" name="store" value={s.id} /> {s.id}{s.description ? ` — ${s.description}` : ''}</label>)}
        </fieldset>
        <button type="submit">Copy</button>
      </form>
      <ErrorNote error={error} />
    </Section>
  );
}

async function download(ctx: AppContext, image: Image): Promise<void> {
  const sw = navigator.serviceWorker;
  if (!sw) throw new Error('This browser cannot stream downloads (no service worker support).');
  await sw.ready;
  const worker = sw.controller;
  if (!worker) throw new Error('The download helper is not active yet; reload the page and try again.');
  const key = crypto.randomUUID();
  await new Promise<void>((resolve, reject) => {
    const ch = new MessageChannel();
    const t = setTimeout(() => reject(new Error('The download helper did not answer.')), 5000);
    ch.port1.onmessage = () => { clearTimeout(t); resolve(); };
    worker.postMessage({ type: 'grant', key, token: ctx.session.token }, [ch.port2]);
  });
  // A plain navigation, not <a download>: Chromium sends download-attribute requests past the service
  // worker. The worker's answer is an attachment, so the browser saves it and this page stays.
  location.assign(`/console/download/${encodeURIComponent(image.id)}/${key}?name=${encodeURIComponent(image.name || image.id)}`);
}

export function ImagePage({ ctx, id }: { ctx: AppContext; id: string }) {
  const [image, setImage] = useState<Image | null>(null);
  const [tasks, setTasks] = useState<Task[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string>('');
  const [confirming, setConfirming] = useState(false);
  const schema = useLoad(() => ctx.client.imageSchema(), []);
  const refresh = () => {
    ctx.client.getImage(id).then(setImage, setError);
    ctx.client.imageTasks(id).then(setTasks, () => {});
  };
  useEffect(refresh, [id]);
  const running = !!image && (BUSY.has(image.status) || tasks.some((t) => t.status === 'pending' || t.status === 'processing') || !!image.os_glance_importing_to_stores);
  useInterval(refresh, 1000, running);
  if (error && !image) return <><h1>Image</h1><ErrorNote error={error} /></>;
  if (!image) return <p aria-live="polite">Loading…</p>;
  const act = async (what: string, fn: () => Promise<unknown>) => {
    try { await fn(); setNotice(what); setError(null); refresh(); } catch (e) { setError(e); }
  };
  const failed = String(image.os_glance_failed_import ?? '');
  return (
    <>
      <h1>{image.name || image.id}</h1>
      <p class="summary"><StatusBadge status={image.status} /> {formatBytes(image.size)} · {image.disk_format ?? '—'}/{image.container_format ?? '—'} · {image.visibility}</p>
      {failed && <p class="error" role="alert">Import to store(s) {failed} failed; see the tasks below for why.</p>}
      <div class="toolbar">
        {image.status === 'active' && <button type="button" onClick={() => download(ctx, image).catch(setError)}>Download</button>}
        {image.status === 'active' && <button type="button" onClick={() => act('Deactivated.', () => ctx.client.deactivate(image.id))}>Deactivate</button>}
        {image.status === 'deactivated' && <button type="button" onClick={() => act('Reactivated.', () => ctx.client.reactivate(image.id))}>Reactivate</button>}
        {!confirming && <button type="button" class="danger" onClick={() => setConfirming(true)}>Delete…</button>}
      </div>
      {confirming && (
        <div class="confirm card" role="alertdialog" aria-labelledby="confirm-h" aria-describedby="confirm-d">
          <h2 id="confirm-h">Delete this image?</h2>
          <p id="confirm-d">“{image.name || image.id}” and its data will be removed. This cannot be undone.</p>
          <button type="button" class="danger" onClick={() => act('Deleted.', async () => { await ctx.client.deleteImage(image.id); ctx.go('#/images'); })}>Delete permanently</button>
          <button type="button" onClick={() => setConfirming(false)}>Keep it</button>
        </div>
      )}
      <p aria-live="polite" class="notice">{notice}</p>
      <ErrorNote error={error} />
      <Section title="Details" id="details-h">
        <dl class="fields">
          {['id', 'status', 'owner', 'size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value', 'stores', 'created_at', 'updated_at'].map((k) => (
            <div key={k}><dt>{k}</dt><dd>{k === 'size' || k === 'virtual_size' ? `${formatBytes(image[k] as number | null)}${image[k] != null ? ` (${image[k]} bytes)` : ''}` : k.endsWith('_at') ? formatDate(image[k] as string) : String(image[k] ?? '—')}</dd></div>
          ))}
        </dl>
      </Section>
      <Tags ctx={ctx} image={image} onChange={refresh} />
      <Properties ctx={ctx} image={image} schema={schema.data?.properties ?? {}} onChange={setImage} />
      <Members ctx={ctx} image={image} />
      <CopyToStores ctx={ctx} image={image} onDone={refresh} />
      <Tasks tasks={tasks} />
    </>
  );
}
